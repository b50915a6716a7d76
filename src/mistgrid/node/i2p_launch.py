"""`[i2p] launch = true`: the node starts an I2P router (i2pd) of its own, and stops it
with itself; `[i2p] i2p.configdir` alone: the node uses the running router of that
directory, at the SAM port its i2pd.conf names.

How this works: the node picks a free SAM port on 127.0.0.1, writes the router's i2pd.conf
into `NODEDIR/private/i2p/` (`config.i2pd.launch_config`: loopback SAM, every other
listener off, then `i2p.configdir`'s own i2pd.conf, then `[i2p] launch.config`) and runs
`[i2p] i2p.executable` (or `i2pd` from $PATH) on it, its data in `i2p.configdir` or in
`NODEDIR/private/i2p/` (kept, so later starts know the network already). The router is
owned by the node (`owned_process`: it gets SIGKILL when the node dies, even by SIGKILL;
a stopping node gives it SIGTERM and 3 s). Ready is when a SAM session gets its tunnels
built (i2pd answers SESSION CREATE only then); until then the node says how far the
router is (SAM answering, routers known) and announces or connects nothing over I2P.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, cast

import attrs
from twisted.internet import defer, task
from twisted.internet import reactor as _reactor
from twisted.internet.protocol import Factory, Protocol
from twisted.protocols.basic import LineOnlyReceiver

from ..config import i2pd
from ..errors import MistgridError
from ..net.connector import Connector
from ..wire import sam
from .directory import free_loopback_port
from .owned_process import OwnedProcess, find_executable, spawn_owned

reactor = cast(Any, _reactor)
DATA_DIR = "i2p"  # under NODEDIR/private/
CONFIG_NAME = "i2pd.conf"
READY_TIMEOUT = 900.0  # seconds for the first tunnels (the public network: ~1-5 min)
STOP_TIMEOUT = 3.0  # seconds from SIGTERM to SIGKILL (i2pd 2.45.1 can hang in shutdown)
PROBE_TIMEOUT = 60.0  # seconds one probe session may take before it is asked again


class I2PLaunchError(MistgridError):
    """The node's own I2P router could not be started or did not get ready."""


@attrs.define
class LaunchedI2P:
    """A running I2P router of the node's own."""

    process: OwnedProcess
    sam: str  # endpoint description of its SAM API
    data_dir: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    async def stop(self) -> None:
        await self.process.stop()


def i2p_executable(configured: str | None) -> str:
    """The router to run: `[i2p] i2p.executable`, else `i2pd` from $PATH."""
    return find_executable(configured, "i2pd", "i2p", "i2p.executable", I2PLaunchError)


def _read_table(path: Path, key: str, missing_ok: bool = False) -> i2pd.Table:
    try:
        text = path.expanduser().read_text()
    except FileNotFoundError:
        if missing_ok:
            return {}
        raise I2PLaunchError(f"[i2p] {key} = {str(path)!r}: no such file; fix: give a "
                             "readable file of i2pd.conf lines") from None
    except OSError as err:
        raise I2PLaunchError(f"[i2p] {key} = {str(path)!r}: {err.strerror}; fix: give a "
                             "readable file of i2pd.conf lines") from err
    return i2pd.parse(text, f"[i2p] {key} = {str(path)!r}")


def configdir_sam(configdir: str) -> str:
    """`[i2p] i2p.configdir` without launch: the SAM API of the router running from that
    directory, as its i2pd.conf says (i2pd's defaults where it says nothing)."""
    table = _read_table(Path(configdir) / CONFIG_NAME, "i2p.configdir", missing_ok=True)
    return i2pd.sam_endpoint(table, f"[i2p] i2p.configdir = {configdir!r}")


async def launch_i2p(private: Path, executable: str | None, configdir: str | None,
                     extra_file: str | None, options: Mapping[str, str],
                     connector: Connector, say: Callable[[str], None],
                     anonymous: bool = False) -> LaunchedI2P:
    """Start the node's I2P router and wait until it builds tunnels (`anonymous`: refuse a
    configuration that opens the router to the network, `i2pd.revealing`)."""
    router = i2p_executable(executable)
    own_dir = private / DATA_DIR
    own_dir.mkdir(mode=0o700, exist_ok=True)
    os.chmod(own_dir, 0o700)
    data_dir = Path(configdir).expanduser() if configdir else own_dir
    if not data_dir.is_dir():
        raise I2PLaunchError(f"[i2p] i2p.configdir = {configdir!r}: not a directory; fix: "
                             "give an existing directory, or leave it empty")
    base = _read_table(data_dir / CONFIG_NAME, "i2p.configdir", missing_ok=True) \
        if configdir else {}
    extra = _read_table(Path(extra_file), "launch.config") if extra_file else {}
    for setting, where in i2pd.revealing(base, extra) if anonymous else ():
        raise I2PLaunchError(f"[i2p] {where}: `{setting}` opens a listener of the node's "
                             "router beyond loopback, where others on the network can use "
                             "it; fix: remove it or use 127.0.0.1 (the node is anonymous)")
    sam_port = free_loopback_port()
    conf = own_dir / CONFIG_NAME
    certificates = i2pd.DEBIAN_CERTIFICATES if Path(i2pd.DEBIAN_CERTIFICATES).is_dir() \
        else None
    conf.write_text(i2pd.launch_config(str(data_dir), sam_port, base, extra, certificates))
    watcher = spawn_owned("i2pd", router, [f"--datadir={data_dir}", f"--conf={conf}",
                                           f"--pidfile={own_dir / 'i2pd.pid'}"],
                          death_signal=signal.SIGKILL, stop_timeout=STOP_TIMEOUT)
    say(f"I2P: started {router} (pid {watcher.pid}), data in {data_dir}")
    endpoint = f"tcp:127.0.0.1:{sam_port}"
    try:
        await _ready(endpoint, options, data_dir, watcher, connector, say)
    except BaseException:
        await watcher.kill_and_wait()
        raise
    return LaunchedI2P(watcher, endpoint, data_dir)


