"""Capability strings: the examples of uri.rst, round trips and clean failures."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mistgrid.caps import ChkCap, ChkVerifierCap, LiteralCap, parse_cap
from mistgrid.caps.immutable import chk_read_cap_listing, parse_cap_checking_each_field
from mistgrid.errors import CapabilityError

SPEC_CHK = ("URI:CHK:ihrbeov7lbvoduupd4qblysj7a:bg5agsdt62jb34hxvxmdsbza6do64f4fg5anxxod2buttbo6"
            "udzq:3:10:28733")


def test_spec_examples() -> None:
    """uri.rst's LIT and CHK examples parse and format back to the same text."""
    assert parse_cap("URI:LIT:") == LiteralCap(b"")
    assert parse_cap("URI:LIT:nbswy3dp") == LiteralCap(b"hello")
    cap = parse_cap(SPEC_CHK)
    assert isinstance(cap, ChkCap)
    assert (cap.needed, cap.total, cap.size) == (3, 10, 28733)
    assert cap.to_string() == SPEC_CHK


def test_verifier_is_derived_and_parses() -> None:
    """The verify cap carries the storage index, not the key, and round-trips."""
    cap = parse_cap(SPEC_CHK)
    assert isinstance(cap, ChkCap)
    verifier = cap.verifier()
    text = verifier.to_string()
    assert text.startswith("URI:CHK-Verifier:")
    assert parse_cap(text) == verifier
    assert isinstance(verifier, ChkVerifierCap)
    assert len(verifier.storage_index) == 16


def test_repr_hides_the_key() -> None:
    """A cap's repr never contains its key or its full string."""
    cap = parse_cap(SPEC_CHK)
    assert "ihrbeov7" not in repr(cap)
    assert "nbswy3dp" not in repr(parse_cap("URI:LIT:nbswy3dp"))


chk_caps = st.builds(
    lambda key, ueb, k, extra, size: ChkCap(key, ueb, k, min(256, k + extra), size),
    st.binary(min_size=16, max_size=16), st.binary(min_size=32, max_size=32),
    st.integers(1, 256), st.integers(0, 255), st.integers(0, 2**64))


@given(chk_caps)
def test_chk_round_trip(cap: ChkCap) -> None:
    """format then parse gives the same cap, for read and verify caps."""
    assert parse_cap(cap.to_string()) == cap
    assert parse_cap(cap.verifier().to_string()) == cap.verifier()


@given(st.binary(max_size=55))
def test_lit_round_trip(data: bytes) -> None:
    assert parse_cap(LiteralCap(data).to_string()) == LiteralCap(data)


@given(st.text(max_size=120))
def test_arbitrary_text_only_raises_capability_error(text: str) -> None:
    """Any text either parses to a cap that formats back to it, or raises CapabilityError."""
    try:
        cap = parse_cap(text)
    except CapabilityError:
        return
    assert cap.to_string() == text


@given(st.integers(0, len(SPEC_CHK) - 1), st.characters(codec="ascii"))
def test_mutated_spec_cap(position: int, char: str) -> None:
    """A one-character change to a valid cap parses canonically or fails cleanly."""
    text = SPEC_CHK[:position] + char + SPEC_CHK[position + 1 :]
    try:
        cap = parse_cap(text)
    except CapabilityError:
        return
    assert cap.to_string() == text


@pytest.mark.parametrize("text", [
    "", "URI:", "URI:CHK:", "URI:LIT:NBSWY3DP", "URI:LIT:a", SPEC_CHK + ":1", SPEC_CHK[4:],
    SPEC_CHK.replace(":3:10:", ":0:10:"), SPEC_CHK.replace(":3:10:", ":11:10:"),
    SPEC_CHK.replace(":3:10:", ":3:257:"), SPEC_CHK.replace(":28733", ":028733"),
    SPEC_CHK.replace(":28733", ":-1"), SPEC_CHK.replace("ihrbeov7", "ihrbeov"),
    SPEC_CHK.replace("udzq", "udzr"), "URI:SSK:aaaa:bbbb", " " + SPEC_CHK,
])
def test_malformed(text: str) -> None:
    """Each malformed form raises CapabilityError, and the message does not echo the key."""
    with pytest.raises(CapabilityError) as info:
        parse_cap(text)
    assert "ihrbeov7lbvoduupd4qblysj7a" not in str(info.value)


def test_non_text_is_refused() -> None:
    with pytest.raises(CapabilityError):
        parse_cap(b"URI:LIT:" )  # type: ignore[arg-type]


def _outcome(parse: Callable[[str], object], text: str) -> object:
    try:
        return parse(text)
    except CapabilityError:
        return CapabilityError


def test_the_fast_path_parses_as_the_field_by_field_path() -> None:
    """The pattern for canonical read caps accepts exactly what checking each field
    accepts: every one-character change of a cap, to every base32 character and some
    others (so every last character of the key and of the UEB hash is tried)."""
    for position in range(len(SPEC_CHK)):
        for char in "abcdefghijklmnopqrstuvwxyz234567" "0189:AQ-_ ":
            text = SPEC_CHK[:position] + char + SPEC_CHK[position + 1:]
            assert _outcome(parse_cap, text) == _outcome(parse_cap_checking_each_field,
                                                         text), text


@given(chk_caps)
def test_the_fast_path_parses_generated_caps_as_the_field_by_field_path(cap: ChkCap) -> None:
    text = cap.to_string()
    assert parse_cap(text) == parse_cap_checking_each_field(text) == cap


def _listing(text: str) -> tuple[int, str] | None:
    """What a listing shows for a canonical CHK read cap, the slow way (None otherwise)."""
    if not text.startswith("URI:CHK:"):
        return None
    try:
        cap = parse_cap_checking_each_field(text)
    except CapabilityError:
        return None
    assert isinstance(cap, ChkCap)
    return cap.size, cap.verifier().to_string()


@given(chk_caps)
def test_a_listings_chk_fields_are_the_caps_own(cap: ChkCap) -> None:
    text = cap.to_string()
    assert chk_read_cap_listing(text) == _listing(text) == (cap.size,
                                                           cap.verifier().to_string())


def test_a_listing_shows_only_canonical_good_chk_read_caps_so() -> None:
    for position in range(len(SPEC_CHK)):
        for char in "abcdefghijklmnopqrstuvwxyz234567" "0189:AQ-_ ":
            text = SPEC_CHK[:position] + char + SPEC_CHK[position + 1:]
            assert chk_read_cap_listing(text) == _listing(text), text
    for text in (SPEC_CHK.replace(":3:10:", ":11:10:"), SPEC_CHK.replace(":3:10:", ":0:10:"),
                 "URI:CHK-Verifier:" + SPEC_CHK[8:], "URI:LIT:nbswy3dp"):
        assert chk_read_cap_listing(text) is None
