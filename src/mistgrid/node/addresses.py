"""`AUTO` in tub.location: the node's own IPv4 addresses, announced with its listening port.

How this works: `detect_ipv4_addresses` asks the kernel for the address of every network
interface (an ioctl on an unconnected UDP socket: nothing is sent and no name is resolved);
`auto_addresses` keeps those a listener on `interface` can be reached at (all of them for
0.0.0.0, else the interface itself) with loopback last, as Tahoe-LAFS does (127.0.0.1 and
private addresses included); `expand_auto` puts them in place of each AUTO hint. Anonymous
nodes never get here: the anonymity policy refuses AUTO for them.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
import sys
from collections.abc import Iterable

from ..config.location import Hint

_SIOCGIFADDR = 0x8915  # Linux: the IPv4 address of an interface
ANY = ("", "0.0.0.0")


def detect_ipv4_addresses() -> list[str]:
    """The IPv4 address of each network interface that has one (Linux; elsewhere only
    127.0.0.1)."""
    if not sys.platform.startswith("linux"):
        return ["127.0.0.1"]
    import fcntl  # noqa: PLC0415 (POSIX only)

    found = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        for _index, name in socket.if_nameindex():
            request = struct.pack("256s", name.encode()[:15])
            try:
                answer = fcntl.ioctl(probe.fileno(), _SIOCGIFADDR, request)
            except OSError:  # an interface with no IPv4 address (or gone meanwhile)
                continue
            found.append(socket.inet_ntoa(answer[20:24]))
    return found or ["127.0.0.1"]


def auto_addresses(detected: Iterable[str], interface: str) -> list[str]:
    """The addresses AUTO stands for, for a listener bound to `interface`: routable ones
    first, loopback last, each once."""
    if interface not in ANY:
        return [interface]
    unique = list(dict.fromkeys(detected))
    return sorted(unique, key=lambda a: ipaddress.ip_address(a).is_loopback)


def expand_auto(hints: Iterable[Hint], addresses: Iterable[str], port: int) -> tuple[Hint, ...]:
    """`hints` with each AUTO replaced by a tcp: hint per address (none repeated)."""
    expanded: list[Hint] = []
    for hint in hints:
        more = [Hint("tcp", a, port) for a in addresses] if hint.kind == "auto" else [hint]
        for each in more:
            if each not in expanded:
                expanded.append(each)
    return tuple(expanded)
