"""Slow operations with handles (`frontends/webapi.rst`, "Slow Operations"), as Tahoe.

    POST $DIRURL?t=start-manifest&ophandle=H     a walk of the tree, its manifest
    POST $DIRURL?t=start-deep-size&ophandle=H    its deep size
    POST $DIRURL?t=start-deep-stats&ophandle=H   its deep statistics
    POST $DIRURL?t=start-deep-check&ophandle=H   a deep-check (verify=, repair=,
                                                 add-lease=), run by web/checks
    GET  /operations/H[?t=status][&output=JSON|text|HTML][&retain-for=S]
         [&release-after-complete=true]
    POST /operations/H?t=cancel

How this works: starting answers at once with a redirect to /operations/H; the walk
runs in the background and its results grow in an `Operation`. A finished operation's
handle is kept for four days, or one day after its results were first collected, or for
retain-for= seconds; at most `MAX_HANDLES` are kept (the oldest finished ones go first),
so handles cannot grow the node's memory without bound.
"""

from __future__ import annotations

import html
import json
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
from twisted.internet import defer
from twisted.internet import reactor as _reactor

from ..dirnode.stats import DeepStats
from ..errors import MistgridError
from ..health.deep import DeepCheck

reactor: Any = _reactor
DAY = 24 * 60 * 60
UNCOLLECTED_LIFETIME = 4 * DAY
COLLECTED_LIFETIME = 1 * DAY
MAX_HANDLES = 1000
KINDS = ("manifest", "deep-size", "deep-stats", "deep-check")


class UnknownHandleError(MistgridError):
    """An operation handle that is not (or no longer) known (404)."""


@attrs.define(eq=False)
class Operation:
    kind: str
    origin_si: str | None
    started: float = attrs.field(factory=time.time)
    finished: bool = False
    error: str | None = None
    manifest: list[tuple[list[str], str]] = attrs.field(factory=list)
    verifycaps: set[str] = attrs.field(factory=set)
    storage_indexes: set[str] = attrs.field(factory=set)
    stats: DeepStats = attrs.field(factory=DeepStats)
    task: defer.Deferred[None] | None = None
    timer: Any = None  # an IDelayedCall
    collected: bool = False
    deep: DeepCheck | None = None  # a deep-check's totals

    def add(self, unit: dict[str, Any]) -> None:
        """One object the walk reached (a unit as stream-manifest gives it)."""
        self.manifest.append((list(unit["path"]), unit["cap"]))
        if unit.get("verifycap"):
            self.verifycaps.add(unit["verifycap"])
        if unit.get("storage-index"):
            self.storage_indexes.add(unit["storage-index"])

    def to_json(self) -> dict[str, Any]:
        result: dict[str, Any] = {"finished": self.finished}
        if self.error is not None:
            result["error"] = self.error
        if self.kind == "manifest":
            result["origin_si"] = self.origin_si
            if self.finished:
                result.update({"manifest": self.manifest,
                               "verifycaps": sorted(self.verifycaps),
                               "storage-index": sorted(self.storage_indexes),
                               "stats": self.stats.to_json()})
        elif self.kind == "deep-size":
            result["size"] = self.stats.deep_size
        elif self.deep is not None:
            result.update(self.deep.to_json())
            result["stats"] = self.stats.to_json()
        else:
            result.update(self.stats.to_json())
        return result

    def to_text(self) -> str:
        lines = [f"finished: {'yes' if self.finished else 'no'}"]
        if self.error is not None:
            lines.append(f"error: {self.error}")
        if self.kind == "manifest":
            lines += [f"{'/'.join(path)} {cap}".lstrip() for path, cap in self.manifest]
        elif self.kind == "deep-size":
            lines.append(f"size: {self.stats.deep_size}")
        elif self.deep is not None:
            lines += self.deep.lines()
            lines += [f"{'/'.join(path) or '<root>'}: {data.get('summary', 'not healthy')}"
                      for path, data in self.deep.unhealthy_files]
        else:
            lines += [f"{key}: {value}" for key, value in self.stats.to_json().items()]
        return "\n".join(lines) + "\n"

    def to_html(self) -> str:
        refresh = "" if self.finished else '<meta http-equiv="refresh" content="60">'
        return (f"<html><head><title>{self.kind}</title>{refresh}</head><body>"
                f"<h1>{self.kind}: {'finished' if self.finished else 'running'}</h1>"
                f"<pre>{html.escape(self.to_text())}</pre></body></html>")


