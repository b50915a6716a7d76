"""multipart/form-data bodies (`POST /uri?t=upload`) without reading them into memory.

How this works: the body is already in a seekable file (twisted.web spools large bodies
to disk). `locate_parts` scans it in chunks for the boundary delimiters and returns, for
each part, its name, filename and the byte range of its content; `Window` then reads one
part's content as a file of its own. Memory stays bounded by the chunk size whatever the
upload's size. Each search reads 4 KiB first and doubles up to the chunk size, so scanning
costs time linear in the body however many parts it has (at most `MAX_PARTS`).
"""

from __future__ import annotations

import re
from typing import IO

import attrs

from ..errors import MistgridError

CHUNK = 1 << 20
FIRST_READ = 4096  # a search reads this much first, then twice as much each time
MAX_HEADERS = 16 * 1024
MAX_PARTS = 1000


class MultipartError(MistgridError):
    """The body is not the multipart/form-data it claims to be."""


@attrs.frozen
class Part:
    name: str
    filename: str | None
    start: int
    end: int


def boundary_of(content_type: str) -> str:
    """The boundary parameter of a multipart/form-data content type."""
    kind, _, params = content_type.partition(";")
    if kind.strip().lower() != "multipart/form-data":
        raise MultipartError("the body must be multipart/form-data")
    match = re.search(r'boundary=(?:"([^"]+)"|([^;\s]+))', params, re.IGNORECASE)
    if match is None:
        raise MultipartError("multipart/form-data without a boundary")
    return match.group(1) or match.group(2)


def _find(stream: IO[bytes], needle: bytes, start: int, chunk_size: int) -> int:
    """Offset of the first `needle` at or after `start`, or -1."""
    stream.seek(start)
    position, carry, size = start, b"", min(FIRST_READ, chunk_size)
    while chunk := stream.read(size):
        size = min(size * 2, chunk_size)  # a near needle costs little, a far one linear
        data = carry + chunk
        found = data.find(needle)
        if found >= 0:
            return position - len(carry) + found
        keep = min(len(needle) - 1, len(data))
        carry = data[len(data) - keep:] if keep else b""
        position += len(chunk)
    return -1


def _disposition(headers: bytes) -> tuple[str, str | None]:
    for line in headers.split(b"\r\n"):
        key, _, value = line.decode("utf-8", "replace").partition(":")
        if key.strip().lower() == "content-disposition":
            name = re.search(r'\bname="([^"]*)"', value)
            filename = re.search(r'\bfilename="([^"]*)"', value)
            if name is None:
                break
            return name.group(1), filename.group(1) if filename else None
    raise MultipartError("a part has no Content-Disposition name")


def locate_parts(stream: IO[bytes], boundary: str, chunk_size: int = CHUNK) -> list[Part]:
    """Every part of the body in `stream`, as byte ranges of their contents."""
    delimiter = b"--" + boundary.encode("latin-1")
    first = _find(stream, delimiter, 0, chunk_size)
    if first < 0:
        raise MultipartError("the multipart boundary never occurs in the body")
    parts: list[Part] = []
    position = first + len(delimiter)
    while True:
        stream.seek(position)
        ending = stream.read(2)
        if ending == b"--":
            return parts
        if ending != b"\r\n":
            raise MultipartError("a multipart boundary is not followed by a line end")
        headers_end = _find(stream, b"\r\n\r\n", position + 2, chunk_size)
        if headers_end < 0 or headers_end - position > MAX_HEADERS:
            raise MultipartError("a part's headers do not end")
        stream.seek(position + 2)
        name, filename = _disposition(stream.read(headers_end - position - 2))
        start = headers_end + 4
        end = _find(stream, b"\r\n" + delimiter, start, chunk_size)
        if end < 0:
            raise MultipartError("the body ends inside a part (no closing boundary)")
        parts.append(Part(name, filename, start, end))
        if len(parts) > MAX_PARTS:
            raise MultipartError(f"more than {MAX_PARTS} parts in one form")
        position = end + 2 + len(delimiter)


class Window:
    """Bytes [start, end) of a seekable file, read as a file (read, seek and tell)."""

    def __init__(self, stream: IO[bytes], start: int, end: int) -> None:
        self._stream, self._start, self._end = stream, start, end
        self._position = 0

    def read(self, size: int = -1) -> bytes:
        left = self._end - self._start - self._position
        size = left if size < 0 else min(size, left)
        if size <= 0:
            return b""
        self._stream.seek(self._start + self._position)
        data = self._stream.read(size)
        self._position += len(data)
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._position, 2: self._end - self._start}[whence]
        self._position = max(0, base + offset)
        return self._position

    def tell(self) -> int:
        return self._position
