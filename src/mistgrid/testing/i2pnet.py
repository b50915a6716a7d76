"""A private I2P network on loopback: i2pd routers that know only each other.

How this works: `I2PNetwork.start(base, routers=4)` builds a small LD_PRELOAD shim (see
`i2pd_peer_shim.c` for why Debian's i2pd 2.45.1 needs it), writes one config per router
and starts each once so it makes its keys and `router.info`, then stops it. The routers'
`router.info` files go into a zip that every router then reseeds from: the only
reseed source any router has. Every router has our own `netid`, NTCP2 only, its own
address 127.0.0.(10+i), floodfill on, no reseed URLs, no address-book subscriptions, no
UPnP, no clock sync, and 1-hop exploratory tunnels. The network is ready when a SAM
session on router 0 reaches a session on router 1 by its `.b32.i2p` address.

Why 4 routers: with 2, a router that once fails a tunnel test through its only peer can
stop building tunnels for minutes (seen here); 4 were reliable. Why the shim, not one
router: a single router would carry both ends of every stream, and tests must show a
destination reached from *another* router. Why these settings:
`--datadir` must be on the command line (the config key is ignored); SSU2 is off because
2.45 drops it on 127/8; disabling the address book makes SAM NAMING LOOKUP crash, so it
stays on with nothing to subscribe to, but an empty address book fetches the hosts file of
`defaulturl` 3 minutes after start, and an empty `defaulturl` then aborts i2pd
(std::out_of_range: every router died at 3:00, seen here), so `defaulturl` names a .b32.i2p
destination nobody has (NOWHERE_HOSTS_URL): its lease set is looked for on this network
only, not found, and the fetch fails quietly; router 0 is the only reseed entry (see
`_launch`); server sessions need SERVER_SESSION_OPTIONS.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path

import attrs

from ..node.keeper import owned_argv
from ..wire.sam import SamError
from .procs import (
    HarnessError,
    Managed,
    ensure_dir,
    free_ports,
    require_binary,
    stop_all,
    wait_for,
)
from .samclient import SamSession, Stream

NETID = 77  # not 2 (the public I2P network): routers of other networks refuse us
PEER_OCTET = 11  # what the shim reports instead of 127 (outside every reserved range)
SHIM_SOURCE = Path(__file__).with_name("i2pd_peer_shim.c")

# SAM session options that work on this network (measured with i2pd 2.45.1). A server's
# lease set must be the original kind (type 1, ElGamal): with the newer LeaseSet2 a
# client's STREAM CONNECT reports OK but no byte ever reaches the server. outbound.length=0
# keeps a server's lease set from going unpublished for minutes.
SERVER_SESSION_OPTIONS = {"inbound.length": "1", "outbound.length": "0",
                          "i2cp.leaseSetType": "1", "i2cp.leaseSetEncType": "0"}
CLIENT_SESSION_OPTIONS = {"inbound.length": "1", "outbound.length": "1"}


@attrs.frozen
class Router:
    index: int
    data_dir: Path
    host: str
    ntcp2_port: int
    sam_port: int

    @property
    def router_info(self) -> Path:
        return self.data_dir / "router.info"


# A destination nobody has: the address book's default hosts file, never found (above).
NOWHERE_HOSTS_URL = "http://" + "a" * 52 + ".b32.i2p/hosts.txt"


def router_config(router: Router, reseed_zip: Path) -> str:
    """The i2pd.conf of one router (every line pins it to this network)."""
    log = router.data_dir / "i2pd.log"
    head, sections = pinning_config(router.host, router.ntcp2_port, reseed_zip).split(
        "\n\n", 1)
    return f"""\
log = file
logfile = {log}
loglevel = info
{head}
daemon = false

[sam]
enabled = true
address = 127.0.0.1
port = {router.sam_port}
singlethread = false

{sections}"""


def pinning_config(host: str, ntcp2_port: int, reseed_zip: Path) -> str:
    """The i2pd.conf lines that keep a router on this network (also what a node that
    launches its own i2pd is given in `[i2p] launch.config`): its main section, a blank
    line, then its sections."""
    return f"""\
