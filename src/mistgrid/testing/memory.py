"""Encode to and decode from shares held in memory: the cores with no I/O at all."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from concurrent.futures import Executor

from ..caps.immutable import ChkCap, ChkVerifierCap, LiteralCap
from ..encoding.download import WHOLE_SHARE_BELOW, ChkDownload, ReadRequest
from ..encoding.params import LIT_MAX_SIZE, EncodingParams
from ..encoding.upload import ChkEncoder, convergent_key
from ..errors import ShareError


def encode_bytes(data: bytes, params: EncodingParams, convergence: bytes = b"\x00" * 16,
                 feed_size: int = 65536, executor: Executor | None = None
                 ) -> tuple[LiteralCap | ChkCap, list[bytes]]:
    """The cap and the N shares (as bytes) of `data`."""
    if len(data) <= LIT_MAX_SIZE:
        return LiteralCap(data), []
    key = convergent_key(convergence, params, len(data), [data])
    encoder = ChkEncoder(key, len(data), params, executor)
    shares = [bytearray() for _ in range(params.total)]
    writes = []
    for start in range(0, len(data), feed_size):
        writes.extend(encoder.feed(data[start : start + feed_size]))
    more, cap = encoder.finish()
    for write in writes + more:
        share = shares[write.share_number]
        end = write.offset + len(write.data)
        if len(share) < end:
            share.extend(b"\x00" * (end - len(share)))
        share[write.offset : end] = write.data
    return cap, [bytes(s) for s in shares]


def decode_bytes(cap: LiteralCap | ChkCap | ChkVerifierCap, shares: Mapping[int, bytes],
                 order: Iterable[int] | None = None, start: int = 0,
                 end: int | None = None, executor: Executor | None = None,
                 window: int = 4, whole_share_below: int = WHOLE_SHARE_BELOW,
                 reads: list[ReadRequest] | None = None, spread: int = 0
                 ) -> tuple[bytes, list[ShareError]]:
    """The plaintext (the ciphertext, given a verify cap) from `shares` (tried in
    `order`), and the problems met on the way (`reads`: gets every read the machine asked
    for; `spread`: as ChkDownload's)."""
    if isinstance(cap, LiteralCap):
        return cap.data[start:end], []
    download = ChkDownload(cap, list(order) if order is not None else sorted(shares),
                           start, end, window=window, executor=executor,
                           whole_share_below=whole_share_below, spread=spread)
    out = []
    while True:
        out.append(download.take_plaintext())
        if download.done:
            break
        requests = download.wants()
        if not requests and not out[-1] and download.decoding is None:
            raise AssertionError("download stalled")
        if reads is not None:
            reads.extend(requests)
        for request in requests:
            share = shares[request.share_number]
            download.give(request, share[request.offset : request.offset + request.length])
    return b"".join(out), download.problems
