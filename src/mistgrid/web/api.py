"""The web API: Tahoe's paths for immutable files and the welcome page.

    PUT /uri                 body = file; answers the cap (text/plain). format=CHK|SDMF|
                             MDMF (any case) or mutable=true ([client] mutable.format);
                             private-key= (urlsafe base64 DER) names a new mutable file
    POST /uri?t=upload       multipart/form-data with a `file` field (format, mutable and
                             private-key as query or form fields); answers the cap
    PUT /uri/$WRITECAP       replaces a mutable file's contents; ?offset=N writes there
    GET /uri/$CAP            the file (one Range honoured; immutable files are streamed as
                             they are verified)
    GET /uri/$CAP?t=json     ["filenode", {rw_uri, ro_uri, verify_uri, size, mutable,
                             format}]
    POST /uri/$CAP?t=check   check (verify=, repair=, add-lease=, output=JSON): web/checks
    GET /  and  /?t=json     every known server: connection state, route, last error

How this works: a twisted.web leaf resource; each request runs as a coroutine on the
reactor. Errors become a status and a one-line text body; caps are never logged.
"""

from __future__ import annotations

import contextlib
import html
import io
import json
import mimetypes
import os
import re
import secrets
import urllib.parse
from collections.abc import Coroutine, Iterator, Mapping, Sequence
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
from ..caps.directory import is_directory_text
from ..caps.mutable import (
    MutableCap,
    MutableFormat,
    MutableReadCap,
    MutableWriteCap,
    is_mutable_text,
    parse_mutable_cap,
)
from ..dirnode.children import DirectoryFormatError
from ..encoding.params import EncodingParams
from ..errors import (
    CapabilityError,
    MistgridError,
    NoSuchFileError,
    NotEnoughSharesError,
    UncoordinatedWriteError,
)
from ..grid.checker import Checker, parse_any_cap
from ..grid.directories import (
    BadNameError,
    Directories,
    ExistingChildError,
    MustBeDeepImmutableError,
    NoSuchChildError,
    NotDirectoryError,
    ReadOnlyDirectoryError,
)
from ..grid.downloader import download
from ..grid.immutable_files import ImmutableFiles
from ..grid.mutable import NotEnoughServersError
from ..grid.mutable_files import MutableFiles
from ..grid.servers import KnownServer
from ..grid.uploader import UploadUnhappyError, upload
from ..introducer.client import IntroducerClient
from ..storage.server import QuietSite
from .checks import CheckPages
from .directories import BadPathError, DirectoryPages
from .keys import BadRequestError, private_key
from .multipart import MultipartError, Window, boundary_of, locate_parts
from .operations import BadOperationError, Operations, UnknownHandleError, render
from .status import History, OpStatus

log = Logger()
reactor = cast(Any, _reactor)
WELCOME_WAIT = 3.0


@attrs.frozen
class ClientSettings:
    params: EncodingParams
    happy: int
    convergence: bytes
    mutable_format: MutableFormat = MutableFormat.SDMF
    # the client's lease secret (private/secret); None: a random one for this process
    lease_secret: bytes | None = None


