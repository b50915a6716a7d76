"""The share verifier (`check --verify`) in memory: good shares pass, reading each once;
every flipped byte of every share of a small file is caught and named."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mistgrid.caps import ChkCap
from mistgrid.encoding.params import EncodingParams
from mistgrid.encoding.verify import ShareVerifier
from mistgrid.errors import MistgridError, ShareError
from mistgrid.testing.memory import encode_bytes


def verify(cap: ChkCap, number: int, share: bytes, chunk: int = 1000) -> ShareVerifier:
    verifier = ShareVerifier(cap, number, chunk=chunk)
    ahead = None  # what following() promised: the read that must come next
    while (request := verifier.next_read()) is not None:
        if ahead is not None:
            assert request == ahead
        ahead = verifier.following(request)
        if request.purpose != "blocks":
            assert ahead is None
        verifier.give(share[request.offset:request.offset + request.length])
    assert ahead is None  # nothing promised after the last read
    return verifier


@settings(deadline=None, max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 6), st.integers(0, 4), st.integers(56, 20_000), st.integers(57, 3000),
       st.integers(1, 5000))
def test_good_shares_verify_reading_each_byte_once(needed: int, extra: int, size: int,
                                                   segment: int, chunk: int) -> None:
    data = random.Random(size).randbytes(size)
    cap, shares = encode_bytes(data, EncodingParams(needed, needed + extra, segment))
    assert isinstance(cap, ChkCap)
    for number, share in enumerate(shares):
        verifier = verify(cap, number, share, chunk)
        assert verifier.done
        # header read + the UEB read (up to its maximum) aside, each region once
        assert verifier.bytes_read <= len(share) + 0x44


@pytest.mark.parametrize("size,needed,total,segment", [
    (2500, 2, 4, 1000),   # 3 segments, the tail shorter
    (2501, 3, 5, 1000),   # the tail segment padded: padding bytes are in the blocks
    (700, 1, 2, 4096),    # one segment
])
def test_every_flipped_byte_of_every_share_is_named(size: int, needed: int, total: int,
                                                    segment: int) -> None:
    data = random.Random(size).randbytes(size)
    cap, shares = encode_bytes(data, EncodingParams(needed, total, segment))
    assert isinstance(cap, ChkCap)
    checked = 0
    for number, share in enumerate(shares):
        for position in range(len(share)):
            broken = bytearray(share)
            broken[position] ^= 0x01
            with pytest.raises(ShareError) as caught:
                verify(cap, number, bytes(broken), chunk=700)
            assert caught.value.share_number == number, position
            checked += 1
    assert checked == sum(map(len, shares))


def test_a_share_of_another_file_or_number_fails() -> None:
    one, shares_one = encode_bytes(b"a" * 3000, EncodingParams(2, 3, 1000))
    other, shares_other = encode_bytes(b"b" * 3000, EncodingParams(2, 3, 1000))
    assert isinstance(one, ChkCap) and isinstance(other, ChkCap)
    with pytest.raises(ShareError, match="UEB hash"):
        verify(one, 0, shares_other[0])
    with pytest.raises(ShareError, match="share hash chain"):
        verify(one, 1, shares_one[0])  # share 0's bytes offered as share 1
    with pytest.raises(ShareError):
        verify(one, 0, shares_one[0][:-40])  # truncated
    with pytest.raises(ShareError):
        verify(one, 0, b"")
    with pytest.raises((ShareError, MistgridError)):
        verify(one, 0, shares_one[0][:200])
