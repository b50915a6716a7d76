"""A node's storage server: GBS over TLS on tub.port, and what it announces.

It listens on tub.port (or on a port the kernel picks, remembered in client.port), puts
the node's addresses in place of AUTO in tub.location, starts the onion services and I2P
destinations of its hints, then writes `private/storage.nurls` and
`private/announcement.json` (the entry clients put in their servers.yaml) and fires with
the announcement's fields.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any, cast

import attrs
from twisted.internet import defer, endpoints
from twisted.internet import reactor as _reactor

from ..config.location import Hint
from ..crypto.spki import spki_hash
from ..fileutil import write_private
from ..gbs.nurl import Nurl
from ..net.connector import Connector
from ..net.tls import TLSFactory, server_context
from ..storage.announcement import announcement, server_id
from ..storage.backend import DiskBackend
from ..storage.crawler import CrawlerService, LeaseCrawler
from ..storage.server import make_site
from ..storage.standalone import load_or_create_swissnum
from ..storage.tls import create_identity, load_certificate
from .addresses import auto_addresses, detect_ipv4_addresses, expand_auto
from .listening import cannot_listen, listen_i2p, refuse_exposure, remember_port
from .onion import read_client_auth, start_keyed_onion, start_onion_services, with_hint
from .plan import I2PDest, StoragePlan

reactor = cast(Any, _reactor)


def _nurls(hints: tuple[Hint, ...], spki: bytes, swissnum: str,
           onions: dict[Hint, str]) -> list[Nurl]:
    nurls = []
    for hint in hints:
        if hint.kind == "onion-service":
            nurls.append(Nurl("pb+tor", spki, onions[hint], hint.port, swissnum))
            continue
        if hint.kind == "i2p-destination":
            nurls.append(Nurl("pb+i2p", spki, onions[hint], None, swissnum))
            continue
        scheme = {"tcp": "pb", "tor": "pb+tor", "i2p": "pb+i2p"}[hint.kind]
        nurls.append(Nurl(scheme, spki, hint.host, hint.port, swissnum))
    return nurls


async def _i2p_destinations(plan: StoragePlan, connector: Connector,
                            tls_site: TLSFactory) -> dict[Hint, str]:
    """Serve GBS (TLS inside the I2P stream) on the destination of every i2p:KEYFILE hint,
    through the router's SAM API; the keys are made on first use and kept in KEYFILE. Its
    .b32.i2p name for each."""
    hints = [h for h in plan.hints if h.kind == "i2p-destination"]
    if plan.i2p_dest is not None:  # Tahoe's [i2p] dest: the same, keys in its key file
        hints.append(dest_hint(plan.i2p_dest))
    if not hints:
        return {}
    from txi2p.sam.endpoints import SAMI2PStreamServerEndpoint  # noqa: PLC0415

    names = {}
    for index, hint in enumerate(hints):
        Path(hint.path).parent.mkdir(parents=True, exist_ok=True)
        endpoint = SAMI2PStreamServerEndpoint.new(
            connector.local_service(plan.i2p_sam), hint.path,
            nickname=f"mistgrid-server-{os.getpid()}-{index}", options=dict(plan.i2p_options))
        port = await listen_i2p(functools.partial(endpoint.listen, tls_site), hint.path,
                                plan.i2p_sam)
        os.chmod(hint.path, 0o600)  # the destination's private keys
        names[hint] = str(port.getHost().host)
        print(f"I2P destination {hint.path} is up", flush=True)
    return names


def dest_hint(dest: I2PDest) -> Hint:
    """[i2p] dest as the i2p:KEYFILE hint it amounts to."""
    return Hint("i2p-destination", "", None, str(dest.key_file))


@attrs.define
class StorageStatus:
    """What the node's web pages show of its storage server (filled in as it starts)."""

    crawler: LeaseCrawler | None = None
    backend: DiskBackend | None = None


def start_storage(directory: Path, plan: StoragePlan, connector: Connector,
                  status: StorageStatus | None = None) -> defer.Deferred[dict[str, Any]]:
    """Listen, start onion services and the lease crawler, then write the NURLs and the
    announcement (and fire with the announcement's fields, for introducers)."""
    return defer.Deferred.fromCoroutine(_start_storage(directory, plan, connector, status))


async def _start_storage(directory: Path, plan: StoragePlan, connector: Connector,
                         status: StorageStatus | None) -> dict[str, Any]:
    private = directory / "private"
    pem = create_identity(private)
    swissnum = load_or_create_swissnum(private)
    backend = DiskBackend(plan.storage_dir, reserved_space=plan.reserved_space,
                          upload_idle_timeout=plan.upload_idle_timeout)
    crawler = LeaseCrawler(backend, plan.expiration)
    service = CrawlerService(crawler, reactor, plan.crawler_cycle)
    service.start()
    reactor.addSystemEventTrigger("before", "shutdown", service.stop)
    if status is not None:
        status.crawler, status.backend = crawler, backend
    cert = load_certificate(pem)
    tls_site = TLSFactory(make_site(backend, swissnum.encode("ascii")),
                          server_context(str(pem)), server_side=True)
    port = 0
    if plan.port is not None:
        refuse_exposure(plan.anonymous, plan.interface)
        endpoint = endpoints.TCP4ServerEndpoint(reactor, plan.port, interface=plan.interface)
        listened: defer.Deferred[Any] = endpoint.listen(tls_site)
        listening = await listened.addErrback(cannot_listen("[node] tub.port",
                                                            f"tcp:{plan.port}"))
        port = int(listening.getHost().port)
        remember_port(plan.port_file, port, plan.interface)
        print(f"storage server listening on {plan.interface}:{port}", flush=True)
    hints = plan.hints
    if any(h.kind == "auto" for h in hints):
        hints = expand_auto(hints, auto_addresses(detect_ipv4_addresses(), plan.interface),
                            port)
        print("tub.location AUTO: " + ", ".join(f"tcp:{h.host}:{h.port}" for h in hints
                                                 if h not in plan.hints), flush=True)
    client_auth = read_client_auth(Path(plan.onion_client_auth)) \
        if plan.onion_client_auth else ()
    onions = await start_onion_services(hints, port, plan.tor_control, connector, client_auth)
    if plan.tor_onion is not None:
        hints = with_hint(hints, Hint("tor", await start_keyed_onion(
            plan.tor_onion, port, plan.tor_control, connector, client_auth),
            plan.tor_onion.external_port))
    onions.update(await _i2p_destinations(plan, connector, tls_site))
    if plan.i2p_dest is not None:
        hints = with_hint(hints, Hint("i2p", onions.pop(dest_hint(plan.i2p_dest)),
                                      plan.i2p_dest.port))
    refuse_exposure(plan.anonymous, None, hints)
    nurls = _nurls(hints, spki_hash(cert), swissnum, onions)
    # Both hold the swissnum: owner-only, like the rest of private/.
    write_private(private / "storage.nurls", "".join(n.to_text() + "\n" for n in nurls))
    ann = announcement(nurls, cert, plan.nickname, bool(client_auth))
    entry = {"server-id": server_id(cert), "ann": ann}
    write_private(private / "announcement.json", json.dumps(entry, indent=2) + "\n")
    return ann
