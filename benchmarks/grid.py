"""Grid throughput: mistgrid and Tahoe-LAFS 1.20 side by side, same machine, same run.

Run: .venv/bin/python -m benchmarks.grid [--size-mib 100]

For k-of-N in (2-of-4, 3-of-10) it uploads and downloads one file of --size-mib random
bytes through 4 local storage servers, over GBS (HTTPS on 127.0.0.1):
  mistgrid  4 mistgrid storage servers; the client is benchmarks/_grid_client.py
  tahoe     4 Tahoe-LAFS 1.20 storage nodes; the client is a Tahoe client node driven by
            `tahoe put` / `tahoe get` (a static servers.yaml, happiness 4)
and prints MB/s each way with the peak RSS of the client and of the largest server.
Needs the cached Tahoe venv that the interop tests make (tests/interop/tahoe.py).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.interop.tahoe import start_storage_node, tahoe_venv
from tests.storage.conftest import start_mistgrid_server, wait_until_serving
from tests.storage.gbs_client import GbsClient

from mistgrid.gbs.nurl import Nurl
from mistgrid.storage.announcement import announcement, server_id, servers_yaml
from mistgrid.storage.tls import load_certificate
from mistgrid.testing.procs import Managed, free_ports, wait_for

PEAK = ("import resource, subprocess, sys\n"
        "r = subprocess.run(sys.argv[1:], capture_output=True)\n"
        "sys.stderr.buffer.write(r.stderr)\n"
        "print(r.stdout.decode().strip())\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
        "sys.exit(r.returncode)\n")


def peak_mb(pid: int) -> float:
    """VmHWM (peak resident set) of a running process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def run_measured(argv: list[str]) -> tuple[list[str], float, float]:
    """(stdout lines, seconds, peak RSS MB) of a child command."""
    start = time.monotonic()
    result = subprocess.run([sys.executable, "-c", PEAK, *argv], capture_output=True,
                            check=False, timeout=3600)
    seconds = time.monotonic() - start
    if result.returncode != 0:
        raise RuntimeError(result.stderr.decode(errors="replace")[-2000:])
    lines = result.stdout.decode().split()
    return lines[:-1], seconds, int(lines[-1]) / 1024


def mistgrid_run(base: Path, source: Path, k: int, n: int) -> dict[str, float]:
    servers = [start_mistgrid_server(base / f"mg{i}") for i in range(4)]
    try:
        for process, nurl in servers:
            probe = GbsClient(nurl)
            wait_until_serving(probe, process)
            probe.close()
        nurls = base / "nurls"
        nurls.write_text("\n".join(nurl.to_text() for _, nurl in servers))
        client = [sys.executable, "-m", "benchmarks._grid_client"]
        lines, _, up_rss = run_measured([*client, "upload", str(nurls), str(source), str(k),
                                         str(n), "4"])
        cap, up_seconds = lines[-2], float(lines[-1])
        out = base / "mg-out"
        lines, _, down_rss = run_measured([*client, "download", str(nurls), cap, str(out)])
        down_seconds = float(lines[-1])
        assert out.stat().st_size == source.stat().st_size
        out.unlink()
        server_rss = max(peak_mb(p.pid) for p, _ in servers)
    finally:
        for process, _ in servers:
            process.stop()
    return {"up": up_seconds, "down": down_seconds, "client_rss": max(up_rss, down_rss),
            "server_rss": server_rss}


def tahoe_run(base: Path, source: Path, k: int, n: int) -> dict[str, float]:
    tahoe = tahoe_venv() / "tahoe"
    nodes = [start_storage_node(base / f"tahoe{i}") for i in range(4)]
    procs = [node.process for node in nodes]
    try:
        nurls: list[Nurl] = [node.nurl() for node in nodes]
        for node, nurl in zip(nodes, nurls, strict=True):
            probe = GbsClient(nurl)
            wait_until_serving(probe, node.process)
            probe.close()
        (web,) = free_ports(1)
        client_dir = base / "tahoe-client"
        subprocess.run([str(tahoe), "create-client", f"--webport=tcp:{web}:interface=127.0.0.1",
                        f"--shares-needed={k}", "--shares-happy=4", f"--shares-total={n}",
                        str(client_dir)], check=True, capture_output=True)
        entries = {}
        for node, nurl in zip(nodes, nurls, strict=True):
            cert = load_certificate(node.directory / "private" / "node.pem")
            ann = announcement([nurl], cert, node.directory.name)
            ann["anonymous-storage-FURL"] = (node.directory / "private" /
                                             "storage.furl").read_text().strip()
            entries[server_id(cert)] = ann
        (client_dir / "private" / "servers.yaml").write_text(servers_yaml(entries))
        client = Managed("tahoe client", [str(tahoe), "run", "--allow-stdin-close",
                                          str(client_dir)], client_dir / "run.log")
        procs.append(client)
        wait_for(lambda: True if (client_dir / "node.url").exists() else None, 60,
                 "the Tahoe client", watch=[client])
        time.sleep(3)  # let it connect to the four servers
        start = time.monotonic()
        put = subprocess.run([str(tahoe), "-d", str(client_dir), "put", str(source)],
                             capture_output=True, check=True, timeout=3600)
        up_seconds = time.monotonic() - start
        cap = put.stdout.decode().strip()
        out = base / "tahoe-out"
        start = time.monotonic()
        with out.open("wb") as sink:
            subprocess.run([str(tahoe), "-d", str(client_dir), "get", cap], stdout=sink,
                           check=True, timeout=3600)
        down_seconds = time.monotonic() - start
        assert out.stat().st_size == source.stat().st_size
        out.unlink()
        client_rss = peak_mb(client.pid)
        server_rss = max(peak_mb(node.process.pid) for node in nodes)
    finally:
        for proc in procs:
            proc.stop()
    return {"up": up_seconds, "down": down_seconds, "client_rss": client_rss,
            "server_rss": server_rss}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=100)
    args = parser.parse_args()
    size = args.size_mib * 1024 * 1024
    print(f"{args.size_mib} MiB through 4 local storage servers over GBS (HTTPS, 127.0.0.1); "
          f"MB/s = 10^6 bytes/s of file data; RSS peaks in MB")
    header = (f"{'k-of-N':<7} {'impl':<9} {'up MB/s':>8} {'down MB/s':>10} "
              f"{'client RSS':>11} {'server RSS':>11}")
    print(header)
    print("-" * len(header))
    for k, n in ((2, 4), (3, 10)):
        results = {}
        with tempfile.TemporaryDirectory(prefix="mistgrid-gridbench-") as tmp:
            base = Path(tmp)
            source = base / "source"
            with source.open("wb") as out:
                for _ in range(args.size_mib):
                    out.write(os.urandom(1024 * 1024))
            results["mistgrid"] = mistgrid_run(base, source, k, n)
            results["tahoe"] = tahoe_run(base, source, k, n)
        for impl, r in results.items():
            print(f"{k}-of-{n:<3} {impl:<9} {size / r['up'] / 1e6:8.1f} "
                  f"{size / r['down'] / 1e6:10.1f} {r['client_rss']:11.0f} "
                  f"{r['server_rss']:11.0f}")
        ratio_up = results["tahoe"]["up"] / results["mistgrid"]["up"]
        ratio_down = results["tahoe"]["down"] / results["mistgrid"]["down"]
        print(f"{'':<7} {'ratio':<9} {ratio_up:7.1f}x {ratio_down:9.1f}x")


if __name__ == "__main__":
    main()
