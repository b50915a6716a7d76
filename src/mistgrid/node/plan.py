"""What a node will run, decided from its checked tahoe.cfg before anything starts.

How this works: `check_node` reads and checks DIR/tahoe.cfg as a whole and adds what the
node itself cannot do yet (`plan_storage`: a storage server needs a tcp: listener and
location hints); every problem is one line. No Twisted here: `mistgrid start` uses it to
refuse in the foreground.
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
from ..policy.anonymity import DEFAULT_I2P_SAM, DEFAULT_TOR_CONTROL, Policy, violations


@attrs.frozen
class StoragePlan:
    port: int
    interface: str
    storage_dir: Path
    reserved_space: int
    hints: tuple[Hint, ...]
    nickname: str
    tor_control: str = ""  # endpoint of the Tor control port, for onion: hints
    i2p_sam: str = ""  # endpoint of the I2P SAM API, for i2p:KEYFILE hints
    i2p_options: tuple[tuple[str, str], ...] = ()


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
        if hint.kind == "auto":
            problems.append(Problem("[node] tub.location", hint.kind,
                                    "not supported by mistgrid run yet",
                                    "list tcp:HOST:PORT, tor:NAME.onion:PORT, "
                                    "onion:PORT:hiddenServiceDir=DIR or i2p:KEYFILE hints"))
    if not hints:
        problems.append(Problem("[node] tub.location", "", "a storage node must say where "
                                "clients reach it", "write e.g. tcp:127.0.0.1:3457"))
    if problems or match is None:
        return None, problems
    storage_dir = cfg.get("storage", "storage_dir")
    return StoragePlan(int(match.group(2)), match.group(1) or match.group(3) or "0.0.0.0",
                       Path(storage_dir) if storage_dir else directory / "storage",
                       cfg.get("storage", "reserved_space"), tuple(hints),
                       cfg.get("node", "nickname") or directory.name,
                       cfg.get("tor", "control.port") or DEFAULT_TOR_CONTROL,
                       Policy.from_config(cfg).i2p_sam or DEFAULT_I2P_SAM,
                       tuple(sorted((cfg.get("i2p", "session.options") or {}).items()))), []


def check_node(directory: Path) -> tuple[ConfigValues | None, list[str]]:
    """Read and check DIR/tahoe.cfg; every problem as one line."""
    config_file = directory / "tahoe.cfg"
    if not config_file.exists():
        return None, [f"{directory} is not a node directory (no tahoe.cfg); create one with "
                      "mistgrid create-node"]
    cfg, problems = load_config(config_file.read_text())
    problems += violations(cfg)
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
