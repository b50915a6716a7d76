"""A server's version probe (the welcome page's status) is given up after its route's
patience, so one request that never answers does not keep the server "not connected"
for the request's own two-minute timeout, and the next look asks again."""

from __future__ import annotations

import time
from typing import Any, cast

import pytest
import pytest_twisted
from twisted.internet import defer, reactor
from twisted.logger import ILogObserver, formatEvent, globalLogPublisher

from mistgrid.grid import servers
from mistgrid.grid.servers import KnownServer, ServerStatus
from mistgrid.storage.client import StorageClient


class Silent:
    """A storage client whose first version request never answers; later ones do."""

    route = "direct"

    def __init__(self) -> None:
        self.asked = 0

    async def version(self) -> dict[Any, Any]:
        self.asked += 1
        if self.asked == 1:
            await defer.Deferred()  # cancelled by the probe's patience
        return {b"application-version": b"fake/1"}

    @property
    def reached(self) -> Any:
        return type("Reached", (), {"host": "127.0.0.1", "port": 1})()


@pytest_twisted.ensureDeferred
async def test_a_probe_that_never_answers_is_given_up_and_asked_again(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(servers.PROBE_PATIENCE, "direct", 0.2)
    client = Silent()
    server = KnownServer(cast(StorageClient, client), ServerStatus("v0-x", "x"))
    started = time.monotonic()
    await server.refresh().addTimeout(10, reactor)  # (without the patience: forever)
    assert time.monotonic() - started < 5
    assert not server.status.connected
    assert server.status.last_error == "no answer within 0.2 s"
    await server.refresh()
    assert client.asked == 2 and server.status.connected
    assert server.status.version == "fake/1"


@pytest_twisted.ensureDeferred
async def test_each_change_of_reachability_is_logged_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(servers.PROBE_PATIENCE, "direct", 0.2)
    lines: list[str] = []

    def observe(event: dict[str, Any]) -> None:
        if event.get("log_namespace") == servers.log.namespace:
            lines.append(formatEvent(event))

    globalLogPublisher.addObserver(cast(ILogObserver, observe))
    try:
        server = KnownServer(cast(StorageClient, Silent()), ServerStatus("v0-abc", "nick"))
        for _ in range(3):  # silent; answers; answers again (no change: no line)
            await server.refresh().addTimeout(10, reactor)
    finally:
        globalLogPublisher.removeObserver(cast(ILogObserver, observe))
    assert lines == ["storage server nick (v0-abc): not reachable: no answer within 0.2 s",
                     "storage server nick (v0-abc): connected to 127.0.0.1:1 via direct"]
