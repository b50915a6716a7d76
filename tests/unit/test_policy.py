"""The anonymity policy as tables: how every kind of address is reached under every kind
of configuration, and which settings an anonymous node refuses (key, value, fix)."""

from __future__ import annotations

import functools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mistgrid.config.check import load_config
from mistgrid.errors import MistgridError
from mistgrid.gbs.nurl import parse_nurl
from mistgrid.grid.servers import choose_nurl, rank_nurls
from mistgrid.net.connector import Connector
from mistgrid.policy.anonymity import (
    DEFAULT_TOR_SOCKS,
    I2P,
    Direct,
    Policy,
    Refused,
    Socks,
    listens_privately,
    route,
    violations,
)

TOR = "tcp:127.0.0.1:9999"
SAM = "tcp:127.0.0.1:7777"
ONION = ("abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrstuvwx.onion", 80)
I2P_HOST = ("ukeu3k5oycgaauneqgtnvselmt4yemvoilkln7jpvamvfx7dnkdq.b32.i2p", 0)
TCP = ("storage.example", 3457)
LOOP = ("127.0.0.1", 3457)


def policy(text: str) -> Policy:
    cfg, problems = load_config(text)
    assert problems == []
    return Policy.from_config(cfg)


PLAIN = ""
ANON = "[node]\nanonymous = true\n"
ANON_TOR = f"[node]\nanonymous = true\n[connections]\ntor.socks-proxy = {TOR}\n"
HIDE = f"[node]\nreveal-IP-address = false\n[connections]\ntcp = tor\n[tor]\nsocks.port = {TOR}\n"
TCP_TOR = f"[connections]\ntcp = tor\ntor.socks-proxy = {TOR}\n"
DISABLED = f"[connections]\ntcp = disabled\ni2p.sam-api = {SAM}\n"
SOCKS = "[connections]\ntcp.socks-proxy = tcp:127.0.0.1:1080\n"
CLIENT2 = f"[connections]\ntor.socks-proxy = {TOR}\ni2p.sam-api = {SAM}\n"
BLANK = "[connections]\ntor.socks-proxy =\ni2p.sam-api =\n"
NO_TOR_I2P = "[tor]\nenabled = false\n[i2p]\nenabled = false\n"

TOR_ROUTE = Socks(TOR, "tor")
CASES = [
    # config, address, expected route (or the Refused reason's start)
    (PLAIN, TCP, Direct()),
    (PLAIN, LOOP, Direct()),
    (PLAIN, ONION, Socks(DEFAULT_TOR_SOCKS, "tor", assumed=True)),  # Tahoe: Tor on 9050
    (PLAIN, I2P_HOST, I2P("tcp:127.0.0.1:7656", assumed=True)),  # and I2P's SAM on 7656
    (NO_TOR_I2P, ONION, "is a Tor onion address and no Tor is configured"),
    (NO_TOR_I2P, I2P_HOST, "is an I2P address and no I2P router is configured"),
    (NO_TOR_I2P, TCP, Direct()),
    (ANON + "[tor]\nenabled = false\n", TCP,
     "this node is anonymous and has no Tor to reach TCP addresses"),
    (CLIENT2, TCP, Direct()),  # seed client use-case 2: Tor/I2P only for their addresses
    (CLIENT2, ONION, TOR_ROUTE),
    (CLIENT2, I2P_HOST, I2P(SAM)),
    (BLANK, ONION, Socks(DEFAULT_TOR_SOCKS, "tor")),  # blank: the default ports
    (BLANK, I2P_HOST, I2P("tcp:127.0.0.1:7656")),
    (ANON, TCP, Socks(DEFAULT_TOR_SOCKS, "tor", assumed=True)),  # seed client use-case 3
    (ANON, LOOP, Socks(DEFAULT_TOR_SOCKS, "tor", assumed=True)),  # even loopback: never direct
    (ANON_TOR, TCP, TOR_ROUTE),
    (ANON_TOR, ONION, TOR_ROUTE),
    (ANON_TOR, I2P_HOST, I2P("tcp:127.0.0.1:7656", assumed=True)),
    (HIDE, TCP, TOR_ROUTE),  # Tahoe's spelling of the same
    (TCP_TOR, TCP, TOR_ROUTE),
    (DISABLED, TCP, "TCP connections are disabled"),
    (DISABLED, I2P_HOST, I2P(SAM)),
    (DISABLED, ONION, Socks(DEFAULT_TOR_SOCKS, "tor", assumed=True)),
    (SOCKS, TCP, Socks("tcp:127.0.0.1:1080", "socks")),
    (SOCKS, ONION, Socks(DEFAULT_TOR_SOCKS, "tor", assumed=True)),
]


