"""Tahoe-LAFS base32: RFC 4648 alphabet in lower case, no padding, canonical only.

How this works: encoding is the standard one, lower-cased, with '=' stripped. Decoding
accepts only strings that encoding could have produced (a valid length and zero unused
trailing bits), so each byte string has exactly one text form.
"""

from __future__ import annotations

import re

ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"
# Python's own base-32 digits (int(text, 32)) for ours: decoding runs in C
_TO_DIGITS = str.maketrans(ALPHABET, "0123456789abcdefghijklmnopqrstuv")
_PAIRS = [a + b for a in ALPHABET for b in ALPHABET]  # 10 bits -> two characters
_VALID = re.compile(r"[a-z2-7]*", re.ASCII)
# Lengths of encoded text mod 8 that an encoding can produce.
_GOOD_REMAINDERS = {0, 2, 4, 5, 7}


def b2a(data: bytes) -> str:
    """Encode bytes as lower-case unpadded base32."""
    chars = encoded_length(len(data))
    pairs = (chars + 1) // 2
    shift = pairs * 10 - len(data) * 8  # zero bits after the data, to whole pairs
    value = int.from_bytes(data, "big") << shift
    text = "".join([_PAIRS[(value >> at) & 1023] for at in range(pairs * 10 - 10, -1, -10)])
    return text[:chars]


def encoded_length(byte_count: int) -> int:
    """How many base32 characters encode `byte_count` bytes."""
    return (byte_count * 8 + 4) // 5


def a2b(text: str) -> bytes:
    """Decode canonical lower-case unpadded base32; ValueError otherwise."""
    if not _VALID.fullmatch(text) or len(text) % 8 not in _GOOD_REMAINDERS:
        raise ValueError("not canonical base32")
    if not text:
        return b""
    count = len(text) * 5 // 8
    value = int(text.translate(_TO_DIGITS), 32)  # several times faster than b32decode
    unused = len(text) * 5 - count * 8  # bits of the last character that encode nothing
    if value & ((1 << unused) - 1):
        raise ValueError("not canonical base32 (stray trailing bits)")
    return (value >> unused).to_bytes(count, "big")


def a2b_matched(text: str) -> bytes:
    """Decode non-empty text that a pattern has already shown canonical (the alphabet,
    a valid length, and a last character with no stray bits): `a2b` without its
    checks, for the hot paths of cap parsing."""
    count = len(text) * 5 // 8
    value = int(text.translate(_TO_DIGITS), 32)
    return (value >> (len(text) * 5 - count * 8)).to_bytes(count, "big")
