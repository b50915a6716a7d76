"""Fail closed: an anonymous client whose Tor SOCKS port misbehaves (refuses connections,
accepts and never answers, or drops every connection in the middle of a transfer) gets a
clear error for that transfer, never a direct connection or a name lookup of its own,
and succeeds again once the proxy is back. Real tor (the private network), a real node
process; the proxy in front of Tor's SOCKS port is this test's, so it can misbehave."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from mistgrid.testing.procs import Managed, free_ports, stop_all, wait_for
from mistgrid.testing.tornet import TorNetwork

from .test_node_tor import (
    MISTGRID,
    all_connected,
    announced,
    start_anonymous_client,
    stray_connections,
)

pytestmark = pytest.mark.slow


class FaultyProxy:
    """A TCP relay to Tor's SOCKS port on 127.0.0.1:`port`. `mode`: forward, refuse
    (nothing listens), wedge (accepts, never answers), cut (drops every relayed
    connection now)."""

    def __init__(self, port: int, target: int) -> None:
        self.port, self.target = port, target
        self.mode = "forward"
        self._listener: socket.socket | None = None
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.relayed = 0  # bytes relayed towards Tor
        self.after: tuple[int, object] | None = None  # (byte count, action) to run once
        self.listen()

    def at(self, count: int, action: object) -> None:
        """Run `action` once `count` more bytes have gone towards Tor."""
        with self._lock:
            self.after = (self.relayed + count, action)

    def listen(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def refuse(self) -> None:
        self.mode = "refuse"
        if self._listener is not None:
            with contextlib.suppress(OSError):  # wakes the thread blocked in accept()
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None

    def cut(self) -> None:
        with self._lock:
            for conn in self._open:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                conn.close()
            self._open.clear()

    def close(self) -> None:
        self._stop.set()
        self.refuse()
        self.cut()

    def _count(self, count: int) -> None:
        action = None
        with self._lock:
            self.relayed += count
            if self.after is not None and self.relayed >= self.after[0]:
                action, self.after = self.after[1], None
        if callable(action):
            action()

    def _accept(self, listener: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with self._lock:
                self._open.append(conn)
            if self.mode == "refuse":  # accepted in the moment the listener closed
                conn.close()
                return
            if self.mode == "wedge":
                continue  # held open, never answered
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target), timeout=10)
            except OSError:
                conn.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._open.append(upstream)
            for a, b, up in ((conn, upstream, True), (upstream, conn, False)):
                threading.Thread(target=self._pump, args=(a, b, up), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, up: bool) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
                if up:
                    self._count(len(data))
        except OSError:
            pass
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def put(url: str, data: bytes, timeout: float = 300) -> tuple[int, bytes]:
    request = urllib.request.Request(url + "uri", data=data, method="PUT")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def test_a_misbehaving_tor_proxy_fails_closed(tor_network: TorNetwork, tmp_path: Path) -> None:
    storage_port, proxy_port = free_ports(2)
    storage = tmp_path / "storage"
    storage.mkdir()
    (storage / "tahoe.cfg").write_text(
        f"[node]\nnickname = tcp0\ntub.port = tcp:{storage_port}:interface=127.0.0.1\n"
        f"tub.location = tcp:127.0.0.1:{storage_port}\n[storage]\nenabled = true\n")
    proxy = FaultyProxy(proxy_port, tor_network.socks_port)
    processes = [Managed("storage", [MISTGRID, "run", str(storage)], tmp_path / "s.log")]
    stray: list[str] = []
    done = threading.Event()
    try:
        entry_file = storage / "private" / "announcement.json"
        wait_for(announced(entry_file), 60, "the storage node", watch=processes)
        entry = json.loads(entry_file.read_text())
        url, web_port = start_anonymous_client(
            tmp_path / "client", {entry["server-id"]: entry["ann"]},
            f"[connections]\ntor.socks-proxy = tcp:127.0.0.1:{proxy_port}\n", processes)
        wait_for(all_connected(url, 1), 240, "the client to reach the server through Tor",
                 interval=1.0, watch=processes)

        def watch() -> None:  # the client never touches anything but the proxy
            while not done.is_set():
                stray.extend(stray_connections(processes[-1].pid, proxy_port, web_port))
                done.wait(0.02)

        watcher = threading.Thread(target=watch)
        watcher.start()
        assert put(url, os.urandom(200_000))[0] == 200

        # Tor gone in the middle of a transfer (every connection dropped, nothing
        # listening): that transfer fails with a clear error; a connection merely dropped
        # is retried (every storage request is idempotent), which the first cut shows.
        big = os.urandom(8 * 1024 * 1024)
        proxy.at(2 * 1024 * 1024, proxy.cut)
        dropped = put(url, big)  # usually carried on by retrying the request
        assert dropped[0] == 200 or (dropped[0] >= 500 and dropped[1].count(b"\n") <= 1)
        if dropped[0] != 200:
            again = put(url, big)
            assert again[0] == 200, again

        def gone() -> None:
            proxy.refuse()
            proxy.cut()

        big = os.urandom(8 * 1024 * 1024)
        proxy.at(2 * 1024 * 1024, gone)
        status, body = put(url, big)
        assert status >= 500 and body.count(b"\n") <= 1, (status, body)
        proxy.mode = "forward"
        proxy.listen()
        again = put(url, big)
        assert again[0] == 200, again  # Tor is back: a retry succeeds
        gone()

        # Nothing listening: fails at once, clearly.
        started = time.monotonic()
        status, body = put(url, os.urandom(100_000))
        assert status >= 500 and time.monotonic() - started < 60, (status, body)

        # Accepts and never answers: fails within the connect timeout.
        proxy.mode = "wedge"
        proxy.listen()
        proxy.cut()
        started = time.monotonic()
        status, body = put(url, os.urandom(100_000))
        assert status >= 500 and time.monotonic() - started < 150, (status, body)

        proxy.mode = "forward"
        proxy.cut()
        assert put(url, os.urandom(100_000))[0] == 200
    finally:
        done.set()
        proxy.close()
        stop_all(processes)
    assert sorted(set(stray)) == []
