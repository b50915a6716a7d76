"""The GBS storage server: twisted.web in front of the disk backend.

How this works: one leaf resource takes every request under `/storage/v1/`. It checks the
swissnum first (401 before anything else is looked at), then routes on method and path,
checks the X-Tahoe-Authorization secrets the endpoint needs (400 if malformed), parses the
body against its schema (400) and calls the backend. Every refusal is a `ProtocolError`
whose status becomes the response; nothing a client sends can raise anything else out of
here, and an unexpected error is logged without the request's secrets and answered 500.
"""

from __future__ import annotations

import hmac
import io
import re
from collections.abc import Callable, Sequence
from typing import IO, Any

from twisted.internet import task
from twisted.internet.interfaces import IPullProducer
from twisted.logger import Logger
from twisted.web import http, resource, server
from zope.interface import implementer

from .. import __version__
from ..caps import base32
from ..errors import ProtocolError
from ..gbs import headers, messages
from ..gbs.messages import MAX_MESSAGE_SIZE
from .backend import MAX_MUTABLE_SHARE_SIZE, DiskBackend

PROTOCOL_KEY = "http://allmydata.org/tahoe/protocols/storage/v1"
MAX_PATCH_SIZE = 16 * 1024 * 1024
MAX_READ_SIZE = 16 * 1024 * 1024
STREAM_CHUNK = 1024 * 1024
IN_MEMORY_BODY = 2 * 1024 * 1024  # larger bodies are spooled to a temporary file
SMALL_UNAUTHORIZED_BODY = 64 * 1024  # larger ones are refused before they are read
# Seconds a connection may sit idle (or half-open) before the server closes it: longer than
# the 240 s Twisted's client pools (Tahoe's and ours) keep idle connections, so a client
# always closes first and never sends on a connection the server is closing.
IDLE_TIMEOUT = 300
_SI = re.compile(r"[a-z2-7]{26}", re.ASCII)
_NUMBER = re.compile(r"0|[1-9][0-9]{0,2}", re.ASCII)
log = Logger()

Handler = Callable[[server.Request, list[str]], bytes | int]  # int: NOT_DONE_YET


def _storage_index(text: str) -> bytes:
    if not _SI.fullmatch(text):
        raise ProtocolError(400, "bad storage index")
    try:
        return base32.a2b(text)
    except ValueError as err:
        raise ProtocolError(400, "bad storage index") from err


def _share_number(text: str) -> int:
    if not _NUMBER.fullmatch(text) or int(text) > 255:
        raise ProtocolError(400, "bad share number")
    return int(text)


def _header(request: server.Request, name: bytes) -> bytes | None:
    value: bytes | None = request.getHeader(name)
    return value


def _all(request: server.Request, name: bytes) -> list[bytes]:
    return list(request.requestHeaders.getRawHeaders(name, []))


def _secrets(request: server.Request, *kinds: str) -> dict[str, bytes]:
    return headers.parse_secrets(_all(request, b"x-tahoe-authorization"), kinds)


