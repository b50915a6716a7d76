"""What a node will run, decided from its checked tahoe.cfg before anything starts.

How this works: `check_node` reads and checks DIR/tahoe.cfg as a whole and adds what the
node itself needs (`plan_storage`: a storage server needs a tcp: listener, and an
anonymous one its onion: or i2p: hints); every problem is one line. Only Twisted's
endpoint grammar is used here (`endpoint_check`), nothing that runs: `mistgrid start` uses
it to refuse in the foreground.
"""

from __future__ import annotations

import re
from pathlib import Path

import attrs
import yaml

from ..config.check import ConfigValues, load_config
from ..config.keys import Problem
from ..config.location import Hint
from ..errors import MistgridError
from ..policy.anonymity import (
    DEFAULT_I2P_SAM,
    DEFAULT_TOR_CONTROL,
    Policy,
    listens_privately,
    violations,
)
from ..storage.backend import UPLOAD_IDLE_TIMEOUT
from ..storage.expiry import DEFAULT_CYCLE_TIME, ExpirationPolicy


@attrs.frozen
class TorOnion:
    """Tahoe-LAFS's `[tor] onion = true` (what `tahoe create-node --listen=tor` writes): an
    onion service made through Tor's control port each time the node starts, with its key
    kept in `key_file`, forwarding `external_port` to 127.0.0.1:`local_port` (0: the
    port the node listens on)."""

    key_file: Path
    external_port: int
    local_port: int = 0


def plan_tor_onion(directory: Path, cfg: ConfigValues) -> tuple[TorOnion | None,
                                                                 list[Problem]]:
    """The [tor] onion service of a node, if it has one."""
    if not cfg.get("tor", "onion"):
        return None, []
    external = cfg.get("tor", "onion.external_port")
    if not external:
        return None, [Problem("[tor] onion.external_port", "", "[tor] onion = true needs "
                              "the port the onion service offers", "write e.g. "
                              "onion.external_port = 3457")]
    key_file = Path(cfg.get("tor", "onion.private_key_file") or "private/tor_onion.privkey")
    return TorOnion(key_file if key_file.is_absolute() else directory / key_file,
                    int(external), int(cfg.get("tor", "onion.local_port") or 0)), []


@attrs.frozen
class I2PDest:
    """Tahoe-LAFS's `[i2p] dest = true` (what `tahoe create-node --listen=i2p` writes, with
    tub.port = listen:i2p): an I2P destination whose keys are in `key_file` (txi2p's
    format; made on first use), announced with `port`."""

    key_file: Path
    port: int


@attrs.frozen
class StoragePlan:
    port: int | None  # None: no TCP listener (reached over I2P only)
    interface: str
    storage_dir: Path
    reserved_space: int
    hints: tuple[Hint, ...]
    nickname: str
    tor_control: str = ""  # endpoint of the Tor control port, for onion: hints
    i2p_sam: str = ""  # endpoint of the I2P SAM API, for i2p:KEYFILE hints
    i2p_options: tuple[tuple[str, str], ...] = ()
    port_file: Path | None = None  # port 0: remember the kernel's choice here
    tor_onion: TorOnion | None = None
    i2p_dest: I2PDest | None = None
    upload_idle_timeout: float = UPLOAD_IDLE_TIMEOUT
    anonymous: bool = False  # checked again where listeners and announcements are built
    onion_client_auth: str = ""  # [tor] onion.client_auth: authorized clients' keys
    expiration: ExpirationPolicy = attrs.field(factory=ExpirationPolicy)  # [storage] expire.*
    crawler_cycle: float = DEFAULT_CYCLE_TIME  # [storage] lease_crawler.cycle_time


_TCP = re.compile(r"tcp:(?:interface=([^:]+):)?([0-9]+)(?::interface=([^:]+))?")


@attrs.frozen
class Listener:
    """Where the node listens. Port 0: tub.port is not set and no port was remembered, so
    the kernel picks one, and the node writes it to `port_file` for its next runs
    (Tahoe-LAFS's client.port and introducer.port)."""

    port: int | None  # None: no TCP listener
    interface: str
    port_file: Path | None = None
    anonymous: bool = False  # checked again where the listener is opened


