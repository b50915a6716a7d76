"""The sans-IO SOCKS5 client against exact bytes (RFC 1928/1929)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mistgrid.wire.socks5 import Socks5Client, SocksError, State, encode_address

ONION = "abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrstuvw.onion"


def test_connect_by_name_is_resolved_remotely() -> None:
    """A name (here an onion) goes to the proxy as ATYP 3: never resolved locally."""
    client = Socks5Client(ONION, 80)
    assert client.data_to_send() == b"\x05\x01\x00"
    client.receive_data(b"\x05\x00")
    name = ONION.encode()
    assert client.data_to_send() == b"\x05\x01\x00\x03" + bytes([len(name)]) + name + b"\x00P"
    client.receive_data(b"\x05\x00\x00\x01\x00\x00\x00\x00\x00\x00hello")
    assert client.state is State.CONNECTED
    assert client.unused_data == b"hello"


def test_ip_literals_and_reply_in_pieces() -> None:
    """IPv4/IPv6 literals use ATYP 1/4; a reply split byte by byte still completes."""
    assert encode_address("127.0.0.1", 8080) == b"\x01\x7f\x00\x00\x01\x1f\x90"
    assert encode_address("::1", 1) == b"\x04" + b"\x00" * 15 + b"\x01\x00\x01"
    client = Socks5Client("127.0.0.1", 5)
    client.data_to_send()
    for byte in b"\x05\x00":
        client.receive_data(bytes([byte]))
    client.data_to_send()
    reply = b"\x05\x00\x00\x03\x04host\x00\x05"
    for byte in reply:
        client.receive_data(bytes([byte]))
    assert client.state is State.CONNECTED and client.unused_data == b""


def test_username_password() -> None:
    client = Socks5Client("127.0.0.1", 1, b"user", b"pw")
    assert client.data_to_send() == b"\x05\x01\x02"
    client.receive_data(b"\x05\x02")
    assert client.data_to_send() == b"\x01\x04user\x02pw"
    client.receive_data(b"\x01\x00")
    assert client.data_to_send().startswith(b"\x05\x01\x00\x01")


@pytest.mark.parametrize("code,text", [(0x05, "connection refused"),
                                       (0xF0, "onion service descriptor can not be found"),
                                       (0x42, "unknown error")])
def test_refusals_name_the_reason(code: int, text: str) -> None:
    client = Socks5Client("127.0.0.1", 1)
    client.receive_data(b"\x05\x00")
    with pytest.raises(SocksError, match=text) as info:
        client.receive_data(bytes([5, code, 0, 1, 0, 0, 0, 0, 0, 0]))
    assert info.value.code == code and client.state is State.FAILED


def test_bad_proxies() -> None:
    """A non-SOCKS5 answer or no acceptable method fails cleanly."""
    with pytest.raises(SocksError):
        Socks5Client("127.0.0.1", 1).receive_data(b"\x04\x00")
    with pytest.raises(SocksError):
        Socks5Client("127.0.0.1", 1).receive_data(b"\x05\xff")
    with pytest.raises(SocksError):
        encode_address("127.0.0.1", 0)
    with pytest.raises(SocksError):
        encode_address("x" * 256, 1)


@given(st.binary(max_size=64))
def test_any_proxy_bytes_give_connected_or_socks_error(data: bytes) -> None:
    """Whatever a proxy sends, the machine ends CONNECTED, waiting, or raises SocksError."""
    client = Socks5Client("example.invalid", 443)
    try:
        client.receive_data(data)
    except SocksError:
        assert client.state is State.FAILED
    else:  # only a proxy that accepted "no auth" and then the request is CONNECTED
        assert client.state in (State.GREETING, State.REQUEST, State.CONNECTED)
        if client.state is State.CONNECTED:
            assert data[:2] == b"\x05\x00" and data[2:4] == b"\x05\x00"
        if client.state is State.GREETING:
            assert len(data) < 2
