"""The web API's directory paths (`frontends/webapi.rst`), on Tahoe's paths and shapes.

    POST|PUT /uri?t=mkdir                 a new empty directory (format=, private-key=)
    GET  /uri/$DIRCAP[/PATH]              a directory: t=json (Tahoe's shape) or a page;
                                          a file: its bytes (Range), or t=json
    PUT  /uri/$DIRCAP/PATH/NAME           upload the body and link it (201 new, 200
                                          replaced; a mutable file there is overwritten);
                                          missing directories on the way are made
    PUT  /uri/$DIRCAP/PATH/NAME?t=uri     link the cap in the body
    PUT  /uri/$DIRCAP/PATH/NAME?t=mkdir   make (and link) a directory there
    POST /uri?t=mkdir-with-children       a new directory holding the body's children
    POST /uri?t=mkdir-immutable           a new immutable directory of the body's children
    POST /uri/$DIRCAP[/PATH]?t=set_children   link the body's children at once
    POST /uri/$DIRCAP[/PATH]?t=upload     a form's file, linked under its name (or name=)
    GET  ...?t=info                       a page about the object (caps, size, format)
    POST /uri/$DIRCAP[/PATH]?t=stream-manifest   every object below, one JSON line each
    POST /uri/$DIRCAP[/PATH]?t=check|stream-deep-check|start-deep-check   (web/checks)
    POST /uri/$DIRCAP[/PATH]?t=start-manifest|start-deep-size|start-deep-stats
         &ophandle=H                      the same walks under a handle (web/operations)
    POST /uri/$DIRCAP[/PATH]?t=mkdir&name=NAME   a new subdirectory (also
                                          t=mkdir-with-children, t=mkdir-immutable)
    DELETE /uri/$DIRCAP/PATH/NAME         unlink
Errors as Tahoe gives them: 404 for a missing child, 400 for a bad path or a read-only
cap, 409 where a name exists and replace=false.
"""

from __future__ import annotations

import html
import io
import json
import os
from collections.abc import AsyncIterator
from typing import IO, TYPE_CHECKING, Any

from twisted.internet import threads
from twisted.web import server

from ..caps import base32, parse_cap
from ..caps.directory import DirectoryCap, is_directory_text, parse_directory_cap
from ..caps.immutable import ChkCap, ChkVerifierCap, LiteralCap, chk_read_cap_listing
from ..caps.mutable import (
    MutableFormat,
    MutableReadCap,
    MutableVerifierCap,
    MutableWriteCap,
    is_mutable_text,
    parse_mutable_cap,
)
from ..dirnode.children import Child
from ..dirnode.stats import DeepStats
from ..errors import CapabilityError, MistgridError
from ..grid.checker import parse_any_cap
from ..grid.directories import Directories, check_name, child_directory
from ..grid.traverse import walk
from .keys import BadRequestError, private_key
from .operations import Operation, start_for_request

if TYPE_CHECKING:
    from .api import WebAPI


def _format_name(cap: DirectoryCap) -> str:
    file = cap.file
    if isinstance(file, (MutableWriteCap, MutableReadCap, MutableVerifierCap)):
        return file.format.value
    return "LIT" if isinstance(file, LiteralCap) else "CHK"


def caps_of(text: str) -> tuple[str | None, str | None]:
    """(write cap or None, read-only cap) of a cap being linked; unknown kinds are kept
    as they are, in the read-only slot."""
    try:
        if is_directory_text(text):
            cap = parse_directory_cap(text)
            return (text if cap.is_writable else None), cap.read_only().to_string()
        if is_mutable_text(text):
            mutable = parse_mutable_cap(text)
            if isinstance(mutable, MutableWriteCap):
                return text, mutable.read_only().to_string()
            return None, text
        parse_cap(text)
    except CapabilityError:
        return None, text  # a cap of a kind we do not know: passed through
    return None, text


