"""`mistgrid run DIR`: a storage node created by create-node serves GBS on its tub.port;
a node with configuration problems refuses to start, one line per problem, exit 1."""

from __future__ import annotations

import json
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
