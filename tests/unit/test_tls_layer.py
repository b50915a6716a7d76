"""The TLS layer of GBS connections (mistgrid.net.tls), over real TCP on loopback: bytes
arrive whole and in order whatever their size, a client sends nothing, not even bytes
written before the handshake, to a server whose certificate it refuses, a closing end lets
a peer that is still sending read the answer (no reset), and the wait for the peer's
close_notify is bounded."""

from __future__ import annotations

import os
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from cryptography.hazmat.primitives import serialization
from twisted.internet import defer, endpoints, task, threads
from twisted.internet import reactor as _reactor
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.python.failure import Failure

from mistgrid.net.tls import (
    CLIENT_RECEIVE,
    CertificateMismatch,
    TLSClientEndpoint,
    TLSFactory,
    TLSProtocol,
    client_context,
    server_context,
)
from mistgrid.storage.tls import create_identity, load_certificate

reactor: Any = _reactor


def t(protocol: Protocol) -> Any:
    """A protocol's transport, untyped (Twisted's interfaces confuse mypy)."""
    return protocol.transport


class Collect(Protocol):
    """Keeps what it receives; `lost` fires with the reason the connection ended."""

    def __init__(self) -> None:
        self.received = bytearray()
        self.lost: defer.Deferred[None] = defer.Deferred()
        self.reason: Failure | None = None
        self.on_data: Any = None

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        self.received += data
        if self.on_data is not None:
            self.on_data(self)

    def connectionLost(self, reason: Failure = connectionDone) -> None:  # noqa: N802
        self.reason = reason
        self.lost.callback(None)


class Server(Factory):
    def __init__(self) -> None:
        self.connections: list[Collect] = []
        self.on_data: Any = None

    def buildProtocol(self, addr: Any) -> Collect:  # noqa: N802
        protocol = Collect()
        protocol.on_data = self.on_data
        self.connections.append(protocol)
        return protocol


@pytest.fixture
def listening(tmp_path: Path) -> Iterator[tuple[Server, int, Path]]:
    pem = create_identity(tmp_path)
    server = Server()
    port = reactor.listenTCP(0, TLSFactory(server, server_context(str(pem)), server_side=True),
                             interface="127.0.0.1")
    yield server, port.getHost().port, pem
    port.stopListening()


def accept_all(der: bytes | None) -> bool:
    return der is not None


async def connect(port: int, check: Any = accept_all) -> Collect:
    tcp: Any = endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", port)
    endpoint = TLSClientEndpoint(tcp,
                                 client_context(), check)
    protocol: Collect = await endpoint.connect(Factory.forProtocol(Collect))
    return protocol


async def until(condition: Any, seconds: float = 10.0) -> None:
    for _ in range(int(seconds * 100)):
        if condition():
            return
        await deferLater(0.01)
    raise AssertionError("condition not met in time")


def deferLater(seconds: float) -> defer.Deferred[None]:  # noqa: N802
    return task.deferLater(reactor, seconds, lambda: None)


@pytest_twisted.ensureDeferred  # type: ignore[untyped-decorator]
async def test_bytes_arrive_whole_both_ways(listening: tuple[Server, int, Path]) -> None:
    """Writes of 1 byte to 3 MiB, made before and after the handshake, arrive in order."""
    server, port, _ = listening
    client = await connect(port)
    sizes = [1, 100, 16 * 1024 - 1, 16 * 1024, 16 * 1024 + 1, 200_000, 3 * 1024 * 1024]
    sent = [os.urandom(n) for n in sizes]
    for piece in sent:  # the first ones are written before the handshake is done
        t(client).write(piece)
    expected = b"".join(sent)
    await until(lambda: server.connections and
                len(server.connections[0].received) >= len(expected))
    assert bytes(server.connections[0].received) == expected
    back = os.urandom(5 * 1024 * 1024 + 3)
    t(server.connections[0]).write(back)
    await until(lambda: len(client.received) >= len(back))
    assert bytes(client.received) == back
    t(client).loseConnection()
    await client.lost
    await server.connections[0].lost


@pytest_twisted.ensureDeferred  # type: ignore[untyped-decorator]
async def test_a_refused_server_gets_nothing(listening: tuple[Server, int, Path]) -> None:
    """The pin refuses the server: what the client wrote before the handshake (a request
    with its swissnum) is never sent, and the client learns why."""
    server, port, _ = listening
    client = await connect(port, check=lambda der: False)
    t(client).write(b"GET / HTTP/1.1\r\nAuthorization: secret\r\n\r\n")
    await client.lost
    reason = client.reason
    assert reason is not None and isinstance(reason.value, CertificateMismatch)
    assert "certificate verify failed" in reason.getErrorMessage()
    await until(lambda: server.connections and server.connections[0].lost.called)
    assert server.connections[0].received == b""


