"""TLS for GBS connections, on the standard library's `ssl` module (OpenSSL's memory BIOs).

How this works: `TLSFactory` wraps a protocol factory; each connection's `TLSProtocol`
sits between the transport (ciphertext) and the wrapped protocol (plaintext), which sees
it as its transport. Received bytes go into the incoming BIO and every whole record is
decrypted and handed on in one call; written bytes are encrypted at once (all of them, in
as many records as they need) and the ciphertext written to the transport in one piece,
so producers and flow control are the transport's own. A client may write before the
handshake is done: those bytes wait, and are sent only after `check_peer` has accepted the
server's certificate (the storage client's SPKI pin), so nothing, not even a request's
swissnum, goes to a server that is not the one asked for.

Twisted's TLS layer (pyOpenSSL, 16 KiB at a time through cffi) cost the storage server
about 2.2 ms of CPU per MiB sent and the client 1 ms per MiB received; this costs about
0.5 and 0.6 (measured with 32 MiB through each on this project's development VM). Both
ends of GBS use it; Tahoe-LAFS's clients and servers see ordinary TLS 1.2 or 1.3.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.protocol import connectionDone
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from twisted.python.failure import Failure
from zope.interface import implementer

# NAGLE: both ends of a GBS connection turn Nagle's algorithm off. A request or answer
# often leaves in more than one send (head, then body; a streamed answer's last piece),
# and with Nagle on, a small last part waits for the peer to acknowledge the first, which
# the peer may hold back for its delayed-ACK timer: 40 ms on Linux. twisted.web does this
# only on a plain TCP transport, not under this layer. Measured on the benchmark grid
# (4 KiB written into a 100 MiB MDMF file, 8 writes, twice): about 1 in 3 took
# 0.054-0.059 s instead of 0.014-0.017 s; with it off, none did. (Twisted's setTcpNoDelay
# logs, and does not raise, an error from the socket.)

# The most plaintext asked of OpenSSL at once: it hands over one record (at most 16 KiB)
# per call whatever the size asked, and a smaller buffer keeps each call's allocation
# small.
READ_SIZE = 32 * 1024


# The most a client's TCP transport takes from its socket at once (Twisted's default is
# 64 KiB). A client reading shares (a verify of 100 MiB at 3-of-10 receives a third of a
# GiB) falls behind its servers, so the socket holds more than 64 KiB at each read, and
# every read then goes through the reactor, this layer and the HTTP reader for 64 KiB.
# Measured (14 verifies of 100 MiB each, interleaved with 64 KiB): client CPU 0.69 against
# 0.83 s, wall 0.90 against 1.03 s; 1 MiB was no better than 256 KiB.
CLIENT_RECEIVE = 256 * 1024


class CertificateMismatch(ssl.SSLError):
    """The server's certificate is not the one this connection was to accept."""


