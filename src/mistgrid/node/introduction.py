"""Wiring a node to introducers (and an introducer node's own service).

How this works: the introducers a node uses are those of `private/introducers.yaml`
(`introducers: {PETNAME: {furl: ...}}`) and the deprecated `[client] introducer.furl`.
Storage nodes publish a signed announcement (key: `private/node.privkey`; seqnum kept in
`private/announcement-seqnum`, so it grows across restarts) to each; client nodes
subscribe to each and add or replace the announced servers. An introducer node listens on
tub.port and writes its FURL to `private/introducer.furl`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from twisted.internet import defer
from twisted.internet.interfaces import IStreamServerEndpoint
from zope.interface import implementer

from ..config.location import Hint
from ..errors import MistgridError
from ..fileutil import write_private
from ..introducer.announcements import (
    new_nonce,
    new_signing_key_text,
    parse_signing_key,
    sign,
    storage_announcement,
)
from ..introducer.cache import cache_path, cache_text, parse_cache
from ..introducer.client import AnnouncementCallback, IntroducerClient
from ..introducer.server import IntroducerService
from ..net.connector import Connector
from .addresses import auto_addresses, detect_ipv4_addresses, expand_auto
from .listening import ListenError, cannot_listen, listen_i2p, refuse_exposure, remember_port
from .onion import read_client_auth, start_keyed_onion, start_onion_services, with_hint
from .plan import Listener, TorOnion

FURL_FILE = "introducer.furl"


def _private_file(path: Path, make: Any) -> str:
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(make() + "\n")
    return path.read_text().strip()


def next_seqnum(private: Path) -> int:
    path = private / "announcement-seqnum"
    try:
        seqnum = int(path.read_text().strip()) + 1
    except (OSError, ValueError):
        seqnum = 1
    write_private(path, f"{seqnum}\n")
    return seqnum


def start_clients(tub: Any, furls: list[tuple[str, str]], nickname: str,
                  servers: list[Any] | None, connector: Connector,
                  reactor: Any, private: Path | None = None) -> list[IntroducerClient]:
    """Connect to every introducer; announced storage servers go into `servers`. With
    `private` (a client's), each introducer's announcements are cached there
    (`introducer/cache.py`) and the cached ones are in `servers` at once."""
    taken: dict[str, dict[str, Any]] = {}  # the announcement each server was made from

    def heard(key: str, ann: dict[str, Any]) -> None:
        if servers is None or ann.get("service-name") != "storage" or taken.get(key) == ann:
            return  # (the same announcement again: from the cache, then the introducer)
        from ..grid.servers import server_from_announcement  # noqa: PLC0415 (clients only)
        try:
            server = server_from_announcement(key, ann, connector, reactor)
        except MistgridError:
            return  # e.g. a Foolscap-only server: not usable by us
        taken[key] = ann
        for index, known in enumerate(servers):
            # One server, listed once: known by its ID, or by its key (the same server
            # under another name in servers.yaml). As Tahoe: servers.yaml wins.
            if known.status.server_id == key or \
                    known.client.nurl.spki_hash == server.client.nurl.spki_hash:
                if not known.static:
                    servers[index] = server
                return
        servers.append(server)

    clients = []
    for name, furl in furls:
        listener: AnnouncementCallback | None = heard if servers is not None else None
        if listener is not None and private is not None:
            cache = _AnnouncementCache(cache_path(private, name), reactor)
            for key, ann in cache.announcements.items():
                heard(key, ann)
            listener = cache.listener(heard)
        client = IntroducerClient(name, tub, furl, nickname, listener)
        client.start()
        clients.append(client)
    return clients


class _AnnouncementCache:
    """One introducer's cache file: read at start, written (once per batch of
    announcements, on the next reactor turn) whenever a storage announcement changes."""

    def __init__(self, path: Path, reactor: Any) -> None:
        self.path = path
        self._reactor = reactor
        self._pending: Any = None
        self.announcements: dict[str, dict[str, Any]] = {}
        try:
            self.announcements, skipped = parse_cache(path.read_text())
        except FileNotFoundError:
            return
        except (OSError, UnicodeDecodeError, ValueError) as err:
            print(f"{path}: ignored ({err}); it is written again from the introducer's "
                  "announcements", flush=True)
            return
        if skipped:
            print(f"{path}: {skipped} unusable entries ignored", flush=True)

    def listener(self, heard: AnnouncementCallback) -> AnnouncementCallback:
        def on_announcement(key: str, ann: dict[str, Any]) -> None:
            if ann.get("service-name") == "storage" and self.announcements.get(key) != ann:
                self.announcements[key] = ann
                if self._pending is None:
                    self._pending = self._reactor.callLater(0, self._write)
            heard(key, ann)
        return on_announcement

    def _write(self) -> None:
        self._pending = None
        try:
            write_private(self.path, cache_text(self.announcements))
        except OSError as err:
            print(f"{self.path}: not written ({err.strerror})", flush=True)


def publish_storage(private: Path, clients: list[IntroducerClient], fields: dict[str, Any],
                    nickname: str) -> None:
    """Sign our storage announcement (a new seqnum) and give it to every introducer."""
    key = parse_signing_key(_private_file(private / "node.privkey", new_signing_key_text))
    ann = storage_announcement(fields, nickname, next_seqnum(private), new_nonce())
    signed = sign(ann, key)
    for client in clients:
        client.publish(signed)


@implementer(IStreamServerEndpoint)
class _WatchedEndpoint:
    """A server endpoint that tells us whether Foolscap's listen succeeded."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.listened: defer.Deferred[Any] = defer.Deferred()

    def listen(self, factory: Any) -> defer.Deferred[Any]:
        result: defer.Deferred[Any] = self._inner.listen(factory)

        def ok(port: Any) -> Any:
            self.listened.callback(port)
            return port

        def failed(failure: Any) -> Any:
            self.listened.errback(failure)
            return failure

        return result.addCallbacks(ok, failed)


