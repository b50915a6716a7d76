"""A directory's children table, packed and unpacked exactly as Tahoe-LAFS does.

How this works (`specifications/dirnodes.rst`): the table is the plaintext of the
directory's file: for each child, sorted by name, one netstring holding four netstrings:
the name (UTF-8, NFC), the child's read-only cap, its write cap encrypted for holders of
the directory's write cap, and its metadata as JSON. A write cap is stored as salt +
AES-CTR ciphertext + MAC: the salt is a tagged hash of the write cap itself, the key a
tagged hash of salt and the directory's write key, the MAC (kept for old readers, not
checked) Tahoe's HMAC-style SHA-256 of salt + ciphertext. Immutable directories keep no
write caps. Caps of kinds mistgrid does not know are kept and passed through as they are.
Pure: bytes in, values out; `DirectoryFormatError` for anything malformed.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from ..crypto.aes import CtrStream
from ..crypto.hashes import KEY_SIZE, netstring, tagged_hash, tagged_pair_hash
from ..errors import MistgridError

TAG_CHILD_SALT = b"allmydata_dirnode_child_rwcap_to_salt_v1"
TAG_CHILD_KEY = b"allmydata_mutable_writekey_and_salt_to_dirnode_child_capkey_v1"
SALT_SIZE = 16
MAC_SIZE = 32
READONLY_PREFIX = "ro."
IMMUTABLE_PREFIX = "imm."


class DirectoryFormatError(MistgridError):
    """A children table that cannot be read."""


@attrs.frozen
class Child:
    """One entry: caps as text (None when absent), metadata as a JSON object."""

    name: str
    ro_uri: str | None
    rw_uri: str | None
    metadata: Mapping[str, Any] = attrs.field(factory=dict)


def normalize(name: str) -> str:
    """Child names are NFC, going in and coming out (as Tahoe)."""
    return unicodedata.normalize("NFC", name)


def _mac(key: bytes, data: bytes) -> bytes:
    inner = bytes(b ^ 0x36 for b in key)
    outer = bytes(b ^ 0x5C for b in key)
    return hashlib.sha256(outer + hashlib.sha256(inner + data).digest()).digest()


def encrypt_write_cap(writekey: bytes, rw_uri: bytes) -> bytes:
    salt = tagged_hash(TAG_CHILD_SALT, rw_uri, SALT_SIZE)
    key = tagged_pair_hash(TAG_CHILD_KEY, salt, writekey, KEY_SIZE)
    crypttext = CtrStream(key).process(rw_uri)
    return salt + crypttext + _mac(key, salt + crypttext)


def decrypt_write_cap(writekey: bytes, data: bytes) -> bytes:
    if len(data) < SALT_SIZE + MAC_SIZE:
        raise DirectoryFormatError("an encrypted write cap is too short")
    salt, crypttext = data[:SALT_SIZE], data[SALT_SIZE:-MAC_SIZE]
    if not crypttext:  # no write cap (Tahoe encrypts the empty string too)
        return b""
    key = tagged_pair_hash(TAG_CHILD_KEY, salt, writekey, KEY_SIZE)
    return CtrStream(key).process(crypttext)


def _strip_for_ro(ro_uri: str, deep_immutable: bool) -> str:
    if ro_uri.startswith(IMMUTABLE_PREFIX):
        return ro_uri[len(IMMUTABLE_PREFIX):] if deep_immutable else ro_uri
    if ro_uri.startswith(READONLY_PREFIX):
        return ro_uri[len(READONLY_PREFIX):]
    return ro_uri


def pack_children(children: Iterable[Child], writekey: bytes | None,
                  deep_immutable: bool = False) -> bytes:
    """The table's bytes. `writekey`: the directory's (mutable directories); None for an
    immutable directory, whose entries hold no write caps."""
    by_name: dict[str, Child] = {}
    for child in children:
        by_name[normalize(child.name)] = child
    entries = []
    for name in sorted(by_name):
        child = by_name[name]
        if deep_immutable and child.rw_uri:
            raise DirectoryFormatError(f"child {name!r}: an immutable directory holds no "
                                       "write caps")
        ro = _strip_for_ro(child.ro_uri or "", deep_immutable).encode("utf-8")
        rw = netstring(encrypt_write_cap(writekey, (child.rw_uri or "").encode("utf-8"))) \
            if writekey is not None else netstring(b"")
        entry = b"".join([netstring(name.encode("utf-8")), netstring(ro), rw,
                          netstring(json.dumps(dict(child.metadata)).encode("utf-8"))])
        entries.append(netstring(entry))
    return b"".join(entries)


def _split(data: bytes, count: int, position: int = 0) -> tuple[list[bytes], int]:
    items: list[bytes] = []
    size = len(data)
    for _ in range(count):
        colon = data.find(b":", position, position + 21)
        digits = data[position:colon] if colon >= 0 else b""
        if not digits.isdigit() or (digits[0] == 48 and len(digits) > 1):  # b"0"
            raise DirectoryFormatError("malformed netstring in the children table")
        end = colon + 1 + int(digits)
        if end >= size or data[end] != 44:  # b","
            raise DirectoryFormatError("truncated netstring in the children table")
        items.append(data[colon + 1:end])
        position = end + 1
    return items, position


def unpack_children(data: bytes, writekey: bytes | None,
                    mutable: bool = True) -> list[Child]:
    """The entries of a table. With `writekey` (a write cap to a mutable directory) the
    children's write caps are decrypted; without, they are None."""
    children: list[Child] = []
    position = 0
    while position < len(data):
        (entry,), position = _split(data, 1, position)
        (name_bytes, ro, rw_data, meta), end = _split(entry, 4)
        if end != len(entry):
            raise DirectoryFormatError("leftover bytes in a children table entry")
        if not mutable and rw_data:
            raise DirectoryFormatError("an immutable directory's entry holds a write cap")
        try:
            name = normalize(name_bytes.decode("utf-8"))
            metadata = json.loads(meta.decode("utf-8")) if meta and meta != b"{}" else {}
        except (UnicodeDecodeError, ValueError) as err:
            raise DirectoryFormatError("a children table entry is not UTF-8 and JSON") \
                from err
        if not isinstance(metadata, dict):
            raise DirectoryFormatError("a child's metadata is not a JSON object")
        rw = decrypt_write_cap(writekey, rw_data) if writekey is not None and rw_data \
            else b""
        try:
            rw_text = rw.rstrip(b" ").decode("utf-8") or None
            ro_text = ro.rstrip(b" ").decode("utf-8") or None
        except UnicodeDecodeError as err:
            raise DirectoryFormatError("a child's cap is not UTF-8") from err
        children.append(Child(name, ro_text, rw_text, metadata))
    return children
