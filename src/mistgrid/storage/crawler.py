"""The lease crawler: walks the store in small steps, counting leases and, when expiration
is enabled, deleting shares none of whose leases is live (`storage/expiry.py` decides).

How this works: `LeaseCrawler.step(budget)` does at most about `budget` seconds of work
(bucket by bucket, in the fixed order of `expiry`), saves where it is and what it found to
`storage/mistgrid-lease-crawler.json` (written whole, then renamed), and says whether the
pass finished. `CrawlerService` runs steps on the reactor, sleeping between them so the
crawler uses about a tenth of the reactor's time; a pass starts `cycle_time` after the last
one started (the first one a minute after the server starts, or at once when a pass was
under way when the server stopped: it goes on from there). Everything runs on the reactor
thread, as the storage server's requests do, so a lease renewed by a request is seen by the
next step and never lost between the crawler's reading and deleting. Uploads in progress
(`shares/incoming/`) are never looked at.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from . import containers
from .backend import DiskBackend, remove_empty
from .expiry import DEFAULT_CYCLE_TIME, PREFIXES, CrawlState, ExpirationPolicy
from .mutable_share import MutableShare

STATE_FILE = "mistgrid-lease-crawler.json"
DONE = "~"  # a position's storage index meaning "this whole prefix is done"
FIRST_PASS_DELAY = 60.0


class LeaseCrawler:
    def __init__(self, backend: DiskBackend, policy: ExpirationPolicy,
                 clock: Any = time.time) -> None:
        self.backend = backend
        self.policy = policy
        self._clock = clock
        self.state_path = backend.root / STATE_FILE
        self.state = self._load()

    def _load(self) -> CrawlState:
        try:
            return CrawlState.from_json(json.loads(self.state_path.read_text()))
        except (OSError, ValueError, TypeError, KeyError, IndexError):
            return CrawlState()  # none yet, or unreadable: start afresh

    def save(self) -> None:
        temporary = self.state_path.with_suffix(".tmp")
        temporary.write_text(json.dumps(self.state.to_json()))
        os.replace(temporary, self.state_path)

    def step(self, budget: float) -> bool:
        """About `budget` seconds of the pass (one bucket at least); True when the pass
        finished in this step."""
        state = self.state
        if state.started is None:
            state.begin(self._clock())
        deadline = time.monotonic() + budget
        prefix, done_si = state.position
        start = PREFIXES.index(prefix) if prefix else 0
        for index in range(start, len(PREFIXES)):
            name = PREFIXES[index]
            after = done_si if name == prefix else ""
            if after == DONE:
                continue
            directory = self.backend.shares / name
            buckets = sorted(e.name for e in os.scandir(directory)) \
                if directory.is_dir() else []
            for si in buckets:
                if si <= after:
                    continue
                self._bucket(directory / si)
                state.position = (name, si)
                if time.monotonic() > deadline:
                    self.save()
                    return False
            state.position = (name, DONE)
        state.finish(self._clock())
        self.save()
        return True

    def _bucket(self, bucket: Path) -> None:
        state = self.state
        state.examined_buckets += 1
        now = self._clock()
        try:
            entries = sorted(p for p in bucket.iterdir() if p.name.isdigit())
        except OSError:
            return
        for path in entries:
            try:
                mutable, expirations, size = _leases_of(path)
            except (OSError, containers.ContainerError):
                continue  # not a share container: left alone
            state.examined_shares += 1
            state.leases += len(expirations)
            state.expired_leases += sum(self.policy.lease_expired(e, now)
                                        for e in expirations)
            if self.policy.may_delete(mutable, expirations, now):
                path.unlink(missing_ok=True)
                state.deleted_shares += 1
                state.deleted_bytes += size
        remove_empty(bucket, 1)

    def status(self) -> dict[str, Any]:
        """The crawler's part of the storage status (`/storage?t=json`)."""
        policy = self.policy
        return {
            "lease-checker": {
                "expiration-enabled": policy.enabled, "mode": policy.mode,
                "override-lease-duration": policy.override_duration,
                "cutoff-date": policy.cutoff,
                "sharetypes": [k for k, on in (("immutable", policy.immutable),
                                               ("mutable", policy.mutable)) if on],
                **self.state.to_json()},
            "lease-checker-progress": {
                "cycle-in-progress": self.state.started is not None,
                "cycle-complete-percentage": round(self.state.progress(), 1)},
        }


def _leases_of(path: Path) -> tuple[bool, list[int], int]:
    """(mutable?, every lease's expiration time, the file's size) of one share file."""
    with path.open("rb") as handle:
        head = handle.read(containers.MUTABLE_HEADER.size)
        size = os.fstat(handle.fileno()).st_size
    if containers.is_mutable(head):
        return True, [lease[1] for lease in MutableShare(path).leases()], size
    info = containers.parse_header(head[:containers.HEADER.size], size)
    with path.open("rb") as handle:
        handle.seek(info.lease_offset)
        raw = handle.read(info.lease_count * containers.LEASE.size)
    expirations = [containers.Lease.unpack(raw[i:i + containers.LEASE.size]).expiration
                   for i in range(0, len(raw) - containers.LEASE.size + 1,
                                  containers.LEASE.size)]
    return False, expirations, size


class CrawlerService:
    """Runs a LeaseCrawler's steps on the reactor."""

    def __init__(self, crawler: LeaseCrawler, reactor: Any,
                 cycle_time: float = DEFAULT_CYCLE_TIME, budget: float = 0.05,
                 share_of_time: float = 0.1) -> None:
        self.crawler = crawler
        self._reactor = reactor
        self.cycle_time = cycle_time
        self.budget = budget
        self._pause = budget * (1 / share_of_time - 1)
        self._call: Any = None  # an IDelayedCall

    def start(self) -> None:
        state = self.crawler.state
        if state.started is not None:  # a pass was under way: go on with it
            delay = 0.0
        elif state.last_finished is None:
            delay = min(FIRST_PASS_DELAY, self.cycle_time)
        else:
            delay = max(0.0, state.last_finished + self.cycle_time - time.time())
            delay = min(delay, self.cycle_time)
        self._call = self._reactor.callLater(delay, self._run)

    def _run(self) -> None:
        began = time.time()
        finished = self.crawler.step(self.budget)
        if finished:
            started = self.crawler.state.history[-1].get("started") or began
            delay = max(self._pause, started + self.cycle_time - time.time())
        else:
            delay = self._pause
        self._call = self._reactor.callLater(delay, self._run)

    def stop(self) -> None:
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
