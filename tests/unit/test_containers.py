"""Share containers match what Tahoe-LAFS 1.20 writes on disk (facts checked against
files a real Tahoe 1.20 node wrote: version-2 headers, BLAKE2b-hashed lease secrets)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from mistgrid.gbs.messages import ReadTestWrite, ShareWrites, WriteVector
from mistgrid.storage import containers
from mistgrid.storage.backend import DiskBackend


def test_mutable_v2_magic() -> None:
    """The version-2 magic is the text plus 5 bytes of a tagged hash (seen on disk:
    c3 55 21 99 25)."""
    assert containers.MUTABLE_MAGIC_V2 == b"Tahoe mutable container v2\n\xc3U!\x99%"
    assert len(containers.MUTABLE_MAGIC_V1) == len(containers.MUTABLE_MAGIC_V2) == 32


def test_immutable_share_file_layout(tmp_path: Path) -> None:
    """A finished immutable share: version 2 header, data, one lease with hashed secrets."""
    backend = DiskBackend(tmp_path, clock=lambda: 1_000_000)
    si, data = os.urandom(16), os.urandom(500)
    renew, cancel = os.urandom(32), os.urandom(32)
    backend.allocate(si, frozenset({1}), len(data), b"u" * 32, renew, cancel)
    assert backend.write(si, 1, b"u" * 32, 0, data).complete
    raw = next((tmp_path / "shares").rglob("1")).read_bytes()
    assert raw[:12] == (2).to_bytes(4, "big") + (500).to_bytes(4, "big") + (1).to_bytes(4, "big")
    assert raw[12:512] == data
    lease = containers.Lease.unpack(raw[512:])
    assert lease.renew_secret == hashlib.blake2b(renew, digest_size=32).digest()
    assert lease.cancel_secret == hashlib.blake2b(cancel, digest_size=32).digest()
    assert lease.expiration == 1_000_000 + 31 * 24 * 3600
    assert renew not in raw and cancel not in raw


def test_mutable_share_file_layout(tmp_path: Path) -> None:
    """A mutable share: v2 magic, write enabler, data at 468, extra-lease count after."""
    backend = DiskBackend(tmp_path)
    si, renew = os.urandom(16), os.urandom(32)
    request = ReadTestWrite({0: ShareWrites((), (WriteVector(0, b"data"),), None)}, ())
    assert backend.read_test_write(si, b"w" * 32, renew, b"c" * 32, request)[0]
    raw = next((tmp_path / "shares").rglob("0")).read_bytes()
    assert raw[:32] == containers.MUTABLE_MAGIC_V2
    assert raw[52:84] == b"w" * 32
    assert int.from_bytes(raw[84:92], "big") == 4
    assert int.from_bytes(raw[92:100], "big") == 472
    assert raw[468:472] == b"data" and raw[472:476] == b"\0\0\0\0" and len(raw) == 476
    assert raw[108:140] == hashlib.blake2b(renew, digest_size=32).digest()
