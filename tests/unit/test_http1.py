"""The GBS client's HTTP/1.1: a response read from bytes split anywhere is the same
response; every way of delimiting a body; and what a hostile or broken server sends is
refused with HttpFormatError, never held beyond the reader's limit."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mistgrid.gbs.http1 import MAX_HEAD, HttpFormatError, ResponseReader, request_head

HEAD = (b"HTTP/1.1 206 Partial Content\r\nServer: TwistedWeb/24.3.0\r\n"
        b"Date: Thu, 03 Dec 2026 20:00:00 GMT\r\nContent-Type: application/octet-stream\r\n")


def chunked(body: bytes, sizes: list[int]) -> bytes:
    out, at = b"", 0
    for size in sizes:
        piece = body[at:at + size]
        if not piece:
            break
        out += b"%x;ext=1\r\n" % len(piece) + piece + b"\r\n"
        at += len(piece)
    if at < len(body):
        out += b"%X\r\n" % (len(body) - at) + body[at:] + b"\r\n"
    return out + b"0\r\nX-Trailer: yes\r\n\r\n"


def read(stream: bytes, cuts: list[int], limit: int = 1 << 20) -> ResponseReader:
    reader = ResponseReader(limit)
    at = 0
    for cut in sorted(set(cuts)):
        assert reader.feed(stream[at:cut]) == b""
        at = cut
    assert reader.feed(stream[at:]) == b""
    return reader


@given(body=st.binary(max_size=3000), data=st.data())
def test_a_response_split_anywhere_reads_the_same(body: bytes, data: st.DataObject) -> None:
    framings = {
        "length": HEAD + b"Content-Length: %d\r\n\r\n" % len(body) + body,
        "chunked": HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + chunked(
            body, data.draw(st.lists(st.integers(1, 700), max_size=6))),
    }
    for name, stream in framings.items():
        cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=12), label=name)
        reader = read(stream, cuts)
        assert reader.done and reader.status == 206 and reader.keep_alive
        assert reader.body == body
        assert reader.headers[b"server"] == [b"TwistedWeb/24.3.0"]


def test_a_body_without_length_ends_with_the_connection() -> None:
    reader = ResponseReader(100)
    reader.feed(b"HTTP/1.1 200 OK\r\n\r\nsome")
    reader.feed(b" bytes")
    assert not reader.done
    reader.connection_lost()
    assert reader.done and reader.body == b"some bytes" and not reader.keep_alive


def test_no_body_and_connection_close() -> None:
    reader = ResponseReader(100)
    assert reader.feed(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n") == b""
    assert reader.done and reader.body == b"" and not reader.keep_alive
    old = ResponseReader(100)
    old.feed(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n")
    assert old.done and not old.keep_alive


def test_bytes_after_the_response_are_given_back() -> None:
    reader = ResponseReader(100)
    assert reader.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA") == b"EXTRA"
    assert reader.body == b"ok"


@pytest.mark.parametrize("stream", [
    b"HTTP/1.1 200 OK\r\nContent-Length: 101\r\n\r\n",  # announced over the limit
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n65\r\n",  # a chunk over it
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n32\r\n" + b"x" * 50
    + b"\r\n33\r\n",  # chunks adding up to over it
    b"HTTP/1.1 200 OK\r\n\r\n" + b"x" * 101,  # until close, beyond it
    b"SSH-2.0-OpenSSH\r\n\r\n",
    b"HTTP/1.1 2000 OK\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nxy\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"1" * 2000,
    b"HTTP/1.1 100 Continue\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nX: " + b"y" * MAX_HEAD,
    b"HTTP/1.1 200 OK\r\nX: " + b"y" * MAX_HEAD + b"\r\n\r\n",
])
def test_what_a_broken_or_hostile_server_sends_is_refused(stream: bytes) -> None:
    reader = ResponseReader(100)
    with pytest.raises(HttpFormatError):
        reader.feed(stream)
        reader.connection_lost()


def test_a_response_cut_short_is_an_error() -> None:
    for stream in (b"", b"HTTP/1.1 200 OK\r\nContent-Le",
                   b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabc",
                   b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabcde\r\n"):
        reader = ResponseReader(100)
        reader.feed(stream)
        with pytest.raises(HttpFormatError, match="closed in the middle"):
            reader.connection_lost()


def test_request_head() -> None:
    assert request_head(b"PATCH", b"/storage/v1/immutable/x/0", b"h:1",
                        [(b"Content-Range", b"bytes 0-1/*")], 2) == (
        b"PATCH /storage/v1/immutable/x/0 HTTP/1.1\r\nHost: h:1\r\n"
        b"Content-Range: bytes 0-1/*\r\nContent-Length: 2\r\n\r\n")
    assert request_head(b"GET", b"/", b"h", [], None) == b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"
