"""tahoe.cfg checking, table-driven: every example of the seed document and of Tahoe-LAFS's
configuration.rst is accepted; broken files give exactly the expected one-line reasons."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest

from mistgrid.config.check import load_config
from mistgrid.config.location import Hint, location_hints

SEED_CLIENT = "[node]\nanonymous = True\ntub.location =\n"
SEED_SERVER_3 = ("[node]\nanonymous = True\ntub.location = onion:80:hiddenServiceDir=/var/lib/"
                 "tor/my_service,i2p:/var/lib/i2p/my_service.keypair\n")
SEED_SERVER_2 = ("[node]\nanonymous = False\ntub.location = AUTO,onion:80:hiddenServiceDir=/var/"
                 "lib/tor/my_service,i2p:/var/lib/i2p/my_service.keypair\n")

GOOD = {
    "empty": "",
    "seed client use-case 3": SEED_CLIENT,
    "seed server use-case 3": SEED_SERVER_3,
    "seed server use-case 2": SEED_SERVER_2,
    "seed quoted AUTO": ('[node]\ntub.location = "AUTO,onion:80:hiddenServiceDir=/var/lib/tor/'
                         'my_service"\n'),
    "seed tcp + onion": ("[node]\ntub.location = tcp:123.456.789.0:80,onion:80:hiddenServiceDir"
                         "=/var/lib/tor/my_service\n"),
    "seed connections": ("[connections]\ntcp.socks-proxy = tcp:127.0.0.1:1080\n"
                         "tor.socks-proxy = tcp:127.0.0.1:9050\n"
                         "i2p.sam-api = tcp:127.0.0.1:7656\n"),
    "seed connections blank": "[connections]\ntor.socks-proxy =\ni2p.sam-api =\n",
    "seed torsocks client": ("[node]\ntub.port = tcp:interface=127.0.0.1:8098\n"
                             "tub.location = client.fakelocation:0\n"),
    "seed torsocks server": ("[node]\ntub.port = tcp:interface=127.0.0.1:8098\n"
                             "tub.location = ualhejtq2p7ohfbb.onion:29212\n"),
    "tahoe client-only": "[node]\ntub.port = disabled\ntub.location = disabled\n",
    "tahoe dns name": "[node]\ntub.port = tcp:8098\ntub.location = tcp:tahoe.example.com:8098\n",
    "tahoe with AUTO": ("[node]\ntub.port = tcp:8098\n"
                        "tub.location = tcp:tahoe.example.com:8098,AUTO\n"),
    "tahoe private": "[node]\nreveal-IP-address = false\n[connections]\ntcp = tor\n",
    "tahoe i2p only": "[connections]\ntcp = disabled\n[i2p]\nlaunch = true\ni2p.configdir = /x\n",
    "tahoe tor section": ("[tor]\nenabled = true\nsocks.port = tcp:127.0.0.1:9050\n"
                          "control.port = tcp:localhost:9051\nlaunch = false\n"),
    "tahoe example": ("[node]\nnickname = Bob's Tahoe-LAFS Node\ntub.port = tcp:34912\n"
                      "tub.location = tcp:123.45.67.89:8098,tcp:44.55.66.77:8098\n"
                      "web.port = tcp:3456\n\n[client]\nintroducer.furl = pb://ok45ssoklj4y7eok5"
                      "c3xkmj@tcp:tahoe.example:44801/ii3uumo\nhelper.furl =\n\n[storage]\n"
                      "enabled = True\nreadonly = True\nreserved_space = 10000000000\n\n"
                      "[helper]\nenabled = True\n"),
    "sizes": "[storage]\nreserved_space = 1 GiB\n",
    "shares": "[client]\nshares.needed = 2\nshares.happy = 4\nshares.total = 4\n",
    "plugins": "[storage]\nplugins = x\n[storageserver.plugins.x]\nanything = 1\n",
    "continuation": "[node]\nnickname = a\n  b\n",
    "i2p session options": "[i2p]\nsession.options = inbound.length=1,i2cp.leaseSetType=1\n",
}

BAD = {
    "typo key": ("[node]\nanonymus = true\n",
                 ["[node] anonymus = 'true': unknown key; fix: did you mean [node] anonymous?"]),
    "key in wrong section": ("[client]\nreserved_space = 1G\n",
                             ["did you mean [storage] reserved_space?"]),
    "unknown section": ("[nodes]\nx = 1\n", ["[nodes] = '': unknown section; "
                                            "fix: did you mean [node]?"]),
    "not boolean": ("[node]\nanonymous = maybe\n",
                    ["[node] anonymous = 'maybe': not a boolean; fix: write true or false"]),
    "tcp = i2p": ("[connections]\ntcp = i2p\n", ["I2P cannot reach TCP addresses"]),
    "bad hint": ("[node]\ntub.location = carrier-pigeon\n", ["is not a connection hint"]),
    "onion without dir": ("[node]\ntub.location = onion:80\n",
                          ["names no hidden service directory"]),
    "port 0": ("[node]\ntub.port = tcp:0\n", ["port 0 is not allowed"]),
    "empty tub.port": ("[node]\ntub.port =\n", ["tub.port is present but empty"]),
    "k > N": ("[client]\nshares.needed = 5\nshares.total = 3\nshares.happy = 3\n",
              ["more than shares.total (3)"]),
    "happy > N": ("[client]\nshares.happy = 11\n",
                  ["shares.happy = '11': more than shares.total"]),
    "too many shares": ("[client]\nshares.total = 300\n", ["not a share count from 1 to 256"]),
    "disabled alone": ("[node]\ntub.port = disabled\ntub.location = tcp:a:1\n",
                       ["[node] tub.location = 'tcp:a:1': names addresses to announce, "
                        "but tub.port = disabled"]),
    "storage unreachable": ("[node]\ntub.port = disabled\ntub.location = disabled\n"
                            "[storage]\nenabled = true\n", ["a storage server must listen"]),
    "bad format": ("[client]\nmutable.format = xyz\n",
                   ["not a mutable file format; fix: write sdmf or mdmf"]),
    "bad expire mode": ("[storage]\nexpire.mode = never\n",
                        ["not an expiration mode; fix: write age or cutoff-date"]),
    "bad size": ("[storage]\nreserved_space = lots\n", ["not a size"]),
    "expire without mode": ("[storage]\nexpire.enabled = true\n",
                            ["needs expire.mode (there is no default)"]),
    "cutoff without date": ("[storage]\nexpire.enabled = true\nexpire.mode = cutoff-date\n",
                            ["needs expire.cutoff_date"]),
    "override with cutoff": ("[storage]\nexpire.mode = cutoff-date\n"
                             "expire.cutoff_date = 2026-01-16\n"
                             "expire.override_lease_duration = 2mo\n",
                             ["only works with expire.mode = age"]),
    "date with age": ("[storage]\nexpire.mode = age\nexpire.cutoff_date = 2026-01-16\n",
                      ["only works with expire.mode = cutoff-date"]),
    "bad duration": ("[storage]\nexpire.override_lease_duration = soon\n",
                     ["not a duration"]),
    "bad date": ("[storage]\nexpire.mode = cutoff-date\nexpire.cutoff_date = 16/01/2026\n",
                 ["not a date"]),
    "bad furl": ("[client]\nintroducer.furl = http://example\n", ["not a FURL"]),
    "bad session options": ("[i2p]\nsession.options = inbound.length\n",
                            ["'inbound.length' is not key=value"]),
    "orphan": ("nickname = a\n", ["a key before any [section]"]),
    "garbage line": ("[node]\nthis is not config\n", ["not a 'key = value' line"]),
    "several at once": ("[node]\nanonymus = 1\ntub.port = tcp:0\n[client]\nshares.total = x\n",
                        ["unknown key", "port 0", "not a share count"]),
}


@pytest.mark.parametrize("text, seconds", [
    ("7days", 7 * 86400), ("31day", 31 * 86400), ("60 days", 60 * 86400),
    ("2mo", 62 * 86400), ("3 month", 93 * 86400), ("12 months", 372 * 86400),
    ("2years", 730 * 86400), ("90 seconds", 90), ("5 minutes", 300), ("1 hour", 3600),
])
def test_durations_as_tahoe_writes_them(text: str, seconds: int) -> None:
    """garbage-collection.rst's duration strings (and mistgrid's shorter units)."""
    cfg, problems = load_config(f"[storage]\nexpire.override_lease_duration = {text}\n")
    assert [str(p) for p in problems] == []
    assert cfg.get("storage", "expire.override_lease_duration") == seconds


def test_cutoff_date_is_utc_midnight() -> None:
    cfg, problems = load_config("[storage]\nexpire.enabled = true\nexpire.mode = "
                                "cutoff-date\nexpire.cutoff_date = 2009-01-16\n")
    assert [str(p) for p in problems] == []
    assert cfg.get("storage", "expire.cutoff_date") == 1232064000


@pytest.mark.parametrize("name", sorted(GOOD))
def test_good_configs(name: str) -> None:
    _cfg, problems = load_config(GOOD[name])
    assert [str(p) for p in problems] == []


@pytest.mark.parametrize("text, key, value", [
    ("[node]\nnickname = a\nnickname = b\n", ("node", "nickname"), "b"),
    ("[node]\nnickname = a\n[client]\n[node]\nnickname = b\n", ("node", "nickname"), "b"),
    ("[node]\nnickname: colon\n", ("node", "nickname"), "colon"),
    ("\ufeff[node]\nnickname = bom\n", ("node", "nickname"), "bom"),
    ("[node]\nreveal-ip-address = false\n", ("node", "reveal-IP-address"), False),
    ("[node]\nREVEAL-IP-ADDRESS = False\n", ("node", "reveal-IP-address"), False),
    ("[node]\nNickName = Keeps Its Case\n", ("node", "nickname"), "Keeps Its Case"),
    ("[node]\nweb.port: tcp:3456:interface=127.0.0.1\n", ("node", "web.port"),
     "tcp:3456:interface=127.0.0.1"),
])
def test_tahoe_parser_syntax(text: str, key: tuple[str, str], value: object) -> None:
    """What Tahoe-LAFS 1.20's configparser (strict=False, utf-8-sig) accepts: a repeated
    key or section (the last value wins), `key: value`, a byte order mark, keys in any
    case (values as written)."""
    cfg, problems = load_config(text)
    assert [str(p) for p in problems] == []
    assert cfg.get(*key) == value


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_configs(name: str) -> None:
    """Each broken file gives exactly the expected reasons, one line each."""
    text, expected = BAD[name]
    _cfg, problems = load_config(text)
    lines = [str(p) for p in problems]
    assert len(lines) == len(expected), lines
    for line, part in zip(lines, expected, strict=True):
        assert part in line and "\n" not in line


def test_typed_values_and_defaults() -> None:
    cfg, problems = load_config("[storage]\nreserved_space = 1MiB\n[node]\nanonymous = yes\n")
    assert problems == []
    assert cfg.get("storage", "reserved_space") == 1024 * 1024
    assert cfg.get("node", "anonymous") is True
    assert cfg.get("client", "shares.total") == 10


def test_hint_kinds() -> None:
    assert location_hints("disabled") is None
    assert location_hints("") == ()
    hints = location_hints("AUTO,tcp:h:1,tor:x.onion:2,i2p:y.b32.i2p,i2p:/k,"
                           "onion:80:hiddenServiceDir=/d,x.onion:3")
    assert hints is not None
    assert [h.kind for h in hints] == ["auto", "tcp", "tor", "i2p", "i2p-destination",
                                       "onion-service", "tor"]
    assert hints[5] == Hint("onion-service", "", 80, "/d")
    assert [h.reveals_address for h in hints] == [True, True] + [False] * 5


def test_the_model_is_frozen() -> None:
    """The parsed configuration cannot be changed after the check (one frozen model)."""
    cfg, _ = load_config("[node]\nnickname = a\n[i2p]\nsession.options = a=1\n")
    with pytest.raises(TypeError):
        cfg.values[("node", "nickname")] = "b"  # type: ignore[index]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        cfg.values = {}  # type: ignore[misc]
    with pytest.raises(TypeError):
        cfg.get("i2p", "session.options")["a"] = "2"


def test_launched_tor_bridges(tmp_path: Path) -> None:
    """[tor] bridges: the launched tor's torrc uses those bridges alone; obfs4 bridges
    need obfs4proxy; an empty file and bridges without launch are refused."""
    from mistgrid.node.tor_launch import (  # noqa: PLC0415
        TorLaunchError,
        read_bridges,
        torrc_text,
    )

    bridges = tmp_path / "bridges"
    bridges.write_text("# mine\nBridge 192.0.2.1:443 4352E58420E68F5E40BF7C74FADDCCD9D1349413\n"
                       "obfs4 192.0.2.2:80 FINGERPRINT cert=abc iat-mode=0\n\n")
    lines = read_bridges(str(bridges))
    assert lines == ["192.0.2.1:443 4352E58420E68F5E40BF7C74FADDCCD9D1349413",
                     "obfs4 192.0.2.2:80 FINGERPRINT cert=abc iat-mode=0"]
    text = torrc_text(tmp_path, 1, "", lines, "/usr/bin/obfs4proxy")
    assert "UseBridges 1\n" in text and f"Bridge {lines[0]}\n" in text
    assert "ClientTransportPlugin obfs4 exec /usr/bin/obfs4proxy\n" in text
    with pytest.raises(TorLaunchError, match="obfs4proxy"):
        torrc_text(tmp_path, 1, "", lines, None)
    assert "UseBridges" not in torrc_text(tmp_path, 1, "")
    bridges.write_text("# nothing\n\n")
    with pytest.raises(TorLaunchError, match="no bridge"):
        read_bridges(str(bridges))
    _, problems = load_config(f"[tor]\nbridges = {bridges}\n")
    assert any("[tor] bridges" in str(p) and "launch = true" in str(p) for p in problems)
