"""One mutable share container on disk, read and changed by range (never loaded whole).

How this works: the container is Tahoe-LAFS's (see `containers`): a 100-byte header, four
lease slots, the share data at `MUTABLE_DATA_OFFSET`, then the extra-lease count and extra
leases at the offset the header names. A read seeks to the bytes asked for; a write seeks
and writes only the bytes it carries. When data grows past its old end, the extra leases
are taken off the end first and written back after the new end, and a gap between the old
end and a write is left as a hole (zeros, no disk blocks), so one request's disk and memory
cost is the size of its own vectors, whatever the offsets. Changes are made in place, as
Tahoe-LAFS does: a crash in the middle of a write can leave a share whose signature no
longer matches, which the mutable protocol already treats as a bad share.

Lease secrets are kept as the container's version keeps them (hashed in version 2, as they
are in version 1), so a container Tahoe wrote stays one Tahoe reads.
"""

from __future__ import annotations

import hmac
import os
from pathlib import Path
from typing import BinaryIO

from . import containers

_LEASE = containers.MUTABLE_LEASE
_SLOTS_AT = containers.MUTABLE_HEADER.size
_SLOTS_SIZE = containers.MUTABLE_LEASE_SLOTS * _LEASE.size
_DATA = containers.MUTABLE_DATA_OFFSET
_EMPTY_SLOT = b"\x00" * _LEASE.size

Lease = tuple[int, int, bytes, bytes]  # owner, expiration, renew, cancel (as stored)


def _header(handle: BinaryIO) -> tuple[containers.MutableHeader, int]:
    """The container's header and where its extra leases start."""
    handle.seek(0)
    raw = handle.read(containers.MUTABLE_HEADER.size)
    header = containers.parse_mutable_header(raw)
    extra_at = int.from_bytes(raw[92:100], "big")
    return header, extra_at


def _unpack_leases(raw: bytes) -> list[Lease]:
    leases = []
    for pos in range(0, len(raw) - _LEASE.size + 1, _LEASE.size):
        owner, expiration, renew, cancel, _node = _LEASE.unpack(raw[pos : pos + _LEASE.size])
        if owner:
            leases.append((owner, expiration, renew, cancel))
    return leases


def _pack_lease(lease: Lease) -> bytes:
    owner, expiration, renew, cancel = lease
    return _LEASE.pack(owner, expiration & 0xFFFFFFFF, renew, cancel, b"\x00" * 20)


def _extra_leases(handle: BinaryIO, extra_at: int) -> list[Lease]:
    size = os.fstat(handle.fileno()).st_size
    if extra_at + 4 > size:
        return []
    handle.seek(extra_at)
    count = int.from_bytes(handle.read(4), "big")
    count = min(count, (size - extra_at - 4) // _LEASE.size)  # never past the file
    return _unpack_leases(handle.read(count * _LEASE.size))


def _write_tail(handle: BinaryIO, data_length: int, extra: list[Lease]) -> None:
    """Cut the file just after the data, write the extra leases there, and record both
    the data length and where the extra leases are in the header."""
    end = _DATA + data_length
    handle.truncate(end)
    handle.seek(end)
    handle.write(len(extra).to_bytes(4, "big") + b"".join(_pack_lease(x) for x in extra))
    handle.seek(84)
    handle.write(data_length.to_bytes(8, "big") + end.to_bytes(8, "big"))


class MutableShare:
    """A mutable container at `path` (which may not exist yet)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def exists(self) -> bool:
        return self.path.exists()

    def write_enabler(self) -> bytes:
        with self.path.open("rb") as handle:
            return _header(handle)[0].write_enabler

    def data_length(self) -> int:
        with self.path.open("rb") as handle:
            return _header(handle)[0].data_length

    def read(self, offset: int, length: int) -> bytes:
        """Bytes [offset, offset+length) of the share data, cut at its end."""
        with self.path.open("rb") as handle:
            header, _extra_at = _header(handle)
            if offset >= header.data_length or length <= 0:
                return b""
            handle.seek(_DATA + offset)
            return handle.read(min(length, header.data_length - offset))

    def create(self, write_enabler: bytes) -> None:
        """An empty version-2 container (nothing at `path` yet: the caller checked)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(containers.MutableHeader(write_enabler, 0).pack())
            handle.write(b"\x00" * _SLOTS_SIZE + b"\x00" * 4)

    def write(self, writes: list[tuple[int, bytes]], new_length: int | None) -> None:
        """Apply the write vectors in order, then cut the data at `new_length` if that is
        shorter (Tahoe's semantics: new-length never extends a share)."""
        with self.path.open("r+b") as handle:
            header, extra_at = _header(handle)
            old = header.data_length
            length = max([old, *(offset + len(data) for offset, data in writes)])
            if new_length is not None:
                length = min(length, new_length)
            extra = _extra_leases(handle, extra_at)
            handle.truncate(_DATA + old)  # the extra leases go back after the new end
            for offset, data in writes:
                handle.seek(_DATA + offset)  # past the end: the gap becomes a hole
                handle.write(data)
            _write_tail(handle, length, extra)
            handle.flush()
            os.fsync(handle.fileno())

    def leases(self) -> list[Lease]:
        with self.path.open("rb") as handle:
            _header_value, extra_at = _header(handle)
            handle.seek(_SLOTS_AT)
            slots = _unpack_leases(handle.read(_SLOTS_SIZE))
            return slots + _extra_leases(handle, extra_at)

    def add_or_renew_lease(self, renew: bytes, cancel: bytes, expiration: int) -> None:
        """Renew the lease with this renew secret, or add one (in a free slot, else after
        the extra leases)."""
        with self.path.open("r+b") as handle:
            header, extra_at = _header(handle)
            renew = containers.stored_secret(header.version, renew)
            cancel = containers.stored_secret(header.version, cancel)
            handle.seek(_SLOTS_AT)
            slots = handle.read(_SLOTS_SIZE)
            free = None
            for index in range(containers.MUTABLE_LEASE_SLOTS):
                raw = slots[index * _LEASE.size : (index + 1) * _LEASE.size]
                owner, _exp, stored_renew, stored_cancel, _node = _LEASE.unpack(raw)
                if owner and hmac.compare_digest(stored_renew, renew):
                    handle.seek(_SLOTS_AT + index * _LEASE.size)
                    handle.write(_pack_lease((owner, expiration, stored_renew, stored_cancel)))
                    return
                if not owner and free is None:
                    free = index
            extra = _extra_leases(handle, extra_at)
            for index, (owner, _exp, stored_renew, stored_cancel) in enumerate(extra):
                if hmac.compare_digest(stored_renew, renew):
                    extra[index] = (owner, expiration, stored_renew, stored_cancel)
                    _write_tail(handle, header.data_length, extra)
                    return
            if free is not None:
                handle.seek(_SLOTS_AT + free * _LEASE.size)
                handle.write(_pack_lease((1, expiration, renew, cancel)))
            else:
                _write_tail(handle, header.data_length, [*extra, (1, expiration, renew, cancel)])
            handle.flush()
            os.fsync(handle.fileno())
