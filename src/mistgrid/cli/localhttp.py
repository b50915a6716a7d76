"""The CLI's HTTP/1.1 client for its own node's web API, at the address in node.url.

How this works: one socket to a numeric loopback address (no name is ever resolved),
each request's head made by `gbs.http1.request_head` and each response read by its
`ResponseReader`, whose body is handed on as it arrives (`read(n)`, `readline()`), so
a download of any size holds about one read's worth. The calls are http.client's that
the CLI uses (request; putrequest, putheader, endheaders, send; getresponse; status,
getheader, read, readline, will_close), and every failure is an OSError, as the callers
expect. A connection whose last answer was read whole and did not close is used again
(`cli.data.KeptConnection`); otherwise the next request opens a new one.

Why not http.client: importing it, with the email package it parses headers with and
ssl, took a quarter of a short command's time (about 25 of 105 ms for `mistgrid check`
here), and the node's answers need none of it.
"""

from __future__ import annotations

import socket

from ..gbs.http1 import HttpFormatError, ResponseReader, request_head

RECEIVE = 256 * 1024  # bytes asked of the socket at once
_NO_LIMIT = 1 << 62  # the node's answers are as large as the files they carry
_BODY_METHODS = ("POST", "PUT", "PATCH")  # sent with Content-Length: 0 if bodiless


def loopback_address(host: str) -> str | None:
    """`host` as a numeric loopback address ("localhost" is 127.0.0.1), or None if it is
    not one (a name is never looked up: "127.example.com" is not loopback)."""
    if host == "localhost":
        return "127.0.0.1"
    try:
        return host if socket.inet_pton(socket.AF_INET, host)[0] == 127 else None
    except OSError:
        pass
    try:
        return host if socket.inet_pton(socket.AF_INET6, host) == bytes(15) + b"\x01" \
            else None
    except OSError:
        return None


class NodeConnection:
    """Requests to the web API at `host` (a loopback address, see `loopback_address`) and
    `port`, one at a time; `timeout` seconds for each connect, send and receive."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        address = loopback_address(host)
        if address is None:
            raise ValueError(f"{host} is not a loopback address")
        self.host, self.port, self.timeout = address, port, timeout
        self._socket: socket.socket | None = None
        self._response: NodeResponse | None = None
        self._start = b""
        self._headers: list[tuple[bytes, bytes]] = []

    def request(self, method: str, target: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> None:
        self.putrequest(method, target)
        for name, value in (headers or {}).items():
            self.putheader(name, value)
        if body is not None or method in _BODY_METHODS:
            self.putheader("Content-Length", str(len(body or b"")))
        self.endheaders()
        if body:
            self.send(body)

    def putrequest(self, method: str, target: str) -> None:
        if self._response is not None and not self._response.reusable:
            self.close()  # an answer not read whole, or one that ended the connection
        self._response = None
        self._start = method.encode("ascii") + b" " + target.encode("ascii")
        self._headers = []

    def putheader(self, name: str, value: str) -> None:
        self._headers.append((name.encode("ascii"), value.encode("latin-1")))

    def endheaders(self) -> None:
        method, _, target = self._start.partition(b" ")
        host = f"[{self.host}]:{self.port}" if ":" in self.host else \
            f"{self.host}:{self.port}"
        self.send(request_head(method, target, host.encode("ascii"), self._headers, None))

    def send(self, data: bytes) -> None:
        if self._socket is None:
            self._socket = self._connect()
        self._socket.sendall(data)

    def getresponse(self) -> NodeResponse:
        if self._socket is None:
            raise ConnectionError("no request was sent")
        self._response = NodeResponse(self._socket, self)
        return self._response

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
        self._socket = None

    def drop(self, sock: socket.socket) -> None:
        """Close `sock`, an answer's, that can carry no other (and stop using it)."""
        sock.close()
        if self._socket is sock:
            self._socket = None

    def _connect(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect((self.host, self.port))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            sock.close()
            raise
        return sock


class NodeResponse:
    """One answer: `status` and headers at once, the body as it is read."""

    def __init__(self, sock: socket.socket, connection: NodeConnection) -> None:
        self._socket = sock
        self._connection = connection
        self._reader = ResponseReader(_NO_LIMIT)
        self._buffer = bytearray()  # body received, not yet read
        self._scanned = 0  # bytes of it known to hold no newline
        while not self._reader.head_done:
            self._receive()
        self.status = self._reader.status

    @property
    def will_close(self) -> bool:
        return not self._reader.keep_alive

    @property
    def reusable(self) -> bool:
        """Read whole, and the connection stays open for another request."""
        return self._reader.done and not self._buffer and self._reader.keep_alive

    def getheader(self, name: str, default: str | None = None) -> str | None:
        values = self._reader.headers.get(name.lower().encode("ascii"))
        return ", ".join(v.decode("latin-1") for v in values) if values else default

    def read(self, size: int = -1) -> bytes:
        """Up to `size` bytes of the body (all the rest if negative); b"" at its end."""
        while (size < 0 or len(self._buffer) < size) and self._receive():
            pass
        return self._take(len(self._buffer) if size < 0 else size)

    def readline(self) -> bytes:
        """The body up to and including the next newline (or the rest, at its end)."""
        while (end := self._buffer.find(b"\n", self._scanned)) < 0:
            self._scanned = len(self._buffer)
            if not self._receive():
                return self._take(len(self._buffer))
        return self._take(end + 1)

    def _take(self, size: int) -> bytes:
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        self._scanned = 0
        if self._reader.done and not self._buffer and not self._reader.keep_alive:
            self._connection.drop(self._socket)
        return data

    def _receive(self) -> bool:
        """More of the answer from the socket; False once it is all in."""
        if self._reader.done:
            return False
        data = self._socket.recv(RECEIVE)
        try:
            if not data:
                self._reader.connection_lost()
            elif self._reader.feed(data):
                raise HttpFormatError("more bytes than the answer")
        except HttpFormatError as err:
            self._connection.drop(self._socket)
            raise ConnectionError(f"the node's answer was cut short or malformed: {err}"
                                  ) from None
        self._buffer += self._reader.take()
        return True
