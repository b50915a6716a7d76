"""A Foolscap Tub whose every outgoing connection goes through the project's connector.

How this works: the Tub's identity is the node's `private/node.pem` (so its tub ID is the
one our announcements already name). All of Foolscap's own connection hint handlers are
removed and one is installed per hint type we route: it parses the hint and asks
`Connector.endpoint`, so the routing policy decides every introducer connection exactly as
it decides storage connections. A hint the policy refuses fails that connection attempt.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from foolscap.api import IConnectionHintHandler, Tub
from foolscap.connections.tcp import InvalidHintError
from zope.interface import implementer

from ..config.location import parse_hint
from ..config.values import InvalidValueError
from ..net.connector import Connector, PolicyRefusedError


@implementer(IConnectionHintHandler)
class ConnectorHints:
    """Foolscap hint handler: `tcp:HOST:PORT` and `tor:NAME.onion:PORT` -> the connector's
    endpoint for it (so an anonymous node reaches even tcp: hints only through Tor)."""

    def __init__(self, connector: Connector) -> None:
        self._connector = connector

    def hint_to_endpoint(self, hint: str, reactor: Any, update_status: Any) -> Any:
        try:
            parsed = parse_hint(hint)
        except InvalidValueError as err:
            raise InvalidHintError(f"unparseable hint {hint!r}") from err
        if parsed.kind not in ("tcp", "tor") or parsed.port is None:
            raise InvalidHintError(f"no route for hint type {parsed.kind}")
        try:
            return self._connector.endpoint(parsed.host, parsed.port), parsed.host
        except PolicyRefusedError as err:
            error = InvalidHintError(str(err))
            error.foolscap_connection_handler_error = str(err)
            raise error from err

    def describe(self) -> str:
        return "connector"


def make_tub(pem: Path, connector: Connector) -> Any:
    """A started Tub with the node's identity and only our connection handler."""
    tub = Tub(certData=pem.read_bytes().decode("ascii"))
    tub.removeAllConnectionHintHandlers()
    hints = ConnectorHints(connector)
    tub.addConnectionHintHandler("tcp", hints)
    tub.addConnectionHintHandler("tor", hints)  # tor:NAME.onion:PORT: the policy routes it
    tub.setOption("logLocalFailures", False)
    tub.setOption("logRemoteFailures", False)
    tub.startService()
    return tub
