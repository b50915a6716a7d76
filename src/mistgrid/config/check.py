"""Check a whole tahoe.cfg: every key, then the rules that tie keys together.

`load_config(text)` returns the parsed values and every problem found, each one line
(key, value, what is wrong, the fix), so a node can refuse to start on all of them at
once. The anonymity policy (which settings would reveal the node) builds on this.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import attrs

from .keys import Problem, check_keys
from .reader import read_config

DEFAULTS: dict[tuple[str, str], Any] = {
    ("node", "reveal-IP-address"): True,
    ("node", "anonymous"): False,
    ("client", "shares.needed"): 3,
    ("client", "shares.happy"): 7,
    ("client", "shares.total"): 10,
    ("client", "mutable.format"): "sdmf",
    ("client", "mutable.key_pool"): 2,
    ("connections", "tcp"): "tcp",
    ("storage", "enabled"): False,
    ("storage", "reserved_space"): 0,
    ("tor", "enabled"): True,
    ("tor", "launch"): False,
    ("i2p", "enabled"): True,
    ("i2p", "launch"): False,
}


def _read_only(values: Mapping[tuple[str, str], Any]) -> Mapping[tuple[str, str], Any]:
    return MappingProxyType(dict(values))


@attrs.frozen
class ConfigValues:
    """The node's whole configuration, parsed, typed and read-only (the frozen model every
    part of the node reads); `get` falls back to the documented default."""

    values: Mapping[tuple[str, str], Any] = attrs.field(converter=_read_only)

    def get(self, section: str, key: str, default: Any = None) -> Any:
        if (section, key) in self.values:
            return self.values[(section, key)]
        return DEFAULTS.get((section, key), default)

    def is_set(self, section: str, key: str) -> bool:
        return (section, key) in self.values


def _hints_text(hints: Any) -> str:
    """Hints as tahoe.cfg would say them (for messages)."""
    out = []
    for hint in hints:
        if hint.kind == "auto":
            out.append("AUTO")
        elif hint.kind == "onion-service":
            out.append(f"onion:{hint.port}:hiddenServiceDir={hint.path}")
        elif hint.kind == "i2p-destination":
            out.append(f"i2p:{hint.path}")
        else:
            out.append(f"{hint.kind}:{hint.host}" + (f":{hint.port}" if hint.port is not None
                                                     else ""))
    return ",".join(out)


def _cross_checks(cfg: ConfigValues) -> list[Problem]:
    problems = []
    k, happy, n = (cfg.get("client", f"shares.{x}") for x in ("needed", "happy", "total"))
    if k > n:
        problems.append(Problem("[client] shares.needed", str(k),
                                f"more than shares.total ({n})",
                                "make shares.needed <= shares.total"))
    if happy > n:
        problems.append(Problem("[client] shares.happy", str(happy),
                                f"more than shares.total ({n})",
                                "make shares.happy <= shares.total"))
    port, location = cfg.get("node", "tub.port"), cfg.get("node", "tub.location", ())
    # An empty tub.location is the seed's "do not listen, do not announce" (client
    # use-case 3): it goes with a disabled or absent tub.port.
    quiet = location == () and port in (None, "disabled")
    if (port == "disabled") != (location is None) and cfg.is_set("node", "tub.location") \
            and not quiet:
        if location is None:
            problems.append(Problem("[node] tub.location", "disabled",
                                    "tub.port and tub.location must be disabled together",
                                    "write disabled for both, or neither"))
        else:
            problems.append(Problem("[node] tub.location", _hints_text(location),
                                    "names addresses to announce, but tub.port = disabled: "
                                    "the node listens nowhere",
                                    "give tub.port a listener (e.g. "
                                    "tcp:3457:interface=127.0.0.1), or leave tub.location "
                                    "empty or disabled"))
    if port == "disabled" and cfg.get("storage", "enabled"):
        problems.append(Problem("[storage] enabled", "true",
                                "a storage server must listen, but tub.port is disabled",
                                "give tub.port an endpoint, or set [storage] enabled = false"))
    if cfg.get("tor", "launch"):
        # Tahoe's five valid combinations: launching is one, naming a running Tor another.
        for key in ("socks.port", "control.port"):
            if cfg.get("tor", key):
                problems.append(Problem(f"[tor] {key}", str(cfg.get("tor", key)),
                                        "names a running Tor, but [tor] launch = true starts "
                                        "the node's own",
                                        f"remove [tor] {key}, or set launch = false"))
        if cfg.get("connections", "tor.socks-proxy"):
            problems.append(Problem("[connections] tor.socks-proxy",
                                    str(cfg.get("connections", "tor.socks-proxy")),
                                    "names a running Tor, but [tor] launch = true starts "
                                    "the node's own", "remove it, or set [tor] launch = false"))
        if not cfg.get("tor", "enabled"):
            problems.append(Problem("[tor] launch", "true", "[tor] enabled = false",
                                    "set enabled = true, or launch = false"))
    if cfg.get("tor", "client_auth.private_key_file") and not (
            cfg.get("tor", "launch") or cfg.get("tor", "control.port")):
        problems.append(Problem("[tor] client_auth.private_key_file",
                                str(cfg.get("tor", "client_auth.private_key_file")),
                                "the node gives this key to Tor through its control port, "
                                "and has none", "set [tor] launch = true, or [tor] "
                                "control.port"))
    if cfg.get("tor", "bridges") and not cfg.get("tor", "launch"):
        problems.append(Problem("[tor] bridges", str(cfg.get("tor", "bridges")),
                                "bridges are given to the Tor the node launches",
                                "set [tor] launch = true (or put the bridges in your own "
                                "Tor's torrc)"))
    if cfg.get("tor", "launch.torrc") and not cfg.get("tor", "launch"):
        problems.append(Problem("[tor] launch.torrc", str(cfg.get("tor", "launch.torrc")),
                                "is read only when the node launches its own Tor",
                                "set [tor] launch = true, or remove launch.torrc"))
    problems += _i2p_launch_problems(cfg)
    # anonymous and reveal-IP-address that disagree are not refused: the node is anonymous
    # if either says so (the safe reading), so the seed's client lines work on a directory
    # that create-client wrote with reveal-IP-address = true.
    return problems


def _expiry_checks(cfg: ConfigValues, flagged: bool = False) -> list[Problem]:
    """[storage] expire.*: the combinations garbage-collection.rst allows (`flagged`: the
    cutoff date was given but is not a date, said already)."""
    problems = []
    mode = cfg.get("storage", "expire.mode")
    if cfg.get("storage", "expire.enabled") and mode is None:
        problems.append(Problem("[storage] expire.enabled", "true",
                                "needs expire.mode (there is no default)",
                                "add expire.mode = age (or cutoff-date)"))
    if mode == "cutoff-date" and not cfg.is_set("storage", "expire.cutoff_date") \
            and not flagged:
        problems.append(Problem("[storage] expire.mode", "cutoff-date",
                                "needs expire.cutoff_date",
                                "add expire.cutoff_date = YYYY-MM-DD"))
    if mode == "cutoff-date" and cfg.is_set("storage", "expire.override_lease_duration"):
        problems.append(Problem("[storage] expire.override_lease_duration",
                                str(cfg.get("storage", "expire.override_lease_duration")),
                                "only works with expire.mode = age",
                                "remove it, or use expire.mode = age"))
    if mode != "cutoff-date" and cfg.is_set("storage", "expire.cutoff_date"):
        problems.append(Problem("[storage] expire.cutoff_date",
                                str(cfg.get("storage", "expire.cutoff_date")),
                                "only works with expire.mode = cutoff-date",
                                "remove it, or use expire.mode = cutoff-date"))
    return problems


def load_config(text: str) -> tuple[ConfigValues, list[Problem]]:
    raw = read_config(text)
    parsed, problems = check_keys(raw)
    cfg = ConfigValues(parsed)
    flagged = any(p.key == "[storage] expire.cutoff_date" for p in problems)
    return cfg, problems + _cross_checks(cfg) + _expiry_checks(cfg, flagged)


def _i2p_launch_problems(cfg: ConfigValues) -> list[Problem]:
    """[i2p] launch starts the node's own router: naming a running one too is refused
    (Tahoe refuses sam.port with launch), as are launch keys without launch."""
    problems = []
    if cfg.get("i2p", "launch"):
        if cfg.get("i2p", "sam.port"):
            problems.append(Problem("[i2p] sam.port", str(cfg.get("i2p", "sam.port")),
                                    "names a running I2P router, but [i2p] launch = true "
                                    "starts the node's own",
                                    "remove sam.port, or set launch = false"))
        if cfg.get("connections", "i2p.sam-api"):
            problems.append(Problem("[connections] i2p.sam-api",
                                    str(cfg.get("connections", "i2p.sam-api")),
                                    "names a running I2P router, but [i2p] launch = true "
                                    "starts the node's own",
                                    "remove it, or set [i2p] launch = false"))
        if not cfg.get("i2p", "enabled"):
            problems.append(Problem("[i2p] launch", "true", "[i2p] enabled = false",
                                    "set enabled = true, or launch = false"))
    elif cfg.get("i2p", "launch.config"):
        problems.append(Problem("[i2p] launch.config", str(cfg.get("i2p", "launch.config")),
                                "is read only when the node launches its own I2P router",
                                "set [i2p] launch = true, or remove launch.config"))
    return problems
