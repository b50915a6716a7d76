"""Whole nodes, mistgrid and Tahoe-LAFS 1.20 side by side: grid cold start, CLI call
overhead, and file throughput through the CLI and through the web API.

Run: .venv/bin/python -m benchmarks.nodes [--size-mib 20] [--runs 3]
(also the second part of `python -m benchmarks.grid`)

Each implementation gets the same grid on 127.0.0.1: an introducer, 4 storage nodes and
a client node (2-of-4, happy 3), all created beforehand.
  cold start   launch all 6 node processes at once; until the client's welcome page
               (/?t=json) shows 4 connected servers. Median of --runs.
  CLI overhead wall time of `put` of a 1 KiB file and `get` of it (a whole CLI call
               against the running client), and of `--version`. Median of 5.
  CLI / web    MB/s of a --size-mib file: `put FILE` and `get CAP` through the CLI, and
               PUT /uri and GET /uri/CAP on the web API.
Needs the cached Tahoe venv that the interop tests make (tests/interop/tahoe.py).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path

from tests.interop.tahoe import tahoe_venv

from mistgrid.node.demo import create_grid
from mistgrid.testing.procs import Managed, free_ports, stop_all, wait_for

MISTGRID = str(Path(sys.executable).with_name("mistgrid"))


class GridUnderTest:
    """One implementation's 6 node directories and how to drive them."""

    def __init__(self, name: str, nodes: list[Path], run: Callable[[Path], list[str]],
                 cli: list[str]) -> None:
        self.name, self.nodes, self.run, self.cli = name, nodes, run, cli
        self.client = nodes[-1]

    def start(self) -> tuple[list[Managed], float]:
        """Launch every node at once; (processes, seconds until the client has 4 servers)."""
        (self.client / "node.url").unlink(missing_ok=True)
        started = time.monotonic()
        processes = [Managed(f"{self.name} {n.name}", self.run(n), n / "bench-run.log")
                     for n in self.nodes]
        try:
            wait_for(lambda: True if (self.client / "node.url").exists() else None, 60,
                     "the client's web API", interval=0.01, watch=processes)
            # (Tahoe's client took 10-13 s in 5 starts here, mistgrid's 1.4-1.6 s in 8;
            # one run of benchmarks.check timed out at the 60 s this was, which grid's
            # and why not known: its logs were gone)
            wait_for(lambda: True if self.connected() >= 4 else None, 180,
                     "4 connected servers", interval=0.01, watch=processes)
        except BaseException:
            stop_all(processes)
            raise
        return processes, time.monotonic() - started

    def url(self) -> urllib.parse.ParseResult:
        return urllib.parse.urlparse((self.client / "node.url").read_text().strip())

    def connected(self) -> int:
        url = self.url()
        conn = http.client.HTTPConnection(url.hostname or "", url.port or 80, timeout=10)
        try:
            conn.request("GET", "/?t=json")
            servers = json.load(conn.getresponse()).get("servers", [])
        except (OSError, ValueError):
            return 0
        finally:
            conn.close()
        return sum(1 for s in servers
                   if str(s.get("connection_status", "")).lower().startswith("connected"))

    def call(self, *args: str, stdout: int | None = subprocess.PIPE) -> tuple[float, bytes]:
        started = time.monotonic()
        result = subprocess.run([*self.cli, *args], stdout=stdout, stderr=subprocess.PIPE,
                                check=False, timeout=3600)
        seconds = time.monotonic() - started
        if result.returncode != 0:
            raise RuntimeError(f"{self.name} {args[:2]}: {result.stderr.decode()[-500:]}")
        return seconds, result.stdout or b""

    def web(self, method: str, path: str, body: Path | None = None) -> tuple[float, bytes]:
        url = self.url()
        conn = http.client.HTTPConnection(url.hostname or "", url.port or 80, timeout=3600)
        started = time.monotonic()
        try:
            if body is not None:
                with body.open("rb") as handle:
                    conn.request(method, path, body=handle,
                                 headers={"Content-Length": str(body.stat().st_size)})
            else:
                conn.request(method, path)
            response = conn.getresponse()
            data = b""
            kept = method in ("PUT", "POST")
            while chunk := response.read(1 << 20):
                if kept:
                    data += chunk
            if response.status != 200:
                raise RuntimeError(f"{self.name} {method} {path[:12]}: {response.status}")
        finally:
            conn.close()
        return time.monotonic() - started, data


def mistgrid_grid(base: Path) -> GridUnderTest:
    nodes = create_grid(base / "mistgrid")
    return GridUnderTest("mistgrid", nodes, lambda n: [MISTGRID, "run", str(n)],
                         [MISTGRID, "-d", str(nodes[-1])])


