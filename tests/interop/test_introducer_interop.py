"""The introducer across implementations (issue 5's acceptance):
- Tahoe-LAFS 1.20 storage nodes announce to a mistgrid introducer, and a mistgrid client
  that knows only that introducer stores and reads through them;
- mistgrid storage nodes announce to a Tahoe-LAFS 1.20 introducer, and a Tahoe 1.20 client
  that knows only that introducer stores and reads through them."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

from mistgrid.introducer.cache import cache_path, parse_cache
from mistgrid.testing.procs import Managed, stop_all, wait_for

from ..integration.test_introducer import (
    connected,
    put_get,
    start,
    start_client,
    start_introducer,
    start_storage,
    welcome,
)
from .tahoe import _create_client, _run_client, start_introduced_client, start_storage_node
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


def test_announcement_caches_cross_both_ways(tmp_path: Path) -> None:
    """While the introducer is down: a Tahoe 1.20 client's directory, with the
    announcement cache Tahoe wrote, run under mistgrid reaches the cached servers, stores
    and reads; and a Tahoe client given the cache a mistgrid client wrote does too."""
    processes: list[Managed] = []
    try:
        furl = start_introducer(tmp_path, processes)
        for i in range(2):
            start_storage(tmp_path, f"storage{i}", furl, processes)
        directory = tmp_path / "tahoe-client"
        tahoe = start_introduced_client(directory, furl, servers=2, needed=1, happy=2,
                                        total=2)
        processes.append(tahoe.process)
        client = start_client(tmp_path, furl, processes, needed=1, happy=2, total=2)
        caches = [cache_path(node / "private", "default") for node in (directory, client)]
        for cache in caches:
            wait_for(holds(cache, 2), 60, f"{cache} to hold 2 servers", watch=processes)
        for process in [p for p in processes if not p.name.endswith(("storage0",
                                                                        "storage1"))]:
            processes.remove(process)
            process.stop()

        (directory / "node.url").unlink()
        processes.append(start(directory))
        wait_for(lambda: connected(directory, 2), 90,
                 "mistgrid, on Tahoe's directory, to reach the cached servers",
                 interval=0.5, watch=processes)
        put_get(directory, os.urandom(100_000))

        again = tmp_path / "tahoe-again"
        executable = _create_client(again, 1, 2, 2, f"--introducer={furl}")
        shutil.copy(caches[1], cache_path(again / "private", "default"))
        second = _run_client(executable, again, 2, 90)
        processes.append(second.process)
        data = os.urandom(100_000)
        source = tmp_path / "in.bin"
        source.write_bytes(data)
        cap = second.cli("put", str(source)).decode().strip()
        assert second.cli("get", cap) == data
    finally:
        stop_all(processes)


def holds(cache: Path, count: int) -> Callable[[], bool | None]:
    """For wait_for: the announcement cache `cache` holds `count` servers."""
    def check() -> bool | None:
        return True if cache.exists() and len(parse_cache(cache.read_text())[0]) == count \
            else None
    return check
