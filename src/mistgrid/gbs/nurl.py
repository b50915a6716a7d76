"""NURLs (`specifications/url.rst`): where a GBS storage server is and who it is.

    pb://<SPKI hash>@<host>:<port>/<swissnum>#v=1          (TCP)
    pb+tor://<SPKI hash>@<name>.onion:<port>/<swissnum>#v=1
    pb+i2p://<SPKI hash>@<name>.i2p[:<port>]/<swissnum>#v=1

How this works: `Nurl` is a frozen value; `parse_nurl` accepts only version-1 NURLs with a
32-byte SPKI hash and raises `NurlError` for anything else. The swissnum is a secret: the
repr hides it.
"""

from __future__ import annotations

import re

import attrs

from ..crypto.spki import decode_hash, encode_hash
from ..errors import MistgridError

SCHEMES = ("pb", "pb+tor", "pb+i2p")
_NURL = re.compile(
    r"(?P<scheme>pb|pb\+tor|pb\+i2p)://(?P<hash>[A-Za-z0-9_\-]+)@"
    r"(?P<host>\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.\-_~]+)(?::(?P<port>[0-9]{1,5}))?"
    r"/(?P<swissnum>[A-Za-z0-9_\-.~]+)#v=1", re.ASCII)


class NurlError(MistgridError, ValueError):
    """A malformed or unsupported NURL (the message never repeats the swissnum)."""


@attrs.frozen(repr=False)
class Nurl:
    scheme: str
    spki_hash: bytes
    host: str
    port: int | None
    swissnum: str

    def to_text(self) -> str:
        port = f":{self.port}" if self.port is not None else ""
        return (f"{self.scheme}://{encode_hash(self.spki_hash)}@{self.host}{port}/"
                f"{self.swissnum}#v=1")

    def __repr__(self) -> str:
        return f"<Nurl {self.scheme}://{encode_hash(self.spki_hash)}@{self.host}:{self.port}>"


def parse_nurl(text: str) -> Nurl:
    match = _NURL.fullmatch(text.strip())
    if match is None:
        raise NurlError("not a version-1 NURL (pb://SPKI@host:port/swissnum#v=1)")
    try:
        digest = decode_hash(match["hash"])
    except ValueError as err:
        raise NurlError(f"bad SPKI hash in NURL: {err}") from err
    port = int(match["port"]) if match["port"] else None
    if port is not None and not 0 < port < 65536:
        raise NurlError("NURL port out of range")
    host = match["host"]
    scheme = match["scheme"]
    if scheme == "pb+i2p" and not host.endswith(".i2p"):
        raise NurlError("a pb+i2p NURL needs an .i2p host")
    if scheme != "pb+i2p" and port is None:
        raise NurlError("NURL needs a port")
    return Nurl(scheme, digest, host, port, match["swissnum"])
