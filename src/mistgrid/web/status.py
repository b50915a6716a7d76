"""`/status`: a client node's current and recent operations, as Tahoe's status page.

How this works: each upload, download, publish (a mutable write) and retrieve (a mutable
read) the web API runs is an `OpStatus` from its start; when it ends it moves to the
recent list, which keeps the last `KEEP_RECENT`. `GET /status?t=json` gives Tahoe's
shape (`{"active": [...], "recent": [...]}`, each with `type`, `total-size`, `status`,
`storage-index-string` and the type's progress fields); `GET /status` a page. No cap,
key or file name is ever kept here: only sizes, storage indexes and times.
"""

from __future__ import annotations

import html
import itertools
import json
import time
from collections import deque
from typing import Any

import attrs

from ..caps import base32

KEEP_RECENT = 50


@attrs.define(eq=False)
class OpStatus:
    kind: str  # upload, download, publish, retrieve
    size: int | None
    storage_index: bytes | None = None
    status: str = "started"
    done: int = 0
    started: float = attrs.field(factory=time.time)
    finished: float | None = None
    counter: int = 0

    def advance(self, count: int) -> None:
        self.done += count

    @property
    def progress(self) -> float:
        if self.finished is not None:
            return 1.0
        return min(1.0, self.done / self.size) if self.size else 0.0

    def to_json(self) -> dict[str, Any]:
        item: dict[str, Any] = {
            "type": self.kind, "total-size": self.size, "status": self.status,
            "storage-index-string": base32.b2a(self.storage_index)
            if self.storage_index else None,
            "started": self.started, "finished": self.finished, "counter": self.counter}
        if self.kind == "upload":
            item.update({"progress-hash": self.progress, "progress-ciphertext": self.progress,
                         "progress-encode-push": self.progress})
        elif self.kind == "download":
            item["progress"] = self.progress
        return item


class History:
    def __init__(self) -> None:
        self.active: list[OpStatus] = []
        self.recent: deque[OpStatus] = deque(maxlen=KEEP_RECENT)
        self._counter = itertools.count(1)

    def start(self, kind: str, size: int | None,
              storage_index: bytes | None = None) -> OpStatus:
        op = OpStatus(kind, size, storage_index, counter=next(self._counter))
        self.active.append(op)
        return op

    def end(self, op: OpStatus, error: BaseException | None = None) -> None:
        op.finished = time.time()
        op.status = "done" if error is None else f"failed: {type(error).__name__}"
        if op in self.active:
            self.active.remove(op)
        self.recent.appendleft(op)

    def to_json(self) -> bytes:
        body = {"active": [op.to_json() for op in self.active],
                "recent": [op.to_json() for op in self.recent]}
        return (json.dumps(body, indent=1) + "\n").encode()

    def page(self) -> bytes:
        def rows(ops: list[OpStatus]) -> str:
            return "".join(
                "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in (
                    time.strftime("%H:%M:%S", time.localtime(op.started)), op.kind,
                    op.size if op.size is not None else "?", f"{op.progress:.0%}",
                    op.status)) + "</tr>" for op in ops)
        head = ("<tr><th>started</th><th>type</th><th>size</th><th>progress</th>"
                "<th>status</th></tr>")
        return (f"<html><head><title>status</title></head><body><h1>Current operations"
                f"</h1><table>{head}{rows(self.active)}</table><h1>Recent operations</h1>"
                f"<table>{head}{rows(list(self.recent))}</table></body></html>").encode()
