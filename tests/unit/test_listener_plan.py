"""Where a storage node or introducer listens and what it announces when tahoe.cfg leaves
it open: no tub.port (a port the kernel picks, remembered in client.port or
introducer.port) and AUTO or no tub.location (the node's own addresses)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mistgrid.config.check import ConfigValues, load_config
from mistgrid.config.location import Hint
from mistgrid.node.addresses import auto_addresses, detect_ipv4_addresses, expand_auto
from mistgrid.node.listening import ListenError, refuse_exposure, remember_port
from mistgrid.node.plan import (
    I2PDest,
    TorOnion,
    announced_hints,
    plan_i2p_dest,
    plan_listener,
    plan_storage,
    plan_tor_onion,
)


def _cfg(text: str) -> ConfigValues:
    cfg, problems = load_config(text)
    assert problems == []
    return cfg


def test_auto_keeps_what_the_listener_can_be_reached_at() -> None:
    detected = ["127.0.0.1", "192.168.1.5", "10.0.0.2", "192.168.1.5"]
    assert auto_addresses(detected, "0.0.0.0") == ["192.168.1.5", "10.0.0.2", "127.0.0.1"]
    assert auto_addresses(detected, "") == ["192.168.1.5", "10.0.0.2", "127.0.0.1"]
    assert auto_addresses(detected, "127.0.0.1") == ["127.0.0.1"]


def test_expand_auto_in_place_without_repeats() -> None:
    onion = Hint("onion-service", "", 80, "/var/lib/tor/s")
    hints = (Hint("tcp", "example.org", 3457), Hint("auto"), onion,
             Hint("tcp", "127.0.0.1", 3457))
    assert expand_auto(hints, ["10.0.0.2", "127.0.0.1"], 3457) == (
        Hint("tcp", "example.org", 3457), Hint("tcp", "10.0.0.2", 3457),
        Hint("tcp", "127.0.0.1", 3457), onion)


def test_detected_addresses_include_loopback() -> None:
    found = detect_ipv4_addresses()  # the kernel's own list (Linux): lo has 127.0.0.1
    assert "127.0.0.1" in found
    assert all(ipaddress.ip_address(a).version == 4 for a in found)


def test_no_tub_port_means_a_remembered_port(tmp_path: Path) -> None:
    cfg = _cfg("[node]\ntub.location = AUTO\n[storage]\nenabled = true\n")
    listener, problems = plan_listener(tmp_path, cfg, "client.port")
    assert problems == [] and listener is not None
    assert (listener.port, listener.interface) == (0, "0.0.0.0")
    assert listener.port_file == tmp_path / "client.port"
    remember_port(listener.port_file, 41234, listener.interface)
    assert (tmp_path / "client.port").read_text() == "tcp:41234\n"
    again, _ = plan_listener(tmp_path, cfg, "client.port")
    assert again is not None and (again.port, again.interface) == (41234, "0.0.0.0")
    assert again.port_file is None  # nothing more to remember


def test_anonymous_node_picks_a_loopback_port(tmp_path: Path) -> None:
    cfg = _cfg("[node]\nanonymous = true\ntub.location = onion:80:hiddenServiceDir=/x\n")
    listener, _ = plan_listener(tmp_path, cfg, "client.port")
    assert listener is not None and listener.interface == "127.0.0.1"
    remember_port(listener.port_file, 41235, listener.interface)
    assert (tmp_path / "client.port").read_text() == "tcp:41235:interface=127.0.0.1\n"


def test_anonymous_node_refuses_a_public_remembered_port(tmp_path: Path) -> None:
    (tmp_path / "client.port").write_text("tcp:41236\n")  # from an earlier, public run
    cfg = _cfg("[node]\nanonymous = true\ntub.location = onion:80:hiddenServiceDir=/x\n")
    listener, problems = plan_listener(tmp_path, cfg, "client.port")
    assert listener is None
    assert [str(p) for p in problems] == [
        f"[node] tub.port (not set; remembered in {tmp_path}/client.port) = 'tcp:41236': "
        "listens on a public interface, and the node is anonymous; fix: delete client.port "
        "(a new loopback port is chosen) or set tub.port = tcp:PORT:interface=127.0.0.1"]


def test_a_remembered_port_file_that_is_not_tcp(tmp_path: Path) -> None:
    (tmp_path / "introducer.port").write_text("unix:/tmp/x\n")
    listener, problems = plan_listener(tmp_path, _cfg("[node]\n"), "introducer.port")
    assert listener is None and "listens on one tcp:PORT" in str(problems[0])


def test_missing_location_means_auto_except_when_anonymous(tmp_path: Path) -> None:
    assert announced_hints(_cfg("[node]\n"), "introducer") == ((Hint("auto"),), [])
    assert announced_hints(_cfg("[node]\ntub.location =\n"), "introducer")[0] == (
        Hint("auto"),)
    hints, problems = announced_hints(_cfg("[node]\nanonymous = true\n"), "storage node")
    assert hints == ()
    assert [str(p) for p in problems] == [
        "[node] tub.location = '': an anonymous storage node must say where it is reached; "
        "fix: write e.g. onion:80:hiddenServiceDir=DIR or i2p:KEYFILE"]


def test_seed_server_use_case_2_plans(tmp_path: Path) -> None:
    cfg = _cfg("[node]\nanonymous = False\ntub.location = AUTO,onion:80:hiddenServiceDir="
               "/var/lib/tor/my_service,i2p:/var/lib/i2p/my_service.keypair\n"
               "[storage]\nenabled = true\n")
    plan, problems = plan_storage(tmp_path, cfg)
    assert problems == [] and plan is not None
    assert [h.kind for h in plan.hints] == ["auto", "onion-service", "i2p-destination"]
    assert (plan.port, plan.port_file) == (0, tmp_path / "client.port")


def test_tahoe_tor_onion_section(tmp_path: Path) -> None:
    """What `tahoe create-node --listen=tor` writes (seen from Tahoe-LAFS 1.20 itself)."""
    cfg = _cfg("[node]\nreveal-IP-address = false\n"
               "tub.port = tcp:42039:interface=127.0.0.1\n"
               "tub.location = tor:4bc27htxvgjiptxt5qhjr6znbao4lxiyemqqnvajhcuukwyxht74xxqd"
               ".onion:3457\n[connections]\ntcp = tor\n[tor]\n"
               "control.port = tcp:127.0.0.1:42785\nonion = true\nonion.local_port = 42039\n"
               "onion.external_port = 3457\nonion.private_key_file = private/tor_onion.privkey\n"
               "[storage]\nenabled = true\n")
    plan, problems = plan_storage(tmp_path, cfg)
    assert problems == [] and plan is not None
    assert plan.tor_onion == TorOnion(tmp_path / "private" / "tor_onion.privkey", 3457, 42039)


def test_tor_onion_needs_its_port_and_may_stand_alone(tmp_path: Path) -> None:
    onion, problems = plan_tor_onion(tmp_path, _cfg("[tor]\nonion = true\n"))
    assert onion is None
    assert [str(p) for p in problems] == [
        "[tor] onion.external_port = '': [tor] onion = true needs the port the onion service "
        "offers; fix: write e.g. onion.external_port = 3457"]
    cfg = _cfg("[node]\nanonymous = true\ntub.port = tcp:4000:interface=127.0.0.1\n"
               "[tor]\nonion = true\nonion.external_port = 80\n"
               "onion.private_key_file = /abs/key\n[storage]\nenabled = true\n")
    plan, problems = plan_storage(tmp_path, cfg)  # no tub.location: the onion is enough
    assert problems == [] and plan is not None and plan.hints == ()
    assert plan.tor_onion == TorOnion(Path("/abs/key"), 80, 0)


def test_tahoe_listen_i2p(tmp_path: Path) -> None:
    """What `tahoe create-node --listen=i2p --hide-ip` writes (Tahoe-LAFS 1.20's
    i2p_provider): tub.port = listen:i2p, [i2p] dest, dest.port, dest.private_key_file."""
    cfg = _cfg("[node]\nreveal-IP-address = false\ntub.port = listen:i2p\n"
               "tub.location = i2p:ukeu3k5oycgaauneqgtnvselmt4yemvoilkln7jpvamvfx7dnkdq"
               ".b32.i2p:3457\n[connections]\ntcp = tor\n[i2p]\n"
               "sam.port = tcp:127.0.0.1:7656\ndest = true\ndest.port = 3457\n"
               "dest.private_key_file = private/i2p_dest.privkey\n[storage]\nenabled = true\n")
    plan, problems = plan_storage(tmp_path, cfg)
    assert problems == [] and plan is not None
    assert plan.port is None  # reached over I2P alone: no TCP listener
    assert plan.i2p_dest == I2PDest(tmp_path / "private" / "i2p_dest.privkey", 3457)


def test_listen_forms_refused_where_they_cannot_work(tmp_path: Path) -> None:
    i2p_only = "[node]\ntub.port = listen:i2p\n[i2p]\ndest = true\n"
    _, problems = plan_listener(tmp_path, _cfg(i2p_only), "introducer.port")
    assert "an introducer on I2P keeps a loopback tcp: tub.port" in str(problems[0])
    _, problems = plan_listener(tmp_path, _cfg("[node]\ntub.port = listen:tor\n"),
                                "client.port")
    assert "listen:tor needs [tor] onion = true and onion.local_port" in str(problems[0])
    listener, problems = plan_listener(tmp_path, _cfg(
        "[node]\ntub.port = listen:tor\n[tor]\nonion = true\nonion.local_port = 4100\n"),
        "client.port")
    assert problems == [] and listener is not None
    assert (listener.port, listener.interface) == (4100, "127.0.0.1")
    listener, _ = plan_listener(tmp_path, _cfg("[node]\ntub.port = 4101\n"), "client.port")
    assert listener is not None and (listener.port, listener.interface) == (4101, "0.0.0.0")
    _, problems = plan_listener(tmp_path, _cfg("[node]\ntub.port = tcp:1,tcp:2\n"),
                                "client.port")
    assert "listens on one tcp:PORT" in str(problems[0])
    plan, problems = plan_storage(tmp_path, _cfg(
        "[node]\ntub.port = listen:i2p\ntub.location = AUTO\n[i2p]\ndest = true\n"
        "dest.port = 1\ndest.private_key_file = k\n[storage]\nenabled = true\n"))
    assert plan is None and "AUTO and onion services need a tcp: listener" in str(problems)
    _, problems = plan_i2p_dest(tmp_path, _cfg("[i2p]\ndest = true\ndest.port = 3457\n"))
    assert "[i2p] dest = true needs dest.port and dest.private_key_file" in str(problems[0])


HINTS = st.one_of(
    st.just(Hint("auto")),
    st.builds(Hint, st.just("tcp"), st.sampled_from(["10.0.0.2", "example.org", "127.0.0.1"]),
              st.integers(1, 65535)),
    st.builds(Hint, st.just("onion-service"), st.just(""), st.integers(1, 65535),
              st.sampled_from(["/a", "/b"])),
)


@given(st.lists(HINTS, max_size=6), st.lists(st.sampled_from(
    ["10.0.0.2", "192.168.1.5", "127.0.0.1"]), max_size=4), st.integers(1, 65535))
def test_expand_auto_properties(hints: list[Hint], addresses: list[str], port: int) -> None:
    """No AUTO left, nothing twice, every other hint kept (in its order, unless AUTO
    already put it earlier), and each address announced exactly when an AUTO asked."""
    expanded = expand_auto(hints, addresses, port)
    assert all(h.kind != "auto" for h in expanded)
    assert len(set(expanded)) == len(expanded)
    others = list(dict.fromkeys(h for h in hints if h.kind != "auto"))
    wanted = {Hint("tcp", a, port) for a in addresses} if Hint("auto") in hints else set()
    assert set(expanded) == wanted | set(others)
    alone = [h for h in others if h not in wanted]
    assert [h for h in expanded if h in alone] == alone


def test_exposure_is_refused_where_listeners_and_announcements_are_built() -> None:
    """The backstop behind the config check: an anonymous node never opens a public
    listener nor announces an address (port 0 included), whatever reached the builder."""
    for interface in ("127.0.0.1", "::1", None):
        refuse_exposure(True, interface)
    refuse_exposure(True, None, [Hint("tor", "x.onion", 80), Hint("i2p", "y.i2p", None),
                                 Hint("tcp", "client.fakelocation", 0)])
    for interface in ("0.0.0.0", "192.0.2.4", "::"):
        with pytest.raises(ListenError, match="refusing to listen"):
            refuse_exposure(True, interface)
    for hint in (Hint("tcp", "198.51.100.7", 0), Hint("auto")):
        with pytest.raises(ListenError, match="refusing to announce"):
            refuse_exposure(True, None, [hint])
    refuse_exposure(False, "0.0.0.0", [Hint("auto")])  # not anonymous: anything goes
