"""An I2P-only grid on the private I2P network: the introducer, the storage node and the
client all reach each other over I2P alone (TCP disabled, no Tor anywhere). The
introducer serves Foolscap on an I2P destination (`tub.location = i2p:KEYFILE`) and its
FURL names it (`i2p:NAME.b32.i2p`); the storage node announces to it over I2P, the client
learns of the storage node from it over I2P and stores and reads a file."""

from __future__ import annotations

import json
import os
import sys
import urllib.request
from pathlib import Path

import pytest

from mistgrid.testing.i2pnet import CLIENT_SESSION_OPTIONS, SERVER_SESSION_OPTIONS, I2PNetwork
from mistgrid.testing.procs import Managed, free_ports, stop_all, wait_for

from .test_node_i2p import options
from .test_node_tor import all_connected, announced, welcome

MISTGRID = str(Path(sys.executable).with_name("mistgrid"))
pytestmark = pytest.mark.slow


def test_a_grid_on_i2p_alone(i2p_network: I2PNetwork, tmp_path: Path) -> None:
    intro_port, storage_port, web = free_ports(3)
    intro_sam, storage_sam, client_sam = (i2p_network.sam_port(i) for i in (1, 2, 3))
    introducer, storage, client = (tmp_path / n for n in ("introducer", "storage", "client"))
    for node in (introducer, storage, client):
        (node / "private").mkdir(parents=True, mode=0o700)
    no_tor = "[tor]\nenabled = false\n"
    (introducer / "tahoe-introducer.tac").write_text("# introducer\n")
    (introducer / "tahoe.cfg").write_text(
        "[node]\nnickname = intro\nanonymous = true\n"
        f"tub.port = tcp:{intro_port}:interface=127.0.0.1\n"
        f"tub.location = i2p:{introducer / 'private' / 'i2p.keys'}\n"
        f"[connections]\ntcp = disabled\ni2p.sam-api = tcp:127.0.0.1:{intro_sam}\n"
        f"[i2p]\nsession.options = {options(SERVER_SESSION_OPTIONS)}\n" + no_tor)
    processes = [Managed("introducer", [MISTGRID, "run", str(introducer)],
                         tmp_path / "introducer.log")]
    try:
        furl_file = introducer / "private" / "introducer.furl"
        wait_for(announced(furl_file), 240, "the introducer's I2P destination", interval=0.5,
                 watch=processes)
        furl = furl_file.read_text().strip()
        hints = furl.split("@", 1)[1].split("/", 1)[0].split(",")
        assert len(hints) == 1 and hints[0].startswith("i2p:") and \
            hints[0].endswith(".b32.i2p"), furl
        for node, sam, rest in (
                (storage, storage_sam,
                 f"tub.port = tcp:{storage_port}:interface=127.0.0.1\n"
                 f"tub.location = i2p:{storage / 'private' / 'i2p.keys'}\n"),
                (client, client_sam, f"web.port = tcp:{web}:interface=127.0.0.1\n")):
            role = "[storage]\nenabled = true\n" if node is storage else \
                "[client]\nshares.needed = 1\nshares.happy = 1\nshares.total = 1\n"
            session = SERVER_SESSION_OPTIONS if node is storage else CLIENT_SESSION_OPTIONS
            (node / "private" / "introducers.yaml").write_text(
                f"introducers:\n  default:\n    furl: '{furl}'\n")
            (node / "tahoe.cfg").write_text(
                f"[node]\nnickname = {node.name}\nanonymous = true\n{rest}"
                f"[connections]\ntcp = disabled\ni2p.sam-api = tcp:127.0.0.1:{sam}\n"
                f"[i2p]\nsession.options = {options(session)}\n" + no_tor + role)
            processes.append(Managed(node.name, [MISTGRID, "run", str(node)],
                                     tmp_path / f"{node.name}.log"))
        wait_for(announced(client / "node.url"), 60, "the client", watch=processes)
        url = (client / "node.url").read_text().strip()
        wait_for(all_connected(url, 1), 600, "the client to hear of the storage node over "
                 "I2P and reach it", interval=2.0, watch=processes)
        page = welcome(url)
        assert page["servers"][0]["route"] == "i2p"
        assert page["introducers"]["details"][0]["connected"] is True
        entry = json.loads((storage / "private" / "announcement.json").read_text())
        assert entry["ann"]["anonymous-storage-NURLs"][0].startswith("pb+i2p://")
        data = os.urandom(100_000)
        request = urllib.request.Request(url + "uri", data=data, method="PUT")
        with urllib.request.urlopen(request, timeout=600) as response:
            cap = response.read().decode()
        with urllib.request.urlopen(url + "uri/" + cap, timeout=600) as response:
            assert response.read() == data
        i2p_network.check_alive()
    finally:
        stop_all(processes)
