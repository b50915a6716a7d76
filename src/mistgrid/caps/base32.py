"""Tahoe-LAFS base32: RFC 4648 alphabet in lower case, no padding, canonical only.

How this works: encoding is the standard one, lower-cased, with '=' stripped. Decoding
accepts only strings that encoding could have produced (a valid length and zero unused
trailing bits), so each byte string has exactly one text form.
"""

from __future__ import annotations

import base64
import re

ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"
_VALUES = {c: i for i, c in enumerate(ALPHABET)}
_BITS = str.maketrans({c: format(i, "05b") for i, c in enumerate(ALPHABET)})
_VALID = re.compile(r"[a-z2-7]*", re.ASCII)
# Lengths of encoded text mod 8 that an encoding can produce.
_GOOD_REMAINDERS = {0, 2, 4, 5, 7}


def b2a(data: bytes) -> str:
    """Encode bytes as lower-case unpadded base32."""
    return base64.b32encode(data).decode("ascii").rstrip("=").lower()


def encoded_length(byte_count: int) -> int:
    """How many base32 characters encode `byte_count` bytes."""
    return (byte_count * 8 + 4) // 5


def a2b(text: str) -> bytes:
    """Decode canonical lower-case unpadded base32; ValueError otherwise."""
    if not _VALID.fullmatch(text) or len(text) % 8 not in _GOOD_REMAINDERS:
        raise ValueError("not canonical base32")
    # through one big integer: several times faster than base64.b32decode (pure Python)
    count = len(text) * 5 // 8
    bits = text.translate(_BITS)  # each character to its 5 bits, in C
    data = int(bits[:count * 8], 2).to_bytes(count, "big") if count else b""
    unused = len(text) * 5 % 8  # bits of the last character that encode nothing
    if unused and _VALUES[text[-1]] & ((1 << unused) - 1):
        raise ValueError("not canonical base32 (stray trailing bits)")
    return data
