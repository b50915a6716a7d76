"""`mistgrid cp`: files and trees between this machine and the grid, as Tahoe's `cp`.

    cp LOCAL... ALIAS:path            upload (into the directory, when the target is one
                                      or ends with ':' or '/')
    cp ALIAS:path... LOCAL            download
    cp ALIAS:a ALIAS:b                link a's cap at b (a grid-to-grid copy links)
    cp --caps-only ALIAS:path LOCAL   write each file's cap instead of its contents
    cp -r LOCALDIR ALIAS:path         a whole tree up; directories made on the way
    cp -r ALIAS:dir LOCALDIR          a whole tree down
Targets follow Tahoe's rules (not /bin/cp's): a target is a directory when it is one,
ends with '/' or ':', or is missing and more than one file is copied; a named directory
is copied to a directory of its name inside the target (`cp -r ~/docs tahoe:backup`
makes `tahoe:backup/docs`); an unnamed one (a bare directory cap, or `alias:`) has its
contents copied into the target.
A bar (bytes) shows on a terminal; piped, only errors are printed.
"""

from __future__ import annotations

import json
import os
import time
import urllib.parse
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import click

from ..errors import MistgridError
from ..fileutil import atomic_output
from .aliases import load_aliases, split_where, uri_path
from .data import CHUNK, KeptConnection, connect_local, node_option, send_body
from .files import call, checked
from .progress import byte_progress


def _is_grid(arg: str, aliases: dict[str, str]) -> bool:
    if arg.startswith("URI:"):
        return True
    if arg.startswith(("./", "/", "~")):
        return False
    alias, colon, _ = arg.partition(":")
    return bool(colon) and "/" not in alias and alias in aliases


def _json(node_dir: Path, path: str) -> list[Any] | None:
    status, body = call(node_dir, "GET", path + "?t=json")
    if status == 404:
        return None
    result: list[Any] = json.loads(checked(status, body, "lookup"))
    return result


def _grid_is_file(node_dir: Path, source: str, aliases: dict[str, str]) -> bool:
    """Whether a source (local or on the grid) is a file: not a directory, not missing."""
    if not _is_grid(source, aliases):
        return Path(source).is_file()
    cap, names = split_where(source, aliases)
    found = _json(node_dir, uri_path(cap, names))
    return found is not None and found[0] != "dirnode"


def _upload(node_dir: Path, source: Path, path: str, advance: Callable[[int], None],
            kept: KeptConnection | None = None) -> str:
    """`kept` only for an unlinked upload (path "uri"), which is safe to repeat."""
    with source.open("rb") as handle:
        try:
            return send_body(node_dir, "PUT", path, handle, source.stat().st_size, advance,
                             kept)
        except MistgridError as err:
            raise MistgridError(f"{source}: {err}") from None


def _download(node_dir: Path, path: str, target: Path, advance: Callable[[int], None]) -> None:
    conn, base = connect_local(node_dir)
    try:
        conn.request("GET", base + path)
        response = conn.getresponse()
        if response.status != 200:
            raise MistgridError(f"{target.name}: download failed: "
                                f"{response.read().decode('utf-8', 'replace').strip()}")
        with atomic_output(target) as out:
            while chunk := response.read(CHUNK):
                out.write(chunk)
                advance(len(chunk))
    except OSError as err:
        raise MistgridError(f"cannot reach the node's web API: {err}") from err
    finally:
        conn.close()


def _tree_size(paths: list[Path]) -> int:
    total = 0
    for path in paths:
        if path.is_dir():
            total += sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        elif path.is_file():
            total += path.stat().st_size
    return total


@click.command()
@click.argument("args", nargs=-1, required=True)
@click.option("-r", "--recursive", is_flag=True, help="Copy directories and what is in them.")
@click.option("--caps-only", is_flag=True,
              help="To local files: write each file's cap, not its contents (as Tahoe).")
