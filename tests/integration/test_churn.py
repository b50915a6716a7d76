"""Churn on a real grid, the way a grid loses data slowly: 10 storage nodes (an introducer
tells the client of every new one), k=3 N=10 happy=7, 50 objects (CHK files, SDMF and MDMF
files, directories). Every round 2 random servers go away for good, 1 random share is
corrupted on disk and 2 fresh servers join; then `mistgrid deep-check --verify --repair
--add-lease` (a check without --verify reads no block, so it cannot see the corrupt share;
Tahoe's neither). After every round every object verifies healthy with 10 good shares on at
least 7 servers, and every file reads back byte for byte. Files lost: 0."""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path

import pytest

from mistgrid.testing.procs import Managed, stop_all, wait_for

from ..conftest import run_cli
from .test_introducer import connected, start_client, start_introducer, start_storage
from .test_web_grid import http

pytestmark = pytest.mark.slow

ROUNDS = int(os.environ.get("MISTGRID_CHURN_ROUNDS", "20"))
SERVERS = 10


def make_tree(url: str, rng: random.Random) -> tuple[str, dict[str, tuple[str, bytes]]]:
    """The root directory's cap, and {path: (cap, contents)} of every file below it."""
    status, root = http("POST", url + "uri?t=mkdir")
    assert status == 200
    base = url + "uri/" + root.decode()
    files: dict[str, tuple[str, bytes]] = {}
    for d in range(4):
        fmt = "MDMF" if d % 2 else "SDMF"
        assert http("POST", f"{base}?t=mkdir&name=d{d}&format={fmt}")[0] == 200
    for i in range(45):
        where = f"d{i % 4}/f{i}" if i % 3 else f"f{i}"
        data = rng.randbytes(rng.choice([100, 2000, 9000, 40_000]))
        query = ""
        if i % 9 == 4:
            query = "?format=SDMF"
        elif i % 9 == 8:
            query = "?format=MDMF"
        status, cap = http("PUT", f"{base}/{where}{query}", data)
        assert status == 201, cap
        files[where] = (cap.decode(), data)
    return root.decode(), files


def corrupt_one(rng: random.Random, nodes: list[Path]) -> Path:
    """Flip one byte in the middle of a random share on a running server."""
    shares = sorted(p for node in nodes for p in node.glob("storage/shares/*/*/*")
                    if p.name.isdigit() and p.parent.parent.name != "incoming")
    victim = rng.choice(shares)
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x42
    victim.write_bytes(bytes(data))
    return victim


def test_churn(tmp_path: Path) -> None:
    rng = random.Random(15)
    processes: list[Managed] = []
    try:
        furl = start_introducer(tmp_path, processes)
        live: dict[str, Path] = {}
        for i in range(SERVERS):
            live[f"s{i}"] = start_storage(tmp_path, f"s{i}", furl, processes)
        fresh = SERVERS
        client = start_client(tmp_path, furl, processes, needed=3, happy=7, total=10)
        wait_for(lambda: connected(client, SERVERS), 90, "the client to hear of 10 servers",
                 interval=0.5, watch=processes)
        url = (client / "node.url").read_text().strip()
        root, files = make_tree(url, rng)
        timings: list[float] = []
        for round_ in range(ROUNDS):
            for name in rng.sample(sorted(live), 2):  # gone for good
                node = live.pop(name)
                gone = next(p for p in processes if p.name.endswith(f" {node.name}"))
                gone.stop()
                processes.remove(gone)
            corrupt_one(rng, list(live.values()))
            for _ in range(2):
                name = f"s{fresh}"
                fresh += 1
                live[name] = start_storage(tmp_path, name, furl, processes)
            wait_for(lambda: connected(client, SERVERS), 90,
                     f"round {round_}: the client to see 10 live servers", interval=0.5,
                     watch=processes)
            # --verify too: a check reads no block, so only a verify finds the corrupt share;
            # the results after each repair come from a verify as well
            began = time.monotonic()
            result = run_cli("deep-check", "-d", str(client), "--verify", "--repair",
                             "--add-lease", "--raw", root)
            timings.append(time.monotonic() - began)
            assert result.returncode == 0, result.stderr.decode()
            units = [json.loads(line) for line in result.stdout.decode().splitlines()]
            objects = [u for u in units if u["type"] in ("file", "directory")]
            assert len(objects) == 50
            for unit in objects:
                where = "/".join(unit["path"]) or "<root>"
                repaired = unit["check-and-repair-results"]
                assert repaired["repair-successful"] or not repaired["repair-attempted"], (
                    round_, where, repaired)
                results = repaired["post-repair-results"]["results"]
                assert results["healthy"], (round_, where, repaired)
                assert results["count-shares-good"] == 10, (round_, where, results)
                assert results["count-happiness"] >= 7, (round_, where, results)
            for where, (cap, data) in files.items():
                assert http("GET", url + "uri/" + cap) == (200, data), (round_, where)
        print("deep-check --verify --repair seconds per round:",
              " ".join(f"{t:.1f}" for t in timings))
    finally:
        stop_all(processes)
