"""Mutable files on a real grid of storage server processes, under faults: servers stopped
in the middle of a read, a server left holding an older version, a corrupted share, two
clients writing at once, and forged or truncated shares."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import cast

import attrs
import pytest
import pytest_twisted
from twisted.internet import defer, reactor
from twisted.python.failure import Failure

from mistgrid.caps.mutable import MutableFormat, MutableWriteCap
from mistgrid.crypto import rsa
from mistgrid.errors import UncoordinatedWriteError
from mistgrid.gbs.nurl import Nurl
from mistgrid.grid import mutable
from mistgrid.mutable.version import SigningKey, encode_version
from mistgrid.net.connector import Connector
from mistgrid.storage import containers
from mistgrid.storage.backend import si_text
from mistgrid.storage.client import StorageClient
from mistgrid.testing.procs import Managed

from ..storage.conftest import start_mistgrid_server, wait_until_serving
from ..storage.gbs_client import GbsClient

SECRET = b"c" * 32
K, N = 3, 5


@attrs.define
class Node:
    directory: Path
    process: Managed
    nurl: Nurl

    def stop(self) -> None:
        self.process.stop()

    def start(self) -> None:
        port = self.nurl.port or 0
        self.process, self.nurl = start_mistgrid_server(self.directory, port)
        probe = GbsClient(self.nurl)
        wait_until_serving(probe, self.process)
        probe.close()

    def share_file(self, cap: MutableWriteCap, number: int) -> Path:
        text = si_text(cap.storage_index)
        return self.directory / "storage" / "shares" / text[:2] / text / str(number)

    def shares(self, cap: MutableWriteCap) -> list[int]:
        folder = self.share_file(cap, 0).parent
        return sorted(int(p.name) for p in folder.iterdir()) if folder.exists() else []


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Node]]:
    base = tmp_path_factory.mktemp("mutable-faults")
    started: list[Node] = []
    try:
        for i in range(N):
            process, nurl = start_mistgrid_server(base / f"s{i}")
            node = Node(base / f"s{i}", process, nurl)
            started.append(node)
            probe = GbsClient(nurl)
            wait_until_serving(probe, process)
            probe.close()
        yield started
    finally:
        for node in started:
            node.stop()


@pytest.fixture
def running(nodes: list[Node]) -> list[Node]:
    """Every node running (a test before may have stopped some)."""
    for node in nodes:
        if not node.process.alive():
            node.start()
    return nodes


def clients(nodes: list[Node]) -> list[StorageClient]:
    connector = Connector(reactor)
    return [StorageClient(n.nurl, connector, reactor, timeout=20) for n in nodes]


@pytest.mark.parametrize("fmt", list(MutableFormat))
@pytest_twisted.ensureDeferred
async def test_read_survives_n_minus_k_servers_stopping_mid_read(
        running: list[Node], fmt: MutableFormat) -> None:
    data = os.urandom(8 * 1024 * 1024 + 11)
    key = SigningKey.of(rsa.generate())
    cap = await mutable.create(clients(running), fmt, key, data, K, N, SECRET)
    readers = clients(running)
    mapped = await mutable.map_servers(readers, cap)  # the read has begun: all 5 answered
    assert len(mapped.map.found) == N
    # stop the servers of the shares the read would take first
    victims = {r.server for r in mapped.map.found if r.number < N - K}
    assert len(victims) == N - K
    for index in victims:
        running[index].stop()
    got = await mutable.retrieve(readers, cap, mapped=mapped)
    assert got.data == data
    assert {b.server for b in got.bad} == victims


@pytest.mark.parametrize("fmt", list(MutableFormat))
@pytest_twisted.ensureDeferred
async def test_newest_version_wins_and_bad_share_is_named(
        running: list[Node], fmt: MutableFormat) -> None:
    """One server misses the second version (stopped while it was written); one share of
    the newest version is corrupted on disk. A read returns the newest version, names the
    corrupted share, and the next write brings the stale server up to date."""
    key = SigningKey.of(rsa.generate())
    first, second = os.urandom(300_000), os.urandom(300_001)
    cap = await mutable.create(clients(running), fmt, key, first, K, N, SECRET)
    stale = running[0]
    stale_shares = stale.shares(cap)
    assert stale_shares
    stale.stop()
    await mutable.modify(clients(running[1:]), cap, lambda _: second, K, N, SECRET,
                         needs_current=False)
    stale.start()
    mapped = await mutable.map_servers(clients(running), cap)
    assert {r.prefix.seqnum for r in mapped.map.found if r.server == 0} == {1}
    # corrupt every newest-version copy of the lowest share number (the reader's first
    # choice), inside its share data
    victim = min(r.number for r in mapped.map.found if r.prefix.seqnum == 2)
    for index, node in enumerate(running):
        if any(r.server == index and r.number == victim and r.prefix.seqnum == 2
               for r in mapped.map.found):
            path = node.share_file(cap, victim)
            raw = bytearray(path.read_bytes())
            raw[containers.MUTABLE_DATA_OFFSET + 3000] ^= 0xFF
            path.write_bytes(bytes(raw))
    got = await mutable.retrieve(clients(running), cap)
    assert got.data == second and got.prefix.seqnum == 2
    assert any(b.number == victim and "hash" in b.reason for b in got.bad), got.bad
    # the same through a map for reading (a client's reads): two versions among the
    # guessed shares make it complete
    reading = await mutable.map_servers(clients(running), cap, N, complete=False)
    assert reading.complete
    got = await mutable.retrieve(clients(running), cap, mapped=reading)
    assert got.data == second and got.prefix.seqnum == 2
    await mutable.modify(clients(running), cap, lambda _: first, K, N, SECRET,
                         needs_current=False)
    mapped = await mutable.map_servers(clients(running), cap)
    assert {r.prefix.seqnum for r in mapped.map.found} == {3}
    assert (await mutable.retrieve(clients(running), cap)).data == first


def constant(data: bytes) -> Callable[[bytes | None], bytes]:
    return lambda _old: data


@pytest_twisted.ensureDeferred
async def test_two_clients_write_at_once(running: list[Node]) -> None:
    """Two clients (each its own connections) replace the same file at once, ten times:
    every read after is one writer's whole data."""
    key = SigningKey.of(rsa.generate())
    cap = await mutable.create(clients(running), MutableFormat.MDMF, key, b"start", K, N,
                               SECRET)
    one, two = clients(running), clients(running)
    for round_ in range(10):
        a, b = os.urandom(200_000), os.urandom(150_000)
        results = await defer.DeferredList([
            defer.Deferred.fromCoroutine(mutable.modify(
                one, cap, constant(a), K, N, SECRET, needs_current=False)),
            defer.Deferred.fromCoroutine(mutable.modify(
                two, cap, constant(b), K, N, b"other client".ljust(32),
                needs_current=False))], consumeErrors=True)
        for ok, result in results:
            if not ok:
                cast(Failure, result).trap(UncoordinatedWriteError)  # type: ignore[no-untyped-call]
        got = await mutable.retrieve(clients(running), cap)
        assert got.data in (a, b), round_


