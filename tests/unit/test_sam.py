"""SAM v3 line formats and destination helpers."""

from __future__ import annotations

import base64
import hashlib

import pytest

from mistgrid.wire import sam


def test_command_format() -> None:
    assert sam.command("HELLO", "VERSION", MIN="3.1", MAX="3.3") == \
        b"HELLO VERSION MIN=3.1 MAX=3.3\n"
    assert sam.command("NAMING", "LOOKUP", NAME="a b") == b'NAMING LOOKUP NAME="a b"\n'


def test_parse_reply() -> None:
    reply = sam.parse_reply(b'SESSION STATUS RESULT=I2P_ERROR MESSAGE="no \\"luck\\""\n')
    assert (reply.verb, reply.subverb) == ("SESSION", "STATUS")
    assert reply.params == {"RESULT": "I2P_ERROR", "MESSAGE": 'no "luck"'}
    assert not reply.ok
    with pytest.raises(sam.SamError, match="I2P_ERROR"):
        reply.check("create")
    assert sam.parse_reply("HELLO REPLY RESULT=OK VERSION=3.1").check("hello").ok


@pytest.mark.parametrize("line", [b"", b"   ", b"=x", b'A B="unterminated'])
def test_malformed_replies(line: bytes) -> None:
    with pytest.raises(sam.SamError):
        sam.parse_reply(line)


def test_destination_helpers() -> None:
    """public_destination cuts keys + certificate; b32 is base32(sha256(public))."""
    cert = b"\x05\x00\x04\x00\x07\x00\x04"  # key certificate (type 5), 4-byte payload
    public = bytes(range(256)) + bytes(128) + cert  # 384 bytes of keys, then the cert
    private = public + b"\x01" * 100
    blob = sam.i2p_b64encode(private)
    assert sam.public_destination(blob) == sam.i2p_b64encode(public)
    digest = hashlib.sha256(public).digest()
    expected = base64.b32encode(digest).decode().rstrip("=").lower() + ".b32.i2p"
    assert sam.b32_address(sam.i2p_b64encode(public)) == expected
    assert "+" not in blob and "/" not in blob
    with pytest.raises(sam.SamError):
        sam.public_destination(sam.i2p_b64encode(b"short"))
