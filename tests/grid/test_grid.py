"""Upload and download through real storage server processes over GBS: mistgrid servers,
Tahoe-LAFS 1.20 servers, and servers failing."""

from __future__ import annotations

import io
import os
import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any, cast

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.web.client import ResponseNeverReceived

from mistgrid.caps import ChkCap, LiteralCap, parse_cap
from mistgrid.encoding.params import EncodingParams
from mistgrid.errors import MistgridError, NotEnoughSharesError
from mistgrid.gbs.nurl import Nurl
from mistgrid.grid.downloader import download, locate, preferred
from mistgrid.grid.uploader import UploadUnhappyError, upload
from mistgrid.net.connector import Connector
from mistgrid.policy.anonymity import Direct, Route, Socks
from mistgrid.storage.client import HEAD_START, StorageClient, UploadSecrets
from mistgrid.testing.procs import Managed, free_ports
from mistgrid.testing.sinks import ThreadedFileSink

from ..interop.tahoe import TahoeClientNode, start_client_node, start_storage_node
from ..storage.conftest import start_mistgrid_server, wait_until_serving
from ..storage.gbs_client import GbsClient


def clients(nurls: list[Nurl]) -> list[StorageClient]:
    connector = Connector(reactor)
    return [StorageClient(n, connector, reactor) for n in nurls]


@pytest.fixture(scope="module")
def four_servers(tmp_path_factory: pytest.TempPathFactory
                 ) -> Iterator[list[tuple[Managed, Nurl]]]:
    servers = [start_mistgrid_server(tmp_path_factory.mktemp(f"grid{i}")) for i in range(4)]
    try:
        for process, nurl in servers:
            probe = GbsClient(nurl)
            wait_until_serving(probe, process)
            probe.close()
        yield servers
    finally:
        for process, _ in servers:
            process.stop()


async def round_trip(storage: list[StorageClient], data: bytes, params: EncodingParams,
                     happy: int) -> tuple[Any, bytes]:
    cap = await upload(io.BytesIO(data), len(data), storage, params, happy, os.urandom(16))
    sink = io.BytesIO()
    await download(cap, storage, sink)
    return cap, sink.getvalue()


@pytest.mark.parametrize("size", [0, 1024, 3 * 1024 * 1024 + 5])
@pytest_twisted.ensureDeferred
async def test_round_trip_four_servers(four_servers: list[tuple[Managed, Nurl]],
                                       size: int) -> None:
    """2-of-4 over four mistgrid servers: one share each, read back byte for byte."""
    storage = clients([n for _, n in four_servers])
    data = os.urandom(size)
    cap, back = await round_trip(storage, data, EncodingParams(2, 4, 1024 * 1024), 4)
    assert back == data
    if isinstance(cap, ChkCap):
        holders = [await s.list_shares(cap.storage_index) for s in storage]
        assert sorted(len(h) for h in holders) == [1, 1, 1, 1]


@pytest_twisted.ensureDeferred
async def test_download_survives_missing_servers(four_servers: list[tuple[Managed, Nurl]],
                                                 tmp_path: Path) -> None:
    """With N-k servers unreachable the download still completes; below k it says how
    many shares were found and needed."""
    storage = clients([n for _, n in four_servers])
    data = os.urandom(200_000)
    cap = await upload(io.BytesIO(data), len(data), storage, EncodingParams(2, 4), 4, None)
    dead = clients([Nurl("pb", n.spki_hash, "127.0.0.1", 1, n.swissnum)
                    for _, n in four_servers[:2]])
    sink = io.BytesIO()
    await download(cap, dead + storage[2:], sink)
    assert sink.getvalue() == data
    dead3 = dead + clients([Nurl("pb", four_servers[2][1].spki_hash, "127.0.0.1", 1, "x")])
    with pytest.raises(NotEnoughSharesError, match="found 1, need 2"):
        await download(cap, dead3 + storage[3:], io.BytesIO())


@pytest_twisted.ensureDeferred
async def test_unhappy_upload_fails_clearly(four_servers: list[tuple[Managed, Nurl]]) -> None:
    """Happiness 4 with two servers reachable: refused, naming both numbers, and nothing
    is left listed on the servers that were reachable."""
    storage = clients([n for _, n in four_servers])
    dead = clients([Nurl("pb", n.spki_hash, "127.0.0.1", 1, n.swissnum)
                    for _, n in four_servers[:2]])
    data = os.urandom(10_000)
    with pytest.raises(UploadUnhappyError, match="only 2 servers, need 4"):
        await upload(io.BytesIO(data), len(data), dead + storage[2:], EncodingParams(2, 4), 4,
                     b"k" * 16)
    cap = await upload(io.BytesIO(data), len(data), storage, EncodingParams(2, 4), 4, b"k" * 16)
    assert isinstance(cap, ChkCap)


