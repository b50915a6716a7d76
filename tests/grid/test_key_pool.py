"""The key pool: keys made ahead on a thread of lowest CPU priority, taken at once, and
made on the spot when none is ready or the pool has stopped."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
import pytest_twisted
from twisted.internet import reactor, task

from mistgrid.grid import mutable
from mistgrid.grid.mutable import KeyPool
from mistgrid.mutable.version import SigningKey


async def _until(condition: Callable[[], bool], seconds: float = 30.0) -> None:
    for _ in range(int(seconds / 0.05)):
        if condition():
            return
        await task.deferLater(reactor, 0.05, lambda: None)
    raise AssertionError("timed out")


@pytest_twisted.ensureDeferred
async def test_keys_are_made_ahead_at_the_lowest_priority(
        monkeypatch: pytest.MonkeyPatch) -> None:
    niceness: list[tuple[str, int]] = []
    made = mutable._new_key

    def watched() -> SigningKey:
        nice = os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) \
            if sys.platform == "linux" else 19
        niceness.append((threading.current_thread().name, nice))
        return made()

    monkeypatch.setattr(mutable, "_new_key", watched)
    with ThreadPoolExecutor(2) as executor:
        pool = KeyPool(2, executor)
        pool.start()
        await _until(lambda: len(pool._ready) == 2)
        assert all(name.startswith("mistgrid-keys") and nice == 19
                   for name, nice in niceness), niceness
        first = await pool.take()  # a ready key; another is made behind it
        await _until(lambda: len(pool._ready) == 2)
        pool.stop()
        keys = [await pool.take() for _ in range(3)]  # two ready, then one on the spot
        assert len({k.private_der for k in [first, *keys]}) == 4
        assert niceness[-1][0] != "mistgrid-keys" and niceness[-1][1] != 19
