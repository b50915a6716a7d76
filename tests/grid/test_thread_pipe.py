"""The bounded pipe a streaming repair reads its file through: bytes written on the reactor
come out whole and in order on a reader thread, the writer is held back while more than
the limit is held, and a writer's failure reaches the reader instead of an early end."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import pytest
import pytest_twisted
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet import defer, reactor, task

from mistgrid.grid.threads import SourceFailedError, ThreadPipe, in_thread


async def _pause(seconds: float) -> None:
    await task.deferLater(reactor, seconds, lambda: None)


def _read_all(pipe: ThreadPipe, size: int, peaks: list[int]) -> bytes:
    out = bytearray()
    while chunk := pipe.read(size):
        peaks.append(pipe._held)  # what the writer had put in beyond what was just taken
        out += chunk
    return bytes(out)


@pytest_twisted.ensureDeferred
async def test_bytes_come_out_whole_in_order_and_the_writer_waits_at_the_limit() -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    limit = 256 * 1024
    pipe = ThreadPipe(limit)
    peaks: list[int] = []
    with ThreadPoolExecutor(1) as reader:
        reading = defer.ensureDeferred(in_thread(reader, _read_all, pipe, 100_003, peaks))
        for start in range(0, len(data), 40_000):
            pipe.write(data[start:start + 40_000])
            await pipe.drain()
        pipe.end()
        assert await reading == data
    assert max(peaks) <= limit + 40_000  # held back once over the limit


@settings(max_examples=30, deadline=None)
@given(pieces=st.lists(st.binary(max_size=300), max_size=20),
       size=st.integers(min_value=1, max_value=500))
def test_reads_of_any_size_give_what_was_written(pieces: list[bytes], size: int) -> None:
    pipe = ThreadPipe(10_000)  # written whole first: nothing waits
    for piece in pieces:
        pipe.write(piece)
    pipe.end()
    out = []
    while chunk := pipe.read(size):
        out.append(chunk)
    assert b"".join(out) == b"".join(pieces)
    assert all(len(chunk) == size for chunk in out[:-1])  # short only at the end


@pytest_twisted.ensureDeferred
async def test_a_failed_writer_fails_the_reader_and_a_waiting_writer_is_let_go() -> None:
    pipe = ThreadPipe(10)
    pipe.write(b"x" * 100)
    waiting = defer.ensureDeferred(pipe.drain())
    await _pause(0.05)
    assert not waiting.called  # over the limit, nobody reading
    pipe.end("the download failed: no shares")
    await waiting
    with ThreadPoolExecutor(1) as reader, pytest.raises(SourceFailedError, match="no shares"):
        await in_thread(reader, pipe.read, 1000)
    with pytest.raises(ValueError):
        pipe.write(b"more")
    assert not pipe.seekable()
