"""Share containers, byte for byte, against the files a real Tahoe-LAFS 1.20 server
writes: the same share data with the same secrets is stored on both, and the two files
must be equal except where a field is the server's own (lease expiration times, Tahoe's
node id). mistgrid's reader also reads Tahoe's files."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest

from mistgrid.storage import containers
from mistgrid.storage.mutable_share import MutableShare

from .gbs_client import GbsClient
from .test_contract import allocate, new_si, patch
from .test_contract_mutable import rtw, write

Server = tuple[GbsClient, Path]


def share_file(shares: Path, si: str, number: int) -> bytes:
    return (shares / si[:2] / si / str(number)).read_bytes()


def blank(raw: bytes, *spans: tuple[int, int]) -> bytes:
    out = bytearray(raw)
    for start, end in spans:
        out[start:end] = b"\x00" * (end - start)
    return bytes(out)


@pytest.mark.parametrize("writes", [1, 3])  # a share in one write is stored in one go
def test_immutable_files_are_tahoes(mistgrid_server: Server, tahoe_server: Server,
                                    writes: int) -> None:
    si, data = new_si(), os.urandom(5000)
    secrets = {"lease-renew-secret": os.urandom(32), "lease-cancel-secret": os.urandom(32),
               "upload-secret": os.urandom(32)}
    files = []
    cuts = [len(data) * i // writes for i in range(writes + 1)]
    for client, shares in (mistgrid_server, tahoe_server):
        assert allocate(client, si, {2}, len(data), secrets) == (set(), {2})
        for start, end in reversed(list(itertools.pairwise(cuts))):
            status = patch(client, si, 2, start, data[start:end], secrets["upload-secret"])
            assert status == (201 if start == 0 else 200)
        files.append(share_file(shares, si, 2))
    ours, tahoes = files
    expiration = (len(ours) - 4, len(ours))
    assert len(ours) == len(tahoes)
    assert blank(ours, expiration) == blank(tahoes, expiration)
    info = containers.parse_header(tahoes[:12], len(tahoes))
    assert (info.version, info.lease_count, info.data_length) == (2, 1, len(data))


def test_mutable_files_are_tahoes(mistgrid_server: Server, tahoe_server: Server) -> None:
    si, first, second = new_si(), os.urandom(3000), os.urandom(500)
    secrets = {"write-enabler": os.urandom(32), "lease-renew-secret": os.urandom(32),
               "lease-cancel-secret": os.urandom(32)}
    files = []
    for client, shares in (mistgrid_server, tahoe_server):
        assert rtw(client, si, {1: write(0, first)}, secrets=secrets).cbor()["success"]
        assert rtw(client, si, {1: write(2800, second)}, secrets=secrets).cbor()["success"]
        files.append(share_file(shares, si, 1))
        share = MutableShare(shares / si[:2] / si / "1")  # mistgrid reads either
        assert share.write_enabler() == secrets["write-enabler"]
        assert share.read(0, 10_000) == first[:2800] + second
        assert len(share.leases()) == 1
    ours, tahoes = files
    # Tahoe writes its node id beside the write enabler and in each lease; the lease's
    # expiration is the server's clock.
    own = [(32, 52), (104, 108), (172, 192)]
    assert len(ours) == len(tahoes)
    assert blank(ours, *own) == blank(tahoes, *own)


def test_mutable_leases_past_four_slots_are_tahoes(mistgrid_server: Server,
                                                  tahoe_server: Server) -> None:
    """Six lease holders (four slots, then extra leases after the data), then the data
    grows past where the extra leases were: the same file as Tahoe's."""
    si, enabler = new_si(), os.urandom(32)
    holders = [(os.urandom(32), os.urandom(32)) for _ in range(6)]
    files = []
    for client, shares in (mistgrid_server, tahoe_server):
        for index, (renew, cancel) in enumerate(holders):
            secrets = {"write-enabler": enabler, "lease-renew-secret": renew,
                       "lease-cancel-secret": cancel}
            data = bytes([index]) * 100
            assert rtw(client, si, {0: write(index * 100, data)},
                       secrets=secrets).cbor()["success"]
        files.append(share_file(shares, si, 0))
        share = MutableShare(shares / si[:2] / si / "0")
        assert len(share.leases()) == 6
        assert share.read(0, 600) == b"".join(bytes([i]) * 100 for i in range(6))
    ours, tahoes = files
    assert len(ours) == len(tahoes)
    leases_at = [100 + 92 * i for i in range(4)] + [468 + 600 + 4 + 92 * i for i in range(2)]
    own = [(32, 52)] + [(at + 4, at + 8) for at in leases_at] + \
        [(at + 72, at + 92) for at in leases_at]
    assert blank(ours, *own) == blank(tahoes, *own)
