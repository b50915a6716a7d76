"""The whole life of an anonymous grid, every node under `strace -f`, meant to run inside a
network namespace that has only a loopback interface (`unshare -n python -m
tests.network.whole_life OUT LIFE`): see test_whole_life.py.

`tor`: a private Tor network (in the namespace too), then an onion-only introducer, an
onion-only anonymous storage node and an anonymous client, each made by `mistgrid
create-*` and traced from its first instruction: start, introduction, 5 MiB stored and read
back, every node stopped and started again (the file read again, another stored), stop.
`tor-launch`: the same, but the storage node launches its own tor and the client one that
reaches the network only through a private bridge relay (their tors traced with them).
`i2p-grid`: a private I2P network and a grid on I2P alone (introducer, storage node and
client; TCP disabled, no Tor); the client is restarted, the introducer and the storage
node are not (a destination started again on this private network is not found again for
many minutes, while the floodfills still hand out its old lease set).
Writes OUT/result.json with the strace logs and, for each, what it may show; exits
non-zero on any failure.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import socket
import struct
import sys
import urllib.request
from pathlib import Path
from typing import Any

from mistgrid.node.onion import ONION_TIMEOUT
from mistgrid.testing.i2pnet import CLIENT_SESSION_OPTIONS, SERVER_SESSION_OPTIONS, I2PNetwork
from mistgrid.testing.procs import Managed, free_ports, stop_all, wait_for
from mistgrid.testing.straceproof import STRACE_ARGS
from mistgrid.testing.tornet import BridgeRelay, TorNetwork

from ..conftest import run_cli
from .test_node_tor import MISTGRID, all_connected, announced
from .test_tor_launch import tor_section

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
        self.allowed: list[int] = []

    def rule(self, node: str, run: int) -> dict[str, Any]:
        """What the trace of `node`'s run may show: the loopback ports the node itself may
        reach, the (address, port) peers a daemon it launched may reach, and how many
        daemons it launches."""
        return {"ports": self.allowed, "peers": [], "daemons": 0}

    def live(self) -> None:
        raise NotImplementedError

    def checks(self) -> list[dict[str, Any]]:
        return [{"log": log, **self.rule(node, run)}
                for node, logs in self.logs.items()
                for run, log in enumerate(logs, 1)]

    def end(self) -> None:
        """Stop every node, then reap strace: a SIGTERM to strace only detaches it, and
        the node it traced would go on running."""
        failures: list[str] = []
        for node in reversed(dict.fromkeys(self.nodes)):
            try:
                self.stop(node, running=False)
            except RuntimeError as err:
                failures.append(str(err))
        stop_all(self.processes)
        if failures:
            raise RuntimeError("; ".join(failures))

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

    def stop(self, node: Path, running: bool = True) -> None:
        """`mistgrid stop` the node; it must stop within that command's patience (a
        node that is not running is only fine when `running` is False)."""
        done = run_cli("stop", str(node))
        said = done.stderr.decode().strip()
        if done.returncode == 0 or (not running and "no node is running" in said):
            return
        raise RuntimeError(f"mistgrid stop {node.name}: exit {done.returncode}: {said}")

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
        self.tor = tor
        self.allowed = [tor.socks_port, tor.control_port]
        self.tor_args = ["--tor-control-port", f"tcp:127.0.0.1:{tor.control_port}",
                         "--tor-socks-port", f"tcp:127.0.0.1:{tor.socks_port}"]
        self.storage_port = 0

    def node_args(self) -> list[str]:
        """How the storage node and the client are told of their Tor."""
        return self.tor_args

    def prepare(self, storage: Path, client: Path) -> None:
        """Change the storage node's and the client's directories before they start."""

    def live(self) -> None:
        intro_port, self.storage_port, web_port = free_ports(3)
        introducer, storage, client = (self.out / n for n in ("introducer", "storage",
                                                             "client"))
        self.create("create-introducer", "--listen=tor", "--hide-ip", "--webport", "none",
                    "--port", f"tcp:{intro_port}:interface=127.0.0.1", *self.tor_args,
                    str(introducer))
        self.traced(introducer, 1)
        furl_file = introducer / "private" / "introducer.furl"
        # longer than the node's own patience, so that its own error is what is shown
        wait_for(announced(furl_file), ONION_TIMEOUT + 60, "the introducer's onion",
                 interval=0.5, watch=self.processes)
        furl = furl_file.read_text().strip()
        self.create("create-node", "--listen=tor", "--hide-ip", "--webport", "none",
                    "--introducer", furl, "--port",
                    f"tcp:{self.storage_port}:interface=127.0.0.1", *self.node_args(),
                    str(storage))
        self.create("create-client", "--hide-ip", "--introducer", furl, "--webport",
                    f"tcp:{web_port}:interface=127.0.0.1", "--shares-needed", "1",
                    "--shares-happy", "1", "--shares-total", "1", *self.node_args(),
                    str(client))
        self.prepare(storage, client)
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


def launched_ports(log: Path) -> list[int]:
    """The SOCKS and control ports of the tor a node launched, as its log says them."""
    text = log.read_text()
    match = re.findall(r"Tor: SOCKS port 127\.0\.0\.1:(\d+), control port "
                       r"127\.0\.0\.1:(\d+)", text)
    if not match:
        raise RuntimeError(f"{log} names no launched tor's ports")
    return [int(port) for port in match[-1]]


class TorLaunchLife(TorLife):
    """The Tor life again, but the storage node launches a tor of its own ([tor] launch,
    pinned to the private network) and the client launches one that reaches the network
    only through a private bridge relay ([tor] bridges). The introducer uses the network's
    client tor, as in TorLife."""

    def __init__(self, out: Path, tor: TorNetwork) -> None:
        super().__init__(out, tor)
        self.bridge: BridgeRelay = tor.start_bridge(out / "bridge")
        self.processes.append(self.bridge.process)

    def rule(self, node: str, run: int) -> dict[str, Any]:
        if node == "introducer":
            return super().rule(node, run)
        ports = launched_ports(self.out / f"{node}.{run}.log")
        if node == "client":  # its tor may reach the bridge and nothing else
            peers = [("127.0.0.1", self.bridge.or_port)]
        else:  # the relays, and its own onion service's target: the node's GBS listener
            peers = [("127.0.0.1", port) for a in self.tor.authorities
                     for port in (a.or_port, a.dir_port)]
            peers.append(("127.0.0.1", self.storage_port))
        return {"ports": ports, "peers": peers, "daemons": 1}

    def node_args(self) -> list[str]:
        return ["--tor-launch"]

    def prepare(self, storage: Path, client: Path) -> None:
        helpers = self.out / "helpers"
        for name in ("storage", "client"):
            (helpers / name).mkdir(parents=True)
        self.launching(storage, tor_section(helpers / "storage", self.tor))
        bridges = helpers / "bridges.txt"
        bridges.write_text(f"Bridge {self.bridge.line}\n")
        self.launching(client, tor_section(helpers / "client", self.tor,
                                           self.tor.bridge_client_options())
                       + f"bridges = {bridges}\n")

    def launching(self, node: Path, section: str) -> None:
        """Put the pinned [tor] launch section into `node`'s tahoe.cfg."""
        config = node / "tahoe.cfg"
        text = config.read_text()
        if "[tor]\nlaunch = true\n" not in text:
            raise RuntimeError(f"{config} has no [tor] launch = true")
        config.write_text(text.replace("[tor]\nlaunch = true\n", section, 1))


