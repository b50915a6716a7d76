"""Onion services for a node's onion:PORT:hiddenServiceDir=DIR location hints.

`start_keyed_onion` is Tahoe-LAFS's `[tor] onion = true`: an ephemeral service whose key
the node keeps in a file.

How this works: through Tor's control port (reached via the connector), each hint becomes
an onion service made with ADD_ONION on the node's own control connection, forwarding the
hint's virtual PORT to the node's loopback listener. Its key is kept in DIR
(`mistgrid-onion.key`, 0600, with `hostname` beside it), so the .onion name survives
restarts; a DIR where Tor kept the service before (`hs_ed25519_secret_key`, from an earlier
mistgrid or a torrc HiddenServiceDir) keeps its address too. ADD_ONION changes no Tor
configuration, so nodes starting services on one Tor at the same time cannot undo each
other's (with SETCONF HiddenServiceDir they could: one node's service vanished and it hung).
The service lives as long as the control connection, that is, as long as the node; one
Tor has not published is added again (`REPUBLISH_AFTER`), and one not up within
`ONION_TIMEOUT` seconds stops the node with one line.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, cast

import attrs
from twisted.internet import reactor as _reactor

from ..config.location import Hint
from ..crypto.onion_auth import ClientKey, OnionAuthError, parse_public
from ..fileutil import write_text_atomically
from ..net.connector import Connector
from .listening import ListenError
from .plan import TorOnion

reactor = cast(Any, _reactor)
ONION_TIMEOUT = 300.0  # seconds for Tor to publish a service's first descriptor
REPUBLISH_AFTER = (60.0, 120.0)  # seconds before an unpublished service is added again
KEY_FILE = "mistgrid-onion.key"
TOR_KEY_FILE = "hs_ed25519_secret_key"  # Tor's own, in a HiddenServiceDir
_TOR_KEY_HEADER = b"== ed25519v1-secret: type0 =="


async def _control(tor_control: str, connector: Connector, purpose: str) -> Any:
    """A txtorcon connection to Tor's control port, or a ListenError naming the key."""
    import txtorcon  # noqa: PLC0415 (only nodes with onion services)

    try:
        return await txtorcon.connect(reactor, connector.local_service(tor_control))
    except Exception as err:
        raise ListenError(f"cannot reach Tor's control port ([tor] control.port = "
                          f"{tor_control}) for {purpose}: {err}; start tor with a "
                          "ControlPort, or set [tor] control.port") from err


def saved_key(directory: Path) -> str | None:
    """The ADD_ONION key blob of the service kept in `directory`, if there is one: ours,
    else Tor's own (a 32-byte header, then the 64-byte expanded ed25519 key)."""
    ours = directory / KEY_FILE
    if ours.exists():
        return ours.read_text().strip()
    tors = directory / TOR_KEY_FILE
    if tors.exists():
        raw = tors.read_bytes()
        if raw.startswith(_TOR_KEY_HEADER) and len(raw) == 96:
            return "ED25519-V3:" + base64.b64encode(raw[32:]).decode("ascii")
    return None


@attrs.frozen
class _Service:
    hostname: str
    private_key: str | None


