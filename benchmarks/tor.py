"""Throughput through Tor: mistgrid beside raw SOCKS and beside Tahoe-LAFS 1.20, one run.

Run: .venv/bin/python -m benchmarks.tor [--size-mib 20] [--runs 1]

On the private Tor network (tests' harness: 4 relays on 127.0.0.1), 4 mistgrid storage
nodes serve GBS as onion services on the network's tor. Then, all through that tor's SOCKS
port:
  raw       one SOCKS stream to an onion service on the same tor (a sink that reads
            --size-mib and answers, a source that sends it): what one circuit carries
  mistgrid  an anonymous mistgrid client node (k=2, N=4, happy=4) PUTs then GETs the file
            through its web API; its shares go to the 4 onion servers
  tahoe     a Tahoe-LAFS 1.20 client node (same k/N/happy, same 4 servers from a static
            servers.yaml: Tahoe reaches pb+tor NURLs through the tor's control port)
MB/s is file bytes per second (mistgrid and Tahoe upload N/k = 2x that over the network,
spread over 4 circuits); CPU is the client process's user+system seconds (for Tahoe, its
node process). The goal (issue "Anonymity, complete"): mistgrid >= 80% of raw, >= 3x Tahoe.
Needs tor, tor-gencert, and the cached Tahoe venv of the interop tests.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from tests.interop.tahoe import _create_client, _run_client

from mistgrid.storage.announcement import servers_yaml
from mistgrid.testing.procs import Managed, free_ports, stop_all, wait_for
from mistgrid.testing.socksclient import socks_connect
from mistgrid.testing.tornet import TorNetwork

from .grid import cpu_seconds, http_get, http_put

MISTGRID = str(Path(__file__).resolve().parents[1] / ".venv" / "bin" / "mistgrid")
CHUNK = 256 * 1024


class SinkSource:
    """A loopback TCP server: `up` reads `size` bytes and answers one byte; `down` sends
    `size` bytes. One connection at a time."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.mode = "up"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with conn:
                if self.mode == "up":
                    left = self.size
                    while left > 0:
                        data = conn.recv(CHUNK)
                        if not data:
                            break
                        left -= len(data)
                    conn.sendall(b"k")
                else:
                    block = os.urandom(CHUNK)
                    left = self.size
                    while left > 0:
                        conn.sendall(block[:min(left, CHUNK)])
                        left -= min(left, CHUNK)

    def close(self) -> None:
        self.listener.close()


def raw_run(net: TorNetwork, size: int) -> Row:
    """The transfer row of one SOCKS stream each way to an onion on the network's tor."""
    server = SinkSource(size)
    tors = net.pids()
    try:
        with net.control() as control:
            service, _ = control.add_onion(80, server.port, wait_published=120)
            block = os.urandom(CHUNK)
            sock, _early = socks_connect(net.socks_port, f"{service}.onion", 80, timeout=300)
            with sock:
                start, tor_start = time.monotonic(), cpu_seconds(tors)
                left = size
                while left > 0:
                    sock.sendall(block[:min(left, CHUNK)])
                    left -= min(left, CHUNK)
                assert sock.recv(1) == b"k"
                up, up_tor = time.monotonic() - start, cpu_seconds(tors) - tor_start
            server.mode = "down"
            sock, early = socks_connect(net.socks_port, f"{service}.onion", 80, timeout=300)
            with sock:
                start, tor_start = time.monotonic(), cpu_seconds(tors)
                got = len(early)
                while got < size:
                    data = sock.recv(CHUNK)
                    if not data:
                        break
                    got += len(data)
                down, down_tor = time.monotonic() - start, cpu_seconds(tors) - tor_start
            assert got == size
    finally:
        server.close()
    return up, 0.0, up_tor, down, 0.0, down_tor


def onion_servers(net: TorNetwork, base: Path, processes: list[Managed]) -> dict[str, object]:
    """Start 4 mistgrid storage nodes as onion services on the network's tor; their
    announcements {server id: ann}."""
    entries: dict[str, object] = {}
    ports = free_ports(4)
    for index, port in enumerate(ports):
        node = base / f"storage{index}"
        subprocess.run([MISTGRID, "create-node", "--listen=tor", "--hide-ip", "--webport",
                        "none", "--nickname", f"onion{index}", "--port",
                        f"tcp:{port}:interface=127.0.0.1", "--tor-control-port",
                        f"tcp:127.0.0.1:{net.control_port}", "--tor-socks-port",
                        f"tcp:127.0.0.1:{net.socks_port}", str(node)],
                       check=True, capture_output=True, timeout=120)
        processes.append(Managed(f"storage{index}", [MISTGRID, "run", str(node)],
                                 base / f"storage{index}.log"))
    for index in range(4):
        entry_file = base / f"storage{index}" / "private" / "announcement.json"
        wait_for(lambda f=entry_file: True if f.exists() else None, 300,  # type: ignore[misc]
                 f"onion storage{index}", interval=0.5, watch=processes)
        entry = json.loads(entry_file.read_text())
        entries[entry["server-id"]] = entry["ann"]
    return entries


Row = tuple[float, float, float, float, float, float]


def transfer(web_port: int, pid: int, tors: list[int], source: Path, base: Path) -> Row:
    """(up s, up CPU, up tor CPU, down s, down CPU, down tor CPU) of a PUT then GET
    through a client's web API (tor CPU: all the network's tor processes)."""
    before = cpu_seconds([pid]), cpu_seconds(tors)
    start = time.monotonic()
    cap = http_put(web_port, "/uri", source)
    up = time.monotonic() - start
    middle = cpu_seconds([pid]), cpu_seconds(tors)
    out = base / "out"
    start = time.monotonic()
    http_get(web_port, f"/uri/{cap}", out)
    down = time.monotonic() - start
    after = cpu_seconds([pid]), cpu_seconds(tors)
    if out.read_bytes() != source.read_bytes():
        raise RuntimeError("the file read back differs")
    out.unlink()
    return (up, middle[0] - before[0], middle[1] - before[1],
            down, after[0] - middle[0], after[1] - middle[1])


