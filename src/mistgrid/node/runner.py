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
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

import attrs
from twisted.internet import defer, endpoints, ssl
from twisted.internet import reactor as _reactor
from twisted.logger import ILogObserver, globalLogBeginner, textFileLogObserver

from ..cli.options import read_convergence
from ..config.check import ConfigValues, load_config
from ..config.keys import Problem
from ..config.location import Hint
from ..crypto.spki import spki_hash
from ..encoding.params import EncodingParams
from ..errors import MistgridError
from ..gbs.nurl import Nurl
from ..grid.servers import load_servers
from ..net.connector import Connector
from ..storage.announcement import announcement, server_id
from ..storage.backend import DiskBackend
from ..storage.server import make_site
from ..storage.standalone import load_or_create_swissnum
from ..storage.tls import create_identity, load_certificate
from ..web.api import ClientSettings, WebAPI, make_web_site
from . import pidfile

reactor = cast(Any, _reactor)
READY = "mistgrid node running"


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


def start_storage(directory: Path, plan: StoragePlan) -> defer.Deferred[None]:
    """Listen; write the NURLs and the announcement once listening."""
    private = directory / "private"
    pem = create_identity(private)
    swissnum = load_or_create_swissnum(private)
    backend = DiskBackend(plan.storage_dir, reserved_space=plan.reserved_space)
    options = ssl.PrivateCertificate.loadPEM(pem.read_text()).options()
    endpoint = endpoints.SSL4ServerEndpoint(reactor, plan.port, options,
                                            interface=plan.interface)
    cert = load_certificate(pem)
    nurls = _nurls(plan, spki_hash(cert), swissnum)

    def listening(_port: object) -> None:
        (private / "storage.nurls").write_text("".join(n.to_text() + "\n" for n in nurls))
        entry = {"server-id": server_id(cert),
                 "ann": announcement(nurls, cert, plan.nickname)}
        temp = private / "announcement.json.tmp"
        temp.write_text(json.dumps(entry, indent=2) + "\n")
        temp.replace(private / "announcement.json")
        print(f"storage server listening on {plan.interface}:{plan.port}", flush=True)

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


def start_web(directory: Path, cfg: ConfigValues, executor: Executor) -> defer.Deferred[None]:
    """The web API on web.port, for the servers in private/servers.yaml."""
    servers = load_servers(directory / "private" / "servers.yaml", Connector(reactor),
                           reactor)
    params = EncodingParams(cfg.get("client", "shares.needed"),
                            cfg.get("client", "shares.total"))
    settings = ClientSettings(params, cfg.get("client", "shares.happy"),
                              read_convergence(directory / "private" / "convergence"))
    nickname = cfg.get("node", "nickname") or directory.name
    site = make_web_site(WebAPI(servers, settings, executor, nickname))
    web_port = cfg.get("node", "web.port")

    def listening(port: Any) -> None:
        address = port.getHost()
        (directory / "node.url").write_text(f"http://{address.host}:{address.port}/\n")
        print(f"web API on http://{address.host}:{address.port}/", flush=True)

    listened: defer.Deferred[Any] = endpoints.serverFromString(reactor, web_port).listen(site)
    return listened.addCallbacks(listening, _cannot_listen("[node] web.port", web_port))


def run_node(directory: Path) -> list[str]:
    """Check, then run until stopped; returns the problems that stopped it instead."""
    cfg, lines = check_node(directory)
    if cfg is None:
        return lines
    plan, _ = plan_storage(directory, cfg)
    web = bool(cfg.get("node", "web.port"))
    if plan is None and not web:
        return ["this node has nothing to run: enable [storage] or set [node] web.port"]
    pidfile.claim(directory)
    try:
        return _serve(directory, cfg, plan, web)
    finally:
        pidfile.release(directory)


def _serve(directory: Path, cfg: ConfigValues, plan: StoragePlan | None,
           web: bool) -> list[str]:
    (directory / "logs").mkdir(exist_ok=True)
    log_file = (directory / "logs" / "node.log").open("a", encoding="utf-8")
    observer = cast(ILogObserver, textFileLogObserver(log_file))
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)
    errors: list[str] = []

    def ready(_: object) -> None:
        print(f"{READY} (pid {os.getpid()})", flush=True)

    def failed(failure: Any) -> None:
        errors.append(failure.value.args[0] if failure.check(ListenError)
                      else failure.getErrorMessage())
        reactor.stop()

    with ThreadPoolExecutor(os.cpu_count() or 1) as executor:
        def start_all() -> None:
            started: list[defer.Deferred[None]] = []
            if plan is not None:
                started.append(start_storage(directory, plan))
            if web:
                started.append(start_web(directory, cfg, executor))
            gathered = defer.gatherResults(started, consumeErrors=True)
            gathered.addCallbacks(ready, lambda f: failed(f.value.subFailure))

        reactor.callWhenRunning(start_all)
        reactor.run()
    log_file.close()
    return errors
