"""Every SSK test vector of Tahoe-LAFS (SDMF and MDMF): the signing key gives exactly the
expected write cap (library), and the cap parses back to itself."""

from __future__ import annotations

import pytest

from mistgrid.caps.mutable import MutableFormat, MutableWriteCap, parse_mutable_cap
from mistgrid.crypto import rsa
from mistgrid.mutable.version import SigningKey

from ..vectors import SskVector, ssk_params, ssk_vectors


def test_ssk_vector_count() -> None:
    """The reference holds the 240 SSK vectors this suite is meant to cover."""
    vectors = ssk_vectors()
    if not vectors:
        pytest.skip("Tahoe-LAFS test vectors not found (see tests/conftest.py)")
    assert len(vectors) == 240
    assert {v.format for v in vectors} == {"sdmf", "mdmf"}


@pytest.mark.parametrize("vector", ssk_params())
def test_ssk_vector(vector: SskVector) -> None:
    key = SigningKey.of(rsa.load_private_pem(vector.key_pem.encode()))
    cap = key.cap(MutableFormat[vector.format.upper()])
    assert cap.to_string() == vector.expected
    parsed = parse_mutable_cap(vector.expected)
    assert isinstance(parsed, MutableWriteCap) and parsed == cap
    assert parse_mutable_cap(cap.read_only().to_string()) == cap.read_only()
    assert parse_mutable_cap(cap.verifier().to_string()) == cap.verifier()