class Operations:
    def __init__(self) -> None:
        self.handles: dict[str, Operation] = {}

    def start(self, handle: str, kind: str, origin_si: str | None,
              run: Callable[[Operation], Awaitable[None]], retain_for: int | None) -> None:
        if not handle:
            raise BadOperationError(f"t=start-{kind} needs an ophandle= argument")
        if len(handle) > 200:
            raise BadOperationError("an ophandle has at most 200 characters")
        old = self.handles.pop(handle, None)
        if old is not None:
            self._forget(handle, old)
        self._make_room()
        op = Operation(kind, origin_si)
        self.handles[handle] = op
        if retain_for is not None:
            self._expire_in(handle, op, retain_for)

        async def running() -> None:
            try:
                await run(op)
            except defer.CancelledError:
                op.error = "cancelled"
            except MistgridError as err:
                op.error = str(err)
            finally:
                op.finished = True
                if op.timer is None:
                    self._expire_in(handle, op, max(UNCOLLECTED_LIFETIME,
                                                    time.time() - op.started))

        op.task = defer.Deferred.fromCoroutine(running())

    def get(self, handle: str) -> Operation:
        op = self.handles.get(handle)
        if op is None:
            raise UnknownHandleError(f"unknown or expired operation handle {handle[:60]!r}")
        return op

    def collect(self, handle: str, retain_for: int | None, release: bool) -> Operation:
        """The operation, as a status page shows it; its handle's life adjusted."""
        op = self.get(handle)
        if retain_for is not None:
            self._expire_in(handle, op, retain_for)
        if op.finished:
            if release:
                self.release(handle)
            elif retain_for is None and not op.collected:
                self._expire_in(handle, op, COLLECTED_LIFETIME)
            op.collected = True
        return op

    def cancel(self, handle: str) -> Operation:
        op = self.get(handle)
        if op.task is not None and not op.finished:
            op.task.cancel()
        self.release(handle)
        return op

    def release(self, handle: str) -> None:
        op = self.handles.pop(handle, None)
        if op is not None:
            self._forget(handle, op)

    def stop(self) -> None:
        for handle in list(self.handles):
            op = self.handles[handle]
            if op.task is not None and not op.finished:
                op.task.cancel()
            self.release(handle)

    def _forget(self, handle: str, op: Operation) -> None:
        if op.timer is not None and op.timer.active():
            op.timer.cancel()
        op.timer = None

    def _expire_in(self, handle: str, op: Operation, seconds: float) -> None:
        if op.timer is not None and op.timer.active():
            op.timer.cancel()

        def expire() -> None:
            if self.handles.get(handle) is op:
                op.timer = None
                self.release(handle)

        op.timer = reactor.callLater(max(0.0, seconds), expire)

    def _make_room(self) -> None:
        while len(self.handles) >= MAX_HANDLES:
            finished = [(op.started, h) for h, op in self.handles.items() if op.finished]
            if not finished:
                raise BadOperationError(f"{MAX_HANDLES} operations are running already")
            self.release(min(finished)[1])


class BadOperationError(MistgridError):
    """A slow operation that cannot start (400)."""


def start_for_request(operations: Operations, args: dict[str, list[str]], kind: str,
                      origin_si: str | None,
                      run: Callable[[Operation], Awaitable[None]]) -> str:
    """Start `run` under the request's ophandle= (and retain-for=); the path of its status
    page (with the request's output=), for the redirect."""
    handle = (args.get("ophandle") or [""])[-1]
    retain = (args.get("retain-for") or [""])[-1]
    if retain and not retain.isdigit():
        raise BadOperationError("retain-for= is a number of seconds")
    operations.start(handle, kind, origin_si, run, int(retain) if retain else None)
    target = "/operations/" + urllib.parse.quote(handle, safe="")
    output = (args.get("output") or [""])[-1]
    if output:
        target += "?output=" + urllib.parse.quote(output, safe="")
    return target


def render(op: Operation, output: str) -> tuple[bytes, bytes]:
    """(body, content type) of a status page."""
    output = output.lower()
    if output == "json":
        return json.dumps(op.to_json()).encode(), b"application/json"
    if output == "text":
        return op.to_text().encode(), b"text/plain; charset=utf-8"
    return op.to_html().encode(), b"text/html; charset=utf-8"
