"""v3 onion client authorization keys, in Tor's own file formats (pure).

How this works: a client holds an x25519 private key; a service lists the public keys of
the clients it lets in. Tor writes both as unpadded upper-case base32 of the 32 raw key
bytes: a service's `authorized_clients/NAME.auth` holds `descriptor:x25519:PUBLIC`, a
client's `NAME.auth_private` holds `ADDRESS:descriptor:x25519:PRIVATE` (mistgrid also
accepts it without `ADDRESS:`, meaning: for every onion service the node reaches). Tor's
control port takes the private key in base64 (ONION_CLIENT_AUTH_ADD) and the public key in
base32 (ADD_ONION ClientAuthV3=).
"""

from __future__ import annotations

import base64
import binascii
import re

import attrs
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from ..errors import MistgridError

_RAW = serialization.Encoding.Raw


class OnionAuthError(MistgridError):
    """A client-authorization key file that cannot be read."""


def _b32(raw: bytes) -> str:
    return base64.b32encode(raw).decode("ascii").rstrip("=")


def _from_b32(text: str, what: str) -> bytes:
    try:
        raw = base64.b32decode(text.upper() + "=" * (-len(text) % 8))
    except (binascii.Error, ValueError) as err:
        raise OnionAuthError(f"{what}: not base32") from err
    if len(raw) != 32:
        raise OnionAuthError(f"{what}: not a 32-byte x25519 key")
    return raw


@attrs.frozen(repr=False)
class ClientKey:
    """A client's x25519 private key, and for which onion address (None: any)."""

    private: bytes
    address: str | None = None

    @classmethod
    def generate(cls) -> ClientKey:
        key = X25519PrivateKey.generate()
        return cls(key.private_bytes(_RAW, serialization.PrivateFormat.Raw,
                                     serialization.NoEncryption()))

    @property
    def public(self) -> bytes:
        return X25519PrivateKey.from_private_bytes(self.private).public_key().public_bytes(
            _RAW, serialization.PublicFormat.Raw)

    def private_file_text(self) -> str:
        prefix = f"{self.address}:" if self.address else ""
        return f"{prefix}descriptor:x25519:{_b32(self.private)}\n"

    def public_file_text(self) -> str:
        return f"descriptor:x25519:{_b32(self.public)}\n"

    def control_blob(self) -> str:
        """The key as ONION_CLIENT_AUTH_ADD takes it."""
        return "x25519:" + base64.b64encode(self.private).decode("ascii")

    def __repr__(self) -> str:
        return "<ClientKey redacted>"


_PRIVATE = re.compile(r"(?:([a-z2-7]{56})(?:\.onion)?:)?descriptor:x25519:([A-Za-z2-7]{52})")
_PUBLIC = re.compile(r"descriptor:x25519:([A-Za-z2-7]{52})")


def parse_private(text: str, where: str) -> ClientKey:
    match = _PRIVATE.fullmatch(text.strip())
    if match is None:
        raise OnionAuthError(f"{where}: not a client key (expected "
                             "[ADDRESS:]descriptor:x25519:KEY, as Tor writes .auth_private "
                             "files; make one with `mistgrid admin onion-client-key`)")
    return ClientKey(_from_b32(match.group(2), where), match.group(1))


def parse_public(text: str, where: str) -> str:
    """The base32 public key of an authorized_clients line (for ClientAuthV3=)."""
    match = _PUBLIC.fullmatch(text.strip())
    if match is None:
        raise OnionAuthError(f"{where}: not a client's public key (expected "
                             "descriptor:x25519:KEY, as Tor writes .auth files)")
    return _b32(_from_b32(match.group(1), where))