@node_option
def cp(args: tuple[str, ...], recursive: bool, caps_only: bool, node_dir: Path) -> None:
    """Copy SOURCE... to TARGET: local files up, grid files down, grid to grid."""
    if len(args) < 2:
        raise MistgridError("give at least one source and a target")
    *sources, target = args
    aliases = load_aliases(node_dir)
    if _is_grid(target, aliases):
        cap, names = split_where(target, aliases)
        into_dir = target.endswith((":", "/")) or not names
        if not into_dir:
            found = _json(node_dir, uri_path(cap, names))
            if found is None:  # a missing target is a file only for one file's copy
                into_dir = len(sources) > 1 or not _grid_is_file(node_dir, sources[0],
                                                                 aliases)
            else:
                into_dir = found[0] == "dirnode"
        if len(sources) > 1 and not into_dir:
            raise MistgridError("several sources need a directory as the target")
        local = [Path(s) for s in sources if not _is_grid(s, aliases)]
        with byte_progress("copying", _tree_size(local)) as advance:
            for source in sources:
                if _is_grid(source, aliases):
                    _grid_to_grid(node_dir, source, cap, names, into_dir, aliases)
                else:
                    _up(node_dir, Path(source), cap, names, into_dir, recursive, advance)
        return
    destination = Path(target)
    for source in sources:
        if not _is_grid(source, aliases):
            raise MistgridError(f"{source}: local to local copies are not mistgrid's job")
    # as Tahoe: the target is a directory when it is one, or ends with '/', or is missing
    # and more than one file is copied into it
    into_dir = destination.is_dir() or target.endswith("/") or len(sources) > 1 or (
        not destination.exists() and not _grid_is_file(node_dir, sources[0], aliases))
    with byte_progress("copying", 0) as advance:
        for source in sources:
            _down(node_dir, source, destination, into_dir, recursive, aliases, advance,
                  caps_only)


def _up(node_dir: Path, source: Path, cap: str, names: list[str], into_dir: bool,
        recursive: bool, advance: Callable[[int], None]) -> None:
    if not source.exists():
        raise MistgridError(f"{source}: no such file or directory")
    here = [*names, source.name] if into_dir else names
    if source.is_dir():
        if not recursive:
            raise MistgridError(f"{source} is a directory: use -r")
        _up_tree(node_dir, source, cap, here, advance)
        return
    if not here:
        raise MistgridError("give the target name (e.g. tahoe:file.txt)")
    _upload(node_dir, source, uri_path(cap, here), advance)


def _link_times() -> dict[str, Any]:
    now = time.time()
    return {"tahoe": {"linkcrtime": now, "linkmotime": now}}


def upload_all(node_dir: Path, files: list[Path], advance: Callable[[int], None]) -> list[str]:
    """Upload each file unlinked (UPLOADS_AT_ONCE at a time: the node spends most of a
    small file's upload waiting on storage servers); their caps, in order."""
    if len(files) <= 1:
        return [_upload(node_dir, f, "uri", advance) for f in files]
    kept = KeptConnection()
    try:
        with ThreadPoolExecutor(UPLOADS_AT_ONCE, thread_name_prefix="mistgrid-cp") as pool:
            return list(pool.map(lambda f: _upload(node_dir, f, "uri", advance, kept),
                                 files))
    finally:
        kept.close_all()


UPLOADS_AT_ONCE = 4


def _up_tree(node_dir: Path, source: Path, cap: str, here: list[str],
             advance: Callable[[int], None]) -> None:
    """The contents of local directory `source` into the grid directory at `here` (made
    when missing). As Tahoe's cp: files are uploaded unlinked first, then each grid
    directory is changed once (a new one made with all its children; an existing one
    given its new children in one t=set_children), not once per file."""
    found = _json(node_dir, uri_path(cap, here))
    if found is None:
        made = _new_tree(node_dir, source, advance)
        checked(*call(node_dir, "PUT", uri_path(cap, here) + "?t=uri", made.encode()),
                "link")
        return
    if found[0] != "dirnode":
        raise MistgridError(f"{'/'.join(here)} is a file: a directory cannot go there")
    existing = found[1].get("children", {})
    children: dict[str, Any] = {}
    new_files = []
    for entry in sorted(source.iterdir()):
        old = existing.get(entry.name)
        if entry.is_dir():
            if old is not None and old[0] == "dirnode":
                _up_tree(node_dir, entry, cap, [*here, entry.name], advance)
            else:
                children[entry.name] = ["dirnode", {
                    "rw_uri": _new_tree(node_dir, entry, advance), "metadata": {}}]
        elif entry.is_file():
            if old is not None and old[1].get("mutable") and old[1].get("rw_uri"):
                # a mutable file is overwritten in place (it keeps its cap)
                _upload(node_dir, entry, uri_path(cap, [*here, entry.name]), advance)
            else:
                new_files.append(entry)
    for entry, file_cap in zip(new_files, upload_all(node_dir, new_files, advance),
                               strict=True):
        children[entry.name] = ["filenode", {"ro_uri": file_cap, "metadata": {}}]
    if children:
        checked(*call(node_dir, "POST", uri_path(cap, here) + "?t=set_children",
                      json.dumps(children).encode()), "link")


