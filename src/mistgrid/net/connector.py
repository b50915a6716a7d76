"""The ONLY place mistgrid opens an outgoing connection (see DESIGN.md).

How this works: a `Route` says how to reach a location hint; `Connector.endpoint(host,
port)` asks the node's routing function for the route and turns it into a Twisted client
endpoint. Today the routing function knows one route, direct TCP; the anonymity policy
(Tor, I2P, SOCKS, refusals) plugs in here as another routing function, so every caller,
the storage client first, goes through it already.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import attrs
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.interfaces import IStreamClientEndpoint

from ..errors import MistgridError


@attrs.frozen
class Direct:
    """Plain TCP to the host named in the hint (names resolved by the system)."""


@attrs.frozen
class Refused:
    reason: str


Route = Direct | Refused
RoutingFunction = Callable[[str, int], Route]


class PolicyRefusedError(MistgridError):
    """The routing policy forbids reaching this address."""


def direct_only(host: str, port: int) -> Route:
    return Direct()


class Connector:
    def __init__(self, reactor: Any, route: RoutingFunction = direct_only,
                 timeout: float = 30.0) -> None:
        self._reactor = reactor
        self._route = route
        self._timeout = timeout

    def endpoint(self, host: str, port: int) -> IStreamClientEndpoint:
        """An endpoint that reaches host:port the way the policy says (or refuses)."""
        route = self._route(host, port)
        if isinstance(route, Refused):
            raise PolicyRefusedError(f"not connecting to {host}:{port}: {route.reason}")
        return cast(IStreamClientEndpoint, HostnameEndpoint(
            self._reactor, host.encode("idna") if not host.isascii() else host, port,
            timeout=self._timeout))
