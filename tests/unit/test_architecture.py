"""The structure rules of DESIGN.md that a grep can hold: cores stay pure."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "mistgrid"
CORE_PACKAGES = ["caps", "config", "crypto", "dirnode", "encoding", "gbs", "mutable", "placement",
                 "policy", "shares", "wire"]
CORE_MODULES = ["errors.py", "secret.py"]
# What a pure core may not import: I/O, clocks, event loops, and the shells.
FORBIDDEN = {"os", "socket", "time", "asyncio", "subprocess", "twisted", "treq", "txtorcon",
             "pathlib", "shutil", "tempfile", "threading", "select"}
SHELLS = {"mistgrid.cli", "mistgrid.offline", "mistgrid.fileutil", "mistgrid.testing",
          "mistgrid.net", "mistgrid.storage", "mistgrid.grid", "mistgrid.node",
          "mistgrid.web", "mistgrid.introducer"}


def core_files() -> list[Path]:
    files = [SRC / name for name in CORE_MODULES]
    for package in CORE_PACKAGES:
        files.extend(sorted((SRC / package).rglob("*.py")))
    return files


def imported_names(path: Path) -> set[str]:
    """Absolute module names a file imports (relative imports resolved)."""
    package = ".".join(["mistgrid", *path.relative_to(SRC).parent.parts])
    return imported_names_in(path.read_text(), package)


def imported_names_in(source: str, package: str) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                names.add(".".join([*base, *(node.module.split(".") if node.module else [])]))
            elif node.module:
                names.add(node.module)
    return names


@pytest.mark.parametrize("path", core_files(), ids=lambda p: str(p.relative_to(SRC)))
def test_core_is_pure(path: Path) -> None:
    """A core module imports no I/O, clock or event-loop module and no shell."""
    for name in imported_names(path):
        top = name.split(".")[0]
        assert top not in FORBIDDEN, f"{path.name} imports {name}"
        assert not any(name == s or name.startswith(s + ".") for s in SHELLS), \
            f"{path.name} imports the shell {name}"


def test_the_rule_can_fail() -> None:
    """The scan resolves relative imports, so a core importing a shell is seen."""
    names = imported_names_in("from ..offline import encode_file\nimport socket\n",
                              "mistgrid.caps")
    assert names == {"mistgrid.offline", "socket"}


OPENERS = re.compile(
    r"connectTCP|clientFromString|TCP4ClientEndpoint|TCP6ClientEndpoint|HostnameEndpoint|"
    r"socket\.create_connection|\.connect\(\(|getaddrinfo|gethostbyname|resolveHostName|"
    r"treq\.(get|post|put|request)\(")
# The one module that may open connections for a node; the CLI's client of its own node's
# web API (a process of its own, never imported by a node; numeric loopback addresses
# only, no name resolved); and the test harness, which only talks to processes it started
# on loopback (socksclient refuses other proxies).
MAY_CONNECT = {"net/connector.py", "cli/localhttp.py", "testing/torcontrol.py",
               "testing/samclient.py", "testing/socksclient.py"}


def test_only_the_connector_opens_connections() -> None:
    """DESIGN.md: no module but net/connector.py opens a connection or resolves a name."""
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        name = str(path.relative_to(SRC))
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if OPENERS.search(line) and name not in MAY_CONNECT:
                offenders.append(f"{name}:{number}: {line.strip()}")
    assert offenders == []


# Every other way Python has to reach the network: sockets, asyncio's streams and
# transports, urllib, http.client, and network tools run as child processes.
NETWORK_USES = re.compile(
    r"^\s*(import|from)\s+(socket|asyncio|urllib\.request|http\.client|ssl|selectors)\b|"
    r"\b(socket\.socket|create_connection|open_connection|create_datagram_endpoint|"
    r"urlopen|HTTPS?Connection)\b|"
    r"\bsubprocess\.\w+\(.*\b(curl|wget|nc|ncat|socat|ssh|torsocks|dig|nslookup|host)\b")
# Where src/ may use one of them, and why each stays on this machine (loopback, or no
# connection at all). Anything else is a failure: route it through net/connector.py.
LOOPBACK_ONLY = {
    "net/connector.py": "the connector itself",
    "node/addresses.py": "an unconnected UDP socket, only to ask the kernel (ioctl) for "
                         "interface addresses: nothing sent, nothing resolved",
    "node/directory.py": "binds a socket to 127.0.0.1 to find a free port (for an onion "
                         "service, for the SAM port of the node's own i2pd); connects "
                         "nowhere",
    "cli/localhttp.py": "the CLI reaches its own node's web API at the address in "
                        "node.url, refused unless a numeric loopback address "
                        "(`loopback_address`: no name is looked up)",
    "node/demo.py": "the demo reaches the web API of the grid it started on 127.0.0.1",
    "net/tls.py": "ssl's memory BIOs only (SSLObject): TLS over a transport the connector "
                  "made; no socket is made or wrapped",
}


def network_uses(source: str) -> list[tuple[int, str]]:
    return [(number, line.strip()) for number, line in enumerate(source.splitlines(), 1)
            if NETWORK_USES.search(line)]


def test_every_network_use_is_listed() -> None:
    """No module outside net/connector.py and the listed loopback-only uses (and the test
    harness in testing/, which drives the private networks on 127.0.0.1) touches the
    network by any means: sockets, asyncio, urllib, http.client, or a network tool."""
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        name = str(path.relative_to(SRC))
        if name in LOOPBACK_ONLY or name.startswith("testing/"):
            continue
        offenders += [f"{name}:{n}: {line}" for n, line in network_uses(path.read_text())]
    assert offenders == []


def test_the_tls_layer_uses_ssl_and_nothing_else_of_the_network() -> None:
    """net/tls.py is listed for `import ssl` (memory BIOs); it may not grow a socket."""
    source = (SRC / "net" / "tls.py").read_text()
    assert [line for _, line in network_uses(source)] == ["import ssl"]
    assert "wrap_socket" not in source and "SSLSocket" not in source


@pytest.mark.parametrize("line", [
    "import socket", "from asyncio import open_connection", "import urllib.request",
    "import http.client as h", "x = urlopen(url)", "c = HTTPSConnection(host)",
    "subprocess.run(['curl', url])", "await loop.create_connection(f, host, port)",
    "s = socket.socket()", "import ssl",
])
def test_the_network_scan_can_fail(line: str) -> None:
    assert network_uses(line) != []


@pytest.mark.parametrize("argv", [["--version"], ["put", "--help"],
                                  ["status", "/nonexistent"], ["get", "--help"]])
def test_light_commands_do_not_import_the_node(argv: list[str]) -> None:
    """The CLI loads a command's module only when it runs: calls that talk to a running
    node, or print help, never import Twisted, Foolscap or rich (CLI call overhead)."""
    code = ("import sys\nfrom mistgrid.cli.main import main\nsys.argv = ['mistgrid'] + "
            f"{argv!r}\ntry:\n    main()\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('twisted', 'foolscap', 'rich', 'zfec', 'treq') "
            "if m in sys.modules]\nsys.stderr.write(repr(heavy))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60,
                            check=False)
    assert result.stderr.decode().splitlines()[-1] == "[]", result.stderr.decode()


@pytest.mark.parametrize("package", ["node", "web", "grid", "storage", "introducer", "net"])
def test_the_node_imports_nothing_from_the_cli(package: str) -> None:
    """DESIGN.md: helpers shared by the node and the CLI live below both."""
    for path in sorted((SRC / package).rglob("*.py")):
        for name in imported_names(path):
            assert not (name == "mistgrid.cli" or name.startswith("mistgrid.cli.")), \
                f"{path.relative_to(SRC)} imports {name}"
