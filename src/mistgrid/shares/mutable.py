"""Mutable share layouts, SDMF (version 0) and MDMF (version 1), as Tahoe-LAFS writes them.

How this works: a share starts with a signed prefix (version, sequence number, root of the
share hash tree, SDMF's IV, k, N, segment size, data length) followed by a table of
offsets. The signature covers the prefix; the root hash covers every share's block hash tree
root; each block hash tree covers that share's blocks (MDMF: salt + block per segment). The
verification key's hash is in the cap. So a share is checked in that order: key against
the cap, signature against the key, share hash chain against the signed root, blocks against
the block hash tree. Pure: bytes in, values out; `ShareError` for anything malformed.

SDMF:  prefix(+IV) | offsets(4 L, 2 Q) | verification key | signature | share hash chain |
       block hash tree | share data (one block) | encrypted private key
MDMF:  prefix | offsets(8 Q) | encrypted private key | share hash chain | signature |
       verification key | (room up to a fixed start) | share data: per segment salt+block |
       block hash tree
"""

from __future__ import annotations

import struct

import attrs

from ..caps.mutable import MutableFormat
from ..crypto import merkle
from ..crypto.hashes import HASH_SIZE, block_hash
from ..encoding.params import div_ceil, next_multiple
from ..errors import ShareError

SALT_SIZE = 16
SDMF_PREFIX = struct.Struct(">BQ32s16sBBQQ")
SDMF_OFFSETS = struct.Struct(">LLLLQQ")
SDMF_HEADER_SIZE = SDMF_PREFIX.size + SDMF_OFFSETS.size  # 107
MDMF_PREFIX = struct.Struct(">BQ32sBBQQ")
MDMF_OFFSETS = struct.Struct(">QQQQQQQQ")
MDMF_HEADER_SIZE = MDMF_PREFIX.size + MDMF_OFFSETS.size  # 123
SDMF_CHECKSTRING = struct.Struct(">BQ32s16s")
MDMF_CHECKSTRING = struct.Struct(">BQ32s")
CHAIN_ENTRY = struct.Struct(">H32s")
# The room MDMF leaves before the share data (its blocks' place is fixed in advance).
MDMF_PRIVATE_KEY_ROOM = 1220
MDMF_SIGNATURE_ROOM = 260
MDMF_VERIFICATION_KEY_ROOM = 292
MDMF_CHAIN_ROOM = CHAIN_ENTRY.size * 8
MDMF_SHARE_DATA_OFFSET = (MDMF_HEADER_SIZE + MDMF_PRIVATE_KEY_ROOM + MDMF_SIGNATURE_ROOM
                          + MDMF_VERIFICATION_KEY_ROOM + MDMF_CHAIN_ROOM)
DEFAULT_MDMF_SEGMENT_SIZE = 128 * 1024
# Bytes that hold every header field of either format (the checkstring, the signed prefix
# and the offsets), so a first read of this many bytes finds out the rest.
HEADER_READ_SIZE = MDMF_HEADER_SIZE
SDMF_MAX_SIZE = 2 ** 32 - 1  # its offsets are 32-bit


@attrs.frozen
class Prefix:
    """The signed fields of one version. `salt` is SDMF's IV (b"" for MDMF)."""

    format: MutableFormat
    seqnum: int
    root_hash: bytes
    salt: bytes
    needed: int
    total: int
    segment_size: int
    data_length: int

    def pack(self) -> bytes:
        """The bytes the signature covers."""
        if self.format is MutableFormat.SDMF:
            return SDMF_PREFIX.pack(0, self.seqnum, self.root_hash, self.salt, self.needed,
                                    self.total, self.segment_size, self.data_length)
        return MDMF_PREFIX.pack(1, self.seqnum, self.root_hash, self.needed, self.total,
                                self.segment_size, self.data_length)

    def checkstring(self) -> bytes:
        """What a test-and-set write compares: version, seqnum, root (and SDMF's IV)."""
        if self.format is MutableFormat.SDMF:
            return SDMF_CHECKSTRING.pack(0, self.seqnum, self.root_hash, self.salt)
        return MDMF_CHECKSTRING.pack(1, self.seqnum, self.root_hash)

    @property
    def version_id(self) -> tuple[int, bytes]:
        """Tells versions apart: (seqnum, root hash); the root covers every other field."""
        return (self.seqnum, self.root_hash)

    @property
    def geometry(self) -> Geometry:
        return Geometry(self.format, self.needed, self.total, self.segment_size,
                        self.data_length)


