"""Verify one CHK share, every byte of it: the machine behind `check --verify`.

How this works: the machine asks for one region of the share at a time, in order (the
header, the UEB, the hash regions, then the blocks in reads of about `chunk` bytes), and
checks each as it is given: the header against the layout the UEB implies, the UEB against
the cap's hash, the crypttext tree against the UEB, the block tree's root against the share
hash chain and the UEB's share root, and every block against its leaf of the block tree.
Every byte of a share lies in one of these regions, so a changed byte anywhere fails one
check (the first one is named in the `ShareError`). Nothing is decoded: one share is enough
to judge that share, so a verifier reads each share exactly once.

    verifier = ShareVerifier(cap, 3)
    while (request := verifier.next_read()) is not None:
        verifier.give(read(request.offset, request.length))   # raises ShareError
"""

from __future__ import annotations

from ..crypto import merkle
from ..crypto.hashes import block_hash
from ..errors import ShareError
from ..shares.immutable import HEADER_READ_SIZE, LayoutError, ShareLayout
from .download import (
    ChkFileCap,
    ReadRequest,
    check_hash_regions,
    check_ueb_region,
    parse_checked_ueb,
)
from .params import FileLayout
from .ueb import MAX_UEB_SIZE, Ueb
from .upload import share_layout_for

# bytes of blocks asked for in one read: a verify holds two such reads per share, and
# fewer, larger requests cost the servers less (a 100 MiB file at 3-of-10: 2 MiB against
# 1 MiB, 0.93 against 0.96 s, CPU of all nodes 1.36 against 1.39 s)
CHUNK = 2 * 1024 * 1024


class ShareVerifier:
    """Reads and checks one share of a CHK file, region by region."""

    def __init__(self, cap: ChkFileCap, number: int, chunk: int = CHUNK) -> None:
        self.cap = cap
        self.number = number
        self.chunk = max(1, chunk)
        self.ueb: Ueb | None = None
        self.bytes_read = 0
        self._layout: ShareLayout | None = None
        self._block_tree: list[bytes] = []
        self._next_segment = 0
        self._pending: ReadRequest | None = None
        self._phase = "header"

    @property
    def done(self) -> bool:
        return self._phase == "done"

    def next_read(self) -> ReadRequest | None:
        """The next region to read, or None when the share has been checked whole."""
        if self._pending is not None:
            return self._pending
        lay = self._layout
        request: ReadRequest | None = None
        if self._phase == "header":
            request = ReadRequest(self.number, 0, HEADER_READ_SIZE, "header")
        elif self._phase == "ueb" and lay is not None:
            request = ReadRequest(self.number, lay.uri_extension,
                                  lay.field_size + MAX_UEB_SIZE, "ueb")
        elif self._phase == "hashes" and lay is not None:
            request = ReadRequest(self.number, lay.plaintext_hash_tree,
                                  lay.uri_extension - lay.plaintext_hash_tree, "hashes")
        elif self._phase == "blocks" and lay is not None:
            request = self._blocks_from(self._next_segment)[0]
        self._pending = request
        return request

    def following(self, request: ReadRequest) -> ReadRequest | None:
        """The read that comes after the blocks read `request` once it checks out (None
        after the last, or for any other read): asked for ahead, it arrives while
        `request` is being checked."""
        lay = self._layout
        if request.purpose != "blocks" or lay is None or self.ueb is None:
            return None
        first = (request.offset - lay.data) // max(1, self._file_layout().block_size)
        after = first + self._blocks_from(first)[1]
        if after >= self._file_layout().num_segments:
            return None
        return self._blocks_from(after)[0]

    def _blocks_from(self, segment: int) -> tuple[ReadRequest, int]:
        """The read of about `chunk` bytes of blocks from `segment` on, and how many."""
        assert self._layout is not None
        file = self._file_layout()
        count = max(1, self.chunk // max(1, file.block_size))
        count = min(count, file.num_segments - segment)
        length = sum(file.block_length(g) for g in range(segment, segment + count))
        return ReadRequest(self.number, self._layout.data + segment * file.block_size,
                           length, "blocks"), count

    def give(self, data: bytes) -> None:
        """The bytes read for the last `next_read()` (shorter where the share ended).
        Raises ShareError naming the first check that failed."""
        request, self._pending = self._pending, None
        if request is None:
            raise ValueError("give() without a read asked for")
        self.bytes_read += len(data)
        if request.purpose == "header":
            try:
                self._layout = ShareLayout.parse(data)
            except LayoutError as err:
                raise ShareError(self.number, "header", str(err)) from err
            self._phase = "ueb"
        elif request.purpose == "ueb":
            lay = self._layout
            assert lay is not None
            packed = check_ueb_region(self.cap, self.number, lay, data)
            self.ueb = parse_checked_ueb(self.cap, packed)
            if share_layout_for(self.ueb.layout) != lay:
                raise ShareError(self.number, "header", "offsets do not match the UEB")
            self._phase = "hashes"
        elif request.purpose == "hashes":
            assert self._layout is not None and self.ueb is not None
            _, self._block_tree = check_hash_regions(self.cap, self.ueb, self.number,
                                                     self._layout, data)
            self._phase = "blocks"
        else:
            self._check_blocks(request, data)

    def _file_layout(self) -> FileLayout:
        assert self.ueb is not None
        return self.ueb.layout

    def _check_blocks(self, request: ReadRequest, data: bytes) -> None:
        file = self._file_layout()
        if len(data) < request.length:
            raise ShareError(self.number, "block", f"segment {self._next_segment} truncated")
        view = memoryview(data)
        position = 0
        while position < request.length:
            segment = self._next_segment
            length = file.block_length(segment)
            leaf = self._block_tree[merkle.leaf_node(file.num_segments, segment)]
            if block_hash(view[position : position + length]) != leaf:
                raise ShareError(self.number, "block hash", f"segment {segment}")
            position += length
            self._next_segment += 1
        if self._next_segment >= file.num_segments:
            self._phase = "done"
