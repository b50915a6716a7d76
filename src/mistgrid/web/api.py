"""The web API: Tahoe's paths for immutable files and the welcome page.

    PUT /uri                 body = file; answers the cap (text/plain)
    POST /uri?t=upload       multipart/form-data with a `file` field; answers the cap
    GET /uri/$CAP            the file (streamed as it is verified; one Range honoured)
    GET /uri/$CAP?t=json     ["filenode", {ro_uri, verify_uri, size, mutable}]
    GET /  and  /?t=json     every known server: connection state, route, last error

How this works: a twisted.web leaf resource; each request runs as a coroutine on the
reactor. Errors become a status and a one-line text body; caps are never logged.
"""

from __future__ import annotations

import html
import json
import os
import re
import urllib.parse
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor
from typing import IO, Any, cast

import attrs
from twisted.internet import defer, task, threads
from twisted.internet import reactor as _reactor
from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from twisted.web import resource, server
from zope.interface import implementer

from ..caps import ChkCap, LiteralCap, parse_cap
from ..encoding.params import EncodingParams
from ..errors import CapabilityError, MistgridError, NotEnoughSharesError
from ..grid.downloader import download
from ..grid.servers import KnownServer
from ..grid.uploader import UploadUnhappyError, upload
from ..introducer.client import IntroducerClient
from ..storage.server import QuietSite
from .multipart import MultipartError, Window, boundary_of, locate_parts

log = Logger()
reactor = cast(Any, _reactor)
WELCOME_WAIT = 3.0


@attrs.frozen
class ClientSettings:
    params: EncodingParams
    happy: int
    convergence: bytes


class ClientGoneError(MistgridError):
    """The HTTP client went away in the middle of a download."""


@implementer(IPushProducer)
class _Sink:
    """Writes a download straight into the HTTP response, with backpressure: when the
    client reads slower than the grid delivers, `drain` waits until the transport has room
    (so a slow reader never makes the node buffer a whole file), and a client that hangs up
    stops the download."""

    def __init__(self, request: server.Request) -> None:
        self._request = request
        self.started = False
        self._paused: defer.Deferred[None] | None = None
        self._gone = False
        request.registerProducer(self, True)

    def write(self, data: bytes) -> None:
        self.started = True
        self._request.write(data)

    async def drain(self) -> None:
        if self._paused is not None:
            await self._paused
        if self._gone:
            raise ClientGoneError("the client closed the connection")

    def done(self) -> None:
        if not self._gone:
            self._request.unregisterProducer()

    def pauseProducing(self) -> None:  # noqa: N802 (Twisted interface names)
        if self._paused is None:
            self._paused = defer.Deferred()

    def resumeProducing(self) -> None:  # noqa: N802
        paused, self._paused = self._paused, None
        if paused is not None:
            paused.callback(None)

    def stopProducing(self) -> None:  # noqa: N802
        self._gone = True
        self.resumeProducing()


