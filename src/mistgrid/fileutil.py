"""Small file helpers for the shells."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


@contextmanager
def atomic_output(target: Path) -> Iterator[IO[bytes]]:
    """A file that appears at `target` only if the block finishes; never half-written."""
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def write_private(target: Path, text: str) -> None:
    """Replace `target` with `text`, readable by the owner only (0600), atomically."""
    with atomic_output(target) as handle:  # mkstemp makes the file 0600
        handle.write(text.encode("utf-8"))
