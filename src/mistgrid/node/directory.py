"""Node directories: what `mistgrid create-node | create-client | create-introducer` write.

How this works: `NodeSpec` holds the answers to Tahoe-LAFS's create-node options;
`render_config` turns it into tahoe.cfg text (pure, checked by the config checker in
tests); `create_node_dir` writes it with `private/` secrets (mode 0700 / 0600): the
convergence secret and the TLS identity whose SPKI hash names the storage server.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import socket
from pathlib import Path

import attrs
from cryptography.hazmat.primitives import serialization

from ..caps import base32
from ..errors import MistgridError
from ..policy.anonymity import DEFAULT_I2P_SAM, DEFAULT_TOR_CONTROL
from ..storage.tls import create_identity, load_certificate

DEFAULT_WEBPORT = "tcp:3456:interface=127.0.0.1"


class NodeDirError(MistgridError):
    """The node directory cannot be created as asked."""


@attrs.frozen
class NodeSpec:
    kind: str = "node"  # node | client | introducer
    nickname: str = ""
    introducer: str = ""
    listen: tuple[str, ...] = ("tcp",)
    hostname: str = ""
    location: str = ""
    port: str = ""
    hide_ip: bool = False
    webport: str = DEFAULT_WEBPORT
    storage: bool = True
    storage_dir: str = ""
    shares_needed: int = 3
    shares_happy: int = 7
    shares_total: int = 10
    tor_control_port: str = ""
    tor_socks_port: str = ""
    tor_launch: bool = False  # [tor] launch = true: the node starts its own Tor
    tor_executable: str = ""
    i2p_sam_port: str = ""
    i2p_launch: bool = False  # [i2p] launch = true: the node starts its own I2P router
    i2p_executable: str = ""
    base: str = ""  # the node directory (absolute), for paths written into tahoe.cfg

    def tub(self) -> tuple[str, str]:
        """(tub.port, tub.location) from --listen, --hostname, --location, --port."""
        if self.listen == ("none",):
            if self.kind == "introducer":
                raise NodeDirError("an introducer must listen: use --listen=tcp")
            if self.location or self.port or self.hostname:
                raise NodeDirError("--listen=none takes no --hostname, --location or --port")
            return "disabled", "disabled"
        unsupported = [kind for kind in self.listen if kind not in ("tcp", "tor", "i2p")]
        if unsupported:
            raise NodeDirError(f"--listen={','.join(unsupported)} is not a listener type; "
                               "use tcp, tor, i2p (or several, comma-separated) or none")
        if self.hide_ip and "tcp" in self.listen:
            raise NodeDirError("--hide-ip with --listen=tcp would reveal this node's address; "
                               "use --listen=tor, or --listen=none for a client")
        if "tcp" in self.listen:
            port, tcp_location = self._tcp()
            location = [tcp_location]
        else:
            port, location = self._tor_port(), []
        if "tor" in self.listen:
            location.append(self._onion_hint())
        if "i2p" in self.listen:
            location.append(f"i2p:{self.base}/private/i2p.keys")
        return port, ",".join(location)

    def _tcp(self) -> tuple[str, str]:
        if self.location or self.port:
            if not (self.location and self.port):
                raise NodeDirError("--location and --port go together")
            return self.port, self.location
        if not self.hostname:
            raise NodeDirError("--listen=tcp needs --hostname (or --location and --port)")
        return "tcp:3457", f"tcp:{self.hostname}:3457"

    def _tor_port(self) -> str:
        if self.location or self.hostname:
            raise NodeDirError(f"--listen={','.join(self.listen)} takes no --hostname or "
                               "--location (the onion or I2P address is made when the node "
                               "first starts)")
        return self.port or f"tcp:{free_loopback_port()}:interface=127.0.0.1"

    def _onion_hint(self) -> str:
        return f"onion:{ONION_PORT}:hiddenServiceDir={self.base}/private/onion"


ONION_PORT = 3457


def free_loopback_port() -> int:
    """A port free on 127.0.0.1 now: where the node listens for its onion service, or
    where its own I2P router opens SAM."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _launch_lines(section: str, key: str, executable: str) -> list[str]:
    """tahoe.cfg lines of a node that launches its own Tor or I2P router."""
    return [f"[{section}]", "launch = true",
            *([f"{key} = {executable}"] if executable else []), ""]


