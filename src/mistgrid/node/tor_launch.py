"""`[tor] launch = true`: the node starts a Tor of its own, and stops it with itself.

How this works: the node writes a torrc under `NODEDIR/private/tor/` (its data directory,
0700, kept across restarts so later starts are quicker) and runs `[tor] tor.executable`
(or `tor` from $PATH) with an empty defaults file, so no system torrc is read. The torrc
holds a SOCKS and a control port on 127.0.0.1 that tor picks (the control port written to
a file), cookie authentication, `__OwningControllerProcess` set to the node's PID, and, at
the end, the lines of `[tor] launch.torrc` (a person's bridges, or a private network's
authorities: the tests pin every launched tor this way). The node then connects to the
control port, takes ownership (tor exits when that connection closes, so also when the
node is killed), asks for the SOCKS port, and waits for bootstrap to reach 100%, saying
the progress as it goes. Nothing is announced or connected through Tor before then. At
shutdown the node stops tor and waits for it to exit.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import attrs
from twisted.internet import reactor as _reactor
from twisted.internet import task

from ..config.torrc import revealing
from ..errors import MistgridError
from ..net.connector import Connector
from .owned_process import OwnedProcess, find_executable, spawn_owned

reactor = cast(Any, _reactor)
DATA_DIR = "tor"  # under NODEDIR/private/
START_TIMEOUT = 60.0  # seconds for tor to open its control port
BOOTSTRAP_TIMEOUT = 600.0  # seconds for tor to reach 100% (the public network: ~30-60 s)


class TorLaunchError(MistgridError):
    """The node's own Tor could not be started or did not bootstrap."""


@attrs.define
class LaunchedTor:
    """A running tor of the node's own."""

    process: OwnedProcess
    control: str  # endpoint description of its control port
    socks: str  # endpoint description of its SOCKS port
    connection: Any  # the txtorcon Tor the node keeps open (ownership)

    @property
    def pid(self) -> int:
        return self.process.pid

    async def stop(self) -> None:
        """Stop tor (TERM, then KILL) and wait for it to exit."""
        await self.process.stop()


def tor_executable(configured: str | None) -> str:
    """The tor to run: `[tor] tor.executable`, else `tor` from $PATH."""
    return find_executable(configured, "tor", "tor", "tor.executable", TorLaunchError)


def read_bridges(path: str) -> list[str]:
    """The bridges of `[tor] bridges = FILE`: one per line, as Tor's `Bridge` option takes
    them (with or without the word `Bridge`); blank lines and # comments skipped."""
    try:
        text = Path(path).expanduser().read_text()
    except OSError as err:
        raise TorLaunchError(f"[tor] bridges = {path!r}: {err.strerror}; fix: give a "
                             "readable file of Bridge lines") from err
    lines = [line.strip().removeprefix("Bridge ").strip() for line in text.splitlines()
             if line.strip() and not line.strip().startswith("#")]
    if not lines:
        raise TorLaunchError(f"[tor] bridges = {path!r}: no bridge in it; fix: add one "
                             "Bridge line per bridge (e.g. from bridges.torproject.org)")
    return lines


def bridge_options(bridges: list[str], obfs4proxy: str | None) -> list[str]:
    """torrc lines that make tor reach the network only through `bridges` (pure)."""
    lines = ["UseBridges 1", *(f"Bridge {bridge}" for bridge in bridges)]
    transports = sorted({b.split()[0] for b in bridges if b.split()[0] in ("obfs4",
                                                                             "obfs3")})
    if transports:
        if obfs4proxy is None:
            raise TorLaunchError("[tor] bridges names obfs4 bridges, but obfs4proxy is not "
                                 "installed; fix: apt-get install obfs4proxy, or use plain "
                                 "bridges")
        lines.append(f"ClientTransportPlugin {','.join(transports)} exec {obfs4proxy}")
    return lines


def torrc_text(data_dir: Path, owner_pid: int, extra: str,
               bridges: list[str] | None = None, obfs4proxy: str | None = None) -> str:
    """The torrc of the node's tor (pure). `extra`: the lines of [tor] launch.torrc;
    `bridges`: of [tor] bridges (the tor then connects to nothing else)."""
    lines = [
        f"DataDirectory {data_dir}",
        "SocksPort 127.0.0.1:auto ExtendedErrors",  # onion errors told apart
        "ControlPort 127.0.0.1:auto",
        f"ControlPortWriteToFile {data_dir / 'control.port'}",
        "CookieAuthentication 1",
        f"CookieAuthFile {data_dir / 'control_auth_cookie'}",
        f"__OwningControllerProcess {owner_pid}",
        "Log notice stdout",
        f"Log notice file {data_dir / 'notice.log'}",
        "AvoidDiskWrites 1",
    ]
    if bridges:
        lines += ["# from [tor] bridges", *bridge_options(bridges, obfs4proxy)]
    if extra.strip():
        lines += ["# from [tor] launch.torrc", extra.strip()]
    return "\n".join(lines) + "\n"


