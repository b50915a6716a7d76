"""`mistgrid run` over a table of tahoe.cfg files (issue 5's acceptance): the seed
document's examples, Tahoe-LAFS 1.20's, and broken ones. Each either starts (says it is
running, then stops cleanly on SIGTERM) or is refused with exactly the expected one-line
reasons, exit status 1 and no traceback.

Placeholders: {tub} and {web} become free loopback ports, {dir} a scratch directory."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mistgrid.config.check import load_config
from mistgrid.node.pidfile import READY
from mistgrid.policy.anonymity import Policy
from mistgrid.testing.procs import free_ports

from ..conftest import run_cli
from ..network.test_node_tor import exposure

STARTS = "starts"
LISTEN = "tub.port = tcp:{tub}:interface=127.0.0.1\ntub.location = tcp:127.0.0.1:{tub}\n"
WEB = "web.port = tcp:{web}:interface=127.0.0.1\n"

CASES: dict[str, tuple[str, str | list[str]]] = {
    # -- nodes that start
    "storage node": ("[node]\n" + LISTEN + "[storage]\nenabled = true\n", STARTS),
    "storage + web": ("[node]\n" + LISTEN + WEB + "[storage]\nenabled = true\n", STARTS),
    "client only (tahoe)": ("[node]\ntub.port = disabled\ntub.location = disabled\n" + WEB
                            + "[storage]\nenabled = false\n", STARTS),
    "client, shares 2/3/4": ("[node]\n" + WEB + "[client]\nshares.needed = 2\n"
                             "shares.happy = 3\nshares.total = 4\n[storage]\nenabled = false\n",
                             STARTS),
    "tahoe example, loopback": (
        "[node]\nnickname = Bob's Tahoe-LAFS Node\n" + LISTEN + WEB + "\n[client]\n"
        "helper.furl =\n\n[storage]\nenabled = True\nreadonly = False\n"
        "reserved_space = 1000000\n", STARTS),
    "sizes with units": ("[node]\n" + LISTEN + "[storage]\nenabled = true\n"
                         "reserved_space = 1 GiB\n", STARTS),
    "storage_dir elsewhere": ("[node]\n" + LISTEN + "[storage]\nenabled = true\n"
                              "storage_dir = {dir}/shares-here\n", STARTS),
    "legacy HOST:PORT location": ("[node]\ntub.port = tcp:{tub}:interface=127.0.0.1\n"
                                  "tub.location = 127.0.0.1:{tub}\n[storage]\nenabled = true\n",
                                  STARTS),
    "interface first (torsocks era)": ("[node]\ntub.port = tcp:interface=127.0.0.1:{tub}\n"
                                       "tub.location = tcp:127.0.0.1:{tub}\n"
                                       "[storage]\nenabled = true\n", STARTS),
    "seed torsocks client": ("[node]\ntub.port = tcp:interface=127.0.0.1:{tub}\n"
                             "tub.location = client.fakelocation:0\n" + WEB +
                             "[storage]\nenabled = false\n", STARTS),
    "plugins section": ("[node]\n" + WEB + "[storage]\nenabled = false\nplugins = x\n"
                        "[storageserver.plugins.x]\nanything = 1\n", STARTS),
    "storage, AUTO location": ("[node]\ntub.port = tcp:{tub}:interface=127.0.0.1\n"
                               "tub.location = AUTO\n[storage]\nenabled = true\n", STARTS),
    "storage, no location (AUTO)": ("[node]\ntub.port = tcp:{tub}:interface=127.0.0.1\n"
                                    "[storage]\nenabled = true\n", STARTS),
    "tahoe: DNS name and AUTO": ("[node]\ntub.port = tcp:{tub}:interface=127.0.0.1\n"
                                 "tub.location = tcp:tahoe.example.com:{tub},AUTO\n"
                                 "[storage]\nenabled = true\n", STARTS),
    "storage, nothing set but storage": ("[storage]\nenabled = true\n", STARTS),
    "continuation line": ("[node]\nnickname = a\n  b\n" + WEB + "[storage]\nenabled = false\n",
                          STARTS),
    # -- refused: nothing to do
    "empty file": ("", ["this node has nothing to run: enable [storage] or set [node] "
                        "web.port"]),
    "seed client use-case 3 alone": (
        "[node]\nanonymous = True\ntub.location =\n[storage]\nenabled = false\n",
        ["this node has nothing to run"]),
    # -- the seed's server examples: they start on the network tests' private Tor and I2P
    # networks (tests/network/test_node_*.py); here, with neither, they stop cleanly
    "seed server use-case 3": (
        "[node]\nanonymous = True\ntub.port = tcp:{tub}:interface=127.0.0.1\n"
        "tub.location = onion:80:hiddenServiceDir={dir}/tor_service,i2p:{dir}/i2p.keypair\n"
        "[storage]\nenabled = true\n",
        # (no Tor here: it starts its listener, then stops at the onion service)
        ["cannot reach Tor's control port ([tor] control.port = tcp:127.0.0.1:9051) for the "
         "onion: hints in [node] tub.location"]),
    "seed server use-case 2": (  # no tub.port: a port the kernel picks (client.port)
        "[node]\nanonymous = False\n"
        "tub.location = AUTO,onion:80:hiddenServiceDir={dir}/tor_service\n"
        "[storage]\nenabled = true\n",
        ["cannot reach Tor's control port ([tor] control.port = tcp:127.0.0.1:9051) for the "
         "onion: hints in [node] tub.location"]),
    "seed server use-case 3, no tub.port": (
        "[node]\nanonymous = True\n"
        "tub.location = onion:80:hiddenServiceDir={dir}/tor_service,i2p:{dir}/i2p.keypair\n"
        "[storage]\nenabled = true\n",
        ["cannot reach Tor's control port ([tor] control.port = tcp:127.0.0.1:9051) for the "
         "onion: hints in [node] tub.location"]),
    # -- refused: settings that would reveal an anonymous node
    "anonymous with a tcp hint": (
        "[node]\nanonymous = true\n" + LISTEN + "[storage]\nenabled = true\n",
        ["a TCP hint announces an address, and the node is anonymous"]),
    "anonymous, public listeners": (
        "[node]\nreveal-IP-address = false\ntub.port = tcp:{tub}\nweb.port = tcp:{web}\n"
        "tub.location = tor:abcdefghijklmnop.onion:80\n[storage]\nenabled = true\n",
        ["[node] tub.port = 'tcp:", "[node] web.port = 'tcp:"]),
    "anonymous with AUTO and tcp = tcp": (
        "[node]\nanonymous = true\ntub.location = AUTO\n[connections]\ntcp = tcp\n",
        ["AUTO announces this node's IP addresses", "[connections] tcp = 'tcp': direct TCP"]),
    "anonymous with an IP hint of port 0": (
        "[node]\nanonymous = true\ntub.port = tcp:{tub}:interface=127.0.0.1\n"
        "tub.location = tor:abcdefghijklmnop.onion:3457,tcp:198.51.100.7:0\n"
        "[storage]\nenabled = true\n",
        ["'tcp:198.51.100.7:0': a TCP hint announces an address"]),
    "anonymous with a legacy IP hint of port 0": (
        "[node]\nanonymous = true\ntub.port = tcp:{tub}:interface=127.0.0.1\n"
        "tub.location = 198.51.100.7:0\n[storage]\nenabled = true\n",
        ["'tcp:198.51.100.7:0': a TCP hint announces an address"]),
    "anonymous with a bare tub.port": (
        "[node]\nanonymous = true\ntub.port = {tub}\n"
        "tub.location = tor:abcdefghijklmnop.onion:3457\n[storage]\nenabled = true\n",
        ["[node] tub.port = '"]),
    "anonymous, reveal-ip-address in lower case": (
        "[node]\nreveal-ip-address = false\n" + LISTEN + "[storage]\nenabled = true\n",
        ["a TCP hint announces an address, and the node is anonymous"]),
    "web.port as a bare number (Twisted cannot listen on it)": (
        "[node]\nweb.port = 55709\n", ["[node] web.port = '55709': not an endpoint "
                                         "description (Unknown endpoint type"]),
    "web.port with a port that is not a number": (
        "[node]\nweb.port = tcp:notaport\n", ["[node] web.port = 'tcp:notaport': not an "
                                              "endpoint description"]),
    "anonymous, web API on IPv6 loopback": (
        "[node]\nanonymous = true\nweb.port = tcp6:{web}:interface=\\:\\:1\n", STARTS),
    "tor.socks-proxy that Twisted cannot parse": (
        "[node]\n" + WEB + "[connections]\ntor.socks-proxy = tcp:127.0.0.1:nine\n",
        ["[connections] tor.socks-proxy = 'tcp:127.0.0.1:nine': not an endpoint"]),
    "anonymous with a plain SOCKS proxy": (
        "[node]\nanonymous = true\n[connections]\ntcp.socks-proxy = tcp:127.0.0.1:1080\n",
        ["a plain SOCKS proxy is not known to hide this node"]),
    # -- refused: broken files (every problem, one line each)
    "typo key": ("[node]\nanonymus = true\n",
                 ["line 2: [node] anonymus = 'true': unknown key; fix: did you mean "
                  "[node] anonymous?"]),
    "key in wrong section": ("[client]\nreserved_space = 1G\n",
                             ["did you mean [storage] reserved_space?"]),
    "unknown section": ("[nodes]\nx = 1\n", ["unknown section; fix: did you mean [node]?"]),
    "not boolean": ("[node]\nanonymous = maybe\n", ["not a boolean; fix: write true or false"]),
    "tcp = i2p": ("[connections]\ntcp = i2p\n", ["I2P cannot reach TCP addresses"]),
    "bad hint": ("[node]\ntub.location = carrier-pigeon\n", ["is not a connection hint"]),
    "onion without dir": ("[node]\ntub.location = onion:80\n",
                          ["names no hidden service directory"]),
    "port 0": ("[node]\ntub.port = tcp:0\n", ["port 0 is not allowed"]),
    "k > N": ("[client]\nshares.needed = 5\nshares.total = 3\nshares.happy = 3\n",
              ["more than shares.total (3)"]),
    "too many shares": ("[client]\nshares.total = 300\n", ["not a share count from 1 to 256"]),
    "disabled alone": ("[node]\ntub.port = disabled\ntub.location = tcp:a:1\n",
                       ["[node] tub.location = 'tcp:a:1': names addresses to announce, "
                        "but tub.port = disabled"]),
    "storage unreachable": ("[node]\ntub.port = disabled\ntub.location = disabled\n"
                            "[storage]\nenabled = true\n", ["a storage server must listen"]),
    "anonymous = true wins over reveal-IP-address = true": (
        "[node]\nanonymous = true\nreveal-IP-address = true\n" + LISTEN +
        "[storage]\nenabled = true\n",
        ["a TCP hint announces an address, and the node is anonymous"]),
    "seed client lines on a create-client directory": (
        "[node]\nnickname =\n" + WEB + "tub.port = disabled\ntub.location = disabled\n"
        "reveal-IP-address = true\nanonymous = True\ntub.location =\n"
        "[client]\nshares.needed = 3\n[storage]\nenabled = false\n", STARTS),
    "seed client lines, no tub.port": (
        "[node]\nanonymous = True\ntub.location =\n" + WEB + "[storage]\nenabled = false\n",
        STARTS),
    "bad furl": ("[client]\nintroducer.furl = http://example\n", ["not a FURL"]),
    "set twice (the last wins, as in Tahoe)": (
        "[node]\nnickname = a\nweb.port = none\n" + WEB + "[node]\nnickname = b\n", STARTS),
    "keys in any case, key: value, a BOM": (
        "\ufeff[node]\nREVEAL-IP-ADDRESS: true\nNickname = x\nWEB.port: tcp:{web}"
        ":interface=127.0.0.1\n", STARTS),
    "orphan key": ("nickname = a\n", ["a key before any [section]"]),
    "garbage line": ("[node]\nthis is not config\n", ["not a 'key = value' line"]),
    "several at once": ("[node]\nanonymus = 1\ntub.port = tcp:0\n[client]\nshares.total = x\n",
                        ["unknown key", "port 0", "not a share count"]),
    "anonymous storage without location": (
        "[node]\nanonymous = true\ntub.port = tcp:{tub}:interface=127.0.0.1\n"
        "[storage]\nenabled = true\n",
        ["[node] tub.location = '': an anonymous storage node must say where it is reached"]),
}


def anonymous(node: Path) -> bool:
    cfg, _problems = load_config((node / "tahoe.cfg").read_text())
    return Policy.from_config(cfg).anonymous


def _node(directory: Path, text: str) -> None:
    tub, web = free_ports(2)
    directory.mkdir()
    (directory / "tahoe.cfg").write_text(text.format(tub=tub, web=web, dir=directory))


@pytest.mark.parametrize("name", sorted(CASES))
def test_config_starts_or_is_refused(name: str, tmp_path: Path) -> None:
    text, expected = CASES[name]
    node = tmp_path / "node"
    _node(node, text)
    run_and_check(node, expected)


def run_and_check(node: Path, expected: str | list[str]) -> None:
    """`mistgrid run NODE`: it says it runs (and, if anonymous, shows the world nothing but
    loopback listeners and onion or I2P addresses), or stops with exactly the expected
    one-line reasons, exit 1, no traceback."""
    mistgrid = str(Path(sys.executable).with_name("mistgrid"))
    process = subprocess.Popen([mistgrid, "run", str(node)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, start_new_session=True)
    try:
        if expected == STARTS:
            assert process.stdout is not None
            said = b""
            deadline = time.monotonic() + 30
            with selectors.DefaultSelector() as selector:
                selector.register(process.stdout, selectors.EVENT_READ)
                while READY.encode() not in said and time.monotonic() < deadline:
                    if not selector.select(max(0.0, deadline - time.monotonic())):
                        break
                    chunk = os.read(process.stdout.fileno(), 4096)
                    if not chunk:
                        break
                    said += chunk
            assert READY.encode() in said, (said, process.stderr.read() if process.stderr
                                            else b"")
            if anonymous(node):
                assert exposure(process.pid, node) == []
            os.killpg(process.pid, signal.SIGTERM)
            _out, err = process.communicate(timeout=30)
            assert process.returncode == 0, err
            assert b"Traceback" not in err
            return
        _out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
    lines = err.decode().splitlines()
    assert process.returncode == 1, lines
    assert "Traceback" not in err.decode()
    assert len(lines) == len(expected), lines
    for line, fragment in zip(lines, expected, strict=True):
        assert line.startswith("mistgrid: error: "), line
        assert fragment in line, (fragment, line)



def test_exposure_sees_a_public_listener_and_a_tcp_announcement(tmp_path: Path) -> None:
    """The check run on every started anonymous node can fail: a (non-anonymous) storage
    node listening on every interface and announcing a TCP address is caught twice."""
    node = tmp_path / "node"
    _node(node, "[node]\ntub.port = tcp:{tub}\ntub.location = tcp:127.0.0.1:{tub}\n"
                "[storage]\nenabled = true\n")
    mistgrid = str(Path(sys.executable).with_name("mistgrid"))
    process = subprocess.Popen([mistgrid, "run", str(node)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        nurls = node / "private" / "storage.nurls"
        deadline = time.monotonic() + 30
        while not nurls.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        found = exposure(process.pid, node)
        assert len(found) == 2 and found[0].startswith("listens on tcp 00000000:"), found
        assert found[1].startswith("announces 127.0.0.1:"), found
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)


# Every tahoe.cfg example block of the seed document, literally, run three ways: on its
# own, added to a directory `mistgrid create-client` made, and to one `create-node` made
# (a block's [node] keys go at the end of the directory's [node] section). With no Tor
# here, blocks naming onion services stop where the node asks Tor for them (they run on
# the private networks in tests/network/).
NO_TOR = ["cannot reach Tor's control port ([tor] control.port = tcp:127.0.0.1:9051) for "
          "the onion: hints in [node] tub.location"]
NOWHERE = ["names addresses to announce, but tub.port = disabled: the node listens nowhere"]
ORPHAN = "a key before any [section]; fix: put it under its section"
SEED_BLOCKS: dict[str, tuple[str, dict[str, str | list[str]]]] = {
    "client use-case 3": (
        "[node]\nanonymous = True\ntub.location =\n",
        {"alone": ["this node has nothing to run"], "client": STARTS,
         "node": ["an anonymous storage node must say where it is reached"]}),
    "onion service": (
        "tub.location = onion:80:hiddenServiceDir=/var/lib/tor/my_service\n",
        {"alone": [ORPHAN], "client": NOWHERE, "node": NO_TOR}),
    "onion and I2P services": (
        "tub.location = onion:80:hiddenServiceDir=/var/lib/tor/my_service,"
        "i2p:/var/lib/i2p/my_service.keypair\n",
        {"alone": [ORPHAN], "client": NOWHERE, "node": NO_TOR}),
    "server use-case 3": (
        "[node]\nanonymous = True\ntub.location = onion:80:hiddenServiceDir=/var/lib/tor/"
        "my_service,i2p:/var/lib/i2p/my_service.keypair\n",
        {"alone": ["this node has nothing to run"], "client": NOWHERE, "node": NO_TOR}),
    "TCP and onion": (
        "tub.location = tcp:123.456.789.0:80,onion:80:hiddenServiceDir=/var/lib/tor/"
        "my_service\n",
        {"alone": [ORPHAN], "client": NOWHERE, "node": NO_TOR}),
    "quoted AUTO and onion": (
        'tub.location = "AUTO,onion:80:hiddenServiceDir=/var/lib/tor/my_service"\n',
        {"alone": [ORPHAN], "client": NOWHERE, "node": NO_TOR}),
    "server use-case 2": (
        "[node]\nanonymous = False\ntub.location = AUTO,onion:80:hiddenServiceDir=/var/lib/"
        "tor/my_service,i2p:/var/lib/i2p/my_service.keypair\n",
        {"alone": ["this node has nothing to run"], "client": NOWHERE, "node": NO_TOR}),
    "torsocks client": (
        "tub.port = tcp:interface=127.0.0.1:{tub}\ntub.location = client.fakelocation:0\n",
        {"alone": [ORPHAN, ORPHAN], "client": STARTS, "node": STARTS}),
    "torsocks storage server": (
        "tub.port = tcp:interface=127.0.0.1:{tub}\n"
        "tub.location = ualhejtq2p7ohfbb.onion:29212\n",
        {"alone": [ORPHAN, ORPHAN], "client": STARTS, "node": STARTS}),
}


def _seed_node(kind: str, block: str, node: Path) -> None:
    tub, web = free_ports(2)
    block = block.format(tub=tub)
    if kind == "alone":
        node.mkdir()
        (node / "tahoe.cfg").write_text(block)
        return
    listen = ["--port", f"tcp:{tub}:interface=127.0.0.1", "--location",
              f"tcp:127.0.0.1:{tub}"] if kind == "node" else []
    made = run_cli(f"create-{kind}", *listen, "--webport",
                   f"tcp:{web}:interface=127.0.0.1", str(node))
    assert made.returncode == 0, made.stderr.decode()
    text = (node / "tahoe.cfg").read_text()
    assert "\n[client]" in text
    body = block.removeprefix("[node]\n")
    (node / "tahoe.cfg").write_text(text.replace("\n[client]", f"\n{body}\n[client]", 1))


@pytest.mark.parametrize("name, kind", [(n, k) for n in sorted(SEED_BLOCKS)
                                        for k in ("alone", "client", "node")])
def test_seed_examples_as_written(name: str, kind: str, tmp_path: Path) -> None:
    block, outcomes = SEED_BLOCKS[name]
    node = tmp_path / "node"
    _seed_node(kind, block, node)
    outcome = outcomes[kind]
    run_and_check(node, outcome)
