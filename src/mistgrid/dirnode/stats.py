"""Deep statistics of a tree, in the keys Tahoe-LAFS's deep-stats uses (pure).

Sizes of mutable files are not counted (Tahoe does not either: it would take a query per
file). `size-files-histogram` has two buckets per decade: (0,0), (1,3), (4,10), (11,31),
(32,100), (101,316), ... of literal and immutable file sizes.
"""

from __future__ import annotations

import math
from typing import Any

import attrs


def bucket(size: int) -> tuple[int, int]:
    """The histogram bucket (min, max) a size falls in."""
    if size <= 0:
        return (0, 0)
    low = 1
    k = 1
    while True:
        high = math.floor(10 ** (k / 2))
        if size <= high:
            return (low, high)
        low, k = high + 1, k + 1


@attrs.define
class DeepStats:
    immutable_files: int = 0
    mutable_files: int = 0
    literal_files: int = 0
    directories: int = 0
    unknown: int = 0
    size_immutable: int = 0
    size_literal: int = 0
    size_directories: int = 0
    largest_directory: int = 0
    largest_immutable: int = 0
    histogram: dict[tuple[int, int], int] = attrs.field(factory=dict)

    def add_directory(self, table_size: int, children: int) -> None:
        self.directories += 1
        self.size_directories += table_size
        self.largest_directory = max(self.largest_directory, children)

    def add_file(self, kind: str, size: int | None) -> None:
        """kind: CHK, LIT, SDMF or MDMF (or anything else: unknown)."""
        if kind == "CHK":
            self.immutable_files += 1
            self.size_immutable += size or 0
            self.largest_immutable = max(self.largest_immutable, size or 0)
        elif kind == "LIT":
            self.literal_files += 1
            self.size_literal += size or 0
        elif kind in ("SDMF", "MDMF"):
            self.mutable_files += 1
            return
        else:
            self.unknown += 1
            return
        span = bucket(size or 0)
        self.histogram[span] = self.histogram.get(span, 0) + 1

    @property
    def deep_size(self) -> int:
        """Directories and immutable (and literal) files: Tahoe's deep-size."""
        return self.size_immutable + self.size_literal + self.size_directories

    def to_json(self) -> dict[str, Any]:
        return {
            "api-version": 1,
            "count-immutable-files": self.immutable_files,
            "count-mutable-files": self.mutable_files,
            "count-literal-files": self.literal_files,
            "count-files": self.immutable_files + self.mutable_files + self.literal_files,
            "count-directories": self.directories,
            "count-unknown": self.unknown,
            "size-immutable-files": self.size_immutable,
            "size-literal-files": self.size_literal,
            "size-directories": self.size_directories,
            "size-files-histogram": [[low, high, count] for (low, high), count
                                     in sorted(self.histogram.items())],
            "largest-directory": self.largest_directory,
            "largest-immutable-file": self.largest_immutable,
        }
