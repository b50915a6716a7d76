"""Session fixtures: one private Tor network and one private I2P network for all tests.

Both start in parallel the first time a test asks for either, live for the whole session
and are stopped (every process, by PID) when it ends, also on failure. Their directories,
logs included, stay under pytest's base temp (the last few runs are kept) and the path is
printed, so a failed run can be read afterwards. Where tor or i2pd is not installed the
tests that need it skip and say so.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import attrs
import pytest

from mistgrid.testing.i2pnet import I2PNetwork
from mistgrid.testing.procs import HarnessError
from mistgrid.testing.tornet import TorNetwork

T = TypeVar("T")


@attrs.define
class Networks:
    tor: Future[TorNetwork] | None
    i2p: Future[I2PNetwork] | None
    tor_missing: str
    i2p_missing: str
    started: float


def _missing(*tools: str) -> str:
    absent = [t for t in tools if shutil.which(t) is None]
    return f"not installed: {', '.join(absent)} (scripts/test installs them as root)" \
        if absent else ""


def _timed(start: float, what: str, launch: Future[object]) -> None:
    launch.add_done_callback(
        lambda f: print(f"\n{what} ready after {time.monotonic() - start:.1f}s"
                        if f.exception() is None else f"\n{what} failed: {f.exception()}"))


def _start_with_one_retry(start: Callable[[Path], T], base: Callable[[], Path],
                          what: str) -> T:
    """Start a private network; if it does not come up, once more in a fresh directory.
    (Now and then the I2P routers never find each other: seen once in a few dozen starts,
    router0's SAM API never opened. A failed start has stopped its own processes.)"""
    try:
        return start(base())
    except HarnessError as err:
        print(f"\n{what} did not start ({err}); trying once more")
        return start(base())


@pytest.fixture(scope="session")
def networks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Networks]:
    tor_missing = _missing("tor", "tor-gencert")
    i2p_missing = _missing("i2pd") or (
        "" if shutil.which("cc") or shutil.which("gcc") else
        "no C compiler for the i2pd shim (apt-get install gcc libc6-dev)")
    # The base temp directory is made on first use; made by both start threads at once
    # there were two, and mktemp refused one ("not a normalized and relative path").
    tmp_path_factory.getbasetemp()
    pool = ThreadPoolExecutor(2, thread_name_prefix="network-start")
    start = time.monotonic()
    tor = None if tor_missing else pool.submit(
        _start_with_one_retry, TorNetwork.start, lambda: tmp_path_factory.mktemp("tornet"),
        "the Tor network")
    i2p = None if i2p_missing else pool.submit(
        _start_with_one_retry, I2PNetwork.start, lambda: tmp_path_factory.mktemp("i2pnet"),
        "the I2P network")
    for what, launch in (("tor network", tor), ("i2p network", i2p)):
        if launch is not None:
            _timed(start, what, launch)  # type: ignore[arg-type]
    try:
        yield Networks(tor, i2p, tor_missing, i2p_missing, start)
    finally:
        for launch in (tor, i2p):
            if launch is None:
                continue
            with contextlib.suppress(Exception):  # a failed start cleaned up after itself
                launch.result().stop()
        pool.shutdown()


@pytest.fixture(scope="session")
def tor_network(networks: Networks) -> TorNetwork:
    if networks.tor is None:
        pytest.skip(f"Tor network tests need tor: {networks.tor_missing}")
    try:
        return networks.tor.result()
    except HarnessError as err:
        pytest.fail(f"private Tor network did not start: {err}")


@pytest.fixture(scope="session")
def i2p_network(networks: Networks) -> I2PNetwork:
    if networks.i2p is None:
        pytest.skip(f"I2P network tests need i2pd: {networks.i2p_missing}")
    try:
        return networks.i2p.result()
    except HarnessError as err:
        pytest.fail(f"private I2P network did not start: {err}")