class I2PGridLife(Life):
    """A grid on I2P alone, its introducer too: the introducer serves Foolscap on an I2P
    destination, the storage node announces its own to it over I2P, the client learns of
    it over I2P; TCP disabled, no Tor. Each node uses its own router's SAM port. Only the
    client is restarted (see the I2P life)."""

    def __init__(self, out: Path, i2p: I2PNetwork) -> None:
        super().__init__(out)
        self.sam = {"introducer": i2p.sam_port(1), "storage": i2p.sam_port(2),
                    "client": i2p.sam_port(3)}

    def rule(self, node: str, run: int) -> dict[str, Any]:
        return {"ports": [self.sam[node]], "peers": [], "daemons": 0}

    def write(self, node: Path, rest: str, session: dict[str, str]) -> None:
        (node / "private").mkdir(parents=True, mode=0o700, exist_ok=True)
        (node / "tahoe.cfg").write_text(
            f"[node]\nnickname = {node.name}\nanonymous = true\n{rest}"
            f"[connections]\ntcp = disabled\n"
            f"i2p.sam-api = tcp:127.0.0.1:{self.sam[node.name]}\n"
            f"[i2p]\nsession.options = {_options(session)}\n[tor]\nenabled = false\n")

    def live(self) -> None:
        intro_port, storage_port, web_port = free_ports(3)
        introducer, storage, client = (self.out / n for n in ("introducer", "storage",
                                                             "client"))
        self.write(introducer, f"tub.port = tcp:{intro_port}:interface=127.0.0.1\n"
                   f"tub.location = i2p:{introducer / 'private' / 'i2p.keys'}\n",
                   SERVER_SESSION_OPTIONS)
        (introducer / "tahoe-introducer.tac").write_text("# introducer\n")
        self.traced(introducer, 1)
        furl_file = introducer / "private" / "introducer.furl"
        wait_for(lambda: (furl_file.exists() and furl_file.read_text().startswith("pb://"))
                 or None, 300, "the introducer's I2P destination (its whole FURL)",
                 interval=0.5, watch=self.processes)
        furl = furl_file.read_text().strip()
        for node in (storage, client):
            (node / "private").mkdir(parents=True, mode=0o700)
            (node / "private" / "introducers.yaml").write_text(
                f"introducers:\n  default:\n    furl: '{furl}'\n")
        self.write(storage, f"tub.port = tcp:{storage_port}:interface=127.0.0.1\n"
                   f"tub.location = i2p:{storage / 'private' / 'i2p.keys'}\n",
                   SERVER_SESSION_OPTIONS)
        with (storage / "tahoe.cfg").open("a") as config:
            config.write("[storage]\nenabled = true\n")
        self.write(client, f"web.port = tcp:{web_port}:interface=127.0.0.1\n",
                   CLIENT_SESSION_OPTIONS)
        with (client / "tahoe.cfg").open("a") as config:
            config.write("[client]\nshares.needed = 1\nshares.happy = 1\n"
                         "shares.total = 1\n")
        for node in (storage, client):
            self.traced(node, 1)
        url, cap, data = self.first_life(client, 2.0)
        check_i2p_only(url, furl, storage)
        self.second_life([client], url, cap, data, 2.0)
        print("second life: read the file again", flush=True)
        for node in (client, storage, introducer):
            self.stop(node)


