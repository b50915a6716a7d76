"""A stopping node waits for Foolscap's connections to close, but only so long: a peer
whose Tor stream never closes cannot keep `mistgrid stop` from stopping the node."""

from __future__ import annotations

import time

import pytest_twisted
from twisted.internet import defer

from mistgrid.node.runner import _at_most


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
