"""Check, verify, repair and leases through a client node's web API (Tahoe's t=check,
t=stream-deep-check, t=start-deep-check), on the local grid of node processes of
test_web_grid (4 storage nodes, 2-of-4): shares removed and corrupted on the servers'
disks are found, named and put back; the file reads back byte for byte."""

from __future__ import annotations

import json
import os
import time
import urllib.parse
from pathlib import Path

from mistgrid.caps import base32, parse_cap
from mistgrid.caps.mutable import MutableWriteCap, parse_mutable_cap
from mistgrid.shares.immutable import HEADER_READ_SIZE, ShareLayout
from mistgrid.storage.containers import DATA_OFFSET, LEASE, MUTABLE_DATA_OFFSET, Lease

from ..conftest import run_cli
from .test_web_grid import http, web_grid  # noqa: F401


def share_files(base: Path, storage_index: bytes) -> dict[tuple[int, int], Path]:
    """{(storage node number, share number): its file} of one storage index."""
    found = {}
    si = base32.b2a(storage_index)
    for i in range(4):
        for path in (base / f"storage{i}").glob(f"**/shares/*/{si}/*"):
            if path.name.isdigit():
                found[(i, int(path.name))] = path
    return found


def check(url: str, **flags: str) -> dict:  # type: ignore[type-arg]
    query = urllib.parse.urlencode({"t": "check", "output": "JSON", **flags})
    status, body = http("POST", f"{url}?{query}")
    assert status == 200, body
    result: dict = json.loads(body)  # type: ignore[type-arg]
    return result


def flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x55
    path.write_bytes(bytes(data))


def server_ids(base: Path) -> list[str]:
    return [json.loads((base / f"storage{i}" / "private" / "announcement.json").read_text())
            ["server-id"] for i in range(4)]


def uploaded(url: str, size: int) -> tuple[bytes, str, bytes]:
    """A new immutable file of `size` random bytes: (its bytes, its URL, storage index)."""
    data = os.urandom(size)
    status, cap = http("PUT", url + "uri", data)
    assert status == 200
    return data, url + "uri/" + cap.decode(), \
        parse_cap(cap.decode()).storage_index  # type: ignore[union-attr]


def test_immutable_check_verify_repair(web_grid: tuple[str, Path]) -> None:  # noqa: F811
    url, base = web_grid
    data, file_url, si = uploaded(url, 300_000)
    healthy = check(file_url)
    assert healthy["summary"] == "Healthy" and healthy["storage-index"] == base32.b2a(si)
    results = healthy["results"]
    assert results["healthy"] and results["recoverable"]
    assert (results["count-shares-good"], results["count-shares-needed"],
            results["count-shares-expected"]) == (4, 2, 4)
    assert results["count-good-share-hosts"] == 4 and results["count-happiness"] == 4
    assert sorted(results["servers-responding"]) == sorted(server_ids(base))
    assert sorted(results["sharemap"]) == ["0", "1", "2", "3"]
    # one share gone, another corrupt (a byte in its blocks)
    files = share_files(base, si)
    assert len(files) == 4
    (gone_server, gone), (bad_server, bad) = sorted(files)[:2]
    files[(gone_server, gone)].unlink()
    flip(files[(bad_server, bad)], DATA_OFFSET + 0x24 + 100)
    plain = check(file_url)  # a check reads no block: the corrupt share still counts
    assert plain["summary"] == "Not Healthy: 3 shares (enc 2-of-4)"
    assert plain["results"]["count-shares-good"] == 3 and not plain["results"]["healthy"]
    verified = check(file_url, verify="true")
    assert verified["results"]["count-shares-good"] == 2
    assert verified["results"]["list-corrupt-shares"] == [
        [server_ids(base)[bad_server], base32.b2a(si), bad]]
    repaired = check(file_url, verify="true", repair="true")
    assert repaired["repair-attempted"] and repaired["repair-successful"], repaired
    assert repaired["pre-repair-results"]["results"]["count-shares-good"] == 2
    post = repaired["post-repair-results"]["results"]
    assert post["healthy"] and post["count-shares-good"] == 4
    # the corrupt copy stays (a client cannot remove an immutable share) and is named
    assert post["list-corrupt-shares"] == [[server_ids(base)[bad_server], base32.b2a(si), bad]]
    assert check(file_url, verify="true")["results"]["healthy"]
    assert http("GET", file_url) == (200, data)
    # a healthy file is not repaired; the text page says so in words
    again = check(file_url, repair="true")
    assert not again["repair-attempted"]
    status, page = http("POST", file_url + "?t=check")
    assert status == 200 and b"Summary: Healthy" in page


