"""Mutable files, mistgrid and Tahoe-LAFS 1.20 side by side in one run, through each
client node's web API.

Run: .venv/bin/python -m benchmarks.mutable [--runs 5]

The same grid for both as benchmarks/nodes.py (an introducer, 4 storage nodes and a
client node, 2-of-4, on 127.0.0.1). For SDMF and MDMF: create a 1 KiB file (PUT
/uri?format=), read it, create a 10 MiB file, read it, replace it with other 10 MiB; and
write 4 KiB at offset 50 MiB into a 100 MiB MDMF file (PUT /uri/$CAP?offset=). Each is the
median of --runs (1 KiB: of 5 x --runs) in seconds, with the CPU seconds the client node and
the four storage nodes spent on it (they share this machine's cores). The ratio column is
Tahoe's time over mistgrid's.
Needs the cached Tahoe venv that the interop tests make (tests/interop/tahoe.py).
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from mistgrid.testing.procs import Managed, stop_all

from .grid import cpu_seconds, median_pairs, print_beside
from .nodes import GridUnderTest, mistgrid_grid, tahoe_grid, warm_up

MIB = 1024 * 1024


def timed(grid: GridUnderTest, processes: list[Managed],
          action: Callable[[], float]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of every node) of one action."""
    pids = [p.pid for p in processes]
    before = cpu_seconds(pids)
    seconds = action()
    return seconds, cpu_seconds(pids) - before


def web_call(grid: GridUnderTest, method: str, path: str,
             body: Path | None = None) -> Callable[[], float]:
    return lambda: grid.web(method, path, body)[0]


def measure(grid: GridUnderTest, base: Path, runs: int) -> dict[str, tuple[float, float]]:
    processes, _ = grid.start()
    results: dict[str, list[tuple[float, float]]] = {}
    try:
        small = base / f"{grid.name}-1k"
        small.write_bytes(os.urandom(1024))
        warm_up(grid, small)
        big = base / f"{grid.name}-10m"
        other = base / f"{grid.name}-10m-b"
        huge = base / f"{grid.name}-100m"
        patch = base / f"{grid.name}-4k"
        patch.write_bytes(os.urandom(4096))
        for fmt in ("SDMF", "MDMF"):
            for _ in range(5 * runs):
                caps: list[str] = []

                def create(fmt: str = fmt, caps: list[str] = caps) -> float:
                    seconds, cap = grid.web("PUT", f"/uri?format={fmt}", small)
                    caps.append(cap.decode().strip())
                    return seconds

                results.setdefault(f"create 1 KiB {fmt}", []).append(
                    timed(grid, processes, create))
                results.setdefault(f"read 1 KiB {fmt}", []).append(timed(
                    grid, processes, web_call(grid, "GET", "/uri/" + caps[0])))
            for _ in range(runs):
                big.write_bytes(os.urandom(10 * MIB))
                other.write_bytes(os.urandom(10 * MIB))
                caps = []

                def create_big(fmt: str = fmt, caps: list[str] = caps) -> float:
                    seconds, cap = grid.web("PUT", f"/uri?format={fmt}", big)
                    caps.append(cap.decode().strip())
                    return seconds

                results.setdefault(f"create 10 MiB {fmt}", []).append(
                    timed(grid, processes, create_big))
                results.setdefault(f"read 10 MiB {fmt}", []).append(timed(
                    grid, processes, web_call(grid, "GET", "/uri/" + caps[0])))
                results.setdefault(f"replace 10 MiB {fmt}", []).append(timed(
                    grid, processes, web_call(grid, "PUT", "/uri/" + caps[0], other)))
        with huge.open("wb") as out:
            for _ in range(100):
                out.write(os.urandom(MIB))
        _, cap = grid.web("PUT", "/uri?format=MDMF", huge)
        text = cap.decode().strip()
        for i in range(runs):
            results.setdefault("4 KiB at 50 MiB, 100 MiB MDMF", []).append(timed(
                grid, processes,
                web_call(grid, "PUT", f"/uri/{text}?offset={50 * MIB + i}", patch)))
    finally:
        stop_all(processes)
    return median_pairs(results)


def report(runs: int) -> None:
    with tempfile.TemporaryDirectory(prefix="mistgrid-mutablebench-") as tmp:
        base = Path(tmp)
        mine = measure(mistgrid_grid(base), base, runs)
        theirs = measure(tahoe_grid(base), base, runs)
    print_beside(f"mutable files through the web API; grid of 4 storage nodes + client on "
                 f"127.0.0.1 (2-of-4); medians of {runs} (1 KiB: of {5 * runs}); seconds "
                 "and CPU seconds of all nodes", mine, theirs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    report(args.runs)


if __name__ == "__main__":
    main()
