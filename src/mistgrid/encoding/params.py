"""Encoding parameters and the per-file layout they imply.

How this works: the user picks k (needed), N (total) and a maximum segment size. For one file
the effective segment size is min(max, file size) rounded up to a multiple of k, exactly as
Tahoe-LAFS 1.20 does; that value (not the maximum) enters the convergent key and the UEB.
Each segment is split into k equal input pieces; the last ("tail") segment is zero-padded to
a multiple of k, so its blocks are shorter.
"""

from __future__ import annotations

import attrs

from ..errors import EncodingError

DEFAULT_MAX_SEGMENT_SIZE = 1024 * 1024
MAX_SHARES = 256
LIT_MAX_SIZE = 55


def div_ceil(n: int, d: int) -> int:
    return (n + d - 1) // d


def next_multiple(n: int, k: int) -> int:
    return div_ceil(n, k) * k


@attrs.frozen
class EncodingParams:
    """What the user chooses: k-of-N and the maximum segment size."""

    needed: int = 3
    total: int = 10
    max_segment_size: int = DEFAULT_MAX_SEGMENT_SIZE

    def __attrs_post_init__(self) -> None:
        if not 1 <= self.needed <= self.total <= MAX_SHARES:
            raise EncodingError(
                f"shares needed={self.needed} total={self.total}: "
                f"need 1 <= needed <= total <= {MAX_SHARES}"
            )
        if self.max_segment_size < 1:
            raise EncodingError(f"segment size {self.max_segment_size}: must be at least 1")

    def layout_for(self, size: int) -> FileLayout:
        """The layout of a file of `size` bytes (> 55; smaller files are LIT caps)."""
        if size <= LIT_MAX_SIZE:
            raise EncodingError(f"a {size}-byte file is a LIT cap, not a CHK file")
        segment_size = next_multiple(min(self.max_segment_size, size), self.needed)
        return FileLayout(size, self.needed, self.total, segment_size)


@attrs.frozen
class FileLayout:
    """Everything derived from (size, k, N, effective segment size)."""

    size: int
    needed: int
    total: int
    segment_size: int

    def __attrs_post_init__(self) -> None:
        if self.size < 1 or self.segment_size < 1 or self.segment_size % self.needed:
            raise EncodingError("inconsistent file layout")

    @property
    def num_segments(self) -> int:
        return div_ceil(self.size, self.segment_size)

    @property
    def tail_size(self) -> int:
        """Bytes of the last segment (1 .. segment_size)."""
        return self.size - (self.num_segments - 1) * self.segment_size

    @property
    def padded_tail_size(self) -> int:
        return next_multiple(self.tail_size, self.needed)

    @property
    def block_size(self) -> int:
        return self.segment_size // self.needed

    @property
    def tail_block_size(self) -> int:
        return self.padded_tail_size // self.needed

    @property
    def share_data_size(self) -> int:
        """Bytes of blocks in each share (= ceil(size / k))."""
        return (self.num_segments - 1) * self.block_size + self.tail_block_size

    def segment_length(self, segment: int) -> int:
        return self.tail_size if segment == self.num_segments - 1 else self.segment_size

    def block_length(self, segment: int) -> int:
        return self.tail_block_size if segment == self.num_segments - 1 else self.block_size
