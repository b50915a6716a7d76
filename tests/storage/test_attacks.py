"""What a grid member (anyone holding the swissnum) or a stranger must not be able to do to
a mistgrid storage server: destroy or replace shares, or cost it much memory, disk or
reactor time with small requests. Each test is one finding of the attack review (issue 10),
run against a real server process with real requests."""

from __future__ import annotations

import os
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from mistgrid.gbs.headers import swissnum_header
from mistgrid.gbs.nurl import Nurl
from mistgrid.testing.procs import Managed, wait_for

from .conftest import start_mistgrid_server, wait_until_serving
from .gbs_client import GbsClient
from .test_contract import V1, allocate, new_si, patch, upload, upload_secrets
from .test_contract_mutable import rtw, slot_secrets, write

IDLE_TIMEOUT = 3.0
MIB = 1024 * 1024


@attrs.frozen
class Server:
    process: Managed
    client: GbsClient
    directory: Path

    def rss_mb(self, field: str = "VmRSS") -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
        raise AssertionError(f"no {field} for the server")

    def incoming_files(self) -> list[Path]:
        return [p for p in (self.directory / "storage" / "shares" / "incoming").rglob("*")]


def _start(directory: Path) -> Server:
    process, nurl = start_mistgrid_server(
        directory, extra=("--upload-idle-timeout", str(IDLE_TIMEOUT)))
    client = GbsClient(nurl)
    wait_until_serving(client, process)
    return Server(process, client, directory)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """A server of its own (uploads idle for 3 s expire), for tests that measure it."""
    started = _start(tmp_path / "server")
    try:
        yield started
    finally:
        started.client.close()
        started.process.stop()


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    started = _start(tmp_path_factory.mktemp("attacks"))
    try:
        yield started
    finally:
        started.client.close()
        started.process.stop()


def read_share(client: GbsClient, kind: str, si: str, number: int) -> bytes | None:
    resp = client.request("GET", f"{V1}/{kind}/{si}/{number}")
    return resp.body if resp.status == 200 else None


# ---- 1, 2: no request destroys or replaces a share of the other kind ----

@pytest.mark.parametrize("new_length", [None, 0])
def test_read_test_write_cannot_delete_immutable_shares(shared_server: Server,
                                                        new_length: int | None) -> None:
    """A read-test-write on an immutable file's storage index, with any write enabler and
    an empty write vector, is refused (409) and the share stays."""
    client, si, data = shared_server.client, new_si(), os.urandom(1000)
    upload(client, si, 0, data)
    resp = rtw(client, si, {0: {"test": [], "write": [], "new-length": new_length}},
               secrets=slot_secrets(os.urandom(32)))
    assert resp.status == 409
    assert read_share(client, "immutable", si, 0) == data


def test_read_test_write_refused_while_an_upload_is_in_progress(shared_server: Server) -> None:
    """A slot cannot be made at an index whose immutable upload is still going on, so the
    upload's completion never meets a mutable share at its place."""
    client, si, data = shared_server.client, new_si(), os.urandom(1000)
    secrets = upload_secrets()
    allocate(client, si, {0}, len(data), secrets)
    assert rtw(client, si, {0: write(0, b"slot")}).status == 409
    assert patch(client, si, 0, 0, data, secrets["upload-secret"]) == 201
    assert read_share(client, "immutable", si, 0) == data
    assert client.request("GET", f"{V1}/mutable/{si}/shares").cbor() == set()


def test_immutable_upload_cannot_replace_a_mutable_share(shared_server: Server) -> None:
    """Allocating immutable shares where a slot lives allocates nothing; the slot's owner
    goes on writing."""
    client, si = shared_server.client, new_si()
    assert rtw(client, si, {0: write(0, b"mutable data")}).status == 200
    secrets = upload_secrets()
    assert allocate(client, si, {0, 1}, 12, secrets) == (set(), set())
    assert patch(client, si, 0, 0, b"x" * 12, secrets["upload-secret"]) == 404
    assert read_share(client, "mutable", si, 0) == b"mutable data"
    assert rtw(client, si, {0: write(0, b"MUTABLE")}).status == 200
    assert read_share(client, "mutable", si, 0) == b"MUTABLE data"


