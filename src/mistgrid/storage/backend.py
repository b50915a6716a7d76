"""The disk backend: immutable shares in Tahoe-LAFS's layout and container format.

How this works: complete shares live at `shares/<2-char prefix>/<storage index>/<number>`;
uploads in progress at `shares/incoming/...`, apart, so nothing half-written is ever
listed or served. A share becomes visible only when every byte of its allocated size has
arrived: then its lease is appended, the file is fsynced and renamed into place (and the
directory fsynced). The state of uploads in progress lives in memory only: after a crash
the incoming files are deleted on start, and the client simply uploads again.

Storage indexes arrive here already checked (16 bytes) and share numbers are 0..255, so no
request can name a path outside the store.
"""

from __future__ import annotations

import contextlib
import hmac
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import attrs

from ..caps import base32
from ..errors import ProtocolError
from ..gbs import messages
from . import containers

MAX_MUTABLE_SHARE_SIZE = 69_105 * 1000**4


@attrs.define
class _Upload:
    path: Path
    final: Path
    allocated_size: int
    secret: bytes
    lease: containers.Lease
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


class DiskBackend:
    """Immutable shares and their leases under `root`."""

    def __init__(self, root: Path, reserved_space: int = 0,
                 clock: Callable[[], float] = time.time) -> None:
        self.root = root
        self.shares = root / "shares"
        self.incoming = self.shares / "incoming"
        self.advisories = root / "corruption-advisories"
        self.reserved_space = reserved_space
        self._clock = clock
        self._uploads: dict[tuple[bytes, int], _Upload] = {}
        self.shares.mkdir(parents=True, exist_ok=True)
        # Uploads in progress did not survive the restart: forget their partial files.
        shutil.rmtree(self.incoming, ignore_errors=True)
        self.incoming.mkdir(parents=True, exist_ok=True)

    # ---- paths and space ----

    def _bucket(self, storage_index: bytes, incoming: bool = False) -> Path:
        text = si_text(storage_index)
        return (self.incoming if incoming else self.shares) / text[:2] / text

    def available_space(self) -> int:
        return max(0, shutil.disk_usage(self.root).free - self.reserved_space)

    def _pending_bytes(self) -> int:
        return sum(u.allocated_size for u in self._uploads.values())

    # ---- immutable ----

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

    def immutable_shares(self, storage_index: bytes) -> set[int]:
        return self._shares_of_kind(storage_index, mutable=False)

    def allocate(self, storage_index: bytes, numbers: frozenset[int], allocated_size: int,
                 upload_secret: bytes, renew: bytes, cancel: bytes
                 ) -> tuple[set[int], set[int]]:
        """(already have, allocated) as GBS defines them; repeats are idempotent."""
        have = self.immutable_shares(storage_index)
        allocated: set[int] = set()
        room = self.available_space() - self._pending_bytes()
        version = containers.IMMUTABLE_VERSION
        lease = containers.Lease(0, containers.stored_secret(version, renew),
                                 containers.stored_secret(version, cancel),
                                 int(self._clock()) + containers.LEASE_SECONDS)
        for number in sorted(numbers - have):
            upload = self._uploads.get((storage_index, number))
            if upload is not None:
                if hmac.compare_digest(upload.secret, upload_secret) and \
                        upload.allocated_size == allocated_size:
                    allocated.add(number)
                continue
            if allocated_size > room:
                continue
            room -= allocated_size
            path = self._bucket(storage_index, incoming=True) / str(number)
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("wb") as handle:
                handle.write(containers.pack_header(allocated_size, 0))
            self._uploads[(storage_index, number)] = _Upload(
                path, self._bucket(storage_index) / str(number), allocated_size,
                upload_secret, lease)
            allocated.add(number)
        return have & numbers, allocated

    def _upload(self, storage_index: bytes, number: int, secret: bytes) -> _Upload:
        upload = self._uploads.get((storage_index, number))
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
        missing = upload.missing()
        if missing:
            return WriteResult(False, missing)
        self._complete(storage_index, number, upload)
        return WriteResult(True, [])

    def _complete(self, storage_index: bytes, number: int, upload: _Upload) -> None:
        with upload.path.open("r+b") as handle:
            handle.seek(containers.DATA_OFFSET + upload.allocated_size)
            handle.write(upload.lease.pack())
            handle.seek(0)
            handle.write(containers.pack_header(upload.allocated_size, 1))
            handle.flush()
            os.fsync(handle.fileno())
        upload.final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(upload.path, upload.final)
        _fsync_dir(upload.final.parent)
        del self._uploads[(storage_index, number)]
        with contextlib.suppress(OSError):
            upload.path.parent.rmdir()

    def abort(self, storage_index: bytes, number: int, secret: bytes) -> None:
        upload = self._uploads.get((storage_index, number))
        if upload is None or not hmac.compare_digest(upload.secret, secret):
            raise ProtocolError(405, "no upload in progress with that secret")
        del self._uploads[(storage_index, number)]
        upload.path.unlink(missing_ok=True)

    def read_immutable(self, storage_index: bytes, number: int, offset: int,
                       length: int) -> bytes:
        path = self._bucket(storage_index) / str(number)
        try:
            with path.open("rb") as handle:
                info = containers.parse_header(handle.read(containers.HEADER.size),
                                               os.fstat(handle.fileno()).st_size)
                if offset >= info.data_length:
                    return b""
                handle.seek(containers.DATA_OFFSET + offset)
                return handle.read(min(length, info.data_length - offset))
        except FileNotFoundError as err:
            raise ProtocolError(404, "no such share") from err

    def share_length(self, storage_index: bytes, number: int) -> int:
        path = self._bucket(storage_index) / str(number)
        try:
            with path.open("rb") as handle:
                return containers.parse_header(handle.read(containers.HEADER.size),
                                               os.fstat(handle.fileno()).st_size).data_length
        except FileNotFoundError as err:
            raise ProtocolError(404, "no such share") from err

    # ---- mutable ----

    def mutable_shares(self, storage_index: bytes) -> set[int]:
        return self._shares_of_kind(storage_index, mutable=True)

    def _mutable_data(self, path: Path) -> tuple[containers.MutableHeader, bytes]:
        with path.open("rb") as handle:
            header = containers.parse_mutable_header(handle.read(containers.MUTABLE_HEADER.size))
            handle.seek(containers.MUTABLE_DATA_OFFSET)
            return header, handle.read(header.data_length)

    def read_mutable(self, storage_index: bytes, number: int, offset: int,
                     length: int) -> bytes:
        if number not in self.mutable_shares(storage_index):
            raise ProtocolError(404, "no such mutable share")
        _header, data = self._mutable_data(self._bucket(storage_index) / str(number))
        return data[offset : offset + length]

    def mutable_length(self, storage_index: bytes, number: int) -> int:
        if number not in self.mutable_shares(storage_index):
            raise ProtocolError(404, "no such mutable share")
        return len(self._mutable_data(self._bucket(storage_index) / str(number))[1])

    def read_test_write(self, storage_index: bytes, write_enabler: bytes, renew: bytes,
                        cancel: bytes, request: messages.ReadTestWrite
                        ) -> tuple[bool, dict[int, list[bytes]]]:
        """Tahoe's slot_testv_and_readv_and_writev: reads (before any write) from every
        share of the slot; writes happen only if every test of every share passes."""
        bucket = self._bucket(storage_index)
        existing = {n: self._mutable_data(bucket / str(n))
                    for n in self.mutable_shares(storage_index)}
        for header, _data in existing.values():
            if not hmac.compare_digest(header.write_enabler, write_enabler):
                raise ProtocolError(401, "wrong write enabler")
        reads = {n: [data[o : o + size] for o, size in request.reads]
                 for n, (_h, data) in existing.items()}
        for number, vectors in request.shares.items():
            current = existing[number][1] if number in existing else b""
            for test in vectors.tests:
                if current[test.offset : test.offset + test.size] != test.specimen:
                    return False, reads
        for number, vectors in request.shares.items():
            data = bytearray(existing[number][1] if number in existing else b"")
            for write in vectors.writes:
                end = write.offset + len(write.data)
                if end > MAX_MUTABLE_SHARE_SIZE:
                    raise ProtocolError(413, "mutable share too large")
                if len(data) < write.offset:
                    data.extend(b"\x00" * (write.offset - len(data)))
                data[write.offset : end] = write.data
            if vectors.new_length is not None:
                del data[vectors.new_length :]
            path = bucket / str(number)
            if vectors.new_length == 0 or (not data and number not in existing):
                path.unlink(missing_ok=True)
                continue
            self._write_mutable(path, write_enabler, bytes(data), renew, cancel)
        return True, reads

    def _write_mutable(self, path: Path, write_enabler: bytes, data: bytes, renew: bytes,
                       cancel: bytes) -> None:
        """Replace a mutable container atomically (write a new file, rename over)."""
        leases = self._mutable_leases(path) if path.exists() else []  # stored as version 2
        expiration = int(self._clock()) + containers.LEASE_SECONDS
        renew, cancel = (containers.stored_secret(2, renew), containers.stored_secret(2, cancel))
        for index, (owner, _exp, lease_renew, lease_cancel) in enumerate(leases):
            if hmac.compare_digest(lease_renew, renew):
                leases[index] = (owner, expiration, lease_renew, lease_cancel)
                break
        else:
            leases.append((1, expiration, renew, cancel))
        slots = leases[: containers.MUTABLE_LEASE_SLOTS]
        extra = leases[containers.MUTABLE_LEASE_SLOTS :]
        lease_bytes = b"".join(containers.MUTABLE_LEASE.pack(o, e & 0xFFFFFFFF, r, c, b"\x00" * 20)
                               for o, e, r, c in slots)
        lease_bytes += b"\x00" * (containers.MUTABLE_LEASE_SLOTS * containers.MUTABLE_LEASE.size
                                  - len(lease_bytes))
        tail = len(extra).to_bytes(4, "big") + b"".join(
            containers.MUTABLE_LEASE.pack(o, e & 0xFFFFFFFF, r, c, b"\x00" * 20)
            for o, e, r, c in extra)
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(f".{path.name}.new")
        with temp.open("wb") as handle:
            handle.write(containers.MutableHeader(write_enabler, len(data)).pack())
            handle.write(lease_bytes + data + tail)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
        _fsync_dir(path.parent)

    def _mutable_leases(self, path: Path) -> list[tuple[int, int, bytes, bytes]]:
        with path.open("rb") as handle:
            header = containers.parse_mutable_header(handle.read(containers.MUTABLE_HEADER.size))
            slots = handle.read(containers.MUTABLE_LEASE_SLOTS * containers.MUTABLE_LEASE.size)
            handle.seek(containers.MUTABLE_DATA_OFFSET + header.data_length)
            count_raw = handle.read(4)
            count = int.from_bytes(count_raw, "big") if len(count_raw) == 4 else 0
            extra = handle.read(count * containers.MUTABLE_LEASE.size)
        leases = []
        for raw in (slots, extra):
            for pos in range(0, len(raw) - containers.MUTABLE_LEASE.size + 1,
                             containers.MUTABLE_LEASE.size):
                owner, exp, renew, cancel, _node = containers.MUTABLE_LEASE.unpack(
                    raw[pos : pos + containers.MUTABLE_LEASE.size])
                if owner:  # version 1 kept secrets as they are: hash them for version 2
                    if header.version == 1:
                        renew = containers.stored_secret(2, renew)
                        cancel = containers.stored_secret(2, cancel)
                    leases.append((owner, exp, renew, cancel))
        return leases

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
            path = self._bucket(storage_index) / str(number)
            header, data = self._mutable_data(path)
            self._write_mutable(path, header.write_enabler, data, renew, cancel)
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
        kinds = self.mutable_shares if mutable else self.immutable_shares
        if number not in kinds(storage_index):
            return False
        self.advisories.mkdir(exist_ok=True)
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(self._clock()))
        kind = "mutable" if mutable else "immutable"
        target = self.advisories / f"{stamp}-{si_text(storage_index)}-{number}"
        target.write_text(f"kind: {kind}\nstorage index: {si_text(storage_index)}\n"
                          f"share number: {number}\n\n{reason}\n")
        return True