def plan_listener(directory: Path, cfg: ConfigValues, port_file: str,
                  i2p_listener: bool = False) -> tuple[Listener | None, list[Problem]]:
    """The tcp: listener of tub.port, or of DIR/`port_file` when tub.port is not set (for
    an anonymous node on loopback only), or a new port remembered there.

    tub.port may also hold Tahoe-LAFS's `listen:tor` (the TCP listener is then
    127.0.0.1:[tor] onion.local_port) and, where `i2p_listener`, `listen:i2p` (the node is
    reached at its [i2p] dest destination; with nothing else, it has no TCP listener:
    port None)."""
    anonymous = Policy.from_config(cfg).anonymous
    if cfg.is_set("node", "tub.port"):
        key, text = "[node] tub.port", str(cfg.get("node", "tub.port"))
    else:
        path = directory / port_file
        if not path.exists():
            return Listener(0, "127.0.0.1" if anonymous else "0.0.0.0", path, anonymous), []
        key, text = f"[node] tub.port (not set; remembered in {path})", path.read_text().strip()
    items = [item.strip() for item in text.split(",")]
    tcp = [item for item in items if item not in ("listen:tor", "listen:i2p")]
    problems = []
    if "listen:i2p" in items and not (i2p_listener and cfg.get("i2p", "dest")):
        problems.append(Problem(key, text, "listen:i2p needs [i2p] dest = true (and a storage "
                                "node; an introducer on I2P keeps a loopback tcp: tub.port "
                                "and names i2p:KEYFILE in tub.location)",
                                "set [i2p] dest, dest.port and dest.private_key_file"))
    if "listen:tor" in items:
        local = cfg.get("tor", "onion.local_port")
        if not (cfg.get("tor", "onion") and local):
            problems.append(Problem(key, text, "listen:tor needs [tor] onion = true and "
                                    "onion.local_port", "set [tor] onion, onion.local_port, "
                                    "onion.external_port and onion.private_key_file"))
        else:
            tcp.append(f"tcp:{local}:interface=127.0.0.1")
    tcp = [f"tcp:{item}" if item.isdigit() else item for item in tcp]
    matches = [_TCP.fullmatch(item) for item in tcp]
    if len(tcp) > 1 or None in matches or not (tcp or "listen:i2p" in items):
        problems.append(Problem(key, text, "a storage node or introducer listens on one "
                                "tcp:PORT (and, for storage, listen:i2p); other listeners "
                                "are not supported", "write e.g. tub.port = "
                                "tcp:3457:interface=127.0.0.1"))
    if problems:
        return None, problems
    if not tcp:
        return Listener(None, "127.0.0.1", None, anonymous), []
    if anonymous and not cfg.is_set("node", "tub.port") and not listens_privately(tcp[0]):
        return None, [Problem(key, text, "listens on a public interface, and the node is "
                              "anonymous", f"delete {port_file} (a new loopback port is "
                              "chosen) or set tub.port = tcp:PORT:interface=127.0.0.1")]
    match = matches[0]
    assert match is not None
    return Listener(int(match.group(2)), match.group(1) or match.group(3) or "0.0.0.0", None,
                    anonymous), []


def plan_i2p_dest(directory: Path, cfg: ConfigValues) -> tuple[I2PDest | None,
                                                                list[Problem]]:
    """The [i2p] dest destination of a node, if it has one."""
    if not cfg.get("i2p", "dest"):
        return None, []
    port = cfg.get("i2p", "dest.port")
    key_file = cfg.get("i2p", "dest.private_key_file")
    if not (port and key_file):
        return None, [Problem("[i2p] dest.port" if not port else "[i2p] dest.private_key_file",
                              "", "[i2p] dest = true needs dest.port and "
                              "dest.private_key_file", "write e.g. dest.port = 3457 and "
                              "dest.private_key_file = private/i2p_dest.privkey")]
    path = Path(key_file)
    return I2PDest(path if path.is_absolute() else directory / path, int(port)), []


def announced_hints(cfg: ConfigValues, role: str) -> tuple[tuple[Hint, ...], list[Problem]]:
    """tub.location's hints; none (or no tub.location) means AUTO, as in Tahoe-LAFS, except
    for an anonymous node, which must name its onion: or i2p: hints (or have a [tor]
    onion service)."""
    hints = tuple(cfg.get("node", "tub.location") or ())
    if hints:
        return hints, []
    if Policy.from_config(cfg).anonymous:
        if cfg.get("tor", "onion") or cfg.get("i2p", "dest"):  # reached at those alone
            return (), []
        return (), [Problem("[node] tub.location", "", f"an anonymous {role} must say where "
                            "it is reached", "write e.g. onion:80:hiddenServiceDir=DIR or "
                            "i2p:KEYFILE")]
    return (Hint("auto"),), []