def child_json(child: Child, with_metadata: bool = True) -> list[Any]:
    text = child.rw_uri or child.ro_uri or ""
    chk = chk_read_cap_listing(text)  # most children of most directories
    if chk is not None:
        size, verify_uri = chk
        info: dict[str, Any] = {"ro_uri": text, "mutable": False, "format": "CHK",
                                "size": size, "verify_uri": verify_uri}
        if with_metadata:
            info["metadata"] = dict(child.metadata)
        return ["filenode", info]
    info = {}
    kind = "unknown"
    try:
        if is_directory_text(text):
            cap = parse_directory_cap(text)
            kind = "dirnode"
            info.update(directory_fields(cap))
        elif is_mutable_text(text):
            mutable = parse_mutable_cap(text)
            kind = "filenode"
            info.update({"mutable": True, "format": mutable.format.value, "size": None})
            if isinstance(mutable, (MutableWriteCap, MutableReadCap)):
                info["ro_uri"] = mutable.read_only().to_string()
                info["verify_uri"] = mutable.verifier().to_string()
            if isinstance(mutable, MutableWriteCap):
                info["rw_uri"] = text
        else:
            file_cap = parse_cap(text)
            kind = "filenode"
            info.update({"ro_uri": text, "mutable": False,
                         "format": "LIT" if isinstance(file_cap, LiteralCap) else "CHK",
                         "size": file_cap.size})
            if isinstance(file_cap, ChkCap):  # the UEB hash and the rest kept as text
                rest = text.split(":", 3)[3]
                info["verify_uri"] = (f"URI:CHK-Verifier:{base32.b2a(file_cap.storage_index)}"
                                      f":{rest}")
            elif isinstance(file_cap, ChkVerifierCap):
                info["verify_uri"] = text
    except CapabilityError:
        kind = "unknown"
        if child.rw_uri:
            info["rw_uri"] = child.rw_uri
        if child.ro_uri:
            info["ro_uri"] = child.ro_uri
    if with_metadata:
        info["metadata"] = dict(child.metadata)
    return [kind, info]


def directory_fields(cap: DirectoryCap) -> dict[str, Any]:
    info: dict[str, Any] = {"ro_uri": cap.read_only().to_string(), "mutable": cap.is_mutable,
                            "format": _format_name(cap)}
    verifier = cap.verifier()
    if verifier is not None:
        info["verify_uri"] = verifier.to_string()
    if cap.is_writable:
        info["rw_uri"] = cap.to_string()
    return info