async def launch_tor(private: Path, executable: str | None, extra_file: str | None,
                     connector: Connector, say: Callable[[str], None],
                     bridges_file: str | None = None, anonymous: bool = False) -> LaunchedTor:
    """Start the node's tor and wait until it is bootstrapped (`anonymous`: refuse torrc
    lines that would reveal the node, `config.torrc.revealing`)."""
    import txtorcon  # noqa: PLC0415 (only nodes that launch Tor)

    tor = tor_executable(executable)
    bridges = read_bridges(bridges_file) if bridges_file else None
    extra = ""
    if extra_file:
        try:
            extra = Path(extra_file).expanduser().read_text()
        except OSError as err:
            raise TorLaunchError(f"[tor] launch.torrc = {extra_file!r}: {err.strerror}; "
                                 "fix: give a readable file of torrc lines") from err
    for line, why in revealing(extra) if anonymous else ():
        raise TorLaunchError(f"[tor] launch.torrc = {extra_file!r}: `{line}` {why}; fix: "
                             "remove that line (the node is anonymous)")
    data_dir = private / DATA_DIR
    data_dir.mkdir(mode=0o700, exist_ok=True)
    os.chmod(data_dir, 0o700)
    port_file = data_dir / "control.port"
    port_file.unlink(missing_ok=True)
    torrc = data_dir / "torrc"
    torrc.write_text(torrc_text(data_dir, os.getpid(), extra, bridges,
                                shutil.which("obfs4proxy")))
    if bridges:
        say(f"Tor: reaching the network only through {len(bridges)} bridge(s)")
    defaults = data_dir / "empty-defaults-torrc"
    defaults.write_text("")
    watcher = spawn_owned("tor", tor, ["--defaults-torrc", str(defaults), "-f", str(torrc)])
    say(f"Tor: started {tor} (pid {watcher.pid}), data in {data_dir}")
    try:
        control = await _control_port(port_file, watcher)
        connection = await txtorcon.connect(reactor, connector.local_service(control))
        await connection.protocol.queue_command("TAKEOWNERSHIP")
        await _bootstrapped(connection, watcher, say)
        socks = await _socks_port(connection)
        say(f"Tor: SOCKS port {socks.removeprefix('tcp:')}, control port "
            f"{control.removeprefix('tcp:')}")
    except BaseException:
        await watcher.kill_and_wait()
        raise
    return LaunchedTor(watcher, control, socks, connection)


def _died(watcher: OwnedProcess, when: str) -> TorLaunchError:
    return TorLaunchError(f"the node's own Tor exited {when}: "
                          f"{watcher.last_words() or 'no output'}; "
                          "fix: check [tor] launch.torrc and tor.executable")


async def _control_port(port_file: Path, watcher: OwnedProcess) -> str:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if watcher.exited.called:
            raise _died(watcher, "at start")
        if port_file.exists():
            text = port_file.read_text().strip()
            if text.startswith("PORT="):
                host, _, port = text[len("PORT="):].rpartition(":")
                return f"tcp:{host}:{port}"
        await task.deferLater(reactor, 0.1, lambda: None)
    raise TorLaunchError(f"the node's own Tor did not open its control port in "
                         f"{START_TIMEOUT:.0f} s")


async def _bootstrapped(connection: Any, watcher: OwnedProcess,
                        say: Callable[[str], None]) -> None:
    deadline = time.monotonic() + BOOTSTRAP_TIMEOUT
    last = -1
    while True:
        if watcher.exited.called:
            raise _died(watcher, "while bootstrapping")
        answer = await connection.protocol.get_info("status/bootstrap-phase")
        phase = str(answer.get("status/bootstrap-phase", ""))
        progress = _field(phase, "PROGRESS")
        if progress is not None and progress != last:
            last = progress
            say(f"Tor: bootstrapped {progress}% ({_field_text(phase, 'SUMMARY')})")
        if progress == 100:
            return
        if time.monotonic() > deadline:
            raise TorLaunchError(f"the node's own Tor did not bootstrap in "
                                 f"{BOOTSTRAP_TIMEOUT:.0f} s (at {last}%); fix: check its "
                                 "network (bridges in [tor] launch.torrc?)")
        await task.deferLater(reactor, 0.25, lambda: None)


def _field(phase: str, name: str) -> int | None:
    for item in phase.split():
        if item.startswith(name + "="):
            value = item[len(name) + 1:]
            return int(value) if value.isdigit() else None
    return None


def _field_text(phase: str, name: str) -> str:
    marker = name + '="'
    start = phase.find(marker)
    if start < 0:
        return ""
    end = phase.find('"', start + len(marker))
    return phase[start + len(marker):end if end >= 0 else None]


async def _socks_port(connection: Any) -> str:
    from .onion import socks_listener  # noqa: PLC0415

    found = socks_listener(await connection.protocol.get_info("net/listeners/socks"))
    if found is None:
        raise TorLaunchError("the node's own Tor has no SOCKS port")
    return found
