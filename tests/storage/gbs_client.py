"""A plain synchronous GBS client for contract tests: raw HTTP so tests can send anything.

TLS is checked the GBS way: no certificate authority, but the server's SPKI hash must be
the one in the NURL (the connection is refused otherwise).
"""

from __future__ import annotations

import base64
import http.client
import ssl
from collections.abc import Mapping
from typing import Any

import attrs
import cbor2
from cryptography import x509

from mistgrid.crypto.spki import spki_hash
from mistgrid.gbs.headers import secret_header, swissnum_header
from mistgrid.gbs.nurl import Nurl


@attrs.frozen
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def cbor(self) -> Any:
        return cbor2.loads(self.body)


class PinMismatchError(Exception):
    pass


class GbsClient:
    def __init__(self, nurl: Nurl) -> None:
        self.nurl = nurl
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self._context.check_hostname = False
        self._context.verify_mode = ssl.CERT_NONE
        self._conn: http.client.HTTPSConnection | None = None

    def _connect(self) -> http.client.HTTPSConnection:
        assert self.nurl.port is not None
        conn = http.client.HTTPSConnection(self.nurl.host, self.nurl.port,
                                           context=self._context, timeout=60)
        conn.connect()
        assert conn.sock is not None
        der = conn.sock.getpeercert(binary_form=True)
        if der is None or spki_hash(x509.load_der_x509_certificate(der)) != \
                self.nurl.spki_hash:
            conn.close()
            raise PinMismatchError("server certificate does not match the NURL's SPKI hash")
        return conn

    def request_raw(self, method: str, path: str, body: bytes,
                    headers: dict[str, str | bytes],
                    extra: list[tuple[str, bytes]]) -> int:
        """Send exactly this (with the right swissnum); the response status."""
        sent = dict(headers)
        resp = self.request(method, path, body=body, headers=sent, extra_headers=extra)
        return resp.status

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: Mapping[str, str | bytes] | None = None,
                secrets: dict[str, bytes] | None = None,
                swissnum: str | bytes | None = None, cbor: Any = None,
                authorize: bool = True,
                extra_headers: list[tuple[str, bytes]] | None = None) -> Response:
        all_headers: list[tuple[str, str | bytes]] = list((headers or {}).items())
        all_headers += extra_headers or []
        if authorize:
            all_headers.append(("Authorization", swissnum_header(
                swissnum if swissnum is not None else self.nurl.swissnum)))
        for kind, value in (secrets or {}).items():
            all_headers.append(("X-Tahoe-Authorization", secret_header(kind, value)))
        if cbor is not None:
            body = cbor2.dumps(cbor)
            all_headers.append(("Content-Type", "application/cbor"))
        for attempt in (1, 2):  # a kept-alive connection may have been closed by the server
            conn = self._conn or self._connect()
            self._conn = None
            try:
                conn.putrequest(method, path, skip_accept_encoding=True)
                for name, header_value in all_headers:
                    conn.putheader(name, header_value)
                conn.putheader("Content-Length", str(len(body or b"")))
                conn.endheaders(body or b"")
                resp = conn.getresponse()
                result = Response(resp.status, {k.lower(): v for k, v in resp.getheaders()},
                                  resp.read())
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError,
                    ssl.SSLEOFError):
                conn.close()
                if attempt == 2:
                    raise
                continue
            if resp.will_close:
                conn.close()
            else:
                self._conn = conn
            return result
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