class ReadOnlyError(MistgridError):
    """A write with a cap that cannot write."""


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
                 network: Mapping[str, str] | None = None,
                 mutable: MutableFiles | None = None, storage: Any = None) -> None:
        """`network`: how this node reaches its networks (e.g. which Tor SOCKS port it
        found), shown on the welcome page. `mutable`: this node's mutable files.
        `storage`: this node's storage server's status (a StorageStatus), if it has one."""
        super().__init__()
        self.mutable = mutable
        self.lease_secret = settings.lease_secret or secrets.token_bytes(32)
        immutable = ImmutableFiles(lambda: [s.client for s in self.servers], settings.params,
                                   settings.happy, settings.convergence, executor,
                                   self.lease_secret)
        dirs = Directories(mutable, immutable) if mutable else None
        self.directories = DirectoryPages(self, dirs) if dirs else None
        self.checks = CheckPages(self, Checker(
            lambda: [(s.status.server_id, s.client) for s in self.servers], self.lease_secret,
            settings.happy, settings.convergence, mutable, executor), dirs)
        self.network = dict(network or {})
        self.servers = servers
        self.introducers = introducers
        self.settings = settings
        self.executor = executor
        self.nickname = nickname
        self.operations = Operations()
        self.history = History()
        self.storage = storage

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
            elif path in (["status"], ["status", ""]) and method == "GET":
                if (args.get("t") or [""])[-1] == "json":
                    self._finish(request, 200, self.history.to_json(), b"application/json")
                else:
                    self._finish(request, 200, self.history.page(),
                                 b"text/html; charset=utf-8")
            elif path in (["storage"], ["storage", ""]) and method == "GET":
                self._storage_page(request, args)
            elif path == ["uri"] and method in ("PUT", "POST") and args.get("t") == ["mkdir"]:
                await self._directory_pages().mkdir(request, args)
            elif path == ["uri"] and method == "POST" and \
                    args.get("t") == ["mkdir-with-children"]:
                await self._directory_pages().mkdir(request, args, with_children=True)
            elif path == ["uri"] and method == "POST" and \
                    args.get("t") == ["mkdir-immutable"]:
                await self._directory_pages().mkdir(request, args, immutable=True)
            elif len(path) == 2 and path[0] == "operations" and method in ("GET", "POST"):
                self._operation(request, method, path[1], args)
            elif len(path) >= 2 and path[0] == "uri" and is_directory_text(path[1]):
                await self._directory_pages().handle(request, method, path[1], path[2:], args)
            elif path == ["uri"] and method == "PUT":
                await self._put(request, args)
            elif path == ["uri"] and method == "POST" and args.get("t") == ["upload"]:
                await self._post_upload(request, args)
            elif len(path) == 2 and path[0] == "uri" and method in ("GET", "HEAD"):
                await self._get(request, path[1], args)
            elif len(path) >= 3 and path[0] == "named" and method in ("GET", "HEAD"):
                # /named/$FILECAP/NAME: the name gives the type (and a saved file's name)
                if is_directory_text(path[1]):
                    await self._directory_pages().handle(request, method, path[1],
                                                         path[2:], args)
                else:
                    await self._get(request, path[1], {**args, "filename": [path[-1]]})
            elif len(path) == 2 and path[0] == "uri" and method == "PUT":
                await self._put_cap(request, path[1], args)
            elif len(path) == 2 and path[0] == "uri" and method == "POST" and \
                    args.get("t") == ["check"]:
                await self.checks.check(request, parse_any_cap(path[1]), args)
            else:
                self._finish(request, 404, b"no such page\n")
        except MistgridError as err:
            self._finish(request, _status_of(err), str(err).encode() + b"\n")

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

    def _storage_page(self, request: server.Request, args: dict[str, list[str]]) -> None:
        """/storage: this node's storage server and its lease crawler (Tahoe's path;
        `t=json` gives the lease crawler's state and totals in Tahoe's key names)."""
        crawler = getattr(self.storage, "crawler", None)
        backend = getattr(self.storage, "backend", None)
        if crawler is None or backend is None:
            self._finish(request, 404, b"this node runs no storage server\n")
            return
        data = {"stats": {"storage_server.accepting_immutable_shares": True,
                          "storage_server.disk_avail": backend.available_space(),
                          "storage_server.reserved_space": backend.reserved_space},
                **crawler.status()}
        if (args.get("t") or [""])[-1] == "json":
            self._finish(request, 200, json.dumps(data).encode(), b"application/json")
            return
        checker, progress = data["lease-checker"], data["lease-checker-progress"]
        expiring = f"enabled, {checker['mode']}" if checker["expiration-enabled"] \
            else "disabled"
        lines = [f"Lease crawler: {'running' if progress['cycle-in-progress'] else 'idle'}"
                 f" ({progress['cycle-complete-percentage']}% of this pass)",
                 f"Expiration: {expiring}", f"Passes completed: {checker['cycle']}"]
        for past in checker["history"][-3:]:
            lines.append(f"  pass {past['cycle']}: {past['examined-shares']} shares, "
                         f"{past['expired-leases']} leases expired, {past['deleted-shares']}"
                         f" shares ({past['deleted-bytes']} bytes) reclaimed")
        page = ("<html><head><title>Storage</title></head><body><h1>Storage server</h1>"
                f"<pre>{html.escape(chr(10).join(lines))}</pre></body></html>")
        self._finish(request, 200, page.encode(), b"text/html; charset=utf-8")

    async def _welcome(self, request: server.Request, args: dict[str, list[str]]) -> None:
        # Fresh status where a probe answers within WELCOME_WAIT seconds; the page never
        # waits longer (probes go on in the background and the next view shows them).
        probes: defer.Deferred[Any] = defer.DeferredList([s.refresh() for s in self.servers])
        timer: defer.Deferred[Any] = task.deferLater(reactor, WELCOME_WAIT, lambda: None)
        timer.addErrback(lambda f: f.trap(defer.CancelledError))
        await defer.DeferredList([probes, timer], fireOnOneCallback=True)
        if not timer.called:
            timer.cancel()
        # Tahoe's keys and values (tools written for Tahoe read them), and mistgrid's own
        # beside them (connected, route, last_error; introducer details; network).
        servers = [{"nodeid": s.status.server_id, "nickname": s.status.nickname,
                    "connection_status": s.status.connection_text,
                    "connected": s.status.connected,
                    "available_space": s.status.available_space,
                    "route": s.status.route, "last_error": s.status.last_error,
                    "version": s.status.version, "last_received_data": s.status.last_contact}
                   for s in self.servers]
        introducers = [attrs.asdict(i.status()) for i in self.introducers]
        if args.get("t") == ["json"]:
            statuses = [(f"Connected to {i['hints']}" if i["connected"] else
                         "Not connected" + (f": {i['last_error']}" if i["last_error"] else ""))
                        for i in introducers]
            body = {"servers": servers,
                    "introducers": {"statuses": statuses, "details": introducers},
                    "network": self.network}
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

    async def _put(self, request: server.Request, args: dict[str, list[str]]) -> None:
        content: IO[bytes] | None = request.content
        if content is None:
            self._finish(request, 400, b"no body\n")
            return
        content.seek(0, os.SEEK_END)
        size = content.tell()
        content.seek(0)
        await self._store(request, content, size, args)

    def _format(self, args: Mapping[str, list[str]]) -> MutableFormat | None:
        """The format asked for: None for an immutable file (CHK)."""
        fmt = (args.get("format") or [""])[-1].strip().upper()
        if fmt:
            if fmt == "CHK":
                return None
            try:
                return MutableFormat[fmt]
            except KeyError:
                raise BadRequestError(f"unknown format {fmt[:20]!r}: use CHK, SDMF or "
                                      "MDMF") from None
        mutable = (args.get("mutable") or [""])[-1].strip().lower()
        return self.settings.mutable_format if mutable in ("true", "on", "1") else None

    async def _store(self, request: server.Request, content: IO[bytes], size: int,
                     args: Mapping[str, list[str]]) -> None:
        cap = await self.make_file(content, size, args)
        self._finish(request, 200, cap.encode())

    async def make_file(self, content: IO[bytes], size: int,
                        args: Mapping[str, list[str]]) -> str:
        """A new file (immutable, or mutable as `format=`/`mutable=` ask); its cap."""
        fmt = self._format(args)
        if fmt is not None:
            with self._tracked("publish", size):
                new = await self._mutable().create(fmt, content, size, private_key(args))
            return new.to_string()
        with self._tracked("upload", size) as op:
            cap = await upload(content, size, [s.client for s in self.servers],
                               self.settings.params, self.settings.happy,
                               self.settings.convergence, progress=op.advance,
                               executor=self.executor, lease_secret=self.lease_secret)
        return cap.to_string()

    @contextlib.contextmanager
    def _tracked(self, kind: str, size: int | None,
                 storage_index: bytes | None = None) -> Iterator[OpStatus]:
        """An operation shown on /status while it runs, and among the recent ones after."""
        op = self.history.start(kind, size, storage_index)
        try:
            yield op
        except BaseException as err:
            self.history.end(op, err)
            raise
        self.history.end(op)

    async def _stream(self, request: server.Request, sink: _Sink,
                      transfer: Coroutine[Any, Any, Any]) -> bool:
        """Run a transfer into the response; False when the response is over already (the
        client went away, or a failure after the first byte cut it short)."""
        try:
            await transfer
        except ClientGoneError:
            return False
        except MistgridError:
            sink.done()
            if sink.started:  # too late for a status: cut the response short
                request.loseConnection()
                return False
            raise
        sink.done()
        return True

    def _operation(self, request: server.Request, method: str, handle: str,
                   args: dict[str, list[str]]) -> None:
        """A slow operation's status page, or its cancelling (web/operations.py)."""
        t = (args.get("t") or ["status"])[-1]
        if method == "POST" and t == "cancel":
            op = self.operations.cancel(handle)
        elif method == "GET" and t == "status":
            retain = (args.get("retain-for") or [""])[-1]
            if retain and not retain.isdigit():
                raise BadRequestError("retain-for= is a number of seconds")
            release = (args.get("release-after-complete") or [""])[-1].lower() == "true"
            op = self.operations.collect(handle, int(retain) if retain else None, release)
        else:
            raise BadRequestError(f"t={t[:20]!r} is not an operation request")
        body, kind = render(op, (args.get("output") or ["html"])[-1])
        self._finish(request, 200, body, kind)

    def _directory_pages(self) -> DirectoryPages:
        if self.directories is None:
            raise MistgridError("this node does not handle directories")
        return self.directories

    def _mutable(self) -> MutableFiles:
        if self.mutable is None:
            raise MistgridError("this node does not handle mutable files")
        return self.mutable

    async def _put_cap(self, request: server.Request, cap_text: str,
                       args: dict[str, list[str]]) -> None:
        """Replace a mutable file, or write into it at ?offset=N."""
        cap = parse_mutable_cap(cap_text) if is_mutable_text(cap_text) else parse_cap(cap_text)
        offsets = args.get("offset")
        if not isinstance(cap, MutableWriteCap):
            raise ReadOnlyError("this cap cannot change the file (a read-only, verify or "
                                "immutable cap); use its write cap")
        offset = None
        if offsets:
            offset_text = offsets[-1]
            if not re.fullmatch(r"[0-9]{1,19}", offset_text):
                raise BadRequestError("offset must be a whole number of bytes")
            offset = int(offset_text)
        content: IO[bytes] = request.content or io.BytesIO()
        size = content.seek(0, os.SEEK_END)
        content.seek(0)
        mutable = self._mutable()
        with self._tracked("publish", size, cap.storage_index):
            if offset is None:
                await mutable.replace(cap, content, size)
            else:
                await mutable.write_at(cap, offset,
                                       await threads.deferToThread(content.read))
        self._finish(request, 200, cap_text.encode())

    async def _get_mutable(self, request: server.Request, cap: MutableCap, cap_text: str,
                           args: dict[str, list[str]]) -> None:
        if not isinstance(cap, (MutableWriteCap, MutableReadCap)):
            if args.get("t") == ["json"]:
                info: dict[str, Any] = {"verify_uri": cap.to_string(), "mutable": True,
                                        "format": cap.format.value}
                self._finish(request, 200, json.dumps(["filenode", info]).encode(),
                             b"application/json")
                return
            self._finish(request, 400, b"a verify cap cannot be read\n")
            return
        mutable = self._mutable()
        if args.get("t") == ["json"]:
            prefix = await mutable.info(cap)
            info = {"ro_uri": cap.read_only().to_string(),
                    "verify_uri": cap.verifier().to_string(), "mutable": True,
                    "format": cap.format.value,
                    "size": prefix.data_length if prefix is not None else None}
            if isinstance(cap, MutableWriteCap):
                info["rw_uri"] = cap.to_string()
            self._finish(request, 200, json.dumps(["filenode", info]).encode(),
                         b"application/json")
            return
        header = request.getHeader(b"range")
        request.setHeader(b"accept-ranges", b"bytes")

        def choose(size: int) -> tuple[int, int] | None:
            wanted = byte_range(header, size)
            if wanted == UNSATISFIABLE:
                request.setHeader(b"content-range", f"bytes */{size}".encode())
                return None
            start, end = wanted if wanted is not None else (0, size)
            if wanted is not None:
                request.setResponseCode(206)
                request.setHeader(b"content-range", f"bytes {start}-{end - 1}/{size}".encode())
            request.setHeader(b"content-type", content_type(args))
            request.setHeader(b"content-length", str(end - start).encode())
            chosen.append((start, end))
            return start, end

        chosen: list[tuple[int, int]] = []
        if request.method == b"HEAD":  # the headers only: the size from the map
            prefix = await mutable.info(cap)
            if prefix is None:
                raise NoSuchFileError("no share of this mutable file was found")
            if choose(prefix.data_length) is None:
                self._finish(request, 416, b"the requested range is not in the file\n")
            elif not request.finished and not request._disconnected:
                request.finish()
            return

        sink = _Sink(request)

        async def send(data: bytes) -> None:
            sink.write(data)
            await sink.drain()

        with self._tracked("retrieve", None, cap.storage_index):
            if not await self._stream(request, sink, mutable.read(cap, send, choose)):
                return
        if not chosen:
            self._finish(request, 416, b"the requested range is not in the file\n")
            return
        if not request.finished and not request._disconnected:
            request.finish()

    async def _post_upload(self, request: server.Request,
                           args: dict[str, list[str]]) -> None:
        """Tahoe's form upload: the `file` field of a multipart/form-data body."""
        body, size, fields, _filename = await self.upload_form(request, args)
        await self._store(request, body, size, fields)

    async def upload_form(self, request: server.Request, args: dict[str, list[str]]
                          ) -> tuple[IO[bytes], int, dict[str, list[str]], str | None]:
        """(the `file` field's content, its size, the arguments with the form's fields
        added, the file's name) of a multipart/form-data upload."""
        content: IO[bytes] | None = request.content
        kind = request.getHeader(b"content-type") or b""
        if content is None:
            raise MultipartError("no body")
        # Scanning a large body takes a while: off the reactor, so other requests go on.
        parts = await threads.deferToThread(locate_parts, content,
                                            boundary_of(kind.decode("latin-1")))
        files = [part for part in parts if part.name == "file"]
        if len(files) != 1:
            raise MultipartError("t=upload needs exactly one 'file' field")
        fields = dict(args)
        for field in parts:  # Tahoe's form fields may carry what the query string can
            if field.name in ("format", "mutable", "private-key", "name", "replace") and \
                    field.end - field.start <= 4096:
                value = Window(content, field.start, field.end).read()
                fields[field.name] = [value.decode("utf-8", "replace").strip()]
        part = files[0]
        return (cast(IO[bytes], Window(content, part.start, part.end)), part.end - part.start,
                fields, part.filename)

    async def _get(self, request: server.Request, cap_text: str,
                   args: dict[str, list[str]]) -> None:
        save = (args.get("save") or [""])[-1].lower() in ("true", "1", "on", "yes")
        name = (args.get("filename") or [""])[-1]
        if save and not args.get("t"):
            quoted = urllib.parse.quote(name or "download", safe="")
            request.setHeader(b"content-disposition",
                              f"attachment; filename*=utf-8''{quoted}".encode())
        if is_mutable_text(cap_text):
            await self._get_mutable(request, parse_mutable_cap(cap_text), cap_text, args)
            return
        cap = parse_cap(cap_text)
        if not isinstance(cap, (ChkCap, LiteralCap)):
            self._finish(request, 400, b"a verify cap cannot be read\n")
            return
        if args.get("t") == ["json"]:
            info: dict[str, Any] = {"ro_uri": cap_text, "size": cap.size, "mutable": False,
                                    "format": "CHK" if isinstance(cap, ChkCap) else "LIT"}
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
        request.setHeader(b"content-type", content_type(args))
        request.setHeader(b"content-length", str(end - start).encode())
        if request.method == b"HEAD":  # the headers only: nothing is read from the grid
            request.finish()
            return
        sink = _Sink(request)
        si = cap.storage_index if isinstance(cap, ChkCap) else None
        with self._tracked("download", end - start, si) as op:
            if not await self._stream(request, sink, download(
                    cap, [s.client for s in self.servers], sink,  # type: ignore[arg-type]
                    progress=op.advance, executor=self.executor, start=start, end=end)):
                return
        if not request.finished and not request._disconnected:
            request.finish()


