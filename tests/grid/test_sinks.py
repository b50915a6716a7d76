"""ThreadedFileSink: writes keep their order, drain bounds what is queued, errors surface."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet import reactor

from mistgrid.testing.sinks import ThreadedFileSink


@pytest_twisted.ensureDeferred
async def test_order_kept_and_queue_bounded(tmp_path: Path) -> None:
    target = tmp_path / "out"
    pieces = [os.urandom(1000 + i) for i in range(300)]
    with target.open("wb") as out:
        sink = ThreadedFileSink(out, reactor, limit=10_000)
        most_queued = 0
        for piece in pieces:
            sink.write(piece)
            await sink.drain()
            most_queued = max(most_queued, sink.queued)
        sink.close()
    assert target.read_bytes() == b"".join(pieces)
    assert most_queued <= 10_000


@pytest_twisted.ensureDeferred
async def test_write_error_is_raised(tmp_path: Path) -> None:
    """A failing write (here: a file opened read-only) is raised by drain and close."""
    target = tmp_path / "ro"
    target.write_bytes(b"")
    with target.open("rb") as read_only:
        sink = ThreadedFileSink(read_only, reactor, limit=0)
        sink.write(b"x" * 100)
        with pytest.raises(OSError):
            await sink.drain()
        with pytest.raises(OSError):
            sink.write(b"more")
        with pytest.raises(OSError):
            sink.close()