def test_wrong_write_enabler_changes_and_removes_nothing(shared_server: Server) -> None:
    client, si = shared_server.client, new_si()
    assert rtw(client, si, {0: write(0, b"owner's data")}).status == 200
    thief = slot_secrets(b"t" * 32)
    for vectors in ({0: write(0, b"thief")}, {0: {"test": [], "write": [], "new-length": 0}},
                    {1: write(0, b"new share")}):
        assert rtw(client, si, vectors, secrets=thief).status == 401
    assert read_share(client, "mutable", si, 0) == b"owner's data"
    assert client.request("GET", f"{V1}/mutable/{si}/shares").cbor() == {0}


# ---- 3: mutable requests cost what they carry ----

def _max_latency_while(client_nurl: Nurl, action: Callable[[], Any]) -> tuple[Any, float]:
    """Run `action` while another connection asks for /version every 20 ms; the result and
    the slowest answer seen (the server's reactor latency during the action)."""
    probe = GbsClient(client_nurl)
    probe.request("GET", f"{V1}/version")
    worst, done = 0.0, threading.Event()

    def ping() -> None:
        nonlocal worst
        while not done.is_set():
            start = time.monotonic()
            probe.request("GET", f"{V1}/version")
            worst = max(worst, time.monotonic() - start)
            time.sleep(0.02)

    thread = threading.Thread(target=ping)
    thread.start()
    try:
        result = action()
    finally:
        done.set()
        thread.join()
        probe.close()
    return result, worst


def test_write_far_past_the_end_is_cheap(server: Server) -> None:
    """One 1-byte write at 256 MiB: no reactor stall, no memory spike, no 256 MiB on disk;
    a write whose gap exceeds the free space is refused (413), not a MemoryError."""
    client, si = server.client, new_si()
    before = server.rss_mb("VmHWM")
    resp, worst = _max_latency_while(
        client.nurl, lambda: rtw(client, si, {0: write(256 * MIB, b"x")}))
    assert resp.status == 200 and resp.cbor()["success"] is True
    assert worst < 1.0, f"reactor stalled {worst:.2f} s"
    assert server.rss_mb("VmHWM") - before < 64
    share = next((server.directory / "storage" / "shares").rglob("0"))
    assert share.stat().st_blocks * 512 < 4 * MIB  # a hole, not 256 MiB of zeros
    part = client.request("GET", f"{V1}/mutable/{si}/0",
                          headers={"Range": f"bytes={256 * MIB - 2}-{256 * MIB}"})
    assert part.status == 206 and part.body == b"\x00\x00x"
    huge = rtw(client, new_si(), {0: write(2**40, b"x")})
    assert huge.status == 413
    assert client.request("GET", f"{V1}/version").status == 200