@pytest_twisted.ensureDeferred
async def test_forged_and_truncated_shares_are_routed_around(running: list[Node]) -> None:
    """Where real shares were: one signed by another key, one with a flipped signature
    byte, one cut short. The read names each and returns the file; servers and client keep
    working (a write afterwards replaces all three)."""
    key = SigningKey.of(rsa.generate())
    data = os.urandom(50_000)
    cap = await mutable.create(clients(running), MutableFormat.SDMF, key, data, 2, N,
                               SECRET)
    holders = {n: node for node in running for n in node.shares(cap)}
    other = SigningKey.of(rsa.generate())
    forged = encode_version(other.cap(MutableFormat.SDMF), other, os.urandom(50_000), 9,
                            2, N)[0].pack()
    start = containers.MUTABLE_DATA_OFFSET

    def rewrite(number: int, change: Callable[[bytes], bytes]) -> None:
        path = holders[number].share_file(cap, number)
        raw = path.read_bytes()
        path.write_bytes(raw[:start] + change(raw[start:start + len(forged) + 10]))

    rewrite(0, lambda share: forged)
    rewrite(1, lambda share: share[:107 + 294 + 10] + bytes([share[411] ^ 1])
            + share[412:])
    rewrite(2, lambda share: share[:600])
    got = await mutable.retrieve(clients(running), cap)
    assert got.data == data
    reasons = {b.number: b.reason for b in got.bad}
    assert "verification key" in reasons[0] and "signature" in reasons[1], reasons
    assert "truncated" in reasons[2] or "length" in reasons[2], reasons
    again = os.urandom(1000)
    await mutable.modify(clients(running), cap, lambda _: again, 2, N, SECRET,
                         needs_current=False)
    got = await mutable.retrieve(clients(running), cap)
    assert got.data == again and not got.bad
    mapped = await mutable.map_servers(clients(running), cap)
    assert len(mapped.map.found) == N and not mapped.map.bad


@pytest.mark.parametrize("fmt", list(MutableFormat))
@pytest_twisted.ensureDeferred
async def test_a_server_lost_after_the_map_costs_no_share(running: list[Node],
                                                          fmt: MutableFormat) -> None:
    """A server that stops between the map and the write: its shares go to the others
    and all N shares of the new version exist."""
    key = SigningKey.of(rsa.generate())
    cap = await mutable.create(clients(running), fmt, key, b"first", K, N, SECRET)
    servers = clients(running)
    mapped = await mutable.map_servers(servers, cap)
    running[2].stop()
    done = await mutable.publish(servers, cap, key, os.urandom(70_000), K, N, SECRET,
                                 mapped)
    assert sorted(done.placed) == list(range(N))
    assert 2 not in {s for holders in done.placed.values() for s in holders}
