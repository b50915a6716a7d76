"""Tagged SHA-256d hashes, as Tahoe-LAFS defines them.

How this works: SHA-256d(x) is SHA-256(SHA-256(x)). Every hash in the file formats is
*tagged*: the input is prefixed with the netstring of a single-purpose tag, so a hash made for
one purpose can never stand in for another. Values combined in one hash are each wrapped in a
netstring. Some results are truncated (keys and storage indexes are 16 bytes).
"""

from __future__ import annotations

import hashlib
from typing import Any

HASH_SIZE = 32
KEY_SIZE = 16
STORAGE_INDEX_SIZE = 16

# Single-purpose tags (facts of the Tahoe-LAFS formats).
TAG_STORAGE_INDEX = b"allmydata_immutable_key_to_storage_index_v1"
TAG_BLOCK = b"allmydata_encoded_subshare_v1"
TAG_UEB = b"allmydata_uri_extension_v1"
TAG_CRYPTTEXT = b"allmydata_crypttext_v1"
TAG_CRYPTTEXT_SEGMENT = b"allmydata_crypttext_segment_v1"
TAG_CONVERGENCE_PREFIX = b"allmydata_immutable_content_to_key_with_added_secret_v1+"
TAG_MERKLE_EMPTY_LEAF = b"Merkle tree empty leaf"
TAG_MERKLE_INTERNAL = b"Merkle tree internal node"


def netstring(data: bytes) -> bytes:
    """`len:data,` with the length in ASCII decimal."""
    return b"%d:%s," % (len(data), data)


class TaggedHasher:
    """An incremental tagged SHA-256d: feed with `update`, read once with `digest`."""

    __slots__ = ("_inner", "_size")

    def __init__(self, tag: bytes, size: int = HASH_SIZE) -> None:
        self._inner = _tagged_start(tag)
        self._size = size

    def update(self, data: bytes | memoryview) -> None:
        """Add bytes to the hashed input."""
        self._inner.update(data)

    def digest(self) -> bytes:
        """The (possibly truncated) SHA-256d of the tag and everything fed so far."""
        return hashlib.sha256(self._inner.digest()).digest()[: self._size]


_TAGGED: dict[bytes, Any] = {}  # tag: SHA-256 having read its netstring (tags are few)


def _tagged_start(tag: bytes) -> Any:
    """A SHA-256 that has read netstring(tag): a copy of one made once per tag."""
    start = _TAGGED.get(tag)
    if start is None:
        start = hashlib.sha256(netstring(tag))
        if len(_TAGGED) < 64:
            _TAGGED[tag] = start
    return start.copy()


def tagged_hash(tag: bytes, data: bytes | memoryview, size: int = HASH_SIZE) -> bytes:
    """SHA-256d(netstring(tag) + data), truncated to `size` bytes."""
    inner = _tagged_start(tag)
    inner.update(data)
    return hashlib.sha256(inner.digest()).digest()[:size]


def tagged_pair_hash(tag: bytes, first: bytes, second: bytes, size: int = HASH_SIZE) -> bytes:
    """The tagged hash of two values, each wrapped in a netstring."""
    return tagged_hash(tag, netstring(first) + netstring(second), size)


def storage_index_of(key: bytes) -> bytes:
    """The 16-byte storage index of an immutable file's AES key."""
    return tagged_hash(TAG_STORAGE_INDEX, key, STORAGE_INDEX_SIZE)


def block_hash(block: bytes | memoryview) -> bytes:
    """Leaf hash of one erasure-coded block in a share's block hash tree."""
    return tagged_hash(TAG_BLOCK, block)


def crypttext_segment_hash(segment: bytes | memoryview) -> bytes:
    """Leaf hash of one ciphertext segment in the crypttext hash tree."""
    return tagged_hash(TAG_CRYPTTEXT_SEGMENT, segment)


def ueb_hash(packed_ueb: bytes) -> bytes:
    """The hash of a serialized URI extension block, as it appears in a CHK cap."""
    return tagged_hash(TAG_UEB, packed_ueb)


def crypttext_hasher() -> TaggedHasher:
    """Hasher for the flat hash of a whole ciphertext."""
    return TaggedHasher(TAG_CRYPTTEXT)


