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

import collections
import secrets
from collections.abc import Iterable, Mapping
from concurrent.futures import Executor, Future

import attrs
import zfec

from ..caps.immutable import ChkCap, ChkVerifierCap
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
        if len(convergence) < KEY_SIZE:  # Tahoe-LAFS writes 32 bytes; any length works
            raise EncodingError(f"convergence secret must be at least {KEY_SIZE} bytes")
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


@attrs.frozen
class EncodedSegment:
    """One segment, encrypted and erasure-coded, with its hashes."""

    number: int
    crypttext: bytes
    crypttext_hash: bytes
    blocks: list[bytes]
    block_hashes: list[bytes]


def encode_segment(key: bytes | None, layout: FileLayout, number: int,
                   plaintext: bytes, shares: tuple[int, ...] | None = None) -> EncodedSegment:
    """Encrypt, hash and erasure-code one segment (`key` None: it is ciphertext already);
    the blocks of `shares` only (all N by default), in that order. Pure and thread-safe."""
    crypttext = plaintext if key is None else \
        CtrStream(key, number * layout.segment_size).process(plaintext)
    last = number == layout.num_segments - 1
    piece_size = layout.tail_block_size if last else layout.block_size
    padded = crypttext
    if last and len(crypttext) < layout.padded_tail_size:
        padded += b"\x00" * (layout.padded_tail_size - len(crypttext))
    view = memoryview(padded)
    pieces = [view[i * piece_size : (i + 1) * piece_size] for i in range(layout.needed)]
    encoder = zfec.Encoder(layout.needed, layout.total)
    coded = encoder.encode(pieces) if shares is None else encoder.encode(pieces, list(shares))
    blocks = [bytes(b) for b in coded]
    return EncodedSegment(number, crypttext, crypttext_segment_hash(crypttext), blocks,
                          [block_hash(b) for b in blocks])


class ChkEncoder:
    """Feed/finish machine turning one plaintext into N shares and a CHK cap.

    With an `executor`, up to `depth` segments encode in parallel; the writes still come
    out in segment order. The caller owns the executor. With `key` None it is fed the
    ciphertext itself (a repair from the verify cap, which cannot decrypt) and gives the
    verify cap (`finish_verifier`): the same ciphertext and parameters give the same shares.

    A repair needs only the shares it puts back: given `roots` (share number -> the root
    of that share's block hash tree, as a server holding it says), only the other shares
    are encoded, hashed and written, and the share hash tree is built from both. A wrong
    root gives another UEB, so another cap: the caller compares caps before the last
    writes (which complete the shares) and knows.
    """

    def __init__(self, key: bytes | None, size: int, params: EncodingParams,
                 executor: Executor | None = None, depth: int = 4,
                 roots: Mapping[int, bytes] | None = None) -> None:
        if key is not None and len(key) != KEY_SIZE:
            raise EncodingError(f"key must be {KEY_SIZE} bytes")
        self._roots = dict(roots or {})
        self.shares = tuple(n for n in range(params.total) if n not in self._roots)
        self.key = key
        self.layout = params.layout_for(size)
        self.share_layout = share_layout_for(self.layout)
        self._executor = executor
        self._depth = max(1, depth)
        self._jobs: collections.deque[Future[EncodedSegment]] = collections.deque()
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._fed = 0
        self._segment = 0
        self._crypttext_hasher = crypttext_hasher()
        self._segment_hashes: list[bytes] = []
        self._block_hashes: dict[int, list[bytes]] = {n: [] for n in self.shares}
        self._started = False

    @property
    def share_size(self) -> int:
        """Bytes in each share, known before encoding (a storage server's allocated size)."""
        placeholder = Ueb(self.layout, bytes(32), bytes(32), bytes(32)).pack()
        return self.share_layout.uri_extension + self.share_layout.field_size + len(placeholder)

    def _header_writes(self) -> list[ShareWrite]:
        header = self.share_layout.header()
        return [ShareWrite(n, 0, header) for n in self.shares]

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
                self._submit(b"".join(self._pending))
                self._pending, self._pending_size = [], 0
                while len(self._jobs) > self._depth:
                    writes.extend(self._collect())
        while self._jobs and self._jobs[0].done():
            writes.extend(self._collect())
        return writes

    def _submit(self, plaintext: bytes) -> None:
        args = (self.key, self.layout, self._segment, plaintext,
                None if len(self.shares) == self.layout.total else self.shares)
        if self._executor is None:
            job: Future[EncodedSegment] = Future()
            job.set_result(encode_segment(*args))
        else:
            job = self._executor.submit(encode_segment, *args)
        self._jobs.append(job)
        self._segment += 1

    def _collect(self) -> list[ShareWrite]:
        """Take the oldest segment's result (waiting for it) and turn it into writes."""
        encoded = self._jobs.popleft().result()
        self._crypttext_hasher.update(encoded.crypttext)
        self._segment_hashes.append(encoded.crypttext_hash)
        offset = self.share_layout.data + encoded.number * self.layout.block_size
        writes = []
        for number, block, hashed in zip(self.shares, encoded.blocks, encoded.block_hashes,
                                         strict=True):
            self._block_hashes[number].append(hashed)
            writes.append(ShareWrite(number, offset, block))
        return writes

    def finish(self) -> tuple[list[ShareWrite], ChkCap]:
        """After all plaintext: the remaining writes for every share, and the cap."""
        if self.key is None:
            raise EncodingError("fed ciphertext: only the verify cap is known")
        writes, packed_ueb = self._finish()
        lay = self.layout
        return writes, ChkCap(self.key, ueb_hash(packed_ueb), lay.needed, lay.total, lay.size)

    def finish_verifier(self, storage_index: bytes) -> tuple[list[ShareWrite], ChkVerifierCap]:
        """As `finish`, giving the verify cap (of the file at `storage_index`)."""
        writes, packed_ueb = self._finish()
        lay = self.layout
        return writes, ChkVerifierCap(storage_index, ueb_hash(packed_ueb), lay.needed,
                                      lay.total, lay.size)

    def _finish(self) -> tuple[list[ShareWrite], bytes]:
        lay, share_lay = self.layout, self.share_layout
        if self._fed != lay.size:
            raise EncodingError(f"got {self._fed} of the declared {lay.size} bytes")
        writes = [] if self._started else self._header_writes()
        while self._jobs:
            writes.extend(self._collect())
        crypttext_tree = merkle.build_tree(self._segment_hashes)
        block_trees = {n: merkle.build_tree(leaves) for n, leaves in self._block_hashes.items()}
        share_tree = merkle.build_tree([block_trees[n][0] if n in block_trees else self._roots[n]
                                        for n in range(lay.total)])
        ueb = Ueb(lay, self._crypttext_hasher.digest(), crypttext_tree[0], share_tree[0])
        packed_ueb = ueb.pack()
        unused = b"\x00" * share_lay.tree_size
        common = unused + merkle.join_hashes(crypttext_tree)
        for number, tree in block_trees.items():
            chain = [(i, share_tree[i]) for i in merkle.needed_nodes(lay.total, number)]
            tail = merkle.join_hashes(tree) + pack_share_hashes(chain) + share_lay.pack_ueb(
                packed_ueb)
            writes.append(ShareWrite(number, share_lay.plaintext_hash_tree, common + tail))
        return writes, packed_ueb
