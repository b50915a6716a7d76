"""`[tor] bridges` on the private Tor network: a client whose own tor (`[tor] launch`)
reaches the network only through one private obfs4 bridge (Debian's obfs4proxy on both
ends) stores and reads through an onion storage server; Tor itself shows every circuit
starting at the bridge, the client's tor talks to nothing but its obfs4proxy and that
obfs4proxy to nothing but the bridge's obfs4 port; with the bridge stopped the client
fails closed (an error, no other connection tried, by the node, its tor or obfs4proxy).
A plain bridge is the whole-life proof's (test_whole_life.py, tor-launch).

Such a client uses microdescriptors (see tornet.BRIDGE_CLIENT_MICRODESCRIPTORS), so it
reaches onion services only: the grid here is onion-only, as an anonymous grid is.
"""

from __future__ import annotations

import os
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from mistgrid.testing.procs import stop_all, wait_for
from mistgrid.testing.torcontrol import TorControl
from mistgrid.testing.tornet import TorNetwork

from .test_node_tor import (
    _sockets,
    _table,
    all_connected,
    start_anonymous_client,
    start_onion_storage_node,
    store_and_read,
    welcome,
)
from .test_tor_launch import tor_section

pytestmark = pytest.mark.slow


def launched_ports(client: Path) -> tuple[int, int]:
    """(SOCKS, control) ports of the tor the client node launched."""
    text = welcome((client / "node.url").read_text().strip())["network"]["tor"]
    socks = int(text.split("SOCKS tcp:127.0.0.1:")[1].split(",")[0])
    control = int(text.split("control tcp:127.0.0.1:")[1].split(",")[0])
    return socks, control


def outgoing(pid: int, served: set[int]) -> set[int]:
    """Remote ports of the TCP connections `pid` made (not those it accepted on `served`
    ports, nor listening sockets)."""
    mine = _sockets(pid)
    return {remote for inode, (local, remote, state) in _table("tcp").items()
            if inode in mine and state != "0A" and local not in served}


def listening(pid: int) -> set[int]:
    mine = _sockets(pid)
    return {local for inode, (local, _, state) in _table("tcp").items()
            if inode in mine and state == "0A"}


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(x) for x in (task / "children").read_text().split()]
    return found


def test_a_client_behind_one_obfs4_bridge(tor_network: TorNetwork, tmp_path: Path) -> None:
    bridge = tor_network.start_bridge(tmp_path / "bridge", obfs4=True)
    processes = [bridge.process]
    try:
        entry = start_onion_storage_node(tmp_path, tor_network, processes)
        bridges = tmp_path / "bridges.txt"
        bridges.write_text(f"# the private network's bridge\nBridge {bridge.obfs4_line}\n")
        section = tor_section(tmp_path, tor_network, tor_network.bridge_client_options())
        client = tmp_path / "client"
        url, _ = start_anonymous_client(client, {str(entry["server-id"]): entry["ann"]},
                                        section + f"bridges = {bridges}\n", processes, 300)
        wait_for(all_connected(url, 1), 300, "the client to reach the onion server through "
                 "the bridge", interval=1.0, watch=processes)
        log = (tmp_path / "client.log").read_text()
        assert "reaching the network only through 1 bridge(s)" in log, log
        data = os.urandom(200_000)
        cap = store_and_read(url, data)

        # Tor's own account: every circuit begins at the bridge, and the tor is
        # connected to no relay but the bridge.
        socks, control_port = launched_ports(client)
        with TorControl(control_port, client / "private" / "tor" / "control_auth_cookie") \
                as control:
            circuits = [line for line in control.command("GETINFO circuit-status")
                        if " BUILT " in line]
            orconns = [line.removeprefix("orconn-status=") for line in
                       control.command("GETINFO orconn-status")]
            orconns = [line for line in orconns if line.startswith("$")]
        assert circuits, "no circuit built"
        for line in circuits:
            assert line.split()[2].startswith(f"${bridge.fingerprint}"), line
        assert orconns and all(f"${bridge.fingerprint}" in line for line in orconns), orconns
        tor_pid = int(welcome(url)["network"]["tor"].split("(pid ")[1].split(")")[0])
        (proxy,) = children(tor_pid)
        assert Path(f"/proc/{proxy}/exe").resolve().name == "obfs4proxy"
        assert outgoing(tor_pid, {socks, control_port}) <= listening(proxy)
        assert outgoing(proxy, listening(proxy)) == {bridge.obfs4_port}

        # The bridge gone: the client fails closed.
        bridge.process.stop()
        started = time.monotonic()
        with pytest.raises(urllib.error.HTTPError) as failed:
            urllib.request.urlopen(url + "uri/" + cap, timeout=300)
        took = time.monotonic() - started
        # 410 as Tahoe's: no server holding a share could be reached
        assert failed.value.code in (410, 503), failed.value.code
        message = failed.value.read().decode()
        assert "\n" not in message.strip(), message
        assert outgoing(tor_pid, {socks, control_port}) <= listening(proxy)
        assert outgoing(proxy, listening(proxy)) <= {bridge.obfs4_port}
        print(f"with the bridge gone, a read failed in {took:.1f} s: {message.strip()}")
    finally:
        stop_all(processes)
