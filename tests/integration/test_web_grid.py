"""A local grid of node processes: 4 storage nodes and a client node whose web API
stores and reads files (Tahoe's PUT /uri and GET /uri/$CAP), with the welcome page
showing every server's state and route."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from http.client import HTTPConnection
from pathlib import Path

import pytest

from mistgrid.storage.announcement import servers_yaml
from mistgrid.testing.procs import Managed, free_ports, stop_all, wait_for

from ..conftest import run_cli

MISTGRID = str(Path(sys.executable).with_name("mistgrid"))


def start(node: Path, log: Path) -> Managed:
    return Managed(f"mistgrid run {node.name}", [MISTGRID, "run", str(node)], log)


def start_grid(base: Path, processes: list[Managed], servers: int = 4, needed: int = 2,
               happy: int = 4, total: int = 4, storage_lines: str = "",
               storage_web: bool = False) -> Path:
    """Storage nodes storage0.. (`storage_lines` added to their [storage] section; a web
    port each with `storage_web`) and a client listing them in servers.yaml, started and
    appended to `processes` (storage nodes first); the client's directory once its web API
    is up."""
    entries = {}
    ports = free_ports(2 * servers + 1)  # all at once: none handed out twice
    for i, port in enumerate(ports[:servers]):
        node = base / f"storage{i}"
        web = f"tcp:{ports[servers + i]}:interface=127.0.0.1" if storage_web else "none"
        run_cli("create-node", "--nickname", f"s{i}", "--webport", web,
                "--port", f"tcp:{port}:interface=127.0.0.1",
                "--location", f"tcp:127.0.0.1:{port}", str(node))
        if storage_lines:
            config = node / "tahoe.cfg"
            config.write_text(config.read_text().replace(
                "[storage]\n", f"[storage]\n{storage_lines}", 1))
        processes.append(start(node, base / f"storage{i}.log"))
        announcement = node / "private" / "announcement.json"
        wait_for(exists(announcement), 30, "a storage node", watch=processes)
        entry = json.loads(announcement.read_text())
        entries[entry["server-id"]] = entry["ann"]
    web_port = ports[-1]
    client = base / "client"
    run_cli("create-client", "--webport", f"tcp:{web_port}:interface=127.0.0.1",
            "--shares-needed", str(needed), "--shares-happy", str(happy),
            "--shares-total", str(total), str(client))
    (client / "private" / "servers.yaml").write_text(servers_yaml(entries))
    processes.append(start(client, base / "client.log"))
    wait_for(exists(client / "node.url"), 30, "the client's web API", watch=processes)
    return client


@pytest.fixture(scope="module")
def web_grid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """(web API URL, the directory holding every node and log)."""
    base = tmp_path_factory.mktemp("webgrid")
    processes: list[Managed] = []
    try:
        client = start_grid(base, processes)
        yield (client / "node.url").read_text().strip(), base
    finally:
        stop_all(processes)


@pytest.fixture
def web_url(web_grid: tuple[str, Path]) -> str:
    return web_grid[0]


def exists(path: Path) -> Callable[[], bool | None]:
    return lambda: True if path.exists() else None


def http(method: str, url: str, body: bytes | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method=method)
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


@pytest.mark.parametrize("size", [0, 1024, 5 * 1024 * 1024 + 3])
def test_put_and_get(web_url: str, size: int) -> None:
    data = os.urandom(size)
    status, cap = http("PUT", web_url + "uri", data)
    assert status == 200, cap
    assert cap.startswith(b"URI:LIT:" if size <= 55 else b"URI:CHK:")
    status, back = http("GET", web_url + "uri/" + cap.decode())
    assert status == 200 and back == data
    status, info = http("GET", web_url + "uri/" + cap.decode() + "?t=json")
    assert json.loads(info)[1]["size"] == size


def test_welcome_lists_servers(web_url: str) -> None:
    status, body = http("GET", web_url + "?t=json")
    servers = json.loads(body)["servers"]
    assert status == 200 and len(servers) == 4
    assert {s["connected"] for s in servers} == {True}
    assert all(s["connection_status"].startswith("Connected to 127.0.0.1:") for s in servers)
    assert all(s["connection_status"].endswith(" via direct") for s in servers)
    assert all(isinstance(s["available_space"], int) for s in servers)
    assert {s["route"] for s in servers} == {"direct"}
    status, page = http("GET", web_url)
    assert status == 200 and b"<table>" in page


def test_bad_cap_is_400(web_url: str) -> None:
    status, body = http("GET", web_url + "uri/URI:CHK:nope")
    assert status == 400 and b"malformed" in body


def test_no_cap_in_any_log(web_grid: tuple[str, Path]) -> None:
    """After storing and reading a file, no node's log holds its key (the cap's secret)."""
    web_url, base = web_grid
    status, cap = http("PUT", web_url + "uri", os.urandom(5000))
    assert status == 200
    assert http("GET", web_url + "uri/" + cap.decode())[0] == 200
    key = cap.decode().split(":")[2]
    logs = list(base.rglob("*.log"))
    assert len(logs) == 10  # each node's output and its logs/node.log
    for log in logs:
        assert key not in log.read_text(errors="replace"), log


def test_cli_put_and_get(web_grid: tuple[str, Path], tmp_path: Path) -> None:
    """`mistgrid put FILE` / `put -` and `mistgrid get CAP OUT` / `get CAP -` with -d."""
    _url, base = web_grid
    client = str(base / "client")
    data = os.urandom(2 * 1024 * 1024 + 9)
    source = tmp_path / "in"
    source.write_bytes(data)
    put = run_cli("put", "-d", client, str(source))
    assert put.returncode == 0, put.stderr.decode()
    cap = put.stdout.decode().strip()
    assert cap.startswith("URI:CHK:") and put.stderr == b""  # piped: no progress bar
    target = tmp_path / "out"
    got = run_cli("get", "-d", client, cap, str(target))
    assert got.returncode == 0 and target.read_bytes() == data
    piped = run_cli("put", "-d", client, "-", input_bytes=b"from stdin" * 100)
    streamed = run_cli("get", "-d", client, piped.stdout.decode().strip(), "-")
    assert streamed.stdout == b"from stdin" * 100
    # Tahoe's habit: the node directory before the command.
    again = run_cli("-d", client, "get", piped.stdout.decode().strip(), "-")
    assert again.returncode == 0 and again.stdout == b"from stdin" * 100


def test_cli_without_a_running_node(tmp_path: Path) -> None:
    result = run_cli("get", "-d", str(tmp_path), "URI:LIT:nbswy3dp")
    assert result.returncode == 1
    assert b"is the node running?" in result.stderr and b"Traceback" not in result.stderr


def form(fields: list[tuple[str, str | None, bytes]], boundary: str = "xYzZY") -> bytes:
    """A multipart/form-data body: (name, filename or None, content) per field."""
    out = b""
    for name, filename, content in fields:
        disposition = f'form-data; name="{name}"' + (
            f'; filename="{filename}"' if filename is not None else "")
        out += (f"--{boundary}\r\nContent-Disposition: {disposition}\r\n"
                f"Content-Type: application/octet-stream\r\n\r\n").encode() + content + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def post(url: str, body: bytes, kind: str) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": kind})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def test_post_upload_form(web_url: str) -> None:
    """POST /uri?t=upload stores the form's `file` field (here holding the boundary-like
    bytes "\\r\\n--" inside) and gives the same cap as PUT /uri of the same bytes."""
    data = os.urandom(3 * 1024 * 1024) + b"\r\n--xYzZ\r\n" + os.urandom(100)
    body = form([("t", None, b"upload"), ("file", "a.bin", data)])
    status, cap = post(web_url + "uri?t=upload", body,
                       'multipart/form-data; boundary="xYzZY"')
    assert status == 200, cap
    assert http("GET", web_url + "uri/" + cap.decode()) == (200, data)
    assert http("PUT", web_url + "uri", data) == (200, cap)  # same convergent cap


@pytest.mark.parametrize("body, kind", [
    (b"plain", "text/plain"),
    (form([("other", None, b"x")]), "multipart/form-data; boundary=xYzZY"),
    (form([("file", "a", b"x")])[:-10], "multipart/form-data; boundary=xYzZY"),
    (form([("file", "a", b"x")]), "multipart/form-data"),
])
def test_post_upload_bad_forms_are_400(web_url: str, body: bytes, kind: str) -> None:
    """A body that is not a well-formed form with one `file` field: 400 and a reason."""
    status, reason = post(web_url + "uri?t=upload", body, kind)
    assert status == 400, reason
    assert reason.endswith(b"\n") and reason.count(b"\n") == 1


def ranged(url: str, header: str) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers={"Range": header})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def test_get_with_range(web_url: str) -> None:
    """Range: first, middle (across a segment boundary), last-N and open-ended ranges give
    206 with Content-Range and exactly those bytes; a range past the end gives 416."""
    segment = 1024 * 1024  # default segment size (2-of-4 rounds it to a multiple of 2)
    data = os.urandom(3 * segment + 77)
    status, cap = http("PUT", web_url + "uri", data)
    assert status == 200
    url = web_url + "uri/" + cap.decode()
    size = len(data)
    cases = {"bytes=0-9": (0, 10), f"bytes={segment - 5}-{segment + 4}": (segment - 5, segment + 5),
             "bytes=-100": (size - 100, size), f"bytes={2 * segment}-": (2 * segment, size),
             f"bytes=10-{size + 1000}": (10, size)}
    for header, (start, end) in cases.items():
        status, headers, body = ranged(url, header)
        assert status == 206, header
        assert headers["Content-Range"] == f"bytes {start}-{end - 1}/{size}", header
        assert body == data[start:end], header
    status, headers, _ = ranged(url, f"bytes={size}-")
    assert status == 416 and headers["Content-Range"] == f"bytes */{size}"
    status, _, body = ranged(url, "items=0-1")  # not a byte range: the whole file
    assert status == 200 and body == data
    lit = http("PUT", web_url + "uri", b"small literal")[1].decode()
    assert ranged(web_url + "uri/" + lit, "bytes=6-")[::2] == (206, b"literal")


def raw_get(web_url: str, target: str, headers: dict[str, str] | None = None,
            connection: HTTPConnection | None = None
            ) -> tuple[int, dict[str, str], bytes]:
    """One GET on `connection` (or a new one) that must be answered within 20 s."""
    url = urllib.parse.urlsplit(web_url)
    conn = connection or HTTPConnection(url.hostname or "", url.port, timeout=20)
    try:
        conn.request("GET", target, headers=headers or {})
        response = conn.getresponse()
        return (response.status, {k.lower(): v for k, v in response.getheaders()},
                response.read())
    finally:
        if connection is None:
            conn.close()


def test_odd_requests_are_answered(web_url: str) -> None:
    """An argument name that is not UTF-8 and a Range with a 5,000-digit number get an
    answer (they used to hang the request and log a traceback)."""
    data = os.urandom(1000)
    status, cap = http("PUT", web_url + "uri", data)
    assert status == 200
    status, _headers, body = raw_get(web_url, f"/uri/{cap.decode()}?%ff=1")
    assert status == 200 and body == data
    status, _headers, body = raw_get(web_url, f"/uri/{cap.decode()}",
                                    {"Range": "bytes=" + "9" * 5000 + "-"})
    assert status == 416
    status, _headers, body = raw_get(web_url, f"/uri/{cap.decode()}",
                                    {"Range": "bytes=10-" + "9" * 5000})
    assert status == 206 and body == data[10:]


def test_failed_download_answers_with_its_own_length(web_url: str) -> None:
    """A file no server holds: 410 with a Content-Length that is the reason's, not the
    file's, so a kept-alive connection goes on to its next request."""
    status, cap = http("PUT", web_url + "uri", os.urandom(5000))
    assert status == 200
    fields = cap.decode().split(":")
    fields[2] = "a" * len(fields[2])  # another key: another storage index, held nowhere
    missing = ":".join(fields)
    url = urllib.parse.urlsplit(web_url)
    conn = HTTPConnection(url.hostname or "", url.port, timeout=60)
    try:
        for header in ({}, {"Range": "bytes=10-20"}):
            status, headers, body = raw_get(web_url, f"/uri/{missing}", header, conn)
            assert status == 410, body
            assert int(headers["content-length"]) == len(body) and body.endswith(b"\n")
            assert "content-range" not in headers
        status, _headers, _body = raw_get(web_url, "/?t=json", connection=conn)
        assert status == 200
    finally:
        conn.close()


