"""The storage promise as one invariant, tested across every request kind at once.

Honest clients first complete immutable shares and mutable shares (with their own write
enabler) on a small space of storage indexes. Then a hostile grid member (it holds the
swissnum, but none of the honest secrets) sends thousands of requests built mostly from
well-formed messages: allocate, write, complete, abort, read-test-write (with empty writes,
new-length 0, far offsets), reads, lists, leases, corruption advisories, with its own
secrets, wrong ones and random ones, on the same storage indexes and share numbers as the
honest shares and on indexes of its own. After every request:
- no answer is a 5xx, and the server is alive;
- every honest share's data is exactly what its owner wrote (read from the store after
  every request, and through the server after every sequence).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mistgrid.caps import base32
from mistgrid.gbs.headers import secret_header
from mistgrid.storage import containers
from mistgrid.storage.mutable_share import MutableShare

from .conftest import start_mistgrid_server, wait_until_serving
from .gbs_client import GbsClient
from .test_contract import V1, upload
from .test_contract_mutable import rtw, slot_secrets, write

HONEST_IMMUTABLE = [base32.b2a(bytes([10 + i]) * 16) for i in range(2)]
HONEST_MUTABLE = [base32.b2a(bytes([20 + i]) * 16) for i in range(2)]
ATTACKER_OWN = [base32.b2a(bytes([30 + i]) * 16) for i in range(2)]
ALL_SIS = HONEST_IMMUTABLE + HONEST_MUTABLE + ATTACKER_OWN
HONEST_ENABLER = os.urandom(32)
ATTACKER_SECRETS = [b"A" * 32, b"B" * 32]
NUMBERS = [0, 1, 2, 3]


class Honest:
    """A server and what its honest clients stored: (kind, si, number) -> data."""

    def __init__(self, directory: Path) -> None:
        self.process, nurl = start_mistgrid_server(directory)
        self.client = GbsClient(nurl)
        self.shares = directory / "storage" / "shares"
        self.data: dict[tuple[str, str, int], bytes] = {}
        wait_until_serving(self.client, self.process)
        for si in HONEST_IMMUTABLE:
            for number in NUMBERS[:3]:
                data = os.urandom(700 + number)
                upload(self.client, si, number, data)
                self.data[("immutable", si, number)] = data
        for si in HONEST_MUTABLE:
            vectors = {}
            for number in NUMBERS[:3]:
                data = os.urandom(900 + number)
                vectors[number] = write(0, data)
                self.data[("mutable", si, number)] = data
            resp = rtw(self.client, si, vectors, secrets=slot_secrets(HONEST_ENABLER))
            assert resp.status == 200 and resp.cbor()["success"]

    def on_disk(self, kind: str, si: str, number: int) -> bytes | None:
        path = self.shares / si[:2] / si / str(number)
        try:
            if kind == "mutable":
                share = MutableShare(path)
                return share.read(0, share.data_length())
            raw = path.read_bytes()
            info = containers.parse_header(raw[: containers.HEADER.size], len(raw))
            return raw[containers.DATA_OFFSET : containers.DATA_OFFSET + info.data_length]
        except (OSError, containers.ContainerError):
            return None

    def check_store(self) -> None:
        for (kind, si, number), data in self.data.items():
            assert self.on_disk(kind, si, number) == data, (kind, si, number)

    def check_through_server(self) -> None:
        for (kind, si, number), data in self.data.items():
            resp = self.client.request("GET", f"{V1}/{kind}/{si}/{number}")
            assert resp.status == 200 and resp.body == data, (kind, si, number)


@pytest.fixture(scope="module")
def honest(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Honest]:
    state = Honest(tmp_path_factory.mktemp("hostile"))
    try:
        yield state
    finally:
        state.client.close()
        state.process.stop()


def secret() -> st.SearchStrategy[bytes]:
    """The attacker's own secrets most of the time, else random ones."""
    return st.one_of(st.sampled_from(ATTACKER_SECRETS), st.binary(min_size=32, max_size=32))


def offsets() -> st.SearchStrategy[int]:
    return st.one_of(st.integers(0, 2000), st.sampled_from([2**20, 2**32, 2**40, 2**62]))


