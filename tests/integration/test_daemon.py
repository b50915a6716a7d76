"""`mistgrid start | stop | restart | status`: a node in the background with a pidfile,
stopped cleanly, never two in one directory, and only ever our own PID signalled."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from mistgrid.node import pidfile
from mistgrid.testing.procs import free_ports

from ..conftest import run_cli


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Path]:
    """A storage node with a web API; killed by PID afterwards if a test left it running."""
    tub, web = free_ports(2)
    directory = tmp_path / "node"
    created = run_cli("create-node", "--port", f"tcp:{tub}:interface=127.0.0.1",
                      "--location", f"tcp:127.0.0.1:{tub}",
                      "--webport", f"tcp:{web}:interface=127.0.0.1", str(directory))
    assert created.returncode == 0, created.stderr.decode()
    yield directory
    pid = pidfile.running_pid(directory)
    if pid is not None:
        os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def test_start_status_stop(node: Path) -> None:
    """start returns once the node runs; status reports it; stop ends it cleanly."""
    started = run_cli("start", str(node))
    assert started.returncode == 0, started.stderr.decode()
    pid = pidfile.running_pid(node)
    assert pid is not None and f"pid {pid}" in started.stdout.decode()
    assert (node / "private" / "announcement.json").exists()
    status = run_cli("-d", str(node), "status")  # Tahoe's habit: -d before the command
    assert status.returncode == 0, status.stderr.decode()
    out = status.stdout.decode()
    assert f"running (pid {pid})" in out and "storage servers: 0 of 0 connected" in out

    again = run_cli("start", str(node))
    assert again.returncode == 1
    assert f"already running in {node} (pid {pid})" in again.stderr.decode()

    stopped = run_cli("stop", str(node))
    assert stopped.returncode == 0, stopped.stderr.decode()
    assert not _alive(pid)
    assert not (node / pidfile.PIDFILE).exists()  # removed on a clean exit
    status = run_cli("status", str(node))
    assert (status.returncode, status.stdout.decode().split()[:2]) == (3, ["not", "running"])
    stop_again = run_cli("stop", str(node))
    assert stop_again.returncode == 1
    assert stop_again.stderr.decode() == f"mistgrid: error: no node is running in {node}\n"


def test_restart_gives_a_new_process(node: Path) -> None:
    """restart stops the running node and starts another."""
    assert run_cli("start", str(node)).returncode == 0
    first = pidfile.running_pid(node)
    restarted = run_cli("restart", str(node))
    assert restarted.returncode == 0, restarted.stderr.decode()
    second = pidfile.running_pid(node)
    assert first is not None and second is not None and first != second
    assert not _alive(first)
    assert run_cli("stop", str(node)).returncode == 0


def test_stale_pidfile_is_not_trusted(node: Path) -> None:
    """A pidfile naming a process that is not this node's (here: pytest itself) is ignored:
    status says not running, stop signals nothing, start replaces it."""
    (node / pidfile.PIDFILE).write_text(f"{os.getpid()}\n")
    assert run_cli("status", str(node)).returncode == 3
    assert run_cli("stop", str(node)).returncode == 1  # and we are still alive
    started = run_cli("start", str(node))
    assert started.returncode == 0, started.stderr.decode()
    assert pidfile.running_pid(node) not in (None, os.getpid())
    assert run_cli("stop", str(node)).returncode == 0


def test_start_reports_a_port_in_use(node: Path) -> None:
    """A listener that cannot open stops the start with one line naming the key; nothing
    is left running."""
    port = int((node / "tahoe.cfg").read_text().split("tub.port = tcp:")[1].split(":")[0])
    with contextlib.closing(socket.socket()) as blocker:
        blocker.bind(("127.0.0.1", port))
        blocker.listen()
        started = run_cli("start", str(node))
    assert started.returncode == 1
    err = started.stderr.decode()
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert f"cannot listen on [node] tub.port = tcp:{port}" in err, err
    assert pidfile.running_pid(node) is None


def test_start_refuses_a_bad_config_in_the_foreground(tmp_path: Path) -> None:
    """Configuration problems are reported by start itself, exit 1, nothing started."""
    (tmp_path / "tahoe.cfg").write_text("[node]\nweb.port = tcp:0\nnickname = x\nbogus = 1\n")
    started = run_cli("start", str(tmp_path))
    assert started.returncode == 1
    assert started.stderr.decode().startswith("mistgrid: error: tahoe.cfg line 4: [node] bogus")
    assert not (tmp_path / pidfile.PIDFILE).exists()


def test_status_of_an_anonymous_client_that_does_not_listen(tmp_path: Path) -> None:
    """The seed's client lines on a create-client directory: the node starts, and status
    says it is anonymous and does not listen for other nodes."""
    node = tmp_path / "client"
    (web,) = free_ports(1)
    made = run_cli("create-client", "--webport", f"tcp:{web}:interface=127.0.0.1", str(node))
    assert made.returncode == 0, made.stderr.decode()
    config = node / "tahoe.cfg"
    text = config.read_text()  # the seed's two lines, added at the end of [node]
    assert "\n[client]" in text
    config.write_text(text.replace("\n[client]", "anonymous = True\ntub.location =\n\n[client]", 1))
    started = run_cli("start", str(node))
    assert started.returncode == 0, started.stderr.decode()
    try:
        out = run_cli("status", str(node)).stdout.decode()
        assert "anonymous: yes" in out and "does not listen for other nodes" in out, out
    finally:
        assert run_cli("stop", str(node)).returncode == 0
