"""What an anonymous node refuses in the configuration of a Tor or I2P router it launches
(`config.torrc.revealing`, `config.i2pd.revealing`): every option that would publish the
machine's address or open the router to the network is named; what the tests' private
networks and a person's bridges need passes."""

from __future__ import annotations

from pathlib import Path

import pytest

from mistgrid.config import i2pd
from mistgrid.config.torrc import revealing
from mistgrid.testing.tornet import Authority, network_options, render_torrc

REVEALING_TORRC = [
    "ORPort 9001", "ORPort 127.0.0.1:9001", "ORPort auto", "orport 443 NoListen",
    "DirPort 9030", "BridgeRelay 1", "ServerTransportPlugin obfs4 exec /usr/bin/obfs4proxy",
    "HiddenServiceSingleHopMode 1", "HiddenServiceNonAnonymousMode 1",
    "SocksPort 0.0.0.0:9050", "SocksPort 192.168.1.5:9050 IsolateDestAddr",
    "ControlPort [::]:9051", "DNSPort 10.0.0.1:53", "TransPort 0.0.0.0:9040",
    "HTTPTunnelPort 0.0.0.0:8118", "MetricsPort 0.0.0.0:9035", "+SocksPort 0.0.0.0:9",
]
SAFE_TORRC = [
    "ORPort 0", "DirPort 0", "BridgeRelay 0", "HiddenServiceSingleHopMode 0",
    "SocksPort 9050", "SocksPort 127.0.0.1:9050", "SocksPort localhost:auto",
    "SocksPort [::1]:9050", "SocksPort unix:/run/tor/socks", "ControlPort auto",
    "SocksPort 0", "UseBridges 1", "Bridge obfs4 192.0.2.1:443 " + "A" * 40 + " cert=x",
    "ClientTransportPlugin obfs4 exec /usr/bin/obfs4proxy", "# ORPort 9001", "",
    "ExitPolicy reject *:*", "Socks5Proxy 127.0.0.1:1080",
]


@pytest.mark.parametrize("line", REVEALING_TORRC)
def test_each_revealing_torrc_line_is_named(line: str) -> None:
    found = revealing(f"UseBridges 1\n{line}\nLog notice stdout\n")
    assert [text for text, _ in found] == [line.strip()]
    assert found[0][1]


@pytest.mark.parametrize("line", SAFE_TORRC)
def test_safe_torrc_lines_pass(line: str) -> None:
    assert revealing(line + "\n") == []


def test_the_private_networks_pinning_lines_pass(tmp_path: Path) -> None:
    authorities = [Authority(f"a{i}", tmp_path / f"a{i}", 5000 + i, 6000 + i, "A" * 40,
                             "B" * 40) for i in range(4)]
    assert revealing(render_torrc(network_options(authorities))) == []


def test_i2pd_listeners_beyond_loopback_are_named() -> None:
    extra = i2pd.parse("[http]\nenabled = true\naddress = 0.0.0.0\n", "x")
    assert i2pd.revealing({}, extra) == [("[http] address = 0.0.0.0", "launch.config")]
    base = i2pd.parse("[socksproxy]\nenabled = true\naddress = 192.168.1.2\n", "y")
    assert i2pd.revealing(base, {}) == [("[socksproxy] address = 192.168.1.2",
                                         "i2p.configdir")]
    # enabled on loopback, or on any address but off (mistgrid's default), is fine
    for text in ("[http]\nenabled = true\naddress = 127.0.0.1\n",
                 "[http]\naddress = 0.0.0.0\n", "[i2cp]\nenabled = true\n",
                 "[sam]\naddress = 0.0.0.0\n"):  # the node pins SAM itself
        assert i2pd.revealing({}, i2pd.parse(text, "z")) == [], text
