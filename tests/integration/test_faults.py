"""Faults (issue 5's acceptance): storage nodes killed (SIGKILL) in the middle of a
download or an upload, on a grid of 4 storage nodes (2-of-4, happy 3) and a client.

- Download: with N-k = 2 nodes killed mid-download it still completes, byte for byte.
- Upload: with 1 node killed it completes (happiness 3 can still be met); with 2 killed
  it fails with a clear message, and no share of the file is left listed or readable."""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mistgrid.testing.procs import Managed, stop_all, wait_for

from ..conftest import run_cli
from .test_introducer import connected, start, start_client, start_introducer, start_storage

SIZE = 40 * 1024 * 1024


class Grid:
    def __init__(self, base: Path, processes: list[Managed], storage_lines: str = "") -> None:
        furl = start_introducer(base, processes)
        self.storage = [start_storage(base, f"storage{i}", furl, processes, storage_lines)
                        for i in range(4)]
        self.client = start_client(base, furl, processes, needed=2, happy=3, total=4)
        self.processes = processes
        wait_for(lambda: connected(self.client, 4), 60, "the client to see 4 servers",
                 interval=0.2, watch=processes)
        url = urllib.parse.urlparse((self.client / "node.url").read_text().strip())
        self.host, self.port = url.hostname or "", url.port or 80

    def kill(self, index: int) -> None:
        process = next(p for p in self.processes if p.name.endswith(f"storage{index}"))
        process.popen.kill()
        process.popen.wait(10)

    def bytes_read(self) -> list[int]:
        """Bytes each storage process has read (/proc/PID/io rchar; killed ones: 0)."""
        counts = []
        for index in range(4):
            process = next(p for p in self.processes if p.name.endswith(f"storage{index}"))
            try:
                io = Path(f"/proc/{process.pid}/io").read_text()
            except OSError:
                counts.append(0)
                continue
            counts.append(int(io.split("rchar:")[1].split()[0]))
        return counts

    def connection(self) -> http.client.HTTPConnection:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=300)
        conn.connect()
        assert conn.sock is not None
        conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        return conn

    def put(self, data: bytes) -> tuple[int, bytes]:
        conn = self.connection()
        try:
            conn.request("PUT", "/uri", body=data)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def incoming(self, skip: tuple[int, ...] = ()) -> list[Path]:
        """Partial shares on the storage nodes (but those in `skip`: a killed node's are
        deleted when it next starts, and are never listed or served meanwhile)."""
        return [p for i, node in enumerate(self.storage) if i not in skip
                for p in (node / "storage" / "shares" / "incoming").rglob("*") if p.is_file()]

    def complete_shares(self) -> list[Path]:
        return [p for node in self.storage for p in (node / "storage" / "shares").rglob("*")
                if p.is_file() and "incoming" not in p.parts]


@pytest.fixture
def grid(tmp_path: Path) -> Iterator[Grid]:
    processes: list[Managed] = []
    try:
        yield Grid(tmp_path, processes)
    finally:
        stop_all(processes)