def test_a_repair_whose_download_fails_says_so_and_the_node_serves_on(
        web_grid: tuple[str, Path]) -> None:  # noqa: F811
    """When the repair's download fails (here every remaining share's blocks are
    corrupt), the repair is reported as failed, and the node keeps serving."""
    url, base = web_grid
    status, cap = http("PUT", url + "uri", os.urandom(300_000))
    assert status == 200
    file_url = url + "uri/" + cap.decode()
    files = share_files(base, parse_cap(cap.decode()).storage_index)  # type: ignore[union-attr]
    first, *rest = sorted(files)
    files[first].unlink()
    for place in rest:
        flip(files[place], DATA_OFFSET + 0x24 + 100)
    repaired = check(file_url, repair="true")
    assert repaired["repair-attempted"] and not repaired["repair-successful"], repaired
    assert not repaired["post-repair-results"]["results"]["healthy"]
    status, again = http("PUT", url + "uri", b"still serving" * 10_000)
    assert status == 200 and http("GET", url + "uri/" + again.decode())[0] == 200


def test_a_repair_trusts_no_held_shares_root_it_cannot_confirm(
        web_grid: tuple[str, Path]) -> None:  # noqa: F811
    """A repair encodes only the shares it puts back, taking the held shares' block hash
    roots from their servers; one held share's root changed on disk (a plain check does
    not see it) gives another cap, so the repair encodes every share instead and still
    puts the missing one back right. The changed share is then named by a verify."""
    url, base = web_grid
    data, file_url, si = uploaded(url, 300_000)
    files = share_files(base, si)
    (gone_server, gone), (bad_server, bad) = sorted(files)[:2]
    files[(gone_server, gone)].unlink()
    share = files[(bad_server, bad)].read_bytes()
    layout = ShareLayout.parse(share[DATA_OFFSET:DATA_OFFSET + HEADER_READ_SIZE])
    flip(files[(bad_server, bad)], DATA_OFFSET + layout.block_hashes)
    repaired = check(file_url, repair="true")
    assert repaired["repair-attempted"] and repaired["repair-successful"], repaired
    assert repaired["post-repair-results"]["results"]["count-shares-good"] == 4
    verified = check(file_url, verify="true")["results"]
    assert verified["list-corrupt-shares"] == [[server_ids(base)[bad_server], base32.b2a(si),
                                                bad]]
    assert verified["count-shares-good"] == 3  # the one put back among them
    assert http("GET", file_url) == (200, data)


def test_a_verify_cap_repairs_what_it_cannot_read(web_grid: tuple[str, Path]) -> None:  # noqa: F811
    """As Tahoe's repairer: the verify cap alone (which cannot decrypt) re-encodes the
    ciphertext into the same shares and puts the missing and corrupt ones back."""
    url, base = web_grid
    data = os.urandom(2_500_000)  # three segments
    status, cap = http("PUT", url + "uri", data)
    assert status == 200
    chk = parse_cap(cap.decode())
    verify_url = url + "uri/" + chk.verifier().to_string()  # type: ignore[union-attr]
    files = share_files(base, chk.storage_index)  # type: ignore[union-attr]
    (gone_server, gone), (bad_server, bad) = sorted(files)[:2]
    files[(gone_server, gone)].unlink()
    flip(files[(bad_server, bad)], DATA_OFFSET + 0x24 + 1_000_000)
    repaired = check(verify_url, verify="true", repair="true")
    assert repaired["repair-attempted"] and repaired["repair-successful"], repaired
    assert repaired["pre-repair-results"]["results"]["count-shares-good"] == 2
    post = repaired["post-repair-results"]["results"]
    assert post["healthy"] and post["count-shares-good"] == 4, post
    assert http("GET", url + "uri/" + cap.decode()) == (200, data)


