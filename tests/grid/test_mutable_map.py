"""The servermap's round trips: each server is read for the share it most likely holds
while it lists its shares, and a wrong guess costs nothing but a refused read."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import cast

import pytest_twisted
from twisted.internet import defer

from mistgrid.caps.mutable import MutableFormat
from mistgrid.crypto import rsa
from mistgrid.grid.mutable import KeyPool, map_servers
from mistgrid.grid.mutable_files import MutableFiles
from mistgrid.mutable.version import SigningKey
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


def _files(servers: list[HeldListing], total: int) -> MutableFiles:
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
