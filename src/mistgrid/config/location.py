"""tub.location: connection hints, in Tahoe-LAFS's and the seed document's forms.

    AUTO                                     the node's own addresses (reveals them)
    tcp:HOST:PORT                            TCP (Tahoe 1.20)
    HOST:PORT                                legacy TCP form (torsocks era)
    tor:NAME.onion:PORT                      an onion hint (Tahoe 1.20)
    onion:PORT:hiddenServiceDir=DIR          an onion service the node runs (seed)
    i2p:NAME.i2p[:PORT]                      an I2P hint (Tahoe 1.20)
    i2p:KEYFILE                              an I2P destination the node runs (seed)
    disabled                                 (alone) the node is not reachable

How this works: `parse_hints` returns typed hints; `location_hints` is the tahoe.cfg
parser. Which hints reveal the node is the anonymity policy's business, not this module's.
"""

from __future__ import annotations

import re

import attrs

from .values import InvalidValueError


@attrs.frozen
class Hint:
    kind: str  # "auto" | "tcp" | "tor" | "onion-service" | "i2p" | "i2p-destination"
    host: str = ""
    port: int | None = None
    path: str = ""

    @property
    def reveals_address(self) -> bool:
        return self.kind in ("auto", "tcp")


def _port(text: str, hint: str) -> int:
    # Port 0 is allowed: the torsocks-era `client.fakelocation:0` marks a node that
    # cannot be reached, on purpose (seed document).
    if not re.fullmatch(r"[0-9]{1,5}", text) or not 0 <= int(text) < 65536:
        raise InvalidValueError(f"{hint!r} has no valid port", "use a port from 1 to 65535")
    return int(text)


def parse_hint(hint: str) -> Hint:
    if hint == "AUTO":
        return Hint("auto")
    kind, _, rest = hint.partition(":")
    kind = kind.lower() if kind.lower() in ("tcp", "tor", "onion", "i2p") else kind
    if kind == "tcp":
        host, _, port = rest.rpartition(":")
        if not host:
            raise InvalidValueError(f"{hint!r} needs a host and a port", "write tcp:HOST:PORT")
        return Hint("tcp", host.strip("[]"), _port(port, hint))
    if kind == "tor":
        host, _, port = rest.rpartition(":")
        if not host.endswith(".onion"):
            raise InvalidValueError(f"{hint!r} is not an onion address",
                                    "write tor:NAME.onion:PORT")
        return Hint("tor", host, _port(port, hint))
    if kind == "onion":
        port, _, options = rest.partition(":")
        match = re.fullmatch(r"hiddenServiceDir=(.+)", options)
        if match is None:
            raise InvalidValueError(f"{hint!r} names no hidden service directory",
                          "write onion:PORT:hiddenServiceDir=DIR")
        return Hint("onion-service", "", _port(port, hint), match.group(1))
    if kind == "i2p":
        if not rest:
            raise InvalidValueError(f"{hint!r} is empty", "write i2p:NAME.i2p or i2p:KEYFILE")
        host, _, port = rest.partition(":")
        if host.endswith(".i2p"):
            return Hint("i2p", host, _port(port, hint) if port else None)
        return Hint("i2p-destination", "", None, rest)
    host, _, port = hint.rpartition(":")  # legacy HOST:PORT (an onion name means Tor)
    if host and re.fullmatch(r"[0-9]+", port):
        return Hint("tor" if host.endswith(".onion") else "tcp", host.strip("[]"),
                    _port(port, hint))
    raise InvalidValueError(f"{hint!r} is not a connection hint",
                  "use tcp:HOST:PORT, tor:NAME.onion:PORT, onion:PORT:hiddenServiceDir=DIR, "
                  "i2p:NAME.i2p, i2p:KEYFILE or AUTO")


def location_hints(value: str) -> tuple[Hint, ...] | None:
    """The tahoe.cfg parser: None for "disabled", else the hints (maybe none)."""
    stripped = value.strip().strip('"')
    if stripped == "disabled":
        return None
    return tuple(parse_hint(h.strip()) for h in stripped.split(",") if h.strip())
