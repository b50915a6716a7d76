"""The node's persistent TLS identity: a self-signed certificate whose SPKI hash is the
storage server's identity in its NURLs.

Kept, like Tahoe-LAFS's, in `private/node.pem` (private key and certificate in one PEM file,
mode 0600). Re-issuing the certificate keeps the key, so the SPKI hash, and the NURLs,
survive.
"""

from __future__ import annotations

import datetime
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from ..crypto.spki import spki_hash

PEM_NAME = "node.pem"


def create_identity(private_dir: Path) -> Path:
    """Write a new key and self-signed certificate (RSA 2048) unless one exists."""
    path = private_dir / PEM_NAME
    if path.exists():
        return path
    private_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mistgrid storage node")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=365 * 100))
            .sign(key, hashes.SHA256()))
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()) + \
        cert.public_bytes(serialization.Encoding.PEM)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    return path


def load_certificate(pem_path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem_path.read_bytes())


def identity_hash(pem_path: Path) -> bytes:
    return spki_hash(load_certificate(pem_path))
