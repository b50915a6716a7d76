"""The disk backend: shares in Tahoe-LAFS's layout and container formats, and the one rule
for who may create, replace or remove which container.

How this works: complete shares live at `shares/<2-char prefix>/<storage index>/<number>`;
immutable uploads in progress at `shares/incoming/<storage index>.<number>`, apart, so
nothing half-written is ever listed or served (one flat directory: making and removing a
directory pair per upload cost more than the rest of a small share's upload). The state
of uploads in progress lives in memory only: after a crash the incoming files are deleted
on start, and the client simply uploads again. A share that arrives in one write is
written to disk in one go.

The rule (every request goes through it; `tests/storage/test_hostile_clients.py` drives all
endpoints at once against it):
- A storage index holds shares of one kind. Immutable shares are allocated only where the
  index holds no mutable share; read-test-write works only where it holds no immutable share
  and no immutable upload is in progress.
- An immutable share is write-once: it appears only when every byte of its allocation has
  arrived, only where no share exists (a hard link, which never replaces), and no request
  ever changes or removes it. An upload in progress can be changed only with its upload
  secret, removed by its own abort, or expires after `upload_idle_timeout` seconds without
  a write (then another upload of the same share may start).
- A mutable share is created by read-test-write, and changed or removed (new-length 0) only
  by a read-test-write that presents its write enabler.

Bounds: space allocated to uploads in progress counts as used; at most `max_uploads`
uploads are in progress; nothing is written to disk for an allocation until its first
write; mutable shares are read and written by range (`mutable_share`), so one request costs
what its own vectors carry (reads are capped by `MAX_VECTOR_READ`).

Storage indexes arrive here already checked (16 bytes) and share numbers are 0..255, so no
request can name a path outside the store.
"""

from __future__ import annotations

import hmac
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

import attrs

from ..caps import base32
from ..errors import ProtocolError
from ..gbs import messages
from . import containers
from .mutable_share import MutableShare

MAX_MUTABLE_SHARE_SIZE = 69_105 * 1000**4  # what Tahoe-LAFS 1.20 advertises
MAX_VECTOR_READ = 4 * 1024 * 1024  # bytes all read vectors of one read-test-write may return
UPLOAD_IDLE_TIMEOUT = 600.0
MAX_UPLOADS = 10_000
MAX_ADVISORIES = 1000


@attrs.define
class _Upload:
    path: Path
    final: Path
    allocated_size: int
    secret: bytes
    lease: containers.Lease
    touched: float
    started: bool = False
    written: list[tuple[int, int]] = attrs.Factory(list)

    def missing(self) -> list[tuple[int, int]]:
        gaps, pos = [], 0
        for start, end in sorted(self.written):
            if start > pos:
                gaps.append((pos, start))
            pos = max(pos, end)
        if pos < self.allocated_size:
            gaps.append((pos, self.allocated_size))
        return gaps

    def add(self, start: int, end: int) -> None:
        merged: list[tuple[int, int]] = []
        for lo, hi in sorted([*self.written, (start, end)]):
            if merged and lo <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
            else:
                merged.append((lo, hi))
        self.written = merged


@attrs.frozen
class WriteResult:
    complete: bool
    required: list[tuple[int, int]]


def si_text(storage_index: bytes) -> str:
    return base32.b2a(storage_index)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_empty(directory: Path, levels: int) -> None:
    """Remove `directory` and up to `levels - 1` parents while they are empty."""
    for _ in range(levels):
        try:
            directory.rmdir()
        except OSError:
            return
        directory = directory.parent


