"""Which versions of a mutable file live where, and where the next version goes.

How this works: a servermap is the set of (server, share number, signed prefix) found by
asking every server; only shares whose signature checked are recorded, and shares that
failed a check are kept apart with the reason. The best version is the newest recoverable
one (highest sequence number with at least k distinct shares; ties by root hash, as Tahoe
breaks them). The publish plan writes the new version over every share found (a
test-and-set against what was seen there, so a writer who raced us is noticed) and places
share numbers not found on the servers in permuted order, those holding fewest shares
first. Pure: no I/O.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence

import attrs

from ..shares.mutable import Prefix

# A test-and-set write's test of one share: its `size` bytes at `offset` must be `specimen`
# (a share reads short where it ends; one that does not exist reads as b"").
ShareTest = tuple[int, int, bytes]
# For a share the map saw no copy of: its first byte must read as nothing, so the write
# fails where a share exists after all (another writer's new share, or one a silent
# server held), as Tahoe's publisher tests; a zero-length test would pass on anything.
NEW_SHARE_TEST: ShareTest = (0, 1, b"")


def still(specimen: bytes) -> ShareTest:
    """The test that a share still begins with `specimen` (what the map saw there)."""
    return (0, len(specimen), specimen)


@attrs.frozen
class Found:
    server: int
    number: int
    prefix: Prefix


@attrs.frozen
class Bad:
    server: int
    number: int
    reason: str
    head: bytes = b""  # the share's first bytes as read: a rewrite tests against them


@attrs.define
class ServerMap:
    found: list[Found] = attrs.field(factory=list)
    bad: list[Bad] = attrs.field(factory=list)
    responded: set[int] = attrs.field(factory=set)

    def versions(self) -> dict[tuple[int, bytes], list[Found]]:
        result: dict[tuple[int, bytes], list[Found]] = {}
        for record in self.found:
            result.setdefault(record.prefix.version_id, []).append(record)
        return result

    def recoverable(self) -> list[tuple[int, bytes]]:
        """Versions with at least k distinct share numbers, newest first."""
        good = [vid for vid, records in self.versions().items()
                if len({r.number for r in records}) >= records[0].prefix.needed]
        return sorted(good, reverse=True)

    def best(self) -> tuple[int, bytes] | None:
        versions = self.recoverable()
        return versions[0] if versions else None

    def highest_seqnum(self) -> int:
        return max((r.prefix.seqnum for r in self.found), default=0)

    def prefix_of(self, version: tuple[int, bytes]) -> Prefix:
        return next(r.prefix for r in self.found if r.prefix.version_id == version)

    def holders(self, version: tuple[int, bytes]) -> dict[int, list[int]]:
        """{share number: [servers holding it]} for one version."""
        result: dict[int, list[int]] = {}
        for r in self.found:
            if r.prefix.version_id == version:
                result.setdefault(r.number, []).append(r.server)
        return result

    def is_empty(self) -> bool:
        return not self.found and not self.bad


class Sightings:
    """Where a client last saw the shares of files it mapped or wrote recently: per
    storage index, per server (by permutation seed), the share that server holds (its
    lowest number), or None where it held none. A map reads those shares first, and
    only asks a server seen holding none for its list: once the grid's membership has
    changed, a file's shares are no longer where its permuted order puts them. Bounded:
    the files used least recently are forgotten."""

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._seen: OrderedDict[bytes, dict[bytes, int | None]] = OrderedDict()

    def of(self, storage_index: bytes) -> dict[bytes, int | None]:
        seen = self._seen.get(storage_index)
        if seen is None:
            return {}
        self._seen.move_to_end(storage_index)
        return dict(seen)

    def learn(self, storage_index: bytes, seen: Mapping[bytes, int | None]) -> None:
        known = self._seen.pop(storage_index, {})
        known.update(seen)
        self._seen[storage_index] = known
        while len(self._seen) > self._size:
            self._seen.popitem(last=False)

    def __len__(self) -> int:
        return len(self._seen)


def seen_in(servermap: ServerMap, seeds: Sequence[bytes]) -> dict[bytes, int | None]:
    """What a map saw, for `Sightings.learn`: each server that answered (`seeds[i]` is
    server i's), with its lowest good share (else its lowest bad one), or None."""
    seen: dict[bytes, int | None] = {}
    for server in servermap.responded:
        good = [r.number for r in servermap.found if r.server == server]
        bad = [b.number for b in servermap.bad if b.server == server]
        seen[seeds[server]] = min(good or bad) if good or bad else None
    return seen


@attrs.frozen
class Placement:
    server: int
    number: int
    test: ShareTest  # what the share there must still be (NEW_SHARE_TEST: none there)


def plan_publish(servermap: ServerMap, permuted: Sequence[int], total: int,
                 usable: set[int] | None = None) -> list[Placement]:
    """Where each share of a new version is written. `permuted`: server indexes in the
    file's permuted order; `usable`: the servers that answered (all by default)."""
    usable = set(permuted) if usable is None else usable
    placements: list[Placement] = []
    load: dict[int, int] = {s: 0 for s in permuted if s in usable}
    placed: set[int] = set()
    slots = [(r.server, r.number, r.prefix.checkstring()) for r in servermap.found]
    slots += [(b.server, b.number, b.head) for b in servermap.bad if b.head]
    taken: set[tuple[int, int]] = set()
    for server, number, specimen in sorted(slots, key=lambda x: (x[1], x[0])):
        if number >= total or server not in load or (server, number) in taken:
            continue  # a share number the new N has no room for stays as it is
        placements.append(Placement(server, number, still(specimen)))
        taken.add((server, number))
        load[server] += 1
        placed.add(number)
    occupied = {(b.server, b.number) for b in servermap.bad}
    for number in range(total):
        if number in placed or not load:
            continue
        order = sorted(load, key=lambda s: (load[s], permuted.index(s)))
        free = [s for s in order if (s, number) not in occupied]
        if not free:
            continue
        placements.append(Placement(free[0], number, NEW_SHARE_TEST))
        load[free[0]] += 1
    return placements