def mistgrid_client(net: TorNetwork, base: Path, entries: dict[str, object],
                    processes: list[Managed]) -> tuple[int, int]:
    """An anonymous mistgrid client (2-of-4, happy 4) of the 4 onion servers, connected
    to all: (web port, pid)."""
    (web,) = free_ports(1)
    node = base / "mistgrid-client"
    (node / "private").mkdir(parents=True, mode=0o700)
    (node / "private" / "servers.yaml").write_text(servers_yaml(entries))  # type: ignore[arg-type]
    (node / "tahoe.cfg").write_text(
        f"[node]\nanonymous = true\nweb.port = tcp:{web}:interface=127.0.0.1\n"
        f"[connections]\ntcp = tor\ntor.socks-proxy = tcp:127.0.0.1:{net.socks_port}\n"
        f"[tor]\ncontrol.port = tcp:127.0.0.1:{net.control_port}\n"
        "[client]\nshares.needed = 2\nshares.happy = 4\nshares.total = 4\n")
    process = Managed("mistgrid client", [MISTGRID, "run", str(node)], base / "client.log")
    processes.append(process)
    url = f"http://127.0.0.1:{web}/?t=json"

    def connected() -> bool | None:
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                servers = json.load(response)["servers"]
        except OSError:
            return None
        return True if sum(s["connected"] for s in servers) == 4 else None

    wait_for(connected, 300, "the mistgrid client to reach the 4 onions", interval=1.0,
             watch=processes)
    return web, process.pid


def tahoe_client(net: TorNetwork, base: Path, entries: dict[str, object],
                 processes: list[Managed]) -> tuple[int, int]:
    """A Tahoe-LAFS 1.20 client (2-of-4, happy 4) of the same 4 onions: (web port, pid)."""
    node = base / "tahoe-client"
    tahoe = _create_client(node, 2, 4, 4)
    (node / "private" / "servers.yaml").write_text(servers_yaml(entries))  # type: ignore[arg-type]
    # Tahoe 1.20 takes the Tor route for a pb+tor NURL only when [connections] tcp = tor
    # (with tcp = tcp it hands the .onion name to a plain HTTP agent).
    config = (node / "tahoe.cfg").read_text()
    (node / "tahoe.cfg").write_text(
        config + f"\n[connections]\ntcp = tor\n"
        f"\n[tor]\ncontrol.port = tcp:127.0.0.1:{net.control_port}\n")
    client = _run_client(tahoe, node, 4, 300)
    processes.append(client.process)
    url = (node / "node.url").read_text().strip()
    return int(url.rsplit(":", 1)[1].strip("/")), client.process.pid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=20)
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    size = args.size_mib * 1024 * 1024
    rows: dict[str, list[Row]] = {"raw": [], "mistgrid": [], "tahoe": []}
    with tempfile.TemporaryDirectory(prefix="mistgrid-torbench-") as tmp:
        base = Path(tmp)
        source = base / "source"
        net = TorNetwork.start(base / "tor")
        processes: list[Managed] = []
        try:
            entries = onion_servers(net, base, processes)
            clients = {"mistgrid": mistgrid_client(net, base, entries, processes),
                       "tahoe": tahoe_client(net, base, entries, processes)}
            for _ in range(args.runs):
                rows["raw"].append(raw_run(net, size))
                for name, (web, pid) in clients.items():
                    # new bytes every time: a file stored before is not sent again
                    # (convergent encryption gives it the same cap and shares)
                    source.write_bytes(os.urandom(size))
                    rows[name].append(transfer(web, pid, net.pids(), source, base))
        finally:
            stop_all(processes)
            net.stop()
    report(args.size_mib, size, args.runs, rows)


def report(size_mib: int, size: int, runs: int, rows: dict[str, list[Row]]) -> None:
    medians = {name: tuple(statistics.median(r[i] for r in values) for i in range(6))
               for name, values in rows.items()}
    print(f"{size_mib} MiB through the private Tor network (onion services; mistgrid and "
          f"Tahoe: 2-of-4 on 4 onion storage servers); median of {runs} run(s); "
          f"{os.cpu_count()} CPUs; CPU: client process / all tor processes, seconds")
    header = (f"{'impl':<9} {'up MB/s':>8} {'up CPU':>12} {'down MB/s':>10} "
              f"{'down CPU':>12} {'up/raw':>7} {'down/raw':>9}")
    print(header)
    print("-" * len(header))
    raw_up, raw_down = medians["raw"][0], medians["raw"][3]
    for name, (up, up_cpu, up_tor, down, down_cpu, down_tor) in medians.items():
        print(f"{name:<9} {size / up / 1e6:8.2f} {up_cpu:5.2f}/{up_tor:6.2f} "
              f"{size / down / 1e6:10.2f} {down_cpu:5.2f}/{down_tor:6.2f} "
              f"{raw_up / up:7.0%} {raw_down / down:9.0%}")
    mine, theirs = medians["mistgrid"], medians["tahoe"]
    print(f"tahoe/mistgrid time: up {theirs[0] / mine[0]:.1f}x, down "
          f"{theirs[3] / mine[3]:.1f}x")


if __name__ == "__main__":
    main()