def server_context(pem_path: str) -> ssl.SSLContext:
    """A server's context: its key and certificate (one PEM file), TLS 1.2 or later, no
    client certificate asked, no session tickets (GBS clients do not resume sessions)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(pem_path)
    context.num_tickets = 0
    return context


def client_context() -> ssl.SSLContext:
    """A client's context that accepts any certificate during the handshake: the caller's
    `check_peer` decides afterwards (GBS pins the server's key; no certificate authority or
    host name is involved)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class TLSProtocol(ProtocolWrapper):
    """One TLS connection: ciphertext below, the wrapped protocol's plaintext above.

    Closing (`loseConnection`) sends close_notify, then reads on, dropping what comes,
    until the peer's close_notify or for at most LINGER seconds, before closing the TCP
    connection: a peer still sending (a request body the server refused) then reads the
    answer instead of a reset."""

    factory: TLSFactory
    LINGER = 5.0

    def __init__(self, factory: TLSFactory, wrapped: Any) -> None:
        super().__init__(factory, wrapped)
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._tls = factory.context.wrap_bio(self._incoming, self._outgoing,
                                             server_side=factory.server_side)
        self._below: Any = None  # the transport (typed as Twisted's transports are used)
        self._ready = False  # handshake done and the peer accepted
        self._waiting: list[bytes] = []  # written before that
        self._close_when_ready = False
        self._closed = False  # no more plaintext either way
        self._ending = False  # the TCP connection is being closed
        self._linger: Any = None
        self._failure: Failure | None = None  # why TLS ended the connection

    def makeConnection(self, transport: Any) -> None:  # noqa: N802 (Twisted's name)
        self._below = transport
        if hasattr(transport, "setTcpNoDelay"):  # a TCP connection: see NAGLE
            transport.setTcpNoDelay(True)
            if not self.factory.server_side:
                transport.bufferSize = CLIENT_RECEIVE
        super().makeConnection(transport)
        if not self.factory.server_side:
            self._handshake()

    # -- from the network

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        if self._ending:
            return
        self._incoming.write(data)
        if not self._ready:
            self._handshake()
            if not self._ready:
                return
        self._deliver()

    def _deliver(self) -> None:
        pieces = []
        tls = self._tls
        ended = False
        while True:
            try:
                piece = tls.read(READ_SIZE)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:  # the peer's close_notify: no more data
                ended = True
                break
            except ssl.SSLError as err:
                self._give_up(Failure(err))
                return
            if not piece:
                ended = True
                break
            pieces.append(piece)
        self._flush()  # (TLS 1.3 tickets and key updates)
        if pieces and not self._closed:
            wrapped: Any = self.wrappedProtocol
            wrapped.dataReceived(pieces[0] if len(pieces) == 1 else b"".join(pieces))
        if ended:
            self._closed = True
            self._end(abort=False)

    def _handshake(self) -> None:
        try:
            self._tls.do_handshake()
        except ssl.SSLWantReadError:
            self._flush()
            return
        except ssl.SSLError as err:
            self._flush()  # the alert that tells the peer why
            self._give_up(Failure(err), abort=False)
            return
        self._flush()
        check = self.factory.check_peer
        if check is not None and not check(self._tls.getpeercert(binary_form=True)):
            self._give_up(Failure(CertificateMismatch(
                "certificate verify failed: the server's key is not the one asked for")))
            return
        self._ready = True
        waiting, self._waiting = self._waiting, []
        if waiting:
            self.write(b"".join(waiting))
        if self._close_when_ready:
            self._shut_down()

    def _give_up(self, failure: Failure, abort: bool = True) -> None:
        self._failure = failure
        self._closed = True
        self._end(abort)

    def _end(self, abort: bool) -> None:
        """Close the TCP connection (at once if `abort`, else once written out)."""
        if self._linger is not None and self._linger.active():
            self._linger.cancel()
        self._linger = None
        if abort:
            self._ending = True
            self._below.abortConnection()
        elif not self._ending:
            self._ending = True
            self._below.loseConnection()

    def connectionLost(self, reason: Failure = connectionDone) -> None:  # noqa: N802
        self._closed = self._ending = True
        if self._linger is not None and self._linger.active():
            self._linger.cancel()
        self._linger = None
        super().connectionLost(self._failure or reason)

    # -- from the wrapped protocol (its transport)

    def write(self, data: bytes) -> None:
        if self._closed or not data:
            return
        if not self._ready:
            self._waiting.append(bytes(data))
            return
        try:
            self._tls.write(data)
        except ssl.SSLError as err:
            self._give_up(Failure(err))
            return
        self._flush()

    def writeSequence(self, data: Any) -> None:  # noqa: N802
        self.write(b"".join(data))

    def loseConnection(self) -> None:  # noqa: N802
        if self.disconnecting:
            return
        self.disconnecting = 1
        if self._closed:
            return
        if not self._ready:
            if self._waiting:  # sent once the handshake is done, then closed
                self._close_when_ready = True
                return
            self._closed = True
            self._end(abort=False)
            return
        self._shut_down()

    def _shut_down(self) -> None:
        self._closed = True
        with contextlib.suppress(ssl.SSLError):  # (the peer's close_notify is not here yet)
            self._tls.unwrap()  # writes our close_notify
        self._flush()
        self._linger = self.factory.reactor.callLater(self.LINGER, self._end, False)

    def _flush(self) -> None:
        if self._outgoing.pending:
            self._below.write(self._outgoing.read())


class TLSFactory(WrappingFactory[TLSProtocol]):
    """Wraps every connection of `wrapped` in TLS. `check_peer`, for clients: given the
    server's certificate (DER), whether to go on."""

    protocol = TLSProtocol

    def __init__(self, wrapped: Any, context: ssl.SSLContext, server_side: bool,
                 check_peer: Callable[[bytes | None], bool] | None = None,
                 reactor: Any = None) -> None:
        super().__init__(wrapped)
        if reactor is None:
            from twisted.internet import reactor  # noqa: PLC0415 (the global one, late)
        self.reactor = reactor
        self.context = context
        self.server_side = server_side
        self.check_peer = check_peer


@implementer(IStreamClientEndpoint)
class TLSClientEndpoint:
    """Connects through `endpoint` and speaks TLS over it; fires with the wrapped protocol
    once the connection is made (the handshake follows; writes wait for it)."""

    def __init__(self, endpoint: IStreamClientEndpoint, context: ssl.SSLContext,
                 check_peer: Callable[[bytes | None], bool]) -> None:
        self._endpoint: Any = endpoint
        self._context = context
        self._check_peer = check_peer

    def connect(self, factory: Any) -> defer.Deferred[Any]:
        wrapping = TLSFactory(factory, self._context, False, self._check_peer)
        connected: defer.Deferred[Any] = self._endpoint.connect(wrapping)
        return connected.addCallback(lambda protocol: protocol.wrappedProtocol)