class DiskBackend:
    """Immutable and mutable shares and their leases under `root`."""

    def __init__(self, root: Path, reserved_space: int = 0,
                 clock: Callable[[], float] = time.time,
                 upload_idle_timeout: float = UPLOAD_IDLE_TIMEOUT,
                 max_uploads: int = MAX_UPLOADS) -> None:
        self.root = root
        self.shares = root / "shares"
        self.incoming = self.shares / "incoming"
        self.advisories = root / "corruption-advisories"
        self.reserved_space = reserved_space
        self.upload_idle_timeout = upload_idle_timeout
        self.max_uploads = max_uploads
        self._clock = clock
        self._uploads: dict[bytes, dict[int, _Upload]] = {}
        self.shares.mkdir(parents=True, exist_ok=True)
        # Uploads in progress did not survive the restart: forget their partial files.
        shutil.rmtree(self.incoming, ignore_errors=True)
        self.incoming.mkdir(parents=True, exist_ok=True)

    # ---- paths, kinds and space ----

    def _bucket(self, storage_index: bytes) -> Path:
        text = si_text(storage_index)
        return self.shares / text[:2] / text

    def _shares_of_kind(self, storage_index: bytes, mutable: bool) -> set[int]:
        bucket = self._bucket(storage_index)
        if not bucket.is_dir():
            return set()
        found = set()
        for path in bucket.iterdir():
            if path.name.isdigit():
                with path.open("rb") as handle:
                    if containers.is_mutable(handle.read(32)) == mutable:
                        found.add(int(path.name))
        return found

    def available_space(self) -> int:
        """Free space less the reserve and less what uploads in progress may still use."""
        free = shutil.disk_usage(self.root).free - self.reserved_space
        return max(0, free - self._pending_bytes())

    def _pending_bytes(self) -> int:
        return sum(u.allocated_size for uploads in self._uploads.values()
                   for u in uploads.values())

    def uploads_in_progress(self) -> int:
        return sum(len(uploads) for uploads in self._uploads.values())

    # ---- immutable ----

    def immutable_shares(self, storage_index: bytes) -> set[int]:
        return self._shares_of_kind(storage_index, mutable=False)

    def allocate(self, storage_index: bytes, numbers: frozenset[int], allocated_size: int,
                 upload_secret: bytes, renew: bytes, cancel: bytes
                 ) -> tuple[set[int], set[int]]:
        """(already have, allocated) as GBS defines them; repeats are idempotent."""
        if allocated_size == 0:
            raise ProtocolError(400, "allocated-size must be at least 1 byte")
        self.expire_idle_uploads()
        if self.mutable_shares(storage_index):  # a mutable slot: no immutable share here
            return set(), set()
        have = self.immutable_shares(storage_index)
        allocated: set[int] = set()
        room = self.available_space()
        count = self.uploads_in_progress()
        now = self._clock()
        version = containers.IMMUTABLE_VERSION
        lease = containers.Lease(0, containers.stored_secret(version, renew),
                                 containers.stored_secret(version, cancel),
                                 int(now) + containers.LEASE_SECONDS)
        uploads = self._uploads.setdefault(storage_index, {})
        for number in sorted(numbers - have):
            upload = uploads.get(number)
            if upload is not None:
                if hmac.compare_digest(upload.secret, upload_secret) and \
                        upload.allocated_size == allocated_size:
                    upload.touched = now
                    allocated.add(number)
                continue
            if allocated_size > room or count >= self.max_uploads:
                continue
            room -= allocated_size
            count += 1
            uploads[number] = _Upload(
                self.incoming / f"{si_text(storage_index)}.{number}",
                self._bucket(storage_index) / str(number), allocated_size, upload_secret,
                lease, now)
            allocated.add(number)
        if not uploads:
            del self._uploads[storage_index]
        if have:  # a repeat upload: its uploader's lease keeps the shares alive too
            self.add_or_renew_lease(storage_index, renew, cancel)
        return have, allocated  # every share held, asked for or not (as Tahoe answers)

    def _upload(self, storage_index: bytes, number: int, secret: bytes) -> _Upload:
        upload = self._uploads.get(storage_index, {}).get(number)
        if upload is None:
            raise ProtocolError(404, "no upload in progress for this share")
        if not hmac.compare_digest(upload.secret, secret):
            raise ProtocolError(401, "wrong upload secret")
        return upload

    def write(self, storage_index: bytes, number: int, secret: bytes, offset: int,
              data: bytes) -> WriteResult:
        upload = self._upload(storage_index, number, secret)
        end = offset + len(data)
        if end > upload.allocated_size:
            raise ProtocolError(416, "write beyond the allocated size")
        if not upload.started:  # the file exists only once something is written
            if offset == 0 and end == upload.allocated_size:  # the whole share at once
                self._complete(storage_index, number, upload, data)
                return WriteResult(True, [])
            with self._new_incoming(upload.path) as handle:
                handle.write(containers.pack_header(upload.allocated_size, 0))
            upload.started = True
        with upload.path.open("r+b") as handle:
            for lo, hi in upload.written:
                a, b = max(lo, offset), min(hi, end)
                if a < b:
                    handle.seek(containers.DATA_OFFSET + a)
                    if handle.read(b - a) != data[a - offset : b - offset]:
                        raise ProtocolError(409, "overlapping write with different data")
            handle.seek(containers.DATA_OFFSET + offset)
            handle.write(data)
        upload.add(offset, end)
        upload.touched = self._clock()
        missing = upload.missing()
        if missing:
            return WriteResult(False, missing)
        self._complete(storage_index, number, upload)
        return WriteResult(True, [])

    def _complete(self, storage_index: bytes, number: int, upload: _Upload,
                  whole: bytes | None = None) -> None:
        """Make the share: its lease and header written, then durable, then linked into
        place. `whole`: all of the share's data, none written yet (one file write)."""
        if whole is not None:
            with self._new_incoming(upload.path) as handle:
                handle.write(containers.pack_header(upload.allocated_size, 1) + whole
                             + upload.lease.pack())
                handle.flush()
                os.fsync(handle.fileno())
        else:
            with upload.path.open("r+b") as handle:
                handle.seek(containers.DATA_OFFSET + upload.allocated_size)
                handle.write(upload.lease.pack())
                handle.seek(0)
                handle.write(containers.pack_header(upload.allocated_size, 1))
                handle.flush()
                os.fsync(handle.fileno())
        upload.final.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(upload.path, upload.final)  # never replaces whatever is there
        except FileExistsError as err:
            self._drop(storage_index, number)
            raise ProtocolError(409, "a share already exists at this place") from err
        _fsync_dir(upload.final.parent)
        self._drop(storage_index, number)

    def _new_incoming(self, path: Path) -> IO[bytes]:
        """A new upload's file, open for writing (the incoming directory, made at start,
        is made again only if something removed it)."""
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        try:
            fd = os.open(path, flags, 0o600)
        except FileNotFoundError:
            self.incoming.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, flags, 0o600)
        return os.fdopen(fd, "wb")

    def _drop(self, storage_index: bytes, number: int) -> None:
        """Forget an upload in progress and remove its partial file."""
        uploads = self._uploads.get(storage_index, {})
        upload = uploads.pop(number, None)
        if not uploads:
            self._uploads.pop(storage_index, None)
        if upload is not None:
            upload.path.unlink(missing_ok=True)

    def abort(self, storage_index: bytes, number: int, secret: bytes) -> None:
        upload = self._uploads.get(storage_index, {}).get(number)
        if upload is None or not hmac.compare_digest(upload.secret, secret):
            raise ProtocolError(405, "no upload in progress with that secret")
        self._drop(storage_index, number)

    def expire_idle_uploads(self) -> int:
        """Abort every upload with no write for `upload_idle_timeout` seconds; how many."""
        limit = self._clock() - self.upload_idle_timeout
        idle = [(si, number) for si, uploads in self._uploads.items()
                for number, upload in uploads.items() if upload.touched < limit]
        for si, number in idle:
            self._drop(si, number)
        return len(idle)

    def _open_immutable(self, storage_index: bytes, number: int
                        ) -> tuple[containers.ContainerInfo, Path]:
        path = self._bucket(storage_index) / str(number)
        try:
            with path.open("rb") as handle:
                info = containers.parse_header(handle.read(containers.HEADER.size),
                                               os.fstat(handle.fileno()).st_size)
        except (FileNotFoundError, containers.ContainerError) as err:
            raise ProtocolError(404, "no such immutable share") from err
        return info, path

    def read_immutable(self, storage_index: bytes, number: int, offset: int,
                       length: int) -> bytes:
        info, path = self._open_immutable(storage_index, number)
        if offset >= info.data_length:
            return b""
        with path.open("rb") as handle:
            handle.seek(containers.DATA_OFFSET + offset)
            return handle.read(min(length, info.data_length - offset))

    def share_length(self, storage_index: bytes, number: int) -> int:
        return self._open_immutable(storage_index, number)[0].data_length

    # ---- mutable ----

    def mutable_shares(self, storage_index: bytes) -> set[int]:
        return self._shares_of_kind(storage_index, mutable=True)

    def _mutable(self, storage_index: bytes, number: int) -> MutableShare:
        return MutableShare(self._bucket(storage_index) / str(number))

    def read_mutable(self, storage_index: bytes, number: int, offset: int,
                     length: int) -> bytes:
        try:
            return self._mutable(storage_index, number).read(offset, length)
        except (FileNotFoundError, containers.ContainerError) as err:
            raise ProtocolError(404, "no such mutable share") from err

    def mutable_length(self, storage_index: bytes, number: int) -> int:
        try:
            return self._mutable(storage_index, number).data_length()
        except (FileNotFoundError, containers.ContainerError) as err:
            raise ProtocolError(404, "no such mutable share") from err

    def read_test_write(self, storage_index: bytes, write_enabler: bytes, renew: bytes,
                        cancel: bytes, request: messages.ReadTestWrite
                        ) -> tuple[bool, dict[int, list[bytes]]]:
        """Tahoe's slot_testv_and_readv_and_writev: reads (before any write) from every
        share of the slot; writes happen only if every test of every share passes."""
        if self.immutable_shares(storage_index) or storage_index in self._uploads:
            raise ProtocolError(409, "this storage index holds immutable shares")
        existing = {n: self._mutable(storage_index, n)
                    for n in self.mutable_shares(storage_index)}
        for share in existing.values():
            if not hmac.compare_digest(share.write_enabler(), write_enabler):
                raise ProtocolError(401, "wrong write enabler")
        lengths = {n: share.data_length() for n, share in existing.items()}
        _check_bounds(request, lengths, self.available_space())
        reads = {n: [share.read(o, size) for o, size in request.reads]
                 for n, share in existing.items()}
        for number, vectors in request.shares.items():
            found, length = existing.get(number), lengths.get(number, 0)
            for test in vectors.tests:
                expected = max(0, min(test.size, length - test.offset))
                if expected != len(test.specimen):
                    return False, reads
                actual = found.read(test.offset, expected) if found is not None else b""
                if actual != test.specimen:
                    return False, reads
        expiration = int(self._clock()) + containers.LEASE_SECONDS
        for number, vectors in request.shares.items():
            share = existing.get(number) or self._mutable(storage_index, number)
            if vectors.new_length == 0:
                if number in existing:
                    share.path.unlink()
                continue
            if number not in existing:
                if not vectors.writes:
                    continue
                share.create(write_enabler)
            share.write([(w.offset, w.data) for w in vectors.writes], vectors.new_length)
            share.add_or_renew_lease(renew, cancel, expiration)
        remove_empty(self._bucket(storage_index), 2)
        return True, reads

    # ---- leases ----

    def add_or_renew_lease(self, storage_index: bytes, renew: bytes, cancel: bytes) -> bool:
        """Renew the lease with this renew secret on every share, or add one; False if
        there are no shares."""
        numbers = self.immutable_shares(storage_index)
        expiration = int(self._clock()) + containers.LEASE_SECONDS
        for number in numbers:
            self._renew_one(self._bucket(storage_index) / str(number), renew, cancel,
                            expiration)
        mutable = self.mutable_shares(storage_index)
        for number in mutable:
            self._mutable(storage_index, number).add_or_renew_lease(renew, cancel, expiration)
        return bool(numbers or mutable)

    def _renew_one(self, path: Path, renew: bytes, cancel: bytes, expiration: int) -> None:
        with path.open("r+b") as handle:
            size = os.fstat(handle.fileno()).st_size
            info = containers.parse_header(handle.read(containers.HEADER.size), size)
            handle.seek(info.lease_offset)
            wanted = containers.stored_secret(info.version, renew)
            for index in range(info.lease_count):
                lease = containers.Lease.unpack(handle.read(containers.LEASE.size))
                if hmac.compare_digest(lease.renew_secret, wanted):
                    handle.seek(info.lease_offset + index * containers.LEASE.size)
                    handle.write(attrs.evolve(lease, expiration=expiration).pack())
                    return
            handle.seek(size)
            handle.write(containers.Lease(0, wanted,
                                          containers.stored_secret(info.version, cancel),
                                          expiration).pack())
            handle.seek(8)
            handle.write((info.lease_count + 1).to_bytes(4, "big"))
            handle.flush()
            os.fsync(handle.fileno())

    # ---- advisories ----

    def advise_corrupt(self, storage_index: bytes, number: int, reason: str,
                       mutable: bool = False) -> bool:
        """Keep a corruption advisory for an existing share (at most `MAX_ADVISORIES` are
        kept: more are accepted and dropped, so advisories cannot fill the disk)."""
        kinds = self.mutable_shares if mutable else self.immutable_shares
        if number not in kinds(storage_index):
            return False
        self.advisories.mkdir(exist_ok=True)
        with os.scandir(self.advisories) as entries:
            if sum(1 for _ in entries) >= MAX_ADVISORIES:
                return True
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(self._clock()))
        kind = "mutable" if mutable else "immutable"
        target = self.advisories / f"{stamp}-{si_text(storage_index)}-{number}"
        target.write_text(f"kind: {kind}\nstorage index: {si_text(storage_index)}\n"
                          f"share number: {number}\n\n{reason}\n")
        return True


def _check_bounds(request: messages.ReadTestWrite, lengths: dict[int, int],
                  space: int) -> None:
    """Refuse a read-test-write whose reads would return more than `MAX_VECTOR_READ`
    bytes, that writes past the maximum share size, or that grows shares by more than
    the space there is (gaps count as written)."""
    returned = sum(max(0, min(size, length - offset))
                   for length in lengths.values() for offset, size in request.reads)
    if returned > MAX_VECTOR_READ:
        raise ProtocolError(413, f"read vectors would return more than {MAX_VECTOR_READ} "
                                 "bytes; read in smaller pieces")
    growth = 0
    for number, vectors in request.shares.items():
        length = lengths.get(number, 0)
        end = max([length, *(w.offset + len(w.data) for w in vectors.writes)])
        if end > MAX_MUTABLE_SHARE_SIZE:
            raise ProtocolError(413, "mutable share too large")
        growth += end - length
    if growth > space:
        raise ProtocolError(413, "not enough space for this write")
