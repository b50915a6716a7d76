"""The URI extension block (UEB): the per-file values every share carries.

How this works: the UEB is a dictionary serialized with keys sorted, each entry written as
`key:` followed by the netstring of its value (integers in ASCII decimal). Its tagged hash is
in the cap, so a UEB read from any share is checked against the cap before anything in it is
believed. `parse_ueb` accepts only what `pack` could have produced for a consistent file.
"""

from __future__ import annotations

import re

import attrs

from ..crypto.hashes import HASH_SIZE, netstring
from .params import FileLayout

MAX_UEB_SIZE = 4096
_KEY = re.compile(rb"[a-zA-Z_\-]+")
_INT = re.compile(rb"0|[1-9][0-9]{0,19}")
_INT_KEYS = ("needed_shares", "num_segments", "segment_size", "size", "total_shares")
_HASH_KEYS = ("crypttext_hash", "crypttext_root_hash", "share_root_hash")


class UebError(ValueError):
    """A UEB that does not parse or is not self-consistent."""


@attrs.frozen
class Ueb:
    """The fields of a CHK file's UEB that mistgrid writes and reads."""

    layout: FileLayout
    crypttext_hash: bytes
    crypttext_root_hash: bytes
    share_root_hash: bytes

    def pack(self) -> bytes:
        lay = self.layout
        k, n = lay.needed, lay.total
        fields: dict[bytes, bytes] = {
            b"codec_name": b"crs",
            b"codec_params": b"%d-%d-%d" % (lay.segment_size, k, n),
            b"tail_codec_params": b"%d-%d-%d" % (lay.padded_tail_size, k, n),
            b"size": b"%d" % lay.size,
            b"segment_size": b"%d" % lay.segment_size,
            b"num_segments": b"%d" % lay.num_segments,
            b"needed_shares": b"%d" % k,
            b"total_shares": b"%d" % n,
            b"crypttext_hash": self.crypttext_hash,
            b"crypttext_root_hash": self.crypttext_root_hash,
            b"share_root_hash": self.share_root_hash,
        }
        return b"".join(key + b":" + netstring(fields[key]) for key in sorted(fields))


def split_fields(data: bytes) -> dict[str, bytes]:
    """Split a serialized UEB into its raw fields."""
    fields: dict[str, bytes] = {}
    pos = 0
    while pos < len(data):
        colon = data.find(b":", pos)
        key = data[pos:colon]
        if colon < 0 or not _KEY.fullmatch(key):
            raise UebError("bad key")
        second = data.find(b":", colon + 1, colon + 12)
        length_text = data[colon + 1 : second]
        if second < 0 or not _INT.fullmatch(length_text):
            raise UebError("bad netstring length")
        start = second + 1
        end = start + int(length_text)
        if end >= len(data) or data[end : end + 1] != b",":
            raise UebError("truncated netstring")
        name = key.decode("ascii")
        if name in fields:
            raise UebError("duplicate key")
        fields[name] = data[start:end]
        pos = end + 1
    return fields


def parse_ueb(data: bytes) -> Ueb:
    """Parse and check a serialized UEB; raises UebError."""
    fields = split_fields(data)
    ints: dict[str, int] = {}
    for key in _INT_KEYS:
        raw = fields.get(key)
        if raw is None or not _INT.fullmatch(raw):
            raise UebError(f"missing or bad {key}")
        ints[key] = int(raw)
    for key in _HASH_KEYS:
        if len(fields.get(key, b"")) != HASH_SIZE:
            raise UebError(f"missing or bad {key}")
    try:
        layout = FileLayout(ints["size"], ints["needed_shares"], ints["total_shares"],
                            ints["segment_size"])
    except ValueError as err:
        raise UebError(str(err)) from err
    if not 1 <= layout.needed <= layout.total <= 256:
        raise UebError("bad share counts")
    if layout.num_segments != ints["num_segments"]:
        raise UebError("num_segments does not match size and segment_size")
    if fields.get("codec_name") != b"crs":
        raise UebError("unknown codec")
    ueb = Ueb(layout, fields["crypttext_hash"], fields["crypttext_root_hash"],
              fields["share_root_hash"])
    expected = split_fields(ueb.pack())
    for key in ("codec_params", "tail_codec_params"):
        if fields.get(key) != expected[key]:
            raise UebError(f"{key} does not match the file layout")
    return ueb
