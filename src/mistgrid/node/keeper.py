"""The command line that starts a daemon owned by a process: the daemon gets a signal
from the kernel when its owner dies, even by SIGKILL (Linux's PR_SET_PDEATHSIG, set by a
few lines of Python that then exec the daemon; kept across exec). Nothing here imports
Twisted, so the test harness uses it too."""

from __future__ import annotations

import sys
from collections.abc import Sequence

# Run as `python -c KEEPER OWNER_PID SIGNAL EXECUTABLE ARGS...`: prctl(PR_SET_PDEATHSIG=1).
# The signal comes when the *thread* that started the keeper ends, so start it from a
# thread that lives as long as the owner means to (the main thread, a pool's worker).
KEEPER = """\
import ctypes, os, sys
ctypes.CDLL(None, use_errno=True).prctl(1, int(sys.argv[2]), 0, 0, 0)
if os.getppid() != int(sys.argv[1]):
    sys.exit(0)
os.execv(sys.argv[3], sys.argv[3:])
"""


def owned_argv(owner_pid: int, death_signal: int, executable: str,
               args: Sequence[str]) -> list[str]:
    """argv that runs `executable args...` so that it gets `death_signal` when the
    process `owner_pid` (the one starting it) dies; `executable` is an absolute path."""
    return [sys.executable, "-c", KEEPER, str(owner_pid), str(int(death_signal)),
            executable, *args]
