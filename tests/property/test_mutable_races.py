"""Two writers racing on one mutable file, over every interleaving hypothesis picks.

The servers are real storage backends (`DiskBackend`, the server's own read-test-write
rules) in temporary directories; every request the two writers' real publish code makes
waits at a gate, and hypothesis chooses which waiting request runs next. Whatever the
order, the file stays recoverable and holds one writer's whole data (or the original, when
both gave up): never a mixture, never nothing. Changes are idempotent (add a token unless
it is there), as `modify` requires: a writer whose racing write did land may see its own
version when it tries again.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar, cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet import defer

from mistgrid.caps.mutable import MutableFormat, MutableWriteCap
from mistgrid.crypto import rsa
from mistgrid.errors import UncoordinatedWriteError
from mistgrid.gbs import messages
from mistgrid.grid import mutable
from mistgrid.mutable.version import SigningKey
from mistgrid.storage.backend import DiskBackend
from mistgrid.storage.client import MutableSecrets, ShareVectors, StorageClient

T = TypeVar("T")
KEY = SigningKey.of(rsa.generate())
SECRET = b"s" * 32


class Gate:
    """Requests wait here until the test lets one through."""

    def __init__(self) -> None:
        self.waiting: list[tuple[defer.Deferred[Any], Callable[[], Any]]] = []

    def call(self, fn: Callable[[], T]) -> defer.Deferred[T]:
        d: defer.Deferred[T] = defer.Deferred()
        self.waiting.append((d, fn))
        return d

    def release(self, index: int) -> None:
        d, fn = self.waiting.pop(index)
        try:
            result = fn()
        except Exception as err:
            d.errback(err)
        else:
            d.callback(result)


class Server:
    """What the grid code asks of a storage server, answered by a real backend."""

    def __init__(self, root: Path, index: int, gate: Gate) -> None:
        self.backend = DiskBackend(root)
        self.gate = gate
        self.permutation_seed = bytes([index]) * 32
        self.tub_id = bytes([index]) * 20

    def list_mutable(self, si: bytes) -> defer.Deferred[set[int]]:
        return self.gate.call(lambda: self.backend.mutable_shares(si))

    def read_mutable(self, si: bytes, n: int, offset: int,
                     length: int) -> defer.Deferred[bytes]:
        return self.gate.call(lambda: self.backend.read_mutable(si, n, offset, length))

    def read_test_write(self, si: bytes, secrets: MutableSecrets,
                        vectors: dict[int, ShareVectors], reads: Any = ()
                        ) -> defer.Deferred[tuple[bool, dict[int, list[bytes]]]]:
        request = messages.ReadTestWrite(
            {n: messages.ShareWrites(
                tuple(messages.TestVector(o, n, s) for o, n, s in v.tests),
                tuple(messages.WriteVector(o, d) for o, d in v.writes), v.new_length)
             for n, v in vectors.items()}, tuple(reads))
        return self.gate.call(lambda: self.backend.read_test_write(
            si, secrets.write_enabler, secrets.renew, secrets.cancel, request))

    def advise_corrupt_mutable(self, si: bytes, n: int, reason: str) -> defer.Deferred[None]:
        return defer.succeed(None)


def run_to_end(gate: Gate, coroutine: Coroutine[Any, Any, T]) -> T:
    """Run alone, requests in order."""
    result: list[Any] = []
    d = defer.Deferred.fromCoroutine(coroutine)
    d.addBoth(result.append)
    while gate.waiting:
        gate.release(0)
    assert result, "the operation did not finish"
    if isinstance(result[0], BaseException) or hasattr(result[0], "raiseException"):
        result[0].raiseException()
    return cast(T, result[0])


async def no_pause(_seconds: float) -> None:
    return None


@pytest.fixture(autouse=True)
def _no_pauses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mutable, "_pause", no_pause)


@contextlib.contextmanager
def _pieces(lead: int, size: int) -> Iterator[None]:
    saved = mutable.LEAD_PIECE, mutable.WRITE_PIECE
    mutable.LEAD_PIECE, mutable.WRITE_PIECE = lead, size
    try:
        yield
    finally:
        mutable.LEAD_PIECE, mutable.WRITE_PIECE = saved


@settings(deadline=None, max_examples=150, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data(), fmt=st.sampled_from(list(MutableFormat)),
       shape=st.sampled_from([(3, 5, 5), (2, 4, 3), (3, 10, 4), (1, 3, 3)]),
       appending=st.booleans(), pieces=st.booleans())
def test_racing_writers(data: st.DataObject, fmt: MutableFormat,
                        shape: tuple[int, int, int], appending: bool, pieces: bool) -> None:
    needed, total, server_count = shape
    # pieces: shares written in several requests each (the first share's first 64 bytes
    # alone, then 150-byte pieces), as a large file's are
    with tempfile.TemporaryDirectory() as tmp, _pieces(64, 150) if pieces else \
            contextlib.nullcontext():
        gate = Gate()
        servers = cast(list[StorageClient], [Server(Path(tmp) / str(i), i, gate)
                                             for i in range(server_count)])
        original = b"original " * 50
        cap: MutableWriteCap = run_to_end(gate, mutable.create(
            servers, fmt, KEY, original, needed, total, SECRET))
        outcomes: dict[bytes, Any] = {}

        def keep(result: Any, name: bytes) -> None:
            outcomes[name] = result

        def writer(name: bytes) -> Coroutine[Any, Any, mutable.Published]:
            if appending:  # idempotent, as a change must be (it may run again)
                return mutable.modify(
                    servers, cap, lambda old: (old or b"") if name in (old or b"")[
                        len(original):] else (old or b"") + name, needed, total, SECRET)
            return mutable.modify(servers, cap, lambda _old: name * 300, needed, total,
                                  SECRET, needs_current=False)

        for name in (b"A", b"B"):
            d = defer.Deferred.fromCoroutine(writer(name))
            d.addBoth(keep, name)
        while gate.waiting:
            gate.release(data.draw(st.integers(0, len(gate.waiting) - 1)))
        assert set(outcomes) == {b"A", b"B"}
        for result in outcomes.values():
            if not isinstance(result, mutable.Published):
                result.trap(UncoordinatedWriteError)
        got = run_to_end(gate, mutable.retrieve(servers, cap))
        if appending:
            allowed = {original, original + b"A", original + b"B", original + b"AB",
                       original + b"BA"}
        else:
            allowed = {original, b"A" * 300, b"B" * 300}
        assert got.data in allowed
        succeeded = [n for n, r in outcomes.items() if isinstance(r, mutable.Published)]
        if len(succeeded) == 2 and appending:
            assert got.data in (original + b"AB", original + b"BA")
        if succeeded and not appending:
            assert got.data != original
