"""Tahoe-LAFS's on-disk container for an immutable share (pure pack/unpack).

    0x00  version (4 bytes, = 1)
    0x04  data length (4 bytes, min(2**32 - 1, allocated size); informational only)
    0x08  number of leases (4 bytes)
    0x0c  share data (allocated size bytes, unwritten parts are zero)
    ...   leases, 72 bytes each: owner number (4), renew secret (32), cancel secret (32),
          expiration time (4, seconds since the epoch)

Readers find the leases from the end of the file (file size - 72 * leases), so shares over
4 GiB work although the length field cannot say how long they are.
"""

from __future__ import annotations

import struct

import attrs

HEADER = struct.Struct(">LLL")
LEASE = struct.Struct(">L32s32sL")
DATA_OFFSET = HEADER.size
LEASE_SECONDS = 31 * 24 * 60 * 60


class ContainerError(ValueError):
    """Not an immutable share container."""


@attrs.frozen
class Lease:
    owner: int
    renew_secret: bytes
    cancel_secret: bytes
    expiration: int

    def pack(self) -> bytes:
        return LEASE.pack(self.owner, self.renew_secret, self.cancel_secret,
                          self.expiration & 0xFFFFFFFF)

    @classmethod
    def unpack(cls, data: bytes) -> Lease:
        return cls(*LEASE.unpack(data))


def pack_header(allocated_size: int, lease_count: int) -> bytes:
    return HEADER.pack(1, min(2**32 - 1, allocated_size), lease_count)


@attrs.frozen
class ContainerInfo:
    lease_count: int
    data_length: int

    @property
    def lease_offset(self) -> int:
        return DATA_OFFSET + self.data_length


def parse_header(header: bytes, file_size: int) -> ContainerInfo:
    if len(header) < HEADER.size:
        raise ContainerError("too short")
    version, _length, leases = HEADER.unpack(header[: HEADER.size])
    if version != 1:
        raise ContainerError(f"unknown container version {version}")
    data_length = file_size - DATA_OFFSET - leases * LEASE.size
    if data_length < 0:
        raise ContainerError("lease count larger than the file")
    return ContainerInfo(leases, data_length)
