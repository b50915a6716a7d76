"""What a check found, and Tahoe's rules for calling a file healthy (pure).

How this works: the checker shells gather, per server, which shares it holds (and, when
verifying, which of them proved corrupt); these functions turn that into `CheckResults`,
whose `to_json()` is exactly Tahoe-LAFS 1.20's `t=check&output=JSON` shape, so tools and
Tahoe's own CLI read it unchanged. Servers are named by their server IDs (Tahoe's
"longname"); a share is named by number (immutable) or `seqN-ROOT-shN` (mutable).

Rules, as Tahoe's: an immutable file is healthy when all N share numbers are found good
(duplicates and corrupt extras do not make it unhealthy), recoverable with k. A mutable file
is healthy when exactly one version is recoverable, no version is unrecoverable, and the
best version has all N shares.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

from ..caps import base32
from ..mutable.servermap import ServerMap
from ..placement.happiness import happiness
from .words import describe


@attrs.frozen
class Corrupt:
    server: str
    number: int
    reason: str


@attrs.frozen
class CheckResults:
    storage_index: bytes
    healthy: bool
    recoverable: bool
    needed: int = 0
    expected: int = 0
    shares_good: int = 0
    good_share_hosts: int = 0
    happiness: int = 0
    servers_responding: tuple[str, ...] = ()
    sharemap: Mapping[str, tuple[str, ...]] = attrs.field(factory=dict)
    corrupt: tuple[Corrupt, ...] = ()
    wrong_shares: int = 0
    recoverable_versions: int = 0
    unrecoverable_versions: int = 0
    summary: str = "Healthy"
    literal: bool = False  # a LIT file: nothing on servers, always healthy

    @classmethod
    def of_literal(cls) -> CheckResults:
        return cls(b"", True, True, summary="Healthy (LIT)", literal=True)

    @property
    def storage_index_text(self) -> str:
        return base32.b2a(self.storage_index) if self.storage_index else ""

    def counts(self) -> dict[str, Any]:
        """Tahoe's `results` dictionary."""
        if self.literal:
            return {"healthy": True}
        si = self.storage_index_text
        return {
            "count-happiness": self.happiness,
            "count-shares-good": self.shares_good,
            "count-shares-needed": self.needed,
            "count-shares-expected": self.expected,
            "count-good-share-hosts": self.good_share_hosts,
            "count-corrupt-shares": len(self.corrupt),
            "list-corrupt-shares": [[c.server, si, c.number] for c in self.corrupt],
            # mistgrid's addition: what was wrong with each
            "corrupt-share-reasons": [[c.server, si, c.number, c.reason]
                                      for c in self.corrupt],
            "servers-responding": list(self.servers_responding),
            "sharemap": {k: list(v) for k, v in self.sharemap.items()},
            "count-wrong-shares": self.wrong_shares,
            "count-recoverable-versions": self.recoverable_versions,
            "count-unrecoverable-versions": self.unrecoverable_versions,
            "healthy": self.healthy,
            "recoverable": self.recoverable,
        }

    def to_json(self) -> dict[str, Any]:
        if self.literal:
            return {"storage-index": "", "results": {"healthy": True}}
        return {"storage-index": self.storage_index_text, "summary": self.summary,
                "results": self.counts()}

    def words(self) -> list[str]:
        return describe(self.to_json())


@attrs.frozen
class RepairResults:
    pre: CheckResults
    post: CheckResults
    attempted: bool
    successful: bool
    problem: str = ""  # why a repair failed or was not attempted

    def to_json(self) -> dict[str, Any]:
        if self.pre.literal:
            return {"storage-index": "", "repair-attempted": False}
        result = {"storage-index": self.pre.storage_index_text,
                  "repair-attempted": self.attempted,
                  "repair-successful": self.successful,
                  "pre-repair-results": self.pre.to_json(),
                  "post-repair-results": self.post.to_json()}
        if self.problem:  # mistgrid's addition: why it failed or was not attempted
            result["repair-problem"] = self.problem
        return result

    def words(self) -> list[str]:
        return describe(self.to_json())


