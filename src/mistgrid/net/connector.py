"""The ONLY place mistgrid opens an outgoing connection (see DESIGN.md).

How this works: a `Route` says how to reach a location hint; `Connector.endpoint(host,
port)` asks the node's routing function for the route and turns it into a Twisted client
endpoint: direct TCP, a SOCKS5 proxy (Tor's, or tcp.socks-proxy) that resolves the name
itself, an I2P stream through the router's SAM API (txi2p), or a refusal. The routing
function is `policy.anonymity.route` bound to the node's policy (`direct_only` in tests
that need nothing else).
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from twisted.internet import defer
from twisted.internet.endpoints import HostnameEndpoint, TCP4ClientEndpoint, TCP6ClientEndpoint
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.protocol import Factory, Protocol
from zope.interface import implementer

from ..errors import MistgridError
from ..policy.anonymity import I2P, Direct, Refused, Route, Socks
from .socks_endpoint import Socks5Endpoint

RoutingFunction = Callable[[str, int], Route]


class PolicyRefusedError(MistgridError):
    """The routing policy forbids reaching this address."""


def direct_only(host: str, port: int) -> Route:
    return Direct()


def _tcp_address(description: str) -> tuple[str, int]:
    """HOST and PORT of a `tcp:HOST:PORT` proxy description (the proxy's own address is
    local configuration, normally 127.0.0.1)."""
    kind, _, rest = description.partition(":")
    host, _, port = rest.rpartition(":")
    if kind != "tcp" or not host or not port.isdigit():
        raise PolicyRefusedError(f"cannot use proxy {description!r}: write tcp:HOST:PORT "
                                 "or unix:PATH")
    return host.strip("[]"), int(port)


def _ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def local_endpoint(reactor: Any, description: str, timeout: float = 30.0
                   ) -> IStreamClientEndpoint:
    """An endpoint for a local daemon (Tor's SOCKS or control port, the SAM API) that
    resolves no name: `unix:PATH` (Tor's own default on Debian), or `tcp:ADDRESS:PORT`
    with an IP address; `localhost` is taken to be 127.0.0.1, never looked up."""
    kind = description.partition(":")[0]
    if kind == "unix":
        from twisted.internet.endpoints import clientFromString  # noqa: PLC0415

        return cast(IStreamClientEndpoint, clientFromString(reactor, description))
    host, port = _tcp_address(description)
    if host.lower() == "localhost":
        host = "127.0.0.1"
    if not _ip_literal(host):
        raise PolicyRefusedError(f"cannot use {description!r}: a local daemon is named by "
                                 "its IP address (e.g. tcp:127.0.0.1:9050) or unix:PATH, "
                                 "so that no name is ever looked up")
    kind_class = TCP6ClientEndpoint if ":" in host else TCP4ClientEndpoint
    return cast(IStreamClientEndpoint, kind_class(reactor, host, port, timeout=timeout))


class Connector:
    def __init__(self, reactor: Any, route: RoutingFunction = direct_only,
                 timeout: float = 30.0, i2p_options: Mapping[str, str] | None = None) -> None:
        self._reactor = reactor
        self._route = route
        self._timeout = timeout
        self._i2p_options = dict(i2p_options or {})
        # Awaited before each connection to an .onion host through Tor (the node tells
        # its Tor the client-authorization key for that service there).
        self.onion_ready: Callable[[str], defer.Deferred[None]] | None = None

    def local_service(self, description: str) -> IStreamClientEndpoint:
        """An endpoint for a daemon the node is configured to use (Tor's control port, an
        I2P SAM API): a Twisted client endpoint description from tahoe.cfg, such as
        tcp:127.0.0.1:9051 or unix:/run/tor/control."""
        return local_endpoint(self._reactor, description, self._timeout)

    def route(self, host: str, port: int) -> Route:
        """How host:port would be reached (for status pages)."""
        return self._route(host, port)

    def endpoint(self, host: str, port: int) -> IStreamClientEndpoint:
        """An endpoint that reaches host:port the way the policy says (or refuses)."""
        route = self._route(host, port)
        if isinstance(route, Refused):
            raise PolicyRefusedError(f"not connecting to {host}:{port}: {route.reason}")
        if isinstance(route, Socks):
            if route.name == "socks" and not route.proxy.startswith("unix:") and not \
                    _ip_literal(_tcp_address(route.proxy)[0]):  # a plain proxy by name
                proxy_host, proxy_port = _tcp_address(route.proxy)
                proxy = cast(IStreamClientEndpoint, HostnameEndpoint(
                    self._reactor, proxy_host, proxy_port, timeout=self._timeout))
            else:  # Tor's SOCKS port: never a name lookup
                proxy = local_endpoint(self._reactor, route.proxy, self._timeout)
            # The proxy resolves `host` (SOCKS5 with a domain name): never resolved here.
            # Through Tor, each destination gets SOCKS credentials of its own: Tor puts
            # streams with different credentials on different circuits, so no relay can
            # link this node's connections to different servers by their circuit.
            username, password = isolation_credentials(host, port) if route.name == "tor" \
                else (None, None)
            socks = Socks5Endpoint(proxy, host, port, self._reactor, username, password,
                                   self._timeout)
            if self.onion_ready is not None and route.name == "tor" and \
                    host.lower().rstrip(".").endswith(".onion"):
                return cast(IStreamClientEndpoint, _After(self.onion_ready, host, socks))
            return cast(IStreamClientEndpoint, socks)
        if isinstance(route, I2P):
            from txi2p.sam.endpoints import SAMI2PStreamClientEndpoint  # noqa: PLC0415

            # One SAM session for all of this node's outgoing I2P streams (txi2p keeps it
            # by nickname); the node's listening destination, if any, is another session.
            return cast(IStreamClientEndpoint, SAMI2PStreamClientEndpoint.new(
                self.local_service(route.sam), host, nickname="mistgrid-client",
                options=dict(self._i2p_options)))
        if _ip_literal(host):  # no name to resolve; and a refused connection fails at
            # once (HostnameEndpoint reports it only at its next 0.3 s attempt tick)
            kind = TCP6ClientEndpoint if ":" in host else TCP4ClientEndpoint
            return cast(IStreamClientEndpoint, kind(self._reactor, host, port,
                                                    timeout=self._timeout))
        return cast(IStreamClientEndpoint, HostnameEndpoint(
            self._reactor, host.encode("idna") if not host.isascii() else host, port,
            timeout=self._timeout))


@implementer(IStreamClientEndpoint)
class _After:
    """An endpoint that first waits for `ready(host)` (which may fail the connection)."""

    def __init__(self, ready: Callable[[str], defer.Deferred[None]], host: str,
                 inner: Any) -> None:
        self._ready, self._host, self._inner = ready, host, inner

    def connect(self, factory: Factory) -> defer.Deferred[Any]:
        waiting = self._ready(self._host)
        return waiting.addCallback(lambda _: self._inner.connect(factory))


def isolation_credentials(host: str, port: int) -> tuple[bytes, bytes]:
    """SOCKS5 username and password that put streams to host:port on circuits of their
    own (Tor's IsolateSOCKSAuth, on by default). A digest, so Tor never holds the name."""
    digest = hashlib.sha256(f"{host.lower()}:{port}".encode()).hexdigest()[:32]
    return b"mistgrid", digest.encode()


class _Socks5Greeting(Protocol):
    """Sends a SOCKS5 greeting (no authentication) and fires with whether the other end
    answered as a SOCKS5 proxy accepting it."""

    def __init__(self, answered: defer.Deferred[bool]) -> None:
        self._answered = answered
        self._buffer = b""

    def connectionMade(self) -> None:  # noqa: N802 (Twisted names)
        transport: Any = self.transport
        transport.write(b"\x05\x01\x00")

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        self._buffer += data
        if len(self._buffer) >= 2 and not self._answered.called:
            self._answered.callback(self._buffer[:2] == b"\x05\x00")
            transport: Any = self.transport
            transport.loseConnection()

    def connectionLost(self, reason: Any = None) -> None:  # noqa: N802
        if not self._answered.called:
            self._answered.callback(False)


async def first_socks5(reactor: Any, candidates: Sequence[str],
                       timeout: float = 3.0) -> str | None:
    """The first of `candidates` (local proxy descriptions, tried in order) that completes
    a SOCKS5 greeting, or None."""
    for description in candidates:
        answered: defer.Deferred[bool] = defer.Deferred()
        factory = Factory.forProtocol(functools.partial(_Socks5Greeting, answered))
        try:
            endpoint: Any = local_endpoint(reactor, description, timeout)
            await endpoint.connect(factory)
        except Exception:  # refused, unreachable: try the next
            continue
        answered.addTimeout(timeout, reactor, onTimeoutCancel=lambda *_: False)
        if await answered:
            return description
    return None