@attrs.frozen
class Geometry:
    """Segments and blocks of one version."""

    format: MutableFormat
    needed: int
    total: int
    segment_size: int
    data_length: int

    @classmethod
    def for_new(cls, fmt: MutableFormat, needed: int, total: int, data_length: int,
                max_segment_size: int = DEFAULT_MDMF_SEGMENT_SIZE) -> Geometry:
        """As Tahoe chooses: SDMF is one segment; MDMF segments of 128 KiB (both rounded
        up to a multiple of k)."""
        size = data_length if fmt is MutableFormat.SDMF else max_segment_size
        return cls(fmt, needed, total, next_multiple(size, needed), data_length)

    @property
    def num_segments(self) -> int:
        if self.segment_size == 0:
            return 0
        return div_ceil(self.data_length, self.segment_size)

    @property
    def block_size(self) -> int:
        return self.segment_size // self.needed

    def segment_length(self, segment: int) -> int:
        """Plaintext bytes in a segment."""
        return min(self.segment_size, self.data_length - segment * self.segment_size)

    def block_length(self, segment: int) -> int:
        """Bytes in each share's block of a segment (the tail is padded to a multiple
        of k)."""
        return next_multiple(self.segment_length(segment), self.needed) // self.needed

    def share_data_size(self) -> int:
        """Bytes of (salts and) blocks in each share. In constant time: a header is
        parsed before anything about it is checked, and its segment count may be huge."""
        count = self.num_segments
        if count == 0:
            return 0
        salts = SALT_SIZE if self.format is MutableFormat.MDMF else 0
        # every segment but the last is whole, so their blocks are all as long
        return count * salts + (count - 1) * self.block_length(0) + self.block_length(count - 1)

    def block_offset(self, segment: int) -> int:
        """Where a segment's (salt and) block starts within the share data."""
        if self.format is MutableFormat.SDMF:
            return 0
        return segment * (SALT_SIZE + self.block_size)

    def check(self) -> None:
        """ShareError(-1, ...) unless the fields describe a possible version."""
        if not 1 <= self.needed <= self.total <= 256:
            raise ShareError(-1, "encoding parameters", "need 1 <= k <= N <= 256")
        if self.segment_size % self.needed:
            raise ShareError(-1, "encoding parameters", "segment size not a multiple of k")
        if self.data_length and not self.segment_size:
            raise ShareError(-1, "encoding parameters", "data without segments")
        if self.format is MutableFormat.SDMF and self.num_segments > 1:
            raise ShareError(-1, "encoding parameters", "SDMF has one segment")
        if self.num_segments > 2 ** 32:
            raise ShareError(-1, "encoding parameters", "too many segments")


@attrs.frozen
class Offsets:
    """Where each part of a share starts (absolute, within the share)."""

    verification_key: int
    verification_key_end: int
    signature: int
    share_hash_chain: int
    block_hash_tree: int
    share_data: int
    private_key: int
    private_key_end: int
    end: int


@attrs.frozen
class Header:
    prefix: Prefix
    offsets: Offsets


def parse_header(data: bytes, number: int = -1) -> Header:
    """The prefix and offsets from a share's first `HEADER_READ_SIZE` bytes (or more)."""
    if not data:
        raise ShareError(number, "header", "empty share")
    version = data[0]
    try:
        if version == 0:
            (_, seqnum, root, salt, k, n, segsize, length) = SDMF_PREFIX.unpack_from(data)
            sig, chain, bht, shdata, privkey, end = SDMF_OFFSETS.unpack_from(
                data, SDMF_PREFIX.size)
            prefix = Prefix(MutableFormat.SDMF, seqnum, root, salt, k, n, segsize, length)
            offsets = Offsets(SDMF_HEADER_SIZE, sig, sig, chain, bht, shdata, privkey, end,
                              end)
        elif version == 1:
            (_, seqnum, root, k, n, segsize, length) = MDMF_PREFIX.unpack_from(data)
            privkey, chain, sig, vk, vk_end, shdata, bht, end = MDMF_OFFSETS.unpack_from(
                data, MDMF_PREFIX.size)
            prefix = Prefix(MutableFormat.MDMF, seqnum, root, b"", k, n, segsize, length)
            offsets = Offsets(vk, vk_end, sig, chain, bht, shdata, privkey, chain, end)
        else:
            raise ShareError(number, "header", f"unknown mutable share version {version}")
    except struct.error as err:
        raise ShareError(number, "header", "truncated header") from err
    try:
        prefix.geometry.check()
    except ShareError as err:
        raise ShareError(number, err.check, err.detail) from None
    _check_offsets(prefix, offsets, number)
    return Header(prefix, offsets)


def _check_offsets(prefix: Prefix, o: Offsets, number: int) -> None:
    geometry = prefix.geometry
    spans = [(o.verification_key, o.verification_key_end), (o.signature, o.share_hash_chain
             if prefix.format is MutableFormat.SDMF else o.verification_key),
             (o.block_hash_tree, o.block_hash_tree + HASH_SIZE * merkle.node_count(
                 geometry.num_segments)),
             (o.share_data, o.share_data + geometry.share_data_size()),
             (o.private_key, o.private_key_end)]
    header = SDMF_HEADER_SIZE if prefix.format is MutableFormat.SDMF else MDMF_HEADER_SIZE
    for start, stop in spans:
        if not header <= start <= stop <= o.end:
            raise ShareError(number, "offsets", "a part lies outside the share")
    if o.end > 2 ** 40:
        raise ShareError(number, "offsets", "share too large")


