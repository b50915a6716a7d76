"""Two clients adding 100 different names each to one directory at once, on a real grid
of storage server processes: all 200 entries are there at the end (each link is an
idempotent change, applied again on the newer table after an uncoordinated write)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet import defer, reactor

from mistgrid.caps.mutable import MutableFormat
from mistgrid.gbs.nurl import Nurl
from mistgrid.grid.directories import Directories
from mistgrid.grid.mutable import KeyPool
from mistgrid.grid.mutable_files import MutableFiles
from mistgrid.net.connector import Connector
from mistgrid.storage.client import StorageClient
from mistgrid.testing.procs import Managed

from ..storage.conftest import start_mistgrid_server, wait_until_serving
from ..storage.gbs_client import GbsClient


@pytest.fixture(scope="module")
def nurls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Nurl]]:
    base = tmp_path_factory.mktemp("dir-concurrency")
    started: list[tuple[Managed, Nurl]] = []
    try:
        for i in range(3):
            process, nurl = start_mistgrid_server(Path(base) / f"s{i}")
            started.append((process, nurl))
            probe = GbsClient(nurl)
            wait_until_serving(probe, process)
            probe.close()
        yield [n for _, n in started]
    finally:
        for process, _ in started:
            process.stop()


def client(nurls: list[Nurl], secret: bytes) -> Directories:
    connector = Connector(reactor)
    servers = [StorageClient(n, connector, reactor) for n in nurls]
    return Directories(MutableFiles(lambda: servers, 2, 3, secret, None, KeyPool(0, None)))


@pytest_twisted.ensureDeferred
async def test_two_clients_add_200_names(nurls: list[Nurl]) -> None:
    one, two = client(nurls, b"1" * 32), client(nurls, b"2" * 32)
    directory = await one.mkdir(MutableFormat.SDMF)
    chk = "URI:LIT:nbswy3dp"

    async def add(dirs: Directories, prefix: str) -> None:
        for i in range(100):
            await dirs.link(directory, f"{prefix}-{i:03d}", None, chk)

    await defer.gatherResults([defer.Deferred.fromCoroutine(add(one, "a")),
                               defer.Deferred.fromCoroutine(add(two, "b"))])
    names = sorted(await one.children(directory))
    assert names == sorted([f"a-{i:03d}" for i in range(100)] +
                           [f"b-{i:03d}" for i in range(100)])
