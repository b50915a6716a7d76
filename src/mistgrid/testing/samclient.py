"""A small synchronous SAM v3 client for the harness and its self-tests (loopback only).

Built on the sans-IO formats in `mistgrid.wire.sam`. Nodes will use their own Twisted
client over the same formats; this one exists so fixtures can probe readiness simply.
"""

from __future__ import annotations

import contextlib
import socket
import time
from concurrent.futures import ThreadPoolExecutor, wait

from ..wire import sam
from .procs import HarnessError


class SamSocket:
    """One SAM connection: HELLO done, line-oriented until it becomes a raw stream."""

    def __init__(self, port: int, timeout: float = 120.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self._buffer = b""
        try:
            self.request(sam.command("HELLO", "VERSION", MIN="3.1", MAX="3.3"), "HELLO")
        except BaseException:
            self.close()
            raise

    def readline(self) -> bytes:
        while b"\n" not in self._buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise HarnessError("SAM bridge closed the connection")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line

    def request(self, line: bytes, what: str) -> sam.SamReply:
        self.sock.sendall(line)
        return sam.parse_reply(self.readline()).check(what)

    def into_stream(self) -> Stream:
        """Hand over the connection for raw data (bytes already read come first)."""
        return Stream(self.sock, self._buffer)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


class Stream:
    """A connected stream: `sendall`, `recv`, `shutdown_write`, `close`."""

    def __init__(self, sock: socket.socket, pending: bytes = b"") -> None:
        self.sock = sock
        self._pending = pending

    def sendall(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv(self, size: int) -> bytes:
        if self._pending:
            data, self._pending = self._pending[:size], self._pending[size:]
            return data
        return self.sock.recv(size)

    def shutdown_write(self) -> None:
        self.sock.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


class SamSession:
    """A STREAM session (kept open by its control socket)."""

    def __init__(self, port: int, name: str, options: dict[str, str] | None = None,
                 timeout: float = 120.0) -> None:
        self.port = port
        self.name = name
        self.control = SamSocket(port, timeout)
        params = {"STYLE": "STREAM", "ID": name, "DESTINATION": "TRANSIENT",
                  "SIGNATURE_TYPE": "7", "i2cp.leaseSetEncType": "4,0", **(options or {})}
        try:
            reply = self.control.request(sam.command("SESSION", "CREATE", **params),
                                         f"SESSION CREATE {name}")
        except BaseException:
            self.control.close()
            raise
        self.private_key = reply.params["DESTINATION"]
        self.destination = sam.public_destination(self.private_key)
        self.b32 = sam.b32_address(self.destination)

    def connect(self, target: str, timeout: float = 120.0) -> Stream:
        """A stream to `target` (a .b32.i2p name or a full destination). CANT_REACH_PEER
        is asked again every 2 s within `timeout`: a session just made may not have its
        lease set in the network's database yet (seen once, in a fresh-clone CI run)."""
        deadline = time.monotonic() + timeout
        while True:
            conn = SamSocket(self.port, timeout)
            try:
                conn.request(sam.command("STREAM", "CONNECT", ID=self.name,
                                         DESTINATION=target, SILENT="false"),
                             f"STREAM CONNECT to {target[:16]}...")
            except BaseException as err:
                conn.close()
                if not isinstance(err, sam.SamError) or err.result != "CANT_REACH_PEER" \
                        or time.monotonic() + 2 > deadline:
                    raise
                time.sleep(2)
                continue
            return conn.into_stream()

    def accept(self, timeout: float = 120.0) -> tuple[Stream, str]:
        """Wait for one incoming stream; returns it and the peer's destination."""
        conn = SamSocket(self.port, timeout)
        try:
            conn.request(sam.command("STREAM", "ACCEPT", ID=self.name, SILENT="false"),
                         "STREAM ACCEPT")
            peer = conn.readline().decode("ascii", "replace").split(" ")[0]
        except BaseException:
            conn.close()
            raise
        return conn.into_stream(), peer

    def lookup(self, name: str) -> str:
        reply = self.control.request(sam.command("NAMING", "LOOKUP", NAME=name),
                                     f"NAMING LOOKUP {name}")
        return reply.params["VALUE"]

    def close(self) -> None:
        self.control.close()

    def __enter__(self) -> SamSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_sessions(specs: list[tuple[int, str, dict[str, str]]],
                  timeout: float = 120.0, attempts: int = 3) -> list[SamSession]:
    """Create several sessions at once (each takes ~20 s); if any fails, close the others
    and try again with fresh session IDs, `attempts` times in all, then raise the error.
    (On the private network i2pd 2.45.1 now and then drops a SESSION CREATE whose tunnels
    are slow to build, just after other sessions on that router closed.)"""
    for attempt in range(1, attempts + 1):
        suffix = "" if attempt == 1 else f"-retry{attempt}"
        with ThreadPoolExecutor(len(specs)) as pool:
            jobs = [pool.submit(SamSession, port, name + suffix, options, timeout)
                    for port, name, options in specs]
            wait(jobs)
        failures = [job.exception() for job in jobs if job.exception() is not None]
        if not failures:
            return [job.result() for job in jobs]
        for job in jobs:
            if job.exception() is None:
                job.result().close()
        if attempt == attempts:
            raise failures[0]  # type: ignore[misc]
    raise AssertionError("unreachable")
