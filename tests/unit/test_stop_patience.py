"""A stopping node waits for Foolscap's connections to close, but only so long: a peer
whose Tor stream never closes cannot keep `mistgrid stop` from stopping the node."""

from __future__ import annotations

import os
import signal
import time
from typing import cast

import pytest
import pytest_twisted
from twisted.internet import defer, reactor, task

from mistgrid.node.runner import _at_most, stop_tub


@pytest_twisted.ensureDeferred
async def test_a_close_that_never_ends_is_waited_for_at_most_the_patience() -> None:
    never: defer.Deferred[None] = defer.Deferred()
    started = time.monotonic()
    await _at_most(never, 0.2)
    assert 0.15 < time.monotonic() - started < 5
    assert not never.called
    never.callback(None)  # the close ending late is no error either
    late: list[object] = []
    never.addBoth(late.append)
    assert late == [None]


@pytest_twisted.ensureDeferred
async def test_a_close_that_ends_is_not_waited_for_longer() -> None:
    started = time.monotonic()
    await _at_most(defer.fail(RuntimeError("closed badly")), 30)
    assert time.monotonic() - started < 1


class _StuckTub:
    """A Tub whose two connections never finish closing (a Tor stream left open)."""

    def __init__(self) -> None:
        self.brokers = {"a": _Broker(None), "b": _Broker(None)}
        self.stopping: defer.Deferred[None] = defer.Deferred()

    def stopService(self) -> defer.Deferred[None]:  # noqa: N802
        return self.stopping


@pytest_twisted.ensureDeferred
async def test_a_tub_still_closing_at_the_patience_is_named_in_the_log(
        capsys: pytest.CaptureFixture[str]) -> None:
    tub = _StuckTub()
    await stop_tub(tub, 0.1)
    assert "connections were still closing after 0.1 s" in capsys.readouterr().out
    tub.stopping.callback(None)


@pytest_twisted.ensureDeferred
async def test_a_tub_that_stops_in_time_says_nothing(
        capsys: pytest.CaptureFixture[str]) -> None:
    tub = _StuckTub()
    tub.stopping.callback(None)
    await stop_tub(tub, 5)
    assert capsys.readouterr().out == ""


class _Silent:
    """A connection whose TLS close waits for a peer that never answers, until aborted."""

    def __init__(self, tub: _ClosingTub) -> None:
        self.tub = tub
        self.connected = True
        self.aborted = False

    def abortConnection(self) -> None:  # noqa: N802
        if not self.connected:  # as a TLS transport already closed can: fail
            raise RuntimeError("already closed")
        self.aborted = True
        self.connected = False
        self.tub.lost()


class _Broker:
    def __init__(self, transport: _Silent | None) -> None:
        self.transport = transport


class _ClosingTub:
    """stopService fires once every connection is lost (as Foolscap's Tub)."""

    def __init__(self, count: int) -> None:
        self.open = count
        self.brokers = {n: _Broker(_Silent(self)) for n in range(count)}
        self.stopped: defer.Deferred[None] = defer.Deferred()

    def lost(self) -> None:
        self.open -= 1
        if self.open == 0:
            self.stopped.callback(None)

    def stopService(self) -> defer.Deferred[None]:  # noqa: N802
        return self.stopped


@pytest_twisted.ensureDeferred
async def test_connections_whose_tls_close_is_not_answered_are_aborted_after_the_grace(
        capsys: pytest.CaptureFixture[str]) -> None:
    tub = _ClosingTub(3)
    closed = tub.brokers[0].transport
    assert closed is not None
    closed.connected = False  # this one closed by itself (its abort fails)
    tub.open -= 1
    started = time.monotonic()
    await stop_tub(tub, 30, grace=0.2)
    assert time.monotonic() - started < 5
    assert tub.stopped.called
    assert all(b.transport is not None and b.transport.aborted
               for n, b in tub.brokers.items() if n)
    assert capsys.readouterr().out == ""


@pytest_twisted.ensureDeferred
async def test_a_second_stop_signal_is_noted_not_a_traceback() -> None:
    from twisted.logger import ILogObserver, formatEvent, globalLogPublisher  # noqa: PLC0415

    from mistgrid.node import runner  # noqa: PLC0415

    lines: list[str] = []

    def observe(event: dict[str, object]) -> None:
        if event.get("log_namespace") == runner.log.namespace:
            lines.append(formatEvent(event))

    saved = {number: signal.getsignal(number) for number in (signal.SIGTERM, signal.SIGINT)}
    globalLogPublisher.addObserver(cast(ILogObserver, observe))
    try:
        runner._note_repeated_stop_signals()  # what a stopping node does
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(100):
            if lines:
                break
            await task.deferLater(reactor, 0.02, lambda: None)
    finally:
        globalLogPublisher.removeObserver(cast(ILogObserver, observe))
        for number, handler in saved.items():
            signal.signal(number, handler)
    assert lines == ["SIGTERM while already stopping"]
