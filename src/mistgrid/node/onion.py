"""Onion services for a node's onion:PORT:hiddenServiceDir=DIR location hints.

`start_keyed_onion` is Tahoe-LAFS's `[tor] onion = true`: an ephemeral service whose key
the node keeps in a file.

How this works: through Tor's control port (reached via the connector), each hint becomes
a filesystem onion service whose keys Tor keeps in DIR (so the .onion name survives
restarts), forwarding the hint's virtual PORT to the node's loopback listener.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, cast

from twisted.internet import reactor as _reactor

from ..config.location import Hint
from ..net.connector import Connector
from .listening import ListenError
from .plan import TorOnion

reactor = cast(Any, _reactor)


async def _control(tor_control: str, connector: Connector, purpose: str) -> Any:
    """A txtorcon connection to Tor's control port, or a ListenError naming the key."""
    import txtorcon  # noqa: PLC0415 (only nodes with onion services)

    try:
        return await txtorcon.connect(reactor, connector.local_service(tor_control))
    except Exception as err:
        raise ListenError(f"cannot reach Tor's control port ([tor] control.port = "
                          f"{tor_control}) for {purpose}: {err}; start tor with a "
                          "ControlPort, or set [tor] control.port") from err


async def start_onion_services(hints: Iterable[Hint], local_port: int, tor_control: str,
                               connector: Connector) -> dict[Hint, str]:
    """Start (or resume) the onion service of every onion-service hint; its .onion name
    for each. A service left configured in Tor by an earlier run of the node (same
    directory) is replaced, so the node restarts with the same address and current ports."""
    onions = [h for h in hints if h.kind == "onion-service"]
    if not onions:
        return {}
    tor = await _control(tor_control, connector, "the onion: hints in [node] tub.location")
    config = await tor.get_config()
    ours = {str(Path(h.path)) for h in onions}
    stale = [hs for hs in config.HiddenServices if str(Path(str(hs.dir))) in ours]
    if stale:  # this node ran before on this Tor: Tor refuses the same directory twice
        for service in stale:
            config.HiddenServices.remove(service)
        await config.save()
    names = {}
    for hint in onions:
        Path(hint.path).parent.mkdir(parents=True, exist_ok=True)
        service = await tor.create_filesystem_onion_service(
            [(hint.port, f"127.0.0.1:{local_port}")], hint.path)
        names[hint] = str(service.hostname)
        print(f"onion service {hint.path} is up", flush=True)
    return names


_KEPT: list[Any] = []  # control connections holding ephemeral onion services open


async def start_keyed_onion(onion: TorOnion, listening_port: int, tor_control: str,
                            connector: Connector) -> str:
    """Start the onion service of `[tor] onion = true` (ADD_ONION with the key kept in
    onion.private_key_file, made and saved 0600 on first use, as Tahoe-LAFS does); its
    NAME.onion. The service lives as long as this node's control connection to Tor, that
    is, as long as the node runs."""
    key = onion.key_file.read_text().strip() if onion.key_file.exists() else None
    local = onion.local_port or listening_port
    tor = await _control(tor_control, connector, "the onion service of [tor] onion = true")
    try:
        service = await tor.create_onion_service([(onion.external_port, f"127.0.0.1:{local}")],
                                                 private_key=key, version=3)
    except Exception as err:
        await tor.quit()
        said = str(err).replace(key, "(the key)") if key else str(err)  # never log a key
        raise ListenError(f"Tor refused the onion service of [tor] onion = true (key "
                          f"{onion.key_file}): {said}; check onion.private_key_file"
                          ) from None
    if key is None:
        onion.key_file.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(onion.key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as out:
            out.write(str(service.private_key) + "\n")
    _KEPT.append(tor)
    print(f"onion service of [tor] onion is up (port {onion.external_port})", flush=True)
    return str(service.hostname)


def with_hint(hints: tuple[Hint, ...], hint: Hint) -> tuple[Hint, ...]:
    """`hints` and `hint` (the address of a service the node started), unless tub.location
    already names it."""
    return hints if hint in hints else (*hints, hint)


async def tor_socks_port(tor_control: str, connector: Connector) -> str:
    """The SOCKS port of the Tor at `tor_control` (GETINFO net/listeners/socks), as an
    endpoint description."""
    import txtorcon  # noqa: PLC0415

    try:
        tor = await txtorcon.connect(reactor, connector.local_service(tor_control))
        answer = await tor.protocol.get_info("net/listeners/socks")
        await tor.quit()  # nothing else to ask: no control connection stays open
    except Exception as err:
        raise ListenError(f"cannot ask Tor for its SOCKS port through [tor] control.port = "
                          f"{tor_control}: {err}; start tor with a ControlPort, or set "
                          "[tor] socks.port") from err
    listeners = str(answer.get("net/listeners/socks", "")).replace('"', "").split()
    tcp = [item for item in listeners if not item.startswith("unix:")]
    if not tcp:
        raise ListenError(f"the Tor at [tor] control.port = {tor_control} has no TCP SOCKS "
                          "port; give it a SocksPort, or set [tor] socks.port")
    host, _, port = tcp[0].rpartition(":")
    return f"tcp:{host.strip('[]')}:{port}"
