"""What an anonymous node refuses in `[tor] launch.torrc` (pure).

The lines of `launch.torrc` go into the torrc of the tor the node launches (bridges, a
private network's authorities, tuning). A few torrc options would undo what `[node]
anonymous = true` promises: a relay or bridge publishes this machine's IP address in Tor's
directory (and an onion service on a relay can be found by its uptime); single-hop onion
services are not hidden at all; a client port on a non-loopback address lets anyone on
the network use the node's tor. `revealing()` names each such line, why, and the fix.
"""

from __future__ import annotations

import re

# option (lower case) -> what it does when on
_PUBLISHING = {
    "orport": "makes the node's tor a public relay, publishing this machine's IP address",
    "dirport": "makes the node's tor a directory relay, publishing this machine's IP "
               "address",
    "bridgerelay": "makes the node's tor a bridge, telling Tor's bridge authority this "
                   "machine's IP address",
    "servertransportplugin": "makes the node's tor a pluggable-transport bridge, "
                             "listening for the world",
    "hiddenservicesinglehopmode": "makes the node's onion services single-hop: their "
                                  "location is no longer hidden",
    "hiddenservicenonanonymousmode": "makes the node's onion services single-hop: their "
                                     "location is no longer hidden",
}
_CLIENT_PORTS = {"socksport", "controlport", "dnsport", "transport", "natdport",
                 "httptunnelport", "metricsport", "extorport"}
_OFF = {"0", "false"}
_LOOPBACK = re.compile(r"(127\.\d{1,3}\.\d{1,3}\.\d{1,3}|localhost|\[::1\]):(\d+|auto)",
                       re.IGNORECASE)


def _listens_beyond_loopback(value: str) -> bool:
    """A client port's address (first word): a bare port, `auto`, `0` or a Unix socket
    stays on loopback (tor's default for these); HOST:PORT must name a loopback host."""
    first = value.split(maxsplit=1)[0] if value.split() else ""
    if first.lower() in {"0", "auto"} or first.isdigit() or first.startswith("unix:"):
        return False
    return _LOOPBACK.fullmatch(first) is None


def revealing(text: str) -> list[tuple[str, str]]:
    """(line, why) for each line of torrc `text` an anonymous node must not run with."""
    found = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition(" ")
        key, value = key.lower().lstrip("+/"), value.strip()
        if key in _PUBLISHING and value.split()[:1] != ["0"] \
                and value.lower() not in _OFF:
            found.append((line, _PUBLISHING[key]))
        elif key in _CLIENT_PORTS and _listens_beyond_loopback(value):
            found.append((line, f"listens on {value.split()[0]}, where others on the "
                                "network can use the node's tor"))
    return found
