"""The HTTP/1.1 that a GBS client speaks: one request's bytes, and a reader of one response.

How this works: `request_head` makes the request line and headers (the body follows as
is; every GBS request body has a known length). `ResponseReader` takes the bytes of one
response as they arrive, in pieces of any size, and knows when it is complete: the status
line, the headers, then a body delimited by Content-Length, by chunked transfer coding,
or (with neither) by the end of the connection, as RFC 9112 section 6.3 orders them.
Anything else is `HttpFormatError`, and so is a head beyond MAX_HEAD bytes or a body
beyond the reader's `limit` (the most the request can rightly be answered with), so that
a server cannot make a client hold more than it asked for.

Why not Twisted's HTTP client or h11: a GBS request is small and frequent (an upload of
one small file is eight of them), and both cost far more CPU per request than the
request's own work (measured: Twisted's Agent ~0.5 ms of client CPU per request, h11 ~0.1
ms per request-response cycle, this reader a few microseconds).
"""

from __future__ import annotations

import re

MAX_HEAD = 64 * 1024  # status line and headers
MAX_CHUNK_LINE = 1024
_STATUS = re.compile(rb"HTTP/1\.([01]) (\d{3})(?: [^\r\n]*)?")
_DIGITS = re.compile(rb"\d{1,19}")
_HEX = re.compile(rb"[0-9A-Fa-f]{1,15}")


class HttpFormatError(Exception):
    """A response that is not HTTP/1.1 as a GBS server speaks it, or too large."""


def request_head(method: bytes, target: bytes, host: bytes,
                 headers: list[tuple[bytes, bytes]], body_length: int | None) -> bytes:
    """The request line and headers, ending in the empty line. `body_length` None: no
    body (and no Content-Length)."""
    lines = [method + b" " + target + b" HTTP/1.1", b"Host: " + host]
    lines.extend(name + b": " + value for name, value in headers)
    if body_length is not None:
        lines.append(b"Content-Length: %d" % body_length)
    lines.append(b"\r\n")
    return b"\r\n".join(lines)


# states of ResponseReader
_HEAD, _LENGTH, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_END, _TRAILER, _UNTIL_CLOSE, _DONE = range(8)


