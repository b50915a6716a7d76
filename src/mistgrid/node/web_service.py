"""A client node's web API on web.port, over the servers it knows."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from concurrent.futures import Executor
from pathlib import Path
from typing import Any, cast

from twisted.internet import defer, endpoints
from twisted.internet import reactor as _reactor

from ..caps import base32
from ..caps.mutable import MutableFormat
from ..config.check import ConfigValues
from ..encoding.params import EncodingParams
from ..errors import MistgridError
from ..fileutil import read_convergence, write_text_atomically
from ..grid.mutable import KeyPool
from ..grid.mutable_files import MutableFiles
from ..grid.servers import KnownServer
from ..introducer.client import IntroducerClient
from ..policy.anonymity import Policy, listens_privately
from ..web.api import ClientSettings, WebAPI, make_web_site
from .listening import ListenError, cannot_listen

reactor = cast(Any, _reactor)


def ensure_convergence(private: Path) -> Path:
    """The node's convergence secret, made (as Tahoe-LAFS does) on first use."""
    path = private / "convergence"
    if not path.exists():
        private.mkdir(mode=0o700, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(base32.b2a(secrets.token_bytes(32)) + "\n")
    return path


def ensure_lease_secret(private: Path) -> bytes:
    """The client's lease secret, `private/secret` (base32 of 32 bytes, as Tahoe-LAFS
    writes it), made on first use; every lease and renew secret is derived from it."""
    path = private / "secret"
    if not path.exists():
        private.mkdir(mode=0o700, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(base32.b2a(secrets.token_bytes(32)) + "\n")
    text = path.read_text().strip()
    try:
        return base32.a2b(text)
    except ValueError:
        raise MistgridError(f"{path}: not a lease secret (base32 text, as Tahoe-LAFS "
                            "writes it); move it away and a new one is made") from None


def start_web(directory: Path, cfg: ConfigValues, executor: Executor,
              servers: list[KnownServer], introducers: list[IntroducerClient],
              network: Mapping[str, str] | None = None,
              storage: Any = None, site: Any = None) -> defer.Deferred[None]:
    """The web API on web.port, for `servers` (which introducers may add to); given the
    `site` that `open_starting_web` opened, the web API takes its place there."""
    params = EncodingParams(cfg.get("client", "shares.needed"),
                            cfg.get("client", "shares.total"))
    mutable_format = MutableFormat[str(cfg.get("client", "mutable.format")).upper()]
    lease_secret = ensure_lease_secret(directory / "private")
    settings = ClientSettings(params, cfg.get("client", "shares.happy"),
                              read_convergence(ensure_convergence(directory / "private")),
                              mutable_format, lease_secret)
    nickname = cfg.get("node", "nickname") or directory.name
    pool = KeyPool(cfg.get("client", "mutable.key_pool"), executor)
    pool.start()
    mutable = MutableFiles(lambda: [s.client for s in servers], params.needed, params.total,
                           lease_secret, executor, pool)
    api = WebAPI(servers, settings, executor, nickname, introducers, network or {}, mutable,
                 storage)
    if site is not None:
        site.resource = api
        return defer.succeed(None)
    return _listen(directory, cfg, make_web_site(api)).addCallback(lambda _: None)


def start_introducer_web(directory: Path, cfg: ConfigValues, service: Any,
                         site: Any = None) -> defer.Deferred[None]:
    """An introducer node's status page on web.port (`web/introducer_page.py`)."""
    from ..web.introducer_page import IntroducerPage  # noqa: PLC0415

    page = IntroducerPage(cfg.get("node", "nickname") or directory.name, service)
    if site is not None:
        site.resource = page
        return defer.succeed(None)
    return _listen(directory, cfg, make_web_site(page)).addCallback(lambda _: None)


def open_starting_web(directory: Path, cfg: ConfigValues,
                      network: Mapping[str, str]) -> defer.Deferred[Any]:
    """Open web.port now, showing how far the node's own Tor or I2P router has got (the
    `network` texts, read live); the Site, for `start_web` to put the web API in."""
    from ..web.starting import StartingPage  # noqa: PLC0415

    site = make_web_site(StartingPage(cfg.get("node", "nickname") or directory.name, network))
    return _listen(directory, cfg, site)


def _listen(directory: Path, cfg: ConfigValues, site: Any) -> defer.Deferred[Any]:
    """Serve `site` on web.port; the Site once listening (node.url written)."""
    web_port = cfg.get("node", "web.port")

    def listening(port: Any) -> Any:
        address = port.getHost()
        host = f"[{address.host}]" if ":" in address.host else address.host  # IPv6
        write_text_atomically(directory / "node.url", f"http://{host}:{address.port}/\n")
        print(f"web API on http://{host}:{address.port}/", flush=True)
        return site

    # The anonymity guarantee where this listener is built (the config check refuses the
    # same setting first): an anonymous node's web port is on loopback only.
    if Policy.from_config(cfg).anonymous and not listens_privately(str(web_port)):
        return defer.fail(ListenError(
            f"refusing to listen on [node] web.port = {web_port}: the node is anonymous; "
            "set web.port = tcp:3456:interface=127.0.0.1"))
    listened: defer.Deferred[Any] = endpoints.serverFromString(reactor, web_port).listen(site)
    return listened.addCallbacks(listening, cannot_listen("[node] web.port", web_port))
