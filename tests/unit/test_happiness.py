"""Servers-of-happiness and the permuted server order."""

from __future__ import annotations

import hashlib

from hypothesis import given
from hypothesis import strategies as st

from mistgrid.placement.happiness import happiness, permuted, spread


def test_examples_from_the_spec_idea() -> None:
    """Happiness is a maximum matching, not a count of servers with shares."""
    assert happiness({"a": {0}, "b": {0}, "c": {0}}) == 1
    assert happiness({"a": {0, 1}, "b": {0}, "c": {2}}) == 3
    assert happiness({"a": {0, 1, 2, 3}}) == 1
    assert happiness({}) == 0


@given(st.dictionaries(st.integers(0, 8), st.frozensets(st.integers(0, 8)), max_size=8))
def test_matching_bounds(placements: dict[int, frozenset[int]]) -> None:
    """Never more than the servers with shares, nor than the distinct shares."""
    value = happiness(placements)
    assert value <= sum(1 for s in placements.values() if s)
    assert value <= len(set().union(*placements.values())) if placements else value == 0


def test_permuted_is_tahoes_order() -> None:
    """SHA-1(storage index + seed) ascending, as Tahoe-LAFS orders servers."""
    seeds = [bytes([i]) * 32 for i in range(5)]
    si = b"s" * 16
    expected = sorted(range(5), key=lambda i: hashlib.sha1(si + seeds[i]).digest())
    assert permuted(seeds, si) == expected
    assert spread(5, 2) == [0, 1, 0, 1, 0]
