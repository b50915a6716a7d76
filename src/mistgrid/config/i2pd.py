"""i2pd.conf, read and written: the configuration of the I2P router a node launches
(`[i2p] launch = true`) or finds (`[i2p] i2p.configdir`).

How this works: i2pd.conf is INI-like: `key = value` lines, keys before the first
`[section]` belong to the main section (here the section ""), `#` starts a comment.
`parse()` gives {(section, key): value}; `render()` writes such a table back. The launched
router's configuration is `launch_config()`: mistgrid's defaults (SAM on loopback at a
port the node chose; every other listener, UPnP and the clock sync off), then the
pre-populated `i2pd.conf` of `[i2p] i2p.configdir`, then `[i2p] launch.config` (a person's
own lines, or a private network's: the tests pin every launched i2pd this way), and last
what the node needs to work at all (SAM at that port, in the foreground). Pure.
"""

from __future__ import annotations

from ..errors import MistgridError

Table = dict[tuple[str, str], str]
DEFAULT_SAM = ("127.0.0.1", 7656)  # i2pd's own defaults

# What a launched router does unless told otherwise: nothing listens but SAM (which the
# node uses) and the router's own transports; nothing talks to the local network.
DEFAULTS: Table = {
    ("", "daemon"): "false",
    ("", "service"): "false",
    ("http", "enabled"): "false",
    ("httpproxy", "enabled"): "false",
    ("socksproxy", "enabled"): "false",
    ("bob", "enabled"): "false",
    ("i2cp", "enabled"): "false",
    ("i2pcontrol", "enabled"): "false",
    ("upnp", "enabled"): "false",
    ("nettime", "enabled"): "false",
}
DEBIAN_CERTIFICATES = "/usr/share/i2pd/certificates"  # reseed and family signers


class I2pdConfigError(MistgridError):
    """An i2pd.conf line that is neither a section, a key = value, nor a comment."""


def parse(text: str, where: str) -> Table:
    """{(section, key): value} of an i2pd.conf; `where` names the file in errors."""
    table: Table = {}
    section = ""
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip().lower()
            continue
        key, equals, value = line.partition("=")
        if not equals or not key.strip():
            raise I2pdConfigError(f"{where} line {number}: {raw.strip()!r} is not "
                                  "`key = value`; fix: write i2pd.conf lines "
                                  "(see i2pd's documentation)")
        table[(section, key.strip().lower())] = value.strip()
    return table


def render(table: Table) -> str:
    """i2pd.conf text of `table` (main section first, then each section once)."""
    sections: dict[str, list[str]] = {}
    for (section, key), value in table.items():
        sections.setdefault(section, []).append(f"{key} = {value}")
    lines = sections.pop("", [])
    for section, entries in sections.items():
        lines += ["", f"[{section}]", *entries]
    return "\n".join(lines) + "\n"


def launch_config(data_dir: str, sam_port: int, base: Table, extra: Table,
                  certificates: str | None) -> str:
    """The i2pd.conf of a launched router (see the module's comment for the order)."""
    table: Table = dict(DEFAULTS)
    table[("", "log")] = "file"
    table[("", "logfile")] = f"{data_dir}/i2pd.log"
    if certificates:
        table[("", "certsdir")] = certificates
    table.update(base)
    table.update(extra)
    table.update({("", "daemon"): "false", ("", "service"): "false",
                  ("sam", "enabled"): "true", ("sam", "address"): "127.0.0.1",
                  ("sam", "port"): str(sam_port)})
    return render(table)


LISTENERS = ("http", "httpproxy", "socksproxy", "bob", "i2cp", "i2pcontrol")
_TRUE = ("true", "1", "yes")


def revealing(base: Table, extra: Table) -> list[tuple[str, str]]:
    """What an anonymous node refuses in the router's configuration (`base`: i2p.configdir's
    i2pd.conf, `extra`: launch.config): a listener other than SAM on an address beyond
    loopback, where anyone on the network could use the node's router. (key = value, which
    file said it) for each."""
    table = {**DEFAULTS, **base, **extra}
    found = []
    for section in LISTENERS:
        address = table.get((section, "address"), "127.0.0.1")
        if table.get((section, "enabled"), "false").lower() in _TRUE and not (
                address.startswith("127.") or address in ("::1", "localhost")):
            where = "launch.config" if (section, "address") in extra or \
                (section, "enabled") in extra else "i2p.configdir"
            found.append((f"[{section}] address = {address}", where))
    return found


def sam_endpoint(table: Table, where: str) -> str:
    """The SAM API an i2pd.conf opens, as an endpoint description."""
    if table.get(("sam", "enabled"), "true").lower() not in _TRUE:
        raise I2pdConfigError(f"{where}: the SAM API is disabled ([sam] enabled); fix: "
                              "enable it (the node talks to I2P through SAM)")
    host = table.get(("sam", "address"), DEFAULT_SAM[0])
    port = table.get(("sam", "port"), str(DEFAULT_SAM[1]))
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise I2pdConfigError(f"{where}: [sam] port = {port!r} is not a port number")
    escaped = host.replace(":", "\\:")
    return f"tcp:{escaped}:{port}"
