"""A grid held together by a mistgrid introducer: storage nodes announce themselves, a
client learns them from the introducer alone (no servers.yaml) and stores and reads a
file; a restarted storage node re-announces with a higher seqnum."""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mistgrid.node.pidfile import READY
from mistgrid.testing.procs import Managed, free_ports, stop_all, wait_for

from ..conftest import run_cli

MISTGRID = str(Path(sys.executable).with_name("mistgrid"))


def start(node: Path) -> Managed:
    return Managed(f"mistgrid run {node.name}", [MISTGRID, "run", str(node)],
                   node / "run.log")


def welcome(node: Path) -> dict[str, Any]:
    url = (node / "node.url").read_text().strip()
    with urllib.request.urlopen(url + "?t=json", timeout=30) as response:
        result: dict[str, Any] = json.load(response)
    return result


def connected(node: Path, count: int) -> bool | None:
    try:
        servers = welcome(node)["servers"]
    except OSError:
        return None
    live = [s for s in servers if s["connected"]]
    return True if len(live) == count else None


def start_introducer(base: Path, processes: list[Managed]) -> str:
    (port,) = free_ports(1)
    node = base / "introducer"
    made = run_cli("create-introducer", "--port", f"tcp:{port}:interface=127.0.0.1",
                   "--location", f"tcp:127.0.0.1:{port}", "--webport", "none", str(node))
    assert made.returncode == 0, made.stderr.decode()
    furl_file = node / "private" / "introducer.furl"
    furl = furl_file.read_text().strip()  # known before the first start
    processes.append(start(node))
    wait_for(lambda: True if READY in (node / "run.log").read_text() else None, 30,
             "the introducer to listen", watch=processes)
    assert furl_file.read_text().strip() == furl  # Foolscap kept it: same tub ID and name
    return furl


def start_storage(base: Path, name: str, furl: str, processes: list[Managed],
                  storage_lines: str = "") -> Path:
    """A storage node; `storage_lines` go into its tahoe.cfg's [storage] section."""
    (port,) = free_ports(1)
    node = base / name
    made = run_cli("create-node", "--nickname", name, "--introducer", furl,
                   "--port", f"tcp:{port}:interface=127.0.0.1",
                   "--location", f"tcp:127.0.0.1:{port}", "--webport", "none", str(node))
    assert made.returncode == 0, made.stderr.decode()
    if storage_lines:
        config = node / "tahoe.cfg"
        config.write_text(config.read_text().replace("[storage]\n",
                                                     f"[storage]\n{storage_lines}\n", 1))
    processes.append(start(node))
    return node


def start_client(base: Path, furl: str, processes: list[Managed], needed: int = 2,
                 happy: int = 3, total: int = 3) -> Path:
    (web,) = free_ports(1)
    node = base / "client"
    made = run_cli("create-client", "--introducer", furl,
                   "--webport", f"tcp:{web}:interface=127.0.0.1",
                   "--shares-needed", str(needed), "--shares-happy", str(happy),
                   "--shares-total", str(total), str(node))
    assert made.returncode == 0, made.stderr.decode()
    processes.append(start(node))
    wait_for(lambda: True if (node / "node.url").exists() else None, 30, "the client",
             watch=processes)
    return node


@pytest.fixture
def processes() -> Iterator[list[Managed]]:
    started: list[Managed] = []
    yield started
    stop_all(started)


def put_get(client: Path, data: bytes) -> str:
    url = (client / "node.url").read_text().strip()
    request = urllib.request.Request(url + "uri", data=data, method="PUT")
    with urllib.request.urlopen(request, timeout=120) as response:
        cap: str = response.read().decode()
    with urllib.request.urlopen(url + "uri/" + cap, timeout=120) as response:
        assert response.read() == data
    return cap


