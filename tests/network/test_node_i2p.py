"""mistgrid nodes on the private I2P network (real i2pd routers, real node processes):
a storage node whose only address is an I2P destination (`tub.location = i2p:KEYFILE`,
seed server use-case 3 for I2P) and an anonymous client with TCP disabled that reaches it
through its own router's SAM API, storing and reading a file while its process connects
to nothing but that SAM API (and has no UDP socket)."""

from __future__ import annotations

import json
import re
import stat
import subprocess
import sys
from pathlib import Path

from mistgrid.storage.announcement import servers_yaml
from mistgrid.testing.i2pnet import CLIENT_SESSION_OPTIONS, SERVER_SESSION_OPTIONS, I2PNetwork
from mistgrid.testing.procs import Managed, free_ports, stop_all, wait_for

from .test_node_tor import all_connected, announced, store_and_read_watched, welcome

MISTGRID = str(Path(sys.executable).with_name("mistgrid"))


def options(values: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in values.items())


def test_anonymous_client_and_i2p_server(i2p_network: I2PNetwork, tmp_path: Path) -> None:
    storage_port, web_port = free_ports(2)
    server_sam, client_sam = i2p_network.sam_port(2), i2p_network.sam_port(3)
    storage, client = tmp_path / "storage", tmp_path / "client"
    for node in (storage, client):
        (node / "private").mkdir(parents=True, mode=0o700)
    keyfile = storage / "private" / "i2p.keys"
    (storage / "tahoe.cfg").write_text(
        "[node]\nnickname = i2p0\nanonymous = true\n"
        f"tub.port = tcp:{storage_port}:interface=127.0.0.1\ntub.location = i2p:{keyfile}\n"
        f"[i2p]\nsam.port = tcp:127.0.0.1:{server_sam}\n"
        f"session.options = {options(SERVER_SESSION_OPTIONS)}\n[storage]\nenabled = true\n")
    processes = [Managed("storage", [MISTGRID, "run", str(storage)], tmp_path / "storage.log")]
    try:
        announcement = storage / "private" / "announcement.json"
        wait_for(announced(announcement), 180, "the I2P destination", interval=0.5,
                 watch=processes)
        entry = json.loads(announcement.read_text())
        nurls = entry["ann"]["anonymous-storage-NURLs"]
        assert len(nurls) == 1 and nurls[0].startswith("pb+i2p://")
        assert ".b32.i2p/" in nurls[0]
        assert stat.S_IMODE(keyfile.stat().st_mode) == 0o600  # the destination's keys

        (client / "private" / "servers.yaml").write_text(
            servers_yaml({entry["server-id"]: entry["ann"]}))
        (client / "tahoe.cfg").write_text(
            "[node]\nnickname = anon-client\nanonymous = true\n"
            f"web.port = tcp:{web_port}:interface=127.0.0.1\n"
            f"[connections]\ntcp = disabled\ni2p.sam-api = tcp:127.0.0.1:{client_sam}\n"
            f"[i2p]\nsession.options = {options(CLIENT_SESSION_OPTIONS)}\n"
            "[client]\nshares.needed = 1\nshares.happy = 1\nshares.total = 1\n"
            "[storage]\nenabled = false\n")
        processes.append(Managed("client", [MISTGRID, "run", str(client)],
                                 tmp_path / "client.log"))
        wait_for(announced(client / "node.url"), 60, "the client's web API", watch=processes)
        url = (client / "node.url").read_text().strip()

        wait_for(all_connected(url, 1), 240, "the client to reach the I2P server",
                 interval=2.0, watch=processes)
        assert welcome(url)["servers"][0]["route"] == "i2p"
        assert store_and_read_watched(url, processes[-1].pid, client_sam, web_port,
                                      300_000) == []
        i2p_network.check_alive()
    finally:
        stop_all(processes)


def test_a_tahoe_made_i2p_node_runs_under_mistgrid(i2p_network: I2PNetwork,
                                                   tmp_path: Path) -> None:
    """`tahoe create-node --listen=i2p --hide-ip` (real Tahoe-LAFS 1.20 with txi2p, on
    this private I2P network) makes a destination and writes tub.port = listen:i2p,
    tub.location = i2p:NAME.b32.i2p:3457 and [i2p] dest = true, dest.port,
    dest.private_key_file. `mistgrid run` of that directory (plus the session.options this
    private network needs) has no TCP listener at all, serves on that very destination,
    and an anonymous I2P client stores and reads through it."""
    from ..interop.tahoe import tahoe_venv  # noqa: PLC0415 (installs Tahoe once, cached)

    (web_port,) = free_ports(1)
    server_sam, client_sam = i2p_network.sam_port(2), i2p_network.sam_port(3)
    storage, client = tmp_path / "storage", tmp_path / "client"
    made = subprocess.run([str(tahoe_venv() / "tahoe"), "create-node", "--listen=i2p",
                           "--hide-ip", "--webport=none", "--nickname=tahoe-made",
                           f"--i2p-sam-port=tcp:127.0.0.1:{server_sam}", str(storage)],
                          capture_output=True, timeout=300, check=False)
    assert made.returncode == 0, made.stderr.decode()
    config = (storage / "tahoe.cfg").read_text()
    assert "tub.port = listen:i2p" in config and "dest = true" in config, config
    name = re.search(r"tub.location = i2p:([a-z2-7]{52}\.b32\.i2p):3457", config)
    assert name is not None, config
    (storage / "tahoe.cfg").write_text(config.replace(
        "dest = true\n", f"dest = true\nsession.options = {options(SERVER_SESSION_OPTIONS)}\n"))
    (client / "private").mkdir(parents=True, mode=0o700)
    processes = [Managed("storage", [MISTGRID, "run", str(storage)], tmp_path / "storage.log")]
    try:
        announcement = storage / "private" / "announcement.json"
        wait_for(announced(announcement), 180, "the I2P destination", interval=0.5,
                 watch=processes)
        entry = json.loads(announcement.read_text())
        nurls = entry["ann"]["anonymous-storage-NURLs"]
        assert len(nurls) == 1 and nurls[0].startswith("pb+i2p://"), nurls
        assert f"@{name.group(1)}:3457/" in nurls[0]
        keyfile = storage / "private" / "i2p_dest.privkey"
        assert stat.S_IMODE(keyfile.stat().st_mode) == 0o600  # Tahoe left it 0644
        assert "listening on" not in (tmp_path / "storage.log").read_text()  # no TCP

        (client / "private" / "servers.yaml").write_text(
            servers_yaml({entry["server-id"]: entry["ann"]}))
        (client / "tahoe.cfg").write_text(
            "[node]\nanonymous = true\n"
            f"web.port = tcp:{web_port}:interface=127.0.0.1\n"
            f"[connections]\ntcp = disabled\ni2p.sam-api = tcp:127.0.0.1:{client_sam}\n"
            f"[i2p]\nsession.options = {options(CLIENT_SESSION_OPTIONS)}\n"
            "[client]\nshares.needed = 1\nshares.happy = 1\nshares.total = 1\n"
            "[storage]\nenabled = false\n")
        processes.append(Managed("client", [MISTGRID, "run", str(client)],
                                 tmp_path / "client.log"))
        wait_for(announced(client / "node.url"), 60, "the client's web API", watch=processes)
        url = (client / "node.url").read_text().strip()
        wait_for(all_connected(url, 1), 240, "the client to reach the I2P server",
                 interval=2.0, watch=processes)
        assert store_and_read_watched(url, processes[-1].pid, client_sam, web_port,
                                      200_000) == []
        i2p_network.check_alive()
    finally:
        stop_all(processes)
