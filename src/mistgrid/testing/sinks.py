"""A file sink for downloads that writes on a thread of its own.

Writing plaintext into a file costs the writer a copy into the page cache; done on the
reactor thread it would hold up the reads and checks of the next segments. `ThreadedFileSink`
hands each write to one writer thread (so order is kept) and lets `download` wait through
`drain` when more than `limit` bytes are queued (memory stays bounded).
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import IO, Any

from twisted.internet import defer


class ThreadedFileSink:
    def __init__(self, file: IO[bytes], reactor: Any, limit: int = 8 * 1024 * 1024) -> None:
        self._file = file
        self._reactor = reactor
        self._limit = limit
        self._queued = 0
        self._lock = threading.Lock()
        self._waiting: defer.Deferred[None] | None = None
        self._error: BaseException | None = None
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="mistgrid-sink")

    @property
    def queued(self) -> int:
        """Bytes handed to `write` and not yet in the file."""
        return self._queued

    def write(self, data: bytes) -> None:
        if self._error is not None:
            raise self._error
        with self._lock:
            self._queued += len(data)
        self._writer.submit(self._write, data)

    def _write(self, data: bytes) -> None:
        try:
            self._file.write(data)
        except BaseException as err:  # reported on the next write or drain
            self._error = err
        with self._lock:
            self._queued -= len(data)
            wake = self._waiting is not None and (
                self._queued <= self._limit or self._error is not None)
        if wake:  # only then: a wake-up per write would cost the reactor a syscall each
            self._reactor.callFromThread(self._wake)

    def _wake(self) -> None:
        with self._lock:
            waiting, self._waiting = self._waiting, None
        if waiting is not None:
            waiting.callback(None)

    async def drain(self) -> None:
        while True:
            with self._lock:
                if self._queued <= self._limit or self._error is not None:
                    break
                waiting = self._waiting = defer.Deferred()
            await waiting
        if self._error is not None:
            raise self._error

    def close(self) -> None:
        """Wait for every queued write (blocking) and stop the writer thread."""
        self._writer.shutdown(wait=True)
        if self._error is not None:
            raise self._error
