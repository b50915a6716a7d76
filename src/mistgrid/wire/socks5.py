"""A sans-IO SOCKS5 client for CONNECT (RFC 1928, RFC 1929), with remote name resolution.

How this works: the machine is created with the target; `data_to_send()` gives the bytes
to write, `receive_data()` takes what the proxy sent. `state` moves GREETING -> AUTH ->
REQUEST -> CONNECTED (or FAILED, with `error`). Host names, `.onion` and `.i2p` names are
always sent to the proxy as names (ATYP 3) and never resolved here, so no DNS query can
leave the machine outside the proxy. Bytes after the reply belong to the application
(`unused_data`).
"""

from __future__ import annotations

import enum
import ipaddress

from ..errors import MistgridError

VERSION = 5
NO_AUTH = 0x00
USERPASS = 0x02
NO_ACCEPTABLE = 0xFF
CONNECT = 0x01
ATYP_IPV4, ATYP_NAME, ATYP_IPV6 = 0x01, 0x03, 0x04

REPLY_TEXT = {
    0x01: "general SOCKS server failure",
    0x02: "connection not allowed by ruleset",
    0x03: "network unreachable",
    0x04: "host unreachable",
    0x05: "connection refused",
    0x06: "TTL expired",
    0x07: "command not supported",
    0x08: "address type not supported",
    # Tor's extended errors (SocksPort ExtendedErrors)
    0xF0: "onion service descriptor can not be found",
    0xF1: "onion service descriptor is invalid",
    0xF2: "onion service introduction failed",
    0xF3: "onion service rendezvous failed",
    0xF4: "onion service missing client authorization",
    0xF5: "onion service wrong client authorization",
    0xF6: "onion service invalid address",
    0xF7: "onion service introduction timed out",
}


class SocksError(MistgridError):
    """The proxy refused or broke the protocol; `code` is its reply code (or None)."""

    def __init__(self, message: str, code: int | None = None) -> None:
        self.code = code
        super().__init__(message)


class State(enum.Enum):
    GREETING = "greeting"
    AUTH = "auth"
    REQUEST = "request"
    CONNECTED = "connected"
    FAILED = "failed"


def encode_address(host: str, port: int) -> bytes:
    """ATYP + address + port; IP literals as addresses, everything else as a name."""
    if not 0 < port < 65536:
        raise SocksError(f"bad port {port}")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        name = host.encode("idna") if not host.isascii() else host.encode("ascii")
        if not 0 < len(name) < 256:
            raise SocksError("host name too long for SOCKS5") from None
        return bytes([ATYP_NAME, len(name)]) + name + port.to_bytes(2, "big")
    atyp = ATYP_IPV4 if ip.version == 4 else ATYP_IPV6
    return bytes([atyp]) + ip.packed + port.to_bytes(2, "big")


class Socks5Client:
    """One CONNECT through a SOCKS5 proxy."""

    def __init__(self, host: str, port: int, username: bytes | None = None,
                 password: bytes | None = None) -> None:
        self._request = bytes([VERSION, CONNECT, 0]) + encode_address(host, port)
        self._credentials = (username, password) if username is not None else None
        methods = [USERPASS] if self._credentials else [NO_AUTH]
        self._out = bytes([VERSION, len(methods), *methods])
        self._in = b""
        self.state = State.GREETING
        self.error: SocksError | None = None
        self.unused_data = b""

    def data_to_send(self) -> bytes:
        out, self._out = self._out, b""
        return out

    def receive_data(self, data: bytes) -> None:
        """Feed proxy bytes; raises SocksError (and enters FAILED) on a refusal."""
        if self.state is State.CONNECTED:
            self.unused_data += data
            return
        if self.state is State.FAILED:
            return
        self._in += data
        try:
            self._advance()
        except SocksError as err:
            self.state, self.error = State.FAILED, err
            raise

    def _advance(self) -> None:
        if self.state is State.GREETING and len(self._in) >= 2:
            version, method = self._in[0], self._in[1]
            self._in = self._in[2:]
            if version != VERSION:
                raise SocksError("proxy does not speak SOCKS5")
            if method == USERPASS and self._credentials:
                user, password = self._credentials
                assert password is not None
                self._out += bytes([1, len(user)]) + user + bytes([len(password)]) + password
                self.state = State.AUTH
            elif method == NO_AUTH and not self._credentials:
                self._out += self._request
                self.state = State.REQUEST
            else:
                raise SocksError("proxy accepts none of our authentication methods")
        if self.state is State.AUTH and len(self._in) >= 2:
            status = self._in[1]
            self._in = self._in[2:]
            if status != 0:
                raise SocksError("proxy refused the username and password")
            self._out += self._request
            self.state = State.REQUEST
        if self.state is State.REQUEST:
            self._read_reply()

    def _read_reply(self) -> None:
        if len(self._in) < 5:
            return
        version, code, _rsv, atyp = self._in[:4]
        if version != VERSION:
            raise SocksError("malformed SOCKS5 reply")
        if code != 0:
            raise SocksError(f"proxy: {REPLY_TEXT.get(code, 'unknown error')} "
                             f"(code 0x{code:02x})", code)
        if atyp == ATYP_IPV4:
            size = 4 + 4 + 2
        elif atyp == ATYP_IPV6:
            size = 4 + 16 + 2
        elif atyp == ATYP_NAME:
            size = 4 + 1 + self._in[4] + 2
        else:
            raise SocksError("malformed SOCKS5 reply address")
        if len(self._in) < size:
            return
        self.unused_data = self._in[size:]
        self._in = b""
        self.state = State.CONNECTED