async def _add_onion(tor: Any, ports: list[tuple[int, str]], key: str | None,
                     what: str, client_auth: tuple[str, ...] = (),
                     clock: Any = None) -> _Service:
    """ADD_ONION on `tor`'s connection; returns once Tor has uploaded a descriptor, within
    ONION_TIMEOUT, or raises a ListenError (that never repeats the key). With
    `client_auth` (clients' x25519 public keys), only those clients can reach it.

    A service Tor has not published after REPUBLISH_AFTER[i] seconds is removed and added
    again with the same key: Tor remembers each intro point that failed a service and
    does not pick it again until the descriptor rotates, so a service added while relays
    were unreachable can stay unpublished long after they are back (seen on a small
    network: every relay tried and failed, 170 s without a descriptor); the same service
    added again picks afresh."""
    from twisted.internet import defer  # noqa: PLC0415

    clock = clock or reactor
    deadline = clock.seconds() + ONION_TIMEOUT
    seen: set[str] = set()  # service ids with a descriptor uploaded (events may come early)
    waiting: dict[str, defer.Deferred[None]] = {}
    made: str | None = None  # the key Tor made, when none was given

    def event(text: str) -> None:
        fields = str(text).split()
        if len(fields) >= 2 and fields[0] == "UPLOADED":
            seen.add(fields[1])
            if fields[1] in waiting and not waiting[fields[1]].called:
                waiting[fields[1]].callback(None)

    await tor.protocol.add_event_listener("HS_DESC", event)
    try:
        for attempt in range(len(REPUBLISH_AFTER) + 1):
            service_id, new_key = await _add_service(tor, ports, key, client_auth)
            if key is None:
                key = made = new_key
            uploaded: defer.Deferred[None] = defer.Deferred()
            waiting[service_id] = uploaded
            if service_id in seen:
                uploaded.callback(None)
            patience = deadline - clock.seconds()
            if attempt < len(REPUBLISH_AFTER):
                patience = min(patience, REPUBLISH_AFTER[attempt])
            try:
                await uploaded.addTimeout(max(patience, 0.0), clock)
                return _Service(f"{service_id}.onion", made)
            except defer.TimeoutError:
                await tor.protocol.queue_command(f"DEL_ONION {service_id}")
            if clock.seconds() >= deadline:
                break
            print(f"Tor has not published the onion service of {what} yet; adding it "
                  "again so that Tor picks new introduction points", flush=True)
        raise ListenError(f"Tor did not bring up the onion service of {what} within "
                          f"{ONION_TIMEOUT:.0f} s; check that Tor is bootstrapped "
                          "(GETINFO status/bootstrap-phase)")
    except ListenError:
        raise
    except Exception as err:
        said = str(err).replace(key, "(the key)") if key else str(err)  # never log a key
        raise ListenError(f"Tor refused the onion service of {what}: {said}") from None
    finally:
        await tor.protocol.remove_event_listener("HS_DESC", event)


async def _add_service(tor: Any, ports: list[tuple[int, str]], key: str | None,
                       client_auth: tuple[str, ...]) -> tuple[str, str | None]:
    """One ADD_ONION (txtorcon has no way to ask for client authorization, so the command
    is ours): the service id, and the new key when Tor made one."""
    command = " ".join(
        ["ADD_ONION", key or "NEW:ED25519-V3", *(["Flags=V3Auth"] if client_auth else []),
         *(f"Port={virtual},{target}" for virtual, target in ports),
         *(f"ClientAuthV3={public}" for public in client_auth)])
    reply = str(await tor.protocol.queue_command(command))
    found = re.search(r"ServiceID=([a-z2-7]{56})", reply)
    if found is None:
        raise ListenError("Tor did not say the onion service's address")
    made = re.search(r"PrivateKey=(\S+)", reply)
    return found.group(1), made.group(1) if made else None


def read_client_auth(directory: Path) -> tuple[str, ...]:
    """The public keys of the clients `[tor] onion.client_auth` lets in: every `*.auth`
    file in that directory (Tor's authorized_clients format). None there is an error:
    Tor would make the service open to everyone."""
    try:
        files = sorted(directory.glob("*.auth"))
    except OSError as err:
        raise ListenError(f"[tor] onion.client_auth = {directory}: {err}") from err
    if not files:
        raise ListenError(f"[tor] onion.client_auth = {directory}: no *.auth file of an "
                          "authorized client there (the service would be open to "
                          "everyone); add one with `mistgrid admin onion-client-key`")
    try:
        return tuple(parse_public(f.read_text(), str(f)) for f in files)
    except OnionAuthError as err:
        raise ListenError(str(err)) from None


async def start_onion_services(hints: Iterable[Hint], local_port: int, tor_control: str,
                               connector: Connector,
                               client_auth: tuple[str, ...] = ()) -> dict[Hint, str]:
    """Start the onion service of every onion-service hint; its .onion name for each.
    A service an earlier run left configured in Tor for the same directory (SETCONF, as
    mistgrid once did) is removed first: Tor would refuse the same key twice."""
    onions = [h for h in hints if h.kind == "onion-service"]
    if not onions:
        return {}
    tor = await _control(tor_control, connector, "the onion: hints in [node] tub.location")
    config = await tor.get_config()
    ours = {str(Path(h.path)) for h in onions}
    stale = [hs for hs in config.HiddenServices if str(Path(str(hs.dir))) in ours]
    if stale:
        for service in stale:
            config.HiddenServices.remove(service)
        await config.save()
    names = {}
    for hint in onions:
        directory = Path(hint.path)
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = saved_key(directory)
        assert hint.port is not None  # onion: hints always have a port (config.location)
        service = await _add_onion(tor, [(hint.port, f"127.0.0.1:{local_port}")], key,
                                   f"onion:{hint.port}:hiddenServiceDir={hint.path} in "
                                   "[node] tub.location", client_auth)
        if key is None:
            _write_private(directory / KEY_FILE, str(service.private_key))
        write_text_atomically(directory / "hostname", f"{service.hostname}\n")
        names[hint] = str(service.hostname)
        print(f"onion service {hint.path} is up", flush=True)
    _KEPT.append(tor)
    return names


