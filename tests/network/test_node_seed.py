"""The seed document's complete configuration for server use-case 2 (a server that need
not be anonymous, reachable over TCP, Tor and I2P), run as written:

    [node]
    anonymous = False
    tub.location = AUTO,onion:80:hiddenServiceDir=DIR,i2p:KEYFILE

with only the pointers to this test's private Tor and I2P networks added, and no tub.port
(the node picks a port and remembers it in client.port). It announces a pb:// NURL per
address of the machine (127.0.0.1 among them), a pb+tor one on the onion service's port
80 and a pb+i2p one; an anonymous client stores and reads a file through the onion
service, touching nothing but Tor's SOCKS port."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from mistgrid.gbs.nurl import parse_nurl
from mistgrid.testing.i2pnet import SERVER_SESSION_OPTIONS, I2PNetwork
from mistgrid.testing.procs import Managed, stop_all, wait_for
from mistgrid.testing.tornet import TorNetwork

from .test_node_i2p import options
from .test_node_tor import announced, anonymous_client_round_trip, welcome

MISTGRID = str(Path(sys.executable).with_name("mistgrid"))


def test_seed_server_use_case_2(tor_network: TorNetwork, i2p_network: I2PNetwork,
                                tmp_path: Path) -> None:
    server, client = tmp_path / "server", tmp_path / "client"
    (server / "private").mkdir(parents=True, mode=0o700)
    service, keyfile = server / "tor" / "my_service", server / "i2p" / "my_service.keypair"
    (server / "tahoe.cfg").write_text(
        "[node]\nanonymous = False\n"
        f"tub.location = AUTO,onion:80:hiddenServiceDir={service},i2p:{keyfile}\n"
        f"[tor]\ncontrol.port = tcp:127.0.0.1:{tor_network.control_port}\n"
        f"[i2p]\nsam.port = tcp:127.0.0.1:{i2p_network.sam_port(2)}\n"
        f"session.options = {options(SERVER_SESSION_OPTIONS)}\n[storage]\nenabled = true\n")
    processes = [Managed("server", [MISTGRID, "run", str(server)], tmp_path / "server.log")]
    try:
        announcement = server / "private" / "announcement.json"
        wait_for(announced(announcement), 240, "the onion service and I2P destination",
                 interval=0.5, watch=processes)
        entry = json.loads(announcement.read_text())
        nurls = [parse_nurl(n) for n in entry["ann"]["anonymous-storage-NURLs"]]
        port = int((server / "client.port").read_text().strip().removeprefix("tcp:"))
        direct = [n for n in nurls if n.scheme == "pb"]
        assert direct and all(n.port == port for n in direct)
        assert direct[-1].host == "127.0.0.1"
        assert [(n.host.endswith(".onion"), n.port) for n in nurls if n.scheme == "pb+tor"] \
            == [(True, 80)]
        assert [n.host.endswith(".b32.i2p") for n in nurls if n.scheme == "pb+i2p"] == [True]
        assert (service / "hostname").exists() and keyfile.exists()

        url = anonymous_client_round_trip(
            client, {entry["server-id"]: entry["ann"]},
            f"tor.socks-proxy = tcp:127.0.0.1:{tor_network.socks_port}\n",
            tor_network.socks_port, processes, "the client to reach the onion service",
            300_000)
        assert welcome(url)["servers"][0]["route"] == "tor"
    finally:
        stop_all(processes)
