"""A daemon the node owns (node.owned_process) dies with the node: stopped with it, and
also when the node is killed with SIGKILL and no shutdown code runs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mistgrid.testing.procs import wait_for

OWNER = """
import signal, sys
from twisted.internet import reactor
from mistgrid.node.owned_process import spawn_owned
death = int(sys.argv[1])
def start():
    daemon = spawn_owned("sleeper", "/bin/sleep", ["600"], death_signal=death)
    print(daemon.pid, flush=True)
    async def stop():
        await daemon.stop()
    from twisted.internet import defer
    reactor.addSystemEventTrigger("before", "shutdown",
                                  lambda: defer.Deferred.fromCoroutine(stop()))
reactor.callWhenRunning(start)
reactor.run()
"""


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.parametrize(("death", "how"), [(signal.SIGTERM, signal.SIGKILL),
                                            (signal.SIGKILL, signal.SIGKILL),
                                            (signal.SIGTERM, signal.SIGTERM)])
def test_the_daemon_goes_with_its_owner(death: int, how: int) -> None:
    owner = subprocess.Popen([sys.executable, "-c", OWNER, str(int(death))],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert owner.stdout is not None
        daemon = int(owner.stdout.readline())
        wait_for(lambda: Path(f"/proc/{daemon}/cmdline").read_bytes().split(b"\0")[0]
                 == b"/bin/sleep" or None, 20, "the keeper to become the daemon (exec)")
        os.kill(owner.pid, how)
        owner.wait(30)
        wait_for(lambda: True if not alive(daemon) else None, 20,
                 f"the owned daemon to end after its owner got signal {how}")
    finally:
        owner.kill()
        owner.wait()
        if owner.stdout is not None:
            owner.stdout.close()
