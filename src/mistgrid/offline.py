"""Offline encode and decode between local files: the shell behind `mistgrid debug`.

How this works: `encode_file` makes two passes over the input (the convergent key, then the
encoding) and writes each share's bytes straight to its file as the encoder yields them, so
memory stays at about one segment whatever the file size. `decode_files` runs the download
machine against share files, reading only the ranges it asks for. Share files are named by
share number (`0`, `1`, ...), like the last part of a storage server's share path.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path
from typing import IO

from .caps.immutable import ChkCap, LiteralCap
from .encoding.download import ChkDownload
from .encoding.params import LIT_MAX_SIZE, EncodingParams
from .encoding.upload import ChkEncoder, ShareWrite, convergent_key, random_key
from .errors import MistgridError, ShareError

READ_CHUNK = 1024 * 1024
Progress = Callable[[int], None]


def _chunks(stream: IO[bytes], progress: Progress | None = None) -> Iterator[bytes]:
    while chunk := stream.read(READ_CHUNK):
        if progress is not None:
            progress(len(chunk))
        yield chunk


def segment_workers() -> ThreadPoolExecutor:
    """Threads for segment work (AES, SHA-256 and zfec release the GIL)."""
    return ThreadPoolExecutor(max_workers=os.cpu_count() or 1,
                              thread_name_prefix="mistgrid-segment")


def encode_file(source: Path, out_dir: Path, params: EncodingParams,
                convergence: bytes | None, progress: Progress | None = None
                ) -> LiteralCap | ChkCap:
    """Encode `source` into share files `out_dir/<n>`; returns the cap.

    With `convergence` None a random key is used. `progress` is called with byte counts
    (two passes' worth for a convergent key).
    """
    size = source.stat().st_size
    with contextlib.ExitStack() as stack:
        stream = stack.enter_context(source.open("rb"))
        if size <= LIT_MAX_SIZE:
            return LiteralCap(stream.read(LIT_MAX_SIZE + 1))
        if convergence is None:
            key = random_key()
        else:
            key = convergent_key(convergence, params, size, _chunks(stream, progress))
            stream.seek(0)
        out_dir.mkdir(parents=True, exist_ok=True)
        files = [stack.enter_context((out_dir / str(n)).open("wb"))
                 for n in range(params.total)]
        encoder = ChkEncoder(key, size, params, stack.enter_context(segment_workers()))
        for chunk in _chunks(stream, progress):
            _write(files, encoder.feed(chunk))
        writes, cap = encoder.finish()
        _write(files, writes)
    if source.stat().st_size != size:
        raise MistgridError(f"{source} changed while it was being encoded")
    return cap


def _write(files: Sequence[IO[bytes]], writes: list[ShareWrite]) -> None:
    for write in writes:
        handle = files[write.share_number]
        handle.seek(write.offset)
        handle.write(write.data)


def share_number_of(path: Path) -> int:
    """The share number a share file's name ends with."""
    match = re.search(r"(\d+)$", path.name)
    if match is None:
        raise MistgridError(f"{path}: cannot tell the share number (name it by its number)")
    return int(match.group(1))


def decode_files(cap: ChkCap, readers: Mapping[int, Callable[[int, int], bytes]],
                 start: int = 0, end: int | None = None,
                 on_problem: Callable[[ShareError], None] | None = None,
                 executor: Executor | None = None) -> Iterator[bytes]:
    """Yield the plaintext of `cap` from share readers `{number: read(offset, length)}`.

    `on_problem` hears of each share dropped on the way (decoding goes on while k remain).
    """
    download = ChkDownload(cap, sorted(readers), start, end, executor=executor)
    reported = 0
    while True:
        plaintext = download.take_plaintext()
        if on_problem is not None:
            for problem in download.problems[reported:]:
                on_problem(problem)
            reported = len(download.problems)
        if plaintext:
            yield plaintext
        if download.done:
            break
        requests = download.wants()
        if not requests and not plaintext and download.decoding is None:
            raise MistgridError("download stalled")  # pragma: no cover - a machine bug
        for request in requests:
            try:
                data = readers[request.share_number](request.offset, request.length)
            except OSError as err:
                download.fail(request, err.strerror or str(err))
                continue
            download.give(request, data)
        if on_problem is not None:
            for problem in download.problems[reported:]:
                on_problem(problem)
            reported = len(download.problems)


def file_reader(handle: IO[bytes]) -> Callable[[int, int], bytes]:
    """A read(offset, length) function over one open share file."""

    def read(offset: int, length: int) -> bytes:
        handle.seek(offset)
        return handle.read(length)

    return read


def decode_to(cap: LiteralCap | ChkCap, share_files: list[Path], out: IO[bytes],
              progress: Progress | None = None,
              on_problem: Callable[[ShareError], None] | None = None) -> int:
    """Write the plaintext of `cap` to `out` from `share_files`; returns bytes written."""
    if isinstance(cap, LiteralCap):
        out.write(cap.data)
        return cap.size
    readers: dict[int, Callable[[int, int], bytes]] = {}
    written = 0
    with contextlib.ExitStack() as stack:
        for path in share_files:
            number = share_number_of(path)
            if number in readers:
                raise MistgridError(f"two share files for share {number}")
            try:
                readers[number] = file_reader(stack.enter_context(path.open("rb")))
            except OSError as err:
                raise MistgridError(f"{path}: {err.strerror or err}") from err
        workers = stack.enter_context(segment_workers())
        for chunk in decode_files(cap, readers, on_problem=on_problem, executor=workers):
            out.write(chunk)
            written += len(chunk)
            if progress is not None:
                progress(len(chunk))
    return written