def test_form_of_many_empty_parts_is_refused_quickly(web_url: str) -> None:
    """A 2 MiB form of 41,120 empty parts (12 s of the node's reactor before) is refused
    with 400 within a few seconds, and meanwhile the node answers other requests (a
    literal cap's read, every 20 ms) within 1 s."""
    part = b"--xYzZY\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n\r\n"
    body = part * (2 * 1024 * 1024 // len(part)) + b"--xYzZY--\r\n"
    answers: list[tuple[int, bytes]] = []
    poster = threading.Thread(target=lambda: answers.append(
        post(web_url + "uri?t=upload", body, "multipart/form-data; boundary=xYzZY")))
    start = time.monotonic()
    poster.start()
    worst = 0.0
    while poster.is_alive() and time.monotonic() - start < 60:
        asked = time.monotonic()
        assert raw_get(web_url, "/uri/URI:LIT:nbswy3dp")[2] == b"hello"
        worst = max(worst, time.monotonic() - asked)
        time.sleep(0.02)
    poster.join(60)
    elapsed = time.monotonic() - start
    status, reason = answers[0]
    assert status == 400 and b"parts" in reason
    assert elapsed < 5, f"{elapsed:.1f} s"
    assert worst < 1.0, f"the node did not answer for {worst:.1f} s"
