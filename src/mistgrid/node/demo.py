"""A local demo grid: an introducer, 4 storage nodes and a client node on 127.0.0.1, started
as separate `mistgrid run` processes, used through the client's web API, and stopped again.

The storage nodes announce themselves to the introducer and the client learns them from
it. Every process it starts is stopped by PID when it ends (also on Ctrl-C or a failure),
unless `keep` is set, in which case it says how to stop them.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from ..errors import MistgridError
from ..testing import procs
from ..testing.procs import Managed, free_ports, stop_all, wait_for
from .directory import NodeSpec, create_node_dir

STORAGE_NODES = 4


def _mistgrid(*args: str) -> list[str]:
    return [sys.executable, "-m", "mistgrid.cli", *args]


def _exists(path: Path) -> Callable[[], bool | None]:
    return lambda: True if path.exists() else None


def run_demo(work: Path, size: int, keep: bool, say: Callable[[str], None]) -> str:
    """Build, start and use the grid; returns the cap."""
    work.mkdir(parents=True, exist_ok=True)
    processes: list[Managed] = []
    started = time.monotonic()
    try:
        nodes = create_grid(work)
        launched = time.monotonic()
        for node in nodes:
            processes.append(Managed(node.name, _mistgrid("run", str(node)),
                                     node / "logs" / "run.log"))
        client = work / "client"
        wait_for(_exists(client / "node.url"), 60, "the client's web API", watch=processes)
        url = (client / "node.url").read_text().strip()
        wait_for(lambda: _connected(url, STORAGE_NODES), 60,
                 f"the client to learn of {STORAGE_NODES} storage servers", interval=0.02,
                 watch=processes)
        say(f"created in {launched - started:.1f}s; started in "
            f"{time.monotonic() - launched:.1f}s (until the client had every server)")
        say(f"grid of an introducer, {STORAGE_NODES} storage nodes and a client in {work}")
        cap = _round_trip(url, work, size, say)
        _mutable_round_trip(url, say)
        say(f"web API: {url}")
        if keep:
            for proc in processes:
                procs.release(proc)
            pids = " ".join(str(p.pid) for p in processes)
            say(f"the grid keeps running; stop it with: kill {pids}")
        return cap
    finally:
        if not keep:
            stop_all(processes)


def create_grid(work: Path) -> list[Path]:
    """Node directories for the introducer, the storage nodes and the client (in-process:
    no interpreter start-up per node); returns them in start order."""
    ports = free_ports(STORAGE_NODES + 2)
    introducer = work / "introducer"
    create_node_dir(introducer, NodeSpec(
        kind="introducer", nickname="introducer", port=f"tcp:{ports[-2]}:interface=127.0.0.1",
        location=f"tcp:127.0.0.1:{ports[-2]}", webport="none"))
    furl = (introducer / "private" / "introducer.furl").read_text().strip()
    nodes = [introducer]
    for i in range(STORAGE_NODES):
        nodes.append(work / f"storage{i}")
        create_node_dir(nodes[-1], NodeSpec(
            kind="node", nickname=f"storage{i}", introducer=furl,
            port=f"tcp:{ports[i]}:interface=127.0.0.1", location=f"tcp:127.0.0.1:{ports[i]}",
            webport="none"))
    nodes.append(work / "client")
    create_node_dir(nodes[-1], NodeSpec(
        kind="client", nickname="client", introducer=furl, listen=("none",), storage=False,
        webport=f"tcp:{ports[-1]}:interface=127.0.0.1", shares_needed=2, shares_happy=3,
        shares_total=4))
    return nodes


def _connected(url: str, count: int) -> bool | None:
    try:
        with urllib.request.urlopen(url + "?t=json", timeout=10) as response:
            servers = json.load(response)["servers"]
    except OSError:
        return None
    live = [s for s in servers if s.get("connected")]
    return True if len(live) >= count else None


def _mutable_round_trip(url: str, say: Callable[[str], None]) -> None:
    """A mutable (MDMF) file: made, changed in place at an offset, read back."""
    started = time.monotonic()
    first = b"mistgrid demo, version 1 of a mutable file"
    request = urllib.request.Request(url + "uri?format=MDMF", data=first, method="PUT")
    with urllib.request.urlopen(request, timeout=120) as response:
        writecap = response.read().decode().strip()
    change = urllib.request.Request(url + f"uri/{writecap}?offset=23", data=b"2",
                                    method="PUT")
    with urllib.request.urlopen(change, timeout=120):
        pass
    with urllib.request.urlopen(url + "uri/" + writecap, timeout=120) as response:
        now = response.read()
    if now != first.replace(b"version 1", b"version 2"):
        raise MistgridError("the mutable file read back is not what was written")
    say(f"mutable file (MDMF) made, changed in place and read back in "
        f"{time.monotonic() - started:.2f}s: {now.decode()!r}")


def _round_trip(url: str, work: Path, size: int, say: Callable[[str], None]) -> str:
    sample = work / "sample.bin"
    with sample.open("wb") as out:
        remaining = size
        while remaining:
            chunk = os.urandom(min(remaining, 1 << 20))
            out.write(chunk)
            remaining -= len(chunk)
    started = time.monotonic()
    with sample.open("rb") as body:
        request = urllib.request.Request(url + "uri", data=body, method="PUT",
                                         headers={"Content-Length": str(size)})
        with urllib.request.urlopen(request, timeout=600) as response:
            cap: str = response.read().decode().strip()
    say(f"stored {size} bytes as 2-of-4 shares in {time.monotonic() - started:.2f}s")
    started = time.monotonic()
    digest = hashlib.sha256()
    with urllib.request.urlopen(url + "uri/" + cap, timeout=600) as response:
        while chunk := response.read(1 << 20):
            digest.update(chunk)
    expected = hashlib.sha256(sample.read_bytes()).digest()
    if digest.digest() != expected:
        raise MistgridError("the file read back differs from the one stored")
    say(f"read back and verified all {size} bytes in {time.monotonic() - started:.2f}s")
    return cap
