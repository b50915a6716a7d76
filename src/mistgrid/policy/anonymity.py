"""The anonymity policy (pure core): which settings would reveal a node, and how every
outgoing connection must travel.

How this works: `Policy.from_config` distils tahoe.cfg into the few facts that routing
needs. `route(policy, host, port)` is the one decision for every outgoing connection:
`.onion` names go to Tor's SOCKS port, `.i2p` names to the I2P SAM API (both on their
usual local ports unless configured, as Tahoe-LAFS does; `[tor] enabled = false` and
`[i2p] enabled = false` turn them off), other hosts
directly, through `tcp.socks-proxy`, through Tor (`[connections] tcp = tor`, and always
when the node is anonymous), or nowhere (`tcp = disabled`, or no route exists): a
`Refused` carries the reason and the fix. Names are never resolved locally on a Tor or
SOCKS route: the proxy resolves them. `violations(cfg)` lists every setting that would
reveal an anonymous node (`[node] anonymous = true`, or `reveal-IP-address = false`), each
with its key, value and fix; the node refuses to start on any.
"""

from __future__ import annotations

import re

import attrs

from ..config.check import ConfigValues
from ..config.keys import Problem

DEFAULT_TOR_SOCKS = "tcp:127.0.0.1:9050"  # the system tor's SOCKS port
DEFAULT_I2P_SAM = "tcp:127.0.0.1:7656"  # the SAM bridge's usual port
DEFAULT_TOR_CONTROL = "tcp:127.0.0.1:9051"
# A blank [connections] tor.socks-proxy: the first of these that answers as SOCKS5 (the
# system tor, Tor Browser, then 9151).
TOR_SOCKS_CANDIDATES = ("tcp:127.0.0.1:9050", "tcp:127.0.0.1:9150", "tcp:127.0.0.1:9151")


@attrs.frozen
class Direct:
    """Plain TCP to the host named in the hint (names resolved by the system)."""

    name: str = "direct"


@attrs.frozen
class Socks:
    """Through a SOCKS5 proxy (Tor's, or tcp.socks-proxy), the proxy resolving the name."""

    proxy: str  # an endpoint description, tcp:HOST:PORT
    name: str  # "tor" or "socks"
    assumed: bool = False  # Tor's usual port, which tahoe.cfg does not name


@attrs.frozen
class I2P:
    """Through the I2P router's SAM API."""

    sam: str
    name: str = "i2p"
    assumed: bool = False  # the usual SAM port, which tahoe.cfg does not name


@attrs.frozen
class Refused:
    reason: str
    name: str = "refused"


Route = Direct | Socks | I2P | Refused


@attrs.frozen
class Policy:
    anonymous: bool = False
    tcp: str = "tcp"  # tcp | tor | disabled
    tcp_socks: str | None = None
    tor_socks: str | None = None
    i2p_sam: str | None = None
    tor_assumed: bool = False  # tor_socks is only the usual port ([tor] enabled, the default)
    i2p_assumed: bool = False  # i2p_sam is only the usual port ([i2p] enabled, the default)

    @classmethod
    def from_config(cls, cfg: ConfigValues) -> Policy:
        anonymous = bool(cfg.get("node", "anonymous")) or \
            not cfg.get("node", "reveal-IP-address")
        tor_socks = None
        if cfg.is_set("connections", "tor.socks-proxy"):  # blank: the default port
            tor_socks = cfg.get("connections", "tor.socks-proxy") or DEFAULT_TOR_SOCKS
        elif cfg.get("tor", "socks.port"):
            tor_socks = cfg.get("tor", "socks.port")
        elif cfg.get("tor", "enabled"):  # Tahoe: use Tor if needed, on the usual port
            tor_socks = DEFAULT_TOR_SOCKS
        i2p_sam = None
        if cfg.is_set("connections", "i2p.sam-api"):
            i2p_sam = cfg.get("connections", "i2p.sam-api") or DEFAULT_I2P_SAM
        elif cfg.get("i2p", "sam.port"):
            i2p_sam = cfg.get("i2p", "sam.port")
        elif cfg.get("i2p", "enabled"):
            i2p_sam = DEFAULT_I2P_SAM
        tor_named = cfg.is_set("connections", "tor.socks-proxy") or \
            bool(cfg.get("tor", "socks.port")) or bool(cfg.get("tor", "control.port"))
        i2p_named = cfg.is_set("connections", "i2p.sam-api") or bool(cfg.get("i2p", "sam.port"))
        return cls(anonymous, cfg.get("connections", "tcp") or "tcp",
                   cfg.get("connections", "tcp.socks-proxy") or None, tor_socks, i2p_sam,
                   tor_socks is not None and not tor_named,
                   i2p_sam is not None and not i2p_named)


