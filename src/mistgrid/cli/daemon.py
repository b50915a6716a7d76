"""`mistgrid start | stop | restart | status DIR`: a node in the background.

`start` checks the configuration in the foreground (problems: one line each, exit 1), then
runs `mistgrid run DIR` as a detached process with its output in DIR/logs/run.log, and
returns once the node says it is running (or reports why it stopped). `stop` sends SIGTERM
to the PID in DIR/running.process, only if that PID is a mistgrid node of DIR, and waits
for a clean exit. `status` says whether it runs and, for a client, what the web API knows.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import click

from ..errors import MistgridError
from ..node import pidfile
from ..node.pidfile import READY
from .data import connect_local
from .options import directory_argument

START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0

_directory = directory_argument


def _start(directory: Path) -> int:
    from ..node.plan import check_node  # noqa: PLC0415 (only start needs it)

    _cfg, problems = check_node(directory)
    if problems:
        raise MistgridError("; ".join(problems) if len(problems) == 1 else
                            f"{len(problems)} problems, see: mistgrid run {directory}")
    other = pidfile.running_pid(directory)
    if other is not None:
        raise MistgridError(f"a node is already running in {directory} (pid {other})")
    logs = directory / "logs"
    logs.mkdir(exist_ok=True)
    output = logs / "run.log"
    offset = output.stat().st_size if output.exists() else 0
    with output.open("ab") as out:
        child = subprocess.Popen(
            [sys.executable, "-m", "mistgrid.cli", "run", str(directory.resolve())],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        with output.open("rb") as log:  # only what this start wrote (run.log accumulates)
            log.seek(offset)
            said = log.read().decode(errors="replace")
        if READY in said:
            return child.pid
        if child.poll() is not None:
            last = [line for line in said.splitlines() if line.strip()]
            why = last[-1] if last else f"exit status {child.returncode}"
            why = why.removeprefix("mistgrid: error: ")
            raise MistgridError(f"the node stopped while starting: {why}")
        time.sleep(0.05)
    child.terminate()
    child.wait(STOP_TIMEOUT)
    raise MistgridError(f"the node did not say it was running within {START_TIMEOUT:.0f}s "
                        f"and was stopped again; see {output}")


def _stop(directory: Path) -> bool:
    """Stop the node; False when none was running."""
    pid = pidfile.running_pid(directory)
    if pid is None:
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while time.monotonic() < deadline:
        if not pidfile.is_node_process(pid, directory):
            return True
        time.sleep(0.05)
    raise MistgridError(f"pid {pid} did not stop within {STOP_TIMEOUT:.0f}s of SIGTERM; "
                        f"see {directory / 'logs' / 'node.log'}")


@click.command()
@_directory
def start(directory: Path) -> None:
    """Start the node in DIRECTORY in the background."""
    pid = _start(directory)
    click.echo(f"node started in {directory} (pid {pid})")


@click.command()
@_directory
def stop(directory: Path) -> None:
    """Stop the node running in DIRECTORY."""
    if not _stop(directory):
        raise MistgridError(f"no node is running in {directory}")
    click.echo(f"node stopped in {directory}")


@click.command()
@_directory
def restart(directory: Path) -> None:
    """Stop the node in DIRECTORY (if running) and start it again."""
    _stop(directory)
    pid = _start(directory)
    click.echo(f"node restarted in {directory} (pid {pid})")


def _reachability(directory: Path) -> list[str]:
    """Whether the node is anonymous and whether other nodes can reach it (from its
    tahoe.cfg; nothing secret is shown)."""
    from ..config.check import load_config  # noqa: PLC0415
    from ..policy.anonymity import Policy  # noqa: PLC0415

    cfg, _problems = load_config((directory / "tahoe.cfg").read_text())
    anonymous = Policy.from_config(cfg).anonymous
    lines = ["anonymous: yes (every connection goes through Tor or I2P)" if anonymous
             else "anonymous: no"]
    hints = cfg.get("node", "tub.location", ())
    if not cfg.get("storage", "enabled") and not hints:
        lines.append("does not listen for other nodes: tub.location is empty or disabled, "
                     "so it announces nothing")
    return lines


@click.command()
@_directory
def status(directory: Path) -> None:
    """Say whether the node in DIRECTORY runs and how its servers are connected."""
    if not (directory / "tahoe.cfg").exists():
        raise MistgridError(f"{directory} is not a node directory (no tahoe.cfg)")
    pid = pidfile.running_pid(directory)
    if pid is None:
        click.echo(f"not running ({directory})")
        sys.exit(3)
    click.echo(f"running (pid {pid})")
    for line in _reachability(directory):
        click.echo(line)
    if not (directory / "node.url").exists():
        return
    click.echo(f"web API: {(directory / 'node.url').read_text().strip()}")
    conn, base = connect_local(directory)
    try:
        conn.timeout = 30
        conn.request("GET", base + "?t=json")
        page = json.load(conn.getresponse())
        if "announcement_summary" in page:  # an introducer's status page
            announced = page["announcement_summary"].get("storage", 0)
            subscribed = sum(page["subscription_summary"].values())
            click.echo(f"introducer: {announced} storage server"
                       f"{'' if announced == 1 else 's'} announced, {subscribed} "
                       f"subscription{'' if subscribed == 1 else 's'}")
            return
        servers = page["servers"]
    except (OSError, ValueError, KeyError, AttributeError) as err:
        click.echo(f"web API not answering: {err}")
        return
    finally:
        conn.close()
    connected = sum(1 for s in servers if s.get("connected"))
    click.echo(f"storage servers: {connected} of {len(servers)} connected")
    for server in servers:
        error = f"  ({server['last_error']})" if server["last_error"] else ""
        state = "connected" if server.get("connected") else "not connected"
        click.echo(f"  {server['nickname'] or '?':<16} {state:<14} "
                   f"{server['route']}{error}")
