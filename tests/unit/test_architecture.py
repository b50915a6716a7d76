"""The structure rules of DESIGN.md that a grep can hold: cores stay pure."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "mistgrid"
CORE_PACKAGES = ["caps", "config", "crypto", "encoding", "gbs", "placement", "policy", "shares",
                 "wire"]
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
# The one module that may open connections for a node, and the test harness, which only
# talks to processes it started on loopback (socksclient refuses other proxies).
MAY_CONNECT = {"net/connector.py", "testing/torcontrol.py", "testing/samclient.py",
               "testing/socksclient.py"}


def test_only_the_connector_opens_connections() -> None:
    """DESIGN.md: no module but net/connector.py opens a connection or resolves a name."""
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        name = str(path.relative_to(SRC))
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if OPENERS.search(line) and name not in MAY_CONNECT:
                offenders.append(f"{name}:{number}: {line.strip()}")
    assert offenders == []


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