class DirectoryPages:
    def __init__(self, api: WebAPI, directories: Directories) -> None:
        self.api = api
        self.dirs = directories

    def _default_format(self) -> MutableFormat:
        return self.api.settings.mutable_format

    def _dir_format(self, args: dict[str, list[str]]) -> MutableFormat:
        fmt = (args.get("format") or [""])[-1].strip().upper()
        if not fmt:
            return self._default_format()
        if fmt not in ("SDMF", "MDMF"):
            raise BadRequestError("a directory's format is SDMF or MDMF (t=mkdir-immutable "
                                  "makes an immutable one)")
        return MutableFormat[fmt]

    async def mkdir(self, request: server.Request, args: dict[str, list[str]],
                    with_children: bool = False, immutable: bool = False) -> None:
        made = await self._make(request, args, with_children, immutable)
        self.api._finish(request, 200, made.to_string().encode())

    async def _make(self, request: server.Request, args: dict[str, list[str]],
                    with_children: bool, immutable: bool) -> DirectoryCap:
        """A new directory (children from the body's JSON when asked)."""
        children: list[Child] = []
        if with_children or immutable:
            content: IO[bytes] = request.content or io.BytesIO()
            content.seek(0)
            children = children_from_json(
                await threads.deferToThread(content.read, MAX_CHILDREN_BODY + 1))
        if immutable:
            return await self.dirs.mkdir_immutable(children)
        return await self.dirs.mkdir(self._dir_format(args), children, key=private_key(args))

    async def handle(self, request: server.Request, method: str, cap_text: str,
                     names: list[str], args: dict[str, list[str]]) -> None:
        root = parse_directory_cap(cap_text)
        if names and names[-1] == "":
            names = names[:-1]  # a trailing slash
        if any(n == "" for n in names):
            raise BadPathError("empty name in the path")
        t = (args.get("t") or [""])[-1]
        if method in ("GET", "HEAD"):
            await self._get(request, root, names, t, args)
        elif method == "PUT" and names:
            await self._put(request, root, names, t, args)
        elif method == "POST" and t in ("mkdir", "mkdir-with-children", "mkdir-immutable"):
            name = (args.get("name") or [""])[-1]
            if not name and t == "mkdir":
                made = await self.dirs.ensure_path(root, names, self._dir_format(args))
                self.api._finish(request, 200, made.to_string().encode())
                return
            if not name:  # the last name of the path is the new directory's
                if not names:
                    raise BadPathError(f"t={t} needs name= or a path ending in the name")
                names, name = names[:-1], names[-1]
                parent = await self.dirs.ensure_path(root, names, self._dir_format(args))
            else:
                parent = root if not names else child_directory(
                    await self.dirs.resolve(root, names), names[-1])
            check_name(name)
            made = await self._make(request, args, t == "mkdir-with-children",
                                    t == "mkdir-immutable")
            await self.dirs.link(parent, name, made.to_string() if made.is_writable else None,
                                 made.read_only().to_string(), replace=_replace(args))
            self.api._finish(request, 200, made.to_string().encode())
        elif method == "POST" and t == "upload":
            here = root if not names else child_directory(
                await self.dirs.resolve(root, names), names[-1])
            source, size, fields, filename = await self.api.upload_form(request, args)
            name = (fields.get("name") or [filename or ""])[-1]
            if not name:
                raise BadPathError("t=upload into a directory needs a name (the file's, "
                                   "or a name= field)")
            check_name(name)
            file_cap = await self.api.make_file(source, size, fields)
            rw, ro = caps_of(file_cap)
            await self.dirs.link(here, name, rw, ro, replace=_replace(fields))
            self.api._finish(request, 200, file_cap.encode())
        elif method == "POST" and t in ("set_children", "set-children"):
            here = root if not names else child_directory(
                await self.dirs.resolve(root, names), names[-1])
            content: IO[bytes] = request.content or io.BytesIO()
            content.seek(0)
            body = await threads.deferToThread(content.read, MAX_CHILDREN_BODY + 1)
            overwrite = (args.get("overwrite") or ["true"])[-1].strip().lower() not in (
                "false", "0", "off", "no")
            await self.dirs.set_children(here, parse_children_json(body), overwrite)
            self.api._finish(request, 200, b"")
        elif method == "POST" and t in ("start-manifest", "start-deep-size",
                                        "start-deep-stats"):
            here = root if not names else child_directory(
                await self.dirs.resolve(root, names), names[-1])
            await self._start_walk(request, here, t.removeprefix("start-"), args)
        elif method == "POST" and t == "check":
            if not names:
                await self.api.checks.check(request, root, args)
                return
            child = await self.dirs.resolve(root, names)
            await self.api.checks.check(request, parse_any_cap(
                child.rw_uri or child.ro_uri or ""), args)
        elif method == "POST" and t in ("stream-deep-check", "start-deep-check"):
            here = root if not names else child_directory(
                await self.dirs.resolve(root, names), names[-1])
            if t == "stream-deep-check":
                await self.api.checks.stream_deep_check(request, here, args)
            else:
                await self.api.checks.start_deep_check(request, here, args)
        elif method == "POST" and t == "stream-manifest":
            here = root if not names else child_directory(
                await self.dirs.resolve(root, names), names[-1])
            await self._stream_manifest(request, here)
        elif method == "POST" and t in ("rename", "relink"):
            here = root if not names else child_directory(
                await self.dirs.resolve(root, names), names[-1])
            old = (args.get("from_name") or [""])[-1]
            new = (args.get("to_name") or [old])[-1]
            target = None
            to_dir = (args.get("to_dir") or [""])[-1]
            if t == "relink" and to_dir:
                cap_text, _, rest = to_dir.partition("/")
                target = parse_directory_cap(cap_text)
                below = [n for n in rest.split("/") if n]
                if below:
                    target = child_directory(await self.dirs.resolve(target, below),
                                             below[-1])
            if not old:
                raise BadPathError("from_name is required")
            await self.dirs.rename(here, old, new, _replace(args), target)
            self.api._finish(request, 200, b"")
        elif method == "DELETE" and names:
            parent = root if len(names) == 1 else child_directory(
                await self.dirs.resolve(root, names[:-1]), names[-2])
            await self.dirs.unlink(parent, names[-1])
            self.api._finish(request, 200, b"")
        else:
            self.api._finish(request, 400, b"this directory operation is not supported\n")

    async def _start_walk(self, request: server.Request, here: DirectoryCap, kind: str,
                          args: dict[str, list[str]]) -> None:
        """Start a walk under an operation handle; redirect to its status page."""
        dirs = self.dirs

        async def run(op: Operation) -> None:
            async for unit in walk(dirs, here, op.stats):
                op.add(unit)

        si = getattr(here.file, "storage_index", None)
        target = start_for_request(self.api.operations, args, kind,
                                   base32.b2a(si) if si else None, run)
        request.setHeader(b"location", target.encode())
        self.api._finish(request, 302, f"see {target}\n".encode())

    async def _stream_manifest(self, request: server.Request, here: DirectoryCap) -> None:
        stats = DeepStats()
        await write_units(request, walk(self.dirs, here, stats), stats)

    async def _get(self, request: server.Request, root: DirectoryCap, names: list[str],
                   t: str, args: dict[str, list[str]]) -> None:
        child = await self.dirs.resolve(root, names) if names else None
        text = (child.rw_uri or child.ro_uri or "") if child is not None else root.to_string()
        if t in ("uri", "readonly-uri"):
            if child is None:
                shown = root.read_only().to_string() if t == "readonly-uri" else text
            else:
                shown = (child.ro_uri if t == "readonly-uri" else text) or ""
            self.api._finish(request, 200, shown.encode(), b"text/plain")
            return
        if is_directory_text(text):
            here = parse_directory_cap(text)
            kids = await self.dirs.children(here)
            if t == "json":
                info = directory_fields(here)
                info["children"] = {name: child_json(c) for name, c in sorted(kids.items())}
                if child is not None:
                    info["metadata"] = dict(child.metadata)
                self.api._finish(request, 200, json.dumps(["dirnode", info]).encode(),
                                 b"application/json")
                return
            if t == "info":
                info = directory_fields(here)
                info["size"] = None
                self.api._finish(request, 200, info_page(
                    names[-1] if names else "", ["dirnode", info]),
                    b"text/html; charset=utf-8")
                return
            described = ((name, *child_json(c, with_metadata=False))
                         for name, c in sorted(kids.items()))
            rows = "".join(
                f"<tr><td>{html.escape(name)}</td><td>{html.escape(kind)}</td>"
                f"<td>{html.escape(str(info.get('size', '')))}</td></tr>"
                for name, kind, info in described)
            page = (f"<html><head><title>directory</title></head><body><table><tr>"
                    f"<th>name</th><th>type</th><th>size</th></tr>{rows}</table>"
                    f"</body></html>")
            self.api._finish(request, 200, page.encode(), b"text/html; charset=utf-8")
            return
        assert child is not None
        if t == "json":
            self.api._finish(request, 200, json.dumps(child_json(child)).encode(),
                             b"application/json")
            return
        if t == "info":
            self.api._finish(request, 200, info_page(names[-1], child_json(child)),
                             b"text/html; charset=utf-8")
            return
        if t:
            raise BadPathError(f"t={t[:20]!r} is not supported for a file")
        await self.api._get(request, child.ro_uri or text,
                            {"filename": [names[-1]], **args})

    async def _put(self, request: server.Request, root: DirectoryCap, names: list[str],
                   t: str, args: dict[str, list[str]]) -> None:
        parent = await self.dirs.ensure_path(root, names[:-1], self._default_format())
        name = names[-1]
        content: IO[bytes] = request.content or io.BytesIO()
        if t == "uri":
            raw = await threads.deferToThread(content.read, MAX_CAP_BODY + 1)
            if len(raw) > MAX_CAP_BODY:
                raise BadRequestError(f"a cap to link is at most {MAX_CAP_BODY} bytes")
            text = raw.decode("utf-8", "replace")
            rw, ro = caps_of(text.strip())
            new = await self.dirs.link(parent, name, rw, ro, replace=_replace(args))
            self.api._finish(request, 201 if new else 200, text.strip().encode())
            return
        if t == "mkdir":
            made = await self.dirs.ensure_path(parent, [name], self._dir_format(args))
            self.api._finish(request, 200, made.to_string().encode())
            return
        if t:
            raise BadPathError(f"t={t[:20]!r} is not supported here")
        size = content.seek(0, os.SEEK_END)
        content.seek(0)
        kids = await self.dirs.children(parent)
        existing = kids.get(name)
        fmt_given = bool(args.get("format") or args.get("mutable"))
        if existing is not None and existing.rw_uri and is_mutable_text(existing.rw_uri) \
                and not fmt_given:
            cap = parse_mutable_cap(existing.rw_uri)
            assert isinstance(cap, MutableWriteCap)
            await self.api._mutable().replace(cap, content, size)
            self.api._finish(request, 200, existing.rw_uri.encode())
            return
        text = await self.api.make_file(content, size, args)
        rw, ro = caps_of(text)
        new = await self.dirs.link(parent, name, rw, ro, replace=_replace(args))
        self.api._finish(request, 201 if new else 200, text.encode())


