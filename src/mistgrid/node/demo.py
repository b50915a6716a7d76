"""A local demo grid: 4 storage nodes and a client node on 127.0.0.1, started as separate
`mistgrid run` processes, used through the client's web API, and stopped again.

Every process it starts is stopped by PID when it ends (also on Ctrl-C or a failure),
unless `keep` is set, in which case it says how to stop them. (No introducer yet: the
client learns the servers from a static private/servers.yaml.)
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from ..errors import MistgridError
from ..storage.announcement import servers_yaml
from ..testing import procs
from ..testing.procs import Managed, free_ports, stop_all, wait_for

STORAGE_NODES = 4


def _mistgrid(*args: str) -> list[str]:
    return [sys.executable, "-m", "mistgrid.cli", *args]


def _create(*args: str) -> None:
    result = subprocess.run(_mistgrid(*args), capture_output=True, timeout=120, check=False)
    if result.returncode != 0:
        raise MistgridError(result.stderr.decode(errors="replace").strip())


def _exists(path: Path) -> Callable[[], bool | None]:
    return lambda: True if path.exists() else None


def run_demo(work: Path, size: int, keep: bool, say: Callable[[str], None]) -> str:
    """Build, start and use the grid; returns the cap."""
    work.mkdir(parents=True, exist_ok=True)
    processes: list[Managed] = []
    started = time.monotonic()
    try:
        entries = {}
        ports = free_ports(STORAGE_NODES + 1)
        for i in range(STORAGE_NODES):
            node = work / f"storage{i}"
            _create("create-node", "--nickname", f"storage{i}", "--webport", "none",
                    "--port", f"tcp:{ports[i]}:interface=127.0.0.1",
                    "--location", f"tcp:127.0.0.1:{ports[i]}", str(node))
            processes.append(Managed(f"storage{i}", _mistgrid("run", str(node)),
                                     node / "logs" / "run.log"))
        for i in range(STORAGE_NODES):
            announcement = work / f"storage{i}" / "private" / "announcement.json"
            wait_for(_exists(announcement), 60, f"storage{i} to listen", watch=processes)
            entry = json.loads(announcement.read_text())
            entries[entry["server-id"]] = entry["ann"]
        client = work / "client"
        _create("create-client", "--nickname", "client", "--shares-needed", "2",
                "--shares-happy", "3", "--shares-total", "4",
                "--webport", f"tcp:{ports[-1]}:interface=127.0.0.1", str(client))
        (client / "private" / "servers.yaml").write_text(servers_yaml(entries))
        processes.append(Managed("client", _mistgrid("run", str(client)),
                                 client / "logs" / "run.log"))
        wait_for(_exists(client / "node.url"), 60, "the client's web API", watch=processes)
        url = (client / "node.url").read_text().strip()
        say(f"grid of {STORAGE_NODES} storage nodes and a client started in "
            f"{time.monotonic() - started:.1f}s (in {work})")
        cap = _round_trip(url, work, size, say)
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
