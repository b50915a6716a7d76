"""Small file helpers for the shells."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from .caps import base32
from .errors import MistgridError


@contextmanager
def atomic_output(target: Path) -> Iterator[IO[bytes]]:
    """A file that appears at `target` only if the block finishes; never half-written."""
    import tempfile  # noqa: PLC0415 (here: every CLI command imports this module)

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


def write_text_atomically(target: Path, text: str) -> None:
    """Replace `target` with `text` (readable by all), so that a reader never sees it
    empty or half-written (node.url: the CLI reads it the moment a node starts)."""
    with atomic_output(target) as handle:
        handle.write(text.encode("utf-8"))
        os.fchmod(handle.fileno(), 0o644)


def write_private(target: Path, text: str) -> None:
    """Replace `target` with `text`, readable by the owner only (0600), atomically."""
    with atomic_output(target) as handle:  # mkstemp makes the file 0600
        handle.write(text.encode("utf-8"))


def read_convergence(path: Path) -> bytes:
    """A convergence secret: Tahoe's `private/convergence` (base32 text: 32 bytes as
    Tahoe-LAFS writes it, 52 characters; 16 bytes in older mistgrid nodes) or 16 raw
    bytes. Used as it is: the same secret gives the same caps as Tahoe's."""
    raw = path.read_bytes()
    text = raw.strip()
    if 26 <= len(text) <= 104:
        try:
            secret = base32.a2b(text.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            secret = b""
        if len(secret) >= 16:
            return secret
    if len(raw) == 16:
        return raw
    raise MistgridError(
        f"{path}: not a convergence secret; expected base32 text (as in a node's "
        "private/convergence: 52 characters from Tahoe-LAFS, 26 from older mistgrid) or "
        "exactly 16 bytes")
