"""What the web port shows while the node's own Tor or I2P router is still starting.

How this works: a node that launches Tor or I2P opens its web port at once with this page
as the whole site, so a person (or a tool reading `/?t=json`) sees how far the bootstrap
is; the node swaps in the web API once its networks are ready. The welcome page says the
progress (and refreshes itself); `?t=json` has Tahoe's keys, empty, with `starting` and
`network` beside them; every other path answers 503 with the same progress and a
Retry-After, so nothing is stored or read before the node can reach the grid.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from typing import Any

from twisted.web import resource, server

RETRY_AFTER = "5"  # seconds


class StartingPage(resource.Resource):
    """The whole site while the node starts; `network` is read live on every request."""

    isLeaf = True  # noqa: N815 (Twisted's name)

    def __init__(self, nickname: str, network: Mapping[str, str]) -> None:
        super().__init__()
        self.nickname = nickname
        self.network = network

    def progress(self) -> str:
        return "; ".join(f"{name}: {text}" for name, text in sorted(self.network.items()))

    def render(self, request: server.Request) -> bytes:
        request.setHeader(b"Cache-Control", b"no-store")
        path = request.path.rstrip(b"/")
        if path == b"" and request.method in (b"GET", b"HEAD"):
            return self._welcome(request)
        request.setResponseCode(503)
        request.setHeader(b"Retry-After", RETRY_AFTER.encode())
        request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
        return (f"the node is still starting ({self.progress() or 'starting'}); try again "
                "in a few seconds\n").encode()

    def _welcome(self, request: server.Request) -> bytes:
        if request.args and request.args.get(b"t") == [b"json"]:
            request.setHeader(b"Content-Type", b"application/json")
            body: dict[str, Any] = {"starting": True, "servers": [],
                                    "introducers": {"statuses": [], "details": []},
                                    "network": dict(self.network)}
            return json.dumps(body, indent=1).encode()
        request.setHeader(b"Content-Type", b"text/html; charset=utf-8")
        items = "".join(f"<li>{html.escape(name)}: {html.escape(text)}</li>"
                        for name, text in sorted(self.network.items()))
        return (f'<html><head><meta http-equiv="refresh" content="2"><title>mistgrid '
                f"{html.escape(self.nickname)} (starting)</title></head><body><h1>mistgrid "
                f"node {html.escape(self.nickname)} is starting</h1><ul>{items}</ul>"
                "<p>This page refreshes itself; the node's pages appear once it can reach "
                "the grid.</p></body></html>").encode()
