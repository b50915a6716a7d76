"""Which leases have expired and which shares may go (`garbage-collection.rst`), and the
lease crawler's position and totals (pure; no I/O).

A lease stores only its expiration time; it was created or last renewed `LEASE_SECONDS`
(31 days) before that. Modes, as Tahoe's:
- age: a lease has expired when its expiration time has passed; with
  `expire.override_lease_duration`, when (renewal time + that duration) has passed;
- cutoff-date: a lease has expired when it was created or renewed before the cutoff.
A share may be deleted only when expiration is enabled for its kind (`expire.immutable`,
`expire.mutable`) and none of its leases is live (a share with no lease at all has none).

The crawler walks the store in a fixed order: the 1,024 two-character prefix directories
(base32, sorted), and in each the storage-index directories sorted by name. `CrawlState` is
where it is (the last bucket done) and what the pass found so far; it is saved after every
step, so a restarted server goes on where it stopped and every bucket is looked at at least
once per pass (a bucket done again after a restart changes nothing: deciding is
idempotent).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import attrs

from ..caps.base32 import ALPHABET
from .containers import LEASE_SECONDS

DEFAULT_CYCLE_TIME = 12 * 60 * 60  # seconds from one pass's start to the next's
PREFIXES = tuple("".join(p) for p in itertools.product(sorted(ALPHABET), repeat=2))


@attrs.frozen
class ExpirationPolicy:
    enabled: bool = False
    mode: str = "age"  # or "cutoff-date"
    override_duration: int | None = None  # seconds
    cutoff: int | None = None  # seconds since the epoch
    immutable: bool = True
    mutable: bool = True

    def lease_expired(self, expiration: float, now: float) -> bool:
        renewed = expiration - LEASE_SECONDS
        if self.mode == "cutoff-date":
            return self.cutoff is not None and renewed < self.cutoff
        if self.override_duration is not None:
            return renewed + self.override_duration < now
        return expiration < now

    def may_delete(self, mutable: bool, expirations: Sequence[float], now: float) -> bool:
        if not self.enabled or not (self.mutable if mutable else self.immutable):
            return False
        return all(self.lease_expired(e, now) for e in expirations)


@attrs.define
class CrawlState:
    """Where the current pass is, and its totals so far."""

    cycle: int = 0  # passes completed
    started: float | None = None  # when the current pass started (None: between passes)
    last_finished: float | None = None
    position: tuple[str, str] = ("", "")  # (prefix, storage index) last done; "" = none
    examined_buckets: int = 0
    examined_shares: int = 0
    leases: int = 0
    expired_leases: int = 0
    deleted_shares: int = 0
    deleted_bytes: int = 0
    history: list[dict[str, Any]] = attrs.field(factory=list)  # the last passes' totals

    HISTORY = 10

    def begin(self, now: float) -> None:
        self.started = now
        self.position = ("", "")
        self.examined_buckets = self.examined_shares = self.leases = 0
        self.expired_leases = self.deleted_shares = self.deleted_bytes = 0

    def finish(self, now: float) -> None:
        self.history.append({"cycle": self.cycle, "started": self.started, "finished": now,
                             **self.totals()})
        del self.history[:-self.HISTORY]
        self.cycle += 1
        self.started = None
        self.last_finished = now
        self.position = ("", "")

    def totals(self) -> dict[str, int]:
        return {"examined-buckets": self.examined_buckets,
                "examined-shares": self.examined_shares, "leases": self.leases,
                "expired-leases": self.expired_leases,
                "deleted-shares": self.deleted_shares, "deleted-bytes": self.deleted_bytes}

    def progress(self) -> float:
        """How far the pass is, 0..100 (by prefix)."""
        if self.started is None:
            return 0.0
        prefix = self.position[0]
        if not prefix:
            return 0.0
        return 100.0 * (PREFIXES.index(prefix) + 1) / len(PREFIXES)

    def to_json(self) -> dict[str, Any]:
        return {"cycle": self.cycle, "started": self.started,
                "last-finished": self.last_finished, "position": list(self.position),
                **self.totals(), "history": self.history}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CrawlState:
        state = cls(int(data.get("cycle", 0)), data.get("started"),
                    data.get("last-finished"))
        position = data.get("position") or ["", ""]
        state.position = (str(position[0]), str(position[1]))
        state.examined_buckets = int(data.get("examined-buckets", 0))
        state.examined_shares = int(data.get("examined-shares", 0))
        state.leases = int(data.get("leases", 0))
        state.expired_leases = int(data.get("expired-leases", 0))
        state.deleted_shares = int(data.get("deleted-shares", 0))
        state.deleted_bytes = int(data.get("deleted-bytes", 0))
        state.history = list(data.get("history") or [])[-cls.HISTORY:]
        return state
