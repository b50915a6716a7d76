"""GBS request headers: swissnum authorization, X-Tahoe-Authorization secrets, ranges.

How this works: each parser takes header values as received and either returns a typed
value or raises `HeaderError` carrying the HTTP status the server must answer (401 for a
missing or wrong swissnum, 400 for malformed secrets, 416 for unusable ranges).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable

from ..errors import ProtocolError

SECRET_KINDS = ("lease-renew-secret", "lease-cancel-secret", "upload-secret", "write-enabler")
SECRET_SIZES = {"lease-renew-secret": 32, "lease-cancel-secret": 32, "write-enabler": 32}
MAX_SECRET_SIZE = 64
_B64 = re.compile(rb"[A-Za-z0-9+/]*={0,2}")
_CONTENT_RANGE = re.compile(rb"bytes (\d{1,19})-(\d{1,19})/(\*|\d{1,19})")
_RANGE = re.compile(rb"bytes=(\d{1,19})-(\d{1,19})")


class HeaderError(ProtocolError):
    """A header the server must refuse, with the status to refuse it with."""


def _b64(value: bytes) -> bytes:
    if not _B64.fullmatch(value) or len(value) % 4:
        raise ValueError("not base64")
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error as err:
        raise ValueError("not base64") from err


def swissnum_header(swissnum: str | bytes) -> bytes:
    raw = swissnum.encode("ascii") if isinstance(swissnum, str) else swissnum
    return b"Tahoe-LAFS " + base64.b64encode(raw)


def parse_authorization(values: Iterable[bytes]) -> bytes:
    """The swissnum presented in the one `Authorization: Tahoe-LAFS <base64>` header."""
    values = list(values)
    if len(values) != 1 or not values[0].startswith(b"Tahoe-LAFS "):
        raise HeaderError(401, "missing or malformed Authorization")
    try:
        return _b64(values[0][len(b"Tahoe-LAFS ") :].strip())
    except ValueError as err:
        raise HeaderError(401, "malformed Authorization") from err


def secret_header(kind: str, value: bytes) -> bytes:
    return kind.encode("ascii") + b" " + base64.b64encode(value)


def parse_secrets(values: Iterable[bytes], required: Iterable[str]) -> dict[str, bytes]:
    """Exactly the `required` secrets, each once, well-formed; else 400."""
    wanted = set(required)
    secrets: dict[str, bytes] = {}
    for value in values:
        kind_raw, _, encoded = value.strip().partition(b" ")
        kind = kind_raw.decode("ascii", "replace")
        if kind not in SECRET_KINDS or kind in secrets:
            raise HeaderError(400, f"unexpected or repeated secret {kind[:40]!r}")
        try:
            secret = _b64(encoded.strip())
        except ValueError as err:
            raise HeaderError(400, f"{kind} is not base64") from err
        size = SECRET_SIZES.get(kind)
        if (size is not None and len(secret) != size) or not 0 < len(secret) <= MAX_SECRET_SIZE:
            raise HeaderError(400, f"{kind} has the wrong length")
        secrets[kind] = secret
    if set(secrets) != wanted:
        missing = sorted(wanted - set(secrets))
        extra = sorted(set(secrets) - wanted)
        raise HeaderError(400, f"secrets missing {missing} or unexpected {extra}")
    return secrets


def parse_content_range(value: bytes | None) -> tuple[int, int]:
    """`bytes START-END/*` -> (START, END+1); 416 when absent or impossible."""
    match = _CONTENT_RANGE.fullmatch(value.strip()) if value is not None else None
    if match is None:
        raise HeaderError(416, "PATCH needs a Content-Range of the form bytes START-END/*")
    start, last = int(match[1]), int(match[2])
    if last < start or (match[3] != b"*" and int(match[3]) <= last):
        raise HeaderError(416, "impossible Content-Range")
    return start, last + 1


def content_range(start: int, end: int) -> bytes:
    return b"bytes %d-%d/*" % (start, end - 1)


def parse_range(value: bytes | None) -> tuple[int, int] | None:
    """`bytes=START-END` -> (START, END+1); None for no header; 416 when unusable."""
    if value is None:
        return None
    match = _RANGE.fullmatch(value.strip())
    if match is None:
        raise HeaderError(416, "only one closed byte range (bytes=START-END) is supported")
    start, last = int(match[1]), int(match[2])
    if last < start:
        raise HeaderError(416, "impossible Range")
    return start, last + 1
