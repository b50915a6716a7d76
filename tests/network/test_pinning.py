"""Every tor and i2pd the project starts is pinned to the private loopback network.

Checked twice: on configs generated from the harness's functions (no processes needed) and
on the files the running session networks actually use.
"""

from __future__ import annotations

import configparser
from pathlib import Path

import pytest

from mistgrid.testing.i2pnet import NETID, NOWHERE_HOSTS_URL, I2PNetwork, Router, router_config
from mistgrid.testing.tornet import (
    Authority,
    TorNetwork,
    authority_torrc,
    bridge_torrc,
    client_options,
    render_torrc,
)

PORT_KEYS = {"ORPort", "DirPort", "SocksPort", "ControlPort", "DNSPort", "TransPort",
             "NATDPort", "HTTPTunnelPort", "ExtORPort", "MetricsPort"}


def parse_torrc(text: str) -> list[tuple[str, str]]:
    pairs = []
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition(" ")
            pairs.append((key, value.strip()))
    return pairs


def assert_tor_pinned(text: str, authority_count: int) -> None:
    """The rules: our DirAuthority lines only, testing network, loopback everywhere."""
    pairs = parse_torrc(text)
    keys = [k for k, _ in pairs]
    values = dict(pairs)
    assert values.get("TestingTorNetwork") == "1"
    assert values.get("UseDefaultFallbackDirs") == "0"
    assert "__OwningControllerProcess" in values
    for forbidden in ("FallbackDir", "AlternateDirAuthority"):
        assert forbidden not in keys, forbidden
    for key, value in pairs:  # a bridge only on loopback (the private network's own)
        if key == "Bridge":
            words = value.split()
            address = words[1] if words[0] == "obfs4" else words[0]
            assert address.startswith("127.0.0.1:"), value
        # obfs4proxy only (it connects to nothing but the bridges tor gives it), and a
        # server's obfs4 listener on loopback
        if key in ("ClientTransportPlugin", "ServerTransportPlugin"):
            words = value.split()
            assert words[:2] == ["obfs4", "exec"] and len(words) == 3 \
                and Path(words[2]).name == "obfs4proxy", (key, value)
        if key == "ServerTransportListenAddr":
            assert value.startswith("obfs4 127.0.0.1:"), (key, value)
        if key == "ServerTransportPlugin":
            assert "ServerTransportListenAddr" in keys, "obfs4 listens on 0.0.0.0 by default"
    authorities = [v for k, v in pairs if k == "DirAuthority"]
    assert len(authorities) == authority_count
    for line in authorities:
        address = line.split()[-2]
        assert address.startswith("127.0.0.1:"), line
    for key, value in pairs:
        if key in PORT_KEYS:
            assert value == "0" or value.startswith("127.0.0.1:") or \
                (key == "ExtORPort" and value == "auto"), (key, value)  # auto: loopback
        if key == "Address":
            assert value == "127.0.0.1"
    policies = [v for k, v in pairs if k == "ExitPolicy"]
    assert policies in ([], ["accept 127.0.0.0/8:*", "reject *:*"])


