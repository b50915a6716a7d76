"""Mutable files through a client node's web API, on a local grid of node processes
(the grid of test_web_grid): PUT /uri with format= and mutable=, POST /uri?t=upload,
replace and offset writes with PUT /uri/$WRITECAP, GET with Range and t=json, and the
refusals (read caps, bad formats, bad offsets, bad keys)."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from mistgrid.caps.mutable import MutableFormat, MutableWriteCap, parse_mutable_cap
from mistgrid.crypto import rsa
from mistgrid.mutable.version import SigningKey

from ..conftest import run_cli
from .test_web_grid import form, http, post, ranged, web_grid, web_url  # noqa: F401

SEGMENT = 128 * 1024


@pytest.mark.parametrize("fmt", ["SDMF", "mdmf"])
@pytest.mark.parametrize("size", [0, 56, 1024, 3 * SEGMENT + 5])
def test_create_read_replace_write_at(web_url: str, fmt: str, size: int) -> None:  # noqa: F811
    data = os.urandom(size)
    status, cap = http("PUT", web_url + f"uri?format={fmt}", data)
    assert status == 200, cap
    text = cap.decode()
    parsed = parse_mutable_cap(text)
    assert isinstance(parsed, MutableWriteCap)
    assert parsed.format is MutableFormat[fmt.upper()]
    url = web_url + "uri/" + text
    assert http("GET", url) == (200, data)
    status, info = http("GET", url + "?t=json")
    kind, fields = json.loads(info)
    assert kind == "filenode" and fields["mutable"] is True and fields["size"] == size
    assert fields["format"] == fmt.upper() and fields["rw_uri"] == text
    assert fields["ro_uri"] == parsed.read_only().to_string()
    assert fields["verify_uri"] == parsed.verifier().to_string()
    replacement = os.urandom(size + 1000)
    assert http("PUT", url, replacement) == (200, cap)
    assert http("GET", url) == (200, replacement)
    offset = len(replacement) // 3
    assert http("PUT", url + f"?offset={offset}", b"PATCH") == (200, cap)
    expected = replacement[:offset] + b"PATCH" + replacement[offset + 5:]
    read_only = web_url + "uri/" + fields["ro_uri"]
    assert http("GET", read_only) == (200, expected)
    status, headers, body = ranged(read_only, f"bytes={offset - 2}-{offset + 6}")
    assert status == 206 and body == expected[offset - 2:offset + 7]
    assert headers["Content-Range"] == f"bytes {offset - 2}-{offset + 6}/{len(expected)}"
    # past the end: the gap is zeros
    end = len(expected)
    assert http("PUT", url + f"?offset={end + 10}", b"tail")[0] == 200
    assert http("GET", url)[1] == expected + b"\x00" * 10 + b"tail"


def test_mutable_true_uses_the_default_format(web_url: str) -> None:  # noqa: F811
    status, cap = http("PUT", web_url + "uri?mutable=true", b"hello")
    assert status == 200 and cap.startswith(b"URI:SSK:")
    status, cap = http("PUT", web_url + "uri?format=chk", b"x" * 100)
    assert status == 200 and cap.startswith(b"URI:CHK:")


def test_post_upload_with_format_field(web_url: str) -> None:  # noqa: F811
    """Tahoe's form: t, format and file as fields."""
    data = os.urandom(5000)
    body = form([("t", None, b"upload"), ("format", None, b"MDMF"), ("file", "a", data)])
    status, cap = post(web_url + "uri?t=upload", body, "multipart/form-data; boundary=xYzZY")
    assert status == 200 and cap.startswith(b"URI:MDMF:"), cap
    assert http("GET", web_url + "uri/" + cap.decode()) == (200, data)


def test_private_key_names_the_file(web_url: str) -> None:  # noqa: F811
    key = SigningKey.of(rsa.generate())
    text = base64.urlsafe_b64encode(key.private_der).decode().rstrip("=")
    status, cap = http("PUT", web_url + f"uri?format=MDMF&private-key={text}", b"keyed")
    assert status == 200 and cap.decode() == key.cap(MutableFormat.MDMF).to_string()


@pytest.mark.parametrize("query, reason", [
    ("uri?format=XDMF", b"unknown format"),
    ("uri?format=SDMF&private-key=%%%", b"private-key"),
    ("uri?format=SDMF&private-key=AAAA", b"private-key"),
])
def test_bad_create_requests_are_400(web_url: str, query: str,  # noqa: F811
                                     reason: bytes) -> None:
    status, body = http("PUT", web_url + query, b"data")
    assert status == 400 and reason in body and body.count(b"\n") == 1


def test_writes_need_a_write_cap(web_url: str) -> None:  # noqa: F811
    status, cap = http("PUT", web_url + "uri?format=SDMF", b"original")
    write = parse_mutable_cap(cap.decode())
    assert isinstance(write, MutableWriteCap)
    chk = http("PUT", web_url + "uri", b"i" * 100)[1].decode()
    for other in (write.read_only().to_string(), write.verifier().to_string(), chk):
        status, body = http("PUT", web_url + "uri/" + other, b"changed")
        assert status == 400 and b"write cap" in body, other
    for offset in ("-1", "x", "1" * 30):
        assert http("PUT", web_url + f"uri/{cap.decode()}?offset={offset}", b"z")[0] == 400
    assert http("GET", web_url + "uri/" + cap.decode()) == (200, b"original")


def test_missing_and_garbled_mutable_caps(web_url: str) -> None:  # noqa: F811
    unknown = SigningKey.of(rsa.generate()).cap(MutableFormat.SDMF).to_string()
    status, body = http("GET", web_url + "uri/" + unknown)
    assert status == 410 and b"no share" in body
    for garbled in ("URI:SSK:abc:def", "URI:MDMF-RO:" + "a" * 26, unknown[:-3],
                    unknown + ":3:131073"):
        status, body = http("GET", web_url + "uri/" + garbled)
        assert status == 400, garbled


def test_cli_put_mutable_replace_and_get(web_grid: tuple[str, Path],  # noqa: F811
                                         tmp_path: Path) -> None:
    """`mistgrid put --mutable`, `--format mdmf --private-key-path`, `put FILE WRITECAP`
    (replace) and `get` of the write and read caps."""
    client = str(web_grid[1] / "client")
    source = tmp_path / "in"
    source.write_bytes(b"first")
    made = run_cli("put", "-d", client, "--mutable", str(source))
    assert made.returncode == 0, made.stderr.decode()
    cap = made.stdout.decode().strip()
    assert cap.startswith("URI:SSK:")
    source.write_bytes(b"second, longer")
    replaced = run_cli("put", "-d", client, str(source), cap)
    assert replaced.returncode == 0 and replaced.stdout.decode().strip() == cap
    read_only = parse_mutable_cap(cap).read_only().to_string()  # type: ignore[union-attr]
    assert run_cli("get", "-d", client, read_only, "-").stdout == b"second, longer"
    key = SigningKey.of(rsa.generate())
    pem = tmp_path / "key.pem"
    pem.write_bytes(key.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption()))
    keyed = run_cli("put", "-d", client, "--format", "mdmf", "--private-key-path", str(pem),
                    str(source))
    assert keyed.stdout.decode().strip() == key.cap(MutableFormat.MDMF).to_string()
    refused = run_cli("put", "-d", client, str(source), read_only)
    assert refused.returncode == 1 and b"write cap" in refused.stderr
    assert b"Traceback" not in refused.stderr