def start_introducer(directory: Path, tub: Any, listener: Listener, hints: tuple[Hint, ...],
                     tor_control: str, connector: Connector,
                     tor_onion: TorOnion | None = None,
                     client_auth_dir: str = "",
                     i2p: tuple[str, dict[str, str]] = ("", {}),
                     service: IntroducerService | None = None) -> defer.Deferred[Any]:
    """Serve the introducer (`service`, or a new one) on the listener, start the onion
    services of its onion: hints, then write its FURL (tcp: and tor: hints; AUTO, or no
    tub.location, stands for the node's addresses); fires once all that is done."""
    return defer.Deferred.fromCoroutine(_start_introducer(
        directory, tub, listener, hints, tor_control, connector, tor_onion, client_auth_dir,
        i2p, service or IntroducerService()))


async def _i2p_listen(tub: Any, hint: Hint, i2p: tuple[str, dict[str, str]],
                      connector: Connector, index: int) -> str:
    """Serve the tub on the I2P destination of an i2p:KEYFILE hint (keys made on first
    use and kept in KEYFILE); its NAME.b32.i2p."""
    from txi2p.sam.endpoints import SAMI2PStreamServerEndpoint  # noqa: PLC0415

    sam, options = i2p
    Path(hint.path).parent.mkdir(parents=True, exist_ok=True)

    def listen() -> defer.Deferred[Any]:
        watched = _WatchedEndpoint(SAMI2PStreamServerEndpoint.new(
            connector.local_service(sam), hint.path,
            nickname=f"mistgrid-introducer-{os.getpid()}-{index}", options=dict(options)))
        tub.listenOn(watched)
        return watched.listened

    port = await listen_i2p(listen, hint.path, sam)
    os.chmod(hint.path, 0o600)  # the destination's private keys
    print(f"I2P destination {hint.path} is up", flush=True)
    return str(port.getHost().host)


async def _start_introducer(directory: Path, tub: Any, listener: Listener,
                            hints: tuple[Hint, ...], tor_control: str,
                            connector: Connector, tor_onion: TorOnion | None,
                            client_auth_dir: str,
                            i2p: tuple[str, dict[str, str]],
                            service: IntroducerService) -> None:
    from twisted.internet import endpoints, reactor  # noqa: PLC0415

    assert listener.port is not None  # introducers always listen on TCP (plan_listener)
    refuse_exposure(listener.anonymous, listener.interface)
    watched = _WatchedEndpoint(endpoints.TCP4ServerEndpoint(
        reactor, listener.port, interface=listener.interface))
    tub.listenOn(watched)
    listening = await watched.listened.addErrback(
        cannot_listen("[node] tub.port", f"tcp:{listener.port}"))
    port = int(listening.getHost().port)
    remember_port(listener.port_file, port, listener.interface)
    if any(h.kind == "auto" for h in hints):
        hints = expand_auto(hints, auto_addresses(detect_ipv4_addresses(),
                                                  listener.interface), port)
    client_auth = read_client_auth(Path(client_auth_dir)) if client_auth_dir else ()
    onions = await start_onion_services(hints, port, tor_control, connector, client_auth)
    if tor_onion is not None:
        hints = with_hint(hints, Hint("tor", await start_keyed_onion(
            tor_onion, port, tor_control, connector, client_auth), tor_onion.external_port))
    for index, hint in enumerate(h for h in hints if h.kind == "i2p-destination"):
        onions[hint] = await _i2p_listen(tub, hint, i2p, connector, index)
    refuse_exposure(listener.anonymous, None, hints)
    location = []
    for hint in hints:
        if hint.kind == "tcp":
            host = f"[{hint.host}]" if ":" in hint.host else hint.host
            location.append(f"tcp:{host}:{hint.port}")
        elif hint.kind == "tor":
            location.append(f"tor:{hint.host}:{hint.port}")
        elif hint.kind == "onion-service":
            location.append(f"tor:{onions[hint]}:{hint.port}")
        elif hint.kind == "i2p":
            location.append(f"i2p:{hint.host}" + (f":{hint.port}" if hint.port else ""))
        elif hint.kind == "i2p-destination":
            location.append(f"i2p:{onions[hint]}")
        else:
            raise ListenError(f"[node] tub.location: an introducer cannot use {hint.kind} "
                              "hints; use tcp:, tor:, onion: or i2p: hints")
    tub.setLocation(*location)
    furl_path = directory / "private" / FURL_FILE
    tub.registerReference(service, furlFile=str(furl_path))
    os.chmod(furl_path, 0o600)
