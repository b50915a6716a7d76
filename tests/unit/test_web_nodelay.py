"""The web API's connections send at once (TCP_NODELAY) at both ends, the node's site
(twisted.web's channel sees to it on a plain TCP connection) and the CLI's connection to
it: a request's head and body go in separate sends, and with Nagle's algorithm a small
body could wait 40 ms for the peer's delayed acknowledgement."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest_twisted
from twisted.internet import reactor as _reactor
from twisted.internet import threads
from twisted.web import resource, server

from mistgrid.cli.data import connect_local
from mistgrid.storage.server import QuietSite

reactor: Any = _reactor


class _Reports(resource.Resource):
    """Answers with its own connection's TCP_NODELAY."""

    isLeaf = True  # noqa: N815 (Twisted's name)

    def render_PUT(self, request: server.Request) -> bytes:  # noqa: N802
        transport: Any = request.channel.transport
        handle: socket.socket = transport.getHandle()
        return b"%d" % handle.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


@pytest_twisted.ensureDeferred  # type: ignore[untyped-decorator]
async def test_the_site_and_the_cli_connection_send_at_once(tmp_path: Path) -> None:
    site: Any = QuietSite  # (twisted.web's classes are untyped)
    reports: Any = _Reports
    port = reactor.listenTCP(0, site(reports()), interface="127.0.0.1")
    try:
        (tmp_path / "node.url").write_text(f"http://127.0.0.1:{port.getHost().port}/\n")

        def put() -> tuple[bytes, int]:
            conn, base = connect_local(tmp_path)
            try:
                conn.request("PUT", base + "x", body=b"small body")
                answer = conn.getresponse().read()
                assert conn.sock is not None
                return answer, conn.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            finally:
                conn.close()

        site_said, cli_has = await threads.deferToThread(put)
        assert site_said == b"1" and cli_has
    finally:
        await port.stopListening()