@pytest_twisted.ensureDeferred  # type: ignore[untyped-decorator]
async def test_the_pin_sees_the_servers_certificate(
        listening: tuple[Server, int, Path]) -> None:
    _, port, pem = listening
    seen: list[bytes | None] = []

    def check(der: bytes | None) -> bool:
        seen.append(der)
        return True

    client = await connect(port, check=check)
    t(client).write(b"x")
    await until(lambda: seen)
    expected = load_certificate(pem).public_bytes(serialization.Encoding.DER)
    assert seen == [expected]
    t(client).loseConnection()
    await client.lost


@pytest_twisted.ensureDeferred  # type: ignore[untyped-decorator]
async def test_a_closing_server_lets_a_sending_client_read_its_answer(
        listening: tuple[Server, int, Path]) -> None:
    """The server answers and closes while the client is still sending 4 MiB: the client
    (Python's ssl, blocking, in a thread) reads the whole answer and then the end of the
    stream, with no reset."""
    server, port, _ = listening

    def answer_then_close(protocol: Collect) -> None:
        if protocol.received and protocol.on_data is not None:
            protocol.on_data = None
            t(protocol).write(b"refused")
            t(protocol).loseConnection()

    server.on_data = answer_then_close

    def client() -> bytes:
        context = client_context()
        with socket.create_connection(("127.0.0.1", port), timeout=30) as raw, \
                context.wrap_socket(raw) as sock:
            chunk = b"\0" * 65536
            for _ in range(64):  # (a reset would fail this)
                sock.sendall(chunk)
            answer = b""
            while data := sock.recv(65536):
                answer += data
            return answer

    assert await threads.deferToThread(client) == b"refused"


@pytest_twisted.ensureDeferred  # type: ignore[untyped-decorator]
async def test_waiting_for_close_notify_is_bounded(
        listening: tuple[Server, int, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """A peer that never answers our close_notify (nor closes) is cut off after LINGER."""
    monkeypatch.setattr(TLSProtocol, "LINGER", 0.3)
    server, port, _ = listening
    raw = socket.create_connection(("127.0.0.1", port), timeout=30)

    def handshake() -> ssl.SSLSocket:
        sock = client_context().wrap_socket(raw)
        sock.sendall(b"hello")
        return sock

    sock = await threads.deferToThread(handshake)
    try:
        await until(lambda: server.connections and server.connections[0].received)
        t(server.connections[0]).loseConnection()
        # The client neither reads nor closes: the server still closes, after LINGER.
        await until(lambda: server.connections[0].lost.called, seconds=5)
    finally:
        sock.close()


@pytest_twisted.ensureDeferred  # type: ignore[untyped-decorator]
async def test_garbage_instead_of_tls_ends_the_connection(
        listening: tuple[Server, int, Path]) -> None:
    server, port, _ = listening
    raw = socket.create_connection(("127.0.0.1", port), timeout=30)
    try:
        raw.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 10)
        await until(lambda: server.connections and server.connections[0].lost.called)
        reason = server.connections[0].reason
        assert reason is not None and isinstance(reason.value, ssl.SSLError)
        assert server.connections[0].received == b""
    finally:
        raw.close()


def _no_delay(tls: Any) -> int:
    """TCP_NODELAY of the TCP connection under a TLSProtocol."""
    handle: socket.socket = tls._below.getHandle()
    return handle.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


@pytest_twisted.ensureDeferred  # type: ignore[untyped-decorator]
async def test_both_ends_send_at_once(listening: tuple[Server, int, Path]) -> None:
    """Nagle's algorithm is off at both ends (a request's head and body, written apart,
    could otherwise wait 40 ms for a delayed acknowledgement)."""
    server, port, _ = listening
    client = await connect(port)
    t(client).write(b"x")
    await until(lambda: server.connections and server.connections[0].received)
    assert _no_delay(t(client)) and _no_delay(t(server.connections[0]))
    t(client).loseConnection()
    await client.lost


@pytest_twisted.ensureDeferred  # type: ignore[untyped-decorator]
async def test_a_client_reads_its_socket_in_large_pieces(
        listening: tuple[Server, int, Path]) -> None:
    """A client's TCP transport takes up to CLIENT_RECEIVE bytes per read (a verify's
    client falls behind its servers); the server's keeps Twisted's default."""
    server, port, _ = listening
    client = await connect(port)
    t(client).write(b"x")
    await until(lambda: server.connections and server.connections[0].received)
    assert t(client)._below.bufferSize == CLIENT_RECEIVE > 64 * 1024
    assert t(server.connections[0])._below.bufferSize == 64 * 1024
    t(client).loseConnection()
    await client.lost
