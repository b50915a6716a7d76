"""Walks of a directory tree: every object reachable once (a directory reached twice, or a
loop, is listed once), as units Tahoe's stream-manifest emits, with deep statistics."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from ..caps import base32, parse_cap
from ..caps.directory import DirectoryCap, is_directory_text, parse_directory_cap
from ..caps.immutable import ChkCap, ChkVerifierCap, LiteralCap
from ..caps.mutable import MutableWriteCap, is_mutable_text, parse_mutable_cap
from ..dirnode.children import Child
from ..dirnode.stats import DeepStats
from ..errors import CapabilityError
from .directories import Directories


def _unit(kind: str, path: list[str], cap: str, verify: str | None, si: bytes | None,
          repair: str | None) -> dict[str, Any]:
    return {"type": kind, "path": path, "cap": cap, "verifycap": verify,
            "repaircap": repair, "storage-index": base32.b2a(si) if si else None}


def describe_file(text: str) -> tuple[str, int | None, str | None, bytes | None, str | None]:
    """(format, size, verify cap, storage index, repair cap) of a file cap."""
    if is_mutable_text(text):
        mutable = parse_mutable_cap(text)
        verifier = mutable.verifier()
        repair = text if isinstance(mutable, MutableWriteCap) else verifier.to_string()
        return mutable.format.value, None, verifier.to_string(), mutable.storage_index, repair
    cap = parse_cap(text)
    if isinstance(cap, LiteralCap):
        return "LIT", cap.size, None, None, None
    if isinstance(cap, ChkCap):
        verify = cap.verifier().to_string()
        return "CHK", cap.size, verify, cap.storage_index, verify
    assert isinstance(cap, ChkVerifierCap)
    return "CHK", cap.size, text, cap.storage_index, text


async def walk(dirs: Directories, root: DirectoryCap,
               stats: DeepStats) -> AsyncIterator[dict[str, Any]]:
    """Units for the root and everything below it, depth first, names in order."""
    seen: set[str] = set()

    async def visit(directory: DirectoryCap, path: list[str]
                    ) -> AsyncIterator[dict[str, Any]]:
        key = directory.read_only().to_string()
        if key in seen:
            return
        seen.add(key)
        size, children = await dirs.table(directory)
        stats.add_directory(size, len(children))
        verifier = directory.verifier()
        file = directory.file
        yield _unit("directory", path, directory.to_string(),
                    verifier.to_string() if verifier else None,
                    getattr(file, "storage_index", None),
                    (verifier.to_string() if verifier else None))
        for name in sorted(children):
            child: Child = children[name]
            text = child.rw_uri or child.ro_uri or ""
            if is_directory_text(text):
                try:
                    below = parse_directory_cap(text)
                except CapabilityError:
                    stats.add_file("unknown", None)
                    continue
                async for unit in visit(below, [*path, name]):
                    yield unit
                continue
            try:
                kind, file_size, verify, si, repair = describe_file(text)
            except CapabilityError:
                stats.add_file("unknown", None)
                continue
            if text in seen:
                continue
            seen.add(text)
            stats.add_file(kind, file_size)
            yield _unit("file", [*path, name], text, verify, si, repair)

    async for unit in visit(root, []):
        yield unit
