"""The anonymity guarantee proven over a whole life, not sampled: an onion-only
introducer, an onion-only anonymous storage node and an anonymous client run under
`strace -f` from their first instruction (start, introduction, 5 MiB stored and read,
restart, stop) inside a network namespace that has only a loopback interface, with the
private Tor network in it too (tests/network/whole_life.py). Every connect, sendto and
sendmsg of every node goes to Tor's SOCKS or control port on 127.0.0.1; no node opens a
unix socket to a resolver (nscd, systemd-resolved) or reads the resolver's files."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from mistgrid.testing.straceproof import STRACE_ARGS, connections_to, findings

from ..conftest import REPO


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


@pytest.mark.slow
@pytest.mark.parametrize("network, lives", [
    ("tor", {"introducer": 2, "storage": 2, "client": 2}),
    ("i2p", {"storage": 1, "client": 2}),
])
def test_whole_life_of_an_anonymous_grid_under_strace(tmp_path: Path, network: str,
                                                      lives: dict[str, int]) -> None:
    _require("strace", "unshare", *(("tor", "tor-gencert") if network == "tor" else
                                    ("i2pd", "cc")))
    out = tmp_path / "life"
    out.mkdir()
    helper = subprocess.run(
        ["unshare", "-n", sys.executable, "-m", "tests.network.whole_life", str(out),
         network], cwd=REPO, capture_output=True, timeout=1500, check=False)
    report = helper.stdout.decode()[-3000:] + helper.stderr.decode()[-3000:]
    assert helper.returncode == 0, report
    result = json.loads((out / "result.json").read_text())
    allowed = set(result["allowed"])
    assert {node: len(logs) for node, logs in result["logs"].items()} == lives
    for logs in result["logs"].values():
        for log in logs:
            lines = Path(log).read_text().splitlines()
            assert findings(lines, allowed) == [], log
            assert sum(connections_to(lines, port) for port in allowed) > 0, \
                (log, "the proof saw no connection at all")
