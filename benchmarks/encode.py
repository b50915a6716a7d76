"""Encode and decode throughput of the CHK core beside the limits of its parts.

Run: .venv/bin/python -m benchmarks.encode [--size-mib 100] [--workers 2]

For each k-of-N it measures, on the same in-memory data with 1 MiB segments:
  parts alone  AES-128-CTR, SHA-256, zfec encode, zfec decode (from the last k shares,
               all or mostly secondary blocks: the costly case)
  whole        encode = convergent-key pass + ChkEncoder (share writes go to a sink);
               decode = ChkDownload from the same last k shares, every hash checked
  serial limit 1 / (sum of the per-byte costs of AES, SHA-256 and zfec measured alone)
Timings are the best of --repeat runs. Prints MB/s (10^6 bytes per second).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import time
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any

import zfec

from mistgrid.caps import ChkCap
from mistgrid.crypto.aes import CtrStream
from mistgrid.encoding.download import ChkDownload
from mistgrid.encoding.params import EncodingParams, FileLayout
from mistgrid.encoding.upload import ChkEncoder, convergent_key, share_layout_for
from mistgrid.testing.memory import encode_bytes

SEGMENT = 1024 * 1024


def best_rate(size: int, repeat: int, run: Callable[..., object], *args: Any) -> float:
    """MB/s of the fastest of `repeat` calls of run(*args) over `size` bytes."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        run(*args)
        best = min(best, time.perf_counter() - start)
    return size / best / 1e6


def segments(data: bytes) -> list[bytes]:
    return [data[i : i + SEGMENT] for i in range(0, len(data), SEGMENT)]


def aes_alone(data: bytes) -> None:
    stream = CtrStream(b"k" * 16)
    for chunk in segments(data):
        stream.process(chunk)


def sha_alone(data: bytes) -> None:
    for chunk in segments(data):
        hashlib.sha256(chunk).digest()


def zfec_encode_alone(data: bytes, k: int, n: int) -> None:
    encoder = zfec.Encoder(k, n)
    piece = -(-SEGMENT // k)
    for chunk in segments(data):
        encoder.encode([chunk[i * piece : (i + 1) * piece].ljust(piece, b"\0")
                        for i in range(k)])


def zfec_decode_alone(blocks: list[list[bytes]], numbers: list[int], k: int, n: int) -> None:
    decoder = zfec.Decoder(k, n)
    for segment_blocks in blocks:
        decoder.decode(segment_blocks, numbers)


def whole_encode(data: bytes, params: EncodingParams, executor: Executor | None) -> None:
    key = convergent_key(b"c" * 16, params, len(data), segments(data))
    encoder = ChkEncoder(key, len(data), params, executor)
    written = 0
    for chunk in segments(data):
        written += sum(len(w.data) for w in encoder.feed(chunk))
    writes, _cap = encoder.finish()
    written += sum(len(w.data) for w in writes)


def whole_decode(cap: ChkCap, shares: dict[int, bytes], order: list[int],
                 executor: Executor | None, size: int) -> None:
    download = ChkDownload(cap, order, executor=executor)
    got = 0
    while not download.done:
        for request in download.wants():
            share = shares[request.share_number]
            download.give(request, share[request.offset : request.offset + request.length])
        got += len(download.take_plaintext())
    assert got == size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=100)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="threads for segment work (0: none)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    size = args.size_mib * 1024 * 1024
    data = os.urandom(size)
    executor = ThreadPoolExecutor(args.workers) if args.workers else None
    sha_alone(data)  # warm up: fault in the pages, settle the clock
    aes = best_rate(size, args.repeat, aes_alone, data)
    sha = best_rate(size, args.repeat, sha_alone, data)
    print(f"{args.size_mib} MiB in memory, 1 MiB segments, {args.workers} worker threads, "
          f"{os.cpu_count()} CPUs; MB/s, best of {args.repeat}")
    print(f"AES-128-CTR alone: {aes:8.0f}    SHA-256 alone: {sha:8.0f}")
    header = (f"{'k-of-N':>7} {'op':>7} {'zfec alone':>11} {'serial limit':>13} "
              f"{'mistgrid':>9} {'% of limit':>11}")
    print(header)
    print("-" * len(header))
    for k, n in ((3, 10), (2, 4)):
        params = EncodingParams(k, n, SEGMENT)
        cap, share_list = encode_bytes(data, params, feed_size=SEGMENT)
        assert isinstance(cap, ChkCap)
        shares = dict(enumerate(share_list))
        order = list(range(n - k, n))
        blocks = blocks_of(shares, order, params.layout_for(size))
        zenc = best_rate(size, args.repeat, zfec_encode_alone, data, k, n)
        zdec = best_rate(size, args.repeat, zfec_decode_alone, blocks, order, k, n)
        enc = best_rate(size, args.repeat, whole_encode, data, params, executor)
        dec = best_rate(size, args.repeat, whole_decode, cap, shares, order, executor, size)
        for op, zf, whole in (("encode", zenc, enc), ("decode", zdec, dec)):
            limit = 1 / (1 / aes + 1 / sha + 1 / zf)
            print(f"{k}-of-{n:<3} {op:>7} {zf:11.0f} {limit:13.0f} {whole:9.0f} "
                  f"{100 * whole / limit:10.0f}%")
    if executor is not None:
        executor.shutdown()


def blocks_of(shares: dict[int, bytes], order: list[int],
              layout: FileLayout) -> list[list[bytes]]:
    """The blocks of shares `order`, segment by segment (input for zfec decode alone)."""
    data_offset = share_layout_for(layout).data
    result = []
    for segment in range(layout.num_segments):
        offset = data_offset + segment * layout.block_size
        length = layout.block_length(segment)
        result.append([shares[n][offset : offset + length] for n in order])
    return result


if __name__ == "__main__":
    main()