@pytest_twisted.ensureDeferred
async def test_pipelined_round_trip_with_threads(four_servers: list[tuple[Managed, Nurl]],
                                                 tmp_path: Path) -> None:
    """With an executor the upload reads and encodes on other threads while earlier
    chunks' writes are on the wire, and the download checks and decodes on the pool and
    writes the file on a thread of its own: the file comes back byte for byte (3-of-10,
    several chunks and a short tail), and the download reads from k distinct servers."""
    storage = clients([n for _, n in four_servers])
    source = tmp_path / "source"
    data = os.urandom(5 * 1024 * 1024 + 12345)
    source.write_bytes(data)
    with ThreadPoolExecutor(2) as pool:
        with source.open("rb") as handle:
            cap = await upload(handle, len(data), storage, EncodingParams(3, 10), 4,
                               os.urandom(16), executor=pool)
        assert isinstance(cap, ChkCap)
        target = tmp_path / "target"
        with target.open("wb") as out:
            sink = ThreadedFileSink(out, reactor, limit=256 * 1024)
            written = await download(cap, storage, cast(IO[bytes], sink), executor=pool)
            sink.close()
    assert written == len(data) and target.read_bytes() == data
    holders = await locate(storage, cap.storage_index)
    assert len(holders) == 10
    first = preferred(holders, 3)[:3]
    assert sorted(first) == [0, 1, 2]  # primary shares, here on three different servers
    assert len({id(holders[n]) for n in first}) == 3


def test_preferred_spreads_over_servers() -> None:
    """Shares to try: primary ones first, one per server while servers are left."""
    a, b, c = object(), object(), object()
    found: dict[int, Any] = {0: a, 4: a, 8: a, 1: b, 5: b, 2: c, 6: c, 3: a}
    assert preferred(found, 3) == [0, 1, 2, 3, 5, 6, 4, 8]
    only_secondary: dict[int, Any] = {5: a, 7: a, 6: b}
    assert preferred(only_secondary, 2) == [5, 6, 7]


@pytest.fixture(scope="module")
def tahoe_grid(tmp_path_factory: pytest.TempPathFactory
               ) -> Iterator[tuple[list[Nurl], TahoeClientNode]]:
    """Three Tahoe-LAFS 1.20 storage nodes and a Tahoe client node that uses them."""
    nodes = [start_storage_node(tmp_path_factory.mktemp(f"tahoe{i}") / "node")
             for i in range(3)]
    client = None
    try:
        nurls = [node.nurl() for node in nodes]
        for node, nurl in zip(nodes, nurls, strict=True):
            probe = GbsClient(nurl)
            wait_until_serving(probe, node.process)
            probe.close()
        client = start_client_node(
            tmp_path_factory.mktemp("tahoe-client") / "node",
            [(node.directory / "private" / "node.pem", nurl,
              (node.directory / "private" / "storage.furl").read_text().strip())
             for node, nurl in zip(nodes, nurls, strict=True)], 2, 3, 3)
        yield nurls, client
    finally:
        if client is not None:
            client.stop()
        for node in nodes:
            node.stop()


@pytest.mark.parametrize("size", [0, 1024, 10 * 1024 * 1024])
@pytest_twisted.ensureDeferred
async def test_mistgrid_client_on_tahoe_servers(
        tahoe_grid: tuple[list[Nurl], TahoeClientNode], tmp_path: Path, size: int) -> None:
    """A mistgrid client stores a 2-of-3 file on three Tahoe-LAFS 1.20 storage servers;
    a Tahoe client reads the cap; the reverse (Tahoe stores, mistgrid reads) too."""
    nurls, tahoe_client = tahoe_grid
    storage = clients(nurls)
    data = os.urandom(size)
    cap, back = await round_trip(storage, data, EncodingParams(2, 3), 3)
    assert back == data
    assert tahoe_client.cli("get", cap.to_string()) == data
    source = tmp_path / "from-tahoe"
    source.write_bytes(data[::-1])
    tahoe_cap = parse_cap(tahoe_client.cli("put", str(source)).decode().strip())
    assert isinstance(tahoe_cap, (ChkCap, LiteralCap))
    sink = io.BytesIO()
    await download(tahoe_cap, storage, sink)
    assert sink.getvalue() == data[::-1]


