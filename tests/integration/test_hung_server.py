"""A storage server that hangs (SIGSTOP: its connections stay open, nothing answers) in the
middle of a download: the client moves to another share's server and the download
completes within 20 s of the hang, byte for byte (Tahoe's client takes ~60 s; mistgrid
took ~270 s before: a 120 s request timeout, then retries)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from mistgrid.caps import base32, parse_cap
from mistgrid.testing.procs import Managed, stop_all

from .test_web_grid import http, start_grid

SIZE = 48 * 1024 * 1024
SERVERS = 5


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path,
                                                                     list[Managed]]]:
    """(client URL, base directory, the 5 storage node processes); 2-of-4, happy 4."""
    base = tmp_path_factory.mktemp("hung")
    processes: list[Managed] = []
    try:
        client = start_grid(base, processes, servers=SERVERS)
        yield (client / "node.url").read_text().strip(), base, processes[:SERVERS]
    finally:
        for proc in processes:
            if proc.alive():
                os.kill(proc.pid, signal.SIGCONT)
        stop_all(processes)


def holder_of(base: Path, cap: str, number: int) -> int:
    si = base32.b2a(parse_cap(cap).storage_index)  # type: ignore[union-attr]
    for i in range(SERVERS):
        if list((base / f"storage{i}").glob(f"**/shares/*/{si}/{number}")):
            return i
    raise AssertionError(f"no server holds share {number}")


def test_a_download_moves_on_from_a_hung_server(
        grid: tuple[str, Path, list[Managed]]) -> None:
    url, base, storage = grid
    data = os.urandom(SIZE)
    status, cap = http("PUT", url + "uri", data)
    assert status == 200, cap
    # the download starts with the primary shares (0 and 1): hang share 0's server
    victim = storage[holder_of(base, cap.decode(), 0)]
    digest = hashlib.sha256()
    with urllib.request.urlopen(url + "uri/" + cap.decode(), timeout=60) as response:
        digest.update(response.read(4 * 1024 * 1024))
        os.kill(victim.pid, signal.SIGSTOP)
        hung = time.monotonic()
        try:
            while chunk := response.read(1024 * 1024):
                digest.update(chunk)
            took = time.monotonic() - hung
        finally:
            os.kill(victim.pid, signal.SIGCONT)
    assert digest.digest() == hashlib.sha256(data).digest()
    assert took < 20, f"the download took {took:.1f} s after the hang"


def test_a_server_hung_before_the_download_is_left_out(
        grid: tuple[str, Path, list[Managed]]) -> None:
    url, base, storage = grid
    data = os.urandom(3 * 1024 * 1024)
    status, cap = http("PUT", url + "uri", data)
    assert status == 200
    victim = storage[holder_of(base, cap.decode(), 0)]
    os.kill(victim.pid, signal.SIGSTOP)
    try:
        began = time.monotonic()
        assert http("GET", url + "uri/" + cap.decode()) == (200, data)
        took = time.monotonic() - began
    finally:
        os.kill(victim.pid, signal.SIGCONT)
    assert took < 20, f"the download took {took:.1f} s"


def test_an_upload_gives_up_on_a_hung_server(
        grid: tuple[str, Path, list[Managed]]) -> None:
    """A server that hangs where the upload would put a share: the upload leaves it out
    within seconds and places that share on the fifth server."""
    url, base, storage = grid
    data = os.urandom(2 * 1024 * 1024)
    status, cap = http("PUT", url + "uri", data)  # where the shares of this file go
    assert status == 200
    si = base32.b2a(parse_cap(cap.decode()).storage_index)  # type: ignore[union-attr]
    victim = holder_of(base, cap.decode(), 0)
    for i in range(SERVERS):  # gone again, so the same upload has to place them afresh
        for path in (base / f"storage{i}").glob(f"**/shares/*/{si}/*"):
            path.unlink()
    os.kill(storage[victim].pid, signal.SIGSTOP)
    try:
        began = time.monotonic()
        status, again = http("PUT", url + "uri", data)
        took = time.monotonic() - began
        assert status == 200 and again == cap, again
        assert http("GET", url + "uri/" + cap.decode()) == (200, data)
    finally:
        os.kill(storage[victim].pid, signal.SIGCONT)
    assert took < 20, f"the upload took {took:.1f} s"
    holders = {i for i in range(SERVERS)
               if list((base / f"storage{i}").glob(f"**/shares/*/{si}/*"))}
    assert victim not in holders and len(holders) == 4, holders


@pytest.mark.parametrize("fmt", ["SDMF", "MDMF"])
def test_mutable_files_and_directories_go_on_without_a_hung_server(
        grid: tuple[str, Path, list[Managed]], fmt: str) -> None:
    """A mutable file and a directory (a mutable file too) are read, changed and listed
    with one server hung: the map leaves the silent server out, and reads take other
    shares (before: each waited for the two-minute request timeout)."""
    url, base, storage = grid
    data = os.urandom(600_000)
    status, cap = http("PUT", url + f"uri?format={fmt}", data)
    assert status == 200, cap
    status, dircap = http("POST", url + f"uri?t=mkdir&format={fmt}")
    assert status == 200
    assert http("PUT", url + "uri/" + dircap.decode() + "/a", b"x" * 100)[0] == 201
    si = base32.b2a(parse_cap_any(cap.decode()))
    victim = next(i for i in range(SERVERS)
                  if list((base / f"storage{i}").glob(f"**/shares/*/{si}/*")))
    os.kill(storage[victim].pid, signal.SIGSTOP)
    try:
        began = time.monotonic()
        assert http("GET", url + "uri/" + cap.decode()) == (200, data)
        assert http("PUT", url + "uri/" + cap.decode(), b"new contents")[0] == 200
        assert http("GET", url + "uri/" + cap.decode()) == (200, b"new contents")
        listing = json.loads(http("GET", url + "uri/" + dircap.decode() + "?t=json")[1])
        assert list(listing[1]["children"]) == ["a"]
        took = time.monotonic() - began
        # new ones: written without a map, so the hung server is met at the write
        began = time.monotonic()
        status, other = http("PUT", url + f"uri?format={fmt}", b"made while one is hung")
        assert status == 200, other
        status, otherdir = http("POST", url + f"uri?t=mkdir&format={fmt}")
        assert status == 200, otherdir
        made = time.monotonic() - began
        assert http("GET", url + "uri/" + other.decode()) == (200, b"made while one is hung")
        assert json.loads(http("GET", url + "uri/" + otherdir.decode() + "?t=json")[1])[0] \
            == "dirnode"
    finally:
        os.kill(storage[victim].pid, signal.SIGCONT)
    assert took < 20, f"read, replace, read and list took {took:.1f} s with a hung server"
    assert made < 15, f"a new file and a new directory took {made:.1f} s with a hung server"


def parse_cap_any(text: str) -> bytes:
    from mistgrid.grid.checker import parse_any_cap  # noqa: PLC0415

    return parse_any_cap(text).storage_index  # type: ignore[union-attr]
