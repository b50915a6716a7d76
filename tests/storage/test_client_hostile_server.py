"""The storage client against a server that misbehaves, over real TLS on loopback: an
answer larger than the request allows, garbage instead of HTTP, an answer that never
comes, a connection dropped mid-answer. Each request fails with an error (after its
retries), never holding more than it asked for, and the same client then works again
with the server behaving."""

from __future__ import annotations

import os
import secrets
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer, reactor, ssl
from twisted.internet.protocol import Factory, Protocol
from twisted.web.client import ResponseFailed, ResponseNeverReceived

from mistgrid.gbs.nurl import Nurl
from mistgrid.net.connector import Connector
from mistgrid.storage.client import MAX_ANSWER, StorageClient
from mistgrid.storage.tls import create_identity, identity_hash

GOOD = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"


class Scripted(Protocol):
    """Answers each request (its head seen) with what the server's script says."""

    def __init__(self, server: ScriptedServer) -> None:
        self.server = server
        self.seen = b""

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        self.seen += data
        while b"\r\n\r\n" in self.seen:
            head, _, self.seen = self.seen.partition(b"\r\n\r\n")
            self.server.requests.append(head)
            self.server.behaviour(self)


class ScriptedServer(Factory):
    def __init__(self) -> None:
        self.requests: list[bytes] = []
        self.behaviour: Callable[[Scripted], None] = write(GOOD)

    def buildProtocol(self, addr: Any) -> Scripted:  # noqa: N802
        return Scripted(self)


@pytest.fixture
def hostile(tmp_path: Path) -> Iterator[tuple[ScriptedServer, Nurl]]:
    pem = create_identity(tmp_path)
    options = ssl.PrivateCertificate.loadPEM(  # type: ignore[no-untyped-call]
        pem.read_text()).options()
    with warnings.catch_warnings():  # pyOpenSSL's, about how Twisted hands it the key
        warnings.simplefilter("ignore", DeprecationWarning)
        options.getContext()  # made now, once
    server = ScriptedServer()
    port = reactor.listenSSL(0, server, options, interface="127.0.0.1")
    nurl = Nurl("pb", identity_hash(pem), "127.0.0.1", port.getHost().port,
                secrets.token_urlsafe(16))
    yield server, nurl
    port.stopListening()


def write(data: bytes, then_close: bool = False) -> Callable[[Scripted], None]:
    def answer(protocol: Scripted) -> None:
        transport: Any = protocol.transport
        transport.write(data)
        if then_close:
            transport.loseConnection()
    return answer


def silent(protocol: Scripted) -> None:
    pass


def reset(protocol: Scripted) -> None:
    transport: Any = protocol.transport
    transport.abortConnection()


@pytest_twisted.ensureDeferred  # type: ignore[untyped-decorator]
async def test_a_misbehaving_server_fails_each_request_and_the_client_recovers(
        hostile: tuple[ScriptedServer, Nurl]) -> None:
    server, nurl = hostile
    client = StorageClient(nurl, Connector(reactor), reactor, timeout=0.5)
    index = os.urandom(16)
    assert await client.read(index, 0, 0, 3) == b"abc"
    cases: list[tuple[Callable[[Scripted], None], type[Exception]]] = [
        # a read of 3 bytes answered with 4 (announced, or sent without a length)
        (write(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nabcd"), ResponseFailed),
        (write(b"HTTP/1.1 200 OK\r\n\r\nabcd", then_close=True), ResponseFailed),
        (write(b"\x16\x03\x01 not http at all\r\n\r\n"), ResponseFailed),
        (silent, ResponseNeverReceived),  # no answer within the timeout
        (write(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\na", then_close=True),
         ResponseFailed),  # cut short
        (reset, ResponseNeverReceived),
    ]
    for behaviour, error in cases:
        server.behaviour = behaviour
        asked = len(server.requests)
        with pytest.raises(error):
            await client.read(index, 0, 0, 3)
        assert len(server.requests) - asked == 3  # the request and its two retries
        server.behaviour = write(GOOD)
        assert await client.read(index, 0, 0, 3) == b"abc"
    # An answer to a non-read request is bounded too.
    server.behaviour = write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n"
                             % (MAX_ANSWER + 1))
    with pytest.raises(ResponseFailed):
        await client.list_shares(index)
    client.close()


@pytest_twisted.ensureDeferred  # type: ignore[untyped-decorator]
async def test_a_cancelled_request_drops_its_connection_and_others_go_on(
        hostile: tuple[ScriptedServer, Nurl]) -> None:
    server, nurl = hostile
    client = StorageClient(nurl, Connector(reactor), reactor)
    server.behaviour = silent
    asked = defer.Deferred.fromCoroutine(client.read(os.urandom(16), 0, 0, 3))
    while not server.requests:
        await defer.Deferred.fromCoroutine(_tick())
    asked.cancel()
    with pytest.raises(defer.CancelledError):
        await asked
    server.behaviour = write(GOOD)
    assert await client.read(os.urandom(16), 0, 0, 3) == b"abc"
    client.close()


async def _tick() -> None:
    from twisted.internet import task  # noqa: PLC0415

    await task.deferLater(reactor, 0.01, lambda: None)
