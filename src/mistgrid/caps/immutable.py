"""Immutable-file capabilities (`specifications/uri.rst`).

How this works: each cap is a frozen value with `to_string()`; `parse_cap` is the one entry
point from text, and every malformed input raises `CapabilityError` (and nothing else). Error
messages describe the problem and never echo the cap, since a cap is a secret.

    URI:LIT:<base32 data>
    URI:CHK:<base32 16-byte key>:<base32 32-byte UEB hash>:<k>:<N>:<size>
    URI:CHK-Verifier:<base32 16-byte storage index>:<base32 32-byte UEB hash>:<k>:<N>:<size>
"""

from __future__ import annotations

import re

import attrs

from ..crypto.hashes import HASH_SIZE, KEY_SIZE, STORAGE_INDEX_SIZE, storage_index_of
from ..errors import CapabilityError
from . import base32

MAX_SHARES = 256
LIT_MAX_SIZE = 55

_NUMBER = r"(0|[1-9][0-9]{0,19})"
_CHK_RE = re.compile(
    r"URI:(CHK|CHK-Verifier):([a-z2-7]+):([a-z2-7]+):" + _NUMBER + ":" + _NUMBER + ":" + _NUMBER,
    re.ASCII,
)
# A canonical read cap as it nearly always comes (a directory of 10,000 files parses one
# per entry): 16 and 32 bytes of base32, each last character without stray bits.
_CANONICAL_CHK = re.compile(r"URI:CHK:([a-z2-7]{25}[aeimquy4]):([a-z2-7]{51}[aq]):"
                            + _NUMBER + ":" + _NUMBER + ":" + _NUMBER, re.ASCII)


def _check_params(needed: int, total: int, size: int) -> None:
    if not 1 <= needed <= total <= MAX_SHARES:
        raise CapabilityError(f"bad share counts: need 1 <= k <= N <= {MAX_SHARES}")
    if size < 0:
        raise CapabilityError("negative size")


@attrs.frozen(repr=False)
class LiteralCap:
    """A file of 0..55 bytes carried inside the cap itself."""

    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)

    def to_string(self) -> str:
        return "URI:LIT:" + base32.b2a(self.data)

    def __repr__(self) -> str:
        return f"<LiteralCap size={self.size}>"


@attrs.frozen(repr=False)
class ChkVerifierCap:
    """Lets its holder find and check a CHK file's shares, not read them."""

    storage_index: bytes
    ueb_hash: bytes
    needed: int
    total: int
    size: int

    def __attrs_post_init__(self) -> None:
        if len(self.storage_index) != STORAGE_INDEX_SIZE or len(self.ueb_hash) != HASH_SIZE:
            raise CapabilityError("bad field length")
        _check_params(self.needed, self.total, self.size)

    def to_string(self) -> str:
        return (
            f"URI:CHK-Verifier:{base32.b2a(self.storage_index)}:{base32.b2a(self.ueb_hash)}"
            f":{self.needed}:{self.total}:{self.size}"
        )

    def __repr__(self) -> str:
        return (f"<ChkVerifierCap si={base32.b2a(self.storage_index)} "
                f"k={self.needed} N={self.total} size={self.size}>")


@attrs.frozen(repr=False)
class ChkCap:
    """A read cap for an immutable CHK file: AES key, UEB hash, k, N and size."""

    key: bytes
    ueb_hash: bytes
    needed: int
    total: int
    size: int

    def __attrs_post_init__(self) -> None:
        if len(self.key) != KEY_SIZE or len(self.ueb_hash) != HASH_SIZE:
            raise CapabilityError("bad field length")
        _check_params(self.needed, self.total, self.size)

    @property
    def storage_index(self) -> bytes:
        return storage_index_of(self.key)

    def verifier(self) -> ChkVerifierCap:
        return ChkVerifierCap(self.storage_index, self.ueb_hash, self.needed, self.total,
                              self.size)

    def to_string(self) -> str:
        return (
            f"URI:CHK:{base32.b2a(self.key)}:{base32.b2a(self.ueb_hash)}"
            f":{self.needed}:{self.total}:{self.size}"
        )

    def __repr__(self) -> str:  # never show the key
        return (f"<ChkCap si={base32.b2a(self.storage_index)} "
                f"k={self.needed} N={self.total} size={self.size}>")


ReadCap = LiteralCap | ChkCap
Cap = LiteralCap | ChkCap | ChkVerifierCap


def decode_field(text: str, size: int, what: str) -> bytes:
    """A fixed-size base32 field of a cap; CapabilityError unless canonical."""
    if len(text) != base32.encoded_length(size):
        raise CapabilityError(f"{what} has the wrong length")
    try:
        return base32.a2b(text)
    except ValueError as err:
        raise CapabilityError(f"{what} is not canonical base32") from err


def parse_cap(text: str) -> Cap:
    """Parse a cap string; raises CapabilityError for anything malformed."""
    canonical = _CANONICAL_CHK.fullmatch(text) if isinstance(text, str) else None
    if canonical is not None:
        key, ueb, needed, total, size = canonical.groups()
        return ChkCap(base32.a2b_matched(key), base32.a2b_matched(ueb), int(needed),
                      int(total), int(size))
    return parse_cap_checking_each_field(text)


def chk_read_cap_listing(text: str) -> tuple[int, str] | None:
    """(size, verify cap) of a canonical CHK read cap, as a directory listing shows it;
    None for any other text. The same results as parsing the cap and asking its
    verifier, without building either (a listing of 10,000 files asks 10,000 times)."""
    canonical = _CANONICAL_CHK.fullmatch(text)
    if canonical is None:
        return None
    key, ueb, needed, total, size = canonical.groups()
    try:
        _check_params(int(needed), int(total), int(size))
    except CapabilityError:
        return None
    index = base32.b2a(storage_index_of(base32.a2b_matched(key)))
    return int(size), f"URI:CHK-Verifier:{index}:{ueb}:{needed}:{total}:{size}"


def parse_cap_checking_each_field(text: str) -> Cap:
    """`parse_cap` without its fast path for canonical read caps (the same results; the
    errors name the field at fault)."""
    if not isinstance(text, str):
        raise CapabilityError("a cap must be text")
    if text.startswith("URI:LIT:"):
        body = text[len("URI:LIT:"):]
        try:
            data = base32.a2b(body)
        except ValueError as err:
            raise CapabilityError("LIT cap data is not canonical base32") from err
        return LiteralCap(data)
    match = _CHK_RE.fullmatch(text)
    if match is None:
        kind = text.split(":", 2)[1] if text.startswith("URI:") and text.count(":") >= 1 else ""
        if kind in ("CHK", "CHK-Verifier"):
            raise CapabilityError(f"malformed URI:{kind} cap")
        raise CapabilityError("not a recognised file cap (expected URI:LIT:, URI:CHK:, "
                              "URI:CHK-Verifier:, or a mutable URI:SSK: or URI:MDMF: cap)")
    kind, first, second, needed_text, total_text, size_text = match.groups()
    needed, total, size = int(needed_text), int(total_text), int(size_text)
    ueb = decode_field(second, HASH_SIZE, "UEB hash")
    if kind == "CHK":
        return ChkCap(decode_field(first, KEY_SIZE, "key"), ueb, needed, total, size)
    return ChkVerifierCap(decode_field(first, STORAGE_INDEX_SIZE, "storage index"), ueb, needed,
                          total, size)