class WebAPI(resource.Resource):
    isLeaf = True  # noqa: N815 (twisted.web name)

    def __init__(self, servers: list[KnownServer], settings: ClientSettings,
                 executor: Executor | None, nickname: str,
                 introducers: Sequence[IntroducerClient] = (),
                 network: Mapping[str, str] | None = None) -> None:
        """`network`: how this node reaches its networks (e.g. which Tor SOCKS port it
        found), shown on the welcome page."""
        super().__init__()
        self.network = dict(network or {})
        self.servers = servers
        self.introducers = introducers
        self.settings = settings
        self.executor = executor
        self.nickname = nickname

    def render(self, request: server.Request) -> Any:
        defer.Deferred.fromCoroutine(self._handle(request)).addErrback(
            lambda f: log.failure("web request failed", f))
        return server.NOT_DONE_YET

    async def _handle(self, request: server.Request) -> None:
        try:
            await self._dispatch(request)
        except Exception:  # a bug: answer (never hang the client), log without the URL
            log.failure("web request failed")
            self._finish(request, 500, b"internal error\n")

    async def _dispatch(self, request: server.Request) -> None:
        path = [urllib.parse.unquote(p.decode("utf-8", "replace"))
                for p in request.postpath or []]
        args = {k.decode("utf-8", "replace"): [v.decode("utf-8", "replace") for v in vs]
                for k, vs in (request.args or {}).items()}
        method = request.method.decode("ascii", "replace")
        try:
            if path in ([], [""]) and method == "GET":
                await self._welcome(request, args)
            elif path == ["uri"] and method == "PUT":
                await self._put(request)
            elif path == ["uri"] and method == "POST" and args.get("t") == ["upload"]:
                await self._post_upload(request)
            elif len(path) == 2 and path[0] == "uri" and method == "GET":
                await self._get(request, path[1], args)
            else:
                self._finish(request, 404, b"no such page\n")
        except (CapabilityError, NotEnoughSharesError, UploadUnhappyError,
                MistgridError) as err:
            status = 400 if isinstance(err, (CapabilityError, MultipartError)) else 410 \
                if isinstance(err, NotEnoughSharesError) else 503
            self._finish(request, status, str(err).encode() + b"\n")

    def _finish(self, request: server.Request, status: int, body: bytes,
                kind: bytes = b"text/plain; charset=utf-8") -> None:
        if request.finished or request._disconnected:
            return
        if request.startedWriting:  # too late for a status: cut the response short
            request.loseConnection()
            return
        request.setResponseCode(status)
        if status != 416:  # a file's range is no longer what the body holds
            request.responseHeaders.removeHeader(b"content-range")
        request.setHeader(b"content-type", kind)
        request.setHeader(b"content-length", str(len(body)).encode())  # never the file's
        request.write(body)
        request.finish()

    async def _welcome(self, request: server.Request, args: dict[str, list[str]]) -> None:
        # Fresh status where a probe answers within WELCOME_WAIT seconds; the page never
        # waits longer (probes go on in the background and the next view shows them).
        probes: defer.Deferred[Any] = defer.DeferredList([s.refresh() for s in self.servers])
        timer: defer.Deferred[Any] = task.deferLater(reactor, WELCOME_WAIT, lambda: None)
        timer.addErrback(lambda f: f.trap(defer.CancelledError))
        await defer.DeferredList([probes, timer], fireOnOneCallback=True)
        if not timer.called:
            timer.cancel()
        servers = [{"nodeid": s.status.server_id, "nickname": s.status.nickname,
                    "connection_status": "connected" if s.status.connected else "not connected",
                    "route": s.status.route, "last_error": s.status.last_error,
                    "version": s.status.version, "last_received_data": s.status.last_contact}
                   for s in self.servers]
        introducers = [attrs.asdict(i.status()) for i in self.introducers]
        if args.get("t") == ["json"]:
            body = {"servers": servers, "introducers": introducers, "network": self.network}
            self._finish(request, 200, json.dumps(body, indent=1).encode(),
                         b"application/json")
            return
        rows = "".join("<tr>" + "".join(f"<td>{html.escape(str(s[key]))}</td>" for key in (
            "nickname", "nodeid", "connection_status", "route", "last_error")) + "</tr>"
            for s in servers)
        page = (f"<html><head><title>mistgrid {self.nickname}</title></head><body>"
                f"<h1>mistgrid node {self.nickname}</h1><table><tr><th>nickname</th>"
                f"<th>server id</th><th>state</th><th>route</th><th>last error</th></tr>"
                f"{rows}</table><h2>introducers</h2><ul>"
                + "".join(html.escape(f"{i['name']} ({i['hints']}): "
                                      f"{'connected' if i['connected'] else 'not connected'} "
                                      f"{i['last_error']}").join(("<li>", "</li>"))
                          for i in introducers)
                + "</ul><h2>network</h2><ul>"
                + "".join(f"<li>{html.escape(k)}: {html.escape(v)}</li>"
                          for k, v in self.network.items())
                + "</ul></body></html>")
        self._finish(request, 200, page.encode(), b"text/html; charset=utf-8")

    async def _put(self, request: server.Request) -> None:
        content: IO[bytes] | None = request.content
        if content is None:
            self._finish(request, 400, b"no body\n")
            return
        content.seek(0, os.SEEK_END)
        size = content.tell()
        content.seek(0)
        await self._store(request, content, size)

    async def _store(self, request: server.Request, content: IO[bytes], size: int) -> None:
        cap = await upload(content, size, [s.client for s in self.servers],
                           self.settings.params, self.settings.happy,
                           self.settings.convergence, executor=self.executor)
        self._finish(request, 200, cap.to_string().encode())

    async def _post_upload(self, request: server.Request) -> None:
        """Tahoe's form upload: the `file` field of a multipart/form-data body."""
        content: IO[bytes] | None = request.content
        kind = request.getHeader(b"content-type") or b""
        if content is None:
            self._finish(request, 400, b"no body\n")
            return
        # Scanning a large body takes a while: off the reactor, so other requests go on.
        parts = await threads.deferToThread(locate_parts, content,
                                            boundary_of(kind.decode("latin-1")))
        files = [part for part in parts if part.name == "file"]
        if len(files) != 1:
            raise MultipartError("POST /uri?t=upload needs exactly one 'file' field")
        part = files[0]
        await self._store(request, cast(IO[bytes], Window(content, part.start, part.end)),
                          part.end - part.start)

    async def _get(self, request: server.Request, cap_text: str,
                   args: dict[str, list[str]]) -> None:
        cap = parse_cap(cap_text)
        if not isinstance(cap, (ChkCap, LiteralCap)):
            self._finish(request, 400, b"a verify cap cannot be read\n")
            return
        if args.get("t") == ["json"]:
            info: dict[str, Any] = {"ro_uri": cap_text, "size": cap.size, "mutable": False}
            if isinstance(cap, ChkCap):
                info["verify_uri"] = cap.verifier().to_string()
            self._finish(request, 200, json.dumps(["filenode", info]).encode(),
                         b"application/json")
            return
        wanted = byte_range(request.getHeader(b"range"), cap.size)
        request.setHeader(b"accept-ranges", b"bytes")
        if wanted is None:
            start, end = 0, cap.size
        elif wanted == UNSATISFIABLE:
            request.setHeader(b"content-range", f"bytes */{cap.size}".encode())
            self._finish(request, 416, b"the requested range is not in the file\n")
            return
        else:
            start, end = wanted
            request.setResponseCode(206)
            request.setHeader(b"content-range", f"bytes {start}-{end - 1}/{cap.size}".encode())
        request.setHeader(b"content-type", b"application/octet-stream")
        request.setHeader(b"content-length", str(end - start).encode())
        sink = _Sink(request)
        try:
            await download(cap, [s.client for s in self.servers], sink,  # type: ignore[arg-type]
                           executor=self.executor, start=start, end=end)
        except ClientGoneError:
            return
        except MistgridError:
            sink.done()
            if sink.started:  # too late for a status: cut the response short
                request.loseConnection()
                return
            raise
        sink.done()
        if not request.finished and not request._disconnected:
            request.finish()


