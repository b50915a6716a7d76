"""Every tahoe.cfg key mistgrid knows: the seed document's and Tahoe-LAFS 1.20's.

How this works: `KEYS` maps (section, key) to the parser of its value. `check_keys`
parses every entry, and reports unknown sections and keys (with a "did you mean"),
collecting every problem rather than stopping at the first. Plugin and grid-manager
sections are accepted as they are, since their keys belong to their plugins.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

import attrs

from . import values
from .location import location_hints
from .reader import RawConfig

Parser = Callable[[str], Any]

KEYS: dict[tuple[str, str], Parser] = {
    # [node]
    ("node", "nickname"): values.text,
    ("node", "web.port"): values.endpoint,
    ("node", "web.static"): values.text,
    ("node", "tub.port"): values.port_list,
    ("node", "tub.location"): location_hints,
    ("node", "log_gatherer.furl"): values.furl,
    ("node", "timeout.keepalive"): values.positive_int,
    ("node", "timeout.disconnect"): values.positive_int,
    ("node", "tempdir"): values.text,
    ("node", "reveal-IP-address"): values.boolean,
    ("node", "anonymous"): values.boolean,  # the seed document's name for the same idea
    # [connections]
    ("connections", "tcp"): values.tcp_handler,
    ("connections", "tcp.socks-proxy"): values.endpoint,
    ("connections", "tor.socks-proxy"): values.endpoint,
    ("connections", "i2p.sam-api"): values.endpoint,
    # [tor]
    ("tor", "enabled"): values.boolean,
    ("tor", "socks.port"): values.endpoint,
    ("tor", "control.port"): values.endpoint,
    ("tor", "launch"): values.boolean,
    ("tor", "tor.executable"): values.text,
    ("tor", "launch.torrc"): values.text,  # mistgrid: extra torrc lines for launch = true
    ("tor", "bridges"): values.text,  # mistgrid: a file of Bridge lines, for launch = true
    ("tor", "onion"): values.boolean,
    ("tor", "onion.local_port"): values.positive_int,
    ("tor", "onion.external_port"): values.positive_int,
    ("tor", "onion.private_key_file"): values.text,
    # mistgrid: v3 onion client authorization (a directory of clients' *.auth files; a
    # client's key file, as Tor writes .auth_private files)
    ("tor", "onion.client_auth"): values.text,
    ("tor", "client_auth.private_key_file"): values.text,
    # [i2p]
    ("i2p", "enabled"): values.boolean,
    ("i2p", "sam.port"): values.endpoint,
    ("i2p", "launch"): values.boolean,
    ("i2p", "i2p.configdir"): values.text,
    ("i2p", "i2p.executable"): values.text,
    ("i2p", "launch.config"): values.text,  # mistgrid: extra i2pd.conf lines for launch
    ("i2p", "dest"): values.boolean,
    ("i2p", "dest.port"): values.positive_int,
    ("i2p", "dest.private_key_file"): values.text,
    # mistgrid's own: I2CP options for the node's SAM sessions, "key=value,key=value"
    ("i2p", "session.options"): values.key_values,
    # [client]
    ("client", "introducer.furl"): values.furl,
    ("client", "helper.furl"): values.furl,
    ("client", "shares.needed"): values.share_count,
    ("client", "shares.total"): values.share_count,
    ("client", "shares.happy"): values.share_count,
    ("client", "mutable.format"): values.mutable_format,
    # mistgrid's own: RSA keys made ahead of time for new mutable files (0: none)
    ("client", "mutable.key_pool"): values.whole_number,
    ("client", "peers.preferred"): values.text,
    ("client", "force_foolscap"): values.boolean,
    # [storage]
    ("storage", "enabled"): values.boolean,
    ("storage", "anonymous"): values.boolean,
    ("storage", "readonly"): values.boolean,
    ("storage", "reserved_space"): values.size,
    ("storage", "storage_dir"): values.text,
    ("storage", "force_foolscap"): values.boolean,
    ("storage", "plugins"): values.text,
    ("storage", "expire.enabled"): values.boolean,
    ("storage", "expire.mode"): values.expire_mode,
    ("storage", "expire.override_lease_duration"): values.duration,
    ("storage", "expire.cutoff_date"): values.date,
    ("storage", "expire.immutable"): values.boolean,
    ("storage", "expire.mutable"): values.boolean,
    # mistgrid's own: seconds an immutable upload may go without a write before it is
    # aborted (its space freed, another upload of the same share allowed)
    ("storage", "upload.idle_timeout"): values.positive_int,
    # mistgrid's own: how often the lease crawler starts a pass over the store
    ("storage", "lease_crawler.cycle_time"): values.duration,
    # [helper]
    ("helper", "enabled"): values.boolean,
}

FREE_SECTIONS = ("storageserver.plugins.", "storageclient.plugins.", "grid_managers",
                 "grid_manager_certificates")


@attrs.frozen
class Problem:
    """One line of a refusal: the key, its value, what is wrong, the fix."""

    key: str
    value: str
    problem: str
    fix: str
    line: int = 0
    whole_line: bool = False  # `key` is a line of the file that could not be read

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line else ""
        if self.whole_line:
            return f"{where}{self.key!r}: {self.problem}; fix: {self.fix}"
        return f"{where}{self.key} = {self.value!r}: {self.problem}; fix: {self.fix}"


def _read_fix(problem: str) -> str:
    if "before any [section]" in problem:
        return "put it under its section, e.g. a [node] line above it"
    return "write it as key = value, or remove it"


# Keys are matched in any case, as Tahoe-LAFS's configparser does: (section, lower) -> key.
CANONICAL = {(section, key.lower()): key for (section, key) in KEYS}


def _free(section: str) -> bool:
    return any(section == s or section.startswith(s) for s in FREE_SECTIONS)


def _suggest(section: str, key: str) -> str:
    names = [k for (s, k) in KEYS if s == section]
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
    if close:
        return f"did you mean [{section}] {close[0]}?"
    elsewhere = [s for (s, k) in KEYS if k == key]
    if elsewhere:
        return f"did you mean [{elsewhere[0]}] {key}?"
    return "remove it (see docs/configuration.md for the keys mistgrid knows)"


def check_keys(raw: RawConfig) -> tuple[dict[tuple[str, str], Any], list[Problem]]:
    """Parse every known key; every problem found, in file order."""
    parsed: dict[tuple[str, str], Any] = {}
    problems = [Problem(p.text, "", p.problem, _read_fix(p.problem), p.line, whole_line=True)
                for p in raw.problems]
    known_sections = {s for (s, _k) in KEYS}
    for section in raw.sections:
        if section not in known_sections and not _free(section):
            close = difflib.get_close_matches(section, sorted(known_sections), n=1)
            fix = f"did you mean [{close[0]}]?" if close else "remove the section"
            problems.append(Problem(f"[{section}]", "", "unknown section", fix))
    for (section, lower), entry in sorted(raw.entries.items(), key=lambda kv: kv[1].line):
        key = CANONICAL.get((section, lower), entry.name or lower)
        name = f"[{section}] {key}"
        parser = KEYS.get((section, key))
        if parser is None:
            if section in known_sections:
                problems.append(Problem(name, entry.value, "unknown key",
                                        _suggest(section, key), entry.line))
            continue
        try:
            parsed[(section, key)] = parser(entry.value)
        except values.InvalidValueError as err:
            problems.append(Problem(name, entry.value, err.problem, err.fix, entry.line))
    return parsed, problems