class StorageResource(resource.Resource):
    """Everything under /storage/v1/."""

    isLeaf = True  # noqa: N815 (twisted.web name)

    def __init__(self, backend: DiskBackend, swissnum: bytes) -> None:
        super().__init__()
        self.backend = backend
        self._swissnum = swissnum

    def render(self, request: server.Request) -> bytes | int:
        try:
            presented = headers.parse_authorization(_all(request, b"authorization"))
            if not hmac.compare_digest(presented, self._swissnum):
                raise ProtocolError(401, "wrong swissnum")
            segments = [s.decode("utf-8", "replace") for s in request.postpath or []]
            method = request.method.decode("ascii", "replace")
            handler, args = self._route(method, segments)
            return handler(request, args)
        except ProtocolError as err:
            return self._refuse(request, err.status, str(err))
        except Exception:  # a bug: never leak details (or secrets) to the client
            log.failure("storage request failed")
            return self._refuse(request, 500, "internal error")

    def _refuse(self, request: server.Request, status: int, message: str) -> bytes:
        request.setResponseCode(status)
        _set_header(request, b"content-type", b"text/plain; charset=utf-8")
        return message.encode("utf-8") + b"\n"

    def _route(self, method: str, segments: list[str]) -> tuple[Handler, list[str]]:
        if segments[:2] != ["storage", "v1"]:
            raise ProtocolError(404, "not found")
        rest = segments[2:]
        kind = rest[0] if rest else ""
        n = len(rest)
        routes: dict[tuple[str, str, int], Handler] = {
            ("GET", "version", 1): self.version,
            ("PUT", "lease", 2): self.lease,
            ("POST", "immutable", 2): self.allocate,
            ("PATCH", "immutable", 3): self.write,
            ("GET", "immutable", 3): self.read_or_list,
            ("PUT", "immutable", 4): self.abort,
            ("POST", "immutable", 4): self.corrupt,
            ("POST", "mutable", 3): self.read_test_write,
            ("GET", "mutable", 3): self.mutable_read_or_list,
            ("POST", "mutable", 4): self.mutable_corrupt,
        }
        handler = routes.get((method, kind, n))
        if handler is None:
            known = {k for (_m, k, c) in routes if (k, c) == (kind, n)}
            raise ProtocolError(405 if known else 404, "no such endpoint")
        return handler, rest[1:]

    def _respond(self, request: server.Request, value: Any, status: int = 200) -> bytes:
        body, kind = messages.encode_body(
            value, messages.wants_json(_decoded(_header(request, b"accept"))))
        request.setResponseCode(status)
        _set_header(request, b"content-type", kind.encode("ascii"))
        return body

    def _body(self, request: server.Request, limit: int = messages.MAX_MESSAGE_SIZE) -> Any:
        content = _content(request).read(limit + 1)
        return messages.decode_body(_decoded(_header(request, b"content-type")), content,
                                    limit)

    # ---- endpoints ----

    def version(self, request: server.Request, args: list[str]) -> bytes:
        space = self.backend.available_space()
        # Byte-string keys, exactly as Tahoe-LAFS 1.20 sends them (its client expects them).
        return self._respond(request, {
            PROTOCOL_KEY.encode("ascii"): {
                b"maximum-immutable-share-size": space,
                b"maximum-mutable-share-size": MAX_MUTABLE_SHARE_SIZE,
                b"available-space": space,
            },
            b"application-version": f"mistgrid/{__version__}".encode("ascii"),
        })

    def lease(self, request: server.Request, args: list[str]) -> bytes:
        storage_index = _storage_index(args[0])
        secrets = _secrets(request, "lease-renew-secret", "lease-cancel-secret")
        if not self.backend.add_or_renew_lease(storage_index, secrets["lease-renew-secret"],
                                               secrets["lease-cancel-secret"]):
            raise ProtocolError(404, "no shares for this storage index")
        request.setResponseCode(204)
        return b""

    def allocate(self, request: server.Request, args: list[str]) -> bytes:
        storage_index = _storage_index(args[0])
        secrets = _secrets(request, "lease-renew-secret", "lease-cancel-secret",
                           "upload-secret")
        body = messages.parse_allocate(self._body(request))
        have, allocated = self.backend.allocate(
            storage_index, body.share_numbers, body.allocated_size, secrets["upload-secret"],
            secrets["lease-renew-secret"], secrets["lease-cancel-secret"])
        return self._respond(request, {"already-have": set(have), "allocated": allocated})

    def write(self, request: server.Request, args: list[str]) -> bytes:
        storage_index, number = _storage_index(args[0]), _share_number(args[1])
        secret = _secrets(request, "upload-secret")["upload-secret"]
        start, end = headers.parse_content_range(_header(request, b"content-range"))
        if end - start > MAX_PATCH_SIZE:
            raise ProtocolError(413, "write too large for one request")
        data = _content(request).read(end - start + 1)
        if len(data) != end - start:
            raise ProtocolError(400, "body length does not match Content-Range")
        result = self.backend.write(storage_index, number, secret, start, data)
        required = [{"begin": b, "end": e} for b, e in result.required]
        return self._respond(request, {"required": required}, 201 if result.complete else 200)

    def read_or_list(self, request: server.Request, args: list[str]) -> bytes | int:
        storage_index = _storage_index(args[0])
        if args[1] == "shares":
            return self._respond(request, self.backend.immutable_shares(storage_index))
        number = _share_number(args[1])
        return self._read(request, self.backend.share_length(storage_index, number),
                          lambda o, n: self.backend.read_immutable(storage_index, number, o, n))

    def mutable_read_or_list(self, request: server.Request,
                             args: list[str]) -> bytes | int:
        storage_index = _storage_index(args[0])
        if args[1] == "shares":
            return self._respond(request, self.backend.mutable_shares(storage_index))
        number = _share_number(args[1])
        return self._read(request, self.backend.mutable_length(storage_index, number),
                          lambda o, n: self.backend.read_mutable(storage_index, number, o, n))

    def read_test_write(self, request: server.Request, args: list[str]) -> bytes:
        if args[1] != "read-test-write":
            raise ProtocolError(404, "no such endpoint")
        storage_index = _storage_index(args[0])
        secrets = _secrets(request, "write-enabler", "lease-renew-secret",
                           "lease-cancel-secret")
        body = messages.parse_read_test_write(
            self._body(request, messages.MAX_READ_TEST_WRITE_SIZE))
        success, reads = self.backend.read_test_write(
            storage_index, secrets["write-enabler"], secrets["lease-renew-secret"],
            secrets["lease-cancel-secret"], body)
        return self._respond(request, {"success": success, "data": reads})

    def mutable_corrupt(self, request: server.Request, args: list[str]) -> bytes:
        if args[2] != "corrupt":
            raise ProtocolError(404, "no such endpoint")
        storage_index, number = _storage_index(args[0]), _share_number(args[1])
        reason = messages.parse_corrupt(self._body(request))
        if not self.backend.advise_corrupt(storage_index, number, reason, mutable=True):
            raise ProtocolError(404, "no such share")
        return b""

    def _read(self, request: server.Request, length: int,
              read: Callable[[int, int], bytes]) -> bytes | int:
        wanted = headers.parse_range(_header(request, b"range"))
        start, end = wanted if wanted is not None else (0, length)
        end = max(start, min(end, length))  # past the end: what there is (the spec says so)
        if wanted is None and length > STREAM_CHUNK:
            # A whole share, however large: streamed in chunks as the client takes them.
            _set_header(request, b"content-type", b"application/octet-stream")
            _set_header(request, b"content-length", str(length).encode())
            _ShareStreamer(request, read, length).start()
            done: int = server.NOT_DONE_YET
            return done
        if end - start > MAX_READ_SIZE:
            raise ProtocolError(416, "range too large for one request")
        data = read(start, end - start)
        _set_header(request, b"content-type", b"application/octet-stream")
        if not data:
            request.setResponseCode(204)
            return b""
        if wanted is not None:
            request.setResponseCode(206)
            _set_header(request, b"content-range", headers.content_range(start, start + len(data)))
        if len(data) > STREAM_CHUNK:
            # Read at once (a mutable share may change between reactor turns), written
            # in pieces as the connection takes them: one large write costs more CPU in
            # copies into fresh memory (TLS's output, Twisted's send buffer) than the
            # encryption itself.
            _set_header(request, b"content-length", str(len(data)).encode())
            view = memoryview(data)  # (sent in slices of it, none of them a copy)
            _ShareStreamer(request, lambda offset, size: view[offset:offset + size],
                           len(data)).start()
            streaming: int = server.NOT_DONE_YET
            return streaming
        return data

    def abort(self, request: server.Request, args: list[str]) -> bytes:
        if args[2] != "abort":
            raise ProtocolError(404, "no such endpoint")
        storage_index, number = _storage_index(args[0]), _share_number(args[1])
        secret = _secrets(request, "upload-secret")["upload-secret"]
        self.backend.abort(storage_index, number, secret)
        return b""

    def corrupt(self, request: server.Request, args: list[str]) -> bytes:
        if args[2] != "corrupt":
            raise ProtocolError(404, "no such endpoint")
        storage_index, number = _storage_index(args[0]), _share_number(args[1])
        reason = messages.parse_corrupt(self._body(request))
        if not self.backend.advise_corrupt(storage_index, number, reason):
            raise ProtocolError(404, "no such share")
        return b""


