"""How a storage server is announced to clients: the entry Tahoe-LAFS 1.20 understands.

Tahoe-LAFS clients use the GBS NURLs of an announcement (`anonymous-storage-NURLs`), but
still parse `anonymous-storage-FURL` for the server's tub ID: we give the Foolscap-style
fURL of our own certificate (base32 SHA-1 of its DER form), which no client dials while
NURLs are present. The server ID is `v0-` and the base32 SPKI hash, from which Tahoe
derives the permutation seed. Also the shape of an entry in `private/servers.yaml`.

A server whose onion service admits only authorized clients (`[tor] onion.client_auth`)
says so in its `my-version`, the one announced text a Tahoe-LAFS 1.20 client shows beside
a server it cannot reach (its welcome page's version column and `/?t=json`): Tahoe cannot
hold a client key itself and sees only a SOCKS failure.
"""

from __future__ import annotations

import hashlib
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ..caps import base32
from ..crypto.spki import spki_hash
from ..gbs.nurl import Nurl
from ..introducer.announcements import VERSION_STRING

CLIENT_AUTH_NOTE = ("onion client authorization required: this server admits only Tor "
                    "clients holding a key its operator gave them (mistgrid [tor] "
                    "client_auth.private_key_file, or the key in the ClientOnionAuthDir "
                    "of your Tor)")


def server_id(certificate: x509.Certificate) -> str:
    return "v0-" + base32.b2a(spki_hash(certificate))


def tub_id(certificate: x509.Certificate) -> bytes:
    """Foolscap's tub ID of a certificate: SHA-1 of its DER form (20 bytes). Tahoe-LAFS
    seeds mutable write enablers and lease secrets with it."""
    return hashlib.sha1(certificate.public_bytes(serialization.Encoding.DER)).digest()


def announcement(nurls: list[Nurl], certificate: x509.Certificate,
                 nickname: str, client_auth: bool = False) -> dict[str, Any]:
    """The storage fields of a server's announcement (`client_auth`: its onion service
    admits only authorized clients; the announcement says so, above)."""
    tub = base32.b2a(tub_id(certificate))
    first = nurls[0]
    kind = "tcp" if first.scheme == "pb" else first.scheme[3:]
    hint = f"{kind}:{first.host}" + (f":{first.port}" if first.port is not None else "")
    return {
        "nickname": nickname,
        "anonymous-storage-FURL": f"pb://{tub}@{hint}/{first.swissnum}",
        "anonymous-storage-NURLs": [n.to_text() for n in nurls],
        "permutation-seed-base32": base32.b2a(spki_hash(certificate)),
        **({"my-version": f"{VERSION_STRING}; {CLIENT_AUTH_NOTE}"} if client_auth else {}),
    }


def servers_yaml(entries: dict[str, dict[str, Any]]) -> str:
    """`private/servers.yaml` text for {server id: announcement} (no YAML library needed:
    every value is a plain string or a list of them)."""
    lines = ["storage:"]
    for sid, ann in entries.items():
        lines += [f"  {sid}:", "    ann:"]
        for key, value in ann.items():
            if isinstance(value, list):
                lines.append(f"      {key}:")
                lines += [f"        - {_quoted(item)}" for item in value]
            else:
                lines.append(f"      {key}: {_quoted(value)}")
    return "\n".join(lines) + "\n"


def _quoted(value: object) -> str:
    """A YAML single-quoted scalar (a quote inside is doubled)."""
    return "'" + str(value).replace("'", "''") + "'"
