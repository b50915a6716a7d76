"""Tahoe base32: the known examples of uri.rst and canonical-only decoding."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mistgrid.caps import base32


def test_known_examples() -> None:
    """uri.rst: "hello" is nbswy3dp and the empty string is empty."""
    assert base32.b2a(b"hello") == "nbswy3dp"
    assert base32.b2a(b"") == ""
    assert base32.a2b("nbswy3dp") == b"hello"


@given(st.binary(max_size=80))
def test_round_trip(data: bytes) -> None:
    """Every byte string survives encode then decode, with the predicted length."""
    text = base32.b2a(data)
    assert len(text) == base32.encoded_length(len(data))
    assert base32.a2b(text) == data


@pytest.mark.parametrize("text", ["NBSWY3DP", "nbswy3dp=", "nbswy3d1", "a", "ab", "abc"])
def test_rejects_non_canonical(text: str) -> None:
    """Upper case, padding, bad letters, impossible lengths and stray bits are refused."""
    with pytest.raises(ValueError):
        base32.a2b(text)


@given(st.binary(max_size=80))
def test_same_as_the_standard_encoding(data: bytes) -> None:
    """Our encoder is RFC 4648's (Python's base64 module), lower case and unpadded; any
    text with a nonzero unused trailing bit is refused."""
    text = base64.b32encode(data).decode().rstrip("=").lower()
    assert base32.b2a(data) == text
    unused = len(text) * 5 % 8
    if unused:
        stray = text[:-1] + base32.ALPHABET[base32.ALPHABET.index(text[-1]) | 1]
        with pytest.raises(ValueError):
            base32.a2b(stray)