class ResponseReader:
    """One response, read from the bytes given to `feed`. After `done` is true: `status`,
    `headers` (lowercased names, each a list of values), `body`, `keep_alive`."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._state = _HEAD
        self._buffer = b""
        self._parts: list[bytes] = []
        self._received = 0  # body bytes so far
        self._left = 0  # in the body (Content-Length) or in this chunk
        self.status = 0
        self.headers: dict[bytes, list[bytes]] = {}
        self.keep_alive = True
        self.started = False  # any byte of the response seen

    @property
    def done(self) -> bool:
        return self._state == _DONE

    @property
    def head_done(self) -> bool:
        return self._state != _HEAD

    @property
    def body(self) -> bytes:
        return b"".join(self._parts)

    def take(self) -> bytes:
        """The body bytes received since the last `take` (for a reader that hands the
        body on as it comes instead of holding it whole); `body` then holds only what
        comes after them."""
        parts, self._parts = self._parts, []
        return b"".join(parts)

    def feed(self, data: bytes) -> bytes:
        """Take the next bytes; returns what comes after the end of the response (a
        server that sends more than one answer is refused by the caller)."""
        if data:
            self.started = True
        while data:
            state = self._state
            if state in (_LENGTH, _CHUNK_DATA):  # a counted run of body bytes
                if len(data) < self._left:
                    self._take(data)
                    self._left -= len(data)
                    return b""
                self._take(data[:self._left])
                data = data[self._left:]
                self._state = _DONE if state == _LENGTH else _CHUNK_END
            elif state == _DONE:
                return data
            elif state == _UNTIL_CLOSE:
                self._take(data)
                return b""
            else:  # line-oriented states
                data = self._lines(self._buffer + data)
        return b""

    def connection_lost(self) -> None:
        """The connection ended: a response delimited by its end is complete; any other
        not yet complete is cut short (HttpFormatError)."""
        if self._state == _UNTIL_CLOSE:
            self._state = _DONE
            self.keep_alive = False
        elif self._state != _DONE:
            raise HttpFormatError("the connection closed in the middle of a response")

    def _take(self, data: bytes) -> None:
        self._received += len(data)
        if self._received > self.limit:
            raise HttpFormatError(f"a response body over {self.limit} bytes")
        self._parts.append(data)

    def _lines(self, data: bytes) -> bytes:
        """Consume what the line-oriented state can; the rest of `data` is returned."""
        state = self._state
        if state == _HEAD:
            end = data.find(b"\r\n\r\n")
            if end < 0:
                if len(data) > MAX_HEAD:
                    raise HttpFormatError(f"a response head over {MAX_HEAD} bytes")
                self._buffer = data
                return b""
            if end > MAX_HEAD:
                raise HttpFormatError(f"a response head over {MAX_HEAD} bytes")
            self._buffer = b""
            self._head(data[:end])
            return data[end + 4:]
        end = data.find(b"\r\n")
        if end < 0:
            if len(data) > MAX_CHUNK_LINE:
                raise HttpFormatError("a chunk line too long")
            self._buffer = data
            return b""
        if end > MAX_CHUNK_LINE:
            raise HttpFormatError("a chunk line too long")
        self._buffer = b""
        line, rest = data[:end], data[end + 2:]
        if state == _CHUNK_SIZE:
            size_text = line.split(b";", 1)[0].strip(b" \t")
            if not _HEX.fullmatch(size_text):
                raise HttpFormatError("a malformed chunk size")
            size = int(size_text, 16)
            if size == 0:
                self._state = _TRAILER
            else:
                if self._received + size > self.limit:
                    raise HttpFormatError(f"a response body over {self.limit} bytes")
                self._left = size
                self._state = _CHUNK_DATA
        elif state == _CHUNK_END:
            if line:
                raise HttpFormatError("a chunk longer than its size")
            self._state = _CHUNK_SIZE
        elif state == _TRAILER and not line:  # (trailer fields are ignored)
            self._state = _DONE
        return rest

    def _head(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        status = _STATUS.fullmatch(lines[0])
        if status is None:
            raise HttpFormatError("not an HTTP/1.1 status line")
        self.status = int(status.group(2))
        headers = self.headers
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            if not colon or not name or name.strip() != name or b" " in name:
                raise HttpFormatError("a malformed response header")
            key = name.lower()
            if key in headers:
                headers[key].append(value.strip(b" \t"))
            else:
                headers[key] = [value.strip(b" \t")]
        connection = b",".join(headers.get(b"connection", ())).lower()
        if status.group(1) == b"0":
            self.keep_alive = b"keep-alive" in connection
        elif b"close" in connection:
            self.keep_alive = False
        if 100 <= self.status < 200:
            raise HttpFormatError("an interim (1xx) response, never asked for")
        if self.status in (204, 304):  # never a body
            self._state = _DONE
            return
        coding = headers.get(b"transfer-encoding")
        if coding is not None:
            if [c.strip().lower() for c in b",".join(coding).split(b",")] != [b"chunked"]:
                raise HttpFormatError("a transfer coding other than chunked")
            self._state = _CHUNK_SIZE
            return
        length = headers.get(b"content-length")
        if length is not None:
            if len(set(length)) != 1 or not _DIGITS.fullmatch(length[0]):
                raise HttpFormatError("a malformed Content-Length")
            self._left = int(length[0])
            if self._left > self.limit:
                raise HttpFormatError(f"a response body over {self.limit} bytes")
            self._state = _LENGTH if self._left else _DONE
            return
        self.keep_alive = False
        self._state = _UNTIL_CLOSE
