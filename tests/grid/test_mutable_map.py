"""The servermap's round trips: each server is read for the share it most likely holds
while it lists its shares, and a wrong guess costs nothing but a refused read. For
reading, a server whose guessed share is good is not asked for its list at all; anything
unexpected (a miss, two versions, a bad share) makes the map complete."""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import cast

import pytest_twisted
from twisted.internet import defer

from mistgrid.caps.mutable import MutableFormat
from mistgrid.crypto import rsa
from mistgrid.grid.mutable import KeyPool, map_servers
from mistgrid.grid.mutable_files import MutableFiles
from mistgrid.mutable.version import SigningKey
from mistgrid.placement.happiness import permuted
from mistgrid.shares.mutable import HEADER_READ_SIZE, parse_header
from mistgrid.storage.backend import si_text
from mistgrid.storage.client import StorageClient

from .test_mdmf_partial import CountingServer


class HeldListing(CountingServer):
    """Once `hold()` is called, answers a listing only when told to; reads at once (an
    error, as a 404, for a share it does not hold)."""

    def __init__(self, root: Path, index: int) -> None:
        super().__init__(root, index)
        self.held: list[tuple[defer.Deferred[set[int]], set[int]]] = []
        self.holding = False
        self.refused = 0
        self.listings = 0

    def hold(self) -> None:
        self.forget()
        self.held.clear()
        self.holding = True

    def list_mutable(self, si: bytes) -> defer.Deferred[set[int]]:
        self.listings += 1
        answer = self.backend.mutable_shares(si)
        if not self.holding:
            return defer.succeed(answer)
        waiting: defer.Deferred[set[int]] = defer.Deferred()
        self.held.append((waiting, answer))
        return waiting

    def release(self) -> None:
        for waiting, answer in self.held:
            waiting.callback(answer)

    def read_mutable(self, si: bytes, n: int, offset: int,
                     length: int) -> defer.Deferred[bytes]:
        if n not in self.backend.mutable_shares(si):
            self.refused += 1
            return defer.fail(KeyError(n))
        return super().read_mutable(si, n, offset, length)


def _files(servers: Sequence[HeldListing], total: int) -> MutableFiles:
    return MutableFiles(lambda: cast(list[StorageClient], servers), 2, total, b"l" * 32,
                        None, KeyPool(0, None))


@pytest_twisted.ensureDeferred
async def test_each_server_is_read_while_it_lists(tmp_path: Path) -> None:
    servers = [HeldListing(tmp_path / f"s{i}", i) for i in range(4)]
    files = _files(servers, 4)
    data = os.urandom(1000)
    for fmt in MutableFormat:
        cap = await files.create(fmt, io.BytesIO(data), len(data),
                                 SigningKey.of(rsa.generate()))
        for server in servers:
            server.hold()
        mapping = defer.Deferred.fromCoroutine(map_servers(
            cast(list[StorageClient], servers), cap, 4))
        # no listing has answered, and every server has been read for its share already
        assert all(len(s.held) == 1 and len(s.reads) == 1 for s in servers)
        for server in servers:
            server.release()
        mapped = await mapping
        assert len(mapped.map.found) == 4 and not mapped.map.bad
        assert all(len(s.reads) == 1 for s in servers)  # no second read of that share
        assert sum(s.refused for s in servers) == 0
        for server in servers:
            server.holding = False


@pytest_twisted.ensureDeferred
async def test_a_wrong_guess_is_read_again_as_listed(tmp_path: Path) -> None:
    """Shares where publishing would not put them (a file of 2 shares on 4 servers, an
    N of 4 expected): every share is still found, from the read after the listing."""
    servers = [HeldListing(tmp_path / f"s{i}", i) for i in range(4)]
    data = os.urandom(3000)
    cap = await _files(servers, 3).create(MutableFormat.SDMF, io.BytesIO(data), len(data),
                                          SigningKey.of(rsa.generate()))
    files = _files(servers, 4)
    for server in servers:
        server.hold()
    reading = defer.Deferred.fromCoroutine(files.read_all(cap))
    for server in servers:
        server.release()
    assert await reading == data
    assert sum(s.refused for s in servers) == 1  # the 4th server holds no share


