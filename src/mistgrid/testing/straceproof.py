"""Reads `strace -f` logs of a node's whole life and lists everything in them that could
reveal the node: a connection or datagram to anywhere but the allowed local ports, a unix
socket connection (nscd, systemd-resolved's socket: name lookups), a read of the resolver's
files. Pure (text in, findings out) so that it is tested on its own.

The node is traced with `trace=connect,sendto,sendmsg,sendmmsg,open,openat` (see
`STRACE_ARGS`; execve and the clone family too, so that `split_daemons()` can tell the
node's own calls from those of a Tor or I2P router it launched, whose connections to
the anonymity network are judged by their own rule); strace prints addresses as, e.g.,
    connect(7, {sa_family=AF_INET, sin_port=htons(9050), sin_addr=inet_addr("127.0.0.1")}, 16)
    connect(8, {sa_family=AF_UNIX, sun_path="/var/run/nscd/socket"}, 110)
    sendto(9, "...", 30, 0, {sa_family=AF_INET6, sin6_port=htons(53), ...}, 28)
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable

STRACE_ARGS = ("-f", "-qq", "-s", "0", "-e", "signal=none",
               "-e", "trace=connect,sendto,sendmsg,sendmmsg,open,openat,execve,clone,clone3,"
               "fork,vfork,socket")
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


# Tor asks the kernel which local address it would use by connecting a UDP socket to one of
# these and reading its name: connect() on a datagram socket sends nothing.
ADDRESS_PROBES = {("18.0.0.1", 9), ("2002::", 9)}
_SOCKET = re.compile(r"^(?:\[pid\s+)?(\d+)?\]?\s*socket\((AF_[A-Z0-9]+), (SOCK_[A-Z]+)[^)]*\)"
                     r"\s+=\s+(\d+)")
# the same call cut in two by another thread's (strace -f): its start, then its end
_SOCKET_START = re.compile(r"^(?:\[pid\s+)?(\d+)?\]?\s*socket\((AF_[A-Z0-9]+), (SOCK_[A-Z]+)"
                           r"[^)]*<unfinished \.\.\.>$")
_SOCKET_END = re.compile(r"^(?:\[pid\s+)?(\d+)?\]?\s*<\.\.\. socket resumed>[^=]*=\s+(\d+)")
_FD = re.compile(r"^(\d+),")


def findings(lines: Iterable[str], allowed_ports: Collection[int],
             allowed_peers: Collection[tuple[str, int]] = (), daemon: bool = False
             ) -> list[str]:
    """Every traced call that reaches beyond 127.0.0.1:`allowed_ports` (and the
    `allowed_peers`, (IPv4 address, port) pairs), or looks a name up, as the log line that
    shows it. `daemon`: the calls of a Tor or I2P router, which may also ask the kernel
    (AF_NETLINK) for its interfaces and routes and connect a datagram socket to an
    ADDRESS_PROBES address (nothing is sent)."""
    found = []
    datagram: set[tuple[str, str]] = set()  # (pid, fd) of datagram sockets
    making: dict[str, str] = {}  # pid: the kind of socket its unfinished socket() makes
    for line in lines:
        made = _socket_made(line.strip(), making)
        if made is not None:
            pid, kind, fd = made
            if kind == "SOCK_DGRAM":
                datagram.add((pid, fd))
            elif kind:
                datagram.discard((pid, fd))
            continue
        match = _CALL.match(line.strip())
        if match is None:
            continue
        call, rest = match.groups()
        if daemon and _probe(line.strip(), call, rest, datagram):
            continue
        if call in ("open", "openat"):
            path = _PATH.match(rest)
            if path and path.group(1).startswith(RESOLVER_FILES):
                found.append(f"reads a resolver file: {line.strip()}")
            continue
        for port, address in _INET.findall(rest):
            if (address, int(port)) in allowed_peers:
                continue
            if address != "127.0.0.1" or int(port) not in allowed_ports:
                found.append(f"IPv4 {address}:{port}: {line.strip()}")
        for port, address in _INET6.findall(rest):
            found.append(f"IPv6 [{address}]:{port}: {line.strip()}")
        for path in _UNIX.findall(rest):
            found.append(f"unix socket {path}: {line.strip()}")
        for family in _FAMILY.findall(rest):
            if family not in ("AF_INET", "AF_INET6", "AF_UNIX", "AF_UNSPEC") and not (
                    daemon and family == "AF_NETLINK"):
                found.append(f"{family}: {line.strip()}")
    return found


def _socket_made(line: str, making: dict[str, str]) -> tuple[str, str, str] | None:
    """For a line of a socket() call: (pid, kind, fd), with kind and fd "" until the
    call has returned (its kind is kept in `making` meanwhile); None for other lines."""
    made = _SOCKET.match(line)
    if made:
        return made.group(1) or "", made.group(3), made.group(4)
    start = _SOCKET_START.match(line)
    if start:
        making[start.group(1) or ""] = start.group(3)
        return start.group(1) or "", "", ""
    end = _SOCKET_END.match(line)
    if end:
        pid = end.group(1) or ""
        return pid, making.pop(pid, "SOCK_UNKNOWN"), end.group(2)
    return None


def _probe(line: str, call: str, rest: str, datagram: set[tuple[str, str]]) -> bool:
    """A daemon's connect of a datagram socket to an ADDRESS_PROBES address."""
    fd = _FD.match(rest)
    if call != "connect" or fd is None:
        return False
    numbered = _LINE_PID.match(line)
    pid = numbered.group(1) if numbered else ""
    if (pid, fd.group(1)) not in datagram:
        return False
    peers = [(address, int(port)) for port, address in _INET.findall(rest)]
    peers += [(address, int(port)) for port, address in _INET6.findall(rest)]
    return bool(peers) and all(peer in ADDRESS_PROBES for peer in peers)


def connections_to(lines: Iterable[str], port: int) -> int:
    """How many connects to 127.0.0.1:`port` the log shows (the proof saw real traffic)."""
    return sum(1 for line in lines if line.lstrip("[]pid 0123456789").startswith("connect(")
               and f"htons({port}), sin_addr=inet_addr(\"127.0.0.1\")" in line)


_LINE_PID = re.compile(r"^(?:\[pid\s+)?(\d+)\]?\s+(.*)$")
_EXECVE = re.compile(r'^execve\("([^"]*)"')
_CHILD = re.compile(r"^(?:<\.\.\. )?(?:clone3?|fork|vfork)\b.*\)\s+=\s+(\d+)(?:\s|$)")


def split_daemons(lines: Iterable[str], daemons: Collection[str]
                  ) -> tuple[list[str], dict[int, list[str]]]:
    """Split an `strace -f` log into the traced program's own lines and, per daemon
    process, the lines of each process that executed one of `daemons` (file names such as
    "tor", "i2pd"; counted from that execve on, threads and children included)."""
    own: list[str] = []
    daemon_of: dict[int, int] = {}  # pid or thread id -> the daemon's first pid
    theirs: dict[int, list[str]] = {}
    for line in lines:
        match = _LINE_PID.match(line.strip())
        if match is None:
            own.append(line)
            continue
        pid, call = int(match.group(1)), match.group(2)
        executed = _EXECVE.match(call)
        if executed and executed.group(1).rsplit("/", 1)[-1] in daemons and \
                "= -1" not in call:
            daemon_of[pid] = pid
        if pid in daemon_of:
            theirs.setdefault(daemon_of[pid], []).append(line)
            child = _CHILD.match(call)
            if child:
                daemon_of[int(child.group(1))] = daemon_of[pid]
        else:
            own.append(line)
    return own, theirs