def convergence_hasher(
    needed: int, total: int, segment_size: int, convergence: bytes
) -> TaggedHasher:
    """Hasher whose digest over the plaintext is the convergent AES key.

    The encoding parameters are part of the tag, so two encodings of one file get two keys.
    """
    params = netstring(b"%d,%d,%d" % (needed, total, segment_size))
    tag = TAG_CONVERGENCE_PREFIX + netstring(convergence) + params
    return TaggedHasher(tag, KEY_SIZE)


# ---- mutable files (SDMF and MDMF): facts of the Tahoe-LAFS formats ----

TAG_MUTABLE_WRITEKEY = b"allmydata_mutable_privkey_to_writekey_v1"
TAG_MUTABLE_READKEY = b"allmydata_mutable_writekey_to_readkey_v1"
TAG_MUTABLE_DATAKEY = b"allmydata_mutable_readkey_to_datakey_v1"
TAG_MUTABLE_STORAGE_INDEX = b"allmydata_mutable_readkey_to_storage_index_v1"
TAG_MUTABLE_FINGERPRINT = b"allmydata_mutable_pubkey_to_fingerprint_v1"
TAG_MUTABLE_WE_MASTER = b"allmydata_mutable_writekey_to_write_enabler_master_v1"
TAG_MUTABLE_WE = b"allmydata_mutable_write_enabler_master_and_nodeid_to_write_enabler_v1"


def ssk_writekey(private_key_der: bytes) -> bytes:
    """The 16-byte write key of a mutable file: from its signing key (PKCS#8 DER)."""
    return tagged_hash(TAG_MUTABLE_WRITEKEY, private_key_der, KEY_SIZE)


def ssk_readkey(writekey: bytes) -> bytes:
    """The 16-byte read key: from the write key."""
    return tagged_hash(TAG_MUTABLE_READKEY, writekey, KEY_SIZE)


def ssk_storage_index(readkey: bytes) -> bytes:
    """The 16-byte storage index: from the read key."""
    return tagged_hash(TAG_MUTABLE_STORAGE_INDEX, readkey, STORAGE_INDEX_SIZE)


def ssk_fingerprint(public_key_der: bytes) -> bytes:
    """The 32-byte hash of the verification key (SubjectPublicKeyInfo DER) in every cap."""
    return tagged_hash(TAG_MUTABLE_FINGERPRINT, public_key_der)


def ssk_data_key(salt: bytes, readkey: bytes) -> bytes:
    """The AES key of one version (SDMF) or one segment (MDMF): salt and read key."""
    return tagged_pair_hash(TAG_MUTABLE_DATAKEY, salt, readkey, KEY_SIZE)


def ssk_write_enabler(writekey: bytes, server_seed: bytes) -> bytes:
    """The write enabler one server keeps for a slot: from the write key and that
    server's 20-byte tub ID (Tahoe's "foolscap write enabler seed", also for GBS)."""
    master = tagged_hash(TAG_MUTABLE_WE_MASTER, writekey)
    return tagged_pair_hash(TAG_MUTABLE_WE, master, server_seed)


# ---- lease secrets (as Tahoe-LAFS derives them from a client's private/secret) ----

TAG_CLIENT_RENEWAL = b"allmydata_client_renewal_secret_v1"
TAG_CLIENT_CANCEL = b"allmydata_client_cancel_secret_v1"
TAG_FILE_RENEWAL = b"allmydata_file_renewal_secret_v1"
TAG_FILE_CANCEL = b"allmydata_file_cancel_secret_v1"
TAG_BUCKET_RENEWAL = b"allmydata_bucket_renewal_secret_v1"
TAG_BUCKET_CANCEL = b"allmydata_bucket_cancel_secret_v1"


def lease_secrets(client_secret: bytes, storage_index: bytes,
                  server_seed: bytes) -> tuple[bytes, bytes]:
    """(renew, cancel) secrets of one client's lease on one file's shares on one server.
    The client secret is the tag here and the constant the value: Tahoe's order."""
    renew = tagged_hash(client_secret, TAG_CLIENT_RENEWAL)
    cancel = tagged_hash(client_secret, TAG_CLIENT_CANCEL)
    file_renew = tagged_pair_hash(TAG_FILE_RENEWAL, renew, storage_index)
    file_cancel = tagged_pair_hash(TAG_FILE_CANCEL, cancel, storage_index)
    return (tagged_pair_hash(TAG_BUCKET_RENEWAL, file_renew, server_seed),
            tagged_pair_hash(TAG_BUCKET_CANCEL, file_cancel, server_seed))