def _died(watcher: OwnedProcess, when: str) -> I2PLaunchError:
    return I2PLaunchError(f"the node's own I2P router exited {when}: "
                          f"{watcher.last_words() or 'no output'}; fix: check [i2p] "
                          "launch.config and i2p.executable (its log: i2pd.log in its data "
                          "directory)")


def known_routers(data_dir: Path) -> int:
    """How many routers' descriptions the router keeps (its progress while it starts)."""
    try:
        return sum(1 for _ in (data_dir / "netDb").glob("r*/routerInfo-*.dat"))
    except OSError:
        return 0


async def _ready(endpoint: str, options: Mapping[str, str], data_dir: Path,
                 watcher: OwnedProcess, connector: Connector,
                 say: Callable[[str], None]) -> None:
    """Return once a SAM session on the router has its tunnels; say the progress."""
    deadline = time.monotonic() + READY_TIMEOUT
    said = ""
    answering = False
    attempt = 0
    while time.monotonic() < deadline:
        if watcher.exited.called:
            raise _died(watcher, "while starting")
        attempt += 1
        probe = _SamProbe(dict(options), f"mistgrid-ready-{os.getpid()}-{attempt}")
        try:
            await cast(Any, connector.local_service(endpoint)).connect(_OneProtocol(probe))
        except Exception:  # not listening yet
            await task.deferLater(reactor, 0.25, lambda: None)
            continue
        if not answering:
            answering = True
            say(f"I2P: SAM API answering on {endpoint.removeprefix('tcp:')}; building "
                "tunnels")
        timer = reactor.callLater(PROBE_TIMEOUT, probe.give_up)
        while not probe.done.called:
            text = f"I2P: building tunnels ({known_routers(data_dir)} routers known)"
            if text != said:
                said = text
                say(text)
            await task.deferLater(reactor, 1.0, lambda: None)
            if watcher.exited.called:
                probe.give_up()
        if timer.active():
            timer.cancel()
        if await probe.done:
            say("I2P: ready (tunnels built)")
            return
    raise I2PLaunchError(f"the node's own I2P router built no tunnels in "
                         f"{READY_TIMEOUT:.0f} s ({known_routers(data_dir)} routers known); "
                         "fix: check its network ([i2p] launch.config, its i2pd.log)")


class _OneProtocol(Factory):
    def __init__(self, protocol: Protocol) -> None:
        self.protocol_instance = protocol

    def buildProtocol(self, addr: Any) -> Protocol:  # noqa: N802 (Twisted's name)
        return self.protocol_instance


class _SamProbe(LineOnlyReceiver):
    """HELLO, then a transient STREAM session: `done` fires True once i2pd says OK (it
    answers only when the session's tunnels are built), False on anything else."""

    delimiter = b"\n"

    def __init__(self, options: dict[str, str], nickname: str) -> None:
        self.options = options
        self.nickname = nickname
        self.done: defer.Deferred[bool] = defer.Deferred()
        self._hello = False

    def connectionMade(self) -> None:  # noqa: N802 (Twisted's names)
        cast(Any, self.transport).write(sam.command("HELLO", "VERSION", MIN="3.1", MAX="3.3"))

    def lineReceived(self, line: bytes) -> None:  # noqa: N802
        try:
            reply = sam.parse_reply(line)
        except sam.SamError:
            self._finish(False)
            return
        if not reply.ok:
            self._finish(False)
        elif not self._hello:
            self._hello = True
            cast(Any, self.transport).write(sam.command(
                "SESSION", "CREATE", STYLE="STREAM", ID=self.nickname,
                DESTINATION="TRANSIENT", SIGNATURE_TYPE="7",
                **{key: value for key, value in sorted(self.options.items())}))
        else:
            self._finish(True)

    def connectionLost(self, reason: Any = None) -> None:  # noqa: N802
        self._finish(False)

    def give_up(self) -> None:
        self._finish(False)

    def _finish(self, ok: bool) -> None:
        if not self.done.called:
            self.done.callback(ok)
        if self.transport is not None:
            cast(Any, self.transport).loseConnection()
