"""The node's pidfile, `DIR/running.process` (Tahoe-LAFS's name for it).

How this works: `mistgrid run` claims the pidfile before it listens and removes it when it
stops cleanly. A pidfile whose process is gone, or is not a mistgrid node, is stale and is
replaced. `running_pid` is what `stop` and `status` trust: the PID must be alive and its
command line must be a `mistgrid ... run` of this very directory, so a recycled PID is never
signalled.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from ..errors import MistgridError

PIDFILE = "running.process"
# What `mistgrid run` prints once every listener is open; `mistgrid start` waits for it.
READY = "mistgrid node running"


class AlreadyRunningError(MistgridError):
    """Another live node process owns this directory."""


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def is_node_process(pid: int, directory: Path) -> bool:
    """True when `pid` is a live `mistgrid run` of `directory`."""
    argv = _cmdline(pid)
    if "run" not in argv or not any("mistgrid" in part for part in argv):
        return False
    target = directory.resolve()
    for part in argv[argv.index("run") + 1:]:
        with contextlib.suppress(OSError):
            if Path(part).resolve() == target:
                return True
    return False


def running_pid(directory: Path) -> int | None:
    """The PID of the node running in `directory`, or None (stale pidfiles count as none)."""
    try:
        pid = int((directory / PIDFILE).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if is_node_process(pid, directory) else None


def claim(directory: Path) -> None:
    """Write our PID; refuse when another live node owns the directory."""
    other = running_pid(directory)
    if other is not None and other != os.getpid():
        raise AlreadyRunningError(f"a node is already running in {directory} (pid {other}); "
                                  f"stop it with: mistgrid stop {directory}")
    temp = directory / (PIDFILE + ".tmp")
    temp.write_text(f"{os.getpid()}\n")
    temp.replace(directory / PIDFILE)


def release(directory: Path) -> None:
    """Remove the pidfile if it is still ours."""
    path = directory / PIDFILE
    with contextlib.suppress(OSError, ValueError, IndexError):
        if int(path.read_text().split()[0]) == os.getpid():
            path.unlink()
