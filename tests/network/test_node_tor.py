"""mistgrid nodes on the private Tor network (real tor, real node processes):

- a storage node made by `create-node --listen=tor --hide-ip` (tub.location =
  onion:3457:hiddenServiceDir=DIR, reveal-IP-address = false) starts its onion service
  through Tor's control port and announces a pb+tor NURL;
- an anonymous client (`[node] anonymous = true`, `tor.socks-proxy`) stores and reads a
  file on that onion server and on a plain TCP server (reached through a Tor exit);
- while it works, every TCP connection the client process has is either to Tor's SOCKS
  port or an accepted web API connection, and it never has a UDP socket (no DNS): the
  anonymity guarantee, checked on the real process rather than on a mock."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mistgrid.storage.announcement import servers_yaml
from mistgrid.testing.procs import Managed, free_ports, stop_all, wait_for
from mistgrid.testing.tornet import TorNetwork

from ..conftest import run_cli
from .test_selftest import connect_onion

MISTGRID = str(Path(sys.executable).with_name("mistgrid"))


def _sockets(pid: int) -> set[int]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def _table(name: str) -> dict[int, tuple[int, int, str]]:
    """inode -> (local port, remote port, state) for /proc/net/{name}."""
    rows = {}
    for line in Path(f"/proc/net/{name}").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, state, inode = fields[1], fields[2], fields[3], int(fields[9])
        rows[inode] = (int(local.rsplit(":", 1)[1], 16), int(remote.rsplit(":", 1)[1], 16),
                       state)
    return rows


def _loopback(hex_address: str) -> bool:
    """A /proc/net/tcp{,6} local address (little-endian hex words) on loopback."""
    if len(hex_address) == 8:
        return int(hex_address[6:8], 16) == 127
    return hex_address == "00000000000000000000000001000000"  # ::1


def exposure(pid: int, node: Path) -> list[str]:
    """What a running anonymous node shows the world, read from the node itself: a
    listening socket not on loopback, or an announced address that is not onion or I2P."""
    found = []
    mine = _sockets(pid)
    for name in ("tcp", "tcp6"):
        for line in Path(f"/proc/net/{name}").read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], int(fields[9])
            if inode in mine and state == "0A" and not _loopback(local.rsplit(":", 1)[0]):
                found.append(f"listens on {name} {local}")
    nurls = node / "private" / "storage.nurls"
    if nurls.exists():
        found += [f"announces {n.split('@')[1].split('/')[0]}"
                  for n in nurls.read_text().split() if not n.startswith(("pb+tor:", "pb+i2p:"))]
    furl = node / "private" / "introducer.furl"
    if furl.exists():
        hints = furl.read_text().strip().split("@", 1)[1].split("/", 1)[0].split(",")
        found += [f"announces {h}" for h in hints if not h.startswith(("tor:", "i2p:"))]
    return found


def stray_connections(pid: int, socks_port: int, web_port: int) -> list[str]:
    """Connections of `pid` that are neither to Tor's SOCKS port nor web API ones."""
    mine = _sockets(pid)
    found = []
    for name in ("tcp", "tcp6"):
        for inode, (local, remote, state) in _table(name).items():
            if inode not in mine or state == "0A":  # 0A: LISTEN
                continue
            if remote == socks_port or local == web_port:
                continue
            found.append(f"{name} local port {local} -> remote port {remote} (state {state})")
    for name in ("udp", "udp6"):
        found += [f"{name} socket (port {local})" for inode, (local, _r, _s)
                  in _table(name).items() if inode in mine]
    return found


def announced(path: Path) -> Callable[[], bool | None]:
    return lambda: True if path.exists() else None


def all_connected(url: str, count: int) -> Callable[[], bool | None]:
    """For wait_for: the welcome page lists `count` servers, every one connected."""
    def check() -> bool | None:
        try:
            servers = welcome(url)["servers"]
        except OSError:
            return None
        return True if [s["connected"] for s in servers] == [True] * count \
            else None
    return check