@pytest.mark.parametrize("text, address, expected", CASES)
def test_route_table(text: str, address: tuple[str, int],
                     expected: Direct | Socks | I2P | str) -> None:
    found = route(policy(text), *address)
    if isinstance(expected, str):
        assert isinstance(found, Refused) and expected in found.reason, found
    else:
        assert found == expected


def test_anonymous_never_routes_direct() -> None:
    """Whatever the address, an anonymous policy gives Tor, I2P or a refusal."""
    for text in (ANON, ANON_TOR, HIDE):
        for address in (TCP, LOOP, ONION, I2P_HOST, ("::1", 1), ("10.0.0.1", 80)):
            assert not isinstance(route(policy(text), *address), Direct)


VIOLATIONS = [
    (ANON + "tub.location = tcp:1.2.3.4:80\n",
     ["[node] tub.location = 'tcp:1.2.3.4:80': a TCP hint announces an address"]),
    (ANON + "tub.location = AUTO,onion:80:hiddenServiceDir=/x\n",
     ["[node] tub.location = 'AUTO': AUTO announces"]),
    (ANON + "tub.location = 1.2.3.4:80\n", ["'tcp:1.2.3.4:80'"]),  # legacy HOST:PORT
    (ANON + "tub.location = tor:x.onion:3457,tcp:198.51.100.7:0\n",  # port 0 still names it
     ["'tcp:198.51.100.7:0': a TCP hint announces an address"]),
    (ANON + "tub.location = 198.51.100.7:0\n", ["'tcp:198.51.100.7:0'"]),
    (ANON + "tub.port = 41999\ntub.location = tor:x.onion:80\n",  # a bare port: 0.0.0.0
     ["[node] tub.port = '41999': listens on a public interface"]),
    (ANON + "web.port = 3456\n", ["[node] web.port = '3456': listens on a public"]),
    (ANON + "tub.port = tcp:3457\ntub.location = tor:x.onion:80\n",
     ["[node] tub.port = 'tcp:3457': listens on a public interface"]),
    (ANON + "web.port = tcp:3456:interface=0.0.0.0\n",
     ["[node] web.port = 'tcp:3456:interface=0.0.0.0': listens on a public interface"]),
    (ANON + "[connections]\ntcp = tcp\n", ["[connections] tcp = 'tcp'"]),
    (ANON + "[connections]\ntcp.socks-proxy = tcp:127.0.0.1:1080\n",
     ["[connections] tcp.socks-proxy"]),
    ("[node]\nreveal-IP-address = false\ntub.location = tcp:a.example:1\n", ["tcp:a.example:1"]),
    ("[connections]\ntcp = tor\n[tor]\nenabled = false\n",  # any node
     ["[connections] tcp = 'tor': sends TCP through Tor, but [tor] enabled = false"]),
]
CLEAN = [
    ANON + "tub.location =\n",  # seed client use-case 3
    ANON + "tub.location = onion:80:hiddenServiceDir=/x,i2p:/y.keypair\n"  # server 3
           "tub.port = tcp:3457:interface=127.0.0.1\n",
    ANON + "tub.port = tcp:interface=127.0.0.1:8098\ntub.location = client.fakelocation:0\n",
    ANON + "web.port = tcp:3456:interface=127.0.0.1\n[connections]\ntcp = disabled\n",
    "[node]\ntub.location = AUTO,tcp:1.2.3.4:80\n",  # not anonymous: anything goes
]


@pytest.mark.parametrize("text, expected", VIOLATIONS)
def test_violations(text: str, expected: list[str]) -> None:
    cfg, problems = load_config(text)
    assert problems == []
    found = [str(p) for p in violations(cfg)]
    assert len(found) == len(expected), found
    for line, fragment in zip(found, expected, strict=True):
        assert fragment in line and "; fix: " in line, line


@pytest.mark.parametrize("text", CLEAN)
def test_no_violations(text: str) -> None:
    cfg, problems = load_config(text)
    assert problems == [] and violations(cfg) == []


