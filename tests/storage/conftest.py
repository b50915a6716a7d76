"""Storage servers for the contract suite: a mistgrid server and a real Tahoe-LAFS 1.20
storage node, each a separate process on 127.0.0.1, reached over GBS with SPKI pinning."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mistgrid.gbs.nurl import Nurl, parse_nurl
from mistgrid.testing.procs import Managed, wait_for

from ..interop.tahoe import start_storage_node
from .gbs_client import GbsClient


def wait_until_serving(client: GbsClient, process: Managed) -> None:
    def ready() -> bool | None:
        try:
            return True if client.request("GET", "/storage/v1/version").status == 200 \
                else None
        except OSError:
            return None

    wait_for(ready, 60, "the storage server to answer", watch=[process])


def start_mistgrid_server(directory: Path, port: int = 0,
                          extra: tuple[str, ...] = ()) -> tuple[Managed, Nurl]:
    (directory / "nurl").unlink(missing_ok=True)  # from a previous run in this directory
    process = Managed("mistgrid storage server",
                      [sys.executable, "-m", "mistgrid.storage.standalone",
                       "--dir", str(directory), "--port", str(port), *extra],
                      directory / "run.log")
    nurl_file = directory / "nurl"
    wait_for(lambda: True if nurl_file.exists() else None, 60, "the server's NURL",
             watch=[process])
    return process, parse_nurl(nurl_file.read_text())


@pytest.fixture(scope="session")
def mistgrid_server(tmp_path_factory: pytest.TempPathFactory
                    ) -> Iterator[tuple[GbsClient, Path]]:
    """A mistgrid server: a client for it, and where it keeps its shares."""
    directory = tmp_path_factory.mktemp("mistgrid-storage")
    process, nurl = start_mistgrid_server(directory)
    client = GbsClient(nurl)
    try:
        wait_until_serving(client, process)
        yield client, directory / "storage" / "shares"
    finally:
        client.close()
        process.stop()


@pytest.fixture(scope="session")
def mistgrid_storage(mistgrid_server: tuple[GbsClient, Path]) -> GbsClient:
    return mistgrid_server[0]


@pytest.fixture(scope="session")
def tahoe_server(tmp_path_factory: pytest.TempPathFactory
                 ) -> Iterator[tuple[GbsClient, Path]]:
    """A Tahoe-LAFS 1.20 storage node: a client for it, and where it keeps its shares."""
    node = start_storage_node(tmp_path_factory.mktemp("tahoe-storage") / "node")
    client = GbsClient(node.nurl())
    try:
        wait_until_serving(client, node.process)
        yield client, node.directory / "storage" / "shares"
    finally:
        client.close()
        node.stop()


@pytest.fixture(scope="session")
def tahoe_storage(tahoe_server: tuple[GbsClient, Path]) -> GbsClient:
    return tahoe_server[0]


@pytest.fixture(params=["mistgrid", "tahoe-1.20"])
def storage(request: pytest.FixtureRequest) -> GbsClient:
    """Each contract test runs against both implementations."""
    name = "mistgrid_storage" if request.param == "mistgrid" else "tahoe_storage"
    client: GbsClient = request.getfixturevalue(name)
    return client
