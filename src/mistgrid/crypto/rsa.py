"""RSA signing keys of mutable files, serialized and used as Tahoe-LAFS uses them.

How this works: a mutable file's signing key is RSA-2048 (exponent 65537). Its private half
is serialized as PKCS#8 DER (the write key is a hash of those bytes, so the serialization is
part of the format) and its public half as SubjectPublicKeyInfo DER (hashed into the cap's
fingerprint). Signatures are RSA-PSS over SHA-256 with MGF1(SHA-256) and a 32-byte salt.
Key generation is slow (tens to hundreds of milliseconds): callers run it off the reactor.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from ..errors import MistgridError

KEY_BITS = 2048
PUBLIC_EXPONENT = 65537
_PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)

PrivateKey = rsa.RSAPrivateKey
PublicKey = rsa.RSAPublicKey


class BadKeyError(MistgridError):
    """A key that is not an RSA key we can use."""


def generate() -> PrivateKey:
    """A new RSA-2048 signing key (blocking: run it on a worker thread)."""
    return rsa.generate_private_key(public_exponent=PUBLIC_EXPONENT, key_size=KEY_BITS)


def private_der(key: PrivateKey) -> bytes:
    """PKCS#8 DER, unencrypted: the bytes the write key is hashed from."""
    return key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def public_der(key: PublicKey) -> bytes:
    """SubjectPublicKeyInfo DER: the verification key stored in every share."""
    return key.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def _rsa_private(key: object) -> PrivateKey:
    if not isinstance(key, rsa.RSAPrivateKey):
        raise BadKeyError("the key is not an RSA private key")
    if key.key_size < 1024:
        raise BadKeyError("the RSA key is too small (fewer than 1024 bits)")
    return key


def load_private_pem(data: bytes) -> PrivateKey:
    """A signing key from PEM (PKCS#1 or PKCS#8, unencrypted)."""
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as err:
        raise BadKeyError("not an unencrypted PEM private key") from err
    return _rsa_private(key)


def load_private_der(data: bytes, authenticated: bool = False) -> PrivateKey:
    """A signing key from PKCS#8 DER (as stored, encrypted, in a share). `authenticated`:
    the bytes are known to be the key a cap names (its write key is their hash), so the
    slow consistency checks of the key's numbers (tens of milliseconds) are skipped."""
    try:
        key = serialization.load_der_private_key(
            data, password=None, unsafe_skip_rsa_key_validation=authenticated)
    except (ValueError, TypeError, UnsupportedAlgorithm) as err:
        raise BadKeyError("not a DER private key") from err
    return _rsa_private(key)


def load_public_der(data: bytes) -> PublicKey:
    """A verification key from SubjectPublicKeyInfo DER."""
    try:
        key = serialization.load_der_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm) as err:
        raise BadKeyError("not a DER public key") from err
    if not isinstance(key, rsa.RSAPublicKey):
        raise BadKeyError("the verification key is not an RSA key")
    return key


def sign(key: PrivateKey, data: bytes) -> bytes:
    return key.sign(data, _PSS, hashes.SHA256())


def verify(key: PublicKey, signature: bytes, data: bytes) -> bool:
    try:
        key.verify(signature, data, _PSS, hashes.SHA256())
    except InvalidSignature:
        return False
    return True
