"""The mutable half of the GBS contract (slots: read-test-write, reads, listing), run
against mistgrid's server and Tahoe-LAFS 1.20 alike."""

from __future__ import annotations

import os
from typing import Any

from .gbs_client import GbsClient, Response
from .test_contract import V1, new_si


def slot_secrets(enabler: bytes | None = None) -> dict[str, bytes]:
    return {"write-enabler": enabler or b"w" * 32, "lease-renew-secret": b"r" * 32,
            "lease-cancel-secret": b"c" * 32}


def rtw(storage: GbsClient, si: str, vectors: dict[int, dict[str, Any]],
        reads: list[dict[str, int]] | None = None,
        secrets: dict[str, bytes] | None = None) -> Response:
    return storage.request("POST", f"{V1}/mutable/{si}/read-test-write",
                           secrets=secrets or slot_secrets(),
                           cbor={"test-write-vectors": vectors, "read-vector": reads or []})


def write(offset: int, data: bytes, tests: list[dict[str, Any]] | None = None,
          new_length: int | None = None) -> dict[str, Any]:
    return {"test": tests or [], "write": [{"offset": offset, "data": data}],
            "new-length": new_length}


def test_create_read_and_list(storage: GbsClient) -> None:
    """The first write creates the slot; shares are listed and readable by range."""
    si = new_si()
    resp = rtw(storage, si, {0: write(0, b"hello world"), 3: write(0, b"other")})
    assert resp.status == 200
    assert resp.cbor() == {"success": True, "data": {}}
    assert storage.request("GET", f"{V1}/mutable/{si}/shares").cbor() == {0, 3}
    whole = storage.request("GET", f"{V1}/mutable/{si}/0")
    assert whole.status == 200 and whole.body == b"hello world"
    part = storage.request("GET", f"{V1}/mutable/{si}/0", headers={"Range": "bytes=6-10"})
    assert part.status == 206 and part.body == b"world"


def test_test_vectors_gate_writes(storage: GbsClient) -> None:
    """A failing test applies no write (to any share); reads come from before writes."""
    si = new_si()
    rtw(storage, si, {0: write(0, b"version-1"), 1: write(0, b"other-1")})
    stale = [{"offset": 0, "size": 9, "specimen": b"version-0"}]
    resp = rtw(storage, si, {0: write(0, b"version-2", stale), 1: write(0, b"other-2")},
               reads=[{"offset": 0, "size": 9}])
    assert resp.cbor() == {"success": False,
                           "data": {0: [b"version-1"], 1: [b"other-1"]}}
    fresh = [{"offset": 0, "size": 9, "specimen": b"version-1"}]
    resp = rtw(storage, si, {0: write(0, b"version-2", fresh)},
               reads=[{"offset": 8, "size": 100}])
    assert resp.cbor() == {"success": True, "data": {0: [b"1"], 1: [b""]}}
    assert storage.request("GET", f"{V1}/mutable/{si}/0").body == b"version-2"
    assert storage.request("GET", f"{V1}/mutable/{si}/1").body == b"other-1"


def test_new_length_truncates(storage: GbsClient) -> None:
    si = new_si()
    rtw(storage, si, {0: write(0, b"0123456789")})
    rtw(storage, si, {0: {"test": [], "write": [], "new-length": 4}})
    assert storage.request("GET", f"{V1}/mutable/{si}/0").body == b"0123"


def test_wrong_write_enabler_is_401(storage: GbsClient) -> None:
    si = new_si()
    rtw(storage, si, {0: write(0, b"data")})
    resp = rtw(storage, si, {0: write(0, b"evil")}, secrets=slot_secrets(b"x" * 32))
    assert resp.status == 401
    assert storage.request("GET", f"{V1}/mutable/{si}/0").body == b"data"


def test_mutable_missing_secret_is_400(storage: GbsClient) -> None:
    secrets = slot_secrets()
    del secrets["write-enabler"]
    assert rtw(storage, new_si(), {0: write(0, b"x")}, secrets=secrets).status == 400


def test_mutable_corruption_and_unknown(storage: GbsClient) -> None:
    si = new_si()
    rtw(storage, si, {2: write(0, os.urandom(64))})
    ok = storage.request("POST", f"{V1}/mutable/{si}/2/corrupt", cbor={"reason": "bad sig"})
    assert ok.status == 200
    assert storage.request("GET", f"{V1}/mutable/{new_si()}/shares").cbor() == set()
    assert storage.request("GET", f"{V1}/mutable/{si}/7").status == 404