MAX_CHILDREN_BODY = 64 * 1024 * 1024
MAX_CAP_BODY = 64 * 1024  # a cap is a few hundred bytes


async def write_units(request: server.Request, units: AsyncIterator[dict[str, Any]],
                      stats: DeepStats) -> None:
    """One JSON line per unit (written as the walk goes), then one with the deep
    statistics; an error after the first line becomes an "ERROR: ..." line, as Tahoe's."""
    request.setResponseCode(200)
    request.setHeader(b"content-type", b"text/plain; charset=utf-8")
    try:
        async for unit in units:
            if request.finished or request._disconnected:
                return
            request.write(json.dumps(unit).encode() + b"\n")
        final: dict[str, Any] = {"type": "stats", "stats": stats.to_json()}
        request.write(json.dumps(final).encode() + b"\n")
    except MistgridError as err:
        if not request.startedWriting:
            raise
        request.write(b"ERROR: " + str(err).encode() + b"\n")
    if not request.finished and not request._disconnected:
        request.finish()


def children_from_json(body: bytes) -> list[Child]:
    """Children as t=json gives them ({name: [type, {rw_uri, ro_uri, metadata}]}); 400
    for anything else."""
    return [child for child, _given in parse_children_json(body)]


def parse_children_json(body: bytes) -> list[tuple[Child, bool]]:
    """Children of a t=json-shaped body, each with whether its metadata was given."""
    if not body.strip():
        return []
    if len(body) > MAX_CHILDREN_BODY:
        raise BadRequestError("the children's JSON is too large")
    try:
        value = json.loads(body)
    except (ValueError, RecursionError) as err:
        raise BadRequestError("the body is not JSON") from err
    if not isinstance(value, dict):
        raise BadRequestError("the body must be a JSON object of children")
    children = []
    for name, entry in value.items():
        if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[1], dict)):
            raise BadRequestError(f"child {name[:40]!r}: expected [type, {{...}}]")
        fields = entry[1]
        rw, ro = fields.get("rw_uri"), fields.get("ro_uri")
        metadata = fields.get("metadata") or {}
        if not all(v is None or isinstance(v, str) for v in (rw, ro)) or \
                not isinstance(metadata, dict) or not (rw or ro):
            raise BadRequestError(f"child {name[:40]!r}: caps must be text, metadata an "
                                  "object")
        if rw and not ro:
            rw, ro = caps_of(rw)
        # the metadata as given, as Tahoe keeps it (no link times added)
        children.append((Child(check_name(name), ro, rw, metadata), "metadata" in fields))
    return children


def info_page(name: str, described: list[Any]) -> bytes:
    """Tahoe's t=info: what an object is and its caps, as a small page."""
    kind, info = described
    rows = [("Name", name), ("Object type", kind), ("Format", info.get("format")),
            ("Mutable", info.get("mutable")), ("Size", info.get("size")),
            ("Read-only cap", info.get("ro_uri")), ("Verify cap", info.get("verify_uri"))]
    cells = "".join(f"<tr><th>{html.escape(label)}</th><td>{html.escape(str(value))}</td></tr>"
                    for label, value in rows if value is not None)
    return (f"<html><head><title>about {html.escape(name)}</title></head><body>"
            f"<h1>about {html.escape(name or 'this object')}</h1><table>{cells}</table>"
            "</body></html>").encode()


class BadPathError(MistgridError):
    """A path the directory API cannot act on (400)."""


def _replace(args: dict[str, list[str]]) -> bool:
    value = (args.get("replace") or ["true"])[-1].strip().lower()
    return value not in ("false", "0", "off", "no")
