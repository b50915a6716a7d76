"""mistgrid's storage server beyond the shared contract: the spec's stricter points,
hostile input (property-based fuzzing: only 4xx, never 5xx or a crash), and crash safety
(kill -9 in the middle of an upload)."""

from __future__ import annotations

import os
import signal
import urllib.parse
from pathlib import Path

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mistgrid.caps import base32
from mistgrid.gbs.headers import secret_header, swissnum_header

from .conftest import start_mistgrid_server, wait_until_serving
from .gbs_client import GbsClient
from .test_contract import V1, allocate, new_si, patch, upload_secrets
from .test_contract_mutable import rtw, write

FIXED_SIS = [base32.b2a(bytes([i]) * 16) for i in range(3)]


def test_repeat_allocate_gives_the_same_answer(mistgrid_storage: GbsClient) -> None:
    """Spec: the same call with the same upload secret gets the same response."""
    si = new_si()
    secrets = upload_secrets()
    first = allocate(mistgrid_storage, si, {1, 2}, 100, secrets)
    assert allocate(mistgrid_storage, si, {1, 2}, 100, secrets) == first == (set(), {1, 2})


def test_abort_without_upload_is_405(mistgrid_storage: GbsClient) -> None:
    resp = mistgrid_storage.request("PUT", f"{V1}/immutable/{new_si()}/0/abort",
                                    secrets={"upload-secret": b"u" * 32})
    assert resp.status == 405


@pytest.mark.parametrize("content_range,body", [
    ("bytes 90-109/*", b"x" * 20),   # past the allocated size
    ("bytes 5-1/*", b""),            # backwards
    ("bytes 0-9/5", b"x" * 10),      # total smaller than the range
    ("0-9", b"x" * 10),              # malformed
    ("bytes 0-9/*", b"x" * 5),       # body shorter than the range
    (None, b"x"),                    # no Content-Range at all
])
def test_bad_writes_are_4xx(mistgrid_storage: GbsClient, content_range: str | None,
                            body: bytes) -> None:
    si = new_si()
    secrets = upload_secrets()
    allocate(mistgrid_storage, si, {0}, 100, secrets)
    headers = {"Content-Range": content_range} if content_range else {}
    resp = mistgrid_storage.request("PATCH", f"{V1}/immutable/{si}/0", body=body,
                                    headers=headers,
                                    secrets={"upload-secret": secrets["upload-secret"]})
    assert 400 <= resp.status < 500
    assert mistgrid_storage.request("GET", f"{V1}/immutable/{si}/shares").cbor() == set()


@pytest.mark.parametrize("path", [
    f"{V1}/immutable/../../etc/passwd", f"{V1}/immutable/%2e%2e/shares",
    f"{V1}/immutable/{'a' * 26}/..%2f..%2f/0", f"{V1}/immutable/{'A' * 26}/shares",
    f"{V1}/immutable/{'a' * 27}/shares", f"{V1}/immutable/{'a' * 26}/256",
    f"{V1}/immutable/{'a' * 26}/007", f"{V1}/immutable/{'a' * 26}/-1", "/storage/v2/version",
    "/", f"{V1}/", f"{V1}/mutable/{'a' * 26}/shares/extra/stuff",
])
def test_path_tricks_are_4xx(mistgrid_storage: GbsClient, path: str) -> None:
    assert 400 <= mistgrid_storage.request("GET", path).status < 500


def random_cbor() -> st.SearchStrategy[object]:
    leaves = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                       st.binary(max_size=40), st.text(max_size=20),
                       st.sampled_from(["share-numbers", "allocated-size", "reason"]))
    return st.recursive(leaves, lambda inner: st.one_of(
        st.lists(inner, max_size=5), st.dictionaries(
            st.one_of(st.text(max_size=15), st.integers(-5, 300)), inner, max_size=5),
        st.frozensets(st.integers(-3, 300), max_size=5)), max_leaves=20)


