"""The anonymity guarantee proven over a whole life, not sampled: an onion-only
introducer, an onion-only anonymous storage node and an anonymous client run under
`strace -f` from their first instruction (start, introduction, 5 MiB stored and read,
restart, stop) inside a network namespace that has only a loopback interface, with the
private Tor network in it too (tests/network/whole_life.py). Every connect, sendto and
sendmsg of every node goes to Tor's SOCKS or control port on 127.0.0.1; no node opens a
unix socket to a resolver (nscd, systemd-resolved) or reads the resolver's files."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mistgrid.testing.straceproof import (
    STRACE_ARGS,
    connections_to,
    findings,
    split_daemons,
)

from ..conftest import REPO, processes_mentioning


def _require(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.skip(f"the whole-life proof needs {', '.join(missing)} (scripts/test "
                    "installs them)")


def test_the_proof_sees_a_direct_connection_and_a_lookup(tmp_path: Path) -> None:
    """The analysis is shown to fail: a process that connects straight to a loopback port
    other than Tor's, and reads /etc/hosts, is caught twice; its connection to the allowed
    port is not."""
    _require("strace")
    with socket.socket() as allowed, socket.socket() as other:
        for listener in (allowed, other):
            listener.bind(("127.0.0.1", 0))
            listener.listen()
        ports = [s.getsockname()[1] for s in (allowed, other)]
        log = tmp_path / "trace"
        code = ("import socket\n"
                f"for port in {ports!r}:\n"
                "    socket.create_connection(('127.0.0.1', port)).close()\n"
                "open('/etc/hosts').close()\n")
        subprocess.run(["strace", *STRACE_ARGS, "-o", str(log), sys.executable, "-c", code],
                       check=True, timeout=60)
    lines = log.read_text().splitlines()
    found = findings(lines, {ports[0]})
    assert len(found) == 2, found
    assert f"IPv4 127.0.0.1:{ports[1]}" in found[0] and "/etc/hosts" in found[1]
    assert connections_to(lines, ports[0]) == 1


def test_a_launched_daemons_calls_are_told_apart() -> None:
    """split_daemons: the node's lines, and each launched daemon's from its execve on
    (its threads too); a failed execve of the name does not count."""
    tor_relay = 'connect(5, {sa_family=AF_INET, sin_port=htons(5000), ' \
        'sin_addr=inet_addr("127.0.0.1")}, 16) = 0'
    log = [
        '100 clone3({flags=CLONE_VM}, 88) = 101',
        '101 connect(7, {sa_family=AF_INET, sin_port=htons(9050), '
        'sin_addr=inet_addr("127.0.0.1")}, 16) = 0',
        '100 clone(child_stack=NULL, flags=SIGCHLD) = 200',
        '200 execve("/usr/local/bin/tor", ["tor"], 0x1 /* 3 vars */) = -1 ENOENT',
        '200 execve("/tmp/pinned-tor", ["pinned-tor"], 0x1 /* 3 vars */) = 0',
        '200 execve("/usr/sbin/tor", ["tor"], 0x1 /* 3 vars */) = 0',
        f'200 {tor_relay}',
        '200 clone3({flags=CLONE_VM} <unfinished ...>',
        '200 <... clone3 resumed> => {parent_tid=[201]}, 88) = 201',
        f'201 {tor_relay}',
    ]
    own, daemons = split_daemons(log, {"tor", "i2pd"})
    assert own == log[:5] and list(daemons) == [200]
    assert daemons[200] == log[5:]
    assert findings(own, {9050}) == []
    assert len(findings(daemons[200], {9050})) == 2
    assert findings(daemons[200], set(), {("127.0.0.1", 5000)}) == []


def test_a_daemons_address_probe_is_told_from_a_connection() -> None:
    """A launched tor asks the kernel for its interfaces (netlink) and its address (a
    datagram socket connected to 18.0.0.1:9, which sends nothing): allowed for a daemon,
    not for the node; a stream connection to the same address is caught either way."""
    probe = [
        '300 socket(AF_INET, SOCK_DGRAM|SOCK_CLOEXEC, IPPROTO_IP) = 13',
        '300 connect(13, {sa_family=AF_INET, sin_port=htons(9), '
        'sin_addr=inet_addr("18.0.0.1")}, 16) = 0',
        '300 sendto(14, ..., 20, 0, {sa_family=AF_NETLINK, nl_pid=0, '
        'nl_groups=00000000}, 12) = 20',
    ]
    assert findings(probe, set(), daemon=True) == []
    assert len(findings(probe, set())) == 2
    stream = ['300 socket(AF_INET, SOCK_STREAM|SOCK_CLOEXEC, IPPROTO_TCP) = 13', probe[1]]
    assert len(findings(stream, set(), daemon=True)) == 1
    # a socket() cut in two by another thread's call (seen in a launched tor's trace),
    # after the same descriptor number was a netlink socket
    cut = ['300 socket(AF_NETLINK, SOCK_RAW|SOCK_CLOEXEC, NETLINK_ROUTE) = 13',
           '300 socket(AF_INET, SOCK_DGRAM|SOCK_CLOEXEC, IPPROTO_UDP <unfinished ...>',
           '283 sendto(9, ""..., 32, 0, NULL, 0 <unfinished ...>',
           '300 <... socket resumed>)             = 13',
           '283 <... sendto resumed>)             = 32', probe[1]]
    assert findings(cut, set(), daemon=True) == []
    cut_stream = [line.replace("SOCK_DGRAM", "SOCK_STREAM") for line in cut]
    assert len(findings(cut_stream, set(), daemon=True)) == 1


LIVES = ("tor", "tor-launch", "i2p-grid")


def _tools(network: str) -> tuple[str, ...]:
    return ("strace", "unshare",
            *(("tor", "tor-gencert") if network.startswith("tor") else ("i2pd", "cc")))


@pytest.fixture(scope="module")
def lives(tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[dict[str, tuple[subprocess.Popen[bytes], Path]]]:
    """Every life starts at once, each in a network namespace of its own with its own
    private network (so no port or process is shared): they spend most of their time
    waiting on Tor and I2P, so side by side the three take little longer than the
    longest. Each test below waits for its own and checks it. Killed if still running."""
    started: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}
    try:
        for network in LIVES:
            if any(shutil.which(t) is None for t in _tools(network)):
                continue  # its test skips (or fails under CI) saying what is missing
            out = tmp_path_factory.mktemp(f"life-{network}") / "life"
            out.mkdir()
            with (out.parent / "helper.log").open("wb") as log:  # a file: no pipe fills
                started[network] = (subprocess.Popen(
                    ["unshare", "-n", sys.executable, "-m", "tests.network.whole_life",
                     str(out), network], cwd=REPO, stdout=log, stderr=subprocess.STDOUT),
                    out)
        yield started
    finally:
        for helper, out in started.values():
            if helper.poll() is None:
                helper.kill()
            helper.wait()
            # A killed helper cannot stop its nodes (each in a session of its own) nor
            # reap strace, and one that failed half-way may have left some (seen: a node
            # that outlived `mistgrid stop`): stop every process started under its
            # directory.
            for pid, _ in processes_mentioning(out):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


@pytest.mark.slow
@pytest.mark.parametrize("network, expected", [
    ("tor", {"introducer": 2, "storage": 2, "client": 2}),
    ("tor-launch", {"introducer": 2, "storage": 2, "client": 2}),
    ("i2p-grid", {"introducer": 1, "storage": 1, "client": 2}),
])
def test_whole_life_of_an_anonymous_grid_under_strace(
        lives: dict[str, tuple[subprocess.Popen[bytes], Path]], network: str,
        expected: dict[str, int]) -> None:
    """`tor`: every node uses the private network's running tor. `tor-launch`: the
    storage node launches its own tor, the client one that reaches the network only
    through a bridge; the node's own calls go to its tor's SOCKS and control ports alone,
    and its tor's to the network's relays (the bridged one's to the bridge alone).
    `i2p-grid`: introducer, storage node and client on I2P alone, each through its
    router's SAM port."""
    _require(*_tools(network))
    helper, out = lives[network]
    try:
        returncode = helper.wait(timeout=1500)
    except subprocess.TimeoutExpired:
        helper.kill()
        raise
    report = (out.parent / "helper.log").read_bytes().decode(errors="replace")[-20000:]
    assert returncode == 0, report
    result = json.loads((out / "result.json").read_text())
    assert {node: len(logs) for node, logs in result["logs"].items()} == expected
    for check in result["checks"]:
        lines = Path(check["log"]).read_text().splitlines()
        own, daemons = split_daemons(lines, {"tor", "i2pd"})
        assert len(daemons) == check["daemons"], (check["log"], list(daemons))
        ports = set(check["ports"])
        assert findings(own, ports) == [], check["log"]
        assert sum(connections_to(own, port) for port in ports) > 0, \
            (check["log"], "the proof saw no connection at all")
        peers = {(address, port) for address, port in check["peers"]}
        for pid, calls in daemons.items():
            assert findings(calls, set(), peers, daemon=True) == [], (check["log"], pid)
            assert any(connections_to(calls, port) for _a, port in peers), \
                (check["log"], pid, "the daemon reached none of its peers")
