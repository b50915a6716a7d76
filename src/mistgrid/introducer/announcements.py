"""Signed announcements, as Tahoe-LAFS 1.20's introducer carries them (pure core).

How this works: an announcement is a JSON object (service name, nickname, versions,
`seqnum`, `nonce` and the service's own fields, for storage the NURLs). On the wire it is
the triple (message, signature, key): the message is the object's JSON in UTF-8, the
signature `v0-` + base32 of the Ed25519 signature of the message, the key `v0-` + base32
of the raw public key. A node's signing key lives in `private/node.privkey` as `priv-v0-`
+ base32 of the raw private key; the server ID others know it by is the key string.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from .. import __version__
from ..caps import base32
from ..errors import MistgridError

PRIVATE_PREFIX = "priv-v0-"
KEY_PREFIX = "v0-"
MAX_MESSAGE = 64 * 1024
VERSION_STRING = f"mistgrid/{__version__}"
SignedAnnouncement = tuple[bytes, bytes, bytes]


class AnnouncementError(MistgridError):
    """An announcement that is malformed or not signed by the key it names."""


def new_signing_key_text() -> str:
    """A fresh `private/node.privkey` value."""
    raw = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
        serialization.NoEncryption())
    return PRIVATE_PREFIX + base32.b2a(raw)


def parse_signing_key(text: str) -> Ed25519PrivateKey:
    """The key in a `private/node.privkey` value."""
    text = text.strip()
    if not text.startswith(PRIVATE_PREFIX):
        raise AnnouncementError(f"a node key starts with {PRIVATE_PREFIX}")
    try:
        return Ed25519PrivateKey.from_private_bytes(base32.a2b(text[len(PRIVATE_PREFIX):]))
    except (ValueError, MistgridError) as err:
        raise AnnouncementError("the node key is not a valid Ed25519 key") from err


def key_string(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """`v0-...`: the public key as announcements carry it (and as the server ID)."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return KEY_PREFIX + base32.b2a(public.public_bytes(serialization.Encoding.Raw,
                                                       serialization.PublicFormat.Raw))


def new_nonce() -> str:
    return base32.b2a(secrets.token_bytes(32))


def storage_announcement(fields: dict[str, Any], nickname: str, seqnum: int,
                         nonce: str) -> dict[str, Any]:
    """The whole announcement a storage server publishes."""
    return {"version": 0, "nickname": nickname, "app-versions": [],
            "my-version": VERSION_STRING, "oldest-supported": VERSION_STRING,
            "service-name": "storage", **fields, "seqnum": seqnum, "nonce": nonce}


def sign(ann: dict[str, Any], key: Ed25519PrivateKey) -> SignedAnnouncement:
    message = json.dumps(ann).encode("utf-8")
    signature = KEY_PREFIX + base32.b2a(key.sign(message))
    return message, signature.encode("ascii"), key_string(key).encode("ascii")


def verify(signed: object) -> tuple[dict[str, Any], str]:
    """(announcement, key string) of a signed triple; AnnouncementError if it is not one."""
    if not (isinstance(signed, (tuple, list)) and len(signed) == 3
            and all(isinstance(part, bytes) for part in signed)):
        raise AnnouncementError("an announcement is a (message, signature, key) triple")
    message, signature, key = signed
    if len(message) > MAX_MESSAGE:
        raise AnnouncementError("announcement too large")
    if not (signature.startswith(b"v0-") and key.startswith(b"v0-")):
        raise AnnouncementError("only v0- signatures and keys are recognised")
    try:
        public = Ed25519PublicKey.from_public_bytes(base32.a2b(key[3:].decode("ascii")))
        public.verify(base32.a2b(signature[3:].decode("ascii")), message)
        ann = json.loads(message.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, MistgridError) as err:
        raise AnnouncementError(f"unreadable announcement ({err.__class__.__name__})") \
            from err
    except InvalidSignature as err:
        raise AnnouncementError("bad signature") from err
    if not (isinstance(ann, dict) and isinstance(ann.get("service-name"), str)
            and isinstance(ann.get("seqnum"), int)):
        raise AnnouncementError("an announcement needs a service-name and an integer seqnum")
    return ann, key.decode("ascii")