def route(policy: Policy, host: str, port: int) -> Route:
    """How to reach host:port under `policy` (or why not)."""
    name = host.lower().rstrip(".")
    if name.endswith(".onion"):
        if policy.tor_socks is None:
            return Refused(f"{host} is a Tor onion address and no Tor is configured; set "
                           "[connections] tor.socks-proxy (or [tor] socks.port)")
        return Socks(policy.tor_socks, "tor", policy.tor_assumed)
    if name.endswith(".i2p"):
        if policy.i2p_sam is None:
            return Refused(f"{host} is an I2P address and no I2P router is configured; set "
                           "[connections] i2p.sam-api (or [i2p] sam.port)")
        return I2P(policy.i2p_sam, assumed=policy.i2p_assumed)
    if policy.tcp == "disabled":  # never a TCP hint, anonymous or not
        return Refused(f"TCP connections are disabled ([connections] tcp = disabled), and "
                       f"{host} is neither a .onion nor a .i2p address")
    if policy.anonymous:
        if policy.tor_socks is None:  # from_config always sets it for anonymous nodes
            return Refused("this node is anonymous and has no Tor to reach TCP addresses")
        return Socks(policy.tor_socks, "tor", policy.tor_assumed)
    if policy.tcp == "tor":
        return Socks(policy.tor_socks or DEFAULT_TOR_SOCKS, "tor", policy.tor_assumed)
    if policy.tcp_socks is not None:
        return Socks(policy.tcp_socks, "socks")
    return Direct()


_LOOPBACK = re.compile(r"127\.[0-9.]+|::1|\[::1\]|localhost")


FAKE_LOCATION = "client.fakelocation"  # the seed's "don't call us" hint, with port 0


def is_fake_location(host: str, port: int | None) -> bool:
    """The seed document's literal `client.fakelocation:0`, which names no address. Any
    other TCP hint, port 0 included, announces one."""
    return host.lower() == FAKE_LOCATION and port == 0


def listens_privately(description: str) -> bool:
    """True when a server endpoint description binds only to loopback (or is not TCP).
    A bare port number is TCP on every interface, as Tahoe-LAFS reads it."""
    fields = endpoint_fields(description)
    kind = fields[0].strip().lower() if fields else ""
    if kind.isdigit():
        return False
    if kind not in ("tcp", "tcp6", "ssl"):
        return kind != ""
    interface = next((f.partition("=")[2] for f in fields[1:]
                      if f.startswith("interface=")), None)
    return interface is not None and _LOOPBACK.fullmatch(interface) is not None


def endpoint_fields(description: str) -> list[str]:
    """The colon-separated fields of a Twisted endpoint description, with Twisted's
    backslash escapes undone (so `interface=\\:\\:1` is the interface ::1)."""
    fields, current, chars = [], [], iter(description)
    for char in chars:
        if char == "\\":
            current.append(next(chars, ""))
        elif char == ":":
            fields.append("".join(current))
            current = []
        else:
            current.append(char)
    fields.append("".join(current))
    return fields


def violations(cfg: ConfigValues) -> list[Problem]:
    """Every setting that would reveal an anonymous node, and routing settings that
    contradict each other (for every node)."""
    policy = Policy.from_config(cfg)
    found = []
    if cfg.get("connections", "tcp") == "tor" and not cfg.get("tor", "enabled"):
        found.append(Problem("[connections] tcp", "tor", "sends TCP through Tor, but "
                             "[tor] enabled = false", "enable Tor, or write tcp = tcp or "
                             "tcp = disabled"))
    if not policy.anonymous:
        return found
    for hint in cfg.get("node", "tub.location") or ():
        if hint.kind == "auto":
            found.append(Problem("[node] tub.location", "AUTO", "AUTO announces this "
                                 "node's IP addresses, and the node is anonymous",
                                 "list only onion:, tor: and i2p: hints (or leave it empty "
                                 "for a client)"))
        elif hint.kind == "tcp" and not is_fake_location(hint.host, hint.port):
            found.append(Problem("[node] tub.location", f"tcp:{hint.host}:{hint.port}",
                                 "a TCP hint announces an address, and the node is "
                                 "anonymous", "list only onion:, tor: and i2p: hints"))
    for key in ("tub.port", "web.port"):
        value = cfg.get("node", key) or ""
        for description in value.split(",") if value and value != "disabled" else []:
            if not listens_privately(description.strip()):
                found.append(Problem(f"[node] {key}", description.strip(),
                                     "listens on a public interface, so scanning this "
                                     "node's address finds it",
                                     "add :interface=127.0.0.1 (Tor and I2P reach it "
                                     "there)"))
    if cfg.is_set("connections", "tcp") and cfg.get("connections", "tcp") == "tcp":
        found.append(Problem("[connections] tcp", "tcp", "direct TCP connections reveal "
                             "an anonymous node", "write tcp = tor (or disabled)"))
    if cfg.get("connections", "tcp.socks-proxy"):
        found.append(Problem("[connections] tcp.socks-proxy",
                             cfg.get("connections", "tcp.socks-proxy"),
                             "a plain SOCKS proxy is not known to hide this node",
                             "if it is Tor's SOCKS port, give it as tor.socks-proxy"))
    return found
