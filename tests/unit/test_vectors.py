"""Every CHK test vector of Tahoe-LAFS reproduces its expected cap exactly (library)."""

from __future__ import annotations

import pytest

from mistgrid.caps import ChkCap, parse_cap
from mistgrid.encoding.params import EncodingParams
from mistgrid.encoding.upload import ChkEncoder, convergent_key

from ..vectors import ChkVector, chk_params, chk_vectors


def test_vector_count() -> None:
    """The reference holds the 120 CHK vectors this suite is meant to cover."""
    vectors = chk_vectors()
    if not vectors:
        pytest.skip("Tahoe-LAFS test vectors not found (see tests/conftest.py)")
    assert len(vectors) == 120


@pytest.mark.parametrize("vector", chk_params())
def test_chk_vector(vector: ChkVector) -> None:
    """Convergent key, encoding and UEB hash match Tahoe-LAFS byte for byte."""
    data = vector.plaintext()
    params = EncodingParams(vector.needed, vector.total, vector.segment_size)
    key = convergent_key(vector.convergence, params, len(data), [data])
    encoder = ChkEncoder(key, len(data), params)
    chunk = 65536 + 7  # feed in pieces that do not line up with segments
    for start in range(0, len(data), chunk):
        encoder.feed(data[start : start + chunk])
    _, cap = encoder.finish()
    assert cap.to_string() == vector.expected
    parsed = parse_cap(vector.expected)
    assert isinstance(parsed, ChkCap) and parsed.key == key
