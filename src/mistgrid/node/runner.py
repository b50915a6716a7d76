"""`mistgrid run DIR`: the composition root of a node (today: its storage server).

How this works: the node's tahoe.cfg is checked as a whole first; any problem stops the
node before anything listens, each problem printed as one line. A node with
`[storage] enabled = true` then serves GBS with TLS on `tub.port`, its identity the SPKI
hash of `private/node.pem`, and writes `private/storage.nurls` and
`private/announcement.json` (what clients put in their `private/servers.yaml`).
A node with `web.port` serves the web API. The node claims DIR/running.process first
(`pidfile`), and prints READY once every listener is open (`mistgrid start` waits for it);
a listener that cannot open stops the node with one line naming the key.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

import attrs
from twisted.internet import defer, endpoints, ssl
from twisted.internet import reactor as _reactor
from twisted.logger import ILogObserver, globalLogBeginner, textFileLogObserver

from ..caps import base32
from ..cli.options import read_convergence
from ..config.check import ConfigValues, load_config
from ..config.keys import Problem
from ..config.location import Hint
from ..crypto.spki import spki_hash
from ..encoding.params import EncodingParams
from ..errors import MistgridError
from ..gbs.nurl import Nurl
from ..grid.servers import KnownServer, load_servers
from ..introducer.client import IntroducerClient
from ..introducer.tub import make_tub
from ..net.connector import Connector
from ..storage.announcement import announcement, server_id
from ..storage.backend import DiskBackend
from ..storage.server import make_site
from ..storage.standalone import load_or_create_swissnum
from ..storage.tls import create_identity, load_certificate
from ..web.api import ClientSettings, WebAPI, make_web_site
from . import pidfile
from .introduction import introducer_furls, publish_storage, start_clients, start_introducer
from .pidfile import READY

reactor = cast(Any, _reactor)


@attrs.frozen
class StoragePlan:
    port: int
    interface: str
    storage_dir: Path
    reserved_space: int
    hints: tuple[Hint, ...]
    nickname: str


def plan_storage(directory: Path, cfg: ConfigValues) -> tuple[StoragePlan | None,
                                                               list[Problem]]:
    """What the storage server will do, or the problems that stop it (one line each)."""
    if not cfg.get("storage", "enabled"):
        return None, []
    problems = []
    port_text = cfg.get("node", "tub.port") or ""
    if port_text == "disabled":  # the config check already says a storage server must listen
        return None, []
    match = re.fullmatch(r"tcp:(?:interface=([^:]+):)?([0-9]+)(?::interface=([^:]+))?",
                         port_text)
    if match is None:
        problems.append(Problem("[node] tub.port", port_text,
                                "a storage node needs a tcp:PORT listener (tor and i2p "
                                "listeners are not supported yet)",
                                "write e.g. tcp:3457:interface=127.0.0.1"))
    hints = cfg.get("node", "tub.location") or ()
    for hint in hints:
        if hint.kind in ("auto", "onion-service", "i2p-destination"):
            problems.append(Problem("[node] tub.location", hint.kind,
                                    "not supported by mistgrid run yet",
                                    "list tcp:HOST:PORT hints"))
    if not hints:
        problems.append(Problem("[node] tub.location", "", "a storage node must say where "
                                "clients reach it", "write e.g. tcp:127.0.0.1:3457"))
    if problems or match is None:
        return None, problems
    storage_dir = cfg.get("storage", "storage_dir")
    return StoragePlan(int(match.group(2)), match.group(1) or match.group(3) or "0.0.0.0",
                       Path(storage_dir) if storage_dir else directory / "storage",
                       cfg.get("storage", "reserved_space"), tuple(hints),
                       cfg.get("node", "nickname") or directory.name), []


def check_node(directory: Path) -> tuple[ConfigValues | None, list[str]]:
    """Read and check DIR/tahoe.cfg; every problem as one line."""
    config_file = directory / "tahoe.cfg"
    if not config_file.exists():
        return None, [f"{directory} is not a node directory (no tahoe.cfg); create one with "
                      "mistgrid create-node"]
    cfg, problems = load_config(config_file.read_text())
    _plan, more = plan_storage(directory, cfg)
    lines = [f"tahoe.cfg {p}" for p in problems + more]
    return (None if lines else cfg), lines


def _nurls(plan: StoragePlan, spki: bytes, swissnum: str) -> list[Nurl]:
    nurls = []
    for hint in plan.hints:
        scheme = {"tcp": "pb", "tor": "pb+tor", "i2p": "pb+i2p"}[hint.kind]
        nurls.append(Nurl(scheme, spki, hint.host, hint.port, swissnum))
    return nurls


def start_storage(directory: Path, plan: StoragePlan) -> defer.Deferred[dict[str, Any]]:
    """Listen; write the NURLs and the announcement once listening (and fire with the
    announcement's fields, for introducers)."""
    private = directory / "private"
    pem = create_identity(private)
    swissnum = load_or_create_swissnum(private)
    backend = DiskBackend(plan.storage_dir, reserved_space=plan.reserved_space)
    options = ssl.PrivateCertificate.loadPEM(pem.read_text()).options()
    endpoint = endpoints.SSL4ServerEndpoint(reactor, plan.port, options,
                                            interface=plan.interface)
    cert = load_certificate(pem)
    nurls = _nurls(plan, spki_hash(cert), swissnum)

    def listening(_port: object) -> dict[str, Any]:
        (private / "storage.nurls").write_text("".join(n.to_text() + "\n" for n in nurls))
        ann = announcement(nurls, cert, plan.nickname)
        entry = {"server-id": server_id(cert), "ann": ann}
        temp = private / "announcement.json.tmp"
        temp.write_text(json.dumps(entry, indent=2) + "\n")
        temp.replace(private / "announcement.json")
        print(f"storage server listening on {plan.interface}:{plan.port}", flush=True)
        return ann

    listened: defer.Deferred[Any] = endpoint.listen(make_site(backend,
                                                              swissnum.encode("ascii")))
    return listened.addCallbacks(listening, _cannot_listen("[node] tub.port",
                                                           f"tcp:{plan.port}"))


def _cannot_listen(key: str, value: str) -> Any:
    def failed(failure: Any) -> None:
        raise ListenError(f"cannot listen on {key} = {value}: {failure.getErrorMessage()}; "
                          "choose a free port or stop what uses it")
    return failed


class ListenError(MistgridError):
    """A configured listener could not be opened."""


def ensure_convergence(private: Path) -> Path:
    """The node's convergence secret, made (as Tahoe-LAFS does) on first use."""
    path = private / "convergence"
    if not path.exists():
        private.mkdir(mode=0o700, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(base32.b2a(secrets.token_bytes(16)) + "\n")
    return path


def start_web(directory: Path, cfg: ConfigValues, executor: Executor,
              servers: list[KnownServer],
              introducers: list[IntroducerClient]) -> defer.Deferred[None]:
    """The web API on web.port, for `servers` (which introducers may add to)."""
    params = EncodingParams(cfg.get("client", "shares.needed"),
                            cfg.get("client", "shares.total"))
    settings = ClientSettings(params, cfg.get("client", "shares.happy"),
                              read_convergence(ensure_convergence(directory / "private")))
    nickname = cfg.get("node", "nickname") or directory.name
    site = make_web_site(WebAPI(servers, settings, executor, nickname, introducers))
    web_port = cfg.get("node", "web.port")

    def listening(port: Any) -> None:
        address = port.getHost()
        (directory / "node.url").write_text(f"http://{address.host}:{address.port}/\n")
        print(f"web API on http://{address.host}:{address.port}/", flush=True)

    listened: defer.Deferred[Any] = endpoints.serverFromString(reactor, web_port).listen(site)
    return listened.addCallbacks(listening, _cannot_listen("[node] web.port", web_port))


def is_introducer(directory: Path) -> bool:
    """Tahoe's convention: the node type is named by the `tahoe-*.tac` file."""
    return any(p.suffix == ".tac" and "introducer" in p.name for p in directory.iterdir())


def run_node(directory: Path) -> list[str]:
    """Check, then run until stopped; returns the problems that stopped it instead."""
    cfg, lines = check_node(directory)
    if cfg is None:
        return lines
    plan, _ = plan_storage(directory, cfg)
    web = bool(cfg.get("node", "web.port"))
    introducer = is_introducer(directory)
    if introducer and not re.fullmatch(r"tcp:.*", cfg.get("node", "tub.port") or ""):
        return ["tahoe.cfg [node] tub.port: an introducer needs a tcp: listener; write e.g. "
                "tub.port = tcp:3458:interface=127.0.0.1 and a matching tub.location"]
    if plan is None and not web and not introducer:
        return ["this node has nothing to run: enable [storage] or set [node] web.port"]
    try:
        furls = [] if introducer else introducer_furls(directory, cfg)
    except MistgridError as err:
        return [str(err)]
    pidfile.claim(directory)
    try:
        return _serve(directory, cfg, plan, web, introducer, furls)
    finally:
        pidfile.release(directory)


def _serve(directory: Path, cfg: ConfigValues, plan: StoragePlan | None, web: bool,
           introducer: bool, furls: list[tuple[str, str]]) -> list[str]:
    (directory / "logs").mkdir(exist_ok=True)
    log_file = (directory / "logs" / "node.log").open("a", encoding="utf-8")
    observer = cast(ILogObserver, textFileLogObserver(log_file))
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)
    errors: list[str] = []
    connector = Connector(reactor)
    private = directory / "private"
    nickname = cfg.get("node", "nickname") or directory.name

    def ready(_: object) -> None:
        print(f"{READY} (pid {os.getpid()})", flush=True)

    def failed(failure: Any) -> None:
        errors.append(failure.value.args[0] if failure.check(ListenError)
                      else failure.getErrorMessage())
        reactor.stop()

    def start_all(executor: Executor) -> None:
        try:
            start_services(executor)
        except MistgridError as err:
            errors.append(str(err))
            reactor.stop()
        except Exception as err:
            errors.append(f"cannot start: {err.__class__.__name__}: {err}")
            reactor.stop()

    def start_services(executor: Executor) -> None:
        tub = None
        if introducer or furls:
            tub = make_tub(create_identity(private), connector)
            reactor.addSystemEventTrigger("before", "shutdown", tub.stopService)
        servers = load_servers(private / "servers.yaml", connector, reactor) if web else []
        clients = start_clients(tub, furls, nickname, servers if web else None, connector,
                                reactor) if tub is not None else []
        started: list[defer.Deferred[Any]] = []
        if introducer:
            port = cfg.get("node", "tub.port")
            started.append(start_introducer(
                directory, tub, endpoints.serverFromString(reactor, port),
                ",".join(_hint_text(h) for h in cfg.get("node", "tub.location") or ())
            ).addCallbacks(lambda _: print("introducer running", flush=True),
                           _cannot_listen("[node] tub.port", port)))
        if plan is not None:
            started.append(start_storage(directory, plan).addCallback(
                lambda fields: publish_storage(private, clients, fields, nickname)))
        if web:
            started.append(start_web(directory, cfg, executor, servers, clients))
        gathered = defer.gatherResults(started, consumeErrors=True)
        gathered.addCallbacks(ready, lambda f: failed(f.value.subFailure))

    with ThreadPoolExecutor(os.cpu_count() or 1) as executor:
        reactor.callWhenRunning(start_all, executor)
        reactor.run()
    log_file.close()
    return errors


def _hint_text(hint: Hint) -> str:
    if hint.kind == "tcp":
        host = f"[{hint.host}]" if ":" in hint.host else hint.host
        return f"tcp:{host}:{hint.port}"
    raise ListenError(f"tub.location hint type {hint.kind} is not supported yet")
