"""The whole life of an anonymous grid, every node under `strace -f`, meant to run inside a
network namespace that has only a loopback interface (`unshare -n python -m
tests.network.whole_life OUT`): see test_whole_life.py.

`tor`: a private Tor network (in the namespace too), then an onion-only introducer, an
onion-only anonymous storage node and an anonymous client, each made by `mistgrid
create-*` and traced from its first instruction: start, introduction, 5 MiB stored and read
back, every node stopped and started again (the file read again, another stored), stop.
`i2p`: the same life on a private I2P network for an anonymous client with TCP disabled
(restarted; I2P has no introducers yet: it is given the server's announcement), and an
anonymous storage node whose only address is an I2P destination (traced, not restarted: a
destination started again on this private network is not found again for many minutes,
while the floodfills still hand out its old lease set). Writes OUT/result.json
with the allowed ports and the strace logs; exits non-zero on any failure.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import struct
import sys
import urllib.request
from pathlib import Path

from mistgrid.storage.announcement import servers_yaml
from mistgrid.testing.i2pnet import CLIENT_SESSION_OPTIONS, SERVER_SESSION_OPTIONS, I2PNetwork
from mistgrid.testing.procs import Managed, free_ports, stop_all, wait_for
from mistgrid.testing.straceproof import STRACE_ARGS
from mistgrid.testing.tornet import TorNetwork

from ..conftest import run_cli
from .test_node_tor import MISTGRID, all_connected, announced

SIZE = 5 * 1024 * 1024


def loopback_up() -> None:
    """Bring `lo` up (a new network namespace has it down), by ioctl: no tool needed."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        request = struct.pack("16sH14s", b"lo", 0, b"\0" * 14)
        flags = struct.unpack("16sH", fcntl.ioctl(probe, 0x8913, request)[:18])[1]
        fcntl.ioctl(probe, 0x8914, struct.pack("16sH14s", b"lo", flags | 1, b"\0" * 14))


def interfaces() -> list[str]:
    return [name for _index, name in socket.if_nameindex()]


class Life:
    def __init__(self, out: Path) -> None:
        self.out = out
        self.processes: list[Managed] = []
        self.nodes: list[Path] = []
        self.logs: dict[str, list[str]] = {}

    def end(self) -> None:
        """Stop every node, then reap strace: a SIGTERM to strace only detaches it, and
        the node it traced would go on running."""
        for node in reversed(dict.fromkeys(self.nodes)):
            self.stop(node)
        stop_all(self.processes)

    def traced(self, node: Path, run: int) -> Managed:
        self.nodes.append(node)
        log = self.out / f"{node.name}.{run}.strace"
        self.logs.setdefault(node.name, []).append(str(log))
        process = Managed(f"{node.name} (run {run})",
                          ["strace", *STRACE_ARGS, "-o", str(log), MISTGRID, "run", str(node)],
                          self.out / f"{node.name}.{run}.log")
        self.processes.append(process)
        return process

    def create(self, *args: str) -> None:
        made = run_cli(*args)
        if made.returncode != 0:
            raise RuntimeError(f"mistgrid {args[0]} failed: {made.stderr.decode()}")

    def stop(self, node: Path) -> None:
        run_cli("stop", str(node))

    def round_trip(self, url: str, data: bytes) -> str:
        request = urllib.request.Request(url + "uri", data=data, method="PUT")
        with urllib.request.urlopen(request, timeout=600) as response:
            cap: str = response.read().decode()
        self.read_back(url, cap, data)
        return cap

    def read_back(self, url: str, cap: str, data: bytes) -> None:
        with urllib.request.urlopen(url + "uri/" + cap, timeout=600) as response:
            if response.read() != data:
                raise RuntimeError("the file read back differs")

    def first_life(self, client: Path, interval: float) -> tuple[str, str, bytes]:
        """Once the client reaches its server, store 5 MiB and read it back: the client's
        URL, the cap and the data."""
        wait_for(announced(client / "node.url"), 120, "the client's web API",
                 watch=self.processes)
        url = (client / "node.url").read_text().strip()
        wait_for(all_connected(url, 1), 400, "the client to reach its server",
                 interval=interval, watch=self.processes)
        data = os.urandom(SIZE)
        cap = self.round_trip(url, data)
        print("first life: stored and read 5 MiB", flush=True)
        return url, cap, data

    def second_life(self, nodes: list[Path], url: str, cap: str, data: bytes,
                    interval: float) -> None:
        """Restart `nodes`, and read the file again once the client reaches its server."""
        self.restart(nodes)
        wait_for(all_connected(url, 1), 400, "the client to reach its server again",
                 interval=interval, watch=self.processes)
        self.read_back(url, cap, data)

    def restart(self, nodes: list[Path]) -> None:
        """Stop every node (clients first), then start each again, traced anew."""
        for node in reversed(nodes):
            self.stop(node)
        names = {node.name for node in nodes}
        ending = [p for p in self.processes if p.name.split(" ")[0] in names]
        stop_all(ending)
        self.processes = [p for p in self.processes if p not in ending]
        for node in nodes:
            self.traced(node, 2)
            wait_for(announced(node / "running.process"), 120, f"{node.name} to run again",
                     watch=self.processes)


