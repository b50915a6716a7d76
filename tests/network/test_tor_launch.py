"""`[tor] launch = true` on the private Tor network (real tor processes, no mocks).

A storage node (an onion service) and a client each launch a tor of their own, pinned to
the private network by `[tor] launch.torrc`; the client stores and reads through the
onion server; each node's tor is gone after the node stops, and after the node is killed
with SIGKILL (tor's TAKEOWNERSHIP and __OwningControllerProcess).

Safety: `[tor] tor.executable` is a wrapper that runs the real tor only when the torrc it
is given pins tor to the private network (the checks of test_pinning.py); otherwise it
exits without starting anything, so a launched tor can never reach the public network.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import pytest

from mistgrid.testing.procs import Managed, free_ports, stop_all, wait_for
from mistgrid.testing.tornet import TorNetwork

from ..conftest import run_cli
from .test_node_tor import (
    MISTGRID,
    all_connected,
    announced,
    start_anonymous_client,
    store_and_read,
    welcome,
)

pytestmark = pytest.mark.slow

WRAPPER = """#!{python}
import os, sys
sys.path.insert(0, {root!r})
from tests.network.test_pinning import assert_tor_pinned
torrc = sys.argv[sys.argv.index("-f") + 1]
try:
    assert_tor_pinned(open(torrc).read(), {authorities})
except AssertionError as err:
    sys.stderr.write(f"pinned-tor: refusing {{torrc}}: not pinned to the private network "
                     f"({{err!r}})\\n")
    sys.exit(3)
os.execv({tor!r}, [{tor!r}, *sys.argv[1:]])
"""


def pinned_tor(tmp_path: Path, tor_network: TorNetwork) -> Path:
    """An executable that runs tor only with a torrc pinned to `tor_network`."""
    real = shutil.which("tor")
    assert real is not None
    script = tmp_path / "pinned-tor"
    script.write_text(WRAPPER.format(python=sys.executable,
                                     root=str(Path(__file__).parents[2]),
                                     authorities=len(tor_network.authorities), tor=real))
    script.chmod(0o755)
    return script


def launch_lines(tmp_path: Path, tor_network: TorNetwork,
                 options: Mapping[str, list[str]] | None = None) -> Path:
    """[tor] launch.torrc: what pins a tor to the private network (`options`, if given,
    instead of the network's usual pinning options)."""
    path = tmp_path / "private-network.torrc"
    chosen = tor_network.pinning_options() if options is None else options
    path.write_text("".join(f"{key} {value}\n" for key, values in chosen.items()
                            for value in values))
    return path


def tor_section(tmp_path: Path, tor_network: TorNetwork,
                options: Mapping[str, list[str]] | None = None) -> str:
    return (f"[tor]\nlaunch = true\ntor.executable = {pinned_tor(tmp_path, tor_network)}\n"
            f"launch.torrc = {launch_lines(tmp_path, tor_network, options)}\n")


def launched_pid(url: str) -> int:
    text = welcome(url)["network"]["tor"]
    match = re.search(r"pid (\d+)", text)
    assert match is not None and "launched" in text, text
    return int(match.group(1))


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie waiting for its parent counts as gone
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_the_guard_refuses_an_unpinned_torrc(tor_network: TorNetwork,
                                             tmp_path: Path) -> None:
    """The wrapper the launch tests use never starts tor on a torrc of the public
    network (what a node would write were launch.torrc ignored)."""
    torrc = tmp_path / "torrc"
    torrc.write_text("SocksPort 127.0.0.1:auto\nDataDirectory /nonexistent\n")
    result = subprocess.run([str(pinned_tor(tmp_path, tor_network)), "-f", str(torrc)],
                            capture_output=True, timeout=60, check=False)
    assert result.returncode == 3 and b"refusing" in result.stderr, result.stderr


def test_nodes_launch_their_own_tor(tor_network: TorNetwork, tmp_path: Path) -> None:
    (storage_port,) = free_ports(1)
    storage, client = tmp_path / "storage", tmp_path / "client"
    made = run_cli("create-node", "--listen=tor", "--hide-ip", "--nickname", "onion0",
                   "--webport", "none", "--port", f"tcp:{storage_port}:interface=127.0.0.1",
                   "--tor-launch", str(storage))
    assert made.returncode == 0, made.stderr.decode()
    config = (storage / "tahoe.cfg").read_text()
    assert "launch = true" in config
    (storage / "tahoe.cfg").write_text(config.replace(
        "launch = true\n", tor_section(tmp_path, tor_network).removeprefix("[tor]\n"), 1))
    processes = [Managed("storage", [MISTGRID, "run", str(storage)], tmp_path / "storage.log")]
    try:
        entry_file = storage / "private" / "announcement.json"
        wait_for(announced(entry_file), 300, "the storage node's own tor and onion service",
                 interval=0.5, watch=processes)
        entry = json.loads(entry_file.read_text())
        assert entry["ann"]["anonymous-storage-NURLs"][0].startswith("pb+tor://")
        assert "Tor: bootstrapped 100%" in (tmp_path / "storage.log").read_text()

        url, _ = start_anonymous_client(client, {entry["server-id"]: entry["ann"]},
                                        tor_section(tmp_path, tor_network), processes, 300)
        wait_for(all_connected(url, 1), 240, "the client to reach the onion server",
                 interval=1.0, watch=processes)
        client_tor = launched_pid(url)
        assert alive(client_tor)
        assert os.readlink(f"/proc/{client_tor}/cwd") is not None
        data = os.urandom(300_000)
        store_and_read(url, data)
        storage_tor = int(re.findall(r"Tor: started .* \(pid (\d+)\)",
                                     (tmp_path / "storage.log").read_text())[-1])

        # A stopped node leaves no tor behind.
        processes[-1].stop()
        wait_for(lambda: True if not alive(client_tor) else None, 20,
                 "the client's tor to exit with it")
        # A killed node (SIGKILL: no shutdown code runs) leaves none either.
        os.kill(processes[0].pid, signal.SIGKILL)
        wait_for(lambda: True if not alive(storage_tor) else None, 30,
                 "the storage node's tor to exit after the node was killed")
    finally:
        stop_all(processes)


def test_launch_refuses_what_cannot_work(tmp_path: Path) -> None:
    """One line, exit 1: launch with a running Tor named too; a tor.executable that is
    not there; a launched tor that exits at once (its own words shown)."""
    node = tmp_path / "node"
    (node / "private").mkdir(parents=True)
    (web,) = free_ports(1)
    base = f"[node]\nweb.port = tcp:{web}:interface=127.0.0.1\n"
    cases = [
        ("[tor]\nlaunch = true\nsocks.port = tcp:127.0.0.1:9050\n", "[tor] socks.port"),
        (f"[tor]\nlaunch = true\ntor.executable = {tmp_path / 'nothing'}\n",
         "[tor] tor.executable"),
    ]
    false_tor = tmp_path / "false-tor"
    false_tor.write_text("#!/bin/sh\necho 'tor: some fatal problem' >&2\nexit 1\n")
    false_tor.chmod(0o755)
    cases.append((f"[tor]\nlaunch = true\ntor.executable = {false_tor}\n",
                  "tor: some fatal problem"))
    for section, expected in cases:
        (node / "tahoe.cfg").write_text(base + section)
        result = run_cli("run", str(node))
        err = result.stderr.decode()
        assert result.returncode == 1, (section, err)
        assert expected in err and "Traceback" not in err, (section, err)
        time.sleep(0.1)

