"""The announcement cache (`introducer/cache.py`), with real nodes: a client keeps the
storage servers it heard of in `private/introducer_default_cache.yaml` (Tahoe-LAFS 1.20's
file and format), and restarted while its introducer is down it still reaches them,
stores and reads. The text itself: a round trip, and entries a hand or another program
broke are skipped, and a cache that is not YAML at all is ignored, not fatal."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from mistgrid.introducer.cache import cache_path, cache_text, parse_cache
from mistgrid.testing.procs import Managed, wait_for

from .test_introducer import (
    connected,
    processes,  # noqa: F401 (a fixture)
    put_get,
    start,
    start_client,
    start_introducer,
    start_storage,
    welcome,
)


def test_a_client_reaches_cached_servers_while_its_introducer_is_down(
        tmp_path: Path, processes: list[Managed]) -> None:  # noqa: F811
    furl = start_introducer(tmp_path, processes)
    for i in range(3):
        start_storage(tmp_path, f"storage{i}", furl, processes)
    client = start_client(tmp_path, furl, processes)
    wait_for(lambda: connected(client, 3), 60, "the client to hear of 3 servers",
             interval=0.3, watch=processes)
    path = cache_path(client / "private", "default")
    wait_for(lambda: True if path.exists() and len(parse_cache(path.read_text())[0]) == 3
             else None, 30, "3 servers in the cache", interval=0.2, watch=processes)
    assert path.stat().st_mode & 0o077 == 0  # it holds the servers' swissnums
    entries = yaml.safe_load(path.read_text())  # Tahoe's shape: a list of {ann, key_s}
    assert all(set(e) == {"ann", "key_s"} and e["key_s"].startswith("v0-") and
               e["ann"]["service-name"] == "storage" for e in entries)
    put_get(client, os.urandom(50_000))

    # The introducer goes away; the client restarts and still has its 3 servers.
    for name in ("introducer", "client"):
        index = next(i for i, p in enumerate(processes) if p.name.endswith(name))
        processes.pop(index).stop()
    (client / "node.url").unlink()
    processes.append(start(client))
    wait_for(lambda: True if (client / "node.url").exists() else None, 30, "the client",
             watch=processes)
    wait_for(lambda: connected(client, 3), 60, "the client to reach its cached servers",
             interval=0.3, watch=processes)
    page = welcome(client)
    assert sorted(s["nickname"] for s in page["servers"]) == ["storage0", "storage1",
                                                             "storage2"]
    assert [i["connected"] for i in page["introducers"]["details"]] == [False]
    put_get(client, os.urandom(300_000))

    # A cache that is not YAML stops nothing: the client starts, says so, knows no server.
    processes.pop().stop()
    path.write_text("- [unclosed\n")
    (client / "node.url").unlink()
    processes.append(start(client))
    wait_for(lambda: True if (client / "node.url").exists() else None, 30, "the client",
             watch=processes)
    assert welcome(client)["servers"] == []
    assert f"{path}: ignored (not valid YAML" in (client / "run.log").read_text()


ANN = {"service-name": "storage", "nickname": "s0", "seqnum": 3,
       "anonymous-storage-NURLs": ["pb://AAAA@127.0.0.1:1234/swiss#v=1"]}


def test_cache_text_round_trip_and_broken_entries(tmp_path: Path) -> None:
    key = "v0-" + "a" * 52
    assert parse_cache(cache_text({key: ANN})) == ({key: ANN}, 0)
    assert parse_cache("") == ({}, 0)
    broken = cache_text({key: ANN}) + "- just text\n- {key_s: nope, ann: {}}\n- {ann: 3}\n"
    assert parse_cache(broken) == ({key: ANN}, 3)
    for text in ("{storage: {}}", "- [unclosed"):
        with pytest.raises(ValueError):
            parse_cache(text)
    assert cache_path(tmp_path, "petname") == tmp_path / "introducer_petname_cache.yaml"