def immutable_results(storage_index: bytes, needed: int, total: int,
                      good: Mapping[str, Iterable[int]], responding: Iterable[str],
                      corrupt: Sequence[Corrupt] = ()) -> CheckResults:
    """Results of a CHK file from the good share numbers each server holds."""
    holders: dict[int, list[str]] = {}
    for server, numbers in good.items():
        for number in numbers:
            if 0 <= number < total:
                holders.setdefault(number, []).append(server)
    found = len(holders)
    healthy = found >= total
    summary = "Healthy" if healthy else f"Not Healthy: {found} shares (enc {needed}-of-{total})"
    by_server = {s: {n for n in ns if 0 <= n < total} for s, ns in good.items()}
    return CheckResults(
        storage_index, healthy, found >= needed, needed, total, found,
        len([s for s, ns in by_server.items() if ns]), happiness(by_server),
        tuple(sorted(responding)),
        {str(n): tuple(sorted(holders[n])) for n in sorted(holders)},
        tuple(corrupt), 0, int(found >= needed), int(found < needed), summary)


def version_name(seqnum: int, root_hash: bytes) -> str:
    """Tahoe's short name of a mutable version: seqN-ROOT (4 characters of the root)."""
    return f"seq{seqnum}-{base32.b2a(root_hash)[:4]}"


def mutable_results(storage_index: bytes, servermap: ServerMap, names: Sequence[str],
                    corrupt: Sequence[Corrupt] = ()) -> CheckResults:
    """Results of a mutable file from its servermap (`names[i]` is server i's ID);
    `corrupt`: shares a verify found bad, besides those the map found bad."""
    versions = servermap.versions()
    recoverable = servermap.recoverable()
    unrecoverable = [v for v in versions if v not in recoverable]
    bad = [Corrupt(names[b.server], b.number, b.reason) for b in servermap.bad] + list(corrupt)
    bad_keys = {(c.server, c.number) for c in bad}
    sharemap: dict[str, list[str]] = {}
    for version, records in versions.items():
        for r in records:
            if (names[r.server], r.number) in bad_keys:
                continue
            sharemap.setdefault(f"{version_name(*version)}-sh{r.number}", []).append(
                names[r.server])
    reasons: list[str] = []
    healthy = True
    if unrecoverable:
        healthy = False
        reasons.append("some versions are unrecoverable")
    if not recoverable:
        healthy = False
        reasons.append("no versions are recoverable")
    if len(recoverable) > 1:
        healthy = False
        reasons.append("multiple versions are recoverable")
    counted = recoverable[0] if recoverable else (unrecoverable[0] if unrecoverable else None)
    needed, total, good_numbers, hosts = 3, 10, 0, 0
    wrong = 0
    placements: dict[str, set[int]] = {}
    if counted is not None:
        prefix = servermap.prefix_of(counted)
        needed, total = prefix.needed, prefix.total
        good_records = [r for r in versions[counted]
                        if (names[r.server], r.number) not in bad_keys]
        good_numbers = len({r.number for r in good_records})
        for r in good_records:
            placements.setdefault(names[r.server], set()).add(r.number)
        hosts = len(placements)
        wrong = sum(len(rs) for v, rs in versions.items() if v != counted)
        if recoverable and good_numbers < total:
            healthy = False
            reasons.append(f"{good_numbers} shares (enc {needed}-of-{total})")
    if bad:
        reasons.append("Corrupt Shares:")
        reasons.extend(f"{c.server}-sh{c.number}" for c in bad)
    return CheckResults(
        storage_index, healthy, bool(recoverable), needed, total, good_numbers, hosts,
        happiness(placements), tuple(sorted(names[i] for i in servermap.responded)),
        {k: tuple(sorted(v)) for k, v in sorted(sharemap.items())}, tuple(bad), wrong,
        len(recoverable), len(unrecoverable),
        "Healthy" if healthy else "Unhealthy: " + " ".join(reasons))
