"""The CLI's HTTP/1.1 client of its own node's web API (`cli/localhttp.py`), against a
real HTTP server on loopback: bodies by length, chunked and until the connection's end,
read in pieces and by lines; a kept connection used again; an answer cut short is an
OSError; a large body read in bounded memory; and no address but a numeric loopback one
is ever connected to."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from mistgrid.cli import localhttp
from mistgrid.cli.localhttp import NodeConnection, loopback_address

BIG = 8 * 1024 * 1024


class Node(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    clients: ClassVar[list[tuple[str, int]]] = []
    requests: ClassVar[list[tuple[str, str, bytes]]] = []

    def do_GET(self) -> None:
        Node.clients.append(self.client_address)
        Node.requests.append(("GET", self.path, b""))
        if self.path == "/length":
            self._answer(b"hello, world\n")
        elif self.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for piece in (b'{"a": 1}\n{"b"', b': 2}\n', b"last line, no newline"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
        elif self.path == "/until-close":
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"x" * 100_000)
            self.close_connection = True
        elif self.path == "/cut-short":
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"y" * 10)
            self.close_connection = True
        elif self.path == "/big":
            self.send_response(200)
            self.send_header("Content-Length", str(BIG))
            self.end_headers()
            for start in range(0, BIG, 65536):
                self.wfile.write(bytes([start // 65536 % 251]) * 65536)
        else:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

    def do_POST(self) -> None:
        Node.clients.append(self.client_address)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Node.requests.append(("POST", self.path, body))
        self._answer(b"got " + body)

    def _answer(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Test", "yes")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def port() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Node)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    Node.clients, Node.requests = [], []
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_bodies_in_pieces_and_lines_on_one_kept_connection(port: int) -> None:
    conn = NodeConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/length")
        response = conn.getresponse()
        assert (response.status, response.getheader("x-test"), response.will_close) == \
            (200, "yes", False)
        assert response.getheader("missing", "none") == "none"
        assert [response.read(5), response.read(5), response.read(), response.read()] == \
            [b"hello", b", wor", b"ld\n", b""]
        conn.request("GET", "/chunked")
        response = conn.getresponse()
        assert [response.readline() for _ in range(4)] == \
            [b'{"a": 1}\n', b'{"b": 2}\n', b"last line, no newline", b""]
        conn.request("POST", "/form", body=b"abc")
        assert conn.getresponse().read() == b"got abc"
        conn.request("POST", "/empty")  # a bodiless POST says Content-Length: 0
        assert conn.getresponse().read() == b"got "
        conn.request("GET", "/nothing")
        response = conn.getresponse()
        assert (response.status, response.read()) == (404, b"")
    finally:
        conn.close()
    assert len(set(Node.clients)) == 1
    assert [r[:2] for r in Node.requests] == [
        ("GET", "/length"), ("GET", "/chunked"), ("POST", "/form"), ("POST", "/empty"),
        ("GET", "/nothing")]


def test_streamed_request_and_an_answer_that_ends_the_connection(port: int) -> None:
    conn = NodeConnection("127.0.0.1", port, timeout=10)
    try:
        conn.putrequest("POST", "/streamed")
        conn.putheader("Content-Length", "6")
        conn.endheaders()
        conn.send(b"abc")
        conn.send(b"def")
        assert conn.getresponse().read() == b"got abcdef"
        conn.request("GET", "/until-close")
        response = conn.getresponse()
        assert response.will_close
        assert response.read() == b"x" * 100_000
        conn.request("GET", "/length")  # on a new connection
        assert conn.getresponse().read() == b"hello, world\n"
    finally:
        conn.close()
    assert len(set(Node.clients)) == 2


def test_an_answer_cut_short_is_an_oserror(port: int) -> None:
    conn = NodeConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/cut-short")
        response = conn.getresponse()
        with pytest.raises(OSError, match="cut short"):
            response.read()
        conn.request("GET", "/length")  # the next request opens a new connection
        assert conn.getresponse().read() == b"hello, world\n"
    finally:
        conn.close()


def test_a_large_body_is_read_in_bounded_memory(port: int,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Read in 1 MiB pieces, the client never holds much more than one piece."""
    held: list[int] = []
    take = localhttp.NodeResponse._take

    def watched(self: localhttp.NodeResponse, size: int) -> bytes:
        held.append(len(self._buffer))
        return take(self, size)

    monkeypatch.setattr(localhttp.NodeResponse, "_take", watched)
    conn = NodeConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", "/big")
        response = conn.getresponse()
        received = 0
        while piece := response.read(1024 * 1024):
            assert set(piece[:1]) == {received // 65536 % 251}
            received += len(piece)
    finally:
        conn.close()
    assert received == BIG
    assert max(held) <= 1024 * 1024 + localhttp.RECEIVE


@pytest.mark.parametrize(("host", "address"), [
    ("127.0.0.1", "127.0.0.1"), ("127.9.8.7", "127.9.8.7"), ("::1", "::1"),
    ("localhost", "127.0.0.1"), ("127.example.com", None), ("10.0.0.1", None),
    ("0.0.0.0", None), ("::", None), ("::ffff:127.0.0.1", None), ("", None),
    ("example.com", None)])
def test_only_numeric_loopback_addresses(host: str, address: str | None) -> None:
    assert loopback_address(host) == address
    if address is None:
        with pytest.raises(ValueError, match="not a loopback address"):
            NodeConnection(host, 80, timeout=1)


def test_the_cli_does_not_import_http_client() -> None:
    """The point of this module: a short command does without http.client's imports."""
    code = ("import sys, mistgrid.cli.main, mistgrid.cli.check, mistgrid.cli.copy, "
            "mistgrid.cli.daemon; print(sorted(m for m in ('http.client', 'email.parser', "
            "'ssl', 'tempfile') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True)
    assert out.stdout.decode().strip() == "[]"