UNSATISFIABLE = (-1, -1)


def content_type(args: Mapping[str, list[str]]) -> bytes:
    """A file's type, guessed from `filename=` (or a /named/ path) as Tahoe does."""
    name = (args.get("filename") or [""])[-1]
    guessed, encoding = mimetypes.guess_type(name) if name else (None, None)
    return (guessed if guessed and not encoding else "application/octet-stream").encode()


def _status_of(err: MistgridError) -> int:
    """The HTTP status of a failed request (Tahoe's where Tahoe has one)."""
    if isinstance(err, (CapabilityError, MultipartError, BadRequestError, ReadOnlyError,
                        BadPathError, NotDirectoryError, ReadOnlyDirectoryError,
                        BadNameError, MustBeDeepImmutableError, BadOperationError)):
        return 400
    if isinstance(err, (NoSuchChildError, UnknownHandleError)):
        return 404
    if isinstance(err, ExistingChildError):
        return 409
    if isinstance(err, DirectoryFormatError):
        return 410
    if isinstance(err, UncoordinatedWriteError):
        return 409
    if isinstance(err, (NotEnoughSharesError, NoSuchFileError)):
        return 410
    if isinstance(err, (UploadUnhappyError, NotEnoughServersError)):
        return 503
    return 503


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


def make_web_site(api: resource.Resource) -> server.Site:
    # No access log: a request line like GET /uri/URI:CHK:... is a cap. Form bodies are not
    # parsed into memory by twisted.web: POST /uri?t=upload reads them with locate_parts.
    site = QuietSite(api, parsePOSTFormSubmission=False)
    site.displayTracebacks = False
    return site
