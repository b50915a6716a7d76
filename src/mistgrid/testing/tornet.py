"""A private Tor network on loopback: 4 authorities that are also relays, and a client.

How this works: `TorNetwork.start(base)` writes the keys and a torrc for every process,
starts the authorities, waits until they publish a consensus listing every relay with the
flags onion circuits need, then starts the client and waits for its control port to report
bootstrap PROGRESS=100. Every torrc is pinned to this network (see `PINNED`): our own
DirAuthority lines only, TestingTorNetwork, no fallback directories, loopback listeners,
an exit policy that accepts only 127.0.0.0/8, and `__OwningControllerProcess` so a tor
dies with the Python process that started it. Nothing here can reach the public network.

Facts this relies on (measured with Debian's tor 0.4.9): onion circuits need 4 distinct
relays; a loopback-only exit policy cannot be summarised in microdescriptors, so every
client needs `UseMicrodescriptors 0`; a client started before a complete consensus exists
can stall for ~40 s, hence the wait; the Vanilla scheduler is several times faster here.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path

import attrs
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from .procs import (
    HarnessError,
    Managed,
    ensure_dir,
    free_ports,
    require_binary,
    stop_all,
    wait_for,
)
from .torcontrol import TorControl

VOTING_INTERVAL = 10
VOTE_DELAY = 2
DIST_DELAY = 2

# Lines every tor the project starts must carry (checked by tests/network/test_pinning.py).
PINNED = ("TestingTorNetwork 1", "UseDefaultFallbackDirs 0")

COMMON_OPTIONS = (
    ("TestingTorNetwork", "1"),
    ("UseDefaultFallbackDirs", "0"),
    ("AddressDisableIPv6", "1"),
    ("ClientUseIPv6", "0"),
    ("SafeLogging", "0"),
    ("ShutdownWaitLength", "0"),
    ("Schedulers", "Vanilla"),
    ("PathsNeededToBuildCircuits", "0.67"),
    ("UseMicrodescriptors", "0"),
)

AUTHORITY_OPTIONS = (
    ("AuthoritativeDirectory", "1"),
    ("V3AuthoritativeDirectory", "1"),
    ("AssumeReachable", "1"),
    ("TestingAuthDirTimeToLearnReachability", "0"),
    ("V3AuthVotingInterval", str(VOTING_INTERVAL)),
    ("V3AuthVoteDelay", str(VOTE_DELAY)),
    ("V3AuthDistDelay", str(DIST_DELAY)),
    ("TestingV3AuthInitialVotingInterval", str(VOTING_INTERVAL)),
    ("TestingV3AuthInitialVoteDelay", str(VOTE_DELAY)),
    ("TestingV3AuthInitialDistDelay", str(DIST_DELAY)),
    ("TestingV3AuthVotingStartOffset", "0"),
    ("V3AuthNIntervalsValid", "2"),
    ("TestingDirAuthVoteExit", "*"),
    ("TestingDirAuthVoteGuard", "*"),
    ("TestingDirAuthVoteHSDir", "*"),
    ("TestingMinExitFlagThreshold", "0"),
    # Fast and Stable for every relay, always. Fast otherwise goes by the bandwidth each
    # relay observes of its own traffic (8-9 KB/s here): with 4 relays the threshold is
    # the second smallest, so the slowest went without Fast, by chance for minutes (once
    # longer than the 150 s a network has to list every relay with every flag). A
    # guarantee of 1 byte makes the threshold 0 KB; Stable likewise needs no uptime.
    ("AuthDirFastGuarantee", "1 byte"),
    ("AuthDirVoteStableGuaranteeMinUptime", "0"),
    ("AuthDirVoteStableGuaranteeMTBF", "0"),
    ("ExitRelay", "1"),
    ("ExitPolicyRejectPrivate", "0"),
    ("ExitPolicy", "accept 127.0.0.0/8:*"),
    ("ExitPolicy", "reject *:*"),
    ("ServerDNSDetectHijacking", "0"),
    ("ServerDNSTestAddresses", ""),
    ("ServerDNSAllowBrokenConfig", "1"),
    ("SocksPort", "0"),
)


@attrs.frozen
class Authority:
    nickname: str
    data_dir: Path
    or_port: int
    dir_port: int
    fingerprint: str  # relay identity (RSA), hex
    v3ident: str  # v3 authority identity, hex

    def dir_authority_line(self) -> str:
        return (f"{self.nickname} orport={self.or_port} no-v2 v3ident={self.v3ident} "
                f"127.0.0.1:{self.dir_port} {self.fingerprint}")


def render_torrc(options: Iterable[tuple[str, str]]) -> str:
    return "".join(f"{key} {value}".rstrip() + "\n" for key, value in options)


def network_options(authorities: Iterable[Authority]) -> list[tuple[str, str]]:
    """What pins a tor to this network: the common options and our DirAuthority lines."""
    options = list(COMMON_OPTIONS)
    options.append(("__OwningControllerProcess", str(os.getpid())))
    options.extend(("DirAuthority", a.dir_authority_line()) for a in authorities)
    return options


def authority_torrc(me: Authority, everyone: Iterable[Authority], resolv: Path) -> str:
    options = [
        *network_options(everyone),
        ("DataDirectory", str(me.data_dir)),
        ("Nickname", me.nickname),
        ("Address", "127.0.0.1"),
        ("ORPort", f"127.0.0.1:{me.or_port}"),
        ("DirPort", f"127.0.0.1:{me.dir_port}"),
        ("ContactInfo", f"{me.nickname}@mistgrid.invalid"),
        ("ServerDNSResolvConfFile", str(resolv)),
        ("Log", f"notice file {me.data_dir / 'notice.log'}"),
        *AUTHORITY_OPTIONS,
    ]
    return render_torrc(options)


def client_options(authorities: Iterable[Authority], data_dir: Path, socks_port: int,
                   control_port: int) -> list[tuple[str, str]]:
    """A client tor of this network (also what a node's own launched tor must use)."""
    return [
        *network_options(authorities),
        ("DataDirectory", str(data_dir)),
        ("SocksPort", f"127.0.0.1:{socks_port}"),
        ("ControlPort", f"127.0.0.1:{control_port}"),
        ("CookieAuthentication", "1"),
        ("Log", f"notice file {data_dir / 'notice.log'}"),
    ]


def make_relay_key(data_dir: Path) -> str:
    """Write a relay identity key (RSA-1024, e=65537) and return its fingerprint (hex)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    keys = ensure_dir(data_dir / "keys")
    (keys / "secret_id_key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption()))
    public_der = key.public_key().public_bytes(serialization.Encoding.DER,
                                               serialization.PublicFormat.PKCS1)
    return hashlib.sha1(public_der).hexdigest().upper()


def make_authority_keys(data_dir: Path, dir_port: int) -> str:
    """Run tor-gencert for a v3 authority; returns its v3 identity fingerprint."""
    keys = ensure_dir(data_dir / "keys")
    result = subprocess.run(
        ["tor-gencert", "--create-identity-key", "--passphrase-fd", "0", "-m", "24",
         "-a", f"127.0.0.1:{dir_port}", "-i", str(keys / "authority_identity_key"),
         "-s", str(keys / "authority_signing_key"), "-c", str(keys / "authority_certificate")],
        input=b"\n", capture_output=True, timeout=120, check=False)
    if result.returncode != 0:
        raise HarnessError(f"tor-gencert failed: {result.stderr.decode(errors='replace')}")
    text = (keys / "authority_certificate").read_text()
    match = re.search(r"^fingerprint ([0-9A-F]{40})$", text, re.MULTILINE)
    if match is None:
        raise HarnessError("tor-gencert wrote no fingerprint")
    return match.group(1)


def consensus_relays(path: Path) -> dict[str, set[str]] | None:
    """{nickname: flags} from a cached consensus file, or None if there is none yet."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return None
    relays: dict[str, set[str]] = {}
    nickname = ""
    for line in text.splitlines():
        if line.startswith("r "):
            nickname = line.split()[1]
        elif line.startswith("s ") and nickname:
            relays[nickname] = set(line.split()[1:])
    return relays


NEEDED_FLAGS = {"Exit", "Guard", "HSDir", "Running", "Valid", "Fast", "Stable"}


@attrs.frozen
class BridgeRelay:
    """A bridge of this network: a relay in no consensus, reached only by its Bridge line
    (with `obfs4_port`, also through obfs4 on that port, its `cert` in `obfs4_cert`)."""

    process: Managed
    or_port: int
    fingerprint: str
    obfs4_port: int | None = None
    obfs4_cert: str | None = None

    @property
    def line(self) -> str:
        """What a client's `Bridge` option (or mistgrid's `[tor] bridges` file) takes."""
        return f"127.0.0.1:{self.or_port} {self.fingerprint}"

    @property
    def obfs4_line(self) -> str:
        """The same bridge reached through obfs4 (an obfs4 bridge started it)."""
        assert self.obfs4_port is not None and self.obfs4_cert is not None
        return (f"obfs4 127.0.0.1:{self.obfs4_port} {self.fingerprint} "
                f"cert={self.obfs4_cert} iat-mode=0")


def obfs4_cert(bridge_line: str) -> str | None:
    """The `cert=` of the obfs4 bridge line a bridge writes (pt_state/obfs4_bridgeline.txt:
    comments, then `Bridge obfs4 <IP ADDRESS>:<PORT> <FINGERPRINT> cert=... iat-mode=0`)."""
    for line in bridge_line.splitlines():
        if line.startswith("Bridge obfs4 "):
            for word in line.split():
                if word.startswith("cert="):
                    return word.removeprefix("cert=")
    return None


def bridge_torrc(authorities: Iterable[Authority], data_dir: Path, or_port: int,
                 nickname: str, obfs4: tuple[str, int] | None = None) -> str:
    """A bridge relay of this network: unpublished (clients fetch its descriptor from it),
    not an exit, no SOCKS port; with `obfs4` ((obfs4proxy, port)) also an obfs4 bridge
    on 127.0.0.1:port."""
    transport = [] if obfs4 is None else [
        ("ServerTransportPlugin", f"obfs4 exec {obfs4[0]}"),
        ("ServerTransportListenAddr", f"obfs4 127.0.0.1:{obfs4[1]}"),
        ("ExtORPort", "auto"),
    ]
    return render_torrc([
        *transport,
        *network_options(authorities),
        ("DataDirectory", str(data_dir)),
        ("Nickname", nickname),
        ("Address", "127.0.0.1"),
        ("ORPort", f"127.0.0.1:{or_port}"),
        ("BridgeRelay", "1"),
        ("PublishServerDescriptor", "0"),
        ("AssumeReachable", "1"),
        ("ExitRelay", "0"),
        ("SocksPort", "0"),
        ("Log", f"notice file {data_dir / 'notice.log'}"),
    ])


# A client that uses bridges must use microdescriptors: with UseMicrodescriptors 0 every
# relay has a full descriptor of the general purpose, and tor 0.4.9 then finds no relay it
# may connect to directly (router_can_choose_node() wants a bridge-purpose descriptor for a
# direct connection through bridges, and a general-purpose one in every case), so it never
# builds a circuit and stays at 75%. Microdescriptors cannot express the exits' loopback
# policy, so such a client reaches onion services only (no exit circuits): enough for a grid
# of onion servers.
BRIDGE_CLIENT_MICRODESCRIPTORS = ("UseMicrodescriptors", "1")


def tor_binary() -> str:
    return require_binary("tor", "tor")


class TorNetwork:
    """A running private Tor network; `stop()` ends every process it started."""

    def __init__(self, base: Path, authorities: list[Authority], socks_port: int,
                 control_port: int) -> None:
        self.base = base
        self.authorities = authorities
        self.socks_port = socks_port
        self.control_port = control_port
        self.client_dir = base / "client"
        self.processes: list[Managed] = []

    @classmethod
    def start(cls, base: Path, authorities: int = 4, timeout: float = 150.0) -> TorNetwork:
        """Build and start the network under `base`; returns once the client is ready."""
        tor = tor_binary()
        base = ensure_dir(base)
        ports = free_ports(2 * authorities + 2)
        auths = []
        for i in range(authorities):
            data_dir = ensure_dir(base / f"auth{i}")
            or_port, dir_port = ports[2 * i], ports[2 * i + 1]
            auths.append(Authority(f"mgauth{i}", data_dir, or_port, dir_port,
                                   make_relay_key(data_dir),
                                   make_authority_keys(data_dir, dir_port)))
        network = cls(base, auths, ports[-2], ports[-1])
        try:
            network._start_authorities(tor, timeout)
            network._start_client(tor, timeout)
        except BaseException:
            network.stop()
            raise
        return network

    def _start_authorities(self, tor: str, timeout: float) -> None:
        resolv = self.base / "resolv.conf"
        resolv.write_text("nameserver 127.0.0.1\n")
        for auth in self.authorities:
            torrc = auth.data_dir / "torrc"
            torrc.write_text(authority_torrc(auth, self.authorities, resolv))
            self.processes.append(self._launch(tor, auth.nickname, torrc))
        expected = {a.nickname for a in self.authorities}
        cached = self.authorities[0].data_dir / "cached-consensus"

        def complete() -> bool | None:
            relays = consensus_relays(cached) or {}
            ok = set(relays) >= expected and all(relays[n] >= NEEDED_FLAGS for n in expected)
            return True if ok else None

        try:
            wait_for(complete, timeout, "a consensus listing every relay as Exit/Guard/HSDir",
                     watch=self.processes)
        except HarnessError as err:
            seen = {name: sorted(flags) for name, flags in
                    (consensus_relays(cached) or {}).items()}
            raise HarnessError(f"{err}; the last consensus: {seen or 'none'}") from None

    def _start_client(self, tor: str, timeout: float) -> None:
        data_dir = ensure_dir(self.client_dir)
        torrc = data_dir / "torrc"
        options = self.client_options(data_dir, self.socks_port, self.control_port)
        # why an onion service is not published yet, should a test need to know
        options.append(("Log", f"[rend]info file {data_dir / 'rend.log'}"))
        torrc.write_text(render_torrc(options))
        client = self._launch(tor, "client", torrc)
        self.processes.append(client)
        cookie = data_dir / "control_auth_cookie"
        wait_for(lambda: True if cookie.exists() else None, 30, "the client's control port",
                 watch=[client])

        def bootstrapped() -> bool | None:
            try:
                with self.control() as control:
                    return True if control.bootstrap_progress() >= 100 else None
            except OSError:
                return None

        wait_for(bootstrapped, timeout, "client bootstrap PROGRESS=100", interval=0.5,
                 watch=[client])

    def _launch(self, tor: str, name: str, torrc: Path) -> Managed:
        empty = self.base / "empty-defaults-torrc"
        empty.touch()
        return Managed(f"tor {name}", [tor, "--defaults-torrc", str(empty), "-f", str(torrc)],
                       torrc.parent / "stdout.log")

    def client_options(self, data_dir: Path, socks_port: int,
                       control_port: int) -> list[tuple[str, str]]:
        """torrc options for another client tor on this network (e.g. one a node launches)."""
        return client_options(self.authorities, data_dir, socks_port, control_port)

    def pinning_options(self) -> Mapping[str, list[str]]:
        """The options that keep a tor on this network, as {key: [values]}."""
        result: dict[str, list[str]] = {}
        for key, value in network_options(self.authorities):
            if key != "__OwningControllerProcess":
                result.setdefault(key, []).append(value)
        return result

    def bridge_client_options(self) -> Mapping[str, list[str]]:
        """`pinning_options()` for a client that reaches this network through bridges."""
        result = dict(self.pinning_options())
        key, value = BRIDGE_CLIENT_MICRODESCRIPTORS
        result[key] = [value]
        return result

    def start_bridge(self, base: Path, nickname: str = "mgbridge0",
                     timeout: float = 60.0, obfs4: bool = False) -> BridgeRelay:
        """Start a bridge relay of this network (with `obfs4`, also an obfs4 bridge,
        through Debian's obfs4proxy); returns once it has bootstrapped. The caller stops it
        (`.process.stop()`; its obfs4proxy, tor's child, goes with it)."""
        data_dir = ensure_dir(base / nickname)
        fingerprint = make_relay_key(data_dir)
        or_port, obfs4_port = free_ports(2)
        transport = (require_binary("obfs4proxy", "obfs4proxy"), obfs4_port) if obfs4 else None
        torrc = data_dir / "torrc"
        torrc.write_text(bridge_torrc(self.authorities, data_dir, or_port, nickname,
                                      transport))
        process = self._launch(tor_binary(), nickname, torrc)
        log, line = data_dir / "notice.log", data_dir / "pt_state" / "obfs4_bridgeline.txt"

        def ready() -> bool | None:
            if not (log.exists() and "Bootstrapped 100%" in log.read_text()):
                return None
            return True if not obfs4 or (line.exists() and obfs4_cert(line.read_text())) \
                else None

        try:
            wait_for(ready, timeout, f"bridge {nickname} to bootstrap", interval=0.5,
                     watch=[process])
        except BaseException:
            process.stop()
            raise
        if not obfs4:
            return BridgeRelay(process, or_port, fingerprint)
        return BridgeRelay(process, or_port, fingerprint, obfs4_port,
                           obfs4_cert(line.read_text()))

    def control(self) -> TorControl:
        return TorControl(self.control_port, self.client_dir / "control_auth_cookie")

    def pids(self) -> list[int]:
        return [p.pid for p in self.processes]

    def stop(self) -> None:
        stop_all(self.processes)
