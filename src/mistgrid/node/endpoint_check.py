"""Every endpoint description in tahoe.cfg, parsed by Twisted's own grammar before the
node starts, so a bad one stops the node with one line instead of a ValueError later.

How this works: server descriptions (`web.port`, each item of `tub.port`) go through
Twisted's `serverFromString`, descriptions of local daemons (`tor.socks-proxy`,
`i2p.sam-api`, `[tor] socks.port`, `control.port`, `[i2p] sam.port`) through the
connector's `local_endpoint` (Twisted's grammar for unix:, and an IP address, never a name,
for tcp:), both with a reactor that refuses to be used: parsing builds an endpoint object
and nothing more, so nothing listens, connects or resolves. Kinds that
are not Twisted endpoints here (tub.port's `listen:tor`, `listen:i2p`; onion and I2P
services, which the node starts itself) are left to the checks that know them.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import endpoints

from ..config.check import ConfigValues
from ..config.keys import Problem
from ..net.connector import local_endpoint

CHECKED_KINDS = ("tcp", "tcp6", "ssl", "unix")
SERVER_KEYS = (("node", "web.port"), ("node", "tub.port"))
CLIENT_KEYS = (("connections", "tor.socks-proxy"), ("connections", "i2p.sam-api"),
               ("tor", "socks.port"), ("tor", "control.port"), ("i2p", "sam.port"))


class _NoReactor:
    """Stands in for the reactor while an endpoint is only built."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError("an endpoint being checked tried to use the reactor")


def _descriptions(cfg: ConfigValues, section: str, key: str) -> list[str]:
    value = cfg.get(section, key)
    if not isinstance(value, str) or value in ("", "disabled"):
        return []
    items = [v.strip() for v in value.split(",")] if key == "tub.port" else [value.strip()]
    # tub.port takes a bare port number as tcp:PORT (as Tahoe does); web.port does not.
    return [f"tcp:{v}" if key == "tub.port" and v.isdigit() else v for v in items if v]


def endpoint_problems(cfg: ConfigValues) -> list[Problem]:
    problems = []
    checks: list[tuple[tuple[str, str], Any]] = \
        [(k, endpoints.serverFromString) for k in SERVER_KEYS] + \
        [(k, local_endpoint) for k in CLIENT_KEYS]
    for (section, key), parse in checks:
        for description in _descriptions(cfg, section, key):
            kind = description.partition(":")[0].lower()
            if ":" in description and kind not in CHECKED_KINDS:
                continue
            try:
                parse(_NoReactor(), description)
            except Exception as err:  # Twisted's grammar says no, in its own words
                example = "tcp:3456:interface=127.0.0.1" if (section, key) in SERVER_KEYS \
                    else "tcp:127.0.0.1:9050 or unix:/run/tor/socks"
                problems.append(Problem(f"[{section}] {key}", description,
                                        f"not an endpoint description ({err})",
                                        f"write e.g. {example}"))
    return problems