@st.composite
def hostile_requests(draw: st.DrawFn) -> dict[str, object]:
    si = draw(st.one_of(st.sampled_from(FIXED_SIS), st.text(max_size=30)))
    share = draw(st.one_of(st.integers(-2, 300).map(str), st.text(max_size=5)))
    tail = draw(st.sampled_from(["", "/shares", f"/{share}", f"/{share}/abort",
                                 f"/{share}/corrupt", "/read-test-write"]))
    kind = draw(st.sampled_from(["immutable", "mutable", "lease", "version", "x"]))
    method = draw(st.sampled_from(["GET", "PUT", "POST", "PATCH", "DELETE", "OPTIONS"]))
    secret_kinds = draw(st.lists(st.sampled_from(
        ["upload-secret", "lease-renew-secret", "lease-cancel-secret", "write-enabler",
         "bogus"]), max_size=4))
    secrets = [secret_header(k, draw(st.binary(max_size=40))) for k in secret_kinds]
    if draw(st.booleans()):
        secrets.append(draw(st.text(st.characters(min_codepoint=32, max_codepoint=126),
                                    max_size=30)).encode("ascii"))
    body = draw(st.one_of(st.binary(max_size=200),
                          random_cbor().map(cbor2.dumps)))
    headers: dict[str, str | bytes] = {}
    if draw(st.booleans()):
        start = draw(st.integers(0, 300))
        headers["Content-Range"] = draw(st.sampled_from([
            f"bytes {start}-{start + len(body) - 1}/*", f"bytes {start}-{start}/*",
            "bytes 0-999999999999/*", "garbage"]))
    if draw(st.booleans()):
        headers["Range"] = draw(st.sampled_from(["bytes=0-10", "bytes=5-", "bytes=9-1",
                                                 "bytes=0-1,3-4", "junk"]))
    if draw(st.booleans()):
        headers["Content-Type"] = draw(st.sampled_from(
            ["application/cbor", "application/json", "text/plain"]))
    path = urllib.parse.quote(f"{V1}/{kind}/{si}{tail}", safe="/%")
    return {"method": method, "path": path,
            "body": body, "headers": headers, "secrets": secrets}


def send_raw(client: GbsClient, req: dict[str, object]) -> int:
    headers = dict(req["headers"])  # type: ignore[call-overload]
    extra = [("X-Tahoe-Authorization", s) for s in req["secrets"]]  # type: ignore[attr-defined]
    return client.request_raw(str(req["method"]), str(req["path"]),
                              req["body"], headers, extra)  # type: ignore[arg-type]


