"""The immutable share layout: what a client writes into one share (a "bucket").

How this works: a share begins with a header of offsets, then the regions below, in order.
Version 1 uses 4-byte fields (header 0x24 bytes); version 2 uses 8-byte fields after a 4-byte
version (header 0x44 bytes) and is chosen only when a version-1 field would overflow, as
Tahoe-LAFS does.

    header   version, block size, share data size, then the offset of each region
    data     the blocks, one per segment (the last may be shorter)
    (unused) space for a plaintext hash tree, kept for compatibility, left zero
    crypttext hash tree   every node, root first (same in every share)
    block hash tree       every node, root first (this share's blocks)
    share hashes          (2-byte node index, 32-byte hash) pairs proving this share's
                          block-tree root against the UEB's share root hash
    UEB                   length (4 or 8 bytes) then the serialized UEB
"""

from __future__ import annotations

import struct

import attrs

from ..crypto import merkle
from ..crypto.hashes import HASH_SIZE

SHARE_HASH_ENTRY = 2 + HASH_SIZE
HEADER_READ_SIZE = 0x44  # enough for either version's header
_V1 = struct.Struct(">LLLLLLLLL")
_V2 = struct.Struct(">LQQQQQQQQ")


class LayoutError(ValueError):
    """A share header that is impossible or inconsistent."""


@attrs.frozen
class ShareLayout:
    """Region offsets inside one immutable share."""

    version: int
    block_size: int
    data_size: int
    data: int
    plaintext_hash_tree: int
    crypttext_hash_tree: int
    block_hashes: int
    share_hashes: int
    uri_extension: int

    @property
    def field_size(self) -> int:
        return 4 if self.version == 1 else 8

    @property
    def header_size(self) -> int:
        return _V1.size if self.version == 1 else _V2.size

    @property
    def tree_size(self) -> int:
        return self.block_hashes - self.crypttext_hash_tree

    @property
    def share_hashes_size(self) -> int:
        return self.uri_extension - self.share_hashes

    def header(self) -> bytes:
        packer = _V1 if self.version == 1 else _V2
        return packer.pack(self.version, self.block_size, self.data_size, self.data,
                           self.plaintext_hash_tree, self.crypttext_hash_tree,
                           self.block_hashes, self.share_hashes, self.uri_extension)

    def pack_ueb(self, ueb: bytes) -> bytes:
        return (len(ueb)).to_bytes(self.field_size, "big") + ueb

    @classmethod
    def for_share(cls, block_size: int, data_size: int, num_segments: int,
                  num_share_hashes: int) -> ShareLayout:
        """The layout Tahoe-LAFS would write: version 1 where it fits, else version 2."""
        layout = cls._build(1, block_size, data_size, num_segments, num_share_hashes)
        if max(block_size, data_size, layout.uri_extension) >= 2**32:
            layout = cls._build(2, block_size, data_size, num_segments, num_share_hashes)
        return layout

    @classmethod
    def _build(cls, version: int, block_size: int, data_size: int, num_segments: int,
               num_share_hashes: int) -> ShareLayout:
        tree = merkle.node_count(num_segments) * HASH_SIZE
        data = _V1.size if version == 1 else _V2.size
        plaintext = data + data_size
        crypttext = plaintext + tree
        blocks = crypttext + tree
        shares = blocks + tree
        ueb = shares + num_share_hashes * SHARE_HASH_ENTRY
        return cls(version, block_size, data_size, data, plaintext, crypttext, blocks, shares,
                   ueb)

    @classmethod
    def parse(cls, header: bytes) -> ShareLayout:
        """Read a header (at least its version's size); raises LayoutError."""
        if len(header) < 4:
            raise LayoutError("share too short for a header")
        version = int.from_bytes(header[:4], "big")
        if version not in (1, 2):
            raise LayoutError(f"unknown share version {version}")
        packer = _V1 if version == 1 else _V2
        if len(header) < packer.size:
            raise LayoutError("share too short for a header")
        fields = packer.unpack(header[: packer.size])
        layout = cls(*fields)
        order = [layout.data, layout.plaintext_hash_tree, layout.crypttext_hash_tree,
                 layout.block_hashes, layout.share_hashes, layout.uri_extension]
        if layout.data != packer.size or order != sorted(order):
            raise LayoutError("share offsets out of order")
        return layout


def pack_share_hashes(pairs: list[tuple[int, bytes]]) -> bytes:
    return b"".join(struct.pack(">H", index) + value for index, value in pairs)


def unpack_share_hashes(data: bytes) -> dict[int, bytes]:
    """Split the share-hash region; raises LayoutError on a malformed one."""
    if len(data) % SHARE_HASH_ENTRY:
        raise LayoutError("share hash region has a partial entry")
    result: dict[int, bytes] = {}
    for pos in range(0, len(data), SHARE_HASH_ENTRY):
        index = int.from_bytes(data[pos : pos + 2], "big")
        if index in result:
            raise LayoutError("share hash listed twice")
        result[index] = data[pos + 2 : pos + SHARE_HASH_ENTRY]
    return result