def plan_storage(directory: Path, cfg: ConfigValues) -> tuple[StoragePlan | None,
                                                               list[Problem]]:
    """What the storage server will do, or the problems that stop it (one line each)."""
    if not cfg.get("storage", "enabled"):
        return None, []
    if cfg.get("node", "tub.port") == "disabled":  # the config check says it must listen
        return None, []
    listener, problems = plan_listener(directory, cfg, "client.port", i2p_listener=True)
    hints, more = announced_hints(cfg, "storage node")
    onion, most = plan_tor_onion(directory, cfg)
    dest, yet_more = plan_i2p_dest(directory, cfg)
    problems += more + most + yet_more
    if listener is not None and listener.port is None and (
            onion or any(h.kind in ("auto", "onion-service") for h in hints)):
        problems.append(Problem("[node] tub.port", str(cfg.get("node", "tub.port")),
                                "AUTO and onion services need a tcp: listener",
                                "add one, e.g. tcp:3457:interface=127.0.0.1"))
    if problems or listener is None:
        return None, problems
    storage_dir = cfg.get("storage", "storage_dir")
    return StoragePlan(listener.port, listener.interface,
                       Path(storage_dir) if storage_dir else directory / "storage",
                       cfg.get("storage", "reserved_space"), hints,
                       cfg.get("node", "nickname") or directory.name,
                       cfg.get("tor", "control.port") or DEFAULT_TOR_CONTROL,
                       Policy.from_config(cfg).i2p_sam or DEFAULT_I2P_SAM,
                       tuple(sorted((cfg.get("i2p", "session.options") or {}).items())),
                       listener.port_file, onion, dest,
                       cfg.get("storage", "upload.idle_timeout") or UPLOAD_IDLE_TIMEOUT,
                       listener.anonymous, cfg.get("tor", "onion.client_auth") or "",
                       expiration_policy(cfg),
                       cfg.get("storage", "lease_crawler.cycle_time") or DEFAULT_CYCLE_TIME), []


def expiration_policy(cfg: ConfigValues) -> ExpirationPolicy:
    """[storage] expire.* (already checked: config/check.py)."""
    enabled = bool(cfg.get("storage", "expire.enabled"))
    return ExpirationPolicy(
        enabled, cfg.get("storage", "expire.mode") or "age",
        cfg.get("storage", "expire.override_lease_duration"),
        cfg.get("storage", "expire.cutoff_date"),
        cfg.get("storage", "expire.immutable", True) is not False,
        cfg.get("storage", "expire.mutable", True) is not False)


def check_node(directory: Path) -> tuple[ConfigValues | None, list[str]]:
    """Read and check DIR/tahoe.cfg; every problem as one line."""
    config_file = directory / "tahoe.cfg"
    if not config_file.exists():
        return None, [f"{directory} is not a node directory (no tahoe.cfg); create one with "
                      "mistgrid create-node"]
    cfg, problems = load_config(config_file.read_text())
    from .endpoint_check import endpoint_problems  # noqa: PLC0415 (imports Twisted)

    problems += endpoint_problems(cfg) + violations(cfg)
    _plan, more = plan_storage(directory, cfg)
    lines = [f"tahoe.cfg {p}" for p in problems + more]
    return (None if lines else cfg), lines


def is_introducer(directory: Path) -> bool:
    """Tahoe's convention: the node type is named by the `tahoe-*.tac` file."""
    return any(p.suffix == ".tac" and "introducer" in p.name for p in directory.iterdir())


def introducer_furls(directory: Path, cfg: ConfigValues) -> list[tuple[str, str]]:
    """(petname, FURL) of every introducer this node uses."""
    found = []
    legacy = cfg.get("client", "introducer.furl")
    if legacy:
        found.append(("default", str(legacy)))
    path = directory / "private" / "introducers.yaml"
    if path.exists():
        try:
            data = yaml.safe_load(path.read_text()) or {}
            entries = data.get("introducers") or {}
            for name, entry in entries.items():
                furl = entry["furl"]
                if not (isinstance(furl, str) and furl.startswith("pb://")):
                    raise TypeError
                found.append((str(name), furl))
        except (yaml.YAMLError, AttributeError, KeyError, TypeError) as err:
            raise MistgridError(f"{path}: expected 'introducers: {{NAME: {{furl: pb://...}}}}'"
                                f" ({err.__class__.__name__})") from err
    return found