def tahoe_grid(base: Path) -> GridUnderTest:
    tahoe = str(tahoe_venv() / "tahoe")
    root = base / "tahoe"
    root.mkdir()
    ports = free_ports(6)

    def create(*args: str) -> None:
        made = subprocess.run([tahoe, *args], capture_output=True, timeout=120, check=False)
        if made.returncode != 0:
            raise RuntimeError(f"tahoe {args[0]}: {made.stderr.decode()[-500:]}")

    def run(node: Path) -> list[str]:
        return [tahoe, "run", "--allow-stdin-close", str(node)]

    introducer = root / "introducer"
    create("create-introducer", "--listen=tcp", f"--port=tcp:{ports[4]}:interface=127.0.0.1",
           f"--location=tcp:127.0.0.1:{ports[4]}", str(introducer))
    first = Managed("tahoe introducer", run(introducer), introducer / "bench-run.log")
    furl_file = introducer / "private" / "introducer.furl"
    try:
        wait_for(lambda: True if furl_file.exists() and furl_file.read_text().strip()
                 else None, 120, "Tahoe's introducer.furl", watch=[first])
    finally:
        first.stop()
    furl = furl_file.read_text().strip()
    nodes = [introducer]
    for i in range(4):
        nodes.append(root / f"storage{i}")
        create("create-node", "--listen=tcp", f"--port=tcp:{ports[i]}:interface=127.0.0.1",
               f"--location=tcp:127.0.0.1:{ports[i]}", "--webport=none",
               f"--introducer={furl}", f"--nickname=storage{i}", str(nodes[-1]))
    nodes.append(root / "client")
    create("create-client", f"--webport=tcp:{ports[5]}:interface=127.0.0.1",
           f"--introducer={furl}", "--shares-needed=2", "--shares-happy=3",
           "--shares-total=4", str(nodes[-1]))
    return GridUnderTest("tahoe", nodes, run, [tahoe, "-d", str(nodes[-1])])


def warm_up(grid: GridUnderTest, small: Path) -> None:
    """One untimed put, retried for up to 30 s: a Tahoe client can list its 4 servers as
    connected a moment before its uploader will use them ("client gave us zero servers")."""
    deadline = time.monotonic() + 30
    while True:
        try:
            grid.call("put", str(small))
            return
        except RuntimeError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def measure(grid: GridUnderTest, base: Path, source: Path, runs: int) -> dict[str, float]:
    starts = []
    for _ in range(runs - 1):
        processes, seconds = grid.start()
        starts.append(seconds)
        stop_all(processes)
    processes, seconds = grid.start()
    starts.append(seconds)
    try:
        small = base / f"{grid.name}-small"
        small.write_bytes(os.urandom(1024))
        warm_up(grid, small)
        puts, gets, versions = [], [], []
        for _ in range(5):
            seconds, out = grid.call("put", str(small))
            puts.append(seconds)
            seconds, back = grid.call("get", out.decode().strip())
            gets.append(seconds)
            assert back == small.read_bytes()
            versions.append(grid.call("--version")[0])
        size = source.stat().st_size
        put_s, out = grid.call("put", str(source))
        cap = out.decode().strip()
        target = base / f"{grid.name}-out"
        with target.open("wb") as sink:
            get_s = grid.call("get", cap, stdout=sink.fileno())[0]
        assert target.stat().st_size == size
        target.unlink()
        other = base / f"{grid.name}-web"  # other bytes: a convergent re-upload is free
        with source.open("rb") as original, other.open("wb") as copy:
            copy.write(os.urandom(16))
            while chunk := original.read(1 << 20):
                copy.write(chunk)
        web_put_s, web_cap = grid.web("PUT", "/uri", other)
        web_get_s, _ = grid.web("GET", "/uri/" + web_cap.decode().strip())
    finally:
        stop_all(processes)
    return {"cold": statistics.median(starts), "put": statistics.median(puts),
            "get": statistics.median(gets), "version": statistics.median(versions),
            "cli_up": size / put_s / 1e6, "cli_down": size / get_s / 1e6,
            "web_up": size / web_put_s / 1e6, "web_down": size / web_get_s / 1e6}


def report(size_mib: int, runs: int) -> None:
    with tempfile.TemporaryDirectory(prefix="mistgrid-nodebench-") as tmp:
        base = Path(tmp)
        source = base / "source"
        with source.open("wb") as out:
            for _ in range(size_mib):
                out.write(os.urandom(1024 * 1024))
        results = {"mistgrid": measure(mistgrid_grid(base), base, source, runs),
                   "tahoe": measure(tahoe_grid(base), base, source, runs)}
    print(f"grid of introducer + 4 storage + client on 127.0.0.1 (2-of-4); cold start: "
          f"median of {runs}; CLI calls: median of 5; files of {size_mib} MiB, MB/s")
    header = (f"{'impl':<9} {'cold start s':>12} {'put 1KiB s':>11} {'get 1KiB s':>11} "
              f"{'--version s':>12} {'CLI up':>7} {'CLI down':>9} {'web up':>7} "
              f"{'web down':>9}")
    print(header)
    print("-" * len(header))
    for impl, r in results.items():
        print(f"{impl:<9} {r['cold']:12.2f} {r['put']:11.2f} {r['get']:11.2f} "
              f"{r['version']:12.2f} {r['cli_up']:7.1f} {r['cli_down']:9.1f} "
              f"{r['web_up']:7.1f} {r['web_down']:9.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=20)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    report(args.size_mib, args.runs)


if __name__ == "__main__":
    main()
