"""A CHK download's round trips: the primary shares' first reads go out while the servers
say which shares they hold, so a small file takes one round trip; a wrong guess only
costs a refused read."""

from __future__ import annotations

import io
import os
from typing import cast

import pytest_twisted
from twisted.internet import defer

from mistgrid.caps.immutable import ChkCap
from mistgrid.encoding.params import EncodingParams
from mistgrid.grid.downloader import download
from mistgrid.placement.happiness import permuted
from mistgrid.storage.client import StorageClient
from mistgrid.testing.memory import encode_bytes


class HeldServer:
    """Shares in memory; listings answered only on `release()`."""

    def __init__(self, index: int) -> None:
        self.permutation_seed = bytes([index]) * 32
        self.shares: dict[int, bytes] = {}
        self.reads: list[tuple[int, int, int]] = []
        self.refused = 0
        self.held: list[defer.Deferred[set[int]]] = []

    async def list_shares(self, si: bytes) -> set[int]:
        waiting: defer.Deferred[set[int]] = defer.Deferred()
        self.held.append(waiting)
        return await waiting

    def release(self) -> None:
        for waiting in self.held:
            waiting.callback(set(self.shares))

    async def read(self, si: bytes, number: int, offset: int, length: int) -> bytes:
        if number not in self.shares:
            self.refused += 1
            raise KeyError(number)
        self.reads.append((number, offset, length))
        return self.shares[number][offset:offset + length]


def grid(data: bytes, backwards: bool = False) -> tuple[ChkCap, list[HeldServer]]:
    cap, shares = encode_bytes(data, EncodingParams(3, 10, 131072))
    assert isinstance(cap, ChkCap)
    servers = [HeldServer(i) for i in range(4)]
    order = permuted([s.permutation_seed for s in servers], cap.storage_index)
    if backwards:
        order.reverse()
    for number, share in enumerate(shares):  # round-robin, as the uploader places them
        servers[order[number % len(order)]].shares[number] = share
    return cap, servers


@pytest_twisted.ensureDeferred
async def test_a_small_file_takes_one_round_trip() -> None:
    data = os.urandom(20000)
    cap, servers = grid(data)
    sink = io.BytesIO()
    got = defer.Deferred.fromCoroutine(download(cap, cast(list[StorageClient], servers),
                                                sink))
    # nobody has said which shares they hold, and shares 0, 1, 2 are being read
    assert sorted(n for s in servers for n, _, _ in s.reads) == [0, 1, 2]
    for server in servers:
        server.release()
    await got
    assert sink.getvalue() == data
    assert len([r for s in servers for r in s.reads]) == 3  # nothing read twice
    assert sum(s.refused for s in servers) == 0


@pytest_twisted.ensureDeferred
async def test_wrong_guesses_are_read_again_as_listed() -> None:
    data = os.urandom(300000)  # 3 segments: header first, then the rest
    cap, servers = grid(data, backwards=True)
    sink = io.BytesIO()
    got = defer.Deferred.fromCoroutine(download(cap, cast(list[StorageClient], servers),
                                                sink))
    for server in servers:
        server.release()
    await got
    assert sink.getvalue() == data
    assert sum(s.refused for s in servers) == 3
