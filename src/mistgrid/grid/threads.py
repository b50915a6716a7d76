"""Work on other threads, seen from the reactor: run a blocking call on an executor and
await it; hear of a future's end on the reactor thread; hand bytes from the reactor to a
reader on another thread through a bounded pipe."""

from __future__ import annotations

import io
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any, TypeVar

from twisted.internet import defer
from twisted.internet import reactor as _reactor

from ..errors import MistgridError

T = TypeVar("T")
reactor: Any = _reactor


async def in_thread(executor: Executor, fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)` on one of `executor`'s threads; the result arrives on the reactor."""
    result: defer.Deferred[T] = defer.Deferred()

    def done(future: Future[T]) -> None:
        if future.cancelled():  # its executor was shut down first
            reactor.callFromThread(result.cancel)
            return
        error = future.exception()
        if error is not None:
            reactor.callFromThread(result.errback, error)
        else:
            reactor.callFromThread(result.callback, future.result())

    executor.submit(fn, *args).add_done_callback(done)
    return await result


def on_reactor_when_done(future: Future[Any], callback: Callable[[], None]) -> None:
    """Call `callback()` on the reactor thread once `future` has finished."""
    future.add_done_callback(lambda _: reactor.callFromThread(callback))


class SourceFailedError(MistgridError):
    """What a `ThreadPipe`'s reader gets when its writer ended it with an error."""


class ThreadPipe(io.RawIOBase):
    """Bytes written on the reactor, read (blocking, as from a file) on another thread.
    The writer awaits `drain()` after each write: it waits while more than `limit` bytes
    are held, so the pipe holds about `limit` bytes whatever flows through it (the
    downloader's sinks have this `drain`). `end()` marks the end, or a failure (the reader
    then gets SourceFailedError). Not seekable."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self._limit = limit
        self._changed = threading.Condition()
        self._chunks: deque[bytes] = deque()
        self._held = 0
        self._ended = False
        self._failed: str | None = None
        self._draining: defer.Deferred[None] | None = None  # the writer's, on the reactor

    def readable(self) -> bool:
        return True

    def write(self, data: Any) -> int:  # on the reactor
        with self._changed:
            if self._ended:
                raise ValueError("write to an ended pipe")
            self._chunks.append(bytes(data))
            self._held += len(data)
            self._changed.notify_all()
        return len(data)

    async def drain(self) -> None:  # on the reactor
        while True:
            with self._changed:
                if self._held <= self._limit or self._ended:
                    return
                waiting = self._draining = defer.Deferred()
            await waiting

    def end(self, failure: str | None = None) -> None:  # on the reactor
        with self._changed:
            self._ended = True
            self._failed = failure
            self._changed.notify_all()
            waiting, self._draining = self._draining, None
        if waiting is not None:
            waiting.callback(None)

    def read(self, size: int | None = -1) -> bytes:  # on the reader's thread
        """`size` bytes (all, when negative), fewer only at the end; blocks until then."""
        with self._changed:
            while not self._ended and (size is None or size < 0 or self._held < size):
                self._changed.wait()
            if self._failed is not None:
                raise SourceFailedError(self._failed)
            wanted = self._held if size is None or size < 0 else min(size, self._held)
            pieces = []
            while wanted > 0:
                chunk = self._chunks.popleft()
                if len(chunk) > wanted:
                    self._chunks.appendleft(chunk[wanted:])
                    chunk = chunk[:wanted]
                pieces.append(chunk)
                wanted -= len(chunk)
                self._held -= len(chunk)
            waiting = None
            if self._draining is not None and self._held <= self._limit:
                waiting, self._draining = self._draining, None
        if waiting is not None:
            reactor.callFromThread(waiting.callback, None)
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)