def fuzz(client: GbsClient, examples: int) -> None:
    @settings(max_examples=examples, deadline=None, derandomize=False,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(hostile_requests())
    def one(req: dict[str, object]) -> None:
        status = send_raw(client, req)
        assert 200 <= status < 500, (status, req)

    one()
    assert client.request("GET", f"{V1}/version").status == 200


def test_fuzz_quick(mistgrid_storage: GbsClient) -> None:
    """Hostile requests of every shape: only 2xx-4xx, and the server keeps serving."""
    fuzz(mistgrid_storage, 400)


@pytest.mark.slow
def test_fuzz_ten_thousand(mistgrid_storage: GbsClient) -> None:
    """The same with 10,000 requests."""
    fuzz(mistgrid_storage, 10_000)


def test_kill_9_mid_upload(tmp_path: Path) -> None:
    """After kill -9 during an upload and a restart, no partial share is listed or
    served, and the upload can be retried to completion."""
    directory = tmp_path / "server"
    process, nurl = start_mistgrid_server(directory)
    client = GbsClient(nurl)
    si, data = new_si(), os.urandom(200_000)
    secrets = upload_secrets()
    try:
        wait_until_serving(client, process)
        allocate(client, si, {0, 1}, len(data), secrets)
        assert patch(client, si, 0, 0, data[:150_000], secrets["upload-secret"]) == 200
        assert patch(client, si, 1, 0, data, secrets["upload-secret"]) == 201
        os.kill(process.pid, signal.SIGKILL)
        process.popen.wait(10)
    finally:
        client.close()
        process.stop()
    process, nurl = start_mistgrid_server(directory)
    client = GbsClient(nurl)
    try:
        wait_until_serving(client, process)
        assert client.request("GET", f"{V1}/immutable/{si}/shares").cbor() == {1}
        assert client.request("GET", f"{V1}/immutable/{si}/0").status == 404
        assert client.request("GET", f"{V1}/immutable/{si}/1").body == data
        retry = upload_secrets(b"r")
        assert allocate(client, si, {0, 1}, len(data), retry) == ({1}, {0})
        assert patch(client, si, 0, 0, data, retry["upload-secret"]) == 201
        assert client.request("GET", f"{V1}/immutable/{si}/0").body == data
    finally:
        client.close()
        process.stop()


def test_whole_share_larger_than_one_read_is_streamed(mistgrid_storage: GbsClient) -> None:
    """A GET without Range of a share larger than the 16 MiB one-read limit streams the
    whole share (it used to answer 416); ranged reads keep their limit."""
    client = mistgrid_storage
    si, data = new_si(), os.urandom(20 * 1024 * 1024 + 3)
    secrets = upload_secrets()
    allocate(client, si, {0}, len(data), secrets)
    step = 8 * 1024 * 1024
    for offset in range(0, len(data), step):
        status = patch(client, si, 0, offset, data[offset:offset + step],
                       secrets["upload-secret"])
        assert status == (201 if offset + step >= len(data) else 200)
    whole = client.request("GET", f"{V1}/immutable/{si}/0")
    assert whole.status == 200 and whole.body == data
    too_big = client.request("GET", f"{V1}/immutable/{si}/0",
                             headers={"Range": f"bytes=0-{17 * 1024 * 1024}"})
    assert too_big.status == 416


def test_a_large_read_is_the_share_as_it_was_when_asked(mistgrid_storage: GbsClient) -> None:
    """A ranged read of 16 MiB of a mutable share is written to the connection in pieces,
    as the client takes them; a write to the share that lands while the answer is still
    going out changes none of it (the read happens at once, not piece by piece)."""
    client, si = mistgrid_storage, new_si()
    size = 16 * 1024 * 1024  # more than loopback's socket buffers hold: still being sent
    old, new = os.urandom(size), os.urandom(size)
    assert rtw(client, si, {0: write(0, old)}).status == 200
    reading = client._connect()  # a connection of its own, read slowly
    reading.putrequest("GET", f"{V1}/mutable/{si}/0", skip_accept_encoding=True)
    reading.putheader("Authorization", swissnum_header(client.nurl.swissnum))
    reading.putheader("Range", f"bytes=0-{size - 1}")
    reading.endheaders()
    answer = reading.getresponse()
    try:
        assert answer.status == 206
        first = answer.read(64 * 1024)
        assert rtw(client, si, {0: write(0, new)}).status == 200
        assert first + answer.read() == old
    finally:
        reading.close()
    assert client.request("GET", f"{V1}/mutable/{si}/0").body == new


def test_bodies_either_side_of_the_in_memory_limit(mistgrid_storage: GbsClient) -> None:
    """Request bodies up to 2 MiB are held in memory, larger ones spooled to a file: writes
    of both kinds (and the boundary itself) land byte for byte."""
    client = mistgrid_storage
    limit = 2 * 1024 * 1024
    sizes = [1, 100_001, limit, limit + 1, 5]
    data = os.urandom(sum(sizes))
    si, secrets = new_si(), upload_secrets()
    allocate(client, si, {0}, len(data), secrets)
    offset = 0
    for size in sizes:
        status = patch(client, si, 0, offset, data[offset:offset + size],
                       secrets["upload-secret"])
        offset += size
        assert status == (201 if offset == len(data) else 200)
    whole = client.request("GET", f"{V1}/immutable/{si}/0")
    assert whole.status == 200 and whole.body == data
