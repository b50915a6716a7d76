"""Start-to-ready times and throughput of the private Tor and I2P test networks.

Run: .venv/bin/python -m benchmarks.networks [--runs 3]

Starts each network --runs times (one after the other, in a temporary directory), prints
min/median/max seconds from start to ready, and on the last run the throughput of 5 MiB
each way through a Tor exit, an ADD_ONION service and an I2P destination on another router.
Needs tor, tor-gencert, i2pd and a C compiler (scripts/test installs them).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from mistgrid.testing.echo import EchoServer, round_trip
from mistgrid.testing.i2pnet import CLIENT_SESSION_OPTIONS, SERVER_SESSION_OPTIONS, I2PNetwork
from mistgrid.testing.samclient import Stream, open_sessions
from mistgrid.testing.socksclient import socks_connect
from mistgrid.testing.tornet import TorNetwork

SIZE = 5 * 1024 * 1024


def rate(seconds: float) -> str:
    return f"{2 * SIZE / seconds / 1e6:6.1f} MB/s"


def tor_throughput(net: TorNetwork) -> list[tuple[str, str]]:
    data = os.urandom(SIZE)
    rows = []
    with EchoServer() as echo:
        sock, early = socks_connect(net.socks_port, "127.0.0.1", echo.port)
        with sock:
            back, seconds = round_trip(sock, data, early)
        assert back == data
        rows.append(("tor exit", rate(seconds)))
        with net.control() as control:
            service, _ = control.add_onion(80, echo.port)
            sock, early = socks_connect(net.socks_port, f"{service}.onion", 80)
            with sock:
                back, seconds = round_trip(sock, data, early)
            assert back == data
            rows.append(("tor onion (ADD_ONION)", rate(seconds)))
    return rows


def i2p_throughput(net: I2PNetwork) -> list[tuple[str, str]]:
    data = os.urandom(SIZE)
    server, client = open_sessions([(net.sam_port(2), "bench-srv", SERVER_SESSION_OPTIONS),
                                    (net.sam_port(3), "bench-cli", CLIENT_SESSION_OPTIONS)])
    with ThreadPoolExecutor(2) as pool, server, client:
        accepted = pool.submit(server.accept)
        stream = client.connect(server.b32)
        incoming, _ = accepted.result(120)
        for end in (stream, incoming):
            end.sock.settimeout(60)
        pool.submit(_echo, incoming)
        back, seconds = round_trip(stream, data)
        stream.close()
        incoming.close()
    assert back == data
    return [("i2p destination on another router", rate(seconds))]


def _echo(stream: Stream) -> None:
    while chunk := stream.recv(65536):
        stream.sendall(chunk)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    times: dict[str, list[float]] = {"tor": [], "i2p": []}
    rows: list[tuple[str, str]] = []
    for run in range(args.runs):
        last = run == args.runs - 1
        with tempfile.TemporaryDirectory(prefix="mistgrid-bench-") as base:
            for name, start_network, measure in (("tor", TorNetwork.start, tor_throughput),
                                                 ("i2p", I2PNetwork.start, i2p_throughput)):
                start = time.monotonic()
                network = start_network(Path(base) / name)
                times[name].append(time.monotonic() - start)
                try:
                    if last:
                        rows += measure(network)  # type: ignore[arg-type]
                finally:
                    network.stop()
    print(f"start to ready, {args.runs} runs (seconds)")
    print(f"{'network':<10} {'min':>6} {'median':>7} {'max':>6}")
    for name, values in times.items():
        print(f"{name:<10} {min(values):6.1f} {statistics.median(values):7.1f} "
              f"{max(values):6.1f}")
    print("\nthroughput, 5 MiB each way at once (both directions together)")
    for what, value in rows:
        print(f"{what:<36} {value}")


if __name__ == "__main__":
    main()