@pytest.mark.parametrize("description, private", [
    ("tcp:3457:interface=127.0.0.1", True), ("tcp:interface=127.0.0.1:8098", True),
    ("tcp:3457", False), ("tcp:3457:interface=0.0.0.0", False),
    ("tcp:3457:interface=192.168.1.2", False), ("unix:/tmp/x", True), ("41999", False),
    ("tcp6:3457:interface=\\:\\:1", True), ("tcp6:3457:interface=\\:\\:", False),
])
def test_listens_privately(description: str, private: bool) -> None:
    assert listens_privately(description) is private


NURLS = [  # one server reachable four ways
    "pb://gqoLlaMhIT6VlDomdNN0wRlpPo_EjTQzZBEWSASZR-M@127.0.0.1:3457/swissnum#v=1",
    "pb+tor://gqoLlaMhIT6VlDomdNN0wRlpPo_EjTQzZBEWSASZR-M@"
    f"{ONION[0]}:80/swissnum#v=1",
    "pb+i2p://gqoLlaMhIT6VlDomdNN0wRlpPo_EjTQzZBEWSASZR-M@"
    f"{I2P_HOST[0]}/swissnum#v=1",
]


@pytest.mark.parametrize("text, scheme", [
    (PLAIN, "pb"),  # direct where allowed
    (ANON, "pb+tor"),  # both routers only assumed: Tor first (faster to connect)
    (ANON_TOR, "pb+tor"),
    (ANON + f"[connections]\ni2p.sam-api = {SAM}\n", "pb+i2p"),  # the router it names
    (ANON + f"[connections]\ntcp = disabled\ni2p.sam-api = {SAM}\n", "pb+i2p"),
    (ANON + f"[connections]\ntor.socks-proxy = {TOR}\ni2p.sam-api = {SAM}\n", "pb+tor"),
    (ANON + "[tor]\nenabled = false\n", "pb+i2p"),  # no Tor: I2P on its usual port
])
def test_choose_nurl(text: str, scheme: str) -> None:
    """Which of a server's NURLs a node uses, by its connection settings."""
    connector = Connector(None, functools.partial(route, policy(text)))
    assert choose_nurl(NURLS, connector).scheme == scheme


@given(st.sampled_from([PLAIN, ANON, ANON_TOR, HIDE, TCP_TOR, DISABLED, SOCKS, CLIENT2, BLANK,
                        NO_TOR_I2P]),
       st.lists(st.sampled_from([*NURLS, "not a nurl"]), min_size=1, max_size=5, unique=True))
def test_rank_nurls_properties(text: str, texts: list[str]) -> None:
    """Every NURL the policy allows, once each, best first; never a refused one, and an
    anonymous node never ranks a direct route at all."""
    pol = policy(text)
    connector = Connector(None, functools.partial(route, pol))
    allowed = [t for t in texts if t != "not a nurl"
               and not isinstance(route(pol, *_host_port(t)), Refused)]
    if not allowed:
        with pytest.raises(MistgridError, match="no announced address can be reached"):
            rank_nurls(texts, connector)
        return
    ranked = rank_nurls(texts, connector)
    assert sorted(n.to_text() for n in ranked) == sorted(parse_nurl(t).to_text()
                                                         for t in allowed)
    if pol.anonymous:
        assert all(route(pol, n.host, n.port or 0).name != "direct" for n in ranked)


def _host_port(text: str) -> tuple[str, int]:
    nurl = parse_nurl(text)
    return nurl.host, nurl.port or 0


def test_tcp_disabled_means_no_tcp_even_when_anonymous() -> None:
    """[connections] tcp = disabled: a TCP hint is never used, anonymous or not (an
    anonymous node used to dial it through Tor all the same)."""
    for text in (ANON + "[connections]\ntcp = disabled\n", "[connections]\ntcp = disabled\n"):
        assert isinstance(route(policy(text), "192.0.2.4", 80), Refused)
        assert isinstance(route(policy(text), "a" * 56 + ".onion", 80), Socks)


def test_hint_kinds_in_any_case() -> None:
    cfg, problems = load_config("[node]\ntub.location = TCP:192.0.2.4:80,Tor:x.onion:1\n")
    assert problems == []
    assert [(h.kind, h.host) for h in cfg.get("node", "tub.location")] == \
        [("tcp", "192.0.2.4"), ("tor", "x.onion")]