host = {host}
address4 = {host}
port = {ntcp2_port}
ipv4 = true
ipv6 = false
nat = false
reservedrange = false
netid = {NETID}
floodfill = true
bandwidth = X

[ntcp2]
enabled = true
published = true
port = {ntcp2_port}

[ssu2]
enabled = false
published = false

[http]
enabled = false

[httpproxy]
enabled = false

[socksproxy]
enabled = false

[bob]
enabled = false

[i2cp]
enabled = false

[i2pcontrol]
enabled = false

[upnp]
enabled = false

[nettime]
enabled = false

[meshnets]
yggdrasil = false

[reseed]
verify = false
threshold = 0
urls =
yggurls =
file =
zipfile = {reseed_zip}

[addressbook]
enabled = true
defaulturl = {NOWHERE_HOSTS_URL}
subscriptions =

[exploratory]
inbound.length = 1
outbound.length = 1
inbound.quantity = 2
outbound.quantity = 2

[limits]
transittunnels = 200

[precomputation]
elgamal = false

[persist]
profiles = false
"""


def build_shim(out: Path) -> Path:
    """Compile the getpeername shim (needs a C compiler)."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise HarnessError("the I2P test network needs a C compiler for its i2pd shim "
                           "(apt-get install gcc libc6-dev)")
    result = subprocess.run([compiler, "-shared", "-fPIC", "-O2", "-o", str(out),
                             str(SHIM_SOURCE), "-ldl"], capture_output=True, timeout=120,
                            check=False)
    if result.returncode != 0:
        raise HarnessError(f"building the i2pd shim failed: {result.stderr.decode()}")
    return out


def i2pd_binary() -> str:
    return require_binary("i2pd", "i2pd")