@attrs.frozen
class Share:
    """One whole share, parsed (nothing verified yet: see `verify_share`)."""

    number: int
    prefix: Prefix
    verification_key: bytes
    signature: bytes
    share_hash_chain: dict[int, bytes]
    block_hash_tree: list[bytes]
    share_data: bytes
    encrypted_private_key: bytes

    def block(self, segment: int) -> tuple[bytes, bytes]:
        """(salt, block) of a segment (SDMF: the IV)."""
        g = self.prefix.geometry
        start, length = g.block_offset(segment), g.block_length(segment)
        if self.prefix.format is MutableFormat.SDMF:
            return self.prefix.salt, self.share_data[start:start + length]
        salt = self.share_data[start:start + SALT_SIZE]
        return salt, self.share_data[start + SALT_SIZE:start + SALT_SIZE + length]

    def pack(self) -> bytes:
        return pack_share(self)


def pack_chain(chain: dict[int, bytes]) -> bytes:
    return b"".join(CHAIN_ENTRY.pack(i, chain[i]) for i in sorted(chain))


def parse_chain(data: bytes, number: int) -> dict[int, bytes]:
    if len(data) % CHAIN_ENTRY.size:
        raise ShareError(number, "share hash chain", "bad length")
    return {i: h for i, h in CHAIN_ENTRY.iter_unpack(data)}


def pack_share(share: Share) -> bytes:
    """The share's bytes, laid out exactly as Tahoe-LAFS 1.20 lays them out."""
    p = share.prefix
    chain = pack_chain(share.share_hash_chain)
    tree = b"".join(share.block_hash_tree)
    if p.format is MutableFormat.SDMF:
        sig = SDMF_HEADER_SIZE + len(share.verification_key)
        chain_at = sig + len(share.signature)
        bht = chain_at + len(chain)
        data_at = bht + len(tree)
        key_at = data_at + len(share.share_data)
        end = key_at + len(share.encrypted_private_key)
        return b"".join([p.pack(), SDMF_OFFSETS.pack(sig, chain_at, bht, data_at, key_at, end),
                         share.verification_key, share.signature, chain, tree,
                         share.share_data, share.encrypted_private_key])
    offsets = mdmf_offsets(p.geometry, len(share.encrypted_private_key), len(chain),
                           len(share.signature), len(share.verification_key))
    head = mdmf_head(p, offsets, share.encrypted_private_key, chain, share.signature,
                     share.verification_key)
    return b"".join([head, share.share_data, tree])


def mdmf_offsets(geometry: Geometry, key_size: int, chain_size: int, signature_size: int,
                 verification_key_size: int) -> Offsets:
    """Where each part of an MDMF share goes: known before any block is encoded (the
    blocks start at a fixed place, so they can be written first and the rest after)."""
    key_at = MDMF_HEADER_SIZE
    chain_at = key_at + key_size
    sig = chain_at + chain_size
    vk = sig + signature_size
    vk_end = vk + verification_key_size
    data_at = max(MDMF_SHARE_DATA_OFFSET, vk_end)
    bht = data_at + geometry.share_data_size()
    end = bht + HASH_SIZE * merkle.node_count(geometry.num_segments)
    return Offsets(vk, vk_end, sig, chain_at, bht, data_at, key_at, chain_at, end)


def mdmf_head(prefix: Prefix, o: Offsets, encrypted_key: bytes, chain: bytes,
              signature: bytes, verification_key: bytes) -> bytes:
    """Everything of an MDMF share before its blocks (padded up to them)."""
    head = b"".join([prefix.pack(), MDMF_OFFSETS.pack(
        o.private_key, o.share_hash_chain, o.signature, o.verification_key,
        o.verification_key_end, o.share_data, o.block_hash_tree, o.end),
        encrypted_key, chain, signature, verification_key])
    return head + b"\x00" * (o.share_data - len(head))


def parse_share(data: bytes, number: int) -> Share:
    """A whole share from its bytes (a share longer than its end offset is fine: a rewrite
    of a smaller version leaves old bytes behind)."""
    header = parse_header(data, number)
    o, p = header.offsets, header.prefix
    if len(data) < o.end:
        raise ShareError(number, "length", "the share is shorter than its offsets say")
    if p.format is MutableFormat.SDMF:
        signature = data[o.signature:o.share_hash_chain]
    else:
        signature = data[o.signature:o.verification_key]
    tree_size = HASH_SIZE * merkle.node_count(p.geometry.num_segments)
    return Share(
        number, p, data[o.verification_key:o.verification_key_end], signature,
        parse_chain(data[o.share_hash_chain:_chain_end(header)], number),
        merkle.split_hashes(data[o.block_hash_tree:o.block_hash_tree + tree_size]),
        data[o.share_data:o.share_data + p.geometry.share_data_size()],
        data[o.private_key:o.private_key_end])


def _chain_end(header: Header) -> int:
    o = header.offsets
    return o.block_hash_tree if header.prefix.format is MutableFormat.SDMF else o.signature


def block_leaf(fmt: MutableFormat, salt: bytes, block: bytes) -> bytes:
    """A block's leaf in its share's block hash tree (MDMF hashes the salt with it)."""
    return block_hash(block if fmt is MutableFormat.SDMF else salt + block)
