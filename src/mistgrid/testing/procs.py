"""Processes the test harness starts: started with a log, stopped by PID, never leaked.

How this works: every `Managed` process is recorded in a module-level registry when it
starts and removed when it is reaped, so a test session can assert at its end that nothing
it started is still running (`leftover_pids`). An atexit hook stops whatever is left, also
when a test run fails or is interrupted. Only PIDs this module started are ever signalled.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")
_RUNNING: dict[int, Managed] = {}


class HarnessError(RuntimeError):
    """A test network could not be started; the message says which step and where the logs are."""


class Managed:
    """One child process with its output in a log file."""

    def __init__(self, name: str, argv: Sequence[str], log: Path,
                 env: dict[str, str] | None = None, cwd: Path | None = None) -> None:
        self.name = name
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            self.popen = subprocess.Popen(
                list(argv), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                env=env, cwd=cwd, start_new_session=True)
        self.pid = self.popen.pid
        _RUNNING[self.pid] = self

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, term_timeout: float = 10.0, signalled: bool = False) -> None:
        """SIGTERM (unless `signalled`: sent already), then SIGKILL after `term_timeout`
        seconds; always reaps."""
        try:
            if self.popen.poll() is None:
                if not signalled:
                    self.popen.send_signal(signal.SIGTERM)
                try:
                    self.popen.wait(term_timeout)
                except subprocess.TimeoutExpired:
                    self.popen.kill()
                    self.popen.wait(10)
        finally:
            _RUNNING.pop(self.pid, None)

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def stop_all(processes: Sequence[Managed], term_timeout: float = 10.0) -> None:
    """Stop several processes: signal all first, then wait for each."""
    for proc in processes:
        if proc.alive():
            with contextlib.suppress(ProcessLookupError):
                proc.popen.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + term_timeout
    for proc in processes:
        proc.stop(max(0.1, deadline - time.monotonic()), signalled=True)


def release(proc: Managed) -> None:
    """Stop tracking `proc`: it is meant to outlive this Python process."""
    _RUNNING.pop(proc.pid, None)


def leftovers() -> list[tuple[int, str]]:
    """(PID, name) of every process this harness started that is still running."""
    return [(pid, proc.name) for pid, proc in list(_RUNNING.items()) if proc.alive()]


@atexit.register
def _stop_leftovers() -> None:
    stop_all(list(_RUNNING.values()), term_timeout=5.0)


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """`count` distinct TCP ports free on `host` right now (bound, then released)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((host, 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def wait_for(check: Callable[[], T | None], timeout: float, what: str,
              interval: float = 0.25, watch: Sequence[Managed] = ()) -> T:
    """Poll `check` until it returns a value; fail naming `what` (and a dead process)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result is not None:
            return result
        for proc in watch:
            if not proc.alive():
                raise HarnessError(f"{proc.name} exited (status {proc.popen.returncode}) "
                                   f"while waiting for {what}; log {proc.log}:\n{proc.tail()}")
        if time.monotonic() > deadline:
            raise HarnessError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def require_binary(name: str, package: str) -> str:
    """The path of an installed program, or HarnessError saying how to install it."""
    found = shutil.which(name)
    if found is None:
        raise HarnessError(f"{name} is not installed (apt-get install {package})")
    return found


def is_loopback(host: str) -> bool:
    return host in {"localhost", "::1"} or host.startswith("127.")


def ensure_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path
