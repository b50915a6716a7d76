"""SAM v3 (I2P's application bridge) message formats and destination helpers, sans-IO.

How this works: SAM is line-based: `VERB [SUBVERB] KEY=VALUE ...\\n`. `command()` formats one
request line, `parse_reply()` one reply line (values may be quoted). I2P's base64 uses `-`
and `~` for `+` and `/`. A destination's `.b32.i2p` address is the base32 SHA-256 of the
public destination bytes; `public_destination()` cuts those bytes out of a private key blob
(385 bytes of keys, then a certificate whose 2-byte length says how long it is).
"""

from __future__ import annotations

import base64
import hashlib
import re

import attrs

from ..errors import MistgridError

_TOKEN = re.compile(r'\s*([A-Za-z0-9_.\-]+)(?:=("(?:[^"\\]|\\.)*"|[^\s"]*))?')
_I2P_B64 = bytes.maketrans(b"-~", b"+/")
_STD_B64 = bytes.maketrans(b"+/", b"-~")


class SamError(MistgridError):
    """A SAM reply with RESULT other than OK, or a malformed reply."""

    def __init__(self, message: str, result: str = "") -> None:
        self.result = result
        super().__init__(message)


@attrs.frozen
class SamReply:
    verb: str
    subverb: str
    params: dict[str, str]

    @property
    def ok(self) -> bool:
        return self.params.get("RESULT", "OK") == "OK"

    def check(self, what: str) -> SamReply:
        """Raise SamError unless RESULT=OK."""
        if not self.ok:
            message = self.params.get("MESSAGE", "")
            raise SamError(f"SAM {what}: {self.params.get('RESULT')}"
                           + (f" ({message})" if message else ""), self.params["RESULT"])
        return self


def _quote(value: str) -> str:
    if value and not re.search(r'[\s"=]', value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def command(verb: str, subverb: str = "", **params: str | int) -> bytes:
    """One SAM request line, e.g. command("STREAM", "CONNECT", ID="a", DESTINATION=d)."""
    words = [verb] + ([subverb] if subverb else [])
    words += [f"{key}={_quote(str(value))}" for key, value in params.items()]
    return (" ".join(words) + "\n").encode("utf-8")


def parse_reply(line: bytes | str) -> SamReply:
    """Parse one reply line (without or with its newline)."""
    text = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
    text = text.strip()
    pos = 0
    words: list[str] = []
    params: dict[str, str] = {}
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise SamError(f"malformed SAM reply: {text[:80]!r}")
        key, value = match.group(1), match.group(2)
        if value is None:
            words.append(key)
        else:
            if value.startswith('"'):
                value = re.sub(r"\\(.)", r"\1", value[1:-1])
            params[key] = value
        pos = match.end()
    if not words:
        raise SamError(f"malformed SAM reply: {text[:80]!r}")
    return SamReply(words[0], words[1] if len(words) > 1 else "", params)


def i2p_b64decode(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii").translate(_I2P_B64), validate=True)


def i2p_b64encode(data: bytes) -> str:
    return base64.b64encode(data).translate(_STD_B64).decode("ascii")


def public_destination(private_blob: str) -> str:
    """The public destination (I2P base64) inside a SAM private key blob."""
    raw = i2p_b64decode(private_blob)
    if len(raw) < 387:
        raise SamError("private key blob too short")
    cert_length = int.from_bytes(raw[385:387], "big")
    return i2p_b64encode(raw[: 387 + cert_length])


def b32_address(destination: str) -> str:
    """`<52 chars>.b32.i2p` for a public destination (I2P base64)."""
    digest = hashlib.sha256(i2p_b64decode(destination)).digest()
    return base64.b32encode(digest).decode("ascii").rstrip("=").lower() + ".b32.i2p"