def parse_i2pd_conf(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string("[main]\n" + text)
    return parser


def assert_i2pd_pinned(text: str, base: Path) -> None:
    conf = parse_i2pd_conf(text)
    main = conf["main"]
    assert main.getint("netid") == NETID != 2
    assert main["host"].startswith("127.") and main["address4"] == main["host"]
    assert main.getboolean("ipv6") is False and main.getboolean("nat") is False
    assert conf["ssu2"].getboolean("enabled") is False
    assert conf["ntcp2"].getboolean("enabled") is True
    for section in ("upnp", "nettime", "http", "httpproxy", "socksproxy", "bob", "i2cp",
                    "i2pcontrol"):
        assert conf[section].getboolean("enabled") is False, section
    assert conf["meshnets"].getboolean("yggdrasil") is False
    reseed = conf["reseed"]
    assert reseed["urls"] == "" and reseed["yggurls"] == "" and reseed["file"] == ""
    assert Path(reseed["zipfile"]).parent == base
    assert conf["addressbook"]["subscriptions"] == ""
    assert conf["addressbook"]["defaulturl"] == NOWHERE_HOSTS_URL  # a .b32.i2p: I2P only
    assert NOWHERE_HOSTS_URL.startswith("http://") and ".b32.i2p/" in NOWHERE_HOSTS_URL
    assert conf["sam"]["address"] == "127.0.0.1"


def fake_authorities(base: Path) -> list[Authority]:
    return [Authority(f"a{i}", base / f"a{i}", 5000 + i, 6000 + i, "A" * 40, "B" * 40)
            for i in range(4)]


def test_generated_torrcs_are_pinned(tmp_path: Path) -> None:
    """Authority and client torrcs built by the harness obey every pinning rule."""
    auths = fake_authorities(tmp_path)
    for auth in auths:
        assert_tor_pinned(authority_torrc(auth, auths, tmp_path / "resolv.conf"), 4)
    client = render_torrc(client_options(auths, tmp_path / "c", 7000, 7001))
    assert_tor_pinned(client, 4)
    assert "UseMicrodescriptors 1" not in client and "UseMicrodescriptors 0" in client
    for obfs4 in (None, ("/usr/bin/obfs4proxy", 7003)):
        assert_tor_pinned(bridge_torrc(auths, tmp_path / "b", 7002, "b", obfs4), 4)


def test_generated_i2pd_configs_are_pinned(tmp_path: Path) -> None:
    router = Router(0, tmp_path / "r0", "127.0.0.10", 4000, 4001)
    assert_i2pd_pinned(router_config(router, tmp_path / "reseed.zip"), tmp_path)


def test_the_check_can_fail(tmp_path: Path) -> None:
    """A torrc without our pins, or an i2pd.conf on the public netid, is caught."""
    auths = fake_authorities(tmp_path)
    good = authority_torrc(auths[0], auths, tmp_path / "resolv.conf")
    with pytest.raises(AssertionError):
        assert_tor_pinned(good.replace("TestingTorNetwork 1", "TestingTorNetwork 0"), 4)
    with pytest.raises(AssertionError):
        assert_tor_pinned(good + "SocksPort 0.0.0.0:9050\n", 4)
    obfs4 = bridge_torrc(auths, tmp_path / "b", 7002, "b", ("/usr/bin/obfs4proxy", 7003))
    for bad in ("ServerTransportListenAddr obfs4 127.0.0.1:", "ServerTransportListenAddr "):
        with pytest.raises(AssertionError):  # obfs4 on every address, or by default
            assert_tor_pinned(obfs4.replace(bad, "ServerTransportListenAddr obfs4 0.0.0.0:"
                                            if bad.endswith(":") else "#"), 4)
    for line in ("ClientTransportPlugin meek exec /usr/bin/meek-client",
                 "Bridge obfs4 192.0.2.1:443 " + "A" * 40 + " cert=x iat-mode=0"):
        with pytest.raises(AssertionError):
            assert_tor_pinned(good + line + "\n", 4)
    conf = router_config(Router(0, tmp_path, "127.0.0.10", 1, 2), tmp_path / "z.zip")
    with pytest.raises(AssertionError):
        assert_i2pd_pinned(conf.replace(f"netid = {NETID}", "netid = 2"), tmp_path)


def test_running_tor_network_is_pinned(tor_network: TorNetwork) -> None:
    """The torrc files the session's tor processes really read."""
    torrcs = sorted(tor_network.base.rglob("torrc"))
    assert len(torrcs) == len(tor_network.authorities) + 1
    for torrc in torrcs:
        assert_tor_pinned(torrc.read_text(), len(tor_network.authorities))


def test_running_i2p_network_is_pinned(i2p_network: I2PNetwork) -> None:
    """The i2pd.conf files the session's routers really read."""
    confs = sorted(i2p_network.base.rglob("i2pd.conf"))
    assert len(confs) == len(i2p_network.routers)
    for conf in confs:
        assert_i2pd_pinned(conf.read_text(), i2p_network.base)
