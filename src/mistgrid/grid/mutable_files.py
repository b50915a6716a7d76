"""A client node's mutable files: what the web API and the CLI ask for.

How this works: small files (and every SDMF file, which is one segment) are published
whole from memory, one test-and-set request per share. An MDMF file larger than
`STREAM_ABOVE` is published a window of segments at a time from its source file
(`grid.mdmf`), read a window at a time, and written at an offset in place (only the
touched segments) when the write keeps its length; otherwise the current version is
spooled to a temporary file, changed there, and published from it. Every write retries
on an uncoordinated write (a few times, after a short random pause) on top of the newer
version it then finds.
"""

from __future__ import annotations

import collections
import os
import random
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor
from typing import IO

from ..caps.mutable import MutableCap, MutableFormat, MutableWriteCap
from ..errors import (
    MistgridError,
    NoSuchFileError,
    NotEnoughSharesError,
    UncoordinatedWriteError,
)
from ..mutable.servermap import ServerMap, Sightings
from ..mutable.version import SigningKey
from ..shares.mutable import Prefix
from ..storage.client import StorageClient
from . import mdmf
from .mutable import (
    READ_ATTEMPTS,
    RETRIES,
    KeyPool,
    Mapped,
    Published,
    _learnt,
    _pause,
    _signing_key,
    _torn,
    map_servers,
    modify,
    publish,
    retrieve,
)
from .threads import in_thread

STREAM_ABOVE = 4 * 1024 * 1024
# Tree nodes (32-byte hashes) kept of the MDMF versions this client wrote last: about
# 15 MB; a 100 MiB file of 4 shares has 8,188.
KEEP_NODES = 200_000


