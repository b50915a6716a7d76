"""Where a client last saw a file's shares: remembered per server, replaced by what is
seen later, and bounded (the files used least recently are forgotten)."""

from __future__ import annotations

from mistgrid.caps.mutable import MutableFormat
from mistgrid.mutable.servermap import Found, ServerMap, Sightings, seen_in
from mistgrid.shares.mutable import Prefix


def test_later_sightings_replace_earlier_ones_server_by_server() -> None:
    seen = Sightings()
    assert seen.of(b"si") == {}
    seen.learn(b"si", {b"a": 3, b"b": None})
    seen.learn(b"si", {b"b": 1})
    assert seen.of(b"si") == {b"a": 3, b"b": 1}
    seen.learn(b"si", {b"a": None})
    assert seen.of(b"si") == {b"a": None, b"b": 1}


def test_the_files_used_least_recently_are_forgotten_first() -> None:
    seen = Sightings(size=2)
    seen.learn(b"one", {b"a": 0})
    seen.learn(b"two", {b"a": 1})
    assert seen.of(b"one") == {b"a": 0}  # used: "two" is now the oldest
    seen.learn(b"three", {b"a": 2})
    assert len(seen) == 2
    assert seen.of(b"two") == {}
    assert seen.of(b"one") == {b"a": 0} and seen.of(b"three") == {b"a": 2}


def test_a_map_is_seen_as_each_answering_servers_lowest_share() -> None:
    prefix = Prefix(MutableFormat.SDMF, 1, b"r" * 32, b"s" * 16, 2, 4, 1000, 1000)
    servermap = ServerMap(found=[Found(0, 5, prefix), Found(0, 1, prefix),
                                 Found(2, 4, prefix)], responded={0, 1, 2})
    assert seen_in(servermap, [b"a", b"b", b"c", b"d"]) == {b"a": 1, b"b": None,
                                                            b"c": 4}
