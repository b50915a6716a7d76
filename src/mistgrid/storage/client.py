"""The GBS storage client: HTTP/1.1 over the project's connector, TLS pinned by SPKI hash.

How this works: each `StorageClient` talks to one server named by a NURL. Connections come
from `net.connector.Connector` (so the routing policy decides every one), are wrapped in
TLS that accepts exactly the certificate whose SPKI hash the NURL names (no certificate
authorities), and are kept in a pool so requests to one server reuse them and requests to
different servers run in parallel. Every method is `async`. Requests and answers are
written and read by `gbs.http1` (one request at a time per connection, no redirects,
every answer bounded by what was asked); Twisted's HTTP client cost about 0.5 ms of CPU
per request, which an upload of small files or a deep-check makes thousands of.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import Any, cast

import attrs
import cbor2
from cryptography import x509
from twisted.internet import defer
from twisted.internet.error import ConnectError, ConnectionDone, ConnectionLost
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.protocol import ClientFactory, Protocol, connectionDone
from twisted.python.failure import Failure
from twisted.web.client import ResponseFailed, ResponseNeverReceived
from zope.interface import implementer

from ..caps import base32
from ..crypto.spki import spki_hash
from ..errors import MistgridError
from ..gbs.headers import content_range, secret_header, swissnum_header
from ..gbs.http1 import HttpFormatError, ResponseReader, request_head
from ..gbs.nurl import Nurl
from ..net.connector import Connector
from ..net.tls import TLSClientEndpoint, client_context

V1 = "/storage/v1"
RETRIES = 2
# Seconds an attempt to reach one of a server's addresses has to itself before the next
# address is tried alongside it (by route; see _FirstThatConnects).
HEAD_START = {"direct": 2.0, "socks": 5.0, "tor": 15.0, "i2p": 45.0}
# A connection lost before, during or after a request (a dropped Tor circuit, a proxy
# restarted): every GBS request is safe to repeat, so these are retried.
TRANSIENT = (ResponseNeverReceived, ResponseFailed, ConnectionLost, ConnectionDone)
# The most body an answer other than a read may have (a read's is the length asked): a
# version, a list of shares, a test-and-set's answer with the few reads it asked for.
MAX_ANSWER = 4 * 1024 * 1024
_CONTEXT = client_context()  # (the pin is checked per connection, after the handshake)


class _Connection(Protocol):
    """One kept-alive connection to a storage server, one request at a time (GBS clients
    never pipeline). A response's head must come within `timeout` seconds of its request;
    a connection lost, or a response that breaks HTTP, fails the request, as Twisted's
    client did: ResponseNeverReceived when no byte of the answer had come, else
    ResponseFailed (both are TRANSIENT: the caller repeats the request)."""

    def __init__(self, pool: _Pool) -> None:
        self._pool = pool
        self._reader: ResponseReader | None = None
        self._answer: defer.Deferred[ResponseReader] | None = None
        self._timer: Any = None
        self.open = True
        self.idle_since = 0.0

    def request(self, head: bytes, body: bytes | None, limit: int,
                timeout: float) -> defer.Deferred[ResponseReader]:
        self._reader = ResponseReader(limit)
        answer: defer.Deferred[ResponseReader] = defer.Deferred(self._cancelled)
        self._answer = answer
        self._timer = self._pool.reactor.callLater(timeout, self._timed_out, timeout)
        transport: Any = self.transport
        transport.write(head)
        if body:
            transport.write(body)
        return answer

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        reader = self._reader
        if reader is None:  # nothing was asked: a server that talks out of turn
            self._abort()
            return
        try:
            extra = reader.feed(data)
        except HttpFormatError as err:
            self._fail(ResponseFailed([Failure(err)]))
            self._abort()
            return
        if reader.head_done and self._timer is not None:
            self._stop_timer()
        if reader.done:
            if extra:
                self._fail(ResponseFailed([Failure(HttpFormatError(
                    "bytes after the end of a response"))]))
                self._abort()
                return
            answer, self._answer, self._reader = self._answer, None, None
            if reader.keep_alive:
                self._pool.release(self)
            else:
                self.open = False
                transport: Any = self.transport
                transport.loseConnection()
            assert answer is not None
            answer.callback(reader)

    def connectionLost(self, reason: Failure = connectionDone) -> None:  # noqa: N802
        self.open = False
        self._pool.forget(self)
        reader = self._reader
        if reader is None or self._answer is None:
            return
        try:
            reader.connection_lost()
        except HttpFormatError:
            self._fail(ResponseFailed([reason]) if reader.started
                       else ResponseNeverReceived([reason]))
            return
        answer, self._answer, self._reader = self._answer, None, None
        self._stop_timer()
        answer.callback(reader)

    def _timed_out(self, seconds: float) -> None:
        self._timer = None
        self._fail(ResponseNeverReceived([Failure(defer.TimeoutError(
            f"no answer within {seconds:g} s"))]))
        self._abort()

    def _cancelled(self, _: defer.Deferred[ResponseReader]) -> None:
        # The caller gave up (its Deferred now fails with CancelledError): the answer,
        # if it ever comes, is not wanted on this connection.
        self._answer = self._reader = None
        self._stop_timer()
        self._abort()

    def _fail(self, error: Exception) -> None:
        answer, self._answer, self._reader = self._answer, None, None
        self._stop_timer()
        if answer is not None:
            answer.errback(Failure(error))

    def _stop_timer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def _abort(self) -> None:
        self.open = False
        transport: Any = self.transport
        if transport is not None:
            transport.abortConnection()


class _ConnectionFactory(ClientFactory):
    def __init__(self, pool: _Pool) -> None:
        self._pool = pool

    def buildProtocol(self, addr: Any) -> _Connection:  # noqa: N802
        return _Connection(self._pool)


class _Pool:
    """One server's connections: idle ones kept (at most MAX_IDLE) and reused, a new one
    made whenever none is idle, so requests to one server run side by side."""

    MAX_IDLE = 8
    # A connection idle this long is closed rather than reused: servers close theirs after
    # 300 s idle (ours do; docs/storage.md), and a request sent as the server closes fails.
    MAX_IDLE_SECONDS = 240.0

    def __init__(self, endpoints: _EndpointFactory, reactor: Any, persistent: bool) -> None:
        self._endpoints = endpoints
        self.reactor = reactor
        self._persistent = persistent
        self._idle: list[_Connection] = []
        self._factory = _ConnectionFactory(self)

    async def connection(self) -> _Connection:
        """An idle connection, or a new one."""
        while self._idle:
            connection = self._idle.pop()
            if not connection.open:
                continue
            if self.reactor.seconds() - connection.idle_since < self.MAX_IDLE_SECONDS:
                return connection
            connection.open = False  # its server may be closing it just now
            transport: Any = connection.transport
            transport.loseConnection()
        endpoint: Any = self._endpoints.endpointForURI(None)
        made: _Connection = await endpoint.connect(self._factory)
        return made

    def release(self, connection: _Connection) -> None:
        if self._persistent and len(self._idle) < self.MAX_IDLE:
            connection.idle_since = self.reactor.seconds()
            self._idle.append(connection)
        else:
            connection.open = False
            transport: Any = connection.transport
            transport.loseConnection()

    def forget(self, connection: _Connection) -> None:
        if connection in self._idle:
            self._idle.remove(connection)

    def close(self) -> None:
        """Close the idle connections (those in use close when their answer is in)."""
        idle, self._idle = self._idle, []
        self._persistent = False
        for connection in idle:
            connection.open = False
            transport: Any = connection.transport
            if transport is not None:
                transport.loseConnection()


class StorageServerError(MistgridError):
    """A storage server answered with an error status."""

    def __init__(self, status: int, what: str) -> None:
        self.status = status
        super().__init__(f"storage server: {what} failed (HTTP {status})")


class _Pin:
    """Accepts exactly one key: the SPKI hash from the NURL."""

    def __init__(self, expected: bytes) -> None:
        self._expected = expected

    def __call__(self, der: bytes | None) -> bool:
        return der is not None and \
            spki_hash(x509.load_der_x509_certificate(der)) == self._expected


@implementer(IStreamClientEndpoint)
class _FirstThatConnects:
    """Connects through the first of a server's addresses that answers. Attempts start in
    order of preference, each given a head start (by route: a direct connection is made in
    well under 2 s, one through Tor in seconds, I2P in tens of seconds) before the next
    begins alongside it, or as soon as it fails; the first connection made wins and the
    others are cancelled. The address that answered is tried first next time."""

    def __init__(self, factory: _EndpointFactory) -> None:
        self._factory = factory

    def connect(self, protocol_factory: Any) -> defer.Deferred[Any]:
        factory = self._factory
        order = [factory.reached] + [i for i in range(len(factory.nurls))
                                     if i != factory.reached]
        attempts: dict[int, defer.Deferred[Any]] = {}
        failures: dict[int, str] = {}
        state: dict[str, Any] = {"next": 0, "timer": None, "finished": False}

        def stop_others() -> None:
            state["finished"] = True
            if state["timer"] is not None and state["timer"].active():
                state["timer"].cancel()
            for attempt in list(attempts.values()):
                attempt.cancel()

        result: defer.Deferred[Any] = defer.Deferred(lambda _: stop_others())

        def launch() -> None:
            state["timer"] = None
            if state["finished"] or state["next"] >= len(order):
                return
            index = order[state["next"]]
            state["next"] += 1
            nurl = factory.nurls[index]
            try:
                endpoint: Any = factory.connector.endpoint(nurl.host, nurl.port or 0)
                attempt: defer.Deferred[Any] = endpoint.connect(protocol_factory)
            except Exception as err:
                failures[index] = f"{nurl.host}: {err}"
                settle()
                return
            attempts[index] = attempt
            attempt.addCallbacks(lambda protocol: won(index, protocol),
                                 lambda failure: lost(index, nurl, failure))
            if state["next"] < len(order):
                route = factory.connector.route(nurl.host, nurl.port or 0).name
                state["timer"] = factory.reactor.callLater(HEAD_START.get(route, 15.0),
                                                           launch)

        def won(index: int, protocol: Any) -> None:
            attempts.pop(index, None)
            if state["finished"]:  # another address won meanwhile
                protocol.transport.loseConnection()
                return
            factory.reached = index
            stop_others()
            result.callback(protocol)

        def lost(index: int, nurl: Nurl, failure: Any) -> None:
            attempts.pop(index, None)
            if state["finished"]:
                return
            failures[index] = f"{nurl.host}: {failure.getErrorMessage()}"
            settle()

        def settle() -> None:
            if state["next"] < len(order):  # a failed attempt: the next starts at once
                if state["timer"] is not None and state["timer"].active():
                    state["timer"].cancel()
                launch()
            elif not attempts:
                state["finished"] = True
                result.errback(ConnectError(string="no address of this server answered ("
                                            + "; ".join(failures[i] for i in order
                                                        if i in failures) + ")"))

        launch()
        return result


class _EndpointFactory:
    def __init__(self, connector: Connector, nurls: Sequence[Nurl], reactor: Any) -> None:
        self.connector = connector
        self.reactor = reactor
        self.nurls = list(nurls)  # one server's addresses (same key), best first
        self.reached = 0  # the address that answered last
        self._endpoint: IStreamClientEndpoint | None = None

    def endpointForURI(self, uri: Any) -> IStreamClientEndpoint:  # noqa: N802
        # Asked for every request (the pool then reuses a connection): made once.
        if self._endpoint is None:
            self._endpoint = self._make_endpoint()
        return self._endpoint

    def _make_endpoint(self) -> IStreamClientEndpoint:
        # An I2P NURL may have no port (I2P destinations need none): 0 stands for "none".
        nurl = self.nurls[0]
        inner = self.connector.endpoint(nurl.host, nurl.port or 0) if len(self.nurls) == 1 \
            else cast(IStreamClientEndpoint, _FirstThatConnects(self))
        return cast(IStreamClientEndpoint,
                    TLSClientEndpoint(inner, _CONTEXT, _Pin(nurl.spki_hash)))


@attrs.frozen
class UploadSecrets:
    upload: bytes
    renew: bytes
    cancel: bytes


class StorageClient:
    """One storage server, over GBS."""

    def __init__(self, nurl: Nurl, connector: Connector, reactor: Any,
                 persistent: bool = True, timeout: float = 120.0,
                 permutation_seed: bytes | None = None,
                 fallbacks: Sequence[Nurl] = (), tub_id: bytes | None = None) -> None:
        """`fallbacks`: more addresses of the same server (its other NURLs, same key and
        swissnum), tried in order when `nurl` does not answer. `tub_id`: the 20-byte tub ID
        of the announcement's `anonymous-storage-FURL`, the seed of this server's mutable
        write enablers and lease secrets (as Tahoe-LAFS uses it; without one, the first 20
        bytes of the SPKI hash, so at least every mistgrid client agrees)."""
        if any((f.spki_hash, f.swissnum) != (nurl.spki_hash, nurl.swissnum)
               for f in fallbacks):
            raise MistgridError("a fallback NURL names another server")
        self.nurl = nurl
        self._connector = connector
        self.timeout = timeout
        # From the server's announcement; ours announce their SPKI hash (announcement.py).
        self.permutation_seed = permutation_seed if permutation_seed is not None \
            else nurl.spki_hash
        self.tub_id = tub_id if tub_id is not None else nurl.spki_hash[:20]
        self._endpoints = _EndpointFactory(connector, [nurl, *fallbacks], reactor)
        # (no redirect is ever followed: a storage server cannot send us to another address)
        self._pool = _Pool(self._endpoints, reactor, persistent)
        self._reactor = reactor
        self._auth = swissnum_header(nurl.swissnum)
        self.retries = 0  # requests repeated after a transient connection failure
        port = f":{nurl.port}" if nurl.port is not None else ""
        self._host = f"{nurl.host}{port}".encode("ascii")

    def close(self) -> None:
        """Close the connections kept for reuse."""
        self._pool.close()

    @property
    def reached(self) -> Nurl:
        """The address that answered last (the first choice until one has)."""
        return self._endpoints.nurls[self._endpoints.reached]

    @property
    def route(self) -> str:
        """How that address is reached: direct, tor, socks or i2p."""
        nurl = self.reached
        return self._connector.route(nurl.host, nurl.port or 0).name

    async def _call(self, method: str, path: str, what: str, ok: tuple[int, ...],
                    body: bytes | None = None, cbor: Any = None,
                    headers: Mapping[bytes, bytes] | None = None,
                    secrets: Mapping[str, bytes] | None = None,
                    limit: int = MAX_ANSWER) -> tuple[int, bytes]:
        """(status, body) of one request; `limit`: the most body the answer may have."""
        fields = [(b"Authorization", self._auth)]
        fields.extend((headers or {}).items())
        if secrets:
            fields.extend((b"X-Tahoe-Authorization", secret_header(k, v))
                          for k, v in secrets.items())
        if cbor is not None:
            body = cbor2.dumps(cbor)
            fields.append((b"Content-Type", b"application/cbor"))
        head = request_head(method.encode("ascii"), path.encode("ascii"), self._host, fields,
                            None if body is None else len(body))
        for attempt in range(1, RETRIES + 2):
            try:
                answer = await self._request(head, body, limit)
                break
            except TRANSIENT:
                # A kept-alive connection the server had closed, or a reset: every GBS
                # request is safe to repeat (allocate and PATCH are idempotent by design).
                if attempt > RETRIES:
                    raise
                self.retries += 1
        else:  # pragma: no cover - the loop always breaks or raises
            raise AssertionError("unreachable")
        if answer.status not in ok:
            raise StorageServerError(answer.status, what)
        return answer.status, answer.body

    async def _request(self, head: bytes, body: bytes | None, limit: int) -> ResponseReader:
        """The whole answer; its head must come within `timeout` seconds."""
        connection = await self._pool.connection()
        return await connection.request(head, body, limit, self.timeout)

    async def version(self) -> dict[Any, Any]:
        _, body = await self._call("GET", f"{V1}/version", "version", (200,))
        result: dict[Any, Any] = cbor2.loads(body)
        return result

    async def allocate(self, storage_index: bytes, numbers: set[int], size: int,
                       secrets: UploadSecrets) -> tuple[set[int], set[int]]:
        _, body = await self._call(
            "POST", f"{V1}/immutable/{base32.b2a(storage_index)}", "allocate", (200, 201),
            cbor={"share-numbers": set(numbers), "allocated-size": size},
            secrets={"lease-renew-secret": secrets.renew,
                     "lease-cancel-secret": secrets.cancel, "upload-secret": secrets.upload})
        answer = cbor2.loads(body)
        return set(answer["already-have"]), set(answer["allocated"])

    async def write(self, storage_index: bytes, number: int, upload_secret: bytes,
                    offset: int, data: bytes) -> bool:
        """Write share bytes; True once the share is complete."""
        code, _ = await self._call(
            "PATCH", f"{V1}/immutable/{base32.b2a(storage_index)}/{number}", "write",
            (200, 201), body=data,
            headers={b"Content-Range": content_range(offset, offset + len(data)),
                     b"Content-Type": b"application/octet-stream"},
            secrets={"upload-secret": upload_secret})
        return code == 201

    async def abort(self, storage_index: bytes, number: int, upload_secret: bytes) -> None:
        await self._call("PUT", f"{V1}/immutable/{base32.b2a(storage_index)}/{number}/abort",
                         "abort", (200,), secrets={"upload-secret": upload_secret})

    async def add_lease(self, storage_index: bytes, renew: bytes, cancel: bytes) -> bool:
        """Add (or renew) a lease on every share of this storage index here, immutable or
        mutable; False when the server holds none."""
        code, _ = await self._call(
            "PUT", f"{V1}/lease/{base32.b2a(storage_index)}", "add lease", (204, 404),
            secrets={"lease-renew-secret": renew, "lease-cancel-secret": cancel})
        return code == 204

    async def list_shares(self, storage_index: bytes) -> set[int]:
        _, body = await self._call(
            "GET", f"{V1}/immutable/{base32.b2a(storage_index)}/shares", "list", (200,))
        return set(cbor2.loads(body))

    async def read(self, storage_index: bytes, number: int, offset: int, length: int) -> bytes:
        """Up to `length` bytes at `offset` (fewer at the end of the share)."""
        if length <= 0:
            return b""
        code, body = await self._call(
            "GET", f"{V1}/immutable/{base32.b2a(storage_index)}/{number}", "read",
            (200, 204, 206),
            headers={b"Range": b"bytes=%d-%d" % (offset, offset + length - 1)},
            limit=length)
        return body if code != 204 else b""

    async def advise_corrupt(self, storage_index: bytes, number: int, reason: str) -> None:
        await self._call("POST",
                         f"{V1}/immutable/{base32.b2a(storage_index)}/{number}/corrupt",
                         "corruption advisory", (200, 404), cbor={"reason": reason})


    # ---- mutable slots ----

    async def list_mutable(self, storage_index: bytes) -> set[int]:
        _, body = await self._call(
            "GET", f"{V1}/mutable/{base32.b2a(storage_index)}/shares", "list", (200,))
        return set(cbor2.loads(body))

    async def read_mutable(self, storage_index: bytes, number: int, offset: int,
                           length: int) -> bytes:
        """Up to `length` bytes of a mutable share at `offset`."""
        if length <= 0:
            return b""
        code, body = await self._call(
            "GET", f"{V1}/mutable/{base32.b2a(storage_index)}/{number}", "read",
            (200, 204, 206),
            headers={b"Range": b"bytes=%d-%d" % (offset, offset + length - 1)},
            limit=length)
        return body if code != 204 else b""

    async def read_test_write(self, storage_index: bytes, secrets: MutableSecrets,
                              vectors: Mapping[int, ShareVectors],
                              reads: Sequence[tuple[int, int]] = ()
                              ) -> tuple[bool, dict[int, list[bytes]]]:
        """Tahoe's test-and-set: every test of every share must pass, then all writes
        happen; the reads are of the data before the writes."""
        body = {
            "test-write-vectors": {
                number: {"test": [{"offset": o, "size": n, "specimen": s}
                                  for o, n, s in v.tests],
                         "write": [{"offset": o, "data": d} for o, d in v.writes],
                         "new-length": v.new_length}
                for number, v in vectors.items()},
            "read-vector": [{"offset": o, "size": n} for o, n in reads]}
        _, answer = await self._call(
            "POST", f"{V1}/mutable/{base32.b2a(storage_index)}/read-test-write",
            "read-test-write", (200,), cbor=body,
            secrets={"write-enabler": secrets.write_enabler,
                     "lease-renew-secret": secrets.renew,
                     "lease-cancel-secret": secrets.cancel})
        result = cbor2.loads(answer)
        data = {int(k): list(v) for k, v in (result.get("data") or {}).items()}
        return bool(result["success"]), data

    async def advise_corrupt_mutable(self, storage_index: bytes, number: int,
                                     reason: str) -> None:
        await self._call("POST",
                         f"{V1}/mutable/{base32.b2a(storage_index)}/{number}/corrupt",
                         "corruption advisory", (200, 404), cbor={"reason": reason})


@attrs.frozen(repr=False)
class MutableSecrets:
    write_enabler: bytes
    renew: bytes
    cancel: bytes

    def __repr__(self) -> str:
        return "<MutableSecrets redacted>"


@attrs.frozen
class ShareVectors:
    """For one share: (offset, size, specimen) tests, (offset, data) writes, new length."""

    tests: tuple[tuple[int, int, bytes], ...]
    writes: tuple[tuple[int, bytes], ...]
    new_length: int | None = None


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
