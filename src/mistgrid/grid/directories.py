"""Directories on a grid: make one, list it, link, unlink and look up children by path.

How this works: a mutable directory is a mutable file holding its children table
(`dirnode.children`); every change is a modify of that file with an idempotent change
(set this name to these caps, remove this name), so a conflicting writer's change is never
lost: the change is applied again on top of the newer table. Link times follow Tahoe:
`tahoe:linkcrtime` is kept when a name is re-linked, `tahoe:linkmotime` is updated.
"""

from __future__ import annotations

import io
import time
from collections.abc import Sequence
from typing import Any

from ..caps.directory import DirectoryCap, is_directory_text, parse_directory_cap
from ..caps.mutable import MutableFormat, MutableWriteCap
from ..dirnode.children import Child, normalize, pack_children, unpack_children
from ..errors import CapabilityError, MistgridError
from ..mutable.version import SigningKey
from .mutable_files import MutableFiles


class NoSuchChildError(MistgridError):
    """A name that is not in the directory (404)."""


class ExistingChildError(MistgridError):
    """A name that is already in the directory, where replacing was not asked for (409)."""


class NotDirectoryError(MistgridError):
    """A path goes through something that is not a directory (400)."""


class ReadOnlyDirectoryError(MistgridError):
    """A change through a read-only directory cap (400)."""


def link_metadata(old: dict[str, Any] | None, now: float | None = None) -> dict[str, Any]:
    """Metadata of a (re)linked child: Tahoe's link times."""
    now = time.time() if now is None else now
    meta = dict(old or {})
    tahoe = dict(meta.get("tahoe") or {})
    tahoe.setdefault("linkcrtime", now)
    tahoe["linkmotime"] = now
    meta["tahoe"] = tahoe
    return meta


class Directories:
    def __init__(self, files: MutableFiles) -> None:
        self.files = files

    async def mkdir(self, fmt: MutableFormat, children: Sequence[Child] = (),
                    key: SigningKey | None = None) -> DirectoryCap:
        key = key or await self.files.keys.take()
        cap = key.cap(fmt)
        table = pack_children(children, cap.writekey)
        await self.files.create(fmt, io.BytesIO(table), len(table), key)
        return DirectoryCap(cap)

    async def children(self, directory: DirectoryCap) -> dict[str, Child]:
        if not directory.is_mutable:
            raise MistgridError("immutable directories are not supported yet")
        if directory.is_verifier:
            raise CapabilityError("a verify cap cannot list a directory")
        data = await self.files.read_all(directory.file)  # type: ignore[arg-type]
        return {c.name: c for c in unpack_children(data, directory.writekey)}

    async def _change(self, directory: DirectoryCap,
                      edit: Any) -> None:
        if not isinstance(directory.file, MutableWriteCap):
            raise ReadOnlyDirectoryError("this directory cap is read-only: use its write cap")
        writekey = directory.file.writekey

        def change(old: bytes | None) -> bytes:
            children = {c.name: c for c in unpack_children(old or b"", writekey)}
            edit(children)
            return pack_children(children.values(), writekey)

        await self.files.modify(directory.file, change)

    async def link(self, directory: DirectoryCap, name: str, rw_uri: str | None,
                   ro_uri: str | None, replace: bool = True) -> bool:
        """Set `name` to a cap; True when the name was new."""
        name = normalize(name)
        if not name or "/" in name:
            raise MistgridError("a child name must be non-empty and hold no '/'")
        existed: list[bool] = []

        def edit(children: dict[str, Child]) -> None:
            old = children.get(name)
            if not existed:
                existed.append(old is not None)
            if old is not None and not replace:
                if (old.rw_uri, old.ro_uri) == (rw_uri, ro_uri):
                    return  # this change already landed (a retry after a conflict)
                raise ExistingChildError(f"{name!r} already exists in this directory")
            children[name] = Child(name, ro_uri, rw_uri,
                                   link_metadata(dict(old.metadata) if old else None))

        await self._change(directory, edit)
        return not existed[0]

    async def unlink(self, directory: DirectoryCap, name: str) -> None:
        name = normalize(name)
        found: list[bool] = []

        def edit(children: dict[str, Child]) -> None:
            if not found:
                found.append(name in children)
            children.pop(name, None)

        await self._change(directory, edit)
        if not found[0]:
            raise NoSuchChildError(f"no child named {name!r}")

    async def resolve(self, directory: DirectoryCap, path: Sequence[str]) -> Child:
        """The child at `path` (names below `directory`)."""
        here = directory
        child: Child | None = None
        for index, name in enumerate(path):
            kids = await self.children(here)
            child = kids.get(normalize(name))
            if child is None:
                raise NoSuchChildError(f"no child named {name!r}")
            if index < len(path) - 1:
                here = child_directory(child, name)
        if child is None:
            raise NoSuchChildError("an empty path names no child")
        return child

    async def ensure_path(self, directory: DirectoryCap, path: Sequence[str],
                          fmt: MutableFormat) -> DirectoryCap:
        """The directory at `path`, made (and linked) where missing."""
        here = directory
        for name in path:
            kids = await self.children(here)
            child = kids.get(normalize(name))
            if child is None:
                made = await self.mkdir(fmt)
                await self.link(here, name, made.to_string(),
                                made.read_only().to_string(), replace=False)
                here = made
            else:
                here = child_directory(child, name)
        return here


def child_directory(child: Child, name: str) -> DirectoryCap:
    text = child.rw_uri or child.ro_uri or ""
    if not is_directory_text(text):
        raise NotDirectoryError(f"{name!r} is not a directory")
    return parse_directory_cap(text)
