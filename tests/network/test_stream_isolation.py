"""Stream isolation on the private Tor network: an anonymous client reaches each storage
server over Tor circuits of its own, as Tor itself reports (GETINFO circuit-status on the
client's tor: each circuit carries the SOCKS credentials of the streams it was built
for): 4 onion storage servers and 2 plain TCP ones reached through Tor exits (where,
without isolation, Tor would put every stream on one exit circuit)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from mistgrid.net.connector import isolation_credentials
from mistgrid.testing.procs import HarnessError, Managed, free_ports, stop_all, wait_for
from mistgrid.testing.tornet import TorNetwork

from .test_node_tor import (
    MISTGRID,
    all_connected,
    announced,
    create_onion_node,
    start_anonymous_client,
)

pytestmark = pytest.mark.slow


def circuits_by_password(tor_network: TorNetwork) -> dict[str, set[str]]:
    """{SOCKS password: {circuit ids}} of the client tor's circuits (Tor marks a circuit
    built for isolated streams with their SOCKS credentials, and keeps it for a while
    after its streams close)."""
    with tor_network.control() as control:
        lines = control.command("GETINFO circuit-status")  # a multi-line reply
    found: dict[str, set[str]] = {}
    for line in lines:
        match = re.search(r'SOCKS_PASSWORD="([^"]*)"', line)
        if match and line.split()[1] in ("BUILT", "EXTENDED"):
            found.setdefault(match.group(1), set()).add(line.split()[0])
    return found


def test_each_server_on_its_own_circuit(tor_network: TorNetwork, tmp_path: Path) -> None:
    processes: list[Managed] = []
    try:
        nodes = []
        for i in range(4):
            node = tmp_path / f"onion{i}"
            create_onion_node(node, tor_network, "--nickname", f"onion{i}")
            nodes.append(node)
        for i in range(2):
            (port,) = free_ports(1)
            node = tmp_path / f"tcp{i}"
            node.mkdir()
            (node / "tahoe.cfg").write_text(
                f"[node]\nnickname = tcp{i}\ntub.port = tcp:{port}:interface=127.0.0.1\n"
                f"tub.location = tcp:127.0.0.1:{port}\n[storage]\nenabled = true\n")
            nodes.append(node)
        processes += [Managed(n.name, [MISTGRID, "run", str(n)], tmp_path / f"{n.name}.log")
                      for n in nodes]
        entries = {}
        targets = set()
        for node in nodes:
            path = node / "private" / "announcement.json"
            wait_for(announced(path), 240, f"{node.name} to announce", interval=0.5,
                     watch=processes)
            entry = json.loads(path.read_text())
            entries[entry["server-id"]] = entry["ann"]
            nurl = entry["ann"]["anonymous-storage-NURLs"][0]
            targets.add(nurl.split("@", 1)[1].split("/", 1)[0].split(",")[0])
        url, _ = start_anonymous_client(
            tmp_path / "client", entries,
            f"[connections]\ntor.socks-proxy = tcp:127.0.0.1:{tor_network.socks_port}\n",
            processes)
        wait_for(all_connected(url, 6), 300, "the client to reach all 6 servers",
                 interval=1.0, watch=processes)

        # The password each server's streams carry (what the connector sends Tor).
        wanted = {}
        for target in targets:
            host, port = target.rsplit(":", 1)
            wanted[isolation_credentials(host, int(port))[1].decode()] = target
        seen: list[object] = []

        def ours() -> dict[str, set[str]] | None:
            every = circuits_by_password(tor_network)
            seen[:] = [every]
            mine = {wanted[p]: c for p, c in every.items() if p in wanted}
            return mine if len(mine) == 6 else None

        try:
            circuits = wait_for(ours, 60, "Tor to show a circuit for each server",
                                interval=0.5)
        except HarnessError as err:
            raise AssertionError(f"{err}: Tor's circuits {seen}, servers {targets}") from err
        # each server's streams on circuits of their own: no circuit serves two servers
        every = [circuit for ids in circuits.values() for circuit in ids]
        assert len(set(every)) == len(every), circuits
    finally:
        stop_all(processes)