class TorLife(Life):
    def __init__(self, out: Path, tor: TorNetwork) -> None:
        super().__init__(out)
        self.allowed = [tor.socks_port, tor.control_port]
        self.tor_args = ["--tor-control-port", f"tcp:127.0.0.1:{tor.control_port}",
                         "--tor-socks-port", f"tcp:127.0.0.1:{tor.socks_port}"]

    def live(self) -> None:
        intro_port, storage_port, web_port = free_ports(3)
        introducer, storage, client = (self.out / n for n in ("introducer", "storage",
                                                             "client"))
        self.create("create-introducer", "--listen=tor", "--hide-ip", "--webport", "none",
                    "--port", f"tcp:{intro_port}:interface=127.0.0.1", *self.tor_args,
                    str(introducer))
        self.traced(introducer, 1)
        furl_file = introducer / "private" / "introducer.furl"
        wait_for(announced(furl_file), 300, "the introducer's onion", interval=0.5,
                 watch=self.processes)
        furl = furl_file.read_text().strip()
        self.create("create-node", "--listen=tor", "--hide-ip", "--webport", "none",
                    "--introducer", furl, "--port",
                    f"tcp:{storage_port}:interface=127.0.0.1", *self.tor_args, str(storage))
        self.create("create-client", "--hide-ip", "--introducer", furl, "--webport",
                    f"tcp:{web_port}:interface=127.0.0.1", "--shares-needed", "1",
                    "--shares-happy", "1", "--shares-total", "1", *self.tor_args,
                    str(client))
        for node in (storage, client):
            self.traced(node, 1)
        url, cap, data = self.first_life(client, 1.0)
        self.second_life([introducer, storage, client], url, cap, data, 1.0)
        self.round_trip(url, os.urandom(100_000))
        print("second life: read the file again, stored another", flush=True)
        for node in (client, storage, introducer):
            self.stop(node)


def _options(values: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in values.items())


class I2PLife(Life):
    def __init__(self, out: Path, i2p: I2PNetwork) -> None:
        super().__init__(out)
        self.server_sam, self.client_sam = i2p.sam_port(2), i2p.sam_port(3)
        self.allowed = [self.server_sam, self.client_sam]

    def live(self) -> None:
        storage_port, web_port = free_ports(2)
        storage, client = self.out / "storage", self.out / "client"
        for node in (storage, client):
            (node / "private").mkdir(parents=True, mode=0o700)
        (storage / "tahoe.cfg").write_text(
            "[node]\nanonymous = true\n"
            f"tub.port = tcp:{storage_port}:interface=127.0.0.1\n"
            f"tub.location = i2p:{storage / 'private' / 'i2p.keys'}\n"
            f"[i2p]\nsam.port = tcp:127.0.0.1:{self.server_sam}\n"
            f"session.options = {_options(SERVER_SESSION_OPTIONS)}\n"
            "[storage]\nenabled = true\n")
        self.traced(storage, 1)
        announcement = storage / "private" / "announcement.json"
        wait_for(announced(announcement), 300, "the I2P destination", interval=0.5,
                 watch=self.processes)
        entry = json.loads(announcement.read_text())
        (client / "private" / "servers.yaml").write_text(
            servers_yaml({entry["server-id"]: entry["ann"]}))
        (client / "tahoe.cfg").write_text(
            f"[node]\nanonymous = true\nweb.port = tcp:{web_port}:interface=127.0.0.1\n"
            f"[connections]\ntcp = disabled\ni2p.sam-api = tcp:127.0.0.1:{self.client_sam}\n"
            f"[i2p]\nsession.options = {_options(CLIENT_SESSION_OPTIONS)}\n"
            "[client]\nshares.needed = 1\nshares.happy = 1\nshares.total = 1\n"
            "[storage]\nenabled = false\n")
        self.traced(client, 1)
        url, cap, data = self.first_life(client, 2.0)
        self.second_life([client], url, cap, data, 2.0)
        print("second life: read the file again", flush=True)
        for node in (client, storage):
            self.stop(node)


def main(out: Path, network: str) -> int:
    loopback_up()
    if interfaces() != ["lo"]:
        print(f"not in a loopback-only network namespace: {interfaces()}", file=sys.stderr)
        return 2
    started: TorNetwork | I2PNetwork
    life: Life
    if network == "tor":
        started = TorNetwork.start(out / "tor")
        life = TorLife(out, started)
    else:
        started = I2PNetwork.start(out / "i2p")
        life = I2PLife(out, started)
    try:
        life.live()
    finally:
        life.end()
        started.stop()
    (out / "result.json").write_text(json.dumps({
        "allowed": life.allowed, "logs": life.logs}))
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "tor"))
