"""Mutable files (SDMF and MDMF) between mistgrid and real Tahoe-LAFS 1.20 clients, on
mistgrid storage servers, Tahoe storage servers and a grid of both.

Each direction: one side makes the file, the other reads it, replaces it or writes into the
middle of it, and the first reads the result back byte for byte.
"""

from __future__ import annotations

import io
import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
import pytest_twisted
from twisted.internet import reactor

from mistgrid.caps.mutable import MutableCap, MutableFormat, MutableWriteCap, parse_mutable_cap
from mistgrid.crypto import rsa
from mistgrid.gbs.nurl import Nurl
from mistgrid.grid import mutable
from mistgrid.grid.mutable import KeyPool
from mistgrid.grid.mutable_files import MutableFiles
from mistgrid.mutable.version import SigningKey
from mistgrid.net.connector import Connector
from mistgrid.storage.announcement import tub_id
from mistgrid.storage.client import StorageClient
from mistgrid.storage.tls import load_certificate
from mistgrid.testing.procs import Managed

from ..storage.conftest import start_mistgrid_server, wait_until_serving
from ..storage.gbs_client import GbsClient
from .tahoe import TahoeClientNode, start_client_node, start_storage_node

LEASE_SECRET = b"l" * 32
MIB = 1024 * 1024


@attrs.frozen
class Grid:
    shape: str
    client: TahoeClientNode
    servers: list[tuple[Path, Nurl]]  # (node.pem, NURL)

    def cli(self, *args: str) -> bytes:
        return self.client.cli(*args)

    def clients(self) -> list[StorageClient]:
        connector = Connector(reactor)
        return [StorageClient(nurl, connector, reactor,
                              tub_id=tub_id(load_certificate(pem)))
                for pem, nurl in self.servers]

    def files(self) -> MutableFiles:
        """What a mistgrid node's web API uses (streamed MDMF above 4 MiB, ranged reads,
        in-place writes)."""
        servers = self.clients()
        return MutableFiles(lambda: servers, 2, 3, LEASE_SECRET, None, KeyPool(0, None))


    def web(self, method: str, path: str, body: bytes | None = None) -> bytes:
        base = (self.client.directory / "node.url").read_text().strip().rstrip("/")
        request = urllib.request.Request(base + path, data=body, method=method)
        with urllib.request.urlopen(request, timeout=300) as response:
            result: bytes = response.read()
        return result


async def read_all(files: MutableFiles, cap: MutableCap, start: int = 0,
                   end: int | None = None) -> bytes:
    out = bytearray()

    def keep(chunk: bytes) -> None:
        out.extend(chunk)

    await files.read(cap, keep, lambda size: (start, size if end is None else end))
    return bytes(out)


@pytest.fixture(scope="module", params=["mistgrid", "mixed", "tahoe"])
def grid(request: pytest.FixtureRequest,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[Grid]:
    """Three storage servers (mistgrid, Tahoe, or two mistgrid and one Tahoe) and a Tahoe
    1.20 client node that knows them (k=2, N=3)."""
    shape = request.param
    base = tmp_path_factory.mktemp(f"mutable-{shape}")
    kinds = {"mistgrid": "mmm", "mixed": "mmt", "tahoe": "ttt"}[shape]
    processes: list[Managed] = []
    servers: list[tuple[Path, Nurl]] = []
    client = None
    try:
        for i, kind in enumerate(kinds):
            directory = base / f"server{i}"
            if kind == "m":
                process, nurl = start_mistgrid_server(directory)
                processes.append(process)
                probe = GbsClient(nurl)
                wait_until_serving(probe, process)
                probe.close()
            else:
                node = start_storage_node(directory, nickname=f"tahoe{i}")
                processes.append(node.process)
                nurl = node.nurl()
            servers.append((directory / "private" / "node.pem", nurl))
        client = start_client_node(base / "tahoe-client",
                                   [(pem, nurl, None) for pem, nurl in servers], 2, 3, 3)
        yield Grid(shape, client, servers)
    finally:
        if client is not None:
            client.stop()
        for process in processes:
            process.stop()


SIZES = [0, 56, 1024, 10 * MIB]


def _sizes(grid: Grid) -> list[int]:
    return SIZES


@pytest.mark.parametrize("fmt", list(MutableFormat))
@pytest_twisted.ensureDeferred
async def test_mistgrid_makes_tahoe_changes(grid: Grid, fmt: MutableFormat) -> None:
    """mistgrid creates; Tahoe reads, replaces and writes at an offset; mistgrid reads each
    of Tahoe's versions."""
    clients = grid.clients()
    files = grid.files()
    for size in _sizes(grid):
        data = os.urandom(size)
        key = SigningKey.of(rsa.generate())
        cap = await files.create(fmt, io.BytesIO(data), size, key)
        text = cap.to_string()
        assert grid.cli("get", text) == data, (fmt, size)
        replacement = os.urandom(size + 100)
        grid.web("PUT", f"/uri/{text}", replacement)
        got = await mutable.retrieve(clients, cap)
        assert got.data == replacement and got.prefix.seqnum == 2
        patch = b"tahoe wrote this in the middle"
        offset = len(replacement) // 2
        grid.web("PUT", f"/uri/{text}?offset={offset}", patch)
        expected = replacement[:offset] + patch + replacement[offset + len(patch):]
        got = await mutable.retrieve(clients, cap.read_only())
        assert got.data == expected, (fmt, size)
        assert got.prefix.format is fmt and not got.bad
        assert await read_all(files, cap, offset - 5, offset + 100) == \
            expected[offset - 5:offset + 100]


@pytest.mark.parametrize("fmt", list(MutableFormat))
@pytest_twisted.ensureDeferred
async def test_tahoe_makes_mistgrid_changes(grid: Grid, tmp_path: Path,
                                            fmt: MutableFormat) -> None:
    """Tahoe creates; mistgrid reads it, changes the middle; Tahoe reads the result."""
    clients = grid.clients()
    for size in _sizes(grid):
        data = os.urandom(size)
        source = tmp_path / "in"
        source.write_bytes(data)
        text = grid.cli("put", "--mutable", f"--format={fmt.value.lower()}",
                        str(source)).decode().strip()
        cap = parse_mutable_cap(text)
        assert isinstance(cap, MutableWriteCap) and cap.format is fmt
        got = await mutable.retrieve(clients, cap)
        assert got.data == data, (fmt, size)
        middle = len(data) // 2
        patch = b"mistgrid wrote this"
        expected = data[:middle] + patch + data[middle + len(patch):]
        await grid.files().write_at(cap, middle, patch)  # MDMF: in place
        assert grid.cli("get", text) == expected, (fmt, size)
        assert await read_all(grid.files(), cap, max(0, middle - 3)) == \
            expected[max(0, middle - 3):]
        bigger = os.urandom(6 * MIB)  # MDMF: streamed
        await grid.files().replace(cap, io.BytesIO(bigger), len(bigger))
        assert grid.cli("get", text) == bigger, (fmt, size)