class MutableFiles:
    def __init__(self, servers: Callable[[], Sequence[StorageClient]], needed: int,
                 total: int, lease_secret: bytes, executor: Executor | None,
                 key_pool: KeyPool) -> None:
        self._servers = servers
        self.needed = needed
        self.total = total
        self._lease_secret = lease_secret
        self._executor = executor
        self.keys = key_pool
        self._sightings = Sightings()  # where this client saw each file's shares last
        # the last few MDMF versions this client wrote whole trees for (storage index ->)
        self._written: collections.OrderedDict[bytes, Published] = collections.OrderedDict()

    def _wrote(self, servers: Sequence[StorageClient], cap: MutableWriteCap,
               published: Published) -> Published:
        """Remember what a write gave (its trees, for a next in-place write)."""
        self._written.pop(cap.storage_index, None)
        if published.trees is not None and _nodes(published) <= KEEP_NODES:
            self._written[cap.storage_index] = published
            while sum(map(_nodes, self._written.values())) > KEEP_NODES:
                self._written.popitem(last=False)
        return _learnt(self._sightings, servers, cap, published)

    async def _read_all(self, source: IO[bytes], size: int) -> bytes:
        if self._executor is None:
            return source.read(size)
        return await in_thread(self._executor, source.read, size)

    async def create(self, fmt: MutableFormat, source: IO[bytes], size: int,
                     key: SigningKey | None = None, fresh: bool | None = None
                     ) -> MutableWriteCap:
        """A new mutable file holding `size` bytes of `source`. `fresh`: `key` was just
        taken from the key pool, so its storage index is on no server (without a key,
        one is taken here: fresh too)."""
        fresh = key is None if fresh is None else fresh
        key = key or await self.keys.take()
        cap = key.cap(fmt)
        await self._publish_from(cap, key, source, size, new=True, fresh=fresh)
        return cap

    async def _publish_from(self, cap: MutableWriteCap, key: SigningKey | None,
                            source: IO[bytes], size: int, new: bool = False,
                            fresh: bool = False) -> Published:
        """Publish `size` bytes of `source` as the next version (retrying on conflicts;
        the source is read again from where it started). `new`: a new file (no share is
        guessed at while the servers list theirs). `fresh`: of a key made just now, which
        no server can hold: a small one is written without mapping the servers first (one
        round trip, not two; a server that fails the write has its shares placed on the
        others)."""
        servers = self._servers()
        origin = source.tell()
        data = None if self._streams(cap, size) else await self._read_all(source, size)
        for attempt in range(RETRIES + 1):
            if fresh and attempt == 0 and data is not None:
                mapped = Mapped(ServerMap(responded=set(range(len(servers)))), {})
            else:
                mapped = await map_servers(servers, cap, 0 if new else self.total,
                                           sightings=self._sightings)
            if not mapped.map.responded:
                raise MistgridError("no storage server answered")
            try:
                signing = key or await _signing_key(servers, cap, mapped, self._executor)
            except NoSuchFileError:
                if not (mapped.map.found or mapped.map.bad) or attempt == RETRIES:
                    raise
                # shares replaced under the map, or half-written, by a racing writer
                await _pause(random.uniform(0.05, 0.5) * (attempt + 1))
                continue
            needed, total = self._shape(mapped)
            try:
                if data is not None:
                    return self._wrote(servers, cap, await publish(
                        servers, cap, signing, data, needed, total, self._lease_secret,
                        mapped, self._executor))
                source.seek(origin)
                return self._wrote(servers, cap, await mdmf.publish_stream(
                    servers, cap, signing, source, size, needed, total, self._lease_secret,
                    mapped, self._executor, fresh=fresh and attempt == 0))
            except UncoordinatedWriteError:
                if attempt == RETRIES:
                    raise
                await _pause(random.uniform(0.05, 0.5) * (attempt + 1))
        raise AssertionError("unreachable")

    def _streams(self, cap: MutableWriteCap, size: int) -> bool:
        return cap.format is MutableFormat.MDMF and size > STREAM_ABOVE

    def _shape(self, mapped: Mapped) -> tuple[int, int]:
        """k and N: the file's own (its newest version's), else this node's."""
        found = mapped.map.found
        if not found:
            return self.needed, self.total
        newest = max(found, key=lambda r: r.prefix.version_id).prefix
        return newest.needed, newest.total

    async def modify(self, cap: MutableWriteCap,
                     change: Callable[[bytes | None], bytes]) -> Published:
        """Publish `change(current contents)` (idempotent: it may run again on a newer
        version after a conflict). For small files, such as directories."""
        return await modify(self._servers(), cap, change, self.needed, self.total,
                            self._lease_secret, self._executor, sightings=self._sightings)

    async def read_all(self, cap: MutableCap) -> bytes:
        out = bytearray()

        def keep(chunk: bytes) -> None:
            out.extend(chunk)

        await self.read(cap, keep)
        return bytes(out)

    async def replace(self, cap: MutableWriteCap, source: IO[bytes], size: int) -> Published:
        return await self._publish_from(cap, None, source, size)

    async def republish(self, cap: MutableWriteCap) -> Published:
        """Publish the newest recoverable version again, as the next version, over every
        share found and onto new servers for the missing ones (a repair: never an older
        version). A large MDMF file goes through a spooled copy (bounded memory)."""
        servers = self._servers()
        mapped = await map_servers(servers, cap, self.total,
                                   sightings=self._sightings)
        best = mapped.map.best()
        if best is not None:
            prefix = mapped.map.prefix_of(best)
            if self._streams(cap, prefix.data_length):
                key = await _signing_key(servers, cap, mapped, self._executor)
                return await self._rewrite_spooled(cap, key, 0, b"")
        return await self.modify(cap, lambda old: old or b"")

    async def info(self, cap: MutableCap) -> Prefix | None:
        """The best version's fields (its size among them), or None when none is found."""
        mapped = await map_servers(self._servers(), cap, self.total, complete=False,
                                   sightings=self._sightings)
        best = mapped.map.best()
        return mapped.map.prefix_of(best) if best is not None else None

    async def read(self, cap: MutableCap, sink: mdmf.Sink,
                   choose: Callable[[int], tuple[int, int] | None] | None = None) -> Prefix:
        """Send the newest version to `sink`: all of it, or the bytes [start, end) that
        `choose(size)` picks once the size is known (None: send nothing). MDMF reads only
        the segments the bytes lie in; SDMF reads its one segment."""
        servers = self._servers()
        mapped = await map_servers(servers, cap, self.total, complete=False,
                                   sightings=self._sightings)
        best = mapped.map.best()
        if best is not None and mapped.map.prefix_of(best).format is MutableFormat.MDMF:
            sent = [0]

            def counted(chunk: bytes) -> Awaitable[None] | None:
                sent[0] += len(chunk)
                return sink(chunk)

            for attempt in range(READ_ATTEMPTS):
                best = mapped.map.best()
                if best is None:
                    break  # retrieve below says why
                prefix = mapped.map.prefix_of(best)
                span = choose(prefix.data_length) if choose else (0, prefix.data_length)
                try:
                    if span is not None:
                        await mdmf.read_range(servers, cap, span[0], span[1], counted,
                                              self._executor, mapped)
                    return prefix
                except NotEnoughSharesError as err:
                    # replaced between the map and the reads (read the newer version), or
                    # a map for reading that missed shares: if nothing has been sent yet
                    if sent[0] or attempt == READ_ATTEMPTS - 1 or (
                            mapped.complete and not _torn(err)):
                        raise
                    mapped = await map_servers(servers, cap, self.total,
                                               sightings=self._sightings)
        got = await retrieve(servers, cap, self._executor, mapped)
        span = choose(len(got.data)) if choose else (0, len(got.data))
        if span is not None:
            done = sink(got.data[span[0]:span[1]])
            if done is not None:
                await done
        return got.prefix

    async def write_at(self, cap: MutableWriteCap, offset: int, data: bytes) -> Published:
        """Write `data` at `offset` (past the end: zeros fill the gap) on top of the
        newest version."""
        servers = self._servers()
        for attempt in range(RETRIES + 1):
            mapped = await map_servers(servers, cap, self.total,
                                       sightings=self._sightings)
            best = mapped.map.best()
            try:
                if best is not None and mapped.map.prefix_of(best).format is \
                        MutableFormat.MDMF:
                    key = await _signing_key(servers, cap, mapped, self._executor)
                    done = await mdmf.write_in_place(servers, cap, key, offset, data,
                                                     self._lease_secret, mapped,
                                                     self._executor,
                                                     self._written.get(cap.storage_index))
                    if done is not None:
                        return self._wrote(servers, cap, done)
                    size = mapped.map.prefix_of(best).data_length
                    if max(size, offset + len(data)) > STREAM_ABOVE:
                        return await self._rewrite_spooled(cap, key, offset, data)
                return await modify(servers, cap, _splice(offset, data), self.needed,
                                    self.total, self._lease_secret, self._executor,
                                    sightings=self._sightings)
            except UncoordinatedWriteError:
                if attempt == RETRIES:
                    raise
                await _pause(random.uniform(0.05, 0.5) * (attempt + 1))
        raise AssertionError("unreachable")

    async def _rewrite_spooled(self, cap: MutableWriteCap, key: SigningKey, offset: int,
                               data: bytes) -> Published:
        """A large MDMF file whose length changes: spool the current version to a
        temporary file, change it there, publish it (bounded memory)."""
        with tempfile.TemporaryFile() as spool:

            def keep(chunk: bytes) -> None:
                spool.write(chunk)

            await self.read(cap, keep)
            size = spool.seek(0, os.SEEK_END)
            if offset > size:
                spool.write(b"\x00" * (offset - size))
            spool.seek(offset)
            spool.write(data)
            total = spool.seek(0, os.SEEK_END)
            spool.seek(0)
            return await self._publish_from(cap, key, spool, total)


def _nodes(published: Published) -> int:
    return sum(map(len, (published.trees or {}).values()))


def _splice(offset: int, data: bytes) -> Callable[[bytes | None], bytes]:
    def change(old: bytes | None) -> bytes:
        current = old or b""
        if offset > len(current):
            current += b"\x00" * (offset - len(current))
        return current[:offset] + data + current[offset + len(data):]

    return change


