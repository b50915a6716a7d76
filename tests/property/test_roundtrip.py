"""Encode/decode round trips, any-k-of-N recovery and corruption detection (in memory)."""

from __future__ import annotations

import itertools
import random
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mistgrid.caps import ChkCap, LiteralCap
from mistgrid.encoding.download import WHOLE_SHARE_BELOW, ReadRequest
from mistgrid.encoding.params import EncodingParams
from mistgrid.encoding.upload import ChkEncoder, share_layout_for
from mistgrid.errors import NotEnoughSharesError
from mistgrid.testing.memory import decode_bytes, encode_bytes

SETTINGS = settings(deadline=None, max_examples=150,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def data_of(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


@st.composite
def k_and_n(draw: st.DrawFn, max_total: int = 256) -> tuple[int, int]:
    total = draw(st.integers(1, max_total))
    return draw(st.integers(1, total)), total


@st.composite
def size_cases(draw: st.DrawFn) -> tuple[int, int]:
    """(segment size, file size) covering 0, 1, 55, 56, seg-1, seg, seg+1 and many segs."""
    segment = draw(st.integers(57, 3000))
    size = draw(st.sampled_from([0, 1, 55, 56, segment - 1, segment, segment + 1,
                                 7 * segment + 13]))
    return segment, size


@SETTINGS
@given(size_cases(), k_and_n(), st.integers(0, 2**32))
def test_round_trip(case: tuple[int, int], kn: tuple[int, int], seed: int) -> None:
    """Every size class survives encode then decode from a random k of the N shares."""
    segment, size = case
    needed, total = kn
    data = data_of(size, seed)
    cap, shares = encode_bytes(data, EncodingParams(needed, total, segment))
    if size <= 55:
        assert isinstance(cap, LiteralCap) and shares == []
    else:
        assert isinstance(cap, ChkCap) and len(shares) == total
    chosen = random.Random(seed).sample(range(total), needed) if shares else []
    plaintext, problems = decode_bytes(cap, {n: shares[n] for n in chosen})
    assert plaintext == data
    assert problems == []


@pytest.mark.parametrize("needed,total", [(1, 1), (1, 3), (2, 3), (2, 4), (3, 5), (4, 5),
                                          (5, 5), (3, 6)])
def test_every_k_subset(needed: int, total: int) -> None:
    """For small N, every one of the C(N, k) subsets decodes the file."""
    data = data_of(3 * 700 + 5, needed * 10 + total)
    cap, shares = encode_bytes(data, EncodingParams(needed, total, 700))
    for subset in itertools.combinations(range(total), needed):
        plaintext, problems = decode_bytes(cap, {n: shares[n] for n in subset})
        assert plaintext == data, subset
        assert problems == []


# how a share is first read: its header alone (then UEB with the hash regions, then
# blocks), or all of it at once (a small file)
# (drawn by hypothesis: pytest-twisted cannot run a parametrized hypothesis test)
FIRST_READS = st.sampled_from([0, WHOLE_SHARE_BELOW])


@SETTINGS
@given(FIRST_READS, k_and_n(max_total=12), st.integers(57, 5000), st.integers(1, 5000),
       st.data())
def test_any_flipped_byte_is_detected(whole: int, kn: tuple[int, int], size: int,
                                      segment: int, data: st.DataObject) -> None:
    """A flipped byte anywhere in a share is caught, named, and another share is used."""
    needed, total = kn
    plaintext = data_of(size, size * 31 + segment)
    cap, shares = encode_bytes(plaintext, EncodingParams(needed, total, segment))
    victim = data.draw(st.integers(0, total - 1), label="share")
    position = data.draw(st.integers(0, len(shares[victim]) - 1), label="byte")
    bit = data.draw(st.integers(0, 7), label="bit")
    broken = bytearray(shares[victim])
    broken[position] ^= 1 << bit
    corrupted = dict(enumerate(shares))
    corrupted[victim] = bytes(broken)
    order = [victim] + [n for n in range(total) if n != victim]
    if total > needed:
        result, problems = decode_bytes(cap, corrupted, order, whole_share_below=whole)
        assert result == plaintext
        assert [p.share_number for p in problems] == [victim]
    others = [n for n in range(total) if n != victim][: needed - 1]
    with pytest.raises(NotEnoughSharesError) as info:
        decode_bytes(cap, {n: corrupted[n] for n in [victim, *others]}, [victim, *others],
                     whole_share_below=whole)
    assert (info.value.found, info.value.needed) == (needed - 1, needed)
    assert f"share {victim}" in str(info.value)


@SETTINGS
@given(FIRST_READS, k_and_n(max_total=8), st.integers(57, 4000), st.data())
def test_truncated_share_is_detected(whole: int, kn: tuple[int, int], size: int,
                                     data: st.DataObject) -> None:
    """A share cut short at any point is dropped; decoding goes on with the others."""
    needed, total = kn
    plaintext = data_of(size, size)
    cap, shares = encode_bytes(plaintext, EncodingParams(needed, total, 1000))
    victim = data.draw(st.integers(0, total - 1))
    cut = data.draw(st.integers(0, len(shares[victim]) - 1))
    damaged = dict(enumerate(shares))
    damaged[victim] = shares[victim][:cut]
    order = [victim] + [n for n in range(total) if n != victim]
    if total > needed:
        result, problems = decode_bytes(cap, damaged, order, whole_share_below=whole)
        assert result == plaintext
        assert [p.share_number for p in problems] == [victim]
    else:  # no spare share: the cut one cannot be decoded around, and is named
        with pytest.raises(NotEnoughSharesError, match=f"share {victim}"):
            decode_bytes(cap, damaged, order, whole_share_below=whole)


@pytest.mark.parametrize("size,per_share", [(10_000, ["header"]),
                                            (3_000_000, ["header", "tail", "blocks"])])
def test_round_trips_per_share(size: int, per_share: list[str]) -> None:
    """Each read is a round trip to a server (over Tor, a circuit's latency): a small file
    is one read per share; a large one its header, its hash regions and UEB in one, then
    its blocks (one run of them here: the window covers the file)."""
    data = data_of(size, size)
    cap, shares = encode_bytes(data, EncodingParams(2, 4, 1024 * 1024))
    reads: list[ReadRequest] = []
    plaintext, problems = decode_bytes(cap, dict(enumerate(shares)), window=16,
                                       reads=reads)
    assert plaintext == data and problems == []
    for number in (0, 1):
        assert [r.purpose for r in reads if r.share_number == number] == per_share
    assert {r.share_number for r in reads} == {0, 1}


def test_not_enough_shares_message() -> None:
    """With fewer than k shares the error says how many were found and needed."""
    data = data_of(10_000, 1)
    cap, shares = encode_bytes(data, EncodingParams(3, 10, 4096))
    with pytest.raises(NotEnoughSharesError, match="found 2, need 3"):
        decode_bytes(cap, {0: shares[0], 5: shares[5]})


def test_wrong_cap_is_refused() -> None:
    """Shares of another file fail the UEB check; nothing is returned."""
    cap_a, _ = encode_bytes(data_of(5000, 1), EncodingParams(2, 3, 1024))
    _, shares_b = encode_bytes(data_of(5000, 2), EncodingParams(2, 3, 1024))
    with pytest.raises(NotEnoughSharesError) as info:
        decode_bytes(cap_a, dict(enumerate(shares_b)))
    assert all(p.check == "UEB hash" for p in info.value.problems)


@SETTINGS
@given(st.integers(57, 20_000), st.integers(1, 4096), k_and_n(max_total=10), st.data())
def test_byte_ranges(size: int, segment: int, kn: tuple[int, int],
                     data: st.DataObject) -> None:
    """Any byte range decodes to the same bytes as slicing the whole file."""
    plaintext = data_of(size, size + segment)
    cap, shares = encode_bytes(plaintext, EncodingParams(kn[0], kn[1], segment))
    start = data.draw(st.integers(0, size))
    end = data.draw(st.integers(start, size))
    result, _ = decode_bytes(cap, dict(enumerate(shares)), start=start, end=end)
    assert result == plaintext[start:end]


@pytest.mark.parametrize("size,needed,victim", [
    (2500, 2, 1),
    (2501, 3, 2),  # the tail segment (497 bytes) is padded to 498: share 2 holds the pad
])
def test_every_byte_of_a_share_is_protected(size: int, needed: int, victim: int) -> None:
    """Exhaustive: flipping each byte of a 3-segment share, one at a time, is always caught
    (in the tail segment's padding too, which decoding cuts off)."""
    plaintext = data_of(size, 7)
    cap, shares = encode_bytes(plaintext, EncodingParams(needed, needed + 1, 1000))
    order = [victim] + [n for n in range(needed + 1) if n != victim]
    for position in range(len(shares[victim])):
        broken = bytearray(shares[victim])
        broken[position] ^= 0x40
        damaged = dict(enumerate(shares))
        damaged[victim] = bytes(broken)
        result, problems = decode_bytes(cap, damaged, order)
        assert result == plaintext
        assert [p.share_number for p in problems] == [victim], position


@SETTINGS
@given(st.integers(57, 30_000), st.integers(57, 2048), k_and_n(max_total=20),
       st.integers(1, 6), st.integers(0, 2**32))
def test_pipelined_matches_serial(size: int, segment: int, kn: tuple[int, int], window: int,
                                  seed: int) -> None:
    """With a thread pool the shares and plaintext are exactly those of the serial path."""
    plaintext = data_of(size, seed)
    params = EncodingParams(kn[0], kn[1], segment)
    serial = encode_bytes(plaintext, params)
    with ThreadPoolExecutor(3) as pool:
        parallel = encode_bytes(plaintext, params, executor=pool)
        assert parallel == serial
        cap, shares = parallel
        order = random.Random(seed).sample(range(kn[1]), kn[1])
        result, problems = decode_bytes(cap, dict(enumerate(shares)), order, executor=pool,
                                        window=window)
    assert result == plaintext and problems == []


@SETTINGS
@given(k_and_n(max_total=12), st.integers(57, 1500), st.integers(1, 40), st.integers(1, 8),
       st.data())
def test_a_spread_download_reads_each_segment_from_k_shares_in_turn(
        kn: tuple[int, int], segment: int, segments: int, window: int,
        data: st.DataObject) -> None:
    """Reading from `spread` shares at once (as over Tor): the same plaintext, every block
    read once from exactly k shares, and every one of those shares read from once there
    are batches enough to go round."""
    needed, total = kn
    segment = max(segment, 0x44 * needed)  # no block is inside the header's first read
    spread = data.draw(st.integers(0, total + 2), label="spread")
    size = segment * (segments - 1) + data.draw(st.integers(0x44 * needed, segment))
    plaintext = data_of(size, size + segment + window)
    params = EncodingParams(needed, total, segment)
    cap, shares = encode_bytes(plaintext, params)
    assert isinstance(cap, ChkCap)
    layout = params.layout_for(size)
    order = random.Random(size).sample(range(total), total)
    reads: list[ReadRequest] = []
    with ThreadPoolExecutor(2) as pool:
        result, problems = decode_bytes(cap, dict(enumerate(shares)), order, executor=pool,
                                        window=window, reads=reads, spread=spread,
                                        whole_share_below=0)
    assert result == plaintext and problems == []
    per_share: dict[int, list[int]] = {}  # share -> segments its block reads covered
    data_at = share_layout_for(layout).data
    for read in reads:
        if read.purpose == "blocks":
            first = (read.offset - data_at) // layout.block_size
            count = -(-read.length // layout.block_size)
            per_share.setdefault(read.share_number, []).extend(range(first, first + count))
    covered = sorted(s for segments_read in per_share.values() for s in segments_read)
    assert covered == sorted(list(range(layout.num_segments)) * needed)
    used = min(max(spread, needed), total)
    assert set(per_share) <= set(order[:used])
    batch = max(1, window // 2)
    if layout.num_segments >= batch * -(-used // needed):
        assert set(per_share) == set(order[:used])
    whole: list[ReadRequest] = []  # shares small enough to read whole: k of them only
    assert decode_bytes(cap, dict(enumerate(shares)), order, window=window, reads=whole,
                        spread=spread) == (plaintext, [])
    assert {read.share_number for read in whole} == set(order[:needed])


@SETTINGS
@given(k_and_n(max_total=10), st.integers(57, 20_000), st.integers(57, 1500),
       st.integers(1, 8), st.data())
def test_bad_blocks_found_by_pooled_jobs_are_read_again(
        kn: tuple[int, int], size: int, segment: int, window: int,
        data: st.DataObject) -> None:
    """Blocks are checked in the decoding jobs on a thread pool: a bad block found there
    drops its share and that segment is read again from another share, in order, for any
    window; with fewer than k good shares the error names them."""
    needed, total = kn
    plaintext = data_of(size, size + segment)
    params = EncodingParams(needed, total, segment)
    cap, shares = encode_bytes(plaintext, params)
    layout = params.layout_for(size)
    spare = total - needed
    victims = data.draw(st.lists(st.integers(0, total - 1), unique=True, min_size=1,
                                 max_size=max(1, spare)), label="victims")
    corrupted = dict(enumerate(shares))
    for victim in victims:  # a flipped bit in one block of a random segment
        seg = data.draw(st.integers(0, layout.num_segments - 1), label="segment")
        start = share_layout_for(layout).data + seg * layout.block_size
        broken = bytearray(shares[victim])
        broken[start] ^= 1
        corrupted[victim] = bytes(broken)
    order = [*victims, *(n for n in range(total) if n not in victims)]
    spread = data.draw(st.integers(0, total), label="spread")
    with ThreadPoolExecutor(2) as pool:
        if len(victims) <= spare:
            result, problems = decode_bytes(cap, corrupted, order, executor=pool,
                                            window=window, spread=spread,
                                            whole_share_below=0 if spread else
                                            WHOLE_SHARE_BELOW)
            assert result == plaintext
            named = {p.share_number for p in problems}
            assert named <= set(victims)
            if spread <= needed:  # the first share read was bad (spread: perhaps not read)
                assert named
            assert all(p.check == "block hash" for p in problems)
        only_bad = [*victims, *(n for n in range(total) if n not in victims)][:needed]
        if set(only_bad) <= set(victims):
            with pytest.raises(NotEnoughSharesError):
                decode_bytes(cap, {n: corrupted[n] for n in only_bad}, only_bad,
                             executor=pool, window=window)


@SETTINGS
@given(size_cases(), k_and_n(max_total=12), st.integers(0, 2**32))
def test_the_ciphertext_re_encodes_to_the_same_shares(case: tuple[int, int],
                                                      kn: tuple[int, int], seed: int) -> None:
    """What a repair from the verify cap does: the ciphertext its download gives, encoded
    again without the key, makes the very same shares and the same verify cap."""
    segment, size = case
    data = data_of(max(size, 56), seed)
    params = EncodingParams(*kn, segment)
    cap, shares = encode_bytes(data, params)
    assert isinstance(cap, ChkCap)
    ciphertext, problems = decode_bytes(cap.verifier(), dict(enumerate(shares)))
    assert problems == [] and len(ciphertext) == len(data) and (ciphertext != data)
    encoder = ChkEncoder(None, len(ciphertext), params)
    writes = encoder.feed(ciphertext)
    more, verifier = encoder.finish_verifier(cap.storage_index)
    assert verifier == cap.verifier()
    again = [bytearray() for _ in shares]
    for write in writes + more:
        share = again[write.share_number]
        share.extend(b"\0" * max(0, write.offset + len(write.data) - len(share)))
        share[write.offset : write.offset + len(write.data)] = write.data
    assert [bytes(s) for s in again] == shares


@settings(deadline=None, max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(k_and_n(max_total=12), size_cases(), st.data())
def test_an_encoder_given_held_roots_writes_the_same_other_shares(
        kn: tuple[int, int], sizes: tuple[int, int], data: st.DataObject) -> None:
    """A repair's encoder, given the block hash roots of the shares servers hold, encodes
    only the others: byte for byte the shares a whole encoding gives, and the same cap.
    One wrong root gives another cap (what makes a repair fall back to encoding all)."""
    (needed, total), (segment, size) = kn, sizes
    if size <= 56:
        return  # a literal cap: nothing to encode
    params = EncodingParams(needed, total, segment)
    plain = data_of(size, segment)
    cap, shares = encode_bytes(plain, params)
    assert isinstance(cap, ChkCap)
    held = data.draw(st.sets(st.integers(0, total - 1), max_size=total - 1))
    offset = share_layout_for(params.layout_for(size)).block_hashes

    def repaired(roots: dict[int, bytes]) -> tuple[ChkCap, dict[int, bytes]]:
        encoder = ChkEncoder(cap.key, size, params, roots=roots)
        writes = encoder.feed(plain)
        more, again = encoder.finish()
        out: dict[int, bytearray] = {}
        for write in writes + more:
            assert write.share_number not in roots
            share = out.setdefault(write.share_number, bytearray())
            end = write.offset + len(write.data)
            share.extend(b"\x00" * max(0, end - len(share)))
            share[write.offset:end] = write.data
        return again, {n: bytes(s) for n, s in out.items()}

    roots = {n: shares[n][offset:offset + 32] for n in held}
    again, written = repaired(roots)
    assert again == cap
    assert written == {n: shares[n] for n in range(total) if n not in held}
    if held:
        wrong = dict(roots)
        first = min(wrong)
        wrong[first] = bytes(32) if wrong[first] != bytes(32) else b"\x01" * 32
        assert repaired(wrong)[0] != cap