def test_download_survives_n_minus_k_killed(grid: Grid) -> None:
    """Read 1 MiB of a 40 MiB file (the node holds back: backpressure), find the two
    storage nodes the download is reading from (their read counters in /proc moved), kill
    exactly those, read the rest: every byte arrives, and the other two nodes served it."""
    data = os.urandom(SIZE)
    status, cap = grid.put(data)
    assert status == 200, cap
    before = grid.bytes_read()
    conn = grid.connection()
    try:
        conn.request("GET", "/uri/" + cap.decode())
        response = conn.getresponse()
        assert response.status == 200
        digest = hashlib.sha256()
        first = response.read(1024 * 1024)
        digest.update(first)
        time.sleep(0.5)  # let the node run ahead as far as backpressure allows
        moved = [after - old for after, old in zip(grid.bytes_read(), before, strict=True)]
        victims = sorted(range(4), key=lambda i: moved[i])[2:]
        assert all(moved[v] > 0 for v in victims), moved
        for victim in victims:
            grid.kill(victim)
        survivors = [i for i in range(4) if i not in victims]
        at_kill = grid.bytes_read()
        rest = 0
        while chunk := response.read(1024 * 1024):
            digest.update(chunk)
            rest += len(chunk)
    finally:
        conn.close()
    assert len(first) + rest == SIZE
    assert digest.digest() == hashlib.sha256(data).digest()
    served = [grid.bytes_read()[i] - at_kill[i] for i in survivors]
    assert all(amount > SIZE // 8 for amount in served), (moved, served)


def _upload_while_killing(grid: Grid, victims: list[int]) -> tuple[int, bytes]:
    """PUT a 40 MiB file; kill `victims` as soon as its first share data reach a server."""
    result: list[tuple[int, bytes]] = []
    uploader = threading.Thread(target=lambda: result.append(grid.put(data)))
    data = os.urandom(SIZE)
    uploader.start()
    try:
        wait_for(lambda: True if grid.incoming() else None, 60, "the upload to begin",
                 interval=0.002)
        for victim in victims:
            grid.kill(victim)
    finally:
        uploader.join(300)
    assert result, "the upload did not answer"
    return result[0]


def test_upload_completes_when_happiness_holds(grid: Grid) -> None:
    status, cap = _upload_while_killing(grid, [1])
    assert status == 200, cap
    assert len(grid.complete_shares()) >= 3  # happiness 3 over the 3 live servers
    conn = grid.connection()
    try:
        conn.request("GET", "/uri/" + cap.decode())
        response = conn.getresponse()
        assert response.status == 200 and len(response.read()) == SIZE
    finally:
        conn.close()


def test_upload_fails_cleanly_when_happiness_is_lost(grid: Grid, tmp_path: Path) -> None:
    """Two of four nodes die mid-upload: the client answers 503 with the reason, aborts
    its partial shares on the two live nodes, and no complete share exists anywhere."""
    status, body = _upload_while_killing(grid, [0, 3])
    assert status == 503, body
    message = body.decode()
    assert message.count("\n") == 1 and "shares.happy" in message, message
    deadline = time.monotonic() + 10  # aborts reach the live servers just after the answer
    while grid.incoming(skip=(0, 3)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert grid.incoming(skip=(0, 3)) == []
    assert grid.complete_shares() == []
    del tmp_path


def test_failed_upload_leaves_nothing_readable(grid: Grid, tmp_path: Path) -> None:
    """The cap the failed upload would have had (convergent: recomputed offline with the
    client's convergence secret) cannot be read: 410, no share anywhere."""
    data = os.urandom(3 * 1024 * 1024)
    source = tmp_path / "f"
    source.write_bytes(data)
    encoded = run_cli("debug", "encode", str(source), "-k", "2", "-n", "4", "--out",
                      str(tmp_path / "shares"), "--convergence-file",
                      str(grid.client / "private" / "convergence"))
    cap = encoded.stdout.decode().strip()
    for victim in (0, 1):
        grid.kill(victim)
    wait_for(lambda: connected(grid.client, 2), 60, "the client to notice", interval=0.2)
    status, body = grid.put(data)
    assert status == 503 and b"shares.happy" in body
    conn = grid.connection()
    try:
        conn.request("GET", "/uri/" + cap)
        response = conn.getresponse()
        assert response.status == 410, response.read()
    finally:
        conn.close()
    assert grid.complete_shares() == [] and grid.incoming(skip=(0, 1)) == []


IDLE = 3


@pytest.fixture
def quick_expiry_grid(tmp_path: Path) -> Iterator[Grid]:
    processes: list[Managed] = []
    try:
        yield Grid(tmp_path, processes, f"upload.idle_timeout = {IDLE}")
    finally:
        stop_all(processes)


def test_upload_again_after_the_client_was_killed(quick_expiry_grid: Grid) -> None:
    """kill -9 of the client node in the middle of a 40 MiB upload, then the client node
    starts again and uploads the same file (same convergence secret: the same storage
    index, whose shares the dead upload still holds in progress). Once those uploads have
    been idle for the storage nodes' upload.idle_timeout (3 s here) the upload succeeds,
    and nothing is left in any incoming/."""
    grid = quick_expiry_grid
    data = os.urandom(SIZE)
    uploader = threading.Thread(target=lambda: _quietly(lambda: grid.put(data)))
    uploader.start()
    try:
        wait_for(lambda: True if grid.incoming() else None, 60, "the upload to begin",
                 interval=0.002)
        client = next(p for p in grid.processes if p.name.endswith("client"))
        client.popen.kill()
        client.popen.wait(10)
    finally:
        uploader.join(60)
    assert grid.incoming(), "the dead upload left no partial shares to expire"
    grid.processes.remove(client)
    grid.processes.append(start(grid.client))
    wait_for(lambda: connected(grid.client, 4), 60, "the client to see 4 servers again",
             interval=0.2, watch=grid.processes)
    outcome: list[tuple[int, bytes]] = []

    def uploaded() -> bool | None:
        outcome.append(grid.put(data))
        return True if outcome[-1][0] == 200 else None

    wait_for(uploaded, 20 * IDLE, "an upload of the same file to succeed", interval=0.5)
    cap = outcome[-1][1].decode()
    conn = grid.connection()
    try:
        conn.request("GET", "/uri/" + cap)
        response = conn.getresponse()
        assert response.status == 200 and response.read() == data
    finally:
        conn.close()
    assert grid.incoming() == []


def _quietly(action: Callable[[], object]) -> None:
    with contextlib.suppress(OSError):  # the client node was killed under this request
        action()