def check_i2p_only(url: str, furl: str, storage: Path) -> None:
    """The introducer's FURL names only its I2P destination; the client reached it, and
    the storage server on its I2P NURL."""
    hints = furl.split("@", 1)[1].split("/", 1)[0].split(",")
    if len(hints) != 1 or not (hints[0].startswith("i2p:") and hints[0].endswith(".b32.i2p")):
        raise RuntimeError(f"the introducer's FURL names more than its I2P destination: {furl}")
    with urllib.request.urlopen(url + "?t=json", timeout=30) as response:
        page = json.load(response)
    if page["servers"][0]["route"] != "i2p" or \
            page["introducers"]["details"][0]["connected"] is not True:
        raise RuntimeError(f"not an I2P-only grid: {page}")
    entry = json.loads((storage / "private" / "announcement.json").read_text())
    if not entry["ann"]["anonymous-storage-NURLs"][0].startswith("pb+i2p://"):
        raise RuntimeError(f"the storage node announces {entry['ann']}")


def show_logs(out: Path, lines: int = 12) -> None:
    """Print the last lines of every node's log and of each daemon's own (what the test
    shows of a failed life: its directory is gone by the time anyone reads the report)."""
    patterns = ("*.log", "*/*/notice.log", "*/*/rend.log", "*/logs/node.log", "*/*/i2pd.log")
    logs = [log for pattern in patterns for log in sorted(out.glob(pattern))]
    for log in logs:
        tail = log.read_text(errors="replace").splitlines()[-lines:]
        print(f"--- {log.relative_to(out)}:", *(line[:200] for line in tail), sep="\n",
              file=sys.stderr)


LIVES: dict[str, tuple[Any, Any]] = {
    "tor": (TorNetwork, TorLife), "tor-launch": (TorNetwork, TorLaunchLife),
    "i2p-grid": (I2PNetwork, I2PGridLife),
}


def main(out: Path, network: str) -> int:
    loopback_up()
    if interfaces() != ["lo"]:
        print(f"not in a loopback-only network namespace: {interfaces()}", file=sys.stderr)
        return 2
    kind, life_kind = LIVES[network]
    try:
        started: TorNetwork | I2PNetwork = kind.start(out / network)
    except BaseException:
        show_logs(out)
        raise
    try:
        life: Life = life_kind(out, started)
    except BaseException:
        started.stop()
        raise
    try:
        life.live()
    except BaseException:
        show_logs(out)
        raise
    finally:
        life.end()
        started.stop()
    (out / "result.json").write_text(json.dumps({
        "logs": life.logs, "checks": life.checks()}))
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "tor"))