def test_read_vectors_are_bounded(server: Server) -> None:
    """30 huge read vectors over 4 shares of 2 MiB are refused (413) instead of returning
    hundreds of MB; reads within the bound answer."""
    client, si = server.client, new_si()
    chunk = os.urandom(MIB // 2)  # a message body is at most 1 MiB
    for number in range(4):
        for offset in range(0, 2 * MIB, len(chunk)):
            assert rtw(client, si, {number: write(offset, chunk)}).status == 200
    reads = [{"offset": 0, "size": 2**62} for _ in range(30)]
    assert rtw(client, si, {}, reads=reads).status == 413
    small = rtw(client, si, {}, reads=[{"offset": MIB, "size": 10}])
    assert small.status == 200 and small.cbor()["data"][3] == [chunk[:10]]


def test_ranged_read_of_a_large_mutable_share_reads_only_the_range(server: Server) -> None:
    """A 10-byte Range of a 64 MiB share, a hundred times, is quick: the share is never
    loaded whole."""
    client, si = server.client, new_si()
    piece = os.urandom(MIB // 2)
    for index in range(128):
        assert rtw(client, si, {0: write(index * len(piece), piece)}).status == 200
    start = time.monotonic()
    for _ in range(100):
        part = client.request("GET", f"{V1}/mutable/{si}/0", headers={"Range": "bytes=5-14"})
        assert part.status == 206 and part.body == piece[5:15]
    assert time.monotonic() - start < 10


# ---- 4: uploads in progress expire; allocations cost nothing until written ----

def test_abandoned_upload_expires_and_can_be_taken_over(server: Server) -> None:
    """An upload left half-written (its client died) blocks the share only until it has
    been idle for the timeout; then a new client uploads it, and incoming/ is empty."""
    client, si, data = server.client, new_si(), os.urandom(100_000)
    dead = upload_secrets(b"d")
    assert allocate(client, si, {0, 1}, len(data), dead) == (set(), {0, 1})
    assert patch(client, si, 0, 0, data[:50_000], dead["upload-secret"]) == 200
    retry = upload_secrets(b"r")
    assert allocate(client, si, {0, 1}, len(data), retry) == (set(), set())
    wait_for(lambda: allocate(client, si, {0, 1}, len(data), retry) == (set(), {0, 1})
             or None, 10 * IDLE_TIMEOUT, "the idle upload to expire")
    for number in (0, 1):
        assert patch(client, si, number, 0, data, retry["upload-secret"]) == 201
        assert read_share(client, "immutable", si, number) == data
    assert server.incoming_files() == []


def test_allocations_hold_space_only_until_they_expire(server: Server) -> None:
    """Allocating all free space shows in /version (others are told the truth), and the
    space comes back when the allocation expires unused. Allocations make no files."""
    client = server.client

    def available() -> int:
        version = client.request("GET", f"{V1}/version").cbor()
        return int(version[b"http://allmydata.org/tahoe/protocols/storage/v1"]
                   [b"available-space"])

    free = available()  # other processes write too: the bounds below leave them 1 GiB
    assert allocate(client, new_si(), {0}, free - 100 * MIB, upload_secrets()) == \
        (set(), {0})
    assert available() < 1024 * MIB
    assert allocate(client, new_si(), {0}, 2048 * MIB, upload_secrets()) == (set(), set())
    for _ in range(200):
        allocate(client, new_si(), {0, 1}, 1000, upload_secrets())
    assert server.incoming_files() == []
    wait_for(lambda: available() > free - 1024 * MIB or None, 10 * IDLE_TIMEOUT,
             "the allocation to expire")


def test_zero_size_allocation_is_refused(shared_server: Server) -> None:
    resp = shared_server.client.request(
        "POST", f"{V1}/immutable/{new_si()}", secrets=upload_secrets(),
        cbor={"share-numbers": {0}, "allocated-size": 0})
    assert resp.status == 400


def test_aborts_leave_no_folders(shared_server: Server) -> None:
    client = shared_server.client
    for _ in range(20):
        si, secrets = new_si(), upload_secrets()
        allocate(client, si, {0}, 100, secrets)
        assert patch(client, si, 0, 0, b"x" * 10, secrets["upload-secret"]) == 200
        assert client.request("PUT", f"{V1}/immutable/{si}/0/abort",
                              secrets={"upload-secret": secrets["upload-secret"]}).status == 200
    assert shared_server.incoming_files() == []


# ---- 5: authorization before the body; connections cost little ----

def _tls(nurl: Nurl) -> ssl.SSLSocket:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    assert nurl.port is not None
    raw = socket.create_connection((nurl.host, nurl.port), timeout=30)
    return context.wrap_socket(raw)


def _request_head(path: str, length: int, swissnum: bytes) -> bytes:
    return (f"PATCH {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n"
            "Content-Range: bytes 0-9/*\r\n").encode() + \
        b"Authorization: " + swissnum_header(swissnum) + b"\r\n\r\n"


def test_wrong_swissnum_is_refused_before_the_body(server: Server) -> None:
    """A PATCH with a wrong swissnum announcing 200 MiB is answered 401 at once, before a
    byte of its body is sent; nothing is spooled."""
    sock = _tls(server.client.nurl)
    try:
        sock.sendall(_request_head(f"{V1}/immutable/{new_si()}/0", 200 * MIB, b"wrong"))
        answer = sock.recv(4096)
    finally:
        sock.close()
    assert answer.startswith(b"HTTP/1.1 401")


def test_oversized_authorized_body_is_refused_before_it_is_read(server: Server) -> None:
    """With the right swissnum, a body larger than the endpoint allows is 413 at once."""
    sock = _tls(server.client.nurl)
    try:
        swissnum = server.client.nurl.swissnum.encode("ascii")
        sock.sendall(_request_head(f"{V1}/immutable/{new_si()}/0", 200 * MIB, swissnum))
        answer = sock.recv(4096)
    finally:
        sock.close()
    assert answer.startswith(b"HTTP/1.1 413")


def _send_unauthorized_body(nurl: Nurl, size: int) -> None:
    try:
        sock = _tls(nurl)
        sock.sendall(_request_head(f"{V1}/immutable/{new_si()}/0", size, b"wrong"))
        payload = b"\x00" * (64 * 1024)
        for _ in range(size // len(payload)):
            sock.sendall(payload)
        sock.recv(4096)
        sock.close()
    except OSError:
        pass  # the server may close on us mid-body: that is the point


@pytest.mark.slow
def test_many_idle_connections_and_unauthorized_bodies(server: Server) -> None:
    """500 idle or half-open connections plus 200 unauthenticated 2 MiB bodies at once:
    server memory stays under 200 MB and a normal request answers within 1 s."""
    nurl = server.client.nurl
    assert nurl.port is not None
    idle = []
    for index in range(500):
        if index % 2:
            idle.append(socket.create_connection((nurl.host, nurl.port), timeout=30))
        else:
            idle.append(_tls(nurl))
    threads = [threading.Thread(target=_send_unauthorized_body, args=(nurl, 2 * MIB))
               for _ in range(200)]
    try:
        for thread in threads:
            thread.start()
        peak = 0.0
        while any(t.is_alive() for t in threads):
            peak = max(peak, server.rss_mb())
            time.sleep(0.05)
        start = time.monotonic()
        assert server.client.request("GET", f"{V1}/version").status == 200
        elapsed = time.monotonic() - start
    finally:
        for thread in threads:
            thread.join()
        for sock in idle:
            sock.close()
    assert peak < 200, f"server RSS reached {peak:.0f} MB"
    assert elapsed < 1.0


# ---- 8: smaller findings ----

def test_immutable_read_of_a_mutable_share_is_404(shared_server: Server) -> None:
    client, si = shared_server.client, new_si()
    assert rtw(client, si, {0: write(0, b"mutable")}).status == 200
    assert client.request("GET", f"{V1}/immutable/{si}/0").status == 404
    data = os.urandom(100)
    other = new_si()
    upload(client, other, 0, data)
    assert client.request("GET", f"{V1}/mutable/{other}/0").status == 404


def test_non_ascii_digit_share_key_is_400(shared_server: Server) -> None:
    resp = shared_server.client.request(
        "POST", f"{V1}/mutable/{new_si()}/read-test-write", secrets=slot_secrets(),
        body=b'{"test-write-vectors": {"\xc2\xb2": {"test": [], "write": [], '
             b'"new-length": null}}, "read-vector": []}',
        headers={"Content-Type": "application/json"})
    assert resp.status == 400


@pytest.mark.parametrize("kind", ["immutable", "mutable"])
def test_range_past_the_end_gives_what_there_is(shared_server: Server, kind: str) -> None:
    """The spec: a range reaching past the end answers with the data up to the end, and
    a Content-Range that says so; even a range larger than one read's limit."""
    client, si, data = shared_server.client, new_si(), os.urandom(100)
    if kind == "immutable":
        upload(client, si, 0, data)
    else:
        assert rtw(client, si, {0: write(0, data)}).status == 200
    for last in (199, 17 * MIB):
        resp = client.request("GET", f"{V1}/{kind}/{si}/0",
                              headers={"Range": f"bytes=90-{last}"})
        assert resp.status == 206 and resp.body == data[90:]
        assert resp.headers["content-range"] == "bytes 90-99/*"