@pytest_twisted.ensureDeferred
async def test_a_new_file_is_written_without_a_listing(tmp_path: Path) -> None:
    """A file of a key made for it is written in one round trip; one of a given key (which
    may be in use: Tahoe's private-key=) is mapped first and published on top."""
    servers = [HeldListing(tmp_path / f"s{i}", i) for i in range(4)]
    files = _files(servers, 4)
    first = os.urandom(500)
    cap = await files.create(MutableFormat.SDMF, io.BytesIO(first), len(first))
    assert not any(s.listings for s in servers)
    assert all(len(s.writes) == 1 and not s.reads for s in servers)
    assert await files.read_all(cap) == first
    key = SigningKey.of(rsa.generate())
    await files.create(MutableFormat.SDMF, io.BytesIO(first), len(first), key)
    second = os.urandom(700)
    again = await files.create(MutableFormat.SDMF, io.BytesIO(second), len(second), key)
    mapped = await map_servers(cast(list[StorageClient], servers), again, 4)
    assert {r.prefix.seqnum for r in mapped.map.found} == {2}
    assert await files.read_all(again) == second


class Flipping(HeldListing):
    """Flips a byte of the share data (a block) of the shares in `corrupt`."""

    def __init__(self, root: Path, index: int) -> None:
        super().__init__(root, index)
        self.corrupt: set[int] = set()
        self.failing: set[int] = set()  # shares whose reads past the first fail

    def read_mutable(self, si: bytes, n: int, offset: int,
                     length: int) -> defer.Deferred[bytes]:
        if n in self.failing and offset != 0:
            return defer.fail(ConnectionRefusedError("gone after the map"))
        read = super().read_mutable(si, n, offset, length)
        if n not in self.corrupt or offset != 0:
            return read

        def flip(data: bytes) -> bytes:
            raw = bytearray(data)
            raw[parse_header(data[:HEADER_READ_SIZE], n).offsets.share_data] ^= 1
            return bytes(raw)

        return read.addCallback(flip)


@pytest_twisted.ensureDeferred
async def test_a_read_asks_no_server_for_its_list_when_the_guesses_hold(
        tmp_path: Path) -> None:
    servers = [HeldListing(tmp_path / f"s{i}", i) for i in range(4)]
    files = _files(servers, 4)
    for fmt in MutableFormat:
        data = os.urandom(2000)
        cap = await files.create(fmt, io.BytesIO(data), len(data),
                                 SigningKey.of(rsa.generate()))
        for server in servers:
            server.forget()
            server.listings = 0
        assert await files.read_all(cap) == data
        assert [s.listings for s in servers] == [0, 0, 0, 0]
        assert [len(s.reads) for s in servers] == [1, 1, 1, 1]
        info = await files.info(cap)
        assert info is not None and info.data_length == len(data)
        assert [s.listings for s in servers] == [0, 0, 0, 0]
        # a writer's map still asks every server for everything it holds
        await files.replace(cap, io.BytesIO(data[::-1]), len(data))
        assert all(s.listings == 1 for s in servers)


@pytest_twisted.ensureDeferred
async def test_a_server_left_with_an_older_version_makes_the_read_map_complete(
        tmp_path: Path) -> None:
    """Server 0 keeps version 1 of its share (it missed the write of version 2): the read
    sees two versions among the guessed shares, asks every server for its list (as a
    writer would), and returns version 2."""
    servers = [HeldListing(tmp_path / f"s{i}", i) for i in range(4)]
    files = _files(servers, 4)
    first, second = os.urandom(1500), os.urandom(1600)
    for fmt in MutableFormat:
        cap = await files.create(fmt, io.BytesIO(first), len(first),
                                 SigningKey.of(rsa.generate()))
        mapped = await map_servers(cast(list[StorageClient], servers), cap, 4)
        number = next(r.number for r in mapped.map.found if r.server == 0)
        path = servers[0].backend.shares / si_text(cap.storage_index)[:2] / si_text(
            cap.storage_index) / str(number)
        old = path.read_bytes()
        await files.replace(cap, io.BytesIO(second), len(second))
        path.write_bytes(old)  # server 0 missed the write
        for server in servers:
            server.listings = 0
        assert await files.read_all(cap) == second
        assert all(s.listings == 1 for s in servers)


