"""The storage servers a client knows, from Tahoe's `private/servers.yaml`, and their status.

How this works: each entry's announcement gives NURLs; the first NURL the routing policy
can use becomes a `StorageClient`. A periodic version probe (and every upload/download)
updates a frozen `ServerStatus` (connected or not, route, last error) that the welcome
page renders.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import attrs
import yaml
from twisted.internet import defer
from twisted.internet import reactor as _reactor
from twisted.logger import Logger

from ..caps import base32
from ..errors import MistgridError
from ..gbs.nurl import Nurl, NurlError, parse_nurl
from ..net.connector import Connector
from ..storage.client import StorageClient

reactor: Any = _reactor
log = Logger()


# Seconds a probe (a version request) may take, by route, before the server is shown as
# not answering and the next look at it asks again (a request's own timeout is 120 s:
# one probe stuck that long kept a server "not connected" for two minutes).
PROBE_PATIENCE = {"direct": 10.0, "tor": 60.0, "socks": 60.0, "i2p": 120.0}


@attrs.frozen
class ServerStatus:
    server_id: str
    nickname: str
    connected: bool = False
    route: str = "direct"
    last_error: str = ""
    last_contact: float | None = None
    version: str = ""
    available_space: int | None = None
    address: str = ""

    @property
    def connection_text(self) -> str:
        """Tahoe's `connection_status` words: "Connected to ADDRESS via ROUTE" or
        "Not connected" (with the reason)."""
        if self.connected:
            return f"Connected to {self.address} via {self.route}"
        return "Not connected" + (f": {self.last_error}" if self.last_error else "")


@attrs.define
class KnownServer:
    client: StorageClient
    status: ServerStatus
    static: bool = False  # from private/servers.yaml: an announcement does not replace it
    _waiters: list[defer.Deferred[None]] | None = attrs.field(default=None, init=False)

    def refresh(self) -> defer.Deferred[None]:
        """Probe (unless a probe is already running); fires when that probe ends. A slow
        route (a first I2P connection takes tens of seconds) never runs two at once."""
        waiter: defer.Deferred[None] = defer.Deferred()
        if self._waiters is None:
            self._waiters = [waiter]
            defer.Deferred.fromCoroutine(self.probe()).addBoth(self._probed)
        else:
            self._waiters.append(waiter)
        return waiter

    def _probed(self, _result: object) -> None:
        waiters, self._waiters = self._waiters or [], None
        for waiter in waiters:
            waiter.callback(None)

    async def probe(self) -> None:
        before = (self.status.connected, self.status.last_error)
        await self._probe()
        after = (self.status.connected, self.status.last_error)
        if after != before:
            # Once per change, so that a log tells why a server was not used (a server's
            # address and route are no secret; its NURL's swissnum is never in these).
            if self.status.connected:
                log.info("storage server {name} ({sid}): connected to {address} via "
                         "{route}", name=self.status.nickname, sid=self.status.server_id[:16],
                         address=self.status.address, route=self.status.route)
            else:
                log.info("storage server {name} ({sid}): not reachable: {why}",
                         name=self.status.nickname, sid=self.status.server_id[:16],
                         why=self.status.last_error)

    async def _probe(self) -> None:
        try:
            route = self.client.route
        except Exception:  # a test double, or a NURL the connector no longer routes
            route = "i2p"
        seconds = PROBE_PATIENCE.get(route, PROBE_PATIENCE["i2p"])
        asked = defer.Deferred.fromCoroutine(self.client.version())
        try:
            version = await asked.addTimeout(seconds, reactor)
        except defer.TimeoutError:
            self.status = attrs.evolve(self.status, connected=False,
                                       last_error=f"no answer within {seconds:g} s")
            return
        except Exception as err:
            self.status = attrs.evolve(self.status, connected=False,
                                       last_error=str(err) or err.__class__.__name__)
            return
        app = version.get(b"application-version", b"")
        v1 = version.get(b"http://allmydata.org/tahoe/protocols/storage/v1") or {}
        space = v1.get(b"available-space") if isinstance(v1, dict) else None
        reached = self.client.reached
        self.status = attrs.evolve(self.status, connected=True, last_error="",
                                   last_contact=time.time(), route=self.client.route,
                                   version=app.decode("utf-8", "replace")
                                   if isinstance(app, bytes) else str(app),
                                   available_space=space if isinstance(space, int) else None,
                                   address=f"{reached.host}:{reached.port}"
                                   if reached.port else reached.host)


def load_servers(path: Path, connector: Connector, reactor: Any) -> list[KnownServer]:
    """Servers from a servers.yaml file (none if it does not exist)."""
    if not path.exists():
        return []
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise MistgridError(f"{path}: not valid YAML ({err.__class__.__name__})") from err
    servers = []
    for sid, entry in (data.get("storage") or {}).items():
        ann = (entry or {}).get("ann") or {}
        try:
            server = server_from_announcement(str(sid), ann, connector, reactor)
            server.static = True
            servers.append(server)
        except MistgridError as err:
            raise MistgridError(f"{path}: server {sid}: {err}") from err
    return servers


def server_from_announcement(sid: str, ann: dict[str, Any], connector: Connector,
                             reactor: Any) -> KnownServer:
    """A storage server from its announcement (from servers.yaml or an introducer)."""
    nurls = ann.get("anonymous-storage-NURLs") or []
    if not nurls:
        raise MistgridError("the announcement has no anonymous-storage-NURLs (a server "
                            "that speaks only Foolscap storage is not supported)")
    first, *others = rank_nurls([str(n) for n in nurls], connector)
    same = [n for n in others if (n.spki_hash, n.swissnum) == (first.spki_hash,
                                                               first.swissnum)]
    seed_text = ann.get("permutation-seed-base32")
    seed = base32.a2b(seed_text) if isinstance(seed_text, str) and seed_text else None
    client = StorageClient(first, connector, reactor, permutation_seed=seed, fallbacks=same,
                           tub_id=furl_tub_id(ann.get("anonymous-storage-FURL")))
    return KnownServer(client, ServerStatus(sid, str(ann.get("nickname", "")),
                                            route=client.route))


def furl_tub_id(furl: object) -> bytes | None:
    """The 20-byte tub ID of `pb://TUBID@...` (None when absent or malformed)."""
    if not isinstance(furl, str):
        return None
    match = re.match(r"pb://([a-z2-7]{32})@", furl.lower())
    if match is None:
        return None
    try:
        return base32.a2b(match.group(1))
    except ValueError:
        return None


def choose_nurl(texts: list[str], connector: Connector) -> Nurl:
    """The NURL to try first (see rank_nurls)."""
    return rank_nurls(texts, connector)[0]


def rank_nurls(texts: list[str], connector: Connector) -> list[Nurl]:
    """A server's NURLs in the order to try them: direct TCP where the policy allows it
    (fastest), else onion and I2P addresses (the seed document: prefer anonymizing
    hints), else TCP through Tor. Among onion and I2P addresses, those through a Tor or
    I2P router tahoe.cfg names come before those through a router only assumed on its
    usual port, and Tor before I2P (its connections are made in seconds, I2P's in tens of
    seconds). A NURL that does not parse is skipped, and so is one the policy refuses.
    The client tries the next when one does not answer (an AUTO address behind NAT, say)."""
    ranked = []
    for text in sorted(texts):
        try:
            nurl = parse_nurl(text)
        except NurlError:
            continue
        route = connector.route(nurl.host, nurl.port or 0)
        if route.name == "refused":
            continue
        native = nurl.scheme in ("pb+tor", "pb+i2p")
        assumed = bool(getattr(route, "assumed", False))
        rank = 0 if route.name == "direct" else (2 if assumed else 1) if native else 3
        ranked.append((rank, nurl.scheme != "pb+tor", text, nurl))
    if not ranked:
        raise MistgridError("no announced address can be reached under this node's "
                            "connection policy ([connections], [node] anonymous)")
    return [r[3] for r in sorted(ranked, key=lambda r: r[:3])]
