"""Grid throughput: mistgrid and Tahoe-LAFS 1.20 side by side, same machine, same run.

Run: .venv/bin/python -m benchmarks.grid [--size-mib 100]

For k-of-N in (2-of-4, 3-of-10) it uploads and downloads one file of --size-mib random
bytes through 4 local storage servers, over GBS (HTTPS on 127.0.0.1):
  mistgrid  4 mistgrid storage servers; the client is benchmarks/_grid_client.py
  tahoe     4 Tahoe-LAFS 1.20 storage nodes; the client is a Tahoe client node driven by
            `tahoe put` / `tahoe get` (a static servers.yaml, happiness 4)
and prints MB/s each way with the peak RSS of the client and of the largest server, and
the CPU seconds each side spent per transfer (client: mistgrid's client process, or Tahoe's
client node plus its `tahoe put/get` process; servers: all four together). CPU seconds
are a second view of efficiency: on this kind of small machine the processes compete for
the same cores, so MB/s alone mixes the client's cost with the servers'.
With --runs R each transfer is repeated R times (fresh servers each time for mistgrid, one
set for Tahoe) and the median is shown.
Needs the cached Tahoe venv that the interop tests make (tests/interop/tahoe.py).
"""

from __future__ import annotations

import argparse
import http.client
import os
import resource
import statistics
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


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds used so far by running processes."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / ticks


def children_cpu_seconds() -> float:
    """User + system CPU seconds of this process's finished (waited-for) children."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def median_pairs(results: dict[str, list[tuple[float, float]]]
                 ) -> dict[str, tuple[float, float]]:
    """{operation: (median seconds, median CPU seconds)} of several runs' pairs."""
    return {name: (statistics.median(v[0] for v in values),
                   statistics.median(v[1] for v in values))
            for name, values in results.items()}


def print_beside(title: str, mine: dict[str, tuple[float, float]],
                 theirs: dict[str, tuple[float, float]]) -> None:
    """A table of (seconds, CPU seconds) per operation, mistgrid beside Tahoe, with Tahoe's
    time over mistgrid's."""
    print(title)
    header = (f"{'operation':<32} {'mistgrid s':>10} {'cpu':>6} {'tahoe s':>9} {'cpu':>6} "
              f"{'tahoe/mistgrid':>14}")
    print(header)
    print("-" * len(header))
    for name, (seconds, cpu) in mine.items():
        t_seconds, t_cpu = theirs[name]
        print(f"{name:<32} {seconds:10.3f} {cpu:6.2f} {t_seconds:9.3f} {t_cpu:6.2f} "
              f"{t_seconds / seconds:14.1f}")


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


def mistgrid_run(base: Path, source: Path, k: int, n: int, runs: int) -> dict[str, float]:
    results: dict[str, list[float]] = {}
    for run in range(runs):
        servers = [start_mistgrid_server(base / f"mg{run}-{i}") for i in range(4)]
        pids = [p.pid for p, _ in servers]
        try:
            for process, nurl in servers:
                probe = GbsClient(nurl)
                wait_until_serving(probe, process)
                probe.close()
            nurls = base / "nurls"
            nurls.write_text("\n".join(nurl.to_text() for _, nurl in servers))
            client = [sys.executable, "-m", "benchmarks._grid_client"]
            out = base / "mg-out"
            servers_before, client_before = cpu_seconds(pids), children_cpu_seconds()
            lines, _, rss = run_measured([*client, "upload", str(nurls), str(source), str(k),
                                          str(n), "4"])
            record(results, "up", float(lines[-1]), children_cpu_seconds() - client_before,
                   cpu_seconds(pids) - servers_before, rss)
            cap = lines[-2]
            servers_before, client_before = cpu_seconds(pids), children_cpu_seconds()
            lines, _, rss = run_measured([*client, "download", str(nurls), cap, str(out)])
            record(results, "down", float(lines[-1]), children_cpu_seconds() - client_before,
                   cpu_seconds(pids) - servers_before, rss)
            assert out.stat().st_size == source.stat().st_size
            out.unlink()
            results.setdefault("server_rss", []).append(max(peak_mb(pid) for pid in pids))
        finally:
            for process, _ in servers:
                process.stop()
    return medians(results)


def record(results: dict[str, list[float]], phase: str, seconds: float, client_cpu: float,
           servers_cpu: float, client_rss: float) -> None:
    for key, value in ((phase, seconds), (f"{phase}_client_cpu", client_cpu),
                       (f"{phase}_servers_cpu", servers_cpu), ("client_rss", client_rss)):
        results.setdefault(key, []).append(value)


