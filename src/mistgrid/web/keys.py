"""`private-key=`: a signing key given to the web API (webapi.rst)."""

from __future__ import annotations

import base64
from collections.abc import Mapping

from ..crypto import rsa
from ..errors import MistgridError
from ..mutable.version import SigningKey


class BadRequestError(MistgridError):
    """A request the web API cannot act on (400, with this text)."""


def private_key(args: Mapping[str, list[str]]) -> SigningKey | None:
    """`private-key=`: a DER RSA key in urlsafe base64 (webapi.rst), or None."""
    text = (args.get("private-key") or [""])[-1].strip()
    if not text:
        return None
    try:
        der = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError:
        raise BadRequestError("private-key is not urlsafe base64") from None
    try:
        return SigningKey.of(rsa.load_private_der(der))
    except MistgridError as err:
        raise BadRequestError(f"private-key: {err}") from None
