"""Lease expiry on real storage nodes (`[storage] expire.*`): with `expire.mode = age` and
a short override duration, a file whose leases were not renewed is gone after the lease
crawler's pass, a renewed one (`t=check&add-lease=true`) is untouched, and the storage
node's /storage?t=json says what the pass reclaimed."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mistgrid.caps import base32, parse_cap
from mistgrid.testing.procs import Managed, stop_all, wait_for

from .test_check_repair import age_leases, check, leases
from .test_web_grid import exists, http, start_grid

DAY = 86400
RENEW_WITHIN = 8  # seconds: the renewal comes well within this of the ageing


def lease_checker(storage_url: str) -> dict[str, Any]:
    """The lease crawler's part of a storage node's /storage?t=json."""
    state: dict[str, Any] = json.loads(http("GET", storage_url + "storage?t=json")[1])[
        "lease-checker"]
    return state


@pytest.fixture(scope="module")
def expiring_grid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, str]]:
    """(client web URL, base directory, storage0's web URL): 2 storage nodes whose
    crawlers pass every 2 seconds and expire leases older than 1 day; a 1-of-2 client."""
    base = tmp_path_factory.mktemp("expiry")
    processes: list[Managed] = []
    try:
        client = start_grid(base, processes, servers=2, needed=1, happy=2, total=2,
                            storage_lines=("expire.enabled = true\nexpire.mode = age\n"
                                           "expire.override_lease_duration = 1 day\n"
                                           "lease_crawler.cycle_time = 2 seconds\n"),
                            storage_web=True)
        storage_web = base / "storage0" / "node.url"
        wait_for(exists(storage_web), 30, "storage0's web API", watch=processes)
        yield ((client / "node.url").read_text().strip(), base,
               storage_web.read_text().strip())
    finally:
        stop_all(processes)


def shares_of(base: Path, cap: str) -> list[Path]:
    si = base32.b2a(parse_cap(cap).storage_index)  # type: ignore[union-attr]
    return sorted(p for i in range(2) for p in (base / f"storage{i}").glob(
        f"**/shares/*/{si}/*") if p.name.isdigit())


def test_unrenewed_files_expire_and_renewed_ones_stay(
        expiring_grid: tuple[str, Path, str]) -> None:
    url, base, storage_url = expiring_grid
    caps = {}
    for name in ("kept", "dropped"):
        code, made = http("PUT", url + "uri", os.urandom(5000))
        assert code == 200
        caps[name] = made.decode()
    # As far as their leases say, "dropped" was made two days ago (expired under the 1-day
    # override) and "kept" a day less RENEW_WITHIN seconds ago: it expires that long from
    # now unless renewed. (Aged to two days as well, a crawler pass between the ageing and
    # the renewal could take it first: that failed a run of the suite once.)
    aged = time.time()
    for name, renewed in (("dropped", aged - 2 * DAY), ("kept", aged - DAY + RENEW_WITHIN)):
        files = shares_of(base, caps[name])
        assert len(files) == 2
        for path in files:
            age_leases(path, int(renewed) + 31 * DAY)
    check(url + "uri/" + caps["kept"], **{"add-lease": "true"})
    assert time.time() < aged + RENEW_WITHIN, "the renewal came too late to test anything"
    kept = shares_of(base, caps["kept"])
    assert len(kept) == 2
    for path in kept:
        assert leases(path)[0].expiration > time.time() + 30 * DAY
    before = json.loads(http("GET", storage_url + "storage?t=json")[1])["lease-checker"]
    wait_for(lambda: True if not shares_of(base, caps["dropped"]) else None, 30,
             "the crawler to expire the unrenewed file")
    # a whole pass after "kept"'s old lease would have run out, and it is still there
    time.sleep(max(0.0, aged + RENEW_WITHIN - time.time()))
    cycle = lease_checker(storage_url)["cycle"]
    wait_for(lambda: True if lease_checker(storage_url)["cycle"] >= cycle + 2 else None, 30,
             "a crawler pass that started after the old lease ran out")
    assert len(shares_of(base, caps["kept"])) == 2
    assert http("GET", url + "uri/" + caps["kept"])[0] == 200
    assert http("GET", url + "uri/" + caps["dropped"])[0] in (404, 410, 503)

    def reclaimed() -> dict[str, Any] | None:
        now: dict[str, Any] = json.loads(http("GET", storage_url + "storage?t=json")[1])[
            "lease-checker"]
        done = sum(h["deleted-shares"] for h in now["history"])
        return now if now["cycle"] > before["cycle"] and done >= 1 else None

    crawler = wait_for(reclaimed, 30, "a finished pass to report what it reclaimed")
    assert crawler["expiration-enabled"] and crawler["mode"] == "age"
    assert crawler["override-lease-duration"] == DAY
    page = http("GET", storage_url + "storage")[1].decode()
    assert "Lease crawler" in page and "reclaimed" in page
