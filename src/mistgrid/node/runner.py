"""`mistgrid run DIR`: the composition root of a node, the one place that wires services.

How this works: the node's tahoe.cfg is checked as a whole first (`plan`); any problem
stops the node before anything listens, each problem printed as one line. Then, by role:
an introducer serves announcements on tub.port (`introduction`) and its status page on
web.port; a storage node serves GBS on tub.port (`storage_service`) and announces itself
to its introducers; any other node with web.port serves the web API (`web_service`) over
the servers of private/servers.yaml and of its introducers (and their announcement
caches). The node claims DIR/running.process first
(`pidfile`), and prints READY once every listener is open (`mistgrid start` waits for it);
a listener that cannot open stops the node with one line naming the key.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

import attrs
from twisted.internet import defer
from twisted.internet import reactor as _reactor
from twisted.logger import ILogObserver, Logger, globalLogBeginner, textFileLogObserver

from ..config.check import ConfigValues
from ..config.location import Hint
from ..errors import MistgridError
from ..net.connector import Connector
from ..policy.anonymity import (
    DEFAULT_I2P_SAM,
    DEFAULT_TOR_CONTROL,
    TOR_SOCKS_CANDIDATES,
    Policy,
    route,
)
from ..storage.tls import create_identity
from . import pidfile
from .listening import ListenError
from .pidfile import READY
from .plan import (
    Listener,
    StoragePlan,
    TorOnion,
    announced_hints,
    check_node,
    introducer_furls,
    is_introducer,
    plan_listener,
    plan_storage,
    plan_tor_onion,
)

reactor = cast(Any, _reactor)
log = Logger()


# Seconds a stopping node waits for Foolscap to close its connections. Each is shut with
# a TLS close, which waits for the peer's answer; over Tor, a peer whose own tor has gone
# never answers (an introducer took 43 s to stop, beyond `mistgrid stop`'s 30 s). After
# TLS_CLOSE_GRACE the connections still open are aborted; what is left at
# TUB_STOP_PATIENCE is closed by the reactor's own shutdown.
TLS_CLOSE_GRACE = 1.0
TUB_STOP_PATIENCE = 5.0


def _at_most(work: defer.Deferred[Any], seconds: float) -> defer.Deferred[None]:
    """Fires when `work` does or after `seconds`, whichever is first (never fails; `work`
    itself is not cancelled)."""
    done: defer.Deferred[None] = defer.Deferred()  # cancelled at the timeout, it ignores
    work.addBoth(lambda _: None).chainDeferred(done)  # work's late result
    return done.addTimeout(seconds, reactor, onTimeoutCancel=lambda *_: None)


def stop_tub(tub: Any, seconds: float = TUB_STOP_PATIENCE,
             grace: float = TLS_CLOSE_GRACE) -> defer.Deferred[None]:
    """Stop Foolscap's Tub: its connections are closed, those still open after `grace`
    seconds are aborted, and it is waited for `seconds` at most (then, say so)."""
    transports = [b.transport for b in list(tub.brokers.values()) if b.transport is not None]
    stopping = defer.maybeDeferred(tub.stopService)

    def abort() -> None:
        for transport in transports:
            with contextlib.suppress(Exception):  # one already closed: nothing to abort
                transport.abortConnection()

    aborting = reactor.callLater(grace, abort)

    def said(_: None) -> None:
        if aborting.active():
            aborting.cancel()
        if not stopping.called:
            print(f"Foolscap's connections were still closing after {seconds:g} s; "
                  "closing them now", flush=True)

    return _at_most(stopping, seconds).addCallback(said)


def run_node(directory: Path) -> list[str]:
    """Check, then run until stopped; returns the problems that stopped it instead."""
    cfg, lines = check_node(directory)
    if cfg is None:
        return lines
    plan, _ = plan_storage(directory, cfg)
    web = bool(cfg.get("node", "web.port"))
    introducer = is_introducer(directory)
    listener: Listener | None = None
    hints: tuple[Hint, ...] = ()
    tor_onion: TorOnion | None = None
    if introducer:
        listener, problems = plan_listener(directory, cfg, "introducer.port")
        hints, more = announced_hints(cfg, "introducer")
        tor_onion, most = plan_tor_onion(directory, cfg)
        if listener is None or more or most:
            return [f"tahoe.cfg {p}" for p in problems + more + most]
    if plan is None and not web and not introducer:
        return ["this node has nothing to run: enable [storage] or set [node] web.port"]
    try:
        furls = [] if introducer else introducer_furls(directory, cfg)
    except MistgridError as err:
        return [str(err)]
    pidfile.claim(directory)
    try:
        return _serve(directory, cfg, plan, web, (listener, hints, tor_onion), furls)
    finally:
        pidfile.release(directory)


async def _find_tor_socks(policy: Policy, i2p_options: Any,
                          network: dict[str, str]) -> Connector:
    """A blank [connections] tor.socks-proxy: Tor's SOCKS port is the first of the usual
    ones that completes a SOCKS5 greeting (said in the log and on the welcome page)."""
    from ..net.connector import first_socks5  # noqa: PLC0415

    found = await first_socks5(reactor, TOR_SOCKS_CANDIDATES)
    ports = ", ".join(c.rsplit(":", 1)[1] for c in TOR_SOCKS_CANDIDATES)
    if found is not None:
        network["tor_socks"] = f"{found} (the first of 127.0.0.1:{ports} that answered)"
    else:
        found = TOR_SOCKS_CANDIDATES[0]
        network["tor_socks"] = (f"{found} (none of 127.0.0.1:{ports} answered at start; "
                                "start Tor, or set [connections] tor.socks-proxy)")
    print(f"Tor SOCKS proxy: {network['tor_socks']}", flush=True)
    return Connector(reactor, functools.partial(route, attrs.evolve(policy, tor_socks=found)),
                     i2p_options=i2p_options)


def _note_repeated_stop_signals() -> None:
    """Once the node is stopping, a second SIGTERM or Ctrl-C (an impatient hand, a
    supervisor that repeats itself) is noted in the log; Twisted's own handler would ask
    the stopping reactor to stop again and log a ReactorNotRunning traceback."""
    def noted(number: int, _frame: Any) -> None:
        # callFromThread is what Twisted's handlers use: safe inside a signal handler,
        # where writing to the log file directly could re-enter its buffer.
        reactor.callFromThread(log.info, "{signal} while already stopping",
                               signal=signal.Signals(number).name)

    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, noted)


def _first_error(failure: Any) -> Any:
    """gatherResults' FirstError as the error it wraps (one line for the person)."""
    return failure.value.subFailure


