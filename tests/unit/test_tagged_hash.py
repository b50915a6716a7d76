"""Tahoe's tagged SHA-256d, hashed from a kept start per tag: the same bytes as hashing
netstring(tag) + data from scratch, for any tag (also past the tags kept) and any data."""

from __future__ import annotations

import hashlib

from hypothesis import given
from hypothesis import strategies as st

from mistgrid.crypto.hashes import TaggedHasher, tagged_hash


def from_scratch(tag: bytes, data: bytes, size: int) -> bytes:
    inner = hashlib.sha256(b"%d:%s,%s" % (len(tag), tag, data)).digest()
    return hashlib.sha256(inner).digest()[:size]


@given(st.binary(max_size=80), st.binary(max_size=300), st.integers(1, 32))
def test_a_tagged_hash_is_sha256d_of_the_tags_netstring_and_the_data(
        tag: bytes, data: bytes, size: int) -> None:
    assert tagged_hash(tag, data, size) == from_scratch(tag, data, size)
    assert tagged_hash(tag, data, size) == from_scratch(tag, data, size)  # a kept start
    hasher = TaggedHasher(tag, size)
    hasher.update(data[:7])
    hasher.update(data[7:])
    assert hasher.digest() == from_scratch(tag, data, size)


def test_many_tags_are_each_hashed_right() -> None:
    for n in range(200):
        tag = b"tag %d" % n
        assert tagged_hash(tag, b"x") == from_scratch(tag, b"x", 32)
