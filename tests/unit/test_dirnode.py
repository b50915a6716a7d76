"""Directory caps and the children table (pure): round trips, Tahoe's fixed facts, and
malformed tables refused with DirectoryFormatError."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mistgrid.caps.directory import DirectoryCap, FileCap, parse_directory_cap
from mistgrid.caps.immutable import ChkCap, parse_cap
from mistgrid.caps.mutable import MutableFormat, MutableWriteCap
from mistgrid.dirnode.children import (
    Child,
    DirectoryFormatError,
    decrypt_write_cap,
    encrypt_write_cap,
    pack_children,
    unpack_children,
)
from mistgrid.dirnode.stats import bucket
from mistgrid.errors import CapabilityError

WRITE = MutableWriteCap(MutableFormat.SDMF, b"w" * 16, b"f" * 32)
CHK = ChkCap(b"k" * 16, b"u" * 32, 3, 10, 1000).to_string()


@pytest.mark.parametrize("file_cap", [
    WRITE, WRITE.read_only(), WRITE.verifier(),
    MutableWriteCap(MutableFormat.MDMF, b"w" * 16, b"f" * 32),
    parse_cap(CHK), parse_cap("URI:LIT:nbswy3dp")])
def test_directory_caps_round_trip(file_cap: FileCap) -> None:
    cap = DirectoryCap(file_cap)
    text = cap.to_string()
    assert text.startswith("URI:DIR2")
    assert parse_directory_cap(text) == cap
    assert parse_directory_cap(cap.read_only().to_string()).is_writable is False


def test_directory_prefixes() -> None:
    assert DirectoryCap(WRITE).to_string().startswith("URI:DIR2:")
    assert DirectoryCap(WRITE.read_only()).to_string().startswith("URI:DIR2-RO:")
    assert DirectoryCap(WRITE.verifier()).to_string().startswith("URI:DIR2-Verifier:")
    mdmf = MutableWriteCap(MutableFormat.MDMF, b"w" * 16, b"f" * 32)
    assert DirectoryCap(mdmf.read_only()).to_string().startswith("URI:DIR2-MDMF-RO:")
    assert DirectoryCap(parse_cap(CHK)).to_string().startswith("URI:DIR2-CHK:")
    for bad in ("URI:DIR2:", "URI:DIR3:abc", "URI:DIR2-CHK:zz", "URI:SSK:x:y"):
        with pytest.raises(CapabilityError):
            parse_directory_cap(bad)


@given(st.lists(st.tuples(st.text(min_size=1, max_size=20),
                          st.sampled_from([CHK, "URI:LIT:nbswy3dp", "unknown:cap"]),
                          st.booleans()), max_size=8))
def test_children_round_trip(entries: list[tuple[str, str, bool]]) -> None:
    children = [Child(name, ro, WRITE.to_string() if rw else None, {"n": i})
                for i, (name, ro, rw) in enumerate(entries)]
    data = pack_children(children, WRITE.writekey)
    back = {c.name: c for c in unpack_children(data, WRITE.writekey)}
    expected = {unicodedata.normalize("NFC", child.name): child for child in children}
    assert set(back) == set(expected)
    for name, child in expected.items():
        assert back[name].ro_uri == child.ro_uri and back[name].rw_uri == child.rw_uri
        assert back[name].metadata == child.metadata
    assert all(c.rw_uri is None for c in unpack_children(data, None))


def test_write_cap_encryption_is_deterministic_and_keyed() -> None:
    sealed = encrypt_write_cap(b"k" * 16, b"URI:SSK:abc")
    assert sealed == encrypt_write_cap(b"k" * 16, b"URI:SSK:abc")
    assert len(sealed) == 16 + len(b"URI:SSK:abc") + 32
    assert decrypt_write_cap(b"k" * 16, sealed) == b"URI:SSK:abc"
    assert decrypt_write_cap(b"j" * 16, sealed) != b"URI:SSK:abc"


@pytest.mark.parametrize("data", [b"x", b"5:abc", b"99999999999999999999999:", b"3:abc",
                                  b"10:1:a,1:b,0:,,", b"2:0:,", b"01:a,"])
def test_malformed_tables_are_refused(data: bytes) -> None:
    with pytest.raises(DirectoryFormatError):
        unpack_children(data, None)


def test_immutable_directories_hold_no_write_caps() -> None:
    with pytest.raises(DirectoryFormatError):
        pack_children([Child("a", CHK, WRITE.to_string())], None, deep_immutable=True)
    table = pack_children([Child("a", CHK, WRITE.to_string())], WRITE.writekey)
    with pytest.raises(DirectoryFormatError):
        unpack_children(table, None, mutable=False)


def test_histogram_buckets_two_per_decade() -> None:
    assert [bucket(n) for n in (0, 1, 3, 4, 10, 11, 31, 32, 100, 101, 317, 5000)] == [
        (0, 0), (1, 3), (1, 3), (4, 10), (4, 10), (11, 31), (11, 31), (32, 100),
        (32, 100), (101, 316), (317, 1000), (3163, 10000)]
