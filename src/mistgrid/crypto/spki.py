"""SPKI hashes: a storage server's identity in GBS NURLs.

How this works: the SHA-256 of the DER SubjectPublicKeyInfo of the server's certificate
(as in RFC 7469), written in unpadded urlsafe base64. Only the key pair is pinned: the
certificate around it may be re-issued freely.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography import x509
from cryptography.hazmat.primitives import serialization


def spki_hash(certificate: x509.Certificate) -> bytes:
    """The 32-byte SHA-256 of the certificate's DER SubjectPublicKeyInfo."""
    spki = certificate.public_key().public_bytes(serialization.Encoding.DER,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).digest()


def spki_hash_text(certificate: x509.Certificate) -> str:
    """The SPKI hash as it appears in a NURL (urlsafe base64, no padding)."""
    return encode_hash(spki_hash(certificate))


def encode_hash(digest: bytes) -> str:
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def decode_hash(text: str) -> bytes:
    """Inverse of encode_hash; ValueError unless it is exactly 32 bytes, canonical."""
    try:
        digest = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as err:
        raise ValueError("not urlsafe base64") from err
    if len(digest) != 32 or encode_hash(digest) != text:
        raise ValueError("not a 32-byte SPKI hash")
    return digest
