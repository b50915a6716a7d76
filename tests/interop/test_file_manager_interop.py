"""A Tahoe-LAFS user's day across implementations, on a mixed grid (a Tahoe 1.20
introducer, two mistgrid storage servers and one Tahoe storage server; a mistgrid client
and a Tahoe client, both through the introducer):

- a tree made by `mistgrid cp -r` (100 files in 10 subdirectories, unicode names, a 0 B
  and a 10 MiB file) is listed by `tahoe ls -l`, copied out by `tahoe cp -r` byte for
  byte, and changed by Tahoe (add, rename, delete, replace a mutable file); mistgrid then
  sees exactly Tahoe's changes; and the same the other way round;
- the alias file written by one is read by the other;
- `mistgrid backup` archives are read by Tahoe, and Tahoe's by mistgrid.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs
import pytest

from mistgrid.testing.procs import Managed, stop_all, wait_for

from ..conftest import run_cli
from ..integration.test_introducer import connected, start_client, start_storage
from .tahoe import TahoeClientNode, start_introduced_client, start_storage_node
from .tahoe import start_introducer as start_tahoe_introducer

pytestmark = pytest.mark.slow


@attrs.frozen
class Mixed:
    mistgrid: Path  # the mistgrid client's node directory
    tahoe: TahoeClientNode

    def mg(self, *args: str) -> str:
        result = run_cli(args[0], "-d", str(self.mistgrid), *args[1:])
        assert result.returncode == 0, (args, result.stderr.decode())
        return result.stdout.decode()

    def th(self, *args: str) -> str:
        return self.tahoe.cli(*args).decode()


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mixed]:
    base = tmp_path_factory.mktemp("mixed")
    processes: list[Managed] = []
    try:
        introducer, furl = start_tahoe_introducer(base / "tahoe-introducer")
        processes.append(introducer)
        for i in range(2):
            start_storage(base, f"storage{i}", furl, processes)
        processes.append(start_storage_node(base / "tahoe-storage", introducer=furl,
                                            nickname="tahoe-storage").process)
        client = start_client(base, furl, processes)
        wait_for(lambda: connected(client, 3), 90, "the mistgrid client to hear of 3 "
                 "servers", interval=0.5, watch=processes)
        tahoe = start_introduced_client(base / "tahoe-client", furl, servers=3, needed=2,
                                        happy=3, total=3)
        processes.append(tahoe.process)
        yield Mixed(client, tahoe)
    finally:
        stop_all(processes)


def make_tree(root: Path) -> dict[str, bytes]:
    """100 files in 10 subdirectories with unicode names, one empty and one of 10 MiB;
    {relative path: contents}."""
    files: dict[str, bytes] = {}
    for d in range(10):
        for f in range(10):
            name = f"d{d}-\u00e9t\u00e9/f{f}-\u65e5\u672c-\u0444\u0430\u0439\u043b.txt"
            files[name] = os.urandom(100 + 37 * (d * 10 + f))
    files["d0-\u00e9t\u00e9/f0-\u65e5\u672c-\u0444\u0430\u0439\u043b.txt"] = b""
    files["d9-\u00e9t\u00e9/f9-\u65e5\u672c-\u0444\u0430\u0439\u043b.txt"] = \
        os.urandom(10 * 1024 * 1024)
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return files


def read_tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def check_exchange(tmp_path: Path, writer: Callable[..., str], reader: Callable[..., str],
                   alias: str, put_mutable: Callable[[Path, str], None]) -> None:
    """`writer` copies a tree up; `reader` lists it, copies it out and changes it; the
    writer then sees exactly those changes."""
    tree = tmp_path / "tree"
    files = make_tree(tree)
    writer("cp", "-r", str(tree), f"{alias}:")  # makes {alias}:tree
    notes = tmp_path / "notes"
    notes.write_bytes(b"a mutable file, version 1")
    put_mutable(notes, f"{alias}:tree/notes")
    files["notes"] = b"a mutable file, version 1"

    # the reader lists (sizes of immutable files shown) and copies out byte for byte
    listing = reader("ls", "-l", f"{alias}:tree/d9-\u00e9t\u00e9")
    assert "f9-\u65e5\u672c-\u0444\u0430\u0439\u043b.txt" in listing
    assert str(10 * 1024 * 1024) in listing
    assert sorted(reader("ls", f"{alias}:tree").split()) == sorted(
        [f"d{d}-\u00e9t\u00e9" for d in range(10)] + ["notes"])
    out = tmp_path / "out"
    reader("cp", "-r", f"{alias}:tree", str(out))
    assert read_tree(out / "tree" if (out / "tree").is_dir() else out) == files

    # the reader changes it: add, rename, delete, replace the mutable file in place
    added = tmp_path / "added"
    added.write_bytes(b"added by the reader")
    reader("cp", str(added), f"{alias}:tree/d1-\u00e9t\u00e9/added")
    files["d1-\u00e9t\u00e9/added"] = b"added by the reader"
    old = "d2-\u00e9t\u00e9/f3-\u65e5\u672c-\u0444\u0430\u0439\u043b.txt"
    reader("mv", f"{alias}:tree/{old}", f"{alias}:tree/d2-\u00e9t\u00e9/renamed")
    files["d2-\u00e9t\u00e9/renamed"] = files.pop(old)
    gone = "d3-\u00e9t\u00e9/f4-\u65e5\u672c-\u0444\u0430\u0439\u043b.txt"
    reader("unlink", f"{alias}:tree/{gone}")  # Tahoe 1.20 has no `rm`
    del files[gone]
    notes.write_bytes(b"a mutable file, version 2 (written by the reader)")
    reader("put", str(notes), f"{alias}:tree/notes")
    files["notes"] = b"a mutable file, version 2 (written by the reader)"

    # the writer sees exactly these changes; the mutable file kept its cap
    back = tmp_path / "back"
    writer("cp", "-r", f"{alias}:tree", str(back))
    assert read_tree(back / "tree" if (back / "tree").is_dir() else back) == files


def test_mistgrid_tree_read_and_changed_by_tahoe(mixed: Mixed, tmp_path: Path) -> None:
    mixed.mg("create-alias", "mg")
    # Tahoe reads mistgrid's alias file as it is
    shutil.copy(mixed.mistgrid / "private" / "aliases",
                mixed.tahoe.directory / "private" / "aliases")
    assert "mg:" in mixed.th("list-aliases")

    def put_mutable(path: Path, where: str) -> None:
        mixed.mg("put", "--mutable", str(path), where)

    check_exchange(tmp_path, mixed.mg, mixed.th, "mg", put_mutable)
    notes_cap = json.loads(mixed.mg("ls", "--json", "mg:tree/notes"))
    assert notes_cap[1]["mutable"] is True


def test_tahoe_tree_read_and_changed_by_mistgrid(mixed: Mixed, tmp_path: Path) -> None:
    mixed.th("create-alias", "th")
    # mistgrid reads Tahoe's alias file as it is
    shutil.copy(mixed.tahoe.directory / "private" / "aliases",
                mixed.mistgrid / "private" / "aliases")
    assert "th:" in mixed.mg("list-aliases")

    def put_mutable(path: Path, where: str) -> None:
        mixed.th("put", "--mutable", str(path), where)

    check_exchange(tmp_path, mixed.th, mixed.mg, "th", put_mutable)


def test_backups_cross_both_ways(mixed: Mixed, tmp_path: Path) -> None:
    """Each reads the other's archives (Tahoe's are immutable directories, and so are
    mistgrid's) file for file."""
    mixed.mg("create-alias", "mgb")
    shutil.copy(mixed.mistgrid / "private" / "aliases",
                mixed.tahoe.directory / "private" / "aliases")
    tree = tmp_path / "home"
    files = {f"sub{i % 3}/file{i}.txt": os.urandom(200 + i) for i in range(12)}
    files["top.txt"] = b"top"
    for name, data in files.items():
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_bytes(data)
    mixed.mg("backup", str(tree), "mgb:backups")
    time.sleep(1.1)
    mixed.th("backup", str(tree), "mgb:tahoe-backups")
    for reader, other in ((mixed.th, "backups"), (mixed.mg, "tahoe-backups")):
        out = tmp_path / f"restored-{other}"
        reader("cp", "-r", f"mgb:{other}/Latest", str(out))
        got = read_tree(out / "Latest" if (out / "Latest").is_dir() else out)
        assert got == files, other
        (archive,) = reader("ls", f"mgb:{other}/Archives").split()
        assert reader("get", f"mgb:{other}/Archives/{archive}/top.txt") == "top"
    # both made immutable directories
    mine = json.loads(mixed.mg("ls", "--json", "mgb:backups/Latest"))[1]
    theirs = json.loads(mixed.th("ls", "--json", "mgb:tahoe-backups/Latest"))[1]
    assert mine["ro_uri"].startswith("URI:DIR2-CHK:")
    assert theirs["ro_uri"].startswith("URI:DIR2-CHK:")
    assert sorted(mine["children"]) == sorted(theirs["children"]) == \
        ["sub0", "sub1", "sub2", "top.txt"]