@st.composite
def requests(draw: st.DrawFn) -> dict[str, Any]:
    """One request of any kind, well-formed most of the time."""
    si = draw(st.sampled_from(ALL_SIS))
    number = draw(st.sampled_from(NUMBERS))
    kind = draw(st.sampled_from(["allocate", "write", "abort", "rtw", "read", "list",
                                 "lease", "corrupt"]))
    lease = {"lease-renew-secret": draw(secret()), "lease-cancel-secret": draw(secret())}
    if kind == "allocate":
        numbers = draw(st.sets(st.sampled_from(NUMBERS), min_size=1))
        size = draw(st.sampled_from([1, 10, 700, 701, 702, 2000]))
        return {"method": "POST", "path": f"{V1}/immutable/{si}",
                "secrets": {**lease, "upload-secret": draw(secret())},
                "cbor": {"share-numbers": numbers, "allocated-size": size}}
    if kind == "write":
        offset = draw(st.integers(0, 2000))
        data = draw(st.binary(min_size=1, max_size=800))
        return {"method": "PATCH", "path": f"{V1}/immutable/{si}/{number}", "body": data,
                "headers": {"Content-Range": f"bytes {offset}-{offset + len(data) - 1}/*"},
                "secrets": {"upload-secret": draw(secret())}}
    if kind == "abort":
        return {"method": "PUT", "path": f"{V1}/immutable/{si}/{number}/abort",
                "secrets": {"upload-secret": draw(secret())}}
    if kind == "rtw":
        vectors = {}
        for share in draw(st.sets(st.sampled_from(NUMBERS), max_size=3)):
            writes = draw(st.lists(st.fixed_dictionaries(
                {"offset": offsets(), "data": st.binary(max_size=100)}), max_size=2))
            tests = draw(st.lists(st.fixed_dictionaries(
                {"offset": st.integers(0, 1000), "size": st.integers(0, 50),
                 "specimen": st.binary(max_size=20)}), max_size=1))
            new_length = draw(st.one_of(st.none(), st.integers(0, 1000)))
            vectors[share] = {"test": tests, "write": writes, "new-length": new_length}
        reads = draw(st.lists(st.fixed_dictionaries(
            {"offset": st.integers(0, 1000), "size": st.sampled_from([0, 10, 2**62])}),
            max_size=3))
        return {"method": "POST", "path": f"{V1}/mutable/{si}/read-test-write",
                "secrets": {**lease, "write-enabler": draw(secret())},
                "cbor": {"test-write-vectors": vectors, "read-vector": reads}}
    share_kind = draw(st.sampled_from(["immutable", "mutable"]))
    if kind == "read":
        start = draw(st.integers(0, 1000))
        return {"method": "GET", "path": f"{V1}/{share_kind}/{si}/{number}",
                "headers": {"Range": f"bytes={start}-{start + draw(st.integers(0, 2000))}"}}
    if kind == "list":
        return {"method": "GET", "path": f"{V1}/{share_kind}/{si}/shares"}
    if kind == "lease":
        return {"method": "PUT", "path": f"{V1}/lease/{si}", "secrets": lease}
    return {"method": "POST", "path": f"{V1}/{share_kind}/{si}/{number}/corrupt",
            "cbor": {"reason": draw(st.text(min_size=1, max_size=30))}}


def send(client: GbsClient, req: dict[str, Any]) -> int:
    body = cbor2.dumps(req["cbor"]) if "cbor" in req else req.get("body", b"")
    headers: dict[str, str | bytes] = dict(req.get("headers", {}))
    if "cbor" in req:
        headers["Content-Type"] = "application/cbor"
    extra = [("X-Tahoe-Authorization", secret_header(k, v))
             for k, v in req.get("secrets", {}).items()]
    return client.request_raw(req["method"], req["path"], body, headers, extra)


def run_hostile(honest: Honest, sequences: int, length: int) -> int:
    """Send `sequences` sequences of `length` hostile requests; how many were sent."""
    honest.check_store()
    sent = 0

    @settings(max_examples=sequences, deadline=None, derandomize=False,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(st.lists(requests(), min_size=length, max_size=length))
    def sequence(reqs: list[dict[str, Any]]) -> None:
        nonlocal sent
        for req in reqs:
            status = send(honest.client, req)
            sent += 1
            assert status < 500, (status, req)
            honest.check_store()
        honest.check_through_server()

    sequence()
    return sent


def test_hostile_member_quick(honest: Honest) -> None:
    """600 hostile requests: no honest share changes, no 5xx."""
    assert run_hostile(honest, 20, 30) >= 600


@pytest.mark.slow
def test_hostile_member_ten_thousand(honest: Honest) -> None:
    """10,000 hostile requests (250 sequences of 40)."""
    assert run_hostile(honest, 250, 40) >= 10_000
