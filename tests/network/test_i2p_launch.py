"""`[i2p] launch = true` on the private I2P network (real i2pd processes, no mocks).

A storage node (serving on an I2P destination) and a client each launch an i2pd of their
own, pinned to the private network by `[i2p] launch.config`; the client stores and reads
through the I2P server; each node's router is gone after the node stops, and after the
node is killed with SIGKILL (the router is owned: PR_SET_PDEATHSIG).

Safety: `[i2p] i2p.executable` is a wrapper that runs the real i2pd only when the
i2pd.conf it is given pins it to the private network (the checks of test_pinning.py);
otherwise it exits without starting anything, so a launched router can never reach the
public I2P network.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mistgrid.testing.i2pnet import (
    CLIENT_SESSION_OPTIONS,
    PEER_OCTET,
    SERVER_SESSION_OPTIONS,
    I2PNetwork,
)
from mistgrid.testing.procs import Managed, free_ports, stop_all, wait_for

from ..conftest import run_cli
from .test_node_i2p import options
from .test_node_tor import (
    MISTGRID,
    all_connected,
    announced,
    start_anonymous_client,
    store_and_read,
    welcome,
)
from .test_tor_launch import alive

pytestmark = pytest.mark.slow

WRAPPER = """#!{python}
import os, sys
from pathlib import Path
sys.path.insert(0, {root!r})
from tests.network.test_pinning import assert_i2pd_pinned, parse_i2pd_conf
conf = next(a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--conf="))
text = open(conf).read()
try:
    assert_i2pd_pinned(text, Path({base!r}))
except AssertionError as err:
    sys.stderr.write(f"pinned-i2pd: refusing {{conf}}: not pinned to the private network "
                     f"({{err!r}})\\n")
    sys.exit(3)
env = dict(os.environ, LD_PRELOAD={shim!r}, MISTGRID_PEER_OCTET={octet!r},
           MISTGRID_NTCP2_PORT=parse_i2pd_conf(text)["ntcp2"]["port"])
os.execve({i2pd!r}, [{i2pd!r}, *sys.argv[1:]], env)
"""


def pinned_i2pd(tmp_path: Path, network: I2PNetwork) -> Path:
    """An executable that runs i2pd only with an i2pd.conf pinned to `network` (and with
    the network's getpeername shim, as its own routers have)."""
    real = shutil.which("i2pd")
    assert real is not None
    script = tmp_path / "pinned-i2pd"
    script.write_text(WRAPPER.format(python=sys.executable, root=str(Path(__file__).parents[2]),
                                     base=str(network.base), shim=str(network.shim),
                                     octet=str(PEER_OCTET), i2pd=real))
    script.chmod(0o755)
    return script


def i2p_section(tmp_path: Path, network: I2PNetwork, number: int,
                session: dict[str, str]) -> str:
    """[i2p] of a node that launches its own router on `network`."""
    lines = tmp_path / f"private-network-{number}.conf"
    lines.write_text(network.launch_config(number))
    return (f"[i2p]\nlaunch = true\ni2p.executable = {pinned_i2pd(tmp_path, network)}\n"
            f"launch.config = {lines}\nsession.options = {options(session)}\n")


def test_the_guard_refuses_an_unpinned_config(i2p_network: I2PNetwork,
                                              tmp_path: Path) -> None:
    """The wrapper never starts i2pd on a config of the public network (what a node
    would write were launch.config ignored)."""
    conf = tmp_path / "i2pd.conf"
    conf.write_text("daemon = false\n[sam]\nenabled = true\naddress = 127.0.0.1\n")
    result = subprocess.run([str(pinned_i2pd(tmp_path, i2p_network)), f"--conf={conf}"],
                            capture_output=True, timeout=60, check=False)
    assert result.returncode == 3 and b"refusing" in result.stderr, result.stderr


def test_nodes_launch_their_own_i2p_router(i2p_network: I2PNetwork, tmp_path: Path) -> None:
    (storage_port,) = free_ports(1)
    storage, client = tmp_path / "storage", tmp_path / "client"
    made = run_cli("create-node", "--listen=i2p", "--hide-ip", "--nickname", "i2p-own",
                   "--webport", "none", "--port", f"tcp:{storage_port}:interface=127.0.0.1",
                   "--i2p-launch", str(storage))
    assert made.returncode == 0, made.stderr.decode()
    config = (storage / "tahoe.cfg").read_text()
    assert "[i2p]\nlaunch = true\n" in config
    config = config.replace("[i2p]\nlaunch = true\n",
                            i2p_section(tmp_path, i2p_network, 0, SERVER_SESSION_OPTIONS))
    config = config.replace("tcp = tor\n", "tcp = disabled\n") + "[tor]\nenabled = false\n"
    (storage / "tahoe.cfg").write_text(config)
    processes = [Managed("storage", [MISTGRID, "run", str(storage)], tmp_path / "storage.log")]
    try:
        entry_file = storage / "private" / "announcement.json"
        wait_for(announced(entry_file), 300, "the storage node's own i2pd and destination",
                 interval=0.5, watch=processes)
        entry = json.loads(entry_file.read_text())
        assert entry["ann"]["anonymous-storage-NURLs"][0].startswith("pb+i2p://")
        log = (tmp_path / "storage.log").read_text()
        assert "I2P: SAM API answering" in log and "I2P: ready (tunnels built)" in log, log
        storage_i2pd = int(re.findall(r"I2P: started .* \(pid (\d+)\)", log)[-1])
        assert alive(storage_i2pd)

        url, _ = start_anonymous_client(
            client, {entry["server-id"]: entry["ann"]},
            "[connections]\ntcp = disabled\n[tor]\nenabled = false\n"
            + i2p_section(tmp_path, i2p_network, 1, CLIENT_SESSION_OPTIONS), processes, 300)
        wait_for(all_connected(url, 1), 300, "the client to reach the I2P server",
                 interval=1.0, watch=processes)
        page = welcome(url)
        assert page["servers"][0]["route"] == "i2p"
        text = page["network"]["i2p"]
        assert "launched by this node" in text, text
        client_i2pd = int(re.findall(r"pid (\d+)", text)[0])
        assert alive(client_i2pd)
        data = os.urandom(200_000)
        store_and_read(url, data, 600)

        # A stopped node leaves no router behind.
        processes[-1].stop()
        wait_for(lambda: True if not alive(client_i2pd) else None, 30,
                 "the client's i2pd to exit with it")
        # A killed node (SIGKILL: no shutdown code runs) leaves none either.
        os.kill(processes[0].pid, signal.SIGKILL)
        wait_for(lambda: True if not alive(storage_i2pd) else None, 30,
                 "the storage node's i2pd to exit after the node was killed")
        i2p_network.check_alive()
    finally:
        stop_all(processes)
