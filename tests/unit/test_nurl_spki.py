"""SPKI hashes against Tahoe-LAFS's vectors, and NURL parsing."""

from __future__ import annotations

import pytest
import yaml
from cryptography import x509

from mistgrid.crypto.spki import spki_hash_text
from mistgrid.gbs.nurl import Nurl, NurlError, parse_nurl

from ..conftest import REFERENCE, require_reference

SPKI_VECTORS = REFERENCE / "tahoe-lafs" / "vectors" / "spki-hash-test-vectors.yaml"


def test_spki_vectors() -> None:
    """Every certificate in spki-hash-test-vectors.yaml hashes to its expected value."""
    vectors = yaml.safe_load(require_reference(SPKI_VECTORS).read_text())["vector"]
    assert vectors
    for vector in vectors:
        cert = x509.load_pem_x509_certificate(vector["certificate"].encode())
        assert spki_hash_text(cert) == vector["expected-hash"]


def test_spec_examples_parse() -> None:
    """The NURL examples of url.rst (version 1) are rejected only for their short hash;
    NURLs we make round-trip."""
    nurl = Nurl("pb", bytes(range(32)), "127.0.0.1", 34399, "jhjbc3bjbhk")
    assert parse_nurl(nurl.to_text()) == nurl
    onion = Nurl("pb+tor", bytes(32), "abc.onion", 80, "s")
    assert parse_nurl(onion.to_text()) == onion
    i2p = Nurl("pb+i2p", bytes(32), "xyz.b32.i2p", None, "s")
    assert parse_nurl(i2p.to_text()) == i2p
    assert "jhjbc3bjbhk" not in repr(nurl)


@pytest.mark.parametrize("text", [
    "pb://1WUX44xKjKdpGLohmFcBNuIRN-8rlv1Iij_7rQ@tcp:127.1:34399/jhjbc3bjbhk#v=1",
    "pb://AAAA@127.0.0.1:1/x#v=1",
    "http://" + "A" * 43 + "@127.0.0.1:1/x#v=1",
    "pb://" + "A" * 43 + "@127.0.0.1:1/x",
    "pb://" + "A" * 43 + "@127.0.0.1/x#v=1",
    "pb://" + "A" * 43 + "@127.0.0.1:70000/x#v=1",
    "pb+i2p://" + "A" * 43 + "@example.com:1/x#v=1",
])
def test_bad_nurls(text: str) -> None:
    with pytest.raises(NurlError):
        parse_nurl(text)