def _set_header(request: server.Request, name: bytes, value: bytes) -> None:
    request.setHeader(name, value)


def _content(request: server.Request) -> IO[bytes]:
    if request.content is None:
        raise ProtocolError(400, "no request body")
    content: IO[bytes] = request.content
    return content


def _decoded(value: bytes | None) -> str | None:
    return value.decode("latin-1") if value is not None else None


@implementer(IPullProducer)
class _ShareStreamer:
    """Writes bytes [0, length) that `read` gives (from a share on disk: memory stays one
    chunk whatever its size; or from a read already in hand) to the response, one chunk
    per request for more (a pull producer)."""

    def __init__(self, request: server.Request,
                 read: Callable[[int, int], bytes | memoryview], length: int) -> None:
        self._request, self._read, self._length = request, read, length
        self._offset = 0

    def start(self) -> None:
        self._request.registerProducer(self, False)
        self._request.notifyFinish().addErrback(lambda _f: None)

    def resumeProducing(self) -> None:  # noqa: N802 (Twisted interface name)
        if self._offset >= self._length:
            return
        try:
            data = self._read(self._offset, min(STREAM_CHUNK, self._length - self._offset))
        except Exception:  # the share went away (deleted, corrupt): cut the response short
            log.failure("streaming a share failed")
            data = b""
        if not data:
            self._request.unregisterProducer()
            self._request.loseConnection()
            return
        self._offset += len(data)
        self._request.write(data)
        if self._offset >= self._length:
            self._request.unregisterProducer()
            self._request.finish()

    def stopProducing(self) -> None:  # noqa: N802
        self._offset = self._length


