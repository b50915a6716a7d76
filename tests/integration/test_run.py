"""`mistgrid run DIR`: a storage node created by create-node serves GBS on its tub.port;
a node with configuration problems refuses to start, one line per problem, exit 1."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from mistgrid.gbs.nurl import parse_nurl
from mistgrid.testing.procs import Managed, free_ports, wait_for

from ..conftest import run_cli
from ..storage.gbs_client import GbsClient
from ..storage.test_contract import V1


def test_storage_node_serves(tmp_path: Path) -> None:
    (port,) = free_ports(1)
    node = tmp_path / "node"
    created = run_cli("create-node", "--port", f"tcp:{port}:interface=127.0.0.1",
                      "--location", f"tcp:127.0.0.1:{port}", "--webport", "none", str(node))
    assert created.returncode == 0, created.stderr.decode()
    mistgrid = str(Path(sys.executable).with_name("mistgrid"))
    process = Managed("mistgrid run", [mistgrid, "run", str(node)], tmp_path / "run.log")
    try:
        announcement = node / "private" / "announcement.json"
        wait_for(lambda: True if announcement.exists() else None, 30, "the node to listen",
                 watch=[process])
        nurl = parse_nurl((node / "private" / "storage.nurls").read_text().split()[0])
        assert (nurl.host, nurl.port) == ("127.0.0.1", port)
        entry = json.loads(announcement.read_text())
        assert entry["ann"]["anonymous-storage-NURLs"] == [nurl.to_text()]
        client = GbsClient(nurl)
        try:
            assert client.request("GET", f"{V1}/version").status == 200
        finally:
            client.close()
        log = (tmp_path / "run.log").read_text()
        assert nurl.swissnum not in log  # never log a swissnum
    finally:
        process.stop()


def test_bad_config_refuses_with_every_reason(tmp_path: Path) -> None:
    node = tmp_path / "node"
    node.mkdir()
    (node / "tahoe.cfg").write_text(
        "[node]\nanonymus = true\ntub.port = tcp:0\n[storage]\nenabled = maybe\n")
    result = run_cli("run", str(node))
    assert result.returncode == 1
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 3, lines
    assert all(line.startswith("mistgrid: error: tahoe.cfg line ") for line in lines)
    assert "did you mean [node] anonymous?" in lines[0]
    assert "Traceback" not in result.stderr.decode()


def test_not_a_node_directory(tmp_path: Path) -> None:
    result = run_cli("run", str(tmp_path))
    assert result.returncode == 1
    assert result.stderr.decode().count("\n") == 1
    assert "is not a node directory" in result.stderr.decode()


def test_port_and_addresses_left_to_the_node(tmp_path: Path) -> None:
    """No tub.port and tub.location = AUTO (as in Tahoe-LAFS, and the seed document's
    server use-case 2): the node listens on a port the kernel picks, remembers it in
    client.port for its next runs, and announces its own addresses (loopback among them)
    with that port. Clients here use only the 127.0.0.1 NURL: tests stay on loopback."""
    node = tmp_path / "node"
    node.mkdir()
    (node / "tahoe.cfg").write_text("[node]\nnickname = auto\ntub.location = AUTO\n"
                                    "[storage]\nenabled = true\n")
    mistgrid = str(Path(sys.executable).with_name("mistgrid"))
    seen = []
    nurls_file = node / "private" / "storage.nurls"
    for run in range(2):
        nurls_file.unlink(missing_ok=True)
        process = Managed(f"run {run}", [mistgrid, "run", str(node)], tmp_path / f"{run}.log")
        try:
            wait_for(lambda: True if nurls_file.exists() else None, 30, "the node to listen",
                     watch=[process])
            remembered = (node / "client.port").read_text()
            assert re.fullmatch(r"tcp:[0-9]+\n", remembered), remembered
            port = int(remembered[4:])
            nurls = [parse_nurl(line) for line in nurls_file.read_text().split()]
            assert all(n.port == port and n.scheme == "pb" for n in nurls)
            assert nurls[-1].host == "127.0.0.1"  # loopback last, routable ones first
            assert "tub.location AUTO: " in (tmp_path / f"{run}.log").read_text()
            client = GbsClient(nurls[-1])
            try:
                assert client.request("GET", f"{V1}/version").status == 200
            finally:
                client.close()
            seen.append(port)
        finally:
            process.stop()
    assert seen[0] == seen[1]  # the same port on the second run


def test_introducer_with_its_location_left_to_it(tmp_path: Path) -> None:
    """An introducer with no tub.location announces AUTO: on a loopback listener, that is
    tcp:127.0.0.1 with its port, in the FURL it writes."""
    (port,) = free_ports(1)
    node = tmp_path / "introducer"
    made = run_cli("create-introducer", "--port", f"tcp:{port}:interface=127.0.0.1",
                   "--location", f"tcp:127.0.0.1:{port}", "--webport", "none", str(node))
    assert made.returncode == 0, made.stderr.decode()
    config = node / "tahoe.cfg"
    config.write_text("\n".join(line for line in config.read_text().splitlines()
                                if not line.startswith("tub.location")) + "\n")
    furl_file = node / "private" / "introducer.furl"
    furl_file.unlink()
    mistgrid = str(Path(sys.executable).with_name("mistgrid"))
    process = Managed("introducer", [mistgrid, "run", str(node)], tmp_path / "run.log")
    try:
        wait_for(lambda: True if furl_file.exists() else None, 30, "the introducer's FURL",
                 watch=[process])
        assert f"@tcp:127.0.0.1:{port}/" in furl_file.read_text()
    finally:
        process.stop()