def render_config(spec: NodeSpec) -> str:
    """The tahoe.cfg text for `spec`."""
    if spec.tor_launch and (spec.tor_control_port or spec.tor_socks_port):
        raise NodeDirError("--tor-launch starts the node's own Tor: leave out "
                           "--tor-control-port and --tor-socks-port")
    if spec.i2p_launch and spec.i2p_sam_port:
        raise NodeDirError("--i2p-launch starts the node's own I2P router: leave out "
                           "--i2p-sam-port")
    port, location = spec.tub()
    webport = "" if spec.webport == "none" else spec.webport
    lines = ["# mistgrid node configuration: see docs/configuration.md", "", "[node]",
             f"nickname = {spec.nickname}", f"web.port = {webport}",
             f"tub.port = {port}", f"tub.location = {location}",
             f"reveal-IP-address = {'false' if spec.hide_ip else 'true'}", ""]
    connections = ["tcp = tor"] if spec.hide_ip else []
    if spec.tor_socks_port:
        connections.append(f"tor.socks-proxy = {spec.tor_socks_port}")
    if connections:
        lines += ["[connections]", *connections, ""]
    if spec.tor_launch:
        lines += _launch_lines("tor", "tor.executable", spec.tor_executable)
    elif "tor" in spec.listen or spec.tor_control_port:
        lines += ["[tor]", f"control.port = {spec.tor_control_port or DEFAULT_TOR_CONTROL}",
                  ""]
    if spec.i2p_launch:
        lines += _launch_lines("i2p", "i2p.executable", spec.i2p_executable)
    elif "i2p" in spec.listen or spec.i2p_sam_port:
        lines += ["[i2p]", f"sam.port = {spec.i2p_sam_port or DEFAULT_I2P_SAM}", ""]
    if spec.kind != "introducer":
        lines += ["[client]", f"shares.needed = {spec.shares_needed}",
                  f"shares.happy = {spec.shares_happy}", f"shares.total = {spec.shares_total}",
                  ""]
        storage = spec.storage and spec.kind == "node"
        lines += ["[storage]", f"enabled = {'true' if storage else 'false'}",
                  "reserved_space = 1G"]
        if spec.storage_dir:
            lines.append(f"storage_dir = {spec.storage_dir}")
        lines.append("")
    return "\n".join(lines)


def _write_secret(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def create_node_dir(directory: Path, spec: NodeSpec) -> None:
    """Write a new node directory; refuses to touch an existing, non-empty one."""
    if directory.exists() and any(directory.iterdir()):
        raise NodeDirError(f"{directory} already exists and is not empty; choose a new "
                           "directory")
    spec = attrs.evolve(spec, base=str(directory.resolve()))
    config = render_config(spec)  # before writing anything: may refuse
    directory.mkdir(parents=True, exist_ok=True)
    private = directory / "private"
    private.mkdir(mode=0o700)
    (directory / "tahoe.cfg").write_text(config)
    # Tahoe-LAFS names a node's type by this file; `mistgrid run` and `tahoe run` read it.
    node_type = "introducer" if spec.kind == "introducer" else "client"
    (directory / f"tahoe-{node_type}.tac").write_text(
        "# The node type marker (as Tahoe-LAFS writes it); run this node with mistgrid run.\n")
    _write_secret(private / "convergence", base32.b2a(secrets.token_bytes(32)) + "\n")
    if spec.introducer:
        _write_secret(private / "introducers.yaml",
                      f"introducers:\n  default:\n    furl: '{spec.introducer}'\n")
    if spec.kind != "client" or spec.storage:
        create_identity(private)
    location = spec.tub()[1]
    if spec.kind == "introducer" and all(h.startswith("tcp:") for h in location.split(",")):
        # (an onion address is known only once Tor has made it: then the first start
        # writes the FURL)
        _write_secret(private / "introducer.furl", introducer_furl(private, location) + "\n")


def introducer_furl(private: Path, location: str) -> str:
    """The FURL an introducer will serve: its tub ID (base32 SHA-1 of its certificate, as
    Foolscap computes it), its location hints and a new random swissnum. Written at
    creation so nodes can be created before the introducer first runs; Foolscap keeps the
    swissnum of an existing FURL file."""
    der = load_certificate(private / "node.pem").public_bytes(serialization.Encoding.DER)
    tub_id = base32.b2a(hashlib.sha1(der).digest())
    return f"pb://{tub_id}@{location}/{base32.b2a(secrets.token_bytes(20))}"