def medians(results: dict[str, list[float]]) -> dict[str, float]:
    return {key: (max(values) if key.endswith("_rss") else statistics.median(values))
            for key, values in results.items()}


def tahoe_run(base: Path, source: Path, k: int, n: int, runs: int) -> dict[str, float]:
    """Tahoe's client node is driven through its web API directly (PUT /uri, GET
    /uri/$CAP, streamed), so the timing holds no `tahoe` CLI start-up (~0.8 s)."""
    tahoe = tahoe_venv() / "tahoe"
    nodes = [start_storage_node(base / f"tahoe{i}") for i in range(4)]
    procs = [node.process for node in nodes]
    results: dict[str, list[float]] = {}
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
        server_pids = [node.process.pid for node in nodes]
        out = base / "tahoe-out"
        for run in range(runs):
            if run:  # a different file each time, so that nothing is deduplicated
                with source.open("r+b") as handle:
                    handle.write(os.urandom(16))
            before = cpu_seconds(server_pids), cpu_seconds([client.pid])
            start = time.monotonic()
            cap = http_put(web, "/uri", source)
            seconds = time.monotonic() - start
            record(results, "up", seconds, cpu_seconds([client.pid]) - before[1],
                   cpu_seconds(server_pids) - before[0], 0)
            before = cpu_seconds(server_pids), cpu_seconds([client.pid])
            start = time.monotonic()
            http_get(web, f"/uri/{cap}", out)
            seconds = time.monotonic() - start
            record(results, "down", seconds, cpu_seconds([client.pid]) - before[1],
                   cpu_seconds(server_pids) - before[0], 0)
            assert out.stat().st_size == source.stat().st_size
            out.unlink()
        results["client_rss"] = [peak_mb(client.pid)]
        results["server_rss"] = [max(peak_mb(pid) for pid in server_pids)]
    finally:
        for proc in procs:
            proc.stop()
    return medians(results)


def http_put(port: int, path: str, source: Path) -> str:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=3600)
    with source.open("rb") as body:
        connection.request("PUT", path, body=body,
                           headers={"Content-Length": str(source.stat().st_size)})
        response = connection.getresponse()
        text = response.read().decode()
    connection.close()
    if response.status not in (200, 201):
        raise RuntimeError(f"PUT {path}: HTTP {response.status}: {text[:200]}")
    return text.strip()


def http_get(port: int, path: str, target: Path) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=3600)
    connection.request("GET", path)
    response = connection.getresponse()
    if response.status != 200:
        raise RuntimeError(f"GET: HTTP {response.status}")
    with target.open("wb") as out:
        while chunk := response.read(1024 * 1024):
            out.write(chunk)
    connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=100)
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    size = args.size_mib * 1024 * 1024
    print(f"{args.size_mib} MiB through 4 local storage servers over GBS (HTTPS, 127.0.0.1); "
          f"MB/s = 10^6 bytes/s of file data; CPU in seconds (client + servers); RSS peaks "
          f"in MB; median of {args.runs} run(s); {os.cpu_count()} CPUs")
    header = (f"{'k-of-N':<7} {'impl':<9} {'up MB/s':>8} {'down MB/s':>10} "
              f"{'up CPU':>11} {'down CPU':>11} {'client RSS':>11} {'server RSS':>11}")
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
            results["mistgrid"] = mistgrid_run(base, source, k, n, args.runs)
            results["tahoe"] = tahoe_run(base, source, k, n, args.runs)
        for impl, r in results.items():
            up_cpu = f"{r['up_client_cpu']:.2f}+{r['up_servers_cpu']:.2f}"
            down_cpu = f"{r['down_client_cpu']:.2f}+{r['down_servers_cpu']:.2f}"
            print(f"{k}-of-{n:<3} {impl:<9} {size / r['up'] / 1e6:8.1f} "
                  f"{size / r['down'] / 1e6:10.1f} {up_cpu:>11} {down_cpu:>11} "
                  f"{r['client_rss']:11.0f} {r['server_rss']:11.0f}")
        ratio_up = results["tahoe"]["up"] / results["mistgrid"]["up"]
        ratio_down = results["tahoe"]["down"] / results["mistgrid"]["down"]
        print(f"{'':<7} {'ratio':<9} {ratio_up:7.1f}x {ratio_down:9.1f}x")


if __name__ == "__main__":
    main()
