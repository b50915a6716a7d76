"""Interop with Tahoe-LAFS 1.20 clients: a real Tahoe client node (static
private/servers.yaml with our NURLs) stores and reads through mistgrid storage servers,
including a mutable file and a directory; and files cross both ways between a Tahoe client
and a mistgrid client."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
import pytest_twisted
from twisted.internet import reactor

from mistgrid.caps import base32, parse_cap
from mistgrid.caps.immutable import ChkCap, LiteralCap
from mistgrid.encoding.params import EncodingParams
from mistgrid.fileutil import read_convergence
from mistgrid.gbs.nurl import Nurl
from mistgrid.grid.downloader import download
from mistgrid.grid.uploader import upload
from mistgrid.net.connector import Connector
from mistgrid.storage.client import StorageClient
from mistgrid.storage.containers import HEADER

from ..storage.conftest import start_mistgrid_server, wait_until_serving
from ..storage.gbs_client import GbsClient
from .tahoe import TahoeClientNode, start_client_node


@attrs.frozen
class Grid:
    client: TahoeClientNode  # a Tahoe 1.20 client node that uses the servers below
    nurls: list[Nurl]  # three mistgrid storage servers
    shares: list[Path]  # where each keeps its shares

    def cli(self, *args: str) -> bytes:
        return self.client.cli(*args)


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Grid]:
    """Three mistgrid storage servers and a Tahoe 1.20 client node that knows them."""
    base = tmp_path_factory.mktemp("interop")
    servers = [start_mistgrid_server(base / f"server{i}") for i in range(3)]
    client = None
    try:
        for process, nurl in servers:
            probe = GbsClient(nurl)
            wait_until_serving(probe, process)
            probe.close()
        client = start_client_node(
            base / "tahoe-client",
            [(base / f"server{i}" / "private" / "node.pem", nurl, None)
             for i, (_, nurl) in enumerate(servers)], 2, 3, 3)
        yield Grid(client, [n for _, n in servers],
                   [base / f"server{i}" / "storage" / "shares" for i in range(3)])
    finally:
        if client is not None:
            client.stop()
        for process, _ in servers:
            process.stop()


@pytest.mark.parametrize("size", [0, 1024, 10 * 1024 * 1024])
def test_tahoe_client_immutable(grid: Grid, tmp_path: Path, size: int) -> None:
    """`tahoe put` then `tahoe get` through mistgrid servers (0 B, 1 KiB, 10 MiB)."""
    data = os.urandom(size)
    source = tmp_path / "in"
    source.write_bytes(data)
    cap = grid.cli("put", str(source)).decode().strip()
    assert cap.startswith("URI:LIT:" if size <= 55 else "URI:CHK:")
    assert grid.cli("get", cap) == data


def test_tahoe_client_mutable_and_directory(grid: Grid, tmp_path: Path) -> None:
    """A mutable file (written twice) and a directory live on mistgrid servers."""
    source = tmp_path / "in"
    source.write_bytes(b"first version")
    mutable = grid.cli("put", "--mutable", str(source)).decode().strip()
    assert mutable.startswith("URI:SSK:")
    source.write_bytes(b"second, longer version" * 1000)
    grid.cli("put", str(source), mutable)
    assert grid.cli("get", mutable) == b"second, longer version" * 1000
    directory = grid.cli("mkdir").decode().strip()
    assert directory.startswith("URI:DIR2:")
    grid.cli("cp", str(source), f"{directory}/file.bin")
    assert grid.cli("ls", directory).decode().split() == ["file.bin"]
    assert grid.cli("get", f"{directory}/file.bin") == b"second, longer version" * 1000


def _clients(grid: Grid) -> list[StorageClient]:
    connector = Connector(reactor)
    return [StorageClient(n, connector, reactor) for n in grid.nurls]


@pytest.mark.parametrize("size", [0, 1024, 10 * 1024 * 1024])
@pytest_twisted.ensureDeferred
async def test_mistgrid_writes_tahoe_reads(grid: Grid, size: int) -> None:
    """A mistgrid client stores; `tahoe get` reads the cap back."""
    data = os.urandom(size)
    cap = await upload(io.BytesIO(data), size, _clients(grid), EncodingParams(2, 3), 3,
                       os.urandom(16))
    assert grid.cli("get", cap.to_string()) == data


@pytest.mark.parametrize("size", [0, 1024, 10 * 1024 * 1024])
@pytest_twisted.ensureDeferred
async def test_tahoe_writes_mistgrid_reads(grid: Grid, tmp_path: Path, size: int) -> None:
    """`tahoe put` stores; a mistgrid client reads the cap back."""
    data = os.urandom(size)
    source = tmp_path / "in"
    source.write_bytes(data)
    cap = parse_cap(grid.cli("put", str(source)).decode().strip())
    assert isinstance(cap, (ChkCap, LiteralCap))
    sink = io.BytesIO()
    await download(cap, _clients(grid), sink)
    assert sink.getvalue() == data


@pytest_twisted.ensureDeferred
async def test_same_convergence_secret_same_cap(grid: Grid, tmp_path: Path) -> None:
    """With the Tahoe client's own private/convergence (32 bytes, as Tahoe writes it), a
    mistgrid upload of the same bytes gives exactly the cap `tahoe put` gives."""
    secret_file = grid.client.directory / "private" / "convergence"
    secret = read_convergence(secret_file)
    assert len(secret) == 32
    data = os.urandom(100_000)
    source = tmp_path / "in"
    source.write_bytes(data)
    tahoe_cap = grid.cli("put", str(source)).decode().strip()
    cap = await upload(io.BytesIO(data), len(data), _clients(grid), EncodingParams(2, 3), 3,
                       secret)
    assert cap.to_string() == tahoe_cap


@pytest_twisted.ensureDeferred
async def test_a_repeat_upload_writes_no_extra_share(grid: Grid, tmp_path: Path) -> None:
    """Tahoe stores a file; a mistgrid client uploads the same bytes with the same
    convergence secret (the same storage index): every server says which shares it
    already holds (all of them, as Tahoe's servers do), the uploader counts them, and no
    server ends up with a second copy of any share (it used to: 2-4 extra copies); the
    repeat upload adds its lease to the shares already there (it used to keep one)."""
    secret = read_convergence(grid.client.directory / "private" / "convergence")
    data = os.urandom(300_000)
    source = tmp_path / "in"
    source.write_bytes(data)
    tahoe_cap = parse_cap(grid.cli("put", str(source)).decode().strip())
    assert isinstance(tahoe_cap, ChkCap)

    def held() -> dict[int, set[str]]:
        prefix = base32.b2a(tahoe_cap.storage_index)
        return {i: {p.name for p in root.glob(f"*/{prefix}/*") if p.is_file()}
                for i, root in enumerate(grid.shares)}

    before = held()
    assert sum(len(v) for v in before.values()) == 3
    cap = await upload(io.BytesIO(data), len(data), _clients(grid), EncodingParams(2, 3), 3,
                       secret)
    assert cap.to_string() == tahoe_cap.to_string()
    assert held() == before
    # ... and each share now carries the second uploader's lease beside Tahoe's
    prefix = base32.b2a(tahoe_cap.storage_index)
    for root in grid.shares:
        for share in root.glob(f"*/{prefix}/*"):
            _version, _size, leases = HEADER.unpack(share.read_bytes()[:HEADER.size])
            assert leases == 2, share
