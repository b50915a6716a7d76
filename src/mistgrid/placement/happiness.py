"""Servers-of-happiness (`specifications/servers-of-happiness.rst`), as a pure function.

How this works: happiness is the size of a maximum matching between servers and shares in
the bipartite graph "server holds (or will hold) share": the number of servers that could
each supply a different share. Found with augmenting paths (graphs have at most 256 shares).
`permuted` orders servers per storage index, so each file spreads differently.
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable, Mapping, Sequence, Set
from typing import TypeVar

S = TypeVar("S", bound=Hashable)


def happiness(placements: Mapping[S, Set[int]]) -> int:
    """Size of a maximum server-to-share matching."""
    share_owner: dict[int, S] = {}

    def augment(server: S, seen: set[int]) -> bool:
        for share in placements[server]:
            if share in seen:
                continue
            seen.add(share)
            if share not in share_owner or augment(share_owner[share], seen):
                share_owner[share] = server
                return True
        return False

    return sum(1 for server in placements if augment(server, set()))


def permuted(seeds: Sequence[bytes], storage_index: bytes) -> list[int]:
    """Indexes of servers (by permutation seed) in this storage index's order: Tahoe-LAFS's
    order, SHA-1 of the storage index followed by the server's permutation seed."""
    return sorted(range(len(seeds)),
                  key=lambda i: hashlib.sha1(storage_index + seeds[i]).digest())


def spread(total: int, servers: int) -> list[int]:
    """Which server (by position) first gets each share: round-robin."""
    return [n % servers for n in range(total)]
