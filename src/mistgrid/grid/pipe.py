"""A spooled pipe: bytes written on the reactor thread, read on another thread as they
arrive, through a temporary file (memory stays bounded however far the writer is ahead).

A repair uses it to re-encode a file while the file is still being downloaded: the
download writes (it never waits), the uploader's feeder thread reads (it waits for bytes
that have not arrived yet, and is told when the writer finished or failed).
"""

from __future__ import annotations

import os
import tempfile
import threading
from types import TracebackType

from ..errors import MistgridError


class PipeWriterError(MistgridError):
    """What was to be written into the pipe could not all be had."""


class SpooledPipe:
    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile(prefix="mistgrid-pipe-")  # noqa: SIM115 (closed by close())
        self._fd = self._file.fileno()
        self._written = 0
        self._position = 0  # the reader's
        self._finished = False
        self._failure: str | None = None
        self._changed = threading.Condition()

    def write(self, data: bytes | memoryview) -> int:
        """Append `data` (on the writer's thread; never waits for the reader)."""
        view = memoryview(data)
        at = self._written
        while view:
            done = os.pwrite(self._fd, view, at)
            view, at = view[done:], at + done
        with self._changed:
            self._written = at
            self._changed.notify_all()
        return len(data)

    def finish(self, failure: str | None = None) -> None:
        """Nothing more will be written; `failure`: why not all of it was."""
        with self._changed:
            self._finished = True
            self._failure = failure
            self._changed.notify_all()

    def read(self, size: int = -1) -> bytes:
        """The next `size` bytes (all the rest for -1), fewer only at the end; waits for
        them to be written. Raises PipeWriterError when the writer failed."""
        with self._changed:
            while not self._finished and (size < 0 or self._written - self._position < size):
                self._changed.wait()
            if self._failure is not None:
                raise PipeWriterError(self._failure)
            available = self._written - self._position
        count = available if size < 0 else min(size, available)
        parts = []
        while count:
            chunk = os.pread(self._fd, count, self._position)
            if not chunk:
                raise PipeWriterError("the pipe's spool file ended early")
            parts.append(chunk)
            self._position += len(chunk)
            count -= len(chunk)
        return b"".join(parts)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> SpooledPipe:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()
