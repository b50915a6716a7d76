"""A mutable version's geometry: the share data size in closed form (a header is parsed
before any of it is checked, so a hostile server's header must not cost time in
proportion to the segment count it claims)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mistgrid.caps.mutable import MutableFormat
from mistgrid.shares.mutable import SALT_SIZE, Geometry


@given(st.sampled_from(list(MutableFormat)), st.integers(1, 10), st.integers(1, 300),
       st.integers(0, 5000))
def test_share_data_size_is_every_blocks_length_and_salt(
        fmt: MutableFormat, needed: int, segment_blocks: int, data_length: int) -> None:
    g = Geometry(fmt, needed, needed + 1, segment_blocks * needed, data_length)
    salts = SALT_SIZE if fmt is MutableFormat.MDMF else 0
    assert g.share_data_size() == sum(salts + g.block_length(s)
                                      for s in range(g.num_segments))


def test_a_claimed_four_billion_segments_are_not_counted_one_by_one(
        monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    original = Geometry.block_length

    def counted(self: Geometry, segment: int) -> int:
        calls.append(segment)
        if len(calls) > 10:
            raise AssertionError("the segments are counted one by one")
        return original(self, segment)

    monkeypatch.setattr(Geometry, "block_length", counted)
    g = Geometry(MutableFormat.MDMF, 3, 10, 3, 3 * 2 ** 32 - 1)
    assert g.num_segments == 2 ** 32
    assert g.share_data_size() == 2 ** 32 * (SALT_SIZE + 1)