@pytest_twisted.ensureDeferred
async def test_a_read_that_finds_too_few_good_guessed_shares_maps_again(
        tmp_path: Path) -> None:
    """2-of-8 on 4 servers (two shares each); the blocks of three of the four guessed
    shares are corrupt (their signed parts are fine, so the map takes them): the read
    maps every share and decodes from good ones."""
    servers = [Flipping(tmp_path / f"s{i}", i) for i in range(4)]
    files = _files(servers, 8)
    for fmt in MutableFormat:
        data = os.urandom(3000)
        cap = await files.create(fmt, io.BytesIO(data), len(data),
                                 SigningKey.of(rsa.generate()))
        mapped = await map_servers(cast(list[StorageClient], servers), cap, 8,
                                   complete=False)
        assert len(mapped.map.found) == 4 and not mapped.complete
        for record in mapped.map.found[:3]:
            servers[record.server].corrupt = {record.number}
        for server in servers:
            server.listings = 0
        assert await files.read_all(cap) == data
        assert all(s.listings == 1 for s in servers)
        for server in servers:
            server.corrupt = set()


@pytest_twisted.ensureDeferred
async def test_a_read_whose_guessed_shares_fail_after_the_map_maps_again(
        tmp_path: Path) -> None:
    """As above, but the servers of three guessed shares fail every read after the map's
    first (not a share changed under the read: a server going away)."""
    servers = [Flipping(tmp_path / f"s{i}", i) for i in range(4)]
    files = _files(servers, 8)
    for fmt in MutableFormat:
        data = os.urandom(200_000)  # shares larger than the map's first read
        cap = await files.create(fmt, io.BytesIO(data), len(data),
                                 SigningKey.of(rsa.generate()))
        mapped = await map_servers(cast(list[StorageClient], servers), cap, 8,
                                   complete=False)
        for record in mapped.map.found[:3]:
            servers[record.server].failing = {record.number}
        assert await files.read_all(cap) == data
        assert all(s.listings >= 1 for s in servers)
        for server in servers:
            server.failing = set()


@pytest_twisted.ensureDeferred
async def test_shares_away_from_their_permuted_places_are_read_where_last_seen(
        tmp_path: Path) -> None:
    """A file written on 5 servers, read on 4 of them (the first of its permuted order
    has left the grid): every guess misses, so the first read asks every server for its
    list; from then on the client reads each server's share where it last saw it, with
    no listing and no refused read, also after a write."""
    five = [HeldListing(tmp_path / f"s{i}", i) for i in range(5)]
    data = os.urandom(2500)
    cap = await _files(five, 5).create(MutableFormat.SDMF, io.BytesIO(data), len(data))
    gone = permuted([s.permutation_seed for s in five], cap.storage_index)[0]
    servers = [s for i, s in enumerate(five) if i != gone]
    files = _files(servers, 5)

    def counts() -> tuple[int, int]:
        return sum(s.listings for s in servers), sum(s.refused for s in servers)

    assert await files.read_all(cap) == data
    assert counts() == (4, 4)
    assert await files.read_all(cap) == data
    assert counts() == (4, 4)
    await files.replace(cap, io.BytesIO(data[::-1]), len(data))  # maps: 4 listings
    assert counts() == (8, 4)
    assert await files.read_all(cap) == data[::-1]
    assert counts() == (8, 4)
