"""The launched I2P router's i2pd.conf (config.i2pd) and `[i2p] launch`'s config rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from mistgrid.config import i2pd
from mistgrid.config.check import load_config


def test_parse_reads_sections_comments_and_the_main_section() -> None:
    table = i2pd.parse("# top\nnetid = 77  # ours\nHost=127.0.0.30\n\n[SAM]\nport = 1\n"
                       "[reseed]\nurls =\n", "x")
    assert table == {("", "netid"): "77", ("", "host"): "127.0.0.30", ("sam", "port"): "1",
                     ("reseed", "urls"): ""}
    assert i2pd.parse(i2pd.render(table), "x") == table


def test_a_line_that_is_not_a_setting_is_refused_with_its_number() -> None:
    with pytest.raises(i2pd.I2pdConfigError, match=r"launch.conf line 2: 'bogus'"):
        i2pd.parse("netid = 2\nbogus\n", "launch.conf")


def test_launch_config_order_defaults_configdir_launch_config_then_what_the_node_needs(
        ) -> None:
    base = {("http", "enabled"): "true", ("", "bandwidth"): "L", ("", "netid"): "5"}
    extra = {("", "netid"): "77", ("sam", "port"): "1", ("sam", "address"): "0.0.0.0",
             ("", "daemon"): "true"}
    text = i2pd.launch_config("/d", 4321, base, extra, "/certs")
    table = i2pd.parse(text, "out")
    assert table[("", "netid")] == "77"  # launch.config over configdir's file
    assert table[("http", "enabled")] == "true"  # configdir's file over the defaults
    assert table[("", "bandwidth")] == "L"
    assert table[("httpproxy", "enabled")] == "false"  # defaults: only SAM listens
    assert table[("socksproxy", "enabled")] == "false"
    assert table[("upnp", "enabled")] == "false"
    # what the node needs wins: SAM on loopback at its port, in the foreground
    assert table[("sam", "port")] == "4321" and table[("sam", "address")] == "127.0.0.1"
    assert table[("sam", "enabled")] == "true" and table[("", "daemon")] == "false"
    assert table[("", "logfile")] == "/d/i2pd.log" and table[("", "certsdir")] == "/certs"
    assert text.index("netid") < text.index("[")  # main-section keys before any section


def test_sam_endpoint_of_a_running_routers_config() -> None:
    assert i2pd.sam_endpoint({}, "x") == "tcp:127.0.0.1:7656"  # i2pd's defaults
    assert i2pd.sam_endpoint({("sam", "port"): "7777", ("sam", "address"): "::1"},
                             "x") == "tcp:\\:\\:1:7777"
    with pytest.raises(i2pd.I2pdConfigError, match="disabled"):
        i2pd.sam_endpoint({("sam", "enabled"): "false"}, "x")
    with pytest.raises(i2pd.I2pdConfigError, match="not a port"):
        i2pd.sam_endpoint({("sam", "port"): "x"}, "x")


def test_configdir_without_launch_finds_the_sam_port(tmp_path: Path) -> None:
    from mistgrid.node.i2p_launch import configdir_sam  # noqa: PLC0415

    assert configdir_sam(str(tmp_path)) == "tcp:127.0.0.1:7656"
    (tmp_path / "i2pd.conf").write_text("[sam]\nenabled = true\nport = 7001\n")
    assert configdir_sam(str(tmp_path)) == "tcp:127.0.0.1:7001"


@pytest.mark.parametrize(("text", "key"), [
    ("[i2p]\nlaunch = true\nsam.port = tcp:127.0.0.1:7656\n", "[i2p] sam.port"),
    ("[i2p]\nlaunch = true\n[connections]\ni2p.sam-api = tcp:127.0.0.1:7656\n",
     "[connections] i2p.sam-api"),
    ("[i2p]\nlaunch = true\nenabled = false\n", "[i2p] launch"),
    ("[i2p]\nlaunch.config = /x\n", "[i2p] launch.config"),
])
def test_launch_refuses_what_cannot_work(text: str, key: str) -> None:
    _cfg, problems = load_config(text)
    assert [str(p) for p in problems if str(p).startswith(key)], problems


def test_tahoe_i2p_keys_without_launch_are_accepted() -> None:
    """Tahoe 1.20 accepts i2p.executable and i2p.configdir without launch."""
    _cfg, problems = load_config("[i2p]\ni2p.executable = /usr/bin/i2pd\n"
                                 "i2p.configdir = /var/lib/i2pd\n")
    assert problems == []