class QuietSite(server.Site):
    """A Site that keeps no access log: request lines can hold caps and storage indexes,
    and headers hold swissnums and secrets; none of them may reach a log."""

    def log(self, request: http.Request) -> None:
        pass


class _Discard(io.BytesIO):
    """A request body nobody will read: bytes in, nothing kept."""

    def write(self, data: Any) -> int:
        return len(data)


class _Request(server.Request):
    """Authorization before the body: once the headers are in, a request without the
    right swissnum keeps none of its body (a large or unsized one is answered 401 and its
    connection closed at once), and an authorized body larger than its endpoint allows is
    answered 413 before it is read. Bodies up to `IN_MEMORY_BODY` bytes are kept in memory
    (twisted.web spools anything over 100 kB to a temporary file, which a share write would
    then read back: a second trip through the page cache for every byte uploaded)."""

    _refused = False
    _received = 0
    _limit = MAX_MESSAGE_SIZE

    def gotLength(self, length: int | None) -> None:  # noqa: N802 (twisted.web name)
        site: StorageSite = self.channel.site  # type: ignore[attr-defined]
        if not site.authorized(self.requestHeaders.getRawHeaders(b"authorization", [])):
            self.content = _Discard()
            if length is None or length > SMALL_UNAUTHORIZED_BODY:
                self._refuse_early(401, "wrong or missing swissnum")
            return
        if getattr(self.channel, "_command", b"").upper() == b"PATCH":
            self._limit = MAX_PATCH_SIZE
        elif getattr(self.channel, "_path", b"").split(b"?")[0].endswith(
                b"/read-test-write"):
            self._limit = messages.MAX_READ_TEST_WRITE_SIZE
        if length is not None and length > self._limit:
            self.content = _Discard()
            self._refuse_early(413, "request body too large for this endpoint")
        elif length is not None and length <= IN_MEMORY_BODY:
            self.content = io.BytesIO()
        else:
            super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:  # noqa: N802 (twisted.web name)
        if self._refused:
            return
        self._received += len(data)
        if self._received > self._limit:  # a chunked body that would not stop
            self.content = _Discard()
            self._refuse_early(413, "request body too large for this endpoint")
            return
        super().handleContentChunk(data)

    def requestReceived(self, command: bytes, path: bytes,  # noqa: N802
                        version: bytes) -> None:
        if not self._refused:
            super().requestReceived(command, path, version)

    def _refuse_early(self, status: int, reason: str) -> None:
        """Answer now, before the body, and close the connection."""
        self._refused = True
        body = reason.encode("ascii") + b"\n"
        phrase = http.RESPONSES.get(status, b"Error")
        transport: Any = self.channel.transport
        transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n%s"
            % (status, phrase, len(body), body))
        transport.loseConnection()


class StorageSite(QuietSite):
    """The storage server's site: checks swissnums for its requests, closes connections
    idle for `IDLE_TIMEOUT` seconds, and while listening expires idle uploads."""

    def __init__(self, backend: DiskBackend, swissnum: bytes) -> None:
        super().__init__(StorageResource(backend, swissnum), requestFactory=_Request,
                         timeout=IDLE_TIMEOUT)
        self.displayTracebacks = False
        self.backend = backend
        self._swissnum = swissnum
        self._expiry = task.LoopingCall(backend.expire_idle_uploads)

    def authorized(self, values: Sequence[bytes]) -> bool:
        try:
            presented = headers.parse_authorization(values)
        except ProtocolError:
            return False
        return hmac.compare_digest(presented, self._swissnum)

    def startFactory(self) -> None:  # noqa: N802 (Twisted name)
        super().startFactory()
        interval = max(1.0, min(60.0, self.backend.upload_idle_timeout / 4))
        self._expiry.start(interval, now=False)

    def stopFactory(self) -> None:  # noqa: N802
        if self._expiry.running:
            self._expiry.stop()
        super().stopFactory()


def make_site(backend: DiskBackend, swissnum: bytes) -> server.Site:
    return StorageSite(backend, swissnum)
