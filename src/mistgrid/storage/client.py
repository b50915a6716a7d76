"""The GBS storage client: Twisted's HTTP agent over the project's connector, TLS pinned
by SPKI hash.

How this works: each `StorageClient` talks to one server named by a NURL. Connections come
from `net.connector.Connector` (so the routing policy decides every one), are wrapped in
TLS that accepts exactly the certificate whose SPKI hash the NURL names (no certificate
authorities), and are kept in a persistent pool so requests to one server reuse them and
requests to different servers run in parallel. Every method is `async`. The agent is used
bare (no cookie jar, no content decoding, no redirects: treq's wrappers cost about 0.1 ms
of CPU per request, which a deep-check makes thousands of).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import Any, cast

import attrs
import cbor2
from OpenSSL import SSL, crypto
from twisted.internet import defer
from twisted.internet.endpoints import wrapClientTLS
from twisted.internet.error import ConnectError, ConnectionDone, ConnectionLost
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator, IStreamClientEndpoint
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from twisted.web.client import (
    Agent,
    HTTPConnectionPool,
    RequestTransmissionFailed,
    ResponseDone,
    ResponseFailed,
    ResponseNeverReceived,
)
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgentEndpointFactory, IBodyProducer
from zope.interface import implementer

from ..caps import base32
from ..crypto.spki import spki_hash
from ..errors import MistgridError
from ..gbs.headers import content_range, secret_header, swissnum_header
from ..gbs.nurl import Nurl
from ..net.connector import Connector

V1 = "/storage/v1"
RETRIES = 2
# Seconds an attempt to reach one of a server's addresses has to itself before the next
# address is tried alongside it (by route; see _FirstThatConnects).
HEAD_START = {"direct": 2.0, "socks": 5.0, "tor": 15.0, "i2p": 45.0}
# A connection lost before, during or after a request (a dropped Tor circuit, a proxy
# restarted): every GBS request is safe to repeat, so these are retried.
TRANSIENT = (ResponseNeverReceived, RequestTransmissionFailed, ResponseFailed,
             ConnectionLost, ConnectionDone)


@implementer(IBodyProducer)
class _Body:
    """A request body already in memory, written at once."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self.length = len(data)

    def startProducing(self, consumer: Any) -> defer.Deferred[None]:  # noqa: N802
        consumer.write(self._data)
        return defer.succeed(None)

    def pauseProducing(self) -> None:  # noqa: N802
        pass

    def resumeProducing(self) -> None:  # noqa: N802
        pass

    def stopProducing(self) -> None:  # noqa: N802
        pass


class _Collect(Protocol):
    """A response body, gathered."""

    def __init__(self, done: defer.Deferred[bytes]) -> None:
        self.parts: list[bytes] = []
        self.done = done

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        self.parts.append(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:  # noqa: N802
        if self.done.called:
            return  # cancelled
        if reason.check(ResponseDone, PotentialDataLoss):  # the latter: no length given
            self.done.callback(b"".join(self.parts))
        else:
            self.done.errback(reason)


def _read_body(response: Any) -> defer.Deferred[bytes]:
    def cancel(_: defer.Deferred[bytes]) -> None:
        transport = collector.transport
        if transport is not None:
            transport.stopProducing()  # drops the connection: its answer is not wanted

    done: defer.Deferred[bytes] = defer.Deferred(cancel)
    collector = _Collect(done)
    response.deliverBody(collector)
    return done


class StorageServerError(MistgridError):
    """A storage server answered with an error status."""

    def __init__(self, status: int, what: str) -> None:
        self.status = status
        super().__init__(f"storage server: {what} failed (HTTP {status})")


@implementer(IOpenSSLClientConnectionCreator)
class _PinnedTLS:
    """TLS that trusts exactly one key: the SPKI hash from the NURL."""

    def __init__(self, expected: bytes) -> None:
        self._expected = expected

    def _verify(self, conn: SSL.Connection, cert: crypto.X509, errno: int, depth: int,
                ok: int) -> bool:
        if depth != 0:
            return True
        return spki_hash(cert.to_cryptography()) == self._expected

    def clientConnectionForTLS(self, protocol: Any) -> SSL.Connection:  # noqa: N802
        context = SSL.Context(SSL.TLS_METHOD)
        context.set_min_proto_version(SSL.TLS1_2_VERSION)
        context.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, self._verify)
        connection = SSL.Connection(context, None)
        connection.set_app_data(protocol)
        connection.set_connect_state()
        return connection


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


