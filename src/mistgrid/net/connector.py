"""The ONLY place mistgrid opens an outgoing connection (see DESIGN.md).

How this works: a `Route` says how to reach a location hint; `Connector.endpoint(host,
port)` asks the node's routing function for the route and turns it into a Twisted client
endpoint: direct TCP, a SOCKS5 proxy (Tor's, or tcp.socks-proxy) that resolves the name
itself, an I2P stream through the router's SAM API (txi2p), or a refusal. The routing
function is `policy.anonymity.route` bound to the node's policy (`direct_only` in tests
that need nothing else).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, cast

from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.interfaces import IStreamClientEndpoint

from ..errors import MistgridError
from ..policy.anonymity import I2P, Direct, Refused, Route, Socks

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
        raise PolicyRefusedError(f"cannot use proxy {description!r}: write tcp:HOST:PORT")
    return host.strip("[]"), int(port)


class Connector:
    def __init__(self, reactor: Any, route: RoutingFunction = direct_only,
                 timeout: float = 30.0, i2p_options: Mapping[str, str] | None = None) -> None:
        self._reactor = reactor
        self._route = route
        self._timeout = timeout
        self._i2p_options = dict(i2p_options or {})

    def local_service(self, description: str) -> IStreamClientEndpoint:
        """An endpoint for a daemon the node is configured to use (Tor's control port, an
        I2P SAM API): a Twisted client endpoint description from tahoe.cfg, such as
        tcp:127.0.0.1:9051 or unix:/run/tor/control."""
        from twisted.internet.endpoints import clientFromString  # noqa: PLC0415

        return cast(IStreamClientEndpoint, clientFromString(self._reactor, description))

    def route(self, host: str, port: int) -> Route:
        """How host:port would be reached (for status pages)."""
        return self._route(host, port)

    def endpoint(self, host: str, port: int) -> IStreamClientEndpoint:
        """An endpoint that reaches host:port the way the policy says (or refuses)."""
        route = self._route(host, port)
        if isinstance(route, Refused):
            raise PolicyRefusedError(f"not connecting to {host}:{port}: {route.reason}")
        if isinstance(route, Socks):
            from txtorcon import TorClientEndpoint  # noqa: PLC0415 (only with a proxy)

            proxy_host, proxy_port = _tcp_address(route.proxy)
            proxy = HostnameEndpoint(self._reactor, proxy_host, proxy_port,
                                     timeout=self._timeout)
            # The proxy resolves `host` (SOCKS5 with a domain name): never resolved here.
            return cast(IStreamClientEndpoint, TorClientEndpoint(
                host, port, socks_endpoint=proxy, reactor=self._reactor))
        if isinstance(route, I2P):
            from txi2p.sam.endpoints import SAMI2PStreamClientEndpoint  # noqa: PLC0415

            # One SAM session for all of this node's outgoing I2P streams (txi2p keeps it
            # by nickname); the node's listening destination, if any, is another session.
            return cast(IStreamClientEndpoint, SAMI2PStreamClientEndpoint.new(
                self.local_service(route.sam), host, nickname="mistgrid-client",
                options=dict(self._i2p_options)))
        return cast(IStreamClientEndpoint, HostnameEndpoint(
            self._reactor, host.encode("idna") if not host.isascii() else host, port,
            timeout=self._timeout))
