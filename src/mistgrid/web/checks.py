"""The web API's check paths (`frontends/webapi.rst`), on Tahoe's paths and shapes.

    POST /uri/$CAP[/PATH]?t=check            check a file or directory: verify=true reads
                                             every share; repair=true repairs an unhealthy
                                             one; add-lease=true adds or renews leases;
                                             output=JSON gives Tahoe's JSON, else a page
    POST /uri/$DIRCAP[/PATH]?t=stream-deep-check   one JSON line per object reached (its
                                             check or check-and-repair results), then the
                                             deep statistics; "ERROR: ..." if the walk stops
    POST /uri/$DIRCAP[/PATH]?t=start-deep-check&ophandle=H   the same under a handle
                                             (/operations/H gives Tahoe's totals)

How this works: the walk (grid.traverse) yields objects in order; up to `WINDOW` of them
are checked at once and their lines written in walk order as they finish.
"""

from __future__ import annotations

import html
import json
from collections import deque
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.web import server

from ..caps import base32
from ..caps.directory import DirectoryCap
from ..dirnode.stats import DeepStats
from ..errors import CapabilityError, MistgridError
from ..grid.checker import Checker, FileCap, parse_any_cap
from ..grid.directories import Directories
from ..grid.traverse import walk
from ..health.deep import DeepCheck
from ..health.results import CheckResults, RepairResults
from .directories import write_units
from .keys import BadRequestError
from .operations import Operation, start_for_request

if TYPE_CHECKING:
    from .api import WebAPI

WINDOW = 8  # objects checked at once during a deep-check
_Outcome = CheckResults | RepairResults | None


def flag(args: dict[str, list[str]], name: str) -> bool:
    """A boolean argument as Tahoe reads one (true, t, 1, on; any case)."""
    value = (args.get(name) or ["false"])[-1].strip().lower()
    if value in ("true", "t", "1", "on", "yes"):
        return True
    if value in ("false", "f", "0", "off", "no", ""):
        return False
    raise BadRequestError(f"{name}= must be true or false, not {value[:40]!r}")


class CheckPages:
    def __init__(self, api: WebAPI, checker: Checker, dirs: Directories | None) -> None:
        self.api = api
        self.checker = checker
        self.dirs = dirs

    async def _one(self, cap: FileCap | DirectoryCap,
                   args: dict[str, list[str]]) -> CheckResults | RepairResults:
        verify, add_lease = flag(args, "verify"), flag(args, "add-lease")
        if flag(args, "repair"):
            return await self.checker.check_and_repair(cap, verify, add_lease)
        return await self.checker.check(cap, verify, add_lease)

    async def check(self, request: server.Request, cap: FileCap | DirectoryCap,
                    args: dict[str, list[str]]) -> None:
        """t=check of one file or directory."""
        results = await self._one(cap, args)
        if (args.get("output") or [""])[-1].lower() == "json":
            self.api._finish(request, 200, json.dumps(results.to_json()).encode(),
                             b"application/json")
            return
        title = "Check and repair results" if isinstance(results, RepairResults) \
            else "Check results"
        body = (f"<html><head><title>{title}</title></head><body><h1>{title}</h1>"
                f"<pre>{html.escape(chr(10).join(results.words()))}</pre></body></html>")
        self.api._finish(request, 200, body.encode(), b"text/html; charset=utf-8")

    async def _units(self, here: DirectoryCap, args: dict[str, list[str]], stats: DeepStats
                     ) -> AsyncIterator[tuple[dict[str, Any], CheckResults | RepairResults
                                              | None]]:
        """Each object below `here` (a unit as stream-manifest gives it, with its results
        under "check-results" or "check-and-repair-results") and those results (None for a
        cap that does not parse); WINDOW checks at once, given in walk order."""
        if self.dirs is None:
            raise MistgridError("this node has no directories")
        key = "check-and-repair-results" if flag(args, "repair") else "check-results"
        flag(args, "verify")  # refuse bad values before the walk starts
        flag(args, "add-lease")
        pending: deque[tuple[dict[str, Any], defer.Deferred[_Outcome]]] = deque()

        async def checked(unit: dict[str, Any]) -> _Outcome:
            try:
                cap = parse_any_cap(unit["cap"])
            except CapabilityError:
                return None
            return await self._one(cap, args)

        async def finished() -> tuple[dict[str, Any], _Outcome]:
            unit, job = pending.popleft()
            results = await job
            unit[key] = results.to_json() if results is not None else {
                "error": "not a cap this node can check"}
            return unit, results

        async for unit in walk(self.dirs, here, stats):
            pending.append((unit, defer.Deferred.fromCoroutine(checked(unit))))
            while len(pending) >= WINDOW or (pending and pending[0][1].called):
                yield await finished()
        while pending:
            yield await finished()

    async def stream_deep_check(self, request: server.Request, here: DirectoryCap,
                                args: dict[str, list[str]]) -> None:
        stats = DeepStats()

        async def units() -> AsyncIterator[dict[str, Any]]:
            async for unit, _ in self._units(here, args, stats):
                yield unit

        await write_units(request, units(), stats)

    async def start_deep_check(self, request: server.Request, here: DirectoryCap,
                               args: dict[str, list[str]]) -> None:
        si = getattr(here.file, "storage_index", None)
        si_text = base32.b2a(si) if si else None
        repair = flag(args, "repair")

        async def run(op: Operation) -> None:
            deep = op.deep = DeepCheck(repair, si_text)
            async for unit, results in self._units(here, args, op.stats):
                op.add(unit)
                if results is not None:
                    deep.add(unit["path"], results)

        target = start_for_request(self.api.operations, args, "deep-check", si_text, run)
        request.setHeader(b"location", target.encode())
        self.api._finish(request, 302, f"see {target}\n".encode())
