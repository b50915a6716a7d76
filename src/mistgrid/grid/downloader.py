"""Download an immutable file from storage servers through the CHK download machine.

How this works: every server is asked at once which shares it holds; shares are offered
to the machine in the order their servers answered (the quickest first). Each round, all
reads the machine wants go out in parallel; a read that fails drops that share (the
machine picks another), and plaintext is written out as soon as it is verified.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import IO, Any

from ..caps.immutable import ChkCap, LiteralCap
from ..encoding.download import ChkDownload, ReadRequest
from ..errors import MistgridError
from ..storage.client import StorageClient
from .uploader import settle


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
    machine = ChkDownload(cap, list(holders), start=start, end=end, executor=executor)
    written = 0
    while not machine.done:
        requests = machine.wants()

        async def read(request: ReadRequest) -> bytes:
            return await holders[request.share_number].read(
                cap.storage_index, request.share_number, request.offset, request.length)

        results = await settle(read(r) for r in requests)
        for request, result in zip(requests, results, strict=True):
            if isinstance(result, BaseException):
                machine.fail(request, str(result))
            else:
                machine.give(request, result)
        plaintext = machine.take_plaintext()
        if plaintext:
            sink.write(plaintext)
            written += len(plaintext)
            if progress is not None:
                progress(len(plaintext))
            drain = getattr(sink, "drain", None)  # a sink with backpressure
            if drain is not None:
                await drain()
        elif not requests and not machine.done:
            raise MistgridError("download stalled")
    return written
