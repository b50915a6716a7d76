"""A loopback TCP echo server and a helper that pushes bytes through a stream both ways."""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading
import time
from typing import Protocol


class _EchoHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        sock: socket.socket = self.request
        with contextlib.suppress(OSError):
            while data := sock.recv(65536):
                sock.sendall(data)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class EchoServer:
    """Echoes every byte back on 127.0.0.1:`port` until `stop()`."""

    def __init__(self) -> None:
        self._server = _Server(("127.0.0.1", 0), _EchoHandler)
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> EchoServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class StreamLike(Protocol):
    def sendall(self, data: bytes, /) -> object: ...
    def recv(self, size: int, /) -> bytes: ...


def round_trip(stream: StreamLike, payload: bytes, early: bytes = b"",
               timeout: float = 120.0) -> tuple[bytes, float]:
    """Send `payload` while reading its echo; returns what came back and the seconds taken."""
    errors: list[BaseException] = []

    def send() -> None:
        try:
            view = memoryview(payload)
            for start in range(0, len(view), 65536):
                stream.sendall(view[start : start + 65536].tobytes())
        except BaseException as err:  # reported by the reader
            errors.append(err)

    started = time.monotonic()
    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    received = bytearray(early)
    deadline = started + timeout
    while len(received) < len(payload) and time.monotonic() < deadline and not errors:
        chunk = stream.recv(65536)
        if not chunk:
            break
        received += chunk
    sender.join(timeout=max(0.0, deadline - time.monotonic()))
    if errors:
        raise errors[0]
    return bytes(received), time.monotonic() - started
