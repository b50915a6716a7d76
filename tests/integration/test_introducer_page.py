"""An introducer node's web page, with real nodes: Tahoe's summary keys in `?t=json`, one
entry per announcement and subscriber, the same in words at `/`; no swissnum, NURL or
address anywhere on it; nothing else served. (Before, an introducer's web.port served
a client's web API with no servers.)"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from mistgrid.node.pidfile import READY
from mistgrid.testing.procs import Managed, free_ports, wait_for

from ..conftest import run_cli
from .test_introducer import (
    connected,
    processes,  # noqa: F401 (a fixture)
    start,
    start_client,
    start_storage,
)


def test_the_introducer_page(tmp_path: Path, processes: list[Managed]) -> None:  # noqa: F811
    port, web = free_ports(2)
    node = tmp_path / "introducer"
    made = run_cli("create-introducer", "--nickname", "intro", "--port",
                   f"tcp:{port}:interface=127.0.0.1", "--location", f"tcp:127.0.0.1:{port}",
                   "--webport", f"tcp:{web}:interface=127.0.0.1", str(node))
    assert made.returncode == 0, made.stderr.decode()
    furl = (node / "private" / "introducer.furl").read_text().strip()
    processes.append(start(node))
    wait_for(lambda: True if READY in (node / "run.log").read_text() else None, 30,
             "the introducer", watch=processes)
    storage = [start_storage(tmp_path, f"storage{i}", furl, processes) for i in range(2)]
    client = start_client(tmp_path, furl, processes, needed=1, happy=2, total=2)
    wait_for(lambda: connected(client, 2), 60, "the client to hear of 2 servers",
             interval=0.3, watch=processes)
    url = f"http://127.0.0.1:{web}/"

    def page(path: str) -> str:
        with urllib.request.urlopen(url + path, timeout=30) as response:
            text: str = response.read().decode()
        return text

    status = json.loads(page("?t=json"))
    assert status["announcement_summary"] == {"storage": 2}
    assert status["subscription_summary"] == {"storage": 1}
    assert status["announcement_distinct_hosts"] == {"storage": 1}  # all on 127.0.0.1
    assert sorted(a["nickname"] for a in status["announcements"]) == ["storage0", "storage1"]
    assert all(a["key"].startswith("v0-") and a["version"].startswith("mistgrid/")
               for a in status["announcements"])
    assert [(s["service-name"], s["version"][:9]) for s in status["subscribers"]] == \
        [("storage", "mistgrid/")]
    words = page("")
    assert "storage0" in words and "storage1" in words and "Subscribers" in words
    for text in (json.dumps(status), words):
        assert "pb://" not in text and f":{port}" not in text
        for server in storage:
            for nurl in (server / "private" / "storage.nurls").read_text().split():
                assert nurl.rsplit("/", 1)[1].split("#")[0] not in text  # the swissnum
    said = run_cli("status", str(node))
    assert said.returncode == 0, said.stderr.decode()
    assert "introducer: 2 storage servers announced, 1 subscription" in said.stdout.decode()
    with pytest.raises(urllib.error.HTTPError) as missing:
        page("uri")
    assert missing.value.code == 404
    missing.value.close()
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(urllib.request.Request(url + "uri", data=b"x", method="PUT"),
                               timeout=30)
    assert refused.value.code == 405
    refused.value.close()
