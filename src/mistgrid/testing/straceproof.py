"""Reads `strace -f` logs of a node's whole life and lists everything in them that could
reveal the node: a connection or datagram to anywhere but the allowed local ports, a unix
socket connection (nscd, systemd-resolved's socket: name lookups), a read of the resolver's
files. Pure (text in, findings out) so that it is tested on its own.

The node is traced with `trace=connect,sendto,sendmsg,sendmmsg,open,openat` (see
`STRACE_ARGS`); strace prints addresses as, e.g.,
    connect(7, {sa_family=AF_INET, sin_port=htons(9050), sin_addr=inet_addr("127.0.0.1")}, 16)
    connect(8, {sa_family=AF_UNIX, sun_path="/var/run/nscd/socket"}, 110)
    sendto(9, "...", 30, 0, {sa_family=AF_INET6, sin6_port=htons(53), ...}, 28)
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable

STRACE_ARGS = ("-f", "-qq", "-s", "0", "-e", "signal=none",
               "-e", "trace=connect,sendto,sendmsg,sendmmsg,open,openat")
RESOLVER_FILES = ("/etc/resolv.conf", "/etc/hosts", "/etc/nsswitch.conf", "/etc/gai.conf",
                  "/etc/host.conf", "/var/run/nscd", "/run/nscd", "/run/systemd/resolve")
_CALL = re.compile(r"^(?:\[pid\s+\d+\]\s+|\d+\s+)?(connect|sendto|sendmsg|sendmmsg|open|openat)"
                   r"\((.*)$")
_INET = re.compile(r"sa_family=AF_INET, sin_port=htons\((\d+)\), "
                   r"sin_addr=inet_addr\(\"([0-9.]+)\"\)")
_INET6 = re.compile(r"sa_family=AF_INET6, sin6_port=htons\((\d+)\)[^}]*?"
                    r"inet_pton\(AF_INET6, \"([0-9a-fA-F:.]+)\"")
_UNIX = re.compile(r"sa_family=AF_UNIX, sun_path=(@?\"[^\"]*\")")
_FAMILY = re.compile(r"sa_family=(AF_[A-Z0-9]+)")
_PATH = re.compile(r"^(?:AT_FDCWD, )?\"([^\"]*)\"")


def findings(lines: Iterable[str], allowed_ports: Collection[int]) -> list[str]:
    """Every traced call that reaches beyond 127.0.0.1:`allowed_ports`, or looks a name
    up, as the log line that shows it."""
    found = []
    for line in lines:
        match = _CALL.match(line.strip())
        if match is None:
            continue
        call, rest = match.groups()
        if call in ("open", "openat"):
            path = _PATH.match(rest)
            if path and path.group(1).startswith(RESOLVER_FILES):
                found.append(f"reads a resolver file: {line.strip()}")
            continue
        for port, address in _INET.findall(rest):
            if address != "127.0.0.1" or int(port) not in allowed_ports:
                found.append(f"IPv4 {address}:{port}: {line.strip()}")
        for port, address in _INET6.findall(rest):
            found.append(f"IPv6 [{address}]:{port}: {line.strip()}")
        for path in _UNIX.findall(rest):
            found.append(f"unix socket {path}: {line.strip()}")
        for family in _FAMILY.findall(rest):
            if family not in ("AF_INET", "AF_INET6", "AF_UNIX", "AF_UNSPEC"):
                found.append(f"{family}: {line.strip()}")
    return found


def connections_to(lines: Iterable[str], port: int) -> int:
    """How many connects to 127.0.0.1:`port` the log shows (the proof saw real traffic)."""
    return sum(1 for line in lines if line.lstrip("[]pid 0123456789").startswith("connect(")
               and f"htons({port}), sin_addr=inet_addr(\"127.0.0.1\")" in line)