UNSATISFIABLE = (-1, -1)


def byte_range(header: bytes | None, size: int) -> tuple[int, int] | None:
    """[start, end) asked for by a Range header; None for the whole file (no header, or
    one we do not serve: not bytes, or several ranges); UNSATISFIABLE when outside it."""
    if header is None:
        return None
    match = re.fullmatch(rb"\s*bytes\s*=\s*([0-9]*)\s*-\s*([0-9]*)\s*", header)
    if match is None or match.group(1) == match.group(2) == b"":
        return None
    first, last = match.group(1), match.group(2)
    if first == b"":  # the last N bytes
        count = _number(last)
        return (max(size - count, 0), size) if count and size else UNSATISFIABLE
    start = _number(first)
    end = min(_number(last) + 1, size) if last else size
    if start >= size or (last and _number(last) < start):
        return UNSATISFIABLE
    return start, end


def _number(digits: bytes) -> int:
    """A Range number; any with more than 19 digits is past every file's end (and int()
    of thousands of digits would be slow, or refused by Python's limit)."""
    stripped = digits.lstrip(b"0") or b"0"
    return int(stripped) if len(stripped) <= 19 else 2**64


def make_web_site(api: WebAPI) -> server.Site:
    # No access log: a request line like GET /uri/URI:CHK:... is a cap. Form bodies are not
    # parsed into memory by twisted.web: POST /uri?t=upload reads them with locate_parts.
    site = QuietSite(api, parsePOSTFormSubmission=False)
    site.displayTracebacks = False
    return site
