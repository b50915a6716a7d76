"""Mutable-file capabilities, SDMF and MDMF (`specifications/uri.rst`, `mutable.rst`).

How this works: a mutable file is named by its RSA signing key. The write key is a hash of
the private key, the read key a hash of the write key, the storage index a hash of the read
key; every cap also carries the fingerprint (hash) of the verification key, so a reader can
check that a share's key is the file's. Each cap kind is a frozen value; the weaker caps are
derived from the stronger (`read_only()`, `verifier()`), never the other way.

    URI:SSK:<write key>:<fingerprint>            URI:MDMF:<write key>:<fingerprint>
    URI:SSK-RO:<read key>:<fingerprint>          URI:MDMF-RO:<read key>:<fingerprint>
    URI:SSK-Verifier:<storage index>:<fingerprint>  URI:MDMF-Verifier:<storage index>:<fp>

Old Tahoe releases appended `:k:segsize` hints to MDMF caps; they are accepted and dropped.
Error messages never echo the cap (it is a secret).
"""

from __future__ import annotations

import enum
import re

import attrs

from ..crypto import hashes
from ..crypto.hashes import HASH_SIZE, KEY_SIZE, STORAGE_INDEX_SIZE
from ..errors import CapabilityError
from . import base32
from .immutable import decode_field as _decode


class MutableFormat(enum.Enum):
    SDMF = "SDMF"
    MDMF = "MDMF"

    @property
    def prefix(self) -> str:
        return "SSK" if self is MutableFormat.SDMF else "MDMF"

    @property
    def version(self) -> int:
        """The share container's version byte: 0 for SDMF, 1 for MDMF."""
        return 0 if self is MutableFormat.SDMF else 1


def _b32(data: bytes) -> str:
    return base32.b2a(data)


@attrs.frozen(repr=False)
class MutableVerifierCap:
    """Find and check a mutable file's shares; read nothing."""

    format: MutableFormat
    storage_index: bytes
    fingerprint: bytes

    def __attrs_post_init__(self) -> None:
        if len(self.storage_index) != STORAGE_INDEX_SIZE or len(self.fingerprint) != HASH_SIZE:
            raise CapabilityError("bad field length")

    def verifier(self) -> MutableVerifierCap:
        return self

    def to_string(self) -> str:
        return (f"URI:{self.format.prefix}-Verifier:{_b32(self.storage_index)}"
                f":{_b32(self.fingerprint)}")

    def __repr__(self) -> str:
        return f"<MutableVerifierCap {self.format.value} si={_b32(self.storage_index)}>"


@attrs.frozen(repr=False)
class MutableReadCap:
    """Read a mutable file (any version); not change it."""

    format: MutableFormat
    readkey: bytes
    fingerprint: bytes

    def __attrs_post_init__(self) -> None:
        if len(self.readkey) != KEY_SIZE or len(self.fingerprint) != HASH_SIZE:
            raise CapabilityError("bad field length")

    @property
    def storage_index(self) -> bytes:
        return hashes.ssk_storage_index(self.readkey)

    def read_only(self) -> MutableReadCap:
        return self

    def verifier(self) -> MutableVerifierCap:
        return MutableVerifierCap(self.format, self.storage_index, self.fingerprint)

    def to_string(self) -> str:
        return f"URI:{self.format.prefix}-RO:{_b32(self.readkey)}:{_b32(self.fingerprint)}"

    def __repr__(self) -> str:  # never show the key
        return f"<MutableReadCap {self.format.value} si={_b32(self.storage_index)}>"


@attrs.frozen(repr=False)
class MutableWriteCap:
    """Read and change a mutable file."""

    format: MutableFormat
    writekey: bytes
    fingerprint: bytes

    def __attrs_post_init__(self) -> None:
        if len(self.writekey) != KEY_SIZE or len(self.fingerprint) != HASH_SIZE:
            raise CapabilityError("bad field length")

    @classmethod
    def from_keys(cls, fmt: MutableFormat, private_der: bytes,
                  public_der: bytes) -> MutableWriteCap:
        """The cap of the file a signing key names (PKCS#8 and SubjectPublicKeyInfo DER)."""
        return cls(fmt, hashes.ssk_writekey(private_der), hashes.ssk_fingerprint(public_der))

    @property
    def readkey(self) -> bytes:
        return hashes.ssk_readkey(self.writekey)

    @property
    def storage_index(self) -> bytes:
        return hashes.ssk_storage_index(self.readkey)

    def read_only(self) -> MutableReadCap:
        return MutableReadCap(self.format, self.readkey, self.fingerprint)

    def verifier(self) -> MutableVerifierCap:
        return MutableVerifierCap(self.format, self.storage_index, self.fingerprint)

    def write_enabler(self, server_seed: bytes) -> bytes:
        """The secret that lets this file's shares on one server be changed."""
        return hashes.ssk_write_enabler(self.writekey, server_seed)

    def to_string(self) -> str:
        return f"URI:{self.format.prefix}:{_b32(self.writekey)}:{_b32(self.fingerprint)}"

    def __repr__(self) -> str:  # never show the key
        return f"<MutableWriteCap {self.format.value} si={_b32(self.storage_index)}>"


MutableCap = MutableWriteCap | MutableReadCap | MutableVerifierCap

_MUTABLE_RE = re.compile(
    r"URI:(SSK|MDMF)(|-RO|-Verifier):([a-z2-7]+):([a-z2-7]+)(:[0-9]+:[0-9]+)?", re.ASCII)


def is_mutable_text(text: str) -> bool:
    """Whether `text` claims to be a mutable-file cap (well-formed or not)."""
    return text.startswith(("URI:SSK:", "URI:SSK-", "URI:MDMF:", "URI:MDMF-"))


def parse_mutable_cap(text: str) -> MutableCap:
    """Parse a mutable-file cap; CapabilityError for anything malformed."""
    match = _MUTABLE_RE.fullmatch(text)
    if match is None:
        raise CapabilityError("malformed mutable-file cap (expected URI:SSK:, URI:SSK-RO:, "
                              "URI:SSK-Verifier:, URI:MDMF:, URI:MDMF-RO: or "
                              "URI:MDMF-Verifier: and two base32 fields)")
    fmt = MutableFormat.SDMF if match.group(1) == "SSK" else MutableFormat.MDMF
    if match.group(5) and fmt is MutableFormat.SDMF:
        raise CapabilityError("malformed URI:SSK cap (extra fields)")
    kind = match.group(2)
    fingerprint = _decode(match.group(4), HASH_SIZE, "fingerprint")
    if kind == "":
        return MutableWriteCap(fmt, _decode(match.group(3), KEY_SIZE, "write key"),
                               fingerprint)
    if kind == "-RO":
        return MutableReadCap(fmt, _decode(match.group(3), KEY_SIZE, "read key"), fingerprint)
    return MutableVerifierCap(fmt, _decode(match.group(3), STORAGE_INDEX_SIZE,
                                           "storage index"), fingerprint)
