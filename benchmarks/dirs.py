"""Directories and the file-manager CLI, mistgrid and Tahoe-LAFS 1.20 side by side in one
run, each through its own CLI against its own client node.

Run: .venv/bin/python -m benchmarks.dirs [--runs 3] [--files 1000] [--entries 10000]

The same grid for both as benchmarks/nodes.py (an introducer, 4 storage nodes and a
client node, 2-of-4, on 127.0.0.1). The same local tree for both: --files files of 1 KiB in
10 directories.
  cp -r          `cp -r TREE alias:dir` of a tree of new files (none stored yet; new
                 contents each run)
  ls -l          `ls -l alias:big`, a directory of --entries entries, each a different
                 CHK cap (made once with POST /uri?t=mkdir-with-children)
  backup         `backup TREE alias:bk` when nothing changed since the last one
  deep size      `stats alias:tree` of the tree copied by cp -r (deep-stats, sizes
                 included; Tahoe's CLI has no `deep-size` verb)
Each is the median of --runs, in seconds, with the CPU seconds spent by the CLI process
and by every node (they share this machine's cores). The ratio column is Tahoe's time
over mistgrid's.
Needs the cached Tahoe venv that the interop tests make (tests/interop/tahoe.py).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from mistgrid.testing.procs import Managed, stop_all

from .grid import children_cpu_seconds, cpu_seconds, median_pairs, print_beside
from .nodes import GridUnderTest, mistgrid_grid, tahoe_grid, warm_up


def make_tree(root: Path, files: int) -> None:
    for i in range(files):
        path = root / f"dir{i % 10}" / f"file{i:05d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(1024))


def timed(processes: list[Managed], action: Callable[[], float]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the CLI process and every node) of one action."""
    pids = [p.pid for p in processes]
    before = cpu_seconds(pids) + children_cpu_seconds()
    seconds = action()
    return seconds, cpu_seconds(pids) + children_cpu_seconds() - before


def big_directory_body(entries: int) -> bytes:
    """Children for a directory of `entries` names, each a different CHK cap (well
    formed; the files are never read: listing a directory reads only its table)."""
    def b32(count: int) -> str:
        return base64.b32encode(os.urandom(count)).decode().rstrip("=").lower()

    children = {f"entry-{i:06d}.txt": ["filenode", {
        "ro_uri": f"URI:CHK:{b32(16)}:{b32(32)}:2:4:{1000 + i}", "metadata": {}}]
        for i in range(entries)}
    return json.dumps(children).encode()


def measure(grid: GridUnderTest, base: Path, runs: int, files: int,
            entries: int) -> dict[str, tuple[float, float]]:
    tree = base / "tree"
    processes, _ = grid.start()
    results: dict[str, list[tuple[float, float]]] = {}
    try:
        small = base / f"{grid.name}-1k"
        small.write_bytes(os.urandom(1024))
        warm_up(grid, small)
        grid.call("create-alias", "bench")
        body = base / f"{grid.name}-children.json"
        body.write_bytes(big_directory_body(entries))
        _, made = grid.web("POST", "/uri?t=mkdir-with-children", body)
        grid.call("ln", made.decode().strip(), "bench:big")
        grid.call("backup", str(tree), "bench:bk")  # the first, untimed
        for run in range(runs):
            target = f"bench:copy{run}"
            grid.call("mkdir", target)

            def cli(*args: str) -> Callable[[], float]:
                return lambda: grid.call(*args)[0]

            fresh = base / f"{grid.name}-{run}" / "tree"  # new contents: nothing stored yet
            make_tree(fresh, files)
            results.setdefault(f"cp -r of {files} new files", []).append(timed(
                processes, cli("cp", "-r", str(fresh), target)))
            results.setdefault(f"ls -l of {entries} entries", []).append(timed(
                processes, cli("ls", "-l", "bench:big")))
            time.sleep(1.1)  # a new archive name (to the second)
            results.setdefault(f"no-change backup, {files} files", []).append(timed(
                processes, cli("backup", str(tree), "bench:bk")))
            results.setdefault(f"deep size (stats), {files} files", []).append(timed(
                processes, cli("stats", target + "/tree")))
    finally:
        stop_all(processes)
    return median_pairs(results)


def report(runs: int, files: int, entries: int) -> None:
    with tempfile.TemporaryDirectory(prefix="mistgrid-dirbench-") as tmp:
        base = Path(tmp)
        make_tree(base / "tree", files)
        mine = measure(mistgrid_grid(base), base, runs, files, entries)
        theirs = measure(tahoe_grid(base), base, runs, files, entries)
    print_beside(f"directories through each CLI; grid of 4 storage nodes + client on "
                 f"127.0.0.1 (2-of-4); medians of {runs}; seconds and CPU seconds of the CLI "
                 "and all nodes", mine, theirs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--entries", type=int, default=10000)
    args = parser.parse_args()
    report(args.runs, args.files, args.entries)


if __name__ == "__main__":
    main()