@implementer(IAgentEndpointFactory)
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
        creator = cast(IOpenSSLClientConnectionCreator, _PinnedTLS(self.nurls[0].spki_hash))
        if len(self.nurls) == 1:
            nurl = self.nurls[0]
            return wrapClientTLS(creator, self.connector.endpoint(nurl.host, nurl.port or 0))
        return wrapClientTLS(creator, cast(IStreamClientEndpoint, _FirstThatConnects(self)))


@attrs.frozen
class UploadSecrets:
    upload: bytes
    renew: bytes
    cancel: bytes


class StorageClient:
    """One storage server, over GBS."""

    def __init__(self, nurl: Nurl, connector: Connector, reactor: Any,
                 pool: HTTPConnectionPool | None = None, timeout: float = 120.0,
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
        pool = pool or HTTPConnectionPool(reactor, persistent=True)
        pool.maxPersistentPerHost = 8
        self._endpoints = _EndpointFactory(connector, [nurl, *fallbacks], reactor)
        # never a redirect: a bare Agent follows none (a storage server cannot send us to
        # another address)
        self._agent = Agent.usingEndpointFactory(reactor, self._endpoints, pool)
        self._reactor = reactor
        self._auth = swissnum_header(nurl.swissnum)
        self.retries = 0  # requests repeated after a transient connection failure
        port = f":{nurl.port}" if nurl.port is not None else ""
        self._base = f"https://{nurl.host}{port}".encode("ascii")

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
                    secrets: Mapping[str, bytes] | None = None) -> tuple[int, bytes]:
        all_headers: dict[bytes, list[bytes]] = {b"authorization": [self._auth]}
        for name, value in (headers or {}).items():
            all_headers[name] = [value]
        if secrets:
            all_headers[b"x-tahoe-authorization"] = [secret_header(k, v)
                                                     for k, v in secrets.items()]
        if cbor is not None:
            body = cbor2.dumps(cbor)
            all_headers[b"content-type"] = [b"application/cbor"]
        url = self._base + path.encode("ascii")
        for attempt in range(1, RETRIES + 2):
            try:
                response = await self._request(method.encode("ascii"), url,
                                               Headers(all_headers), body)
                content = await _read_body(response)
                break
            except TRANSIENT:
                # A kept-alive connection the server had closed, or a reset: every GBS
                # request is safe to repeat (allocate and PATCH are idempotent by design).
                if attempt > RETRIES:
                    raise
                self.retries += 1
        else:  # pragma: no cover - the loop always breaks or raises
            raise AssertionError("unreachable")
        if response.code not in ok:
            raise StorageServerError(response.code, what)
        return response.code, content

    async def _request(self, method: bytes, url: bytes, headers: Headers,
                       body: bytes | None) -> Any:
        """The response (its headers read) or, after `timeout` seconds without one, a
        cancelled request."""
        asked = self._agent.request(method, url, headers,
                                    None if body is None else _Body(body))
        timer = self._reactor.callLater(self.timeout, asked.cancel)
        try:
            return await asked
        finally:
            if timer.active():
                timer.cancel()

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
            headers={b"content-range": content_range(offset, offset + len(data)),
                     b"content-type": b"application/octet-stream"},
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
            headers={b"range": b"bytes=%d-%d" % (offset, offset + length - 1)})
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
            headers={b"range": b"bytes=%d-%d" % (offset, offset + length - 1)})
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
