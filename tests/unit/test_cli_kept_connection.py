"""The CLI's kept connection to its node (`cp -r`, `backup`): uploads reuse one connection
per thread, and one the node closed while it sat idle is replaced without the upload
failing or being counted twice."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from mistgrid.cli.data import KeptConnection, send_body


class Node(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # each connection's client address: an id() of a closed connection's socket can come
    # back for the next one (seen: two connections counted as one)
    connections: ClassVar[set[tuple[str, int]]] = set()
    bodies: ClassVar[list[bytes]] = []
    close_after: ClassVar[bool] = False

    def do_PUT(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Node.bodies.append(body)
        Node.connections.add(self.client_address)
        answer = b"URI:CHK:fake-" + body
        self.send_response(200)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)
        if Node.close_after:  # closes without saying so (as a node that restarted)
            self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Path]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Node)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    (tmp_path / "node.url").write_text(f"http://127.0.0.1:{server.server_address[1]}/\n")
    Node.connections, Node.bodies, Node.close_after = set(), [], False
    try:
        yield tmp_path
    finally:
        server.shutdown()
        server.server_close()


def test_uploads_reuse_one_connection_and_survive_its_close(node: Path) -> None:
    kept = KeptConnection()
    progress: list[int] = []
    try:
        for word in (b"a", b"b", b"c"):
            assert send_body(node, "PUT", "uri", io.BytesIO(word), 1, progress.append,
                             kept) == "URI:CHK:fake-" + word.decode()
        assert len(Node.connections) == 1
        Node.close_after = True
        assert send_body(node, "PUT", "uri", io.BytesIO(b"d"), 1, progress.append,
                         kept) == "URI:CHK:fake-d"
        Node.close_after = False
        # The node closed that connection: the next upload goes again on a new one.
        assert send_body(node, "PUT", "uri", io.BytesIO(b"e"), 1, progress.append,
                         kept) == "URI:CHK:fake-e"
    finally:
        kept.close_all()
    assert Node.bodies == [b"a", b"b", b"c", b"d", b"e"]
    assert sum(progress) == 5  # an attempt repeated is not counted twice
    assert len(Node.connections) == 2