class I2PNetwork:
    """A running private I2P network; `stop()` ends every router it started."""

    def __init__(self, base: Path, routers: list[Router], shim: Path) -> None:
        self.base = base
        self.routers = routers
        self.shim = shim
        self.reseed_zip = base / "reseed.zip"
        self.processes: list[Managed] = []
        self._held: list[SamSession | Stream] = []
        self.started_at = 0.0  # time.monotonic() when the routers started for good

    @classmethod
    def start(cls, base: Path, routers: int = 4, timeout: float = 150.0) -> I2PNetwork:
        """Build, start and probe the network; returns once a cross-router stream works."""
        i2pd = i2pd_binary()
        base = ensure_dir(base)
        ports = free_ports(2 * routers)
        shim = build_shim(base / "i2pd_peer_shim.so")
        network = cls(base, [
            Router(i, ensure_dir(base / f"router{i}"), f"127.0.0.{10 + i}", ports[2 * i],
                   ports[2 * i + 1]) for i in range(routers)], shim)
        try:
            network._make_router_infos(i2pd)
            network._start_all(i2pd)
            network._probe(timeout)
        except BaseException:
            network.stop()
            raise
        return network

    def _launch(self, i2pd: str, router: Router) -> Managed:
        conf = router.data_dir / "i2pd.conf"
        # Router 0 is the seed: it reseeds from nothing and learns the others when they
        # connect to it. Were every router to know every other from the start, pairs would
        # dial each other at the same instant and i2pd 2.45 drops both sessions.
        reseed = self.reseed_zip if router.index else self.base / "no-reseed-for-router0.zip"
        conf.write_text(router_config(router, reseed))
        env = dict(os.environ, LD_PRELOAD=str(self.shim),
                   MISTGRID_NTCP2_PORT=str(router.ntcp2_port),
                   MISTGRID_PEER_OCTET=str(PEER_OCTET))
        # Owned: the kernel kills the router if this process dies (i2pd has no
        # __OwningControllerProcess), so an interrupted test run leaves none behind.
        return Managed(f"i2pd router{router.index}",
                       owned_argv(os.getpid(), signal.SIGKILL, i2pd, [
                           f"--datadir={router.data_dir}", f"--conf={conf}",
                           "--tunconf=/dev/null",
                           f"--tunnelsdir={router.data_dir / 'tunnels.d'}",
                           f"--pidfile={router.data_dir / 'i2pd.pid'}"]),
                       router.data_dir / "stdout.log", env=env)

    def _make_router_infos(self, i2pd: str) -> None:
        """First start of each router: it writes its keys and router.info; then stop it."""
        first = [self._launch(i2pd, r) for r in self.routers]
        try:
            for router in self.routers:
                wait_for(_exists(router.router_info), 60,
                         f"router{router.index} to write its router.info", watch=first)
        finally:
            for proc in first:
                proc.popen.kill()
            stop_all(first, term_timeout=10)
        with zipfile.ZipFile(self.reseed_zip, "w") as bundle:
            seed = self.routers[0]
            bundle.write(seed.router_info, "routerInfo-router0.dat")

    def _start_all(self, i2pd: str) -> None:
        self.processes = [self._launch(i2pd, r) for r in self.routers]
        self.started_at = time.monotonic()

    def _probe(self, timeout: float) -> None:
        """Ready when a session on router 1 reaches one on router 0 and gets an echo.

        The probe's sessions and streams stay open until `stop()`: once (in ~20 runs) Debian's
        i2pd 2.45.1 died right after the probe closed its streams, so nothing is torn down
        while tests run. Tests use routers 2 and 3 for their own sessions.
        """
        with ThreadPoolExecutor(2) as pool:
            server_job = pool.submit(self._session_when_up, 0, "probe-server",
                                     SERVER_SESSION_OPTIONS, timeout)
            client_job = pool.submit(self._session_when_up, 1, "probe-client",
                                     CLIENT_SESSION_OPTIONS, timeout)
            wait([server_job, client_job])
        for job in (server_job, client_job):
            if job.exception() is None:
                self._held.append(job.result())
        server, client = server_job.result(), client_job.result()
        with ThreadPoolExecutor(1) as pool:
            accepted = pool.submit(server.accept, timeout)
            stream = wait_for(lambda: _try_connect(client, server.b32), timeout,
                              "a stream from router 1 to a destination on router 0",
                              interval=1.0, watch=self.processes)
            incoming, _peer = accepted.result(timeout)
        self._held += [stream, incoming]
        stream.sendall(b"ping\n")
        if incoming.recv(5) != b"ping\n":
            raise HarnessError("probe stream delivered the wrong bytes")

    def check_alive(self) -> None:
        """Raise HarnessError naming any router that has exited."""
        dead = [p for p in self.processes if not p.alive()]
        if dead:
            proc = dead[0]
            raise HarnessError(f"{proc.name} exited (status {proc.popen.returncode}); "
                               f"log {proc.log.parent / 'i2pd.log'}")

    def _session_when_up(self, index: int, name: str, options: dict[str, str],
                         timeout: float) -> SamSession:
        port = self.routers[index].sam_port
        return wait_for(lambda: _try_session(port, name, options), timeout,
                        f"SAM on router{index}", interval=0.5, watch=self.processes)

    def launch_config(self, number: int) -> str:
        """`[i2p] launch.config` lines that put a router a node launches itself on this
        network (number n: its own address 127.0.0.(30+n), a free NTCP2 port)."""
        (port,) = free_ports(1)
        return pinning_config(f"127.0.0.{30 + number}", port, self.reseed_zip)

    def sam_port(self, index: int = 0) -> int:
        return self.routers[index].sam_port

    def pids(self) -> list[int]:
        return [p.pid for p in self.processes]

    def stop(self) -> None:
        for held in self._held:
            held.close()
        self._held.clear()
        stop_all(self.processes, term_timeout=10)


def _exists(path: Path) -> Callable[[], bool | None]:
    return lambda: True if path.exists() else None


def _try_session(port: int, name: str, options: dict[str, str]) -> SamSession | None:
    try:
        return SamSession(port, name, options)
    except (OSError, HarnessError, SamError):
        return None


def _try_connect(session: SamSession, target: str) -> Stream | None:
    try:
        return session.connect(target, timeout=60)
    except (OSError, HarnessError, SamError):  # not reachable yet
        return None
