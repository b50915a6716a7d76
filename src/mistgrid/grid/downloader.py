"""Download an immutable file from storage servers through the CHK download machine.

How this works: every server is asked at once which shares it holds; shares are offered
to the machine in the order their servers answered (the quickest first). The driver is
event-driven: whatever the machine wants is read at once, and each answer (or failure, which
drops that share so the machine picks another) is handed back as it arrives, so reads for
the next segments are on the wire while earlier segments decode on the executor. Plaintext
is written out, in order, as soon as it is verified; a sink with `drain` (backpressure)
pauses the download until it has room.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from typing import IO, Any

from twisted.internet import defer
from twisted.python.failure import Failure

from ..caps.immutable import ChkCap, LiteralCap
from ..encoding.download import ChkDownload, ReadRequest
from ..errors import MistgridError
from ..storage.client import StorageClient
from .threads import on_reactor_when_done
from .uploader import settle

WINDOW = 16  # segments read ahead of the one being written out


async def locate(servers: list[StorageClient], storage_index: bytes) -> dict[int, StorageClient]:
    """{share number: a server holding it}, quickest answers first."""
    answers = await settle(s.list_shares(storage_index) for s in servers)
    found: dict[int, StorageClient] = {}
    for server, answer in zip(servers, answers, strict=True):
        if isinstance(answer, BaseException):
            continue
        for number in sorted(answer):
            found.setdefault(number, server)
    return found


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


async def download(cap: LiteralCap | ChkCap, servers: list[StorageClient], sink: IO[bytes],
                   progress: Callable[[int], None] | None = None,
                   executor: Any = None, start: int = 0, end: int | None = None) -> int:
    """Write bytes [start, end) of the plaintext of `cap` (all of it by default) to
    `sink`; returns the byte count."""
    end = cap.size if end is None else end
    if isinstance(cap, LiteralCap):
        sink.write(cap.data[start:end])
        return len(cap.data[start:end])
    holders = await locate(servers, cap.storage_index)
    machine = ChkDownload(cap, preferred(holders, cap.needed), start=start, end=end,
                          executor=executor, window=WINDOW)
    events: defer.DeferredQueue[tuple[ReadRequest, Any] | None] = defer.DeferredQueue()
    reading: set[ReadRequest] = set()
    watched: Future[Any] | None = None

    def read(request: ReadRequest) -> None:
        reading.add(request)
        d = defer.Deferred.fromCoroutine(holders[request.share_number].read(
            cap.storage_index, request.share_number, request.offset, request.length))
        d.addBoth(lambda result: events.put((request, result)))

    def handle(event: tuple[ReadRequest, Any] | None) -> None:
        if event is None:  # a segment finished decoding
            return
        request, result = event
        reading.discard(request)
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
        handle(await events.get())
        while events.pending:  # everything else that arrived meanwhile
            handle(events.pending.pop(0))
    return written
