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

from mistgrid.testing.i2pnet import CLIENT_SESSION_OPTIONS, SERVER_SESSION_OPTIONS, I2PNetwork
from mistgrid.testing.procs import Managed, free_ports, stop_all, wait_for

from .test_node_tor import announced, anonymous_client_round_trip, welcome

MISTGRID = str(Path(sys.executable).with_name("mistgrid"))


def options(values: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in values.items())


def i2p_only(sam_port: int) -> str:
    """An anonymous client's [connections] and [i2p] on this network: I2P alone."""
    return (f"tcp = disabled\ni2p.sam-api = tcp:127.0.0.1:{sam_port}\n"
            f"[i2p]\nsession.options = {options(CLIENT_SESSION_OPTIONS)}\n")


def test_anonymous_client_and_i2p_server(i2p_network: I2PNetwork, tmp_path: Path) -> None:
    (storage_port,) = free_ports(1)
    server_sam, client_sam = i2p_network.sam_port(2), i2p_network.sam_port(3)
    storage, client = tmp_path / "storage", tmp_path / "client"
    (storage / "private").mkdir(parents=True, mode=0o700)
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

        url = anonymous_client_round_trip(
            client, {entry["server-id"]: entry["ann"]}, i2p_only(client_sam),
            client_sam, processes, "the client to reach the I2P server", 300_000, 2.0)
        assert welcome(url)["servers"][0]["route"] == "i2p"
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

        anonymous_client_round_trip(
            client, {entry["server-id"]: entry["ann"]}, i2p_only(client_sam),
            client_sam, processes, "the client to reach the I2P server", 200_000, 2.0)
        i2p_network.check_alive()
    finally:
        stop_all(processes)
