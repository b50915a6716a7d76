"""The CHK upload machine: feed plaintext in, get share writes and finally the cap out.

How this works: `convergent_key` (or a random key) is decided first; it needs one pass over
the plaintext. `ChkEncoder` then takes the plaintext in pieces of any size through `feed`
and returns `ShareWrite`s (share number, offset, bytes) for the shell to perform in any
order; it holds at most one segment. Per segment it encrypts (AES-CTR), hashes the
ciphertext, cuts it into k pieces (zero-padding the tail), erasure-codes them into N blocks
with zfec and hashes each block. `finish` returns the hash trees, the share hash chains and
the UEB for every share, and the cap.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable

import attrs
import zfec

from ..caps.immutable import ChkCap
from ..crypto import merkle
from ..crypto.aes import CtrStream
from ..crypto.hashes import (
    KEY_SIZE,
    block_hash,
    convergence_hasher,
    crypttext_hasher,
    crypttext_segment_hash,
    ueb_hash,
)
from ..errors import EncodingError
from ..shares.immutable import ShareLayout, pack_share_hashes
from .params import EncodingParams, FileLayout
from .ueb import Ueb


@attrs.frozen
class ShareWrite:
    """Write `data` at `offset` of share `share_number`."""

    share_number: int
    offset: int
    data: bytes


class ConvergentKeyHasher:
    """Derives the convergent key: feed the whole plaintext, then call `key`."""

    def __init__(self, convergence: bytes, params: EncodingParams, size: int) -> None:
        if len(convergence) != KEY_SIZE:
            raise EncodingError(f"convergence secret must be {KEY_SIZE} bytes")
        layout = params.layout_for(size)
        self._hasher = convergence_hasher(layout.needed, layout.total, layout.segment_size,
                                          convergence)

    def update(self, data: bytes | memoryview) -> None:
        self._hasher.update(data)

    def key(self) -> bytes:
        return self._hasher.digest()


def convergent_key(convergence: bytes, params: EncodingParams, size: int,
                   chunks: Iterable[bytes]) -> bytes:
    """The convergent AES key of a plaintext given as chunks."""
    hasher = ConvergentKeyHasher(convergence, params, size)
    for chunk in chunks:
        hasher.update(chunk)
    return hasher.key()


def random_key() -> bytes:
    return secrets.token_bytes(KEY_SIZE)


def share_hash_count(total: int) -> int:
    """How many (index, hash) pairs each share's hash chain carries."""
    return len(merkle.needed_nodes(total, 0, include_leaf=True))


def share_layout_for(file_layout: FileLayout) -> ShareLayout:
    return ShareLayout.for_share(file_layout.block_size, file_layout.share_data_size,
                                 file_layout.num_segments, share_hash_count(file_layout.total))


class ChkEncoder:
    """Feed/finish machine turning one plaintext into N shares and a CHK cap."""

    def __init__(self, key: bytes, size: int, params: EncodingParams) -> None:
        if len(key) != KEY_SIZE:
            raise EncodingError(f"key must be {KEY_SIZE} bytes")
        self.key = key
        self.layout = params.layout_for(size)
        self.share_layout = share_layout_for(self.layout)
        self._cipher = CtrStream(key)
        self._zfec = zfec.Encoder(self.layout.needed, self.layout.total)
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._fed = 0
        self._segment = 0
        self._crypttext_hasher = crypttext_hasher()
        self._segment_hashes: list[bytes] = []
        self._block_hashes: list[list[bytes]] = [[] for _ in range(self.layout.total)]
        self._started = False

    def _header_writes(self) -> list[ShareWrite]:
        header = self.share_layout.header()
        return [ShareWrite(n, 0, header) for n in range(self.layout.total)]

    def feed(self, data: bytes) -> list[ShareWrite]:
        """Take more plaintext; return the writes now ready."""
        if self._fed + len(data) > self.layout.size:
            raise EncodingError(f"more plaintext than the declared {self.layout.size} bytes")
        writes: list[ShareWrite] = []
        if not self._started:
            self._started = True
            writes.extend(self._header_writes())
        self._fed += len(data)
        view = memoryview(data)
        while view:
            want = self.layout.segment_length(self._segment) - self._pending_size
            piece = view[:want]
            view = view[want:]
            self._pending.append(bytes(piece))
            self._pending_size += len(piece)
            if self._pending_size == self.layout.segment_length(self._segment):
                segment = b"".join(self._pending)
                self._pending, self._pending_size = [], 0
                writes.extend(self._encode_segment(segment))
        return writes

    def _encode_segment(self, plaintext: bytes) -> list[ShareWrite]:
        lay = self.layout
        crypttext = self._cipher.process(plaintext)
        self._segment_hashes.append(crypttext_segment_hash(crypttext))
        self._crypttext_hasher.update(crypttext)
        last = self._segment == lay.num_segments - 1
        piece_size = lay.tail_block_size if last else lay.block_size
        if last and len(crypttext) < lay.padded_tail_size:
            crypttext += b"\x00" * (lay.padded_tail_size - len(crypttext))
        pieces = [crypttext[i * piece_size : (i + 1) * piece_size] for i in range(lay.needed)]
        blocks = self._zfec.encode(pieces)
        offset = self.share_layout.data + self._segment * lay.block_size
        writes = []
        for number, block in enumerate(blocks):
            self._block_hashes[number].append(block_hash(block))
            writes.append(ShareWrite(number, offset, bytes(block)))
        self._segment += 1
        return writes

    def finish(self) -> tuple[list[ShareWrite], ChkCap]:
        """After all plaintext: the remaining writes for every share, and the cap."""
        lay, share_lay = self.layout, self.share_layout
        if self._fed != lay.size:
            raise EncodingError(f"got {self._fed} of the declared {lay.size} bytes")
        writes = [] if self._started else self._header_writes()
        crypttext_tree = merkle.build_tree(self._segment_hashes)
        block_trees = [merkle.build_tree(leaves) for leaves in self._block_hashes]
        share_tree = merkle.build_tree([tree[0] for tree in block_trees])
        ueb = Ueb(lay, self._crypttext_hasher.digest(), crypttext_tree[0], share_tree[0])
        packed_ueb = ueb.pack()
        unused = b"\x00" * share_lay.tree_size
        common = unused + merkle.join_hashes(crypttext_tree)
        for number, tree in enumerate(block_trees):
            chain = [(i, share_tree[i]) for i in merkle.needed_nodes(lay.total, number)]
            tail = merkle.join_hashes(tree) + pack_share_hashes(chain) + share_lay.pack_ueb(
                packed_ueb)
            writes.append(ShareWrite(number, share_lay.plaintext_hash_tree, common + tail))
        cap = ChkCap(self.key, ueb_hash(packed_ueb), lay.needed, lay.total, lay.size)
        return writes, cap