def _shares(base: Path, cap: str) -> list[Path]:
    """Every share file of `cap` on the grid's three storage servers."""
    from mistgrid.caps import base32  # noqa: PLC0415
    from mistgrid.grid.checker import parse_any_cap  # noqa: PLC0415

    parsed = parse_any_cap(cap)
    si = base32.b2a(parsed.storage_index)  # type: ignore[union-attr]
    return sorted(p for name in ("storage0", "storage1", "tahoe-storage")
                  for p in (base / name).glob(f"**/shares/*/{si}/*") if p.name.isdigit())


def _damage(base: Path, cap: str) -> None:
    """Remove one share of an immutable file; flip a byte in the middle of one share of a
    mutable file (a corrupt immutable share can only move elsewhere, which a 3-server grid
    with happiness 3 does not allow)."""
    shares = _shares(base, cap)
    assert len(shares) == 3, shares
    if "SSK" not in cap:
        shares[0].unlink()
        return
    data = bytearray(shares[1].read_bytes())
    data[len(data) // 2 + 200] ^= 0x33
    shares[1].write_bytes(bytes(data))


def test_check_verify_repair_across_implementations(mixed: Mixed, tmp_path: Path) -> None:
    """`tahoe check --verify --repair` repairs what mistgrid stored, and `mistgrid check
    --verify --repair` what Tahoe stored; each reads the other's result back."""
    base = mixed.mistgrid.parent
    source = tmp_path / "data"
    for writer, repairer, reader in ((mixed.mg, mixed.th, mixed.th),
                                     (mixed.th, mixed.mg, mixed.mg)):
        for mutable in (False, True):
            data = os.urandom(150_000)
            source.write_bytes(data)
            cap = writer("put", *(["--mutable"] if mutable else []), str(source)).strip()
            cap = cap.splitlines()[-1].strip()
            _damage(base, cap)
            out = repairer("check", "--verify", "--repair", cap)
            assert "Summary: not healthy" in out and "repair successful" in out, out
            after = repairer("check", "--verify", cap)
            assert "Summary: Healthy" in after, after
            assert "good-shares: 3 (encoding is 2-of-3)" in after, after
            target = tmp_path / "back"
            reader("get", cap, str(target))
            assert target.read_bytes() == data
            target.unlink()
            assert "Summary: Healthy" in writer("check", "--verify", cap)
