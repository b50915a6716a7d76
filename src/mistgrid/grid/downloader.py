"""Download an immutable file from storage servers through the CHK download machine.

How this works: every server is asked at once which shares it holds (and, in the same
round trip, the servers where uploading puts the primary shares are read for them); shares
are offered to the machine in the order their servers answered (the quickest first). The
driver is event-driven: whatever the machine wants is read at once, and each answer (or
failure, which drops that share so the machine picks another) is handed back as it
arrives, so reads for the next segments are on the wire while earlier segments decode on
the executor. Plaintext is written out, in order, as soon as it is verified; a sink with
`drain` (backpressure) pauses the download until it has room.

Hung servers: `locate` stops waiting for the servers still silent shortly after k shares
are known, and a read that waits far longer than the last reads took (`Stalls`) is given
up on while the machine has shares to spare: that share is dropped and another server's
share takes its place, so a server that stops answering mid-download costs seconds.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import IO, Any, cast

from twisted.internet import defer
from twisted.internet import reactor as _reactor
from twisted.python.failure import Failure

from ..caps.immutable import ChkCap, ChkVerifierCap, LiteralCap
from ..encoding.download import ChkDownload, ReadRequest, first_read_length
from ..errors import MistgridError
from ..placement.happiness import permuted
from ..storage.client import StorageClient
from .threads import on_reactor_when_done
from .uploader import begin, route_of

reactor = cast(Any, _reactor)
WINDOW = 16  # segments read ahead of the one being written out
LOCATE_GRACE = 1.0  # seconds the last servers get to say which shares they hold
STALL_FIRST = 30.0
STALL_MIN = 5.0
STALL_FACTOR = 4.0
TICK = "tick"
TICK_INTERVAL = 1.0


async def locate(servers: list[StorageClient], storage_index: bytes,
                 needed: int | None = None) -> dict[int, StorageClient]:
    """{share number: a server holding it}, quickest answers first. With `needed`: once
    that many distinct shares are known, the servers still silent get a short grace
    (twice the time taken so far, at least `LOCATE_GRACE` seconds) and are then left out,
    so one hung server does not hold the download up until its request times out."""
    found: dict[int, StorageClient] = {}
    all_in: defer.Deferred[None] = defer.Deferred()
    waiting = [len(servers)]
    began = time.monotonic()
    grace: list[Any] = []

    def settle_now() -> None:
        if not all_in.called:
            all_in.callback(None)

    def answered(numbers: set[int] | Failure, server: StorageClient) -> None:
        if not all_in.called and not isinstance(numbers, Failure):
            for number in sorted(numbers):
                found.setdefault(number, server)
        waiting[0] -= 1
        if waiting[0] == 0:
            settle_now()
        elif needed is not None and len(found) >= needed and not grace:
            delay = max(LOCATE_GRACE, 2 * (time.monotonic() - began))
            grace.append(reactor.callLater(delay, settle_now))

    if not servers:
        return found
    for server in servers:
        d = defer.Deferred.fromCoroutine(server.list_shares(storage_index))
        d.addBoth(answered, server)
    await all_in
    for call in grace:
        if call.active():
            call.cancel()
    return dict(found)


def _first_reads(servers: list[StorageClient], cap: ChkCap | ChkVerifierCap, length: int
                 ) -> dict[tuple[int, int], defer.Deferred[bytes | BaseException]]:
    """The first read of share p from the server at position p of the file's permuted
    order (where uploading puts it), for the k primary shares, begun while the servers
    say which shares they hold: a small file then takes one round trip, not two. A wrong
    guess costs a refused read. Keyed by (id(server), share number)."""
    order = permuted([s.permutation_seed for s in servers], cap.storage_index)
    return {(id(servers[index]), number): begin(servers[index].read(
        cap.storage_index, number, 0, length))
        for number, index in enumerate(order[:cap.needed])}


async def _read(server: StorageClient, cap: ChkCap | ChkVerifierCap, request: ReadRequest,
                ahead: defer.Deferred[bytes | BaseException] | None) -> bytes:
    """The bytes `request` wants: from the read begun ahead for it when that worked."""
    got = await ahead if ahead is not None else None
    if isinstance(got, bytes):
        return got
    return await server.read(cap.storage_index, request.share_number, request.offset,
                             request.length)


def preferred(found: dict[int, StorageClient], needed: int) -> list[int]:
    """The order to try shares in: each next share from a server not used yet while there
    is one (the servers then work in parallel), primary shares (numbers below k, whose
    blocks need no erasure decoding) first, then the quicker server."""
    rank = {id(server): i for i, server in enumerate(dict.fromkeys(found.values()))}
    left = sorted(found, key=lambda n: (n >= needed, rank[id(found[n])], n))
    order: list[int] = []
    used: set[int] = set()
    while left:
        pick = next((n for n in left if id(found[n]) not in used), None)
        if pick is None:
            used.clear()
            continue
        order.append(pick)
        used.add(id(found[pick]))
        left.remove(pick)
    return order


def spread(holders: dict[int, StorageClient]) -> int:
    """How many shares to read from at once: one on every server holding one when any is
    reached through Tor, I2P or a SOCKS proxy (there each server's circuit, not this
    machine, limits what it delivers: on the private Tor network, 20 MiB came from 4
    onions at 12-16 MB/s, from 2 at 10-12, from 1 at 4-6, however many streams), else k."""
    if all(route_of(server) == "direct" for server in holders.values()):
        return 0
    return len({id(server) for server in holders.values()})


async def download(cap: LiteralCap | ChkCap | ChkVerifierCap, servers: list[StorageClient],
                   sink: IO[bytes], progress: Callable[[int], None] | None = None,
                   executor: Any = None, start: int = 0, end: int | None = None) -> int:
    """Write bytes [start, end) of the plaintext of `cap` (all of it by default; of the
    ciphertext, given a verify cap) to `sink`; returns the byte count."""
    end = cap.size if end is None else end
    if isinstance(cap, LiteralCap):
        sink.write(cap.data[start:end])
        return len(cap.data[start:end])
    first = first_read_length(cap)
    early = _first_reads(servers, cap, first)
    holders = await locate(servers, cap.storage_index, cap.needed)
    machine = ChkDownload(cap, preferred(holders, cap.needed), start=start, end=end,
                          executor=executor, window=WINDOW, spread=spread(holders))
    events: defer.DeferredQueue[tuple[ReadRequest, Any] | str | None] = defer.DeferredQueue()
    reading: set[ReadRequest] = set()
    watched: Future[Any] | None = None
    stalls = Stalls()
    ticking: list[Any] = []

    def read(request: ReadRequest) -> None:
        reading.add(request)
        stalls.issue(request, time.monotonic())
        server = holders[request.share_number]
        ahead = early.pop((id(server), request.share_number), None) \
            if (request.offset, request.length) == (0, first) else None
        d = defer.Deferred.fromCoroutine(_read(server, cap, request, ahead))
        d.addBoth(lambda result: events.put((request, result)))

    def tick() -> None:
        ticking.clear()
        events.put(TICK)

    def handle(event: tuple[ReadRequest, Any] | str | None) -> None:
        if event is None:  # a segment finished decoding
            return
        if event == TICK:  # a read whose server stopped answering: use another share
            for request in stalls.stalled(reading, time.monotonic()):
                if not machine.spare_shares:
                    break
                machine.fail(request, f"its server stopped answering for "
                                      f"{stalls.threshold():.0f} s")
                for gone in [r for r in reading if r.share_number == request.share_number]:
                    reading.discard(gone)
            return
        assert not isinstance(event, str)
        request, result = event
        if request not in reading:
            return  # a read given up on as stalled, answered at last
        reading.discard(request)
        stalls.done(request, time.monotonic())
        if isinstance(result, Failure):
            machine.fail(request, str(result.value))
        else:
            machine.give(request, result)

    written = 0
    while True:
        plaintext = machine.take_plaintext(wait=False)
        if plaintext:
            sink.write(plaintext)
            written += len(plaintext)
            if progress is not None:
                progress(len(plaintext))
            drain = getattr(sink, "drain", None)  # a sink with backpressure
            if drain is not None:
                await drain()
        if machine.done:
            break
        for request in machine.wants():
            read(request)
        job = machine.decoding
        if job is not None and job.done():
            continue
        if job is not None and job is not watched:
            watched = job
            on_reactor_when_done(job, lambda: events.put(None))
        if not reading and job is None:
            raise MistgridError("download stalled")
        if reading and machine.spare_shares and not ticking:
            ticking.append(reactor.callLater(TICK_INTERVAL, tick))
        handle(await events.get())
        while events.pending:  # everything else that arrived meanwhile
            handle(events.pending.pop(0))
    for call in ticking:
        if call.active():
            call.cancel()
    return written


class Stalls:
    """When a read has waited too long: longer than `STALL_FACTOR` times the slowest of
    the last reads that finished (at least `STALL_MIN` seconds; `STALL_FIRST` before any
    has finished, while connections are set up), so a slow route (Tor) is not taken for
    a hung server while a stopped one is noticed within seconds."""

    def __init__(self) -> None:
        self._issued: dict[ReadRequest, float] = {}
        self._durations: deque[float] = deque(maxlen=16)

    def issue(self, request: ReadRequest, now: float) -> None:
        self._issued[request] = now

    def done(self, request: ReadRequest, now: float) -> None:
        issued = self._issued.pop(request, None)
        if issued is not None:
            self._durations.append(now - issued)

    def threshold(self) -> float:
        if not self._durations:
            return STALL_FIRST
        return max(STALL_MIN, STALL_FACTOR * max(self._durations))

    def stalled(self, reading: set[ReadRequest], now: float) -> list[ReadRequest]:
        limit = self.threshold()
        late = [r for r in reading if now - self._issued.get(r, now) > limit]
        return sorted(late, key=lambda r: self._issued[r])
