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
from ..caps.immutable import ChkCap, LiteralCap, parse_cap
from ..caps.mutable import MutableFormat, MutableWriteCap, is_mutable_text
from ..dirnode.children import (
    IMMUTABLE_PREFIX,
    READONLY_PREFIX,
    Child,
    normalize,
    pack_children,
    unpack_children,
)
from ..errors import CapabilityError, MistgridError
from ..mutable.version import SigningKey
from .immutable_files import ImmutableFiles
from .mutable_files import MutableFiles


class NoSuchChildError(MistgridError):
    """A name that is not in the directory (404)."""


class ExistingChildError(MistgridError):
    """A name that is already in the directory, where replacing was not asked for (409)."""


class NotDirectoryError(MistgridError):
    """A path goes through something that is not a directory (400)."""


class ReadOnlyDirectoryError(MistgridError):
    """A change through a read-only directory cap (400)."""


class MustBeDeepImmutableError(MistgridError):
    """A mutable child given for an immutable directory (400)."""


def allowed_in_immutable(child: Child) -> bool:
    """Whether an immutable directory may hold `child`, as Tahoe decides: no write cap,
    and a read cap of an immutable kind (CHK, LIT, DIR2-CHK, DIR2-LIT) or of a kind not
    known here."""
    if child.rw_uri:
        return False
    text = child.ro_uri or ""
    for prefix in (IMMUTABLE_PREFIX, READONLY_PREFIX):
        text = text.removeprefix(prefix)
    if not text:
        return False
    if is_directory_text(text):
        try:
            return not parse_directory_cap(text).is_mutable
        except CapabilityError:
            return False
    if is_mutable_text(text):
        return False
    try:
        parse_cap(text)
    except CapabilityError:
        # a malformed cap of a kind we know is refused; one of an unknown kind passes
        return not text.startswith(("URI:CHK", "URI:LIT"))
    return True


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
    def __init__(self, files: MutableFiles, immutable: ImmutableFiles | None = None) -> None:
        self.files = files
        self.immutable = immutable

    async def mkdir_immutable(self, children: Sequence[Child]) -> DirectoryCap:
        """An immutable directory holding `children` (each deeply immutable): a CHK file
        (or a literal one, when small) of its table, convergent as Tahoe makes it."""
        for child in children:
            if not allowed_in_immutable(child):
                raise MustBeDeepImmutableError(
                    f"child {child.name[:40]!r} is not allowed in an immutable directory "
                    "(only immutable files and directories may be linked there)")
        if self.immutable is None:
            raise MistgridError("this node does not make immutable directories")
        table = pack_children(children, None, deep_immutable=True)
        return DirectoryCap(await self.immutable.store(table))

    async def mkdir(self, fmt: MutableFormat, children: Sequence[Child] = (),
                    key: SigningKey | None = None) -> DirectoryCap:
        fresh = key is None
        key = key or await self.files.keys.take()
        cap = key.cap(fmt)
        table = pack_children(children, cap.writekey)
        await self.files.create(fmt, io.BytesIO(table), len(table), key, fresh)
        return DirectoryCap(cap)

    async def children(self, directory: DirectoryCap) -> dict[str, Child]:
        return (await self.table(directory))[1]

    async def table(self, directory: DirectoryCap) -> tuple[int, dict[str, Child]]:
        """(size of the table in bytes, its children)."""
        if directory.is_verifier:
            raise CapabilityError("a verify cap cannot list a directory")
        if not directory.is_mutable:
            if self.immutable is None:
                raise MistgridError("this node does not read immutable directories")
            assert isinstance(directory.file, (ChkCap, LiteralCap))
            data = await self.immutable.read_all(directory.file)
            # as Tahoe: a child that may not be in an immutable directory is left out
            kids = [c for c in unpack_children(data, None, mutable=False)
                    if allowed_in_immutable(c)]
            return len(data), {c.name: c for c in kids}
        data = await self.files.read_all(directory.file)  # type: ignore[arg-type]
        return len(data), {c.name: c for c in unpack_children(data, directory.writekey)}

    async def _change(self, directory: DirectoryCap,
                      edit: Any) -> None:
        if not isinstance(directory.file, MutableWriteCap):
            if not directory.is_mutable:
                raise ReadOnlyDirectoryError("this directory is immutable: it cannot change")
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
        name = check_name(name)
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

    async def set_children(self, directory: DirectoryCap,
                           children: Sequence[tuple[Child, bool]],
                           overwrite: bool = True) -> None:
        """Link many children in one change (Tahoe's t=set_children). Each comes with
        whether its metadata was given: if not, an existing child's metadata is kept. A
        given `tahoe` key is ignored; link times are kept/updated as for `link`."""
        wanted = [(check_name(c.name), c, given) for c, given in children]

        def edit(table: dict[str, Child]) -> None:
            now = time.time()
            for name, child, given in wanted:
                old = table.get(name)
                if old is not None and not overwrite and \
                        (old.rw_uri, old.ro_uri) != (child.rw_uri, child.ro_uri):
                    raise ExistingChildError(f"{name!r} already exists in this directory")
                meta = {k: v for k, v in child.metadata.items() if k != "tahoe"} \
                    if given or old is None else dict(old.metadata)
                if old is not None and "tahoe" in old.metadata:
                    meta["tahoe"] = old.metadata["tahoe"]
                else:
                    meta.pop("tahoe", None)
                table[name] = Child(name, child.ro_uri, child.rw_uri,
                                    link_metadata(meta, now))

        await self._change(directory, edit)

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

    async def rename(self, directory: DirectoryCap, old: str, new: str,
                     replace: bool = True, to: DirectoryCap | None = None) -> None:
        """Move child `old` to `new` (in `to`, another directory, if given), keeping its
        metadata. In one directory this is one change; across two it links there first,
        then unlinks here (the child is never in neither)."""
        old, new = normalize(old), check_name(new)
        if to is None or to.to_string() == directory.to_string():
            state: list[Child | None] = []

            def edit(children: dict[str, Child]) -> None:
                child = children.get(old)
                if not state:
                    state.append(child)
                if child is None:
                    moved = children.get(new)
                    if state[0] is not None and moved is not None and \
                            (moved.rw_uri, moved.ro_uri) == (state[0].rw_uri, state[0].ro_uri):
                        return  # this rename already landed (a retry after a conflict)
                    raise NoSuchChildError(f"no child named {old!r}")
                if old == new:
                    return
                there = children.get(new)
                if there is not None and not replace and \
                        (there.rw_uri, there.ro_uri) != (child.rw_uri, child.ro_uri):
                    raise ExistingChildError(f"{new!r} already exists in this directory")
                del children[old]
                children[new] = Child(new, child.ro_uri, child.rw_uri,
                                      link_metadata(dict(child.metadata)))

            await self._change(directory, edit)
            return
        child = (await self.children(directory)).get(old)
        if child is None:
            raise NoSuchChildError(f"no child named {old!r}")
        await self.link(to, new, child.rw_uri, child.ro_uri, replace=replace)
        await self.unlink(directory, old)

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


MAX_NAME_BYTES = 1024


def check_name(name: str) -> str:
    """A name a new link may have (NFC): not empty, `.` or `..`, no `/` or NUL, at most
    1,024 bytes of UTF-8 (names like these cannot be copied out to a local disk)."""
    name = normalize(name)
    if not name or name in (".", "..") or "/" in name or "\x00" in name:
        raise BadNameError(f"{name[:40]!r} cannot be a child's name (empty, '.', '..', or "
                           "holding '/' or NUL)")
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise BadNameError(f"a child's name may have at most {MAX_NAME_BYTES} bytes")
    return name


class BadNameError(MistgridError):
    """A child name a link cannot have (400)."""


def child_directory(child: Child, name: str) -> DirectoryCap:
    text = child.rw_uri or child.ro_uri or ""
    if not is_directory_text(text):
        raise NotDirectoryError(f"{name!r} is not a directory")
    return parse_directory_cap(text)
