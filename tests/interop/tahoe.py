"""Real Tahoe-LAFS 1.20 for interoperability tests, from PyPI, in its own cached venv.

The venv lives at $MISTGRID_TAHOE_VENV or ~/.cache/mistgrid/tahoe-lafs-1.20.0 and is made
on first use (pip needs the package registry; about a minute). Where it cannot be made,
the tests that need it skip and say why. Nodes are created with `tahoe create-node` on
127.0.0.1 only and run with `tahoe run` under the harness's process registry.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import attrs
import pytest

from mistgrid.gbs.nurl import Nurl
from mistgrid.storage.announcement import announcement, server_id, servers_yaml
from mistgrid.storage.tls import identity_hash, load_certificate
from mistgrid.testing.procs import Managed, free_ports, wait_for

TAHOE_VERSION = "1.20.0"
TAHOE_EXTRAS = "tor,i2p"


def tahoe_venv() -> Path:
    """bin/ of a venv with tahoe-lafs 1.20.0 and its tor and i2p extras (txtorcon,
    txi2p-tahoe: `tahoe create-node --listen=tor|i2p` needs them), made once and cached;
    skips if impossible. A cache made before the extras were asked for gets them added."""
    default = Path.home() / ".cache" / "mistgrid" / f"tahoe-lafs-{TAHOE_VERSION}"
    root = Path(os.environ.get("MISTGRID_TAHOE_VENV", default))
    root.parent.mkdir(parents=True, exist_ok=True)
    # The suite runs in several pytest-xdist workers: one makes the venv, the others
    # wait for it here instead of making it too (two pips in one venv break it).
    with (root.parent / f"{root.name}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _made_venv(root)


def _made_venv(root: Path) -> Path:
    marker = root / ".installed"
    wanted = f"{TAHOE_VERSION} {TAHOE_EXTRAS}\n"
    if marker.exists() and (root / "bin" / "tahoe").exists():
        if marker.read_text() == wanted:
            return root / "bin"
        steps = []
    else:
        steps = [[sys.executable, "-m", "venv", "--clear", str(root)]]
    steps.append([str(root / "bin" / "python"), "-m", "pip", "install", "-q",
                  "--disable-pip-version-check",
                  f"tahoe-lafs[{TAHOE_EXTRAS}]=={TAHOE_VERSION}"])
    for step in steps:
        result = subprocess.run(step, capture_output=True, timeout=900, check=False)
        if result.returncode != 0:
            pytest.skip(f"cannot install tahoe-lafs {TAHOE_VERSION} into {root}: "
                        f"{result.stderr.decode(errors='replace').strip()[-300:]}")
    marker.write_text(wanted)
    return root / "bin"


@attrs.define
class TahoeStorageNode:
    directory: Path
    port: int
    process: Managed

    def nurl(self) -> Nurl:
        furl = (self.directory / "private" / "storage.furl").read_text().strip()
        swissnum = furl.rsplit("/", 1)[1]
        return Nurl("pb", identity_hash(self.directory / "private" / "node.pem"),
                    "127.0.0.1", self.port, swissnum)

    def stop(self) -> None:
        self.process.stop()


def start_storage_node(directory: Path, introducer: str = "",
                       nickname: str = "tahoe-contract") -> TahoeStorageNode:
    """A Tahoe-LAFS 1.20 storage node on 127.0.0.1 with no web port (announcing itself to
    `introducer` if one is given)."""
    bin_dir = tahoe_venv()
    (port,) = free_ports(1)
    extra = [f"--introducer={introducer}"] if introducer else []
    subprocess.run(
        [str(bin_dir / "tahoe"), "create-node", "--listen=tcp",
         f"--port=tcp:{port}:interface=127.0.0.1", f"--location=tcp:127.0.0.1:{port}",
         "--webport=none", f"--nickname={nickname}", *extra, str(directory)],
        capture_output=True, timeout=120, check=True)
    process = Managed("tahoe storage node",
                      [str(bin_dir / "tahoe"), "run", "--allow-stdin-close", str(directory)],
                      directory / "run.log")
    node = TahoeStorageNode(directory, port, process)
    furl = directory / "private" / "storage.furl"
    wait_for(lambda: True if furl.exists() else None, 120, "Tahoe's storage.furl",
             watch=[process])
    return node


@attrs.define
class TahoeClientNode:
    tahoe: Path
    directory: Path
    process: Managed

    def cli(self, *args: str) -> bytes:
        result = subprocess.run([str(self.tahoe), "-d", str(self.directory), *args],
                                capture_output=True, timeout=300, check=False)
        assert result.returncode == 0, (args, result.stderr.decode(errors="replace"),
                                        result.stdout.decode(errors="replace")[-2000:])
        return result.stdout

    def connected(self) -> int:
        """How many storage servers its welcome page says it is connected to."""
        url = (self.directory / "node.url").read_text().strip() + "?t=json"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                welcome = json.load(response)
        except OSError:
            return 0
        return sum(1 for server in welcome.get("servers", [])
                   if str(server.get("connection_status", "")).lower().startswith("connected"))

    def stop(self) -> None:
        self.process.stop()


def _create_client(directory: Path, needed: int, happy: int, total: int,
                   *extra: str) -> Path:
    """`tahoe create-client` with a loopback web port; the tahoe executable."""
    tahoe = tahoe_venv() / "tahoe"
    (web,) = free_ports(1)
    subprocess.run([str(tahoe), "create-client", f"--webport=tcp:{web}:interface=127.0.0.1",
                    f"--shares-needed={needed}", f"--shares-happy={happy}",
                    f"--shares-total={total}", *extra, str(directory)],
                   check=True, capture_output=True, timeout=120)
    return tahoe


def _run_client(tahoe: Path, directory: Path, servers: int,
                timeout: float) -> TahoeClientNode:
    """Run the client node until it is connected to `servers` servers (stopped on failure)."""
    process = Managed("tahoe client node", [str(tahoe), "run", "--allow-stdin-close",
                                            str(directory)], directory / "run.log")
    node = TahoeClientNode(tahoe, directory, process)
    try:
        wait_for(lambda: True if (directory / "node.url").exists() else None, 60,
                 "the Tahoe client's web API", watch=[process])
        wait_for(lambda: True if node.connected() == servers else None, timeout,
                 f"the Tahoe client to connect to {servers} servers", interval=0.5,
                 watch=[process])
    except BaseException:
        process.stop()
        raise
    return node


def start_client_node(directory: Path, servers: list[tuple[Path, Nurl, str | None]],
                      needed: int, happy: int, total: int) -> TahoeClientNode:
    """A Tahoe 1.20 client node whose private/servers.yaml lists `servers`
    ((node.pem, NURL, its Foolscap fURL or None)), once it is connected to all of them."""
    tahoe = _create_client(directory, needed, happy, total)
    entries = {}
    for index, (pem, nurl, furl) in enumerate(servers):
        cert = load_certificate(pem)
        ann = announcement([nurl], cert, f"server{index}")
        if furl is not None:
            ann["anonymous-storage-FURL"] = furl
        entries[server_id(cert)] = ann
    (directory / "private" / "servers.yaml").write_text(servers_yaml(entries))
    return _run_client(tahoe, directory, len(servers), 60)


def start_introducer(directory: Path) -> tuple[Managed, str]:
    """A Tahoe-LAFS 1.20 introducer on 127.0.0.1: (its process, its FURL)."""
    tahoe = tahoe_venv() / "tahoe"
    (port,) = free_ports(1)
    subprocess.run([str(tahoe), "create-introducer", "--listen=tcp",
                    f"--port=tcp:{port}:interface=127.0.0.1",
                    f"--location=tcp:127.0.0.1:{port}", str(directory)],
                   check=True, capture_output=True, timeout=120)
    process = Managed("tahoe introducer", [str(tahoe), "run", "--allow-stdin-close",
                                           str(directory)], directory / "run.log")
    furl = directory / "private" / "introducer.furl"
    try:
        wait_for(lambda: True if furl.exists() and furl.read_text().strip() else None, 120,
                 "Tahoe's introducer.furl", watch=[process])
    except BaseException:
        process.stop()
        raise
    return process, furl.read_text().strip()


def start_introduced_client(directory: Path, introducer: str, servers: int, needed: int,
                            happy: int, total: int) -> TahoeClientNode:
    """A Tahoe 1.20 client node using `introducer`, once it is connected to `servers`."""
    tahoe = _create_client(directory, needed, happy, total, f"--introducer={introducer}")
    return _run_client(tahoe, directory, servers, 90)