def test_grid_through_a_mistgrid_introducer(tmp_path: Path,
                                            processes: list[Managed]) -> None:
    furl = start_introducer(tmp_path, processes)
    assert furl.startswith("pb://") and "@tcp:127.0.0.1:" in furl
    assert (tmp_path / "introducer" / "private" / "introducer.furl").stat().st_mode & 0o077 == 0
    storage = [start_storage(tmp_path, f"storage{i}", furl, processes) for i in range(3)]
    client = start_client(tmp_path, furl, processes)
    wait_for(lambda: connected(client, 3), 60, "the client to hear of 3 servers",
             interval=0.3, watch=processes)
    page = welcome(client)
    assert [i["connected"] for i in page["introducers"]["details"]] == [True]
    assert page["introducers"]["statuses"][0].startswith("Connected to ")
    assert sorted(s["nickname"] for s in page["servers"]) == ["storage0", "storage1",
                                                             "storage2"]
    put_get(client, os.urandom(300_000))
    for name in ("storage.nurls", "announcement.json", "announcement-seqnum"):
        path = storage[0] / "private" / name  # the first two hold the swissnum
        assert path.stat().st_mode & 0o077 == 0, name

    # A storage node restarts: it re-announces (higher seqnum), the client replaces its
    # entry rather than adding a second one, and the grid still works.
    seqnum = int((storage[0] / "private" / "announcement-seqnum").read_text())
    index = next(i for i, p in enumerate(processes) if p.name.endswith("storage0"))
    processes[index].stop()
    processes[index] = start(storage[0])
    wait_for(lambda: True if int((storage[0] / "private" / "announcement-seqnum")
                                 .read_text()) > seqnum else None, 30, "a new announcement",
             watch=processes)
    wait_for(lambda: connected(client, 3), 60, "the client to see 3 servers again",
             interval=0.3, watch=processes)
    assert len(welcome(client)["servers"]) == 3
    put_get(client, os.urandom(100_000))

    # Nothing secret in any log: not the introducer's swissnum, not the node keys.
    swissnum = furl.rsplit("/", 1)[1]
    secrets = [swissnum] + [(n / "private" / "node.privkey").read_text().strip()
                            for n in storage]
    for log in tmp_path.rglob("*.log"):
        text = log.read_text(errors="replace")
        for secret in secrets:
            assert secret not in text, log


def test_a_server_known_twice_is_listed_once(tmp_path: Path,
                                             processes: list[Managed]) -> None:
    """A server in private/servers.yaml (under a name of the user's) that also announces
    itself to the introducer is one server: listed once, as servers.yaml has it (Tahoe's
    rule: a static server is not replaced by an announcement)."""
    furl = start_introducer(tmp_path, processes)
    storage = [start_storage(tmp_path, f"storage{i}", furl, processes) for i in range(2)]
    entry_file = storage[0] / "private" / "announcement.json"
    wait_for(lambda: True if entry_file.exists() else None, 30, "storage0's announcement",
             watch=processes)
    entry = json.loads(entry_file.read_text())
    (web,) = free_ports(1)
    node = tmp_path / "client"
    made = run_cli("create-client", "--introducer", furl,
                   "--webport", f"tcp:{web}:interface=127.0.0.1", "--shares-needed", "1",
                   "--shares-happy", "2", "--shares-total", "2", str(node))
    assert made.returncode == 0, made.stderr.decode()
    from mistgrid.storage.announcement import servers_yaml  # noqa: PLC0415
    (node / "private" / "servers.yaml").write_text(
        servers_yaml({"my-own-name-for-storage0": entry["ann"]}))
    processes.append(start(node))
    wait_for(lambda: True if (node / "node.url").exists() else None, 30, "the client",
             watch=processes)
    wait_for(lambda: connected(node, 2), 60, "the client to see 2 servers", interval=0.3,
             watch=processes)
    time.sleep(2)  # announcements of both servers have arrived by now; nothing more comes
    servers = welcome(node)["servers"]
    assert len(servers) == 2, servers
    ids = sorted(s["nodeid"] for s in servers)
    assert "my-own-name-for-storage0" in ids and ids[-1].startswith("v0-"), ids
    put_get(node, os.urandom(10_000))