def _serve(directory: Path, cfg: ConfigValues, plan: StoragePlan | None, web: bool,
           introducing: tuple[Listener | None, tuple[Hint, ...], TorOnion | None],
           furls: list[tuple[str, str]]) -> list[str]:
    listener, hints, tor_onion = introducing
    introducer = listener is not None
    (directory / "logs").mkdir(exist_ok=True)
    log_file = (directory / "logs" / "node.log").open("a", encoding="utf-8")
    observer = cast(ILogObserver, textFileLogObserver(log_file))
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)
    errors: list[str] = []
    policy = Policy.from_config(cfg)
    i2p_options = cfg.get("i2p", "session.options") or {}
    connector = Connector(reactor, functools.partial(route, policy), i2p_options=i2p_options)
    private = directory / "private"
    nickname = cfg.get("node", "nickname") or directory.name

    def ready(_: object) -> None:
        print(f"{READY} (pid {os.getpid()})", flush=True)

    def failed(failure: Any) -> None:
        errors.append(failure.value.args[0] if failure.check(ListenError)
                      else failure.getErrorMessage())
        reactor.stop()

    def start_all(executor: Executor) -> None:
        defer.Deferred.fromCoroutine(start_async(executor)).addErrback(stop_with)

    def stop_with(failure: Any) -> None:
        if failure.check(MistgridError):
            errors.append(str(failure.value))
        else:
            errors.append(f"cannot start: {failure.value.__class__.__name__}: "
                          f"{failure.getErrorMessage()}")
        reactor.stop()

    network: dict[str, str] = {}
    early_site: Any = None  # the web port, opened early while Tor or I2P starts

    tor_control = cfg.get("tor", "control.port") or DEFAULT_TOR_CONTROL

    async def start_async(executor: Executor) -> None:
        nonlocal connector, policy, early_site
        if web and (launch_tor or launch_i2p):
            from .web_service import open_starting_web  # noqa: PLC0415
            early_site = await open_starting_web(directory, cfg, network)
        launches = [defer.Deferred.fromCoroutine(launch()) for launch in (
            launch_tor, launch_i2p) if launch is not None]
        if launches:
            # The node's own Tor and I2P router (started together), ready before anything
            # is announced or connected through them; meanwhile the web port shows how far
            # they are.
            await defer.gatherResults(launches, consumeErrors=True).addErrback(_first_error)
            connector = Connector(reactor, functools.partial(route, policy),
                                  i2p_options=i2p_options)
        if cfg.get("i2p", "i2p.configdir") and not cfg.get("i2p", "launch"):
            from .i2p_launch import configdir_sam  # noqa: PLC0415
            policy = attrs.evolve(policy, i2p_sam=configdir_sam(cfg.get("i2p",
                                                                        "i2p.configdir")),
                                  i2p_assumed=False)
            connector = Connector(reactor, functools.partial(route, policy),
                                  i2p_options=i2p_options)
        if cfg.get("tor", "launch"):
            authorize_onions()
            start_services(executor)
            return
        if cfg.is_set("connections", "tor.socks-proxy") and \
                not cfg.get("connections", "tor.socks-proxy"):
            connector = await _find_tor_socks(policy, i2p_options, network)
        control = cfg.get("tor", "control.port")
        if control and cfg.get("tor", "enabled") and not (
                cfg.is_set("connections", "tor.socks-proxy") or cfg.get("tor", "socks.port")):
            # Tahoe: with only a control port, ask that Tor where its SOCKS port is.
            from .onion import tor_socks_port  # noqa: PLC0415
            socks = await tor_socks_port(control, connector)
            connector = Connector(reactor, functools.partial(
                route, attrs.evolve(policy, tor_socks=socks)), i2p_options=i2p_options)
        authorize_onions()
        start_services(executor)

    async def start_tor() -> None:
        nonlocal policy, tor_control
        from .tor_launch import launch_tor  # noqa: PLC0415

        launched = await launch_tor(private, cfg.get("tor", "tor.executable"),
                                    cfg.get("tor", "launch.torrc"), connector,
                                    progress("tor", "Tor: "), cfg.get("tor", "bridges"),
                                    policy.anonymous)
        reactor.addSystemEventTrigger(
            "before", "shutdown", lambda: defer.Deferred.fromCoroutine(launched.stop()))
        network["tor"] = (f"launched by this node (pid {launched.pid}): SOCKS "
                          f"{launched.socks}, control {launched.control}, bootstrapped")
        tor_control = launched.control
        policy = attrs.evolve(policy, tor_socks=launched.socks, tor_assumed=False)

    async def start_i2p() -> None:
        nonlocal policy
        from .i2p_launch import launch_i2p  # noqa: PLC0415

        launched = await launch_i2p(private, cfg.get("i2p", "i2p.executable"),
                                    cfg.get("i2p", "i2p.configdir"),
                                    cfg.get("i2p", "launch.config"), i2p_options, connector,
                                    progress("i2p", "I2P: "), policy.anonymous)
        reactor.addSystemEventTrigger(
            "before", "shutdown", lambda: defer.Deferred.fromCoroutine(launched.stop()))
        network["i2p"] = (f"launched by this node (pid {launched.pid}): SAM "
                          f"{launched.sam}, data in {launched.data_dir}, ready")
        policy = attrs.evolve(policy, i2p_sam=launched.sam, i2p_assumed=False)

    def progress(name: str, prefix: str) -> Callable[[str], None]:
        """Say a launch's progress on the terminal and on the (starting) welcome page."""
        def say(text: str) -> None:
            print(text, flush=True)
            network[name] = text.removeprefix(prefix)
        return say

    launch_tor = start_tor if cfg.get("tor", "launch") and cfg.get("tor", "enabled") else None
    launch_i2p = start_i2p if cfg.get("i2p", "launch") and cfg.get("i2p", "enabled") \
        else None

    def authorize_onions() -> None:
        """[tor] client_auth.private_key_file: Tor is given the key before each onion."""
        key_file = cfg.get("tor", "client_auth.private_key_file")
        if not key_file:
            return
        from ..crypto.onion_auth import parse_private  # noqa: PLC0415
        from .onion import OnionAuthorizer  # noqa: PLC0415

        try:
            text = Path(key_file).expanduser().read_text()
        except OSError as err:
            raise MistgridError(f"[tor] client_auth.private_key_file = {key_file!r}: "
                                f"{err.strerror}; fix: give the key file `mistgrid admin "
                                "onion-client-key` wrote") from err
        key = parse_private(text, f"[tor] client_auth.private_key_file = {key_file!r}")
        connector.onion_ready = OnionAuthorizer(key, tor_control, connector).ready

    def start_services(executor: Executor) -> None:
        # Each role imports its own modules here, so a process pays start-up time only for
        # what it runs (a storage node never imports the web API or the uploader).
        started: list[defer.Deferred[Any]] = []
        clients: list[Any] = []
        servers: list[Any] = []
        if web and not introducer:
            from ..grid.servers import load_servers  # noqa: PLC0415
            servers = load_servers(private / "servers.yaml", connector, reactor)
        service = None
        if introducer or furls:
            from ..introducer.tub import make_tub  # noqa: PLC0415
            from .introduction import start_clients, start_introducer  # noqa: PLC0415
            tub = make_tub(create_identity(private), connector)
            reactor.addSystemEventTrigger(
                "before", "shutdown",
                lambda: stop_tub(tub))
            clients = start_clients(tub, furls, nickname, servers if web else None,
                                    connector, reactor, private if web else None)
            if listener is not None:
                from ..introducer.server import IntroducerService  # noqa: PLC0415
                service = IntroducerService()
                started.append(start_introducer(
                    directory, tub, listener, hints, tor_control, connector, tor_onion,
                    cfg.get("tor", "onion.client_auth") or "",
                    (policy.i2p_sam or DEFAULT_I2P_SAM, dict(i2p_options)), service,
                ).addCallback(lambda _: print("introducer running", flush=True)))
        storage_status = None
        if plan is not None:
            from .introduction import publish_storage  # noqa: PLC0415
            from .storage_service import StorageStatus, start_storage  # noqa: PLC0415
            storage_plan = attrs.evolve(plan, tor_control=tor_control,
                                        i2p_sam=policy.i2p_sam or DEFAULT_I2P_SAM)
            storage_status = StorageStatus()
            started.append(start_storage(directory, storage_plan, connector,
                                         storage_status).addCallback(
                lambda fields: publish_storage(private, clients, fields, nickname)))
        if web and service is not None:  # an introducer's web port: its status page
            from .web_service import start_introducer_web  # noqa: PLC0415
            started.append(start_introducer_web(directory, cfg, service, early_site))
        elif web:
            from .web_service import start_web  # noqa: PLC0415
            started.append(start_web(directory, cfg, executor, servers, clients, network,
                                     storage_status, early_site))
        gathered = defer.gatherResults(started, consumeErrors=True)
        gathered.addCallbacks(ready, lambda f: failed(f.value.subFailure))

    with ThreadPoolExecutor(os.cpu_count() or 1) as executor:
        reactor.callWhenRunning(start_all, executor)
        reactor.addSystemEventTrigger("before", "shutdown", _note_repeated_stop_signals)
        reactor.run()
    log_file.close()
    return errors
