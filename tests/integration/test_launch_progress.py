"""While the node's own I2P router (or Tor) starts, its web port says how far it is and
refuses work; a router that dies at start stops the node with one line.

The "router" here is a stand-in that never opens SAM (or exits at once), so what the node
does before its network is ready is seen deterministically; the real launches are in
tests/network/test_i2p_launch.py and test_tor_launch.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from mistgrid.testing.procs import Managed, free_ports, stop_all, wait_for

from .test_owned_process import alive

MISTGRID = str(Path(sys.executable).with_name("mistgrid"))


def stand_in(tmp_path: Path, body: str) -> Path:
    script = tmp_path / "fake-i2pd"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)
    return script


def client_dir(tmp_path: Path, executable: Path) -> tuple[Path, int]:
    (web,) = free_ports(1)
    node = tmp_path / "client"
    (node / "private").mkdir(parents=True, mode=0o700)
    (node / "tahoe.cfg").write_text(
        f"[node]\nnickname = starting\nweb.port = tcp:{web}:interface=127.0.0.1\n"
        f"[i2p]\nlaunch = true\ni2p.executable = {executable}\n")
    return node, web


def test_the_web_port_shows_progress_and_refuses_work_until_ready(tmp_path: Path) -> None:
    node, web = client_dir(tmp_path, stand_in(tmp_path, "echo fake router up\nexec sleep 600"))
    processes = [Managed("client", [MISTGRID, "run", str(node)], tmp_path / "client.log")]
    try:
        wait_for(lambda: (node / "node.url").exists() or None, 60, "the web port",
                 watch=processes)
        url = f"http://127.0.0.1:{web}/"
        with urllib.request.urlopen(url + "?t=json", timeout=30) as response:
            page = json.load(response)
        assert page["starting"] is True and page["servers"] == []
        assert page["network"]["i2p"].startswith("started "), page
        router = int(page["network"]["i2p"].split("(pid ")[1].split(")")[0])
        assert alive(router)
        with urllib.request.urlopen(url, timeout=30) as response:
            assert b"is starting" in response.read()
        put = urllib.request.Request(url + "uri", data=b"x" * 100, method="PUT")
        try:
            urllib.request.urlopen(put, timeout=30)
            raise AssertionError("a PUT was taken before the node could reach the grid")
        except urllib.error.HTTPError as err:
            assert err.code == 503 and err.headers["Retry-After"]
            assert b"still starting" in err.read()
        assert "READY" not in (tmp_path / "client.log").read_text()
        processes[0].stop()
        wait_for(lambda: True if not alive(router) else None, 20,
                 "the node's router to end with the node")
    finally:
        stop_all(processes)


def test_a_router_that_dies_at_start_stops_the_node_with_one_line(tmp_path: Path) -> None:
    node, _ = client_dir(tmp_path, stand_in(tmp_path, "echo 'bad option: --x' >&2\nexit 4"))
    result = subprocess.run([MISTGRID, "run", str(node)], capture_output=True, timeout=60,
                            check=False)
    err = result.stderr.decode()
    assert result.returncode == 1, (result.stdout, err)
    assert "the node's own I2P router exited while starting: bad option: --x" in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err


def test_an_anonymous_node_refuses_a_launch_config_that_would_reveal_it(
        tmp_path: Path) -> None:
    """A torrc line that makes the node's tor a relay, or an i2pd listener on every address:
    one line naming it and the fix, exit 1, and the daemon never started (the stand-in
    would leave a mark)."""
    mark = tmp_path / "started"
    executable = stand_in(tmp_path, f"touch {mark}\nexec sleep 600")
    extra = tmp_path / "extra.conf"
    for section, text, expected in (
            ("tor", "UseBridges 0\nORPort 9001\n", "`ORPort 9001` makes the node's tor a "
                                                  "public relay"),
            ("i2p", "[http]\nenabled = true\naddress = 0.0.0.0\n",
             "`[http] address = 0.0.0.0` opens a listener")):
        extra.write_text(text)
        key = "launch.torrc" if section == "tor" else "launch.config"
        node = tmp_path / section
        (node / "private").mkdir(parents=True, mode=0o700)
        (web,) = free_ports(1)
        (node / "tahoe.cfg").write_text(
            f"[node]\nanonymous = true\nweb.port = tcp:{web}:interface=127.0.0.1\n"
            f"[{section}]\nlaunch = true\n{section}.executable = {executable}\n"
            f"{key} = {extra}\n")
        result = subprocess.run([MISTGRID, "run", str(node)], capture_output=True,
                                timeout=60, check=False)
        err = result.stderr.decode()
        assert result.returncode == 1, (result.stdout, err)
        assert expected in err and "fix:" in err, err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
        assert not mark.exists()
