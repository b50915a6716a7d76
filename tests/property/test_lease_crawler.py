"""The lease crawler over a real store in a temporary directory, stepped by hand: it never
deletes a share with a live lease (also one renewed while the pass is under way), deletes
every share whose leases all expired, never touches an upload in progress, and a crawler
restarted (a new one from the saved state) at any step finishes the pass."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mistgrid.caps import base32
from mistgrid.gbs.messages import ReadTestWrite, ShareWrites, WriteVector
from mistgrid.storage.backend import DiskBackend
from mistgrid.storage.containers import LEASE_SECONDS
from mistgrid.storage.crawler import LeaseCrawler
from mistgrid.storage.expiry import CrawlState, ExpirationPolicy

NOW = 2_000_000_000.0
DAY = 86400


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def si_of(i: int) -> bytes:
    return bytes([i * 37 % 256, i]) + b"\x01" * 14


def secret(i: int, kind: str) -> bytes:
    return (kind.encode() + bytes([i])).ljust(32, b"\x00")


def store_share(backend: DiskBackend, clock: Clock, i: int, mutable: bool,
                lease_ages: list[int]) -> None:
    """A share whose leases were made (or renewed) `lease_ages` days ago."""
    si = si_of(i)
    for j, age in enumerate(lease_ages or [0]):
        clock.now = NOW - age * DAY
        renew, cancel = secret(i * 8 + j, "r"), secret(i * 8 + j, "c")
        if j == 0:
            if mutable:
                backend.read_test_write(si, secret(i, "we"), renew, cancel, ReadTestWrite(
                    {0: ShareWrites((), (WriteVector(0, b"m" * 100),), None)}, ()))
            else:
                backend.allocate(si, frozenset({0}), 100, secret(i, "u"), renew, cancel)
                backend.write(si, 0, secret(i, "u"), 0, b"i" * 100)
        else:
            backend.add_or_renew_lease(si, renew, cancel)
    clock.now = NOW
    if not lease_ages:  # no lease at all: the one made on upload is taken off again
        path = backend.shares / _si_dir(si) / "0"
        _drop_leases(path, mutable)


def _si_dir(si: bytes) -> str:
    text = base32.b2a(si)
    return f"{text[:2]}/{text}"


def _drop_leases(path: Path, mutable: bool) -> None:
    data = bytearray(path.read_bytes())
    if mutable:
        data[100:468] = b"\x00" * 368  # the four lease slots
    else:
        count = int.from_bytes(data[8:12], "big")
        del data[len(data) - 72 * count:]
        data[8:12] = (0).to_bytes(4, "big")
    path.write_bytes(bytes(data))


share = st.tuples(st.booleans(), st.lists(st.sampled_from([0, 5, 29, 33, 40, 400]),
                                          max_size=3))


@settings(deadline=None, max_examples=40, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(share, min_size=1, max_size=8),
       st.sampled_from([None, 7 * DAY, 60 * DAY]), st.booleans(), st.booleans(),
       st.lists(st.integers(0, 20), max_size=4), st.lists(st.integers(0, 7), max_size=3),
       st.booleans())
def test_a_pass_deletes_exactly_the_expired_shares(
        shares: list[tuple[bool, list[int]]], override: int | None, immutable: bool,
        mutable: bool, restarts: list[int], renew_at: list[int],
        upload_in_progress: bool) -> None:
    clock = Clock()
    with tempfile.TemporaryDirectory() as tmp:
        backend = DiskBackend(Path(tmp), clock=clock)
        for i, (is_mutable, ages) in enumerate(shares):
            store_share(backend, clock, i, is_mutable, ages)
        if upload_in_progress:  # allocated long ago, one write, never finished
            clock.now = NOW - 100 * DAY
            backend.allocate(b"\x09" * 16, frozenset({1}), 50, b"u" * 32, b"r" * 32,
                             b"c" * 32)
            backend.write(b"\x09" * 16, 1, b"u" * 32, 0, b"x" * 10)
            clock.now = NOW
        policy = ExpirationPolicy(True, "age", override, None, immutable, mutable)
        crawler = LeaseCrawler(backend, policy, clock=clock)
        renewed: set[int] = set()
        steps = 0
        while True:
            for i in renew_at:  # a client renews while the pass is under way
                if i == steps and i < len(shares) and backend.add_or_renew_lease(
                        si_of(i), secret(99, "r"), secret(99, "c")):
                    renewed.add(i)
            if steps in restarts:
                crawler = LeaseCrawler(backend, policy, clock=clock)  # from the saved state
            steps += 1
            if crawler.step(0.0):
                break
            assert steps < 100
        assert crawler.state.cycle == 1 and crawler.state.started is None
        for i, (is_mutable, ages) in enumerate(shares):
            expirations = [NOW - a * DAY + LEASE_SECONDS for a in ages]
            if i in renewed:
                expirations.append(NOW + LEASE_SECONDS)
            # the model, written out apart from the code under test
            duration = override if override is not None else LEASE_SECONDS
            live = [e for e in expirations if e - LEASE_SECONDS + duration >= NOW]
            gone = (mutable if is_mutable else immutable) and not live
            held = backend.mutable_shares(si_of(i)) if is_mutable else \
                backend.immutable_shares(si_of(i))
            assert held == (set() if gone else {0}), (i, is_mutable, ages, i in renewed)
        if upload_in_progress:
            assert backend.uploads_in_progress() == 1
            assert backend.write(b"\x09" * 16, 1, b"u" * 32, 10, b"y" * 40).complete
        history = crawler.state.history[-1]
        assert history["examined-shares"] >= len(shares)


def test_state_survives_a_round_trip() -> None:
    state = CrawlState(3, 10.0, 5.0, ("ab", "abc"))
    state.deleted_shares = 4
    state.history = [{"cycle": 2}]
    again = CrawlState.from_json(state.to_json())
    assert again == state


def test_policy_modes() -> None:
    renewed_10_days_ago = NOW - 10 * DAY + LEASE_SECONDS
    age = ExpirationPolicy(True, "age")
    assert not age.lease_expired(renewed_10_days_ago, NOW)
    assert age.lease_expired(NOW - 1, NOW)
    short = ExpirationPolicy(True, "age", override_duration=7 * DAY)
    assert short.lease_expired(renewed_10_days_ago, NOW)
    cutoff = ExpirationPolicy(True, "cutoff-date", cutoff=int(NOW - 5 * DAY))
    assert cutoff.lease_expired(renewed_10_days_ago, NOW)
    assert not cutoff.lease_expired(NOW + LEASE_SECONDS, NOW)
    assert not ExpirationPolicy(False).may_delete(False, [], NOW)
    assert ExpirationPolicy(True).may_delete(False, [], NOW)  # no lease: none live
    assert not ExpirationPolicy(True, immutable=False).may_delete(False, [0], NOW)
