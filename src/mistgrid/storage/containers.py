"""Tahoe-LAFS's on-disk share containers (pure pack/unpack), as Tahoe-LAFS 1.20 writes them.

Version 2 containers (what we write) store every lease secret as its BLAKE2b-256 hash, so
the store holds nothing that would let a reader renew or cancel a lease; version 1
containers (older Tahoe-LAFS) store them as they are. Both are read.

Immutable:
    0x00  version (4 bytes, 1 or 2)
    0x04  data length (4 bytes, min(2**32 - 1, allocated size); informational only)
    0x08  number of leases (4 bytes)
    0x0c  share data (allocated size bytes, unwritten parts are zero)
    ...   leases, 72 bytes each: owner number (4), renew secret (32), cancel secret (32),
          expiration time (4, seconds since the epoch)

Readers find the leases from the end of the file (file size - 72 * leases), so shares over
4 GiB work although the length field cannot say how long they are.
"""

from __future__ import annotations

import hashlib
import struct

import attrs

from ..crypto.hashes import tagged_hash

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


IMMUTABLE_VERSION = 2


def stored_secret(version: int, secret: bytes) -> bytes:
    """A lease secret as a container of `version` keeps it."""
    return hashlib.blake2b(secret, digest_size=32).digest() if version >= 2 else secret


def pack_header(allocated_size: int, lease_count: int) -> bytes:
    return HEADER.pack(IMMUTABLE_VERSION, min(2**32 - 1, allocated_size), lease_count)


@attrs.frozen
class ContainerInfo:
    lease_count: int
    data_length: int
    version: int = IMMUTABLE_VERSION

    @property
    def lease_offset(self) -> int:
        return DATA_OFFSET + self.data_length


def parse_header(header: bytes, file_size: int) -> ContainerInfo:
    if len(header) < HEADER.size:
        raise ContainerError("too short")
    version, _length, leases = HEADER.unpack(header[: HEADER.size])
    if version not in (1, 2):
        raise ContainerError(f"unknown container version {version}")
    data_length = file_size - DATA_OFFSET - leases * LEASE.size
    if data_length < 0:
        raise ContainerError("lease count larger than the file")
    return ContainerInfo(leases, data_length, version)


# ---- mutable ----
#
#    0   32  magic ("Tahoe mutable container v<N>\n" and 5 more bytes)
#   32   20  write enabler's node id (zeros: GBS has no node ids)
#   52   32  write enabler
#   84    8  data length
#   92    8  offset of the extra-lease count (just after the data)
#  100  368  four leases of 92 bytes: owner (4), expiration (4), renew secret (32),
#            cancel secret (32), node id (20); owner 0 marks an empty slot
#  468       data, then the extra-lease count (4) and extra leases

MUTABLE_MAGIC_V1 = b"Tahoe mutable container v1\n\x75\x09\x44\x03\x8e"
_V2_TEXT = b"Tahoe mutable container v2\n"
MUTABLE_MAGIC_V2 = _V2_TEXT + tagged_hash(b"allmydata_mutable_container_header", _V2_TEXT, 5)
MUTABLE_MAGIC = MUTABLE_MAGIC_V2
MUTABLE_HEADER = struct.Struct(">32s20s32sQQ")
MUTABLE_LEASE = struct.Struct(">LL32s32s20s")
MUTABLE_LEASE_SLOTS = 4
MUTABLE_DATA_OFFSET = MUTABLE_HEADER.size + MUTABLE_LEASE_SLOTS * MUTABLE_LEASE.size


@attrs.frozen
class MutableHeader:
    write_enabler: bytes
    data_length: int
    version: int = 2

    def pack(self) -> bytes:
        return MUTABLE_HEADER.pack(MUTABLE_MAGIC, b"\x00" * 20, self.write_enabler,
                                   self.data_length, MUTABLE_DATA_OFFSET + self.data_length)


def parse_mutable_header(data: bytes) -> MutableHeader:
    if len(data) < MUTABLE_HEADER.size:
        raise ContainerError("too short for a mutable container")
    magic, _nodeid, enabler, length, _extra = MUTABLE_HEADER.unpack(data[:MUTABLE_HEADER.size])
    if magic not in (MUTABLE_MAGIC_V1, MUTABLE_MAGIC_V2):
        raise ContainerError("not a mutable container")
    return MutableHeader(enabler, length, 1 if magic == MUTABLE_MAGIC_V1 else 2)


def is_mutable(first_bytes: bytes) -> bool:
    return first_bytes[:32] in (MUTABLE_MAGIC_V1, MUTABLE_MAGIC_V2)
