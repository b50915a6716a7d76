"""Bounded memory for mutable files: a 1 GiB MDMF file through a client node's web API
(upload, a 1 MiB Range read at 900 MiB, a 4 KiB write at 500 MiB) with the node's peak
RSS under 150 MB (read from /proc: VmHWM)."""

from __future__ import annotations

import hashlib
import os
import shutil
import urllib.parse
from http.client import HTTPConnection
from pathlib import Path

import pytest

from .test_web_grid import http, ranged, web_grid  # noqa: F401

MIB = 1024 * 1024
GIB = 1024 * MIB
LIMIT_MB = 150


def peak_rss_mb(node: Path) -> float:
    pid = int((node / "running.process").read_text().split()[0])
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def chunk_at(i: int, block: bytes) -> bytes:
    return block[i % 997:] + block[:i % 997]


@pytest.mark.slow
def test_one_gib_mdmf_in_bounded_memory(web_grid: tuple[str, Path],  # noqa: F811
                                        tmp_path: Path) -> None:
    url, base = web_grid
    if shutil.disk_usage(tmp_path).free < 8 * GIB:
        pytest.skip("needs 8 GiB free: the file, the node's spool of it and 2 GiB of shares")
    client = base / "client"
    block = os.urandom(MIB)
    parsed = urllib.parse.urlparse(url)
    conn = HTTPConnection(parsed.hostname or "", parsed.port, timeout=3600)
    conn.putrequest("PUT", "/uri?format=MDMF")
    conn.putheader("Content-Length", str(GIB))
    conn.endheaders()
    digest = hashlib.sha256()
    for i in range(1024):
        piece = chunk_at(i, block)
        conn.send(piece)
        digest.update(piece)
    response = conn.getresponse()
    cap = response.read().decode().strip()
    conn.close()
    assert response.status == 200 and cap.startswith("URI:MDMF:"), cap
    upload_mb = peak_rss_mb(client)
    target = url + "uri/" + cap
    start = 900 * MIB
    status, _headers, body = ranged(target, f"bytes={start}-{start + MIB - 1}")
    assert status == 206 and body == chunk_at(900, block)
    read_mb = peak_rss_mb(client)
    patch = os.urandom(4096)
    status, answer = http("PUT", target + f"?offset={500 * MIB + 10}", patch)
    assert status == 200, answer
    status, _headers, body = ranged(target, f"bytes={500 * MIB}-{501 * MIB - 1}")
    expected = bytearray(chunk_at(500, block))
    expected[10:10 + 4096] = patch
    assert status == 206 and body == bytes(expected)
    write_mb = peak_rss_mb(client)
    print(f"client node peak RSS: after upload {upload_mb:.1f} MB, after the read "
          f"{read_mb:.1f} MB, after the write {write_mb:.1f} MB")
    assert write_mb < LIMIT_MB
