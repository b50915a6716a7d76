"""A daemon the node starts and owns (its Tor, its I2P router): output kept for error
messages, stopped with the node (TERM, then KILL), never left running.

How this works: `spawn_owned()` runs the daemon through a few lines of Python (`keeper`)
that ask the kernel to send it SIGTERM when the node dies (Linux's PR_SET_PDEATHSIG, kept
across exec), exit at once if the node is already gone, and then exec the daemon itself (i2pd gets
SIGKILL instead: Debian's i2pd 2.45.1 was seen to hang for good in its SIGTERM shutdown,
and a node stops it with SIGKILL after a few seconds for the same reason). So a node killed
with SIGKILL, whose shutdown code never runs, still takes its daemons with it. Tor has its
own such guard as well (`__OwningControllerProcess`); i2pd has none.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

from twisted.internet import defer, protocol
from twisted.internet import reactor as _reactor

from ..errors import MistgridError
from .keeper import owned_argv

reactor = cast(Any, _reactor)
STOP_TIMEOUT = 10.0  # seconds from SIGTERM to SIGKILL

class OwnedProcess(protocol.ProcessProtocol):
    """Watches one owned daemon: its last lines of output and its exit."""

    def __init__(self, name: str, stop_timeout: float = STOP_TIMEOUT) -> None:
        self.name = name
        self.stop_timeout = stop_timeout
        self.lines: list[str] = []
        self.exited: defer.Deferred[None] = defer.Deferred()
        self.transport: Any = None
        self._partial = b""

    @property
    def pid(self) -> int:
        return int(self.transport.pid)

    def outReceived(self, data: bytes) -> None:  # noqa: N802 (Twisted's name)
        self._partial += data
        *lines, self._partial = self._partial.split(b"\n")
        self.lines.extend(line.decode("utf-8", "replace") for line in lines)
        del self.lines[:-20]  # the last lines, for an error message

    errReceived = outReceived  # noqa: N815

    def processEnded(self, reason: Any) -> None:  # noqa: N802
        if not self.exited.called:
            self.exited.callback(None)

    def last_words(self) -> str:
        """Its last few lines of output, on one line."""
        return " | ".join(line.strip() for line in self.lines[-3:] if line.strip())

    async def stop(self) -> None:
        """TERM, then KILL after its stop timeout; returns once it has exited."""
        if self.exited.called:
            return
        try:
            self.transport.signalProcess("TERM")
        except Exception:  # already gone
            return
        timer = reactor.callLater(self.stop_timeout, self.kill)
        await self.exited
        if timer.active():
            timer.cancel()

    def kill(self) -> None:
        with contextlib.suppress(Exception):  # gone meanwhile
            self.transport.signalProcess("KILL")

    async def kill_and_wait(self) -> None:
        if not self.exited.called:
            self.kill()
            await self.exited


def spawn_owned(name: str, executable: str, args: Sequence[str],
                death_signal: int = signal.SIGTERM, stop_timeout: float = STOP_TIMEOUT,
                env: Mapping[str, str] | None = None) -> OwnedProcess:
    """Start `executable args...`, owned by this process (see the module's comment):
    `death_signal` reaches it if this process dies; `stop()` waits `stop_timeout` from
    TERM to KILL."""
    watcher = OwnedProcess(name, stop_timeout)
    argv = owned_argv(os.getpid(), death_signal, executable, args)
    reactor.spawnProcess(watcher, sys.executable, argv,
                         env=dict(os.environ if env is None else env))
    return watcher


def find_executable(configured: str | None, name: str, section: str, key: str,
                    error: type[MistgridError]) -> str:
    """The daemon to run: `[section] key` if set (an executable file), else `name` from
    $PATH; `error` (one line with the fix) otherwise."""
    if configured:
        path = Path(configured).expanduser()
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise error(f"[{section}] {key} = {configured!r}: not an executable file; fix: "
                        f"give the path of {name}, or leave it empty to use {name} from "
                        "$PATH")
        return str(path)
    found = shutil.which(name)
    if found is None:
        raise error(f"[{section}] launch = true, but no {name} is on $PATH; fix: install "
                    f"{name} (apt-get install {name}) or set [{section}] {key}")
    return found
