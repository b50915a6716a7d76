"""Check, verify, repair and deep-check, mistgrid and Tahoe-LAFS 1.20 side by side in one
run, each through its own CLI against its own client node.

Run: .venv/bin/python -m benchmarks.check [--runs 1] [--size-mib 100] [--files 1000]

The grid of benchmarks/nodes.py (an introducer, 4 storage nodes and a client node on
127.0.0.1), with the client set to k=3 N=10 (happy 4): each server holds 2 or 3 shares.
  check        `check CAP` of a --size-mib file (which servers hold which shares)
  verify       `check --verify CAP` (every share read and checked whole)
  repair       `check --repair CAP` after every share on one storage server was deleted
               (download, encode again, write the missing shares)
  deep-check   `deep-check alias:` of a tree of --files files of 1 KiB in 10 directories
Each is the median of --runs, in seconds, with the CPU seconds spent by the CLI process and
by every node (they share this machine's cores); "verify read" is the bytes the storage
servers read from disk over the share bytes stored (1.0 = each share read once). The ratio
column is Tahoe's time over mistgrid's.
Needs the cached Tahoe venv that the interop tests make (tests/interop/tahoe.py).
"""

from __future__ import annotations

import argparse
import functools
import os
import re
import tempfile
from pathlib import Path

from mistgrid.caps import base32
from mistgrid.grid.checker import parse_any_cap
from mistgrid.testing.procs import Managed, stop_all

from .dirs import make_tree, timed
from .grid import median_pairs, print_beside
from .nodes import GridUnderTest, mistgrid_grid, tahoe_grid, warm_up


def encode_3_of_10(grid: GridUnderTest) -> None:
    config = grid.client / "tahoe.cfg"
    text = config.read_text()
    for key, value in (("needed", "3"), ("happy", "4"), ("total", "10")):
        text = re.sub(rf"^shares\.{key}\s*=.*$", f"shares.{key} = {value}", text,
                      flags=re.MULTILINE)
    config.write_text(text)


def share_files(grid: GridUnderTest, cap: str) -> list[Path]:
    si = base32.b2a(parse_any_cap(cap).storage_index)  # type: ignore[union-attr]
    return [p for node in grid.nodes for p in node.glob(f"storage/shares/*/{si}/*")
            if p.name.isdigit()]


def read_bytes(processes: list[Managed]) -> int:
    """Bytes the node processes have read from storage so far (/proc/PID/io)."""
    total = 0
    for proc in processes:
        try:
            text = Path(f"/proc/{proc.pid}/io").read_text()
        except OSError:
            continue
        total += int(re.search(r"rchar: (\d+)", text).group(1))  # type: ignore[union-attr]
    return total


def measure(grid: GridUnderTest, base: Path, runs: int, size_mib: int,
            files: int) -> dict[str, tuple[float, float]]:
    encode_3_of_10(grid)
    processes, _ = grid.start()
    results: dict[str, list[tuple[float, float]]] = {}
    try:
        small = base / f"{grid.name}-1k"
        small.write_bytes(os.urandom(1024))
        warm_up(grid, small)
        grid.call("create-alias", "bench")
        grid.call("cp", "-r", str(base / "tree"), "bench:")
        for _run in range(runs):
            source = base / f"{grid.name}-big"
            source.write_bytes(os.urandom(size_mib * 1024 * 1024))
            cap = grid.call("put", str(source))[1].decode().strip()
            source.unlink()

            def cli(*args: str) -> float:
                return grid.call(*args)[0]

            results.setdefault(f"check, {size_mib} MiB 3-of-10", []).append(
                timed(processes, functools.partial(cli, "check", cap)))
            stored = sum(p.stat().st_size for p in share_files(grid, cap))
            before = read_bytes(processes)
            results.setdefault(f"verify, {size_mib} MiB", []).append(
                timed(processes, functools.partial(cli, "check", "--verify", cap)))
            ratio = (read_bytes(processes) - before) / stored
            results.setdefault("verify read / stored", []).append((ratio, 0.0))
            storage_node = next(n for n in grid.nodes if n.name == "storage0")
            for path in share_files(grid, cap):
                if storage_node in path.parents:
                    path.unlink()
            results.setdefault(f"repair, {size_mib} MiB", []).append(
                timed(processes, functools.partial(cli, "check", "--repair", cap)))
            results.setdefault(f"deep-check, {files} files", []).append(
                timed(processes, functools.partial(cli, "deep-check", "bench:")))
    finally:
        stop_all(processes)
    return median_pairs(results)


def report(runs: int, size_mib: int, files: int) -> None:
    with tempfile.TemporaryDirectory(prefix="mistgrid-checkbench-") as tmp:
        base = Path(tmp)
        make_tree(base / "tree", files)
        mine = measure(mistgrid_grid(base), base, runs, size_mib, files)
        theirs = measure(tahoe_grid(base), base, runs, size_mib, files)
    print_beside(f"check, verify, repair and deep-check through each CLI; grid of 4 storage "
                 f"nodes + client on 127.0.0.1 (3-of-10); medians of {runs}; seconds and "
                 "CPU seconds of the CLI and all nodes (\"verify read\": a ratio, not "
                 "seconds)", mine, theirs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--size-mib", type=int, default=100)
    parser.add_argument("--files", type=int, default=1000)
    args = parser.parse_args()
    report(args.runs, args.size_mib, args.files)


if __name__ == "__main__":
    main()
