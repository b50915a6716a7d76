"""A small synchronous Tor control-port client for the harness (loopback only).

It speaks just what launching and self-testing need: AUTHENTICATE with the cookie file,
GETINFO, SETCONF, ADD_ONION / DEL_ONION and waiting for an onion descriptor upload. Nodes
talk to tor through txtorcon, not through this.
"""

from __future__ import annotations

import contextlib
import socket
import time
from pathlib import Path

from .procs import HarnessError


class TorControl:
    """One authenticated control connection to a tor on 127.0.0.1."""

    def __init__(self, port: int, cookie_file: Path, timeout: float = 30.0) -> None:
        self._sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self._buffer = b""
        self._events: list[str] = []
        try:
            self.command(f"AUTHENTICATE {cookie_file.read_bytes().hex()}")
        except BaseException:
            self._sock.close()
            raise

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.sendall(b"QUIT\r\n")
        self._sock.close()

    def __enter__(self) -> TorControl:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _line(self) -> str:
        while b"\r\n" not in self._buffer:
            chunk = self._sock.recv(65536)
            if not chunk:
                raise HarnessError("tor closed the control connection")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\r\n", 1)
        return line.decode("utf-8", "replace")

    def _reply(self) -> list[str]:
        """One whole reply (events that arrive first are queued)."""
        lines: list[str] = []
        while True:
            line = self._line()
            if line.startswith("650"):
                self._events.append(line)
                while line[3:4] in ("-", "+"):
                    if line[3] == "+":
                        while self._line() != ".":
                            pass
                    line = self._line()
                continue
            if line[3:4] == "+":
                lines.append(line[4:])
                while (data := self._line()) != ".":
                    lines.append(data)
                continue
            lines.append(line[4:])
            if line[3:4] == " ":
                if not line.startswith("25"):  # 250 OK; 251, 252 for client auth
                    raise HarnessError(f"tor control: {line}")
                return lines

    def command(self, text: str) -> list[str]:
        self._sock.sendall(text.encode() + b"\r\n")
        return self._reply()

    def getinfo(self, key: str) -> str:
        for line in self.command(f"GETINFO {key}"):
            if line.startswith(key + "="):
                return line[len(key) + 1 :]
        return ""

    def bootstrap_progress(self) -> int:
        phase = self.getinfo("status/bootstrap-phase")
        for word in phase.split():
            if word.startswith("PROGRESS="):
                return int(word.split("=", 1)[1])
        return 0

    def add_onion(self, virtual_port: int, target_port: int,
                  wait_published: float = 60.0) -> tuple[str, str]:
        """A new v3 onion forwarding `virtual_port` to 127.0.0.1:`target_port`.

        Returns (hostname without .onion, private key blob). Waits for the descriptor
        upload, since a new onion is unreachable for a second or two before it.
        """
        self.command("SETEVENTS HS_DESC")
        lines = self.command(
            f"ADD_ONION NEW:ED25519-V3 Port={virtual_port},127.0.0.1:{target_port}")
        service = next(x.split("=", 1)[1] for x in lines if x.startswith("ServiceID="))
        key = next((x.split("=", 1)[1] for x in lines if x.startswith("PrivateKey=")), "")
        self.wait_uploaded(service, wait_published)
        self.command("SETEVENTS")
        return service, key

    def wait_uploaded(self, service: str, timeout: float) -> None:
        """Wait for an HS_DESC UPLOADED event for `service` (events must be on)."""
        deadline = time.monotonic() + timeout
        self._sock.settimeout(1.0)
        try:
            while time.monotonic() < deadline:
                for event in self._events:
                    if f"HS_DESC UPLOADED {service}" in event:
                        self._events.clear()
                        return
                self._events.clear()
                try:
                    line = self._line()
                except TimeoutError:
                    continue
                if line.startswith("650"):
                    self._events.append(line)
        finally:
            self._sock.settimeout(30.0)
        raise HarnessError(f"onion {service} descriptor not uploaded in {timeout:.0f}s")
