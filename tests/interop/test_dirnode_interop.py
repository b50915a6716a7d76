"""Directory tables between mistgrid and real Tahoe-LAFS 1.20: mistgrid reads the children
of a directory Tahoe made (names, read caps, decrypted write caps, metadata), and Tahoe
lists and reads through a directory mistgrid made."""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path

import pytest
import pytest_twisted

from mistgrid.caps.directory import DirectoryCap, parse_directory_cap
from mistgrid.caps.mutable import MutableFormat, MutableWriteCap
from mistgrid.crypto import rsa
from mistgrid.dirnode.children import Child, pack_children, unpack_children
from mistgrid.grid.directories import Directories
from mistgrid.mutable.version import SigningKey

from .test_mutable_interop import Grid, grid, read_all  # noqa: F401

ONLY_MISTGRID_SERVERS = pytest.mark.parametrize("grid", ["mistgrid"], indirect=True)


@ONLY_MISTGRID_SERVERS
@pytest.mark.parametrize("fmt", ["sdmf", "mdmf"])
@pytest_twisted.ensureDeferred
async def test_mistgrid_reads_a_tahoe_directory(grid: Grid, tmp_path: Path,  # noqa: F811
                                                fmt: str) -> None:
    directory = grid.cli("mkdir", f"--format={fmt}").decode().strip()
    source = tmp_path / "in"
    source.write_bytes(os.urandom(5000))
    grid.cli("put", str(source), f"{directory}/plain.bin")
    grid.cli("put", "--mutable", str(source), f"{directory}/changing")
    grid.cli("mkdir", f"{directory}/sub dir")
    grid.cli("put", str(source), f"{directory}/caf\u00e9")
    listing = json.loads(grid.web("GET", f"/uri/{directory}?t=json"))[1]["children"]
    cap = parse_directory_cap(directory)
    assert isinstance(cap.file, MutableWriteCap)
    assert cap.file.format is MutableFormat[fmt.upper()]
    data = await read_all(grid.files(), cap.file)
    children = {c.name: c for c in unpack_children(data, cap.writekey)}
    assert set(children) == set(listing)
    for name, (_kind, info) in listing.items():
        assert children[name].ro_uri == info["ro_uri"], name
        assert children[name].rw_uri == info.get("rw_uri"), name
        assert children[name].metadata["tahoe"]["linkcrtime"] == \
            info["metadata"]["tahoe"]["linkcrtime"]
    read_only = unpack_children(data, None)
    assert all(c.rw_uri is None for c in read_only)
    assert DirectoryCap(cap.file).read_only().to_string() == \
        json.loads(grid.web("GET", f"/uri/{directory}?t=json"))[1]["ro_uri"]


@ONLY_MISTGRID_SERVERS
@pytest_twisted.ensureDeferred
async def test_tahoe_reads_a_mistgrid_directory(grid: Grid, tmp_path: Path) -> None:  # noqa: F811
    source = tmp_path / "in"
    content = os.urandom(3000)
    source.write_bytes(content)
    file_cap = grid.cli("put", str(source)).decode().strip()
    sub = grid.cli("mkdir").decode().strip()
    sub_ro = parse_directory_cap(sub).read_only().to_string()
    now = time.time()
    meta = {"tahoe": {"linkcrtime": now, "linkmotime": now}}
    key = SigningKey.of(rsa.generate())
    file = key.cap(MutableFormat.SDMF)
    assert isinstance(file, MutableWriteCap)
    table = pack_children([Child("file.bin", file_cap, None, meta),
                           Child("sub", sub_ro, sub, meta),
                           Child("ro sub", sub_ro, None, meta)], file.writekey)
    files = grid.files()
    await files.create(MutableFormat.SDMF, io.BytesIO(table), len(table), key)
    directory = DirectoryCap(file).to_string()
    assert directory.startswith("URI:DIR2:")
    assert sorted(grid.cli("ls", directory).decode().split("\n")[:-1]) == \
        ["file.bin", "ro sub", "sub"]
    assert grid.cli("get", f"{directory}/file.bin") == content
    listing = json.loads(grid.web("GET", f"/uri/{directory}?t=json"))[1]["children"]
    assert listing["sub"][1]["rw_uri"] == sub
    assert "rw_uri" not in listing["ro sub"][1]
    grid.cli("mkdir", f"{directory}/sub/deeper")  # Tahoe writes through our write cap
    assert grid.cli("ls", f"{directory}/sub").decode().split() == ["deeper"]


@ONLY_MISTGRID_SERVERS
@pytest_twisted.ensureDeferred
async def test_directory_changes_cross_both_ways(grid: Grid, tmp_path: Path) -> None:  # noqa: F811
    """mistgrid makes, links and unlinks; Tahoe lists and reads each state and adds a
    child of its own, which mistgrid then sees."""
    dirs = Directories(grid.files())
    made = await dirs.mkdir(MutableFormat.MDMF)
    source = tmp_path / "in"
    content = os.urandom(4000)
    source.write_bytes(content)
    file_cap = grid.cli("put", str(source)).decode().strip()
    await dirs.link(made, "f", None, file_cap)
    deep = await dirs.ensure_path(made, ["x", "y"], MutableFormat.SDMF)
    text = made.to_string()
    assert grid.cli("ls", text).decode().split() == ["f", "x"]
    assert grid.cli("ls", f"{text}/x").decode().split() == ["y"]
    assert grid.cli("get", f"{text}/f") == content
    grid.cli("put", str(source), f"{text}/x/y/from-tahoe")
    assert list(await dirs.children(deep)) == ["from-tahoe"]
    await dirs.unlink(made, "f")
    assert grid.cli("ls", text).decode().split() == ["x"]
