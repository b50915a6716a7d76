"""The introducer across implementations (issue 5's acceptance):
- Tahoe-LAFS 1.20 storage nodes announce to a mistgrid introducer, and a mistgrid client
  that knows only that introducer stores and reads through them;
- mistgrid storage nodes announce to a Tahoe-LAFS 1.20 introducer, and a Tahoe 1.20 client
  that knows only that introducer stores and reads through them."""

from __future__ import annotations

import os
from pathlib import Path

from mistgrid.testing.procs import Managed, stop_all, wait_for

from ..integration.test_introducer import (
    connected,
    put_get,
    start_client,
    start_introducer,
    start_storage,
    welcome,
)
from .tahoe import start_introduced_client, start_storage_node
from .tahoe import start_introducer as start_tahoe_introducer


def test_tahoe_servers_through_mistgrid_introducer(tmp_path: Path) -> None:
    processes: list[Managed] = []
    try:
        furl = start_introducer(tmp_path, processes)
        for i in range(3):
            node = start_storage_node(tmp_path / f"tahoe{i}", introducer=furl,
                                      nickname=f"tahoe{i}")
            processes.append(node.process)
        client = start_client(tmp_path, furl, processes)
        wait_for(lambda: connected(client, 3), 90, "the client to hear of 3 Tahoe servers",
                 interval=0.5, watch=processes)
        servers = welcome(client)["servers"]
        assert sorted(s["nickname"] for s in servers) == ["tahoe0", "tahoe1", "tahoe2"]
        assert all(s["version"].startswith("tahoe-lafs/1.20") for s in servers), servers
        put_get(client, os.urandom(1024))
        put_get(client, os.urandom(2 * 1024 * 1024 + 5))
        # The shares really are on the Tahoe servers.
        shares = [p for i in range(3)
                  for p in (tmp_path / f"tahoe{i}" / "storage" / "shares").rglob("*")
                  if p.is_file()]
        assert len(shares) >= 3
    finally:
        stop_all(processes)


def test_mistgrid_servers_through_tahoe_introducer(tmp_path: Path) -> None:
    processes: list[Managed] = []
    try:
        introducer, furl = start_tahoe_introducer(tmp_path / "tahoe-introducer")
        processes.append(introducer)
        storage = [start_storage(tmp_path, f"storage{i}", furl, processes) for i in range(3)]
        client = start_introduced_client(tmp_path / "tahoe-client", furl, servers=3,
                                         needed=2, happy=3, total=3)
        processes.append(client.process)
        data = os.urandom(2 * 1024 * 1024 + 5)
        source = tmp_path / "in.bin"
        source.write_bytes(data)
        cap = client.cli("put", str(source)).decode().strip()
        assert cap.startswith("URI:CHK:")
        assert client.cli("get", cap) == data
        shares = [p for n in storage for p in (n / "storage" / "shares").rglob("*")
                  if p.is_file()]
        assert len(shares) == 3  # one share on each mistgrid server
    finally:
        stop_all(processes)