def test_mutable_check_verify_repair(web_grid: tuple[str, Path]) -> None:  # noqa: F811
    url, base = web_grid
    for fmt in ("SDMF", "MDMF"):
        data = os.urandom(70_000)
        status, cap = http("PUT", url + f"uri?format={fmt}", data)
        assert status == 200
        file_url = url + "uri/" + cap.decode()
        si = parse_mutable_cap(cap.decode()).storage_index
        before = check(file_url)
        assert before["summary"] == "Healthy", before
        assert sorted(before["results"]["sharemap"])[0].startswith("seq1-")
        files = share_files(base, si)
        (gone_server, gone), (bad_server, bad) = sorted(files)[:2]
        files[(gone_server, gone)].unlink()
        size = files[(bad_server, bad)].stat().st_size
        flip(files[(bad_server, bad)], MUTABLE_DATA_OFFSET + (size - MUTABLE_DATA_OFFSET) // 2)
        plain = check(file_url)
        assert not plain["results"]["healthy"]
        assert plain["results"]["count-shares-good"] == 3
        verified = check(file_url, verify="true")
        assert verified["results"]["count-shares-good"] == 2, verified
        assert [c[2] for c in verified["results"]["list-corrupt-shares"]] == [bad]
        repaired = check(file_url, verify="true", repair="true")
        assert repaired["repair-attempted"] and repaired["repair-successful"], repaired
        post = repaired["post-repair-results"]["results"]
        assert post["healthy"] and post["count-shares-good"] == 4
        assert post["list-corrupt-shares"] == []  # rewritten in place
        assert all(k.startswith("seq2-") for k in post["sharemap"])
        assert http("GET", file_url) == (200, data)
        # a read cap can check but not repair
        writable = parse_mutable_cap(cap.decode())
        assert isinstance(writable, MutableWriteCap)
        read_only = writable.read_only().to_string()
        next(iter(share_files(base, si).values())).unlink()
        ro = check(url + "uri/" + read_only, repair="true")
        assert not ro["repair-attempted"]


def test_deep_check_repairs_a_tree_and_adds_leases(web_grid: tuple[str, Path]) -> None:  # noqa: F811
    url, base = web_grid
    status, root = http("POST", url + "uri?t=mkdir")
    root_url = url + "uri/" + root.decode()
    caps = {}
    for name, size in [("small", 20), ("a", 5000), ("sub/b", 90_000), ("sub/c", 1000)]:
        data = os.urandom(size)
        status, cap = http("PUT", root_url + "/" + name, data)
        assert status == 201
        caps[name] = (cap.decode(), data)
    status, body = http("POST", root_url + "?t=stream-deep-check&output=JSON")
    lines = [json.loads(line) for line in body.decode().splitlines()]
    assert [u["type"] for u in lines] == ["directory", "file", "file", "directory", "file",
                                          "file", "stats"]
    assert all(u["check-results"]["results"]["healthy"] for u in lines[:-1])
    # break one file and the subdirectory, then deep-check with repair
    for name in ("a", "sub/b"):
        si = parse_cap(caps[name][0]).storage_index  # type: ignore[union-attr]
        next(iter(share_files(base, si).values())).unlink()
    sub_si = parse_mutable_cap(json.loads(http("GET", root_url + "/sub?t=json")[1])[1][
        "rw_uri"].removeprefix("URI:DIR2:").join(["URI:SSK:", ""])).storage_index
    next(iter(share_files(base, sub_si).values())).unlink()
    status, body = http("POST", root_url + "?t=stream-deep-check&repair=true&add-lease=true")
    units = [json.loads(line) for line in body.decode().splitlines()]
    repairs = {"/".join(u["path"]): u["check-and-repair-results"] for u in units[:-1]}
    assert {p for p, r in repairs.items() if r.get("repair-attempted")} == {"a", "sub",
                                                                             "sub/b"}
    assert all(r["repair-successful"] for r in repairs.values() if r.get("repair-attempted"))
    for text, data in caps.values():
        assert http("GET", url + "uri/" + text) == (200, data)
    # the operation-handle form gives Tahoe's totals
    status, _ = http("POST", root_url + "?t=start-deep-check&ophandle=dc1&output=JSON")
    assert status in (200, 302)
    for _ in range(100):
        status, body = http("GET", url + "operations/dc1?output=JSON")
        totals = json.loads(body)
        if totals["finished"]:
            break
        time.sleep(0.1)
    assert totals["count-objects-checked"] == 6 and totals["count-objects-healthy"] == 6
    assert totals["count-objects-unhealthy"] == 0 and "stats" in totals


def leases(path: Path) -> list[Lease]:
    data = path.read_bytes()
    count = int.from_bytes(data[8:12], "big")
    start = len(data) - LEASE.size * count
    return [Lease.unpack(data[start + LEASE.size * i:start + LEASE.size * (i + 1)])
            for i in range(count)]


def age_leases(path: Path, expiration: int) -> None:
    """Set every lease of an immutable share to expire at `expiration`."""
    data = bytearray(path.read_bytes())
    count = int.from_bytes(data[8:12], "big")
    start = len(data) - LEASE.size * count
    for i in range(count):
        at = start + LEASE.size * i
        lease = Lease.unpack(bytes(data[at:at + LEASE.size]))
        data[at:at + LEASE.size] = Lease(lease.owner, lease.renew_secret,
                                         lease.cancel_secret, expiration).pack()
    path.write_bytes(bytes(data))


def test_add_lease_renews_the_uploaders_own_lease(web_grid: tuple[str, Path]) -> None:  # noqa: F811
    """The client's upload lease secrets are derived (as Tahoe's), so `add-lease` renews
    the lease it made instead of adding a second one it could not renew either."""
    url, base = web_grid
    status, cap = http("PUT", url + "uri", os.urandom(10_000))
    assert status == 200
    si = parse_cap(cap.decode()).storage_index  # type: ignore[union-attr]
    files = share_files(base, si)
    soon = int(time.time()) + 100
    for path in files.values():
        assert len(leases(path)) == 1
        age_leases(path, soon)
    check(url + "uri/" + cap.decode(), **{"add-lease": "true"})
    for path in files.values():
        (lease,) = leases(path)
        assert lease.expiration > time.time() + 30 * 24 * 3600


def test_cli_check_and_deep_check_words(web_grid: tuple[str, Path]) -> None:  # noqa: F811
    """`mistgrid check` and `deep-check` print Tahoe's lines, with the totals."""
    url, base = web_grid
    client = base / "client"
    status, root = http("POST", url + "uri?t=mkdir")
    root_url = url + "uri/" + root.decode()
    status, cap = http("PUT", root_url + "/a", os.urandom(5000))
    assert status == 201
    assert http("PUT", root_url + "/b", os.urandom(6000))[0] == 201
    si = parse_cap(cap.decode()).storage_index  # type: ignore[union-attr]
    next(iter(share_files(base, si).values())).unlink()

    def cli(*args: str) -> str:
        result = run_cli(args[0], "-d", str(client), *args[1:])
        assert result.returncode == 0, result.stderr.decode()
        return result.stdout.decode()

    out = cli("check", cap.decode())
    assert "Summary: Not Healthy: 3 shares (enc 2-of-4)" in out
    assert " good-shares: 3 (encoding is 2-of-4)" in out
    out = cli("deep-check", "-v", root.decode())
    assert "a: Not Healthy: 3 shares (enc 2-of-4)" in out
    assert out.splitlines()[-1] == "done: 3 objects checked, 2 healthy, 1 unhealthy"
    out = cli("deep-check", "--repair", root.decode())
    assert out.splitlines()[-4:] == [
        "done: 3 objects checked", " pre-repair: 2 healthy, 1 unhealthy",
        " 1 repairs attempted, 1 successful, 0 failed",
        " post-repair: 3 healthy, 0 unhealthy"], out
    raw = [json.loads(line) for line in cli("deep-check", "--raw", root.decode()).splitlines()]
    assert raw[-1]["type"] == "stats" and len(raw) == 4
