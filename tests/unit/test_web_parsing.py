"""The web API's pure parsers: Range headers and multipart/form-data located in a file."""

from __future__ import annotations

import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mistgrid.web.api import UNSATISFIABLE, byte_range
from mistgrid.web.multipart import MultipartError, Window, boundary_of, locate_parts


@pytest.mark.parametrize("header, size, expected", [
    (None, 100, None),
    (b"bytes=0-0", 100, (0, 1)),
    (b"bytes=5-", 100, (5, 100)),
    (b"bytes=-10", 100, (90, 100)),
    (b"bytes=-1000", 100, (0, 100)),
    (b"bytes=90-1000", 100, (90, 100)),
    (b"bytes=100-", 100, UNSATISFIABLE),
    (b"bytes=7-3", 100, UNSATISFIABLE),
    (b"bytes=-0", 100, UNSATISFIABLE),
    (b"bytes=0-", 0, UNSATISFIABLE),
    (b"bytes=-", 100, None),
    (b"bytes=1-2,4-5", 100, None),  # several ranges: served whole
    (b"lines=1-2", 100, None),
])
def test_byte_range(header: bytes | None, size: int,
                    expected: tuple[int, int] | None) -> None:
    assert byte_range(header, size) == expected


def _form(boundary: bytes, fields: list[tuple[bytes, bytes]]) -> bytes:
    out = b"preamble\r\n"
    for name, content in fields:
        out += (b"--" + boundary + b"\r\nContent-Disposition: form-data; name=\"" + name
                + b"\"; filename=\"f\"\r\n\r\n" + content + b"\r\n")
    return out + b"--" + boundary + b"--\r\nepilogue"


@given(st.lists(st.binary(max_size=3000), min_size=1, max_size=4),
       st.integers(min_value=1, max_value=70))
def test_locate_parts_finds_every_content(contents: list[bytes], boundary_size: int) -> None:
    """Whatever the contents and boundary length, each part's range reads back its bytes,
    also when a delimiter straddles the scanning chunks (chunk size made tiny here)."""
    boundary = b"b" * boundary_size
    contents = [c.replace(b"\r\n--" + boundary, b"") for c in contents]
    body = _form(boundary, [(f"f{i}".encode(), c) for i, c in enumerate(contents)])
    parts = locate_parts(io.BytesIO(body), boundary.decode(), chunk_size=7)
    assert [p.name for p in parts] == [f"f{i}" for i in range(len(contents))]
    for part, content in zip(parts, contents, strict=True):
        window = Window(io.BytesIO(body), part.start, part.end)
        assert window.read() == content
        window.seek(0)
        assert window.read(3) + window.read() == content


@pytest.mark.parametrize("body", [
    b"no boundary at all",
    b"--B\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nunterminated",
    b"--B\r\nX-Other: 1\r\n\r\nx\r\n--B--",
    b"--Bjunk",
])
def test_locate_parts_refuses_broken_bodies(body: bytes) -> None:
    with pytest.raises(MultipartError):
        locate_parts(io.BytesIO(body), "B")


def test_boundary_of() -> None:
    assert boundary_of('multipart/form-data; boundary="a b"') == "a b"
    assert boundary_of("Multipart/Form-Data; charset=x; boundary=abc") == "abc"
    for bad in ("multipart/form-data", "text/plain; boundary=x"):
        with pytest.raises(MultipartError):
            boundary_of(bad)
