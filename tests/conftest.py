"""Shared test helpers: where the reference material is, and how to run the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mistgrid.testing.procs import leftovers

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MISTGRID_SHARED", REPO.parent / "shared"))
REFERENCE = SHARED / "reference"
VECTORS = REFERENCE / "tahoe-lafs" / "vectors" / "test_vectors.yaml"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Under CI (CI=true) no test may skip: a network or interop test that would skip
    (tor, i2pd or Tahoe-LAFS missing, the reference material absent) fails instead,
    naming what is missing, so CI cannot pass with those tests quietly not run."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI", "").lower() == "true" and report.skipped and \
            not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else \
            str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, which must run every test: {reason}"


NETWORK_TESTS = "tests/network/"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests on the private Tor and I2P networks first: under pytest-xdist (see
    pytest_xdist_make_scheduler) they are one unit of work, the longest, so it starts
    at once while the other worker takes everything else."""
    items.sort(key=lambda item: not item.nodeid.startswith(NETWORK_TESTS))


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """With `--dist loadscope` (scripts/test runs two workers so): each test file is one
    unit of work, so a module's shared fixtures (a grid of nodes) start once, and all of
    tests/network is one unit, so the session's private Tor and I2P networks (and the
    whole-life runs) start once, in one worker. In the order collected, not by size."""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import (  # type: ignore[import-untyped]  # noqa: PLC0415
        LoadScopeScheduling,  # (only under xdist)
    )

    class _Scheduling(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            return NETWORK_TESTS if nodeid.startswith(NETWORK_TESTS) else \
                nodeid.split("::", 1)[0]

    config.option.loadscopereorder = False
    return _Scheduling(config, log)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """No process a test started may outlive the suite: a leftover fails the run."""
    left = [f"pid {pid} ({name})" for pid, name in leftovers()]
    factory = getattr(session.config, "_tmp_path_factory", None)
    if factory is not None:
        left += [f"pid {pid} ({cmd[:100]})"
                 for pid, cmd in processes_mentioning(factory.getbasetemp())
                 if pid != os.getpid()]
    if left:
        print("\nprocesses left running after the suite:\n  " + "\n  ".join(left))
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def processes_mentioning(path: Path) -> list[tuple[int, str]]:
    """Running processes whose command line names something under `path`."""
    found = []
    marker = str(path)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(
                errors="replace")
        except OSError:
            continue
        if marker in cmdline:
            found.append((int(entry.name), cmdline))
    return found


def require_reference(path: Path) -> Path:
    """Skip (with the reason) when the shared reference file is not beside the checkout."""
    if not path.exists():
        pytest.skip(f"reference material not found at {path} (set MISTGRID_SHARED)")
    return path


def run_cli(*args: str, input_bytes: bytes | None = None,
            cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run the real `mistgrid` console script of this environment."""
    exe = Path(sys.executable).with_name("mistgrid")
    return subprocess.run([str(exe), *args], input=input_bytes, capture_output=True,
                          cwd=cwd, timeout=600, check=False)
