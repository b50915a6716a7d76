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
    """Foolscap hint handler: `tcp:HOST:PORT`, `tor:NAME.onion:PORT` and `i2p:NAME.i2p`
    -> the connector's endpoint for it (so an anonymous node reaches even tcp: hints only
    through Tor)."""

    def __init__(self, connector: Connector) -> None:
        self._connector = connector

    def hint_to_endpoint(self, hint: str, reactor: Any, update_status: Any) -> Any:
        try:
            parsed = parse_hint(hint)
        except InvalidValueError as err:
            raise InvalidHintError(f"unparseable hint {hint!r}") from err
        if parsed.kind == "i2p":  # i2p:NAME.i2p[:PORT]: a stream through the SAM API
            port = parsed.port or 0
        elif parsed.kind in ("tcp", "tor") and parsed.port is not None:
            port = parsed.port
        else:
            raise InvalidHintError(f"no route for hint type {parsed.kind}")
        try:
            return self._connector.endpoint(parsed.host, port), parsed.host
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
    tub.addConnectionHintHandler("i2p", hints)  # i2p:NAME.i2p: through the SAM API
    tub.setOption("logLocalFailures", False)
    tub.setOption("logRemoteFailures", False)
    tub.startService()
    return tub