@pytest_twisted.ensureDeferred
async def test_client_retries_a_connection_its_server_dropped(tmp_path: Path) -> None:
    """A kept-alive connection goes stale when its server restarts. The restart happens
    while the reactor is blocked, so the client has not yet read the old connection's end
    and sends the next request (a POST, which Twisted's pool never repeats itself) on it:
    the request fails, and StorageClient repeats it on a new connection."""
    (port,) = free_ports(1)
    process, nurl = start_mistgrid_server(tmp_path / "server", port)
    try:
        probe = GbsClient(nurl)
        wait_until_serving(probe, process)
        probe.close()
        client = StorageClient(nurl, Connector(reactor), reactor)
        await client.version()  # a pooled connection now exists
        process.stop()  # blocking: the reactor does not run until the server is back
        process, again = start_mistgrid_server(tmp_path / "server", port)
        assert again == nurl
        probe = GbsClient(nurl)
        wait_until_serving(probe, process)
        probe.close()
        secrets = UploadSecrets(os.urandom(32), os.urandom(32), os.urandom(32))
        assert await client.allocate(os.urandom(16), {0}, 100, secrets) == (set(), {0})
        assert client.retries == 1
        client.close()
    finally:
        process.stop()


async def test_client_falls_back_to_a_server_address_that_answers(
        four_servers: list[tuple[Managed, Nurl]]) -> None:
    """A server announced at several addresses (AUTO lists every interface, some of which
    a client may not reach): the client tries them in order, uses the first that answers,
    and goes to it first from then on. Here the first address is a loopback port nobody
    listens on (connection refused), the second the real server."""
    nurl = four_servers[0][1]
    (dead,) = free_ports(1)
    unreachable = Nurl(nurl.scheme, nurl.spki_hash, "127.0.0.1", dead, nurl.swissnum)
    connector = Connector(reactor)
    client = StorageClient(unreachable, connector, reactor, persistent=False, fallbacks=[nurl])
    assert client.reached == unreachable
    version = await client.version()
    assert b"http://allmydata.org/tahoe/protocols/storage/v1" in version
    assert client.reached == nurl and client.route == "direct"
    await client.version()
    assert client.reached == nurl
    # With no address answering, the error names each one.
    lonely = StorageClient(unreachable, connector, reactor, fallbacks=[
        Nurl(nurl.scheme, nurl.spki_hash, "127.0.0.2", dead, nurl.swissnum)])
    with pytest.raises(Exception, match="no address of this server answered") as info:
        await lonely.version()
    assert "127.0.0.1" in str(info.value) and "127.0.0.2" in str(info.value)
    assert nurl.swissnum not in str(info.value)
    with pytest.raises(MistgridError, match="names another server"):
        StorageClient(nurl, connector, reactor, fallbacks=[
            Nurl(nurl.scheme, nurl.spki_hash, "127.0.0.1", dead, "other")])


async def test_an_address_that_hangs_gets_a_head_start_then_company(
        four_servers: list[tuple[Managed, Nurl]], monkeypatch: pytest.MonkeyPatch) -> None:
    """The first address is reached through a 'proxy' that accepts the TCP connection and
    never answers (a listening socket nobody accepts from): its attempt hangs. After its
    head start the next address is tried alongside it, answers, and wins; the hanging
    attempt is cancelled."""
    monkeypatch.setitem(HEAD_START, "socks", 0.5)
    nurl = four_servers[0][1]
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        proxy = f"tcp:127.0.0.1:{silent.getsockname()[1]}"
        hanging = Nurl(nurl.scheme, nurl.spki_hash, "hangs.example", 1, nurl.swissnum)

        def routes(host: str, port: int) -> Route:
            return Socks(proxy, "socks") if host == "hangs.example" else Direct()

        client = StorageClient(hanging, Connector(reactor, routes), reactor, persistent=False,
                               fallbacks=[nurl])
        await client.version()
        assert client.reached == nurl and client.route == "direct"


async def test_client_refuses_a_server_with_another_certificate(
        four_servers: list[tuple[Managed, Nurl]]) -> None:
    """The product client's TLS pin: a server whose certificate is not the NURL's SPKI hash
    is refused (a wrong hash; another server's certificate at the address, as the first
    address and as the fallback), while the right NURL works over the same connector."""
    right, other = four_servers[0][1], four_servers[1][1]
    assert right.port is not None
    connector = Connector(reactor)
    wrong_hash = Nurl(right.scheme, bytes(32), right.host, right.port, right.swissnum)
    impostor = Nurl(other.scheme, other.spki_hash, right.host, right.port, other.swissnum)
    (dead,) = free_ports(1)
    unreachable = Nurl(other.scheme, other.spki_hash, "127.0.0.1", dead, other.swissnum)
    refused = [StorageClient(wrong_hash, connector, reactor, persistent=False),
               StorageClient(impostor, connector, reactor, persistent=False),
               StorageClient(unreachable, connector, reactor, persistent=False,
                             fallbacks=[impostor])]
    for client in refused:
        with pytest.raises(ResponseNeverReceived) as info:
            await client.version()
        assert "certificate verify failed" in repr(info.value.reasons)
    assert b"application-version" in await StorageClient(
        right, connector, reactor, persistent=False).version()