def _new_tree(node_dir: Path, source: Path, advance: Callable[[int], None]) -> str:
    """A new grid directory holding a copy of local directory `source`; its cap."""
    children: dict[str, Any] = {}
    entries = sorted(source.iterdir())
    for entry in entries:
        if entry.is_dir():
            children[entry.name] = ["dirnode", {"rw_uri": _new_tree(node_dir, entry, advance),
                                                "metadata": _link_times()}]
    files = [entry for entry in entries if not entry.is_dir() and entry.is_file()]
    for entry, file_cap in zip(files, upload_all(node_dir, files, advance), strict=True):
        children[entry.name] = ["filenode", {"ro_uri": file_cap, "metadata": _link_times()}]
    return checked(*call(node_dir, "POST", "uri?t=mkdir-with-children",
                         json.dumps(children).encode()), "mkdir").decode().strip()


def _down(node_dir: Path, source: str, destination: Path, into_dir: bool, recursive: bool,
          aliases: dict[str, str], advance: Callable[[int], None],
          caps_only: bool = False) -> None:
    cap, names = split_where(source, aliases)
    path = uri_path(cap, names)
    found = _json(node_dir, path)
    if found is None:
        raise MistgridError(f"{source}: no such file or directory")
    if found[0] == "dirnode" and not names:  # an unnamed directory: its contents
        target = destination
    elif into_dir:
        target = destination / (names[-1] if names else "download")
    else:
        target = destination
    if found[0] == "dirnode":
        if not recursive:
            raise MistgridError(f"{source} is a directory: use -r")
        _down_tree(node_dir, path, target, advance, caps_only)
        return
    _get_file(node_dir, path, target, advance, found[1], caps_only)


def _get_file(node_dir: Path, path: str, target: Path, advance: Callable[[int], None],
              info: dict[str, Any], caps_only: bool) -> None:
    """A grid file to a local one: its contents, or (--caps-only, as Tahoe) its cap."""
    if caps_only:
        with atomic_output(target) as out:
            out.write((info.get("rw_uri") or info.get("ro_uri") or "").encode() + b"\n")
        return
    _download(node_dir, path, target, advance)


def _down_tree(node_dir: Path, path: str, target: Path, advance: Callable[[int], None],
               caps_only: bool = False) -> None:
    target.mkdir(parents=True, exist_ok=True)
    listing = _json(node_dir, path)
    if listing is None:
        raise MistgridError(f"{target.name}: vanished while it was copied")
    for name, (kind, info) in sorted(listing[1].get("children", {}).items()):
        if "/" in name or name in (".", "..") or "\x00" in name or os.sep in name:
            raise MistgridError(f"refusing the unsafe name {name!r}")
        child = path + "/" + urllib.parse.quote(name, safe="")
        if kind == "dirnode":
            _down_tree(node_dir, child, target / name, advance, caps_only)
        elif kind == "filenode":
            _get_file(node_dir, child, target / name, advance, info, caps_only)


def _grid_to_grid(node_dir: Path, source: str, cap: str, names: list[str], into_dir: bool,
                  aliases: dict[str, str]) -> None:
    source_cap, source_names = split_where(source, aliases)
    found = _json(node_dir, uri_path(source_cap, source_names))
    if found is None:
        raise MistgridError(f"{source}: no such file or directory")
    _kind, info = found
    link = info.get("rw_uri") or info.get("ro_uri")
    if not link:
        raise MistgridError(f"{source}: no cap to copy")
    here = [*names, source_names[-1]] if into_dir and source_names else names
    if not here:
        raise MistgridError("give the target name")
    checked(*call(node_dir, "PUT", uri_path(cap, here) + "?t=uri", link.encode()), "link")