def _write_private(path: Path, text: str) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(text + "\n")


_KEPT: list[Any] = []  # control connections holding ephemeral onion services open


async def start_keyed_onion(onion: TorOnion, listening_port: int, tor_control: str,
                            connector: Connector, client_auth: tuple[str, ...] = ()) -> str:
    """Start the onion service of `[tor] onion = true` (ADD_ONION with the key kept in
    onion.private_key_file, made and saved 0600 on first use, as Tahoe-LAFS does); its
    NAME.onion. The service lives as long as this node's control connection to Tor, that
    is, as long as the node runs."""
    key = onion.key_file.read_text().strip() if onion.key_file.exists() else None
    local = onion.local_port or listening_port
    tor = await _control(tor_control, connector, "the onion service of [tor] onion = true")
    try:
        service = await _add_onion(tor, [(onion.external_port, f"127.0.0.1:{local}")], key,
                                   f"[tor] onion = true (key {onion.key_file})", client_auth)
    except ListenError as err:
        await tor.quit()
        raise ListenError(f"{err}; check onion.private_key_file") from None
    if key is None:
        onion.key_file.parent.mkdir(parents=True, exist_ok=True)
        _write_private(onion.key_file, str(service.private_key))
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
    found = socks_listener(answer)
    if found is None:
        raise ListenError(f"the Tor at [tor] control.port = {tor_control} has no TCP SOCKS "
                          "port; give it a SocksPort, or set [tor] socks.port")
    return found


def socks_listener(answer: Any) -> str | None:
    """The first TCP SOCKS port of a GETINFO net/listeners/socks answer, as an endpoint
    description (None if Tor has none)."""
    listeners = str(answer.get("net/listeners/socks", "")).replace('"', "").split()
    tcp = [item for item in listeners if not item.startswith("unix:")]
    if not tcp:
        return None
    host, _, port = tcp[0].rpartition(":")
    return f"tcp:{host.strip('[]')}:{port}"


class OnionAuthorizer:
    """Tells the node's Tor its client-authorization key for each onion service it is
    about to reach (ONION_CLIENT_AUTH_ADD on the control port, once per address): `[tor]
    client_auth.private_key_file`. The key lives in Tor's memory only."""

    def __init__(self, key: ClientKey, tor_control: str, connector: Connector) -> None:
        from twisted.internet import defer  # noqa: PLC0415

        self._key = key
        self._tor_control = tor_control
        self._connector = connector
        self._tor: Any = None
        self._added: set[str] = set()
        self._lock = defer.DeferredLock()

    def ready(self, host: str) -> Any:
        """A Deferred that fires once Tor holds the key for `host` (NAME.onion)."""
        from twisted.internet import defer  # noqa: PLC0415

        return defer.Deferred.fromCoroutine(self._ensure(
            host.lower().rstrip(".").removesuffix(".onion")))

    async def _ensure(self, address: str) -> None:
        if self._key.address is not None and self._key.address != address:
            return  # the key is for another service
        await self._lock.acquire()
        try:
            if address in self._added:
                return
            if self._tor is None:
                self._tor = await _control(self._tor_control, self._connector,
                                           "[tor] client_auth.private_key_file")
            try:
                await self._tor.protocol.queue_command(
                    f"ONION_CLIENT_AUTH_ADD {address} {self._key.control_blob()}")
            except Exception as err:  # never repeat the key in the message
                said = str(err).replace(self._key.control_blob(), "(the key)")
                raise ListenError(f"Tor refused the client-authorization key of "
                                  f"[tor] client_auth.private_key_file: {said}") from None
            self._added.add(address)
        finally:
            self._lock.release()