def store_and_read_watched(url: str, client_pid: int, proxy_port: int, web_port: int,
                           size: int) -> list[str]:
    """PUT `size` random bytes, GET them back (checked), sampling the client process's
    connections every 10 ms meanwhile; the stray ones (see stray_connections)."""
    stray: list[str] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            stray.extend(stray_connections(client_pid, proxy_port, web_port))
            done.wait(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        data = os.urandom(size)
        store_and_read(url, data)
    finally:
        done.set()
        watcher.join()
    return sorted(set(stray))


def anonymous_client_round_trip(client: Path, entries: dict[str, Any], connections: str,
                                proxy_port: int, processes: list[Managed], what: str,
                                size: int, interval: float = 1.0) -> str:
    """Start an anonymous client node (1-of-1 shares, `connections` as its
    [connections] and further sections) on `entries` (servers.yaml), wait until it reaches
    its one server, then store and read `size` bytes while watching that it touches
    nothing but `proxy_port` (Tor's SOCKS port or its SAM API). Its web API URL."""
    url, web_port = start_anonymous_client(
        client, entries, f"[connections]\n{connections}[storage]\nenabled = false\n",
        processes)
    wait_for(all_connected(url, 1), 240, what, interval=interval, watch=processes)
    assert store_and_read_watched(url, processes[-1].pid, proxy_port, web_port, size) == []
    return url


def start_anonymous_client(client: Path, entries: dict[str, Any], sections: str,
                           processes: list[Managed], timeout: float = 60.0) -> tuple[str, int]:
    """Write and start an anonymous client node (1-of-1 shares) whose servers.yaml holds
    `entries` and whose tahoe.cfg has `sections` besides ([connections], [tor], ...);
    (its web API URL, its web port) once that answers (log: CLIENT.log beside it)."""
    (web_port,) = free_ports(1)
    (client / "private").mkdir(parents=True, mode=0o700, exist_ok=True)
    (client / "private" / "servers.yaml").write_text(servers_yaml(entries))
    (client / "tahoe.cfg").write_text(
        f"[node]\nanonymous = true\nweb.port = tcp:{web_port}:interface=127.0.0.1\n"
        f"{sections}[client]\nshares.needed = 1\nshares.happy = 1\nshares.total = 1\n")
    processes.append(Managed(client.name, [MISTGRID, "run", str(client)],
                             client.parent / f"{client.name}.log"))
    wait_for(announced(client / "node.url"), timeout, f"{client.name}'s web API",
             watch=processes)
    return (client / "node.url").read_text().strip(), web_port


def create_onion_node(node: Path, tor_network: TorNetwork, *extra: str) -> None:
    """`create-node --listen=tor` for a storage node on a free loopback port whose onion
    services the network's own tor makes (through its control port)."""
    (port,) = free_ports(1)
    made = run_cli("create-node", "--listen=tor", "--hide-ip", "--webport", "none", *extra,
                   "--port", f"tcp:{port}:interface=127.0.0.1", "--tor-control-port",
                   f"tcp:127.0.0.1:{tor_network.control_port}", str(node))
    assert made.returncode == 0, made.stderr.decode()


def start_onion_storage_node(tmp_path: Path, tor_network: TorNetwork,
                             processes: list[Managed], tor_lines: str = ""
                             ) -> dict[str, object]:
    """Start an onion storage node (`create-node --listen=tor`) on the network's own tor,
    with `tor_lines` added to its [tor] section; its announcement entry once announced."""
    storage = tmp_path / "storage"
    create_onion_node(storage, tor_network)
    if tor_lines:
        config = storage / "tahoe.cfg"
        text = config.read_text()
        assert "[tor]\n" in text, text
        config.write_text(text.replace("[tor]\n", f"[tor]\n{tor_lines}", 1))
    processes.append(Managed("storage", [MISTGRID, "run", str(storage)],
                             tmp_path / "storage.log"))
    entry_file = storage / "private" / "announcement.json"
    wait_for(announced(entry_file), 240, "the onion storage node", interval=0.5,
             watch=processes)
    entry: dict[str, object] = json.loads(entry_file.read_text())
    return entry


def store_and_read(url: str, data: bytes, timeout: float = 300) -> str:
    """PUT `data` through a client's web API, read it back and compare; its cap."""
    request = urllib.request.Request(url + "uri", data=data, method="PUT")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        cap: str = response.read().decode()
    with urllib.request.urlopen(url + "uri/" + cap, timeout=timeout) as response:
        assert response.read() == data
    return cap


def welcome(url: str) -> dict[str, Any]:
    """The client's welcome page (it answers within seconds even while probes run)."""
    with urllib.request.urlopen(url + "?t=json", timeout=30) as response:
        result: dict[str, Any] = json.load(response)
    return result


def test_anonymous_client_and_onion_server(tor_network: TorNetwork, tmp_path: Path) -> None:
    onion_port, tcp_port, web_port = free_ports(3)
    onion_node, tcp_node, client = tmp_path / "onion", tmp_path / "tcp", tmp_path / "client"
    for node in (tcp_node, client):
        node.mkdir()
    created = run_cli("create-node", "--listen=tor", "--hide-ip", "--nickname", "onion0",
                      "--webport", "none", "--port", f"tcp:{onion_port}:interface=127.0.0.1",
                      "--tor-control-port", f"tcp:127.0.0.1:{tor_network.control_port}",
                      "--tor-socks-port", f"tcp:127.0.0.1:{tor_network.socks_port}",
                      str(onion_node))
    assert created.returncode == 0, created.stderr.decode()
    config = (onion_node / "tahoe.cfg").read_text()
    assert "reveal-IP-address = false" in config
    assert f"tub.location = onion:3457:hiddenServiceDir={onion_node}/private/onion" in config
    (tcp_node / "tahoe.cfg").write_text(
        f"[node]\nnickname = tcp0\ntub.port = tcp:{tcp_port}:interface=127.0.0.1\n"
        f"tub.location = tcp:127.0.0.1:{tcp_port}\n[storage]\nenabled = true\n")
    processes = [Managed(n.name, [MISTGRID, "run", str(n)], tmp_path / f"{n.name}.log")
                 for n in (onion_node, tcp_node)]
    try:
        entries = {}
        for node in (onion_node, tcp_node):
            announcement = node / "private" / "announcement.json"
            wait_for(announced(announcement), 180, f"{node.name} to announce", interval=0.2,
                     watch=processes)
            entry = json.loads(announcement.read_text())
            entries[entry["server-id"]] = entry["ann"]
        onion_nurls = json.loads((onion_node / "private" / "announcement.json").read_text())[
            "ann"]["anonymous-storage-NURLs"]
        assert len(onion_nurls) == 1 and onion_nurls[0].startswith("pb+tor://")
        assert ".onion:3457/" in onion_nurls[0]
        assert (onion_node / "private" / "onion" / "hostname").exists()  # Tor keeps it there

        (client / "private").mkdir(mode=0o700)
        (client / "private" / "servers.yaml").write_text(servers_yaml(entries))
        (client / "tahoe.cfg").write_text(
            "[node]\nnickname = anon-client\nanonymous = true\n"
            f"web.port = tcp:{web_port}:interface=127.0.0.1\n"
            f"[connections]\ntor.socks-proxy = tcp:127.0.0.1:{tor_network.socks_port}\n"
            "[client]\nshares.needed = 1\nshares.happy = 2\nshares.total = 2\n"
            "[storage]\nenabled = false\n")
        processes.append(Managed("client", [MISTGRID, "run", str(client)],
                                 tmp_path / "client.log"))
        wait_for(lambda: True if (client / "node.url").exists() else None, 60,
                 "the client's web API", watch=processes)
        url = (client / "node.url").read_text().strip()

        wait_for(all_connected(url, 2), 120, "the client to reach both servers over Tor",
                 interval=1.0, watch=processes)
        assert {s["route"] for s in welcome(url)["servers"]} == {"tor"}
        assert store_and_read_watched(url, processes[-1].pid, tor_network.socks_port,
                                      web_port, 1024 * 1024 + 7) == []
        # The shares are on both servers: one share each (happiness 2).
        for node in (onion_node, tcp_node):
            shares = [p for p in (node / "storage" / "shares").rglob("*")
                      if p.is_file() and "incoming" not in p.parts]
            assert len(shares) == 1, node
    finally:
        stop_all(processes)


def test_grid_entirely_over_onion_services(tor_network: TorNetwork, tmp_path: Path) -> None:
    """Introducer, storage node and client all made with --hide-ip; the introducer and the
    storage node listen only as onion services. The introducer's FURL names its onion
    address, the storage node announces over Tor, and the client stores and reads through
    the onion storage node, its process touching nothing but Tor's SOCKS port (which it
    learnt from Tor's control port, given alone, as Tahoe's [tor] control.port says)."""
    tor = ["--tor-control-port", f"tcp:127.0.0.1:{tor_network.control_port}",
           "--tor-socks-port", f"tcp:127.0.0.1:{tor_network.socks_port}"]
    intro_port, storage_port, web_port = free_ports(3)
    introducer = tmp_path / "introducer"
    made = run_cli("create-introducer", "--listen=tor", "--hide-ip", "--webport", "none",
                   "--port", f"tcp:{intro_port}:interface=127.0.0.1", *tor, str(introducer))
    assert made.returncode == 0, made.stderr.decode()
    processes = [Managed("introducer", [MISTGRID, "run", str(introducer)],
                         tmp_path / "introducer.log")]
    try:
        furl_file = introducer / "private" / "introducer.furl"
        wait_for(announced(furl_file), 180, "the introducer's onion FURL", interval=0.2,
                 watch=processes)
        furl = furl_file.read_text().strip()
        assert "@tor:" in furl and ".onion:3457/" in furl, furl
        storage = tmp_path / "storage"
        made = run_cli("create-node", "--listen=tor", "--hide-ip", "--webport", "none",
                       "--introducer", furl, "--port",
                       f"tcp:{storage_port}:interface=127.0.0.1", *tor, str(storage))
        assert made.returncode == 0, made.stderr.decode()
        client = tmp_path / "client"
        # Only Tor's control port for the client: it asks Tor where the SOCKS port is.
        made = run_cli("create-client", "--hide-ip", "--introducer", furl, "--webport",
                       f"tcp:{web_port}:interface=127.0.0.1", "--shares-needed", "1",
                       "--shares-happy", "1", "--shares-total", "1", *tor[:2], str(client))
        assert made.returncode == 0, made.stderr.decode()
        processes += [Managed(n.name, [MISTGRID, "run", str(n)], tmp_path / f"{n.name}.log")
                      for n in (storage, client)]
        wait_for(announced(client / "node.url"), 60, "the client's web API", watch=processes)
        url = (client / "node.url").read_text().strip()

        wait_for(all_connected(url, 1), 240, "the client to learn of the onion server",
                 interval=1.0, watch=processes)
        page = welcome(url)
        for node, process in zip((introducer, storage), processes[:2], strict=True):
            assert exposure(process.pid, node) == []  # loopback listeners, onions only
        assert page["servers"][0]["route"] == "tor"
        assert page["introducers"]["details"][0]["connected"] is True
        assert ".onion" in page["introducers"]["details"][0]["hints"]
        assert store_and_read_watched(url, processes[-1].pid, tor_network.socks_port,
                                      web_port, 200_000) == []
    finally:
        stop_all(processes)


def test_onion_node_restarts_with_the_same_address(tor_network: TorNetwork,
                                                   tmp_path: Path) -> None:
    """An onion storage node stopped and started again on the same Tor comes back with the
    same .onion address (Tor keeps the keys in hiddenServiceDir) and the same NURL."""
    node = tmp_path / "onion"
    create_onion_node(node, tor_network)
    nurls = node / "private" / "storage.nurls"
    seen = []
    for run in range(2):
        nurls.unlink(missing_ok=True)
        process = Managed(f"onion run {run}", [MISTGRID, "run", str(node)],
                          tmp_path / f"run{run}.log")
        try:
            wait_for(announced(nurls), 180, "the onion service", interval=0.2,
                     watch=[process])
            seen.append(nurls.read_text())
        finally:
            process.stop()
    assert seen[0] == seen[1] and ".onion:3457/" in seen[0]


def test_a_tahoe_made_onion_node_runs_under_mistgrid(tor_network: TorNetwork,
                                                     tmp_path: Path) -> None:
    """`tahoe create-node --listen=tor --hide-ip` (real Tahoe-LAFS 1.20, on this private
    Tor network) writes `[tor] onion = true` with the service's key in
    private/tor_onion.privkey and `tub.location = tor:NAME.onion:3457`. `mistgrid run` of
    that very directory starts the onion service from the key (same NAME), announces it,
    and an anonymous mistgrid client stores and reads through it; run again, it comes
    back at the same address."""
    from ..interop.tahoe import tahoe_venv  # noqa: PLC0415 (installs Tahoe once, cached)

    tahoe = tahoe_venv() / "tahoe"
    node, client = tmp_path / "tahoe-made", tmp_path / "client"
    made = subprocess.run([str(tahoe), "create-node", "--listen=tor", "--hide-ip",
                           "--webport=none", "--nickname=tahoe-made",
                           f"--tor-control-port=tcp:127.0.0.1:{tor_network.control_port}",
                           str(node)], capture_output=True, timeout=300, check=False)
    assert made.returncode == 0, made.stderr.decode()
    config = (node / "tahoe.cfg").read_text()
    assert "onion = true" in config and "onion.private_key_file" in config
    name = re.search(r"tub.location = tor:([a-z2-7]{56}\.onion):3457", config)
    assert name is not None, config
    key = (node / "private" / "tor_onion.privkey").read_text()
    nurls_file = node / "private" / "storage.nurls"
    processes = [Managed("tahoe-made", [MISTGRID, "run", str(node)], tmp_path / "node.log")]
    try:
        wait_for(announced(nurls_file), 180, "the onion service", interval=0.2,
                 watch=processes)
        nurls = nurls_file.read_text().split()
        assert len(nurls) == 1 and nurls[0].startswith("pb+tor://"), nurls
        assert f"@{name.group(1)}:3457/" in nurls[0]
        assert (node / "private" / "tor_onion.privkey").read_text() == key  # kept as it was
        entry_file = node / "private" / "announcement.json"  # written just after the NURLs
        wait_for(announced(entry_file), 30, "the announcement", interval=0.2, watch=processes)
        entry = json.loads(entry_file.read_text())
        anonymous_client_round_trip(
            client, {entry["server-id"]: entry["ann"]},
            f"tor.socks-proxy = tcp:127.0.0.1:{tor_network.socks_port}\n",
            tor_network.socks_port, processes, "the client to reach the onion service",
            200_000)
        first = nurls_file.read_text()
        processes[0].stop()
        nurls_file.unlink()
        processes[0] = Managed("tahoe-made again", [MISTGRID, "run", str(node)],
                               tmp_path / "again.log")
        wait_for(announced(nurls_file), 180, "the onion service again", interval=0.2,
                 watch=processes)
        assert nurls_file.read_text() == first
        log = (tmp_path / "node.log").read_text() + (tmp_path / "again.log").read_text()
        assert key.strip().split(":", 1)[1] not in log  # never log a private key
    finally:
        stop_all(processes)


def test_a_bad_onion_key_stops_the_node_with_one_line(tor_network: TorNetwork,
                                                      tmp_path: Path) -> None:
    """[tor] onion = true with a key file Tor cannot use: the node stops with one line
    naming the key file, exit 1, and the key's text is never printed."""
    (port,) = free_ports(1)
    node = tmp_path / "node"
    (node / "private").mkdir(parents=True)
    secret = "ED25519-V3:" + "Zm9vYmFy" * 11
    (node / "private" / "tor_onion.privkey").write_text(secret + "\n")
    (node / "tahoe.cfg").write_text(
        f"[node]\nreveal-IP-address = false\ntub.port = tcp:{port}:interface=127.0.0.1\n"
        f"[tor]\ncontrol.port = tcp:127.0.0.1:{tor_network.control_port}\nonion = true\n"
        f"onion.local_port = {port}\nonion.external_port = 3457\n"
        "onion.private_key_file = private/tor_onion.privkey\n[storage]\nenabled = true\n")
    result = subprocess.run([MISTGRID, "run", str(node)], capture_output=True, timeout=120,
                            check=False)
    err = result.stderr.decode()
    assert result.returncode == 1, err
    assert "Tor refused the onion service of [tor] onion = true" in err, err
    assert "check onion.private_key_file" in err and "Traceback" not in err
    assert "Zm9vYmFy" not in err + result.stdout.decode()


def test_onion_nodes_starting_together_on_one_tor(tor_network: TorNetwork,
                                                  tmp_path: Path) -> None:
    """Three onion storage nodes start at the same moment on the same Tor. With SETCONF
    HiddenServiceDir one node's service could vanish from Tor's configuration and the node
    hang; with ADD_ONION each node's service is its own: every node announces, and every
    onion answers through Tor."""
    nodes = []
    for index in range(3):
        node = tmp_path / f"onion{index}"
        create_onion_node(node, tor_network)
        nodes.append(node)
    processes = [Managed(n.name, [MISTGRID, "run", str(n)], tmp_path / f"{n.name}.log")
                 for n in nodes]
    try:
        names = set()
        for node in nodes:
            nurls = node / "private" / "storage.nurls"
            wait_for(announced(nurls), 240, f"{node.name} to announce", interval=0.2,
                     watch=processes)
            match = re.search(r"@([a-z2-7]{56}\.onion):3457/", nurls.read_text())
            assert match is not None, nurls.read_text()
            names.add(match.group(1))
            assert (node / "private" / "onion" / "hostname").read_text().strip() == \
                match.group(1)
            assert (node / "private" / "onion" / "mistgrid-onion.key").stat().st_mode \
                & 0o077 == 0
        assert len(names) == 3
        for node, process in zip(nodes, processes, strict=True):
            assert exposure(process.pid, node) == []  # loopback listeners, onions only
        for name in names:
            sock, _early = connect_onion(tor_network.socks_port, name, port=3457)
            sock.close()
    finally:
        stop_all(processes)
