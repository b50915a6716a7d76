"""MDMF reads and writes touch only the segments they need: counted at the storage API.

The servers are real storage backends (`DiskBackend`) answering at once; every read and
every write vector is recorded, and the test works out which segments' blocks they cover.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any, cast

import pytest
import pytest_twisted
from twisted.internet import defer

from mistgrid.caps.mutable import MutableFormat
from mistgrid.crypto import merkle, rsa
from mistgrid.gbs import messages
from mistgrid.grid.mutable import KeyPool, map_servers
from mistgrid.grid.mutable_files import MutableFiles
from mistgrid.mutable.version import SigningKey
from mistgrid.shares.mutable import HEADER_READ_SIZE, Geometry, parse_header
from mistgrid.storage.backend import DiskBackend
from mistgrid.storage.client import MutableSecrets, ShareVectors, StorageClient
from mistgrid.storage.containers import MUTABLE_DATA_OFFSET

MIB = 1024 * 1024


class CountingServer:
    def __init__(self, root: Path, index: int) -> None:
        self.backend = DiskBackend(root)
        self.permutation_seed = bytes([index]) * 32
        self.tub_id = bytes([index]) * 20
        self.reads: list[tuple[int, int, int]] = []  # (share, offset, length)
        self.writes: list[tuple[int, int, int]] = []

    def list_mutable(self, si: bytes) -> defer.Deferred[set[int]]:
        return defer.succeed(self.backend.mutable_shares(si))

    def read_mutable(self, si: bytes, n: int, offset: int,
                     length: int) -> defer.Deferred[bytes]:
        data = self.backend.read_mutable(si, n, offset, length)
        self.reads.append((n, offset, len(data)))
        return defer.succeed(data)

    def read_test_write(self, si: bytes, secrets: MutableSecrets,
                        vectors: dict[int, ShareVectors], reads: Any = ()
                        ) -> defer.Deferred[tuple[bool, dict[int, list[bytes]]]]:
        for n, v in vectors.items():
            self.writes.extend((n, o, len(d)) for o, d in v.writes)
        request = messages.ReadTestWrite(
            {n: messages.ShareWrites(
                tuple(messages.TestVector(o, n, s) for o, n, s in v.tests),
                tuple(messages.WriteVector(o, d) for o, d in v.writes), v.new_length)
             for n, v in vectors.items()}, tuple(reads))
        return defer.succeed(self.backend.read_test_write(
            si, secrets.write_enabler, secrets.renew, secrets.cancel, request))

    def advise_corrupt_mutable(self, si: bytes, n: int, reason: str) -> defer.Deferred[None]:
        return defer.succeed(None)

    def forget(self) -> None:
        self.reads.clear()
        self.writes.clear()


def segments_touched(servers: list[CountingServer], share_data: int, g: Geometry,
                     kind: str) -> set[int]:
    """Segments whose stored pieces (salt + block) any recorded read or write covers,
    leaving out the map's first read of each share (its header, from offset 0)."""
    touched: set[int] = set()
    piece = 16 + g.block_size
    data_end = g.share_data_size()
    for server in servers:
        for _n, offset, length in getattr(server, kind):
            start, end = offset - share_data, offset - share_data + length
            if end <= 0 or start >= data_end or (kind == "reads" and offset == 0):
                continue  # header, keys, chain or block hash tree
            touched.update(range(max(0, start) // piece, (min(end, data_end) - 1) // piece
                                 + 1))
    return touched


@pytest.fixture
def grid(tmp_path: Path) -> tuple[MutableFiles, list[CountingServer]]:
    servers = [CountingServer(tmp_path / f"s{i}", i) for i in range(5)]
    files = MutableFiles(lambda: cast(list[StorageClient], servers), 3, 5, b"l" * 32, None,
                         KeyPool(0, None))
    return files, servers


@pytest_twisted.ensureDeferred
async def test_range_read_and_offset_write_touch_only_their_segments(
        grid: tuple[MutableFiles, list[CountingServer]]) -> None:
    files, servers = grid
    size = 24 * MIB + 5  # 192 segments of 131073 bytes (k=3)
    data = bytearray(os.urandom(size))
    key = SigningKey.of(rsa.generate())
    cap = await files.create(MutableFormat.MDMF, io.BytesIO(bytes(data)), size, key)
    mapped = await map_servers(cast(list[StorageClient], servers), cap)
    record = mapped.map.found[0]
    header = parse_header(mapped.heads[(record.server, record.number)][:HEADER_READ_SIZE])
    g = header.prefix.geometry
    share_data = header.offsets.share_data
    assert g.num_segments == 192 and g.segment_size == 131073
    for server in servers:
        server.forget()
    # a 1 MiB read at 20 MiB: segments 159..168
    start = 20 * MIB
    out = bytearray()
    await files.read(cap, out.extend, lambda _size: (start, start + MIB))
    assert bytes(out) == data[start:start + MIB]
    wanted = set(range(start // g.segment_size, (start + MIB - 1) // g.segment_size + 1))
    assert segments_touched(servers, share_data, g, "reads") == wanted
    assert not any(s.writes for s in servers)
    read_bytes = sum(length for s in servers for _n, _o, length in s.reads)
    tree = 32 * (2 * 256 - 1)
    assert read_bytes < 5 * 4096 + 3 * tree + 3 * (len(wanted) + 1) * (16 + g.block_size)
    for server in servers:
        server.forget()
    # a 4 KiB write at 12 MiB - 100 (crosses no segment boundary... or one)
    offset = 12 * MIB - 100
    patch = os.urandom(4096)
    await files.write_at(cap, offset, patch)
    data[offset:offset + len(patch)] = patch
    wanted = set(range(offset // g.segment_size, (offset + len(patch) - 1) // g.segment_size
                       + 1))
    assert segments_touched(servers, share_data, g, "writes") == wanted
    assert segments_touched(servers, share_data, g, "reads") == wanted
    written = sum(length for s in servers for _n, _o, length in s.writes)
    assert written < 5 * (tree + 1024 + len(wanted) * (16 + g.block_size))
    out.clear()
    await files.read(cap, out.extend)
    assert bytes(out) == bytes(data)


@pytest_twisted.ensureDeferred
async def test_a_small_file_is_read_in_the_maps_one_read_per_share(
        grid: tuple[MutableFiles, list[CountingServer]]) -> None:
    """A share the map read whole (its first read covers a small file's share) is not read
    again for its block hash tree or its blocks: over Tor each read is a round trip."""
    files, servers = grid
    for size in (0, 56, 1024, 5000):
        data = os.urandom(size)
        cap = await files.create(MutableFormat.MDMF, io.BytesIO(data), size,
                                 SigningKey.of(rsa.generate()))
        for server in servers:
            server.forget()
        out = bytearray()
        await files.read(cap, out.extend)
        assert bytes(out) == data
        reads = [r for s in servers for r in s.reads]
        assert reads and all(offset == 0 for _n, offset, _length in reads), reads


@pytest_twisted.ensureDeferred
async def test_a_writer_takes_the_trees_of_its_own_last_version(
        grid: tuple[MutableFiles, list[CountingServer]]) -> None:
    """An in-place write of the version this client wrote last reads no block hash tree
    (it built them); another client, or this one after another client wrote, reads and
    checks every share's tree. A tree changed on a server meanwhile is stored whole again
    by the write, so the file stays consistent."""
    files, servers = grid
    size = 8 * MIB  # 64 segments
    data = bytearray(os.urandom(size))
    cap = await files.create(MutableFormat.MDMF, io.BytesIO(bytes(data)), size,
                             SigningKey.of(rsa.generate()))
    mapped = await map_servers(cast(list[StorageClient], servers), cap)
    record = mapped.map.found[0]
    header = parse_header(mapped.heads[(record.server, record.number)][:HEADER_READ_SIZE])
    start = header.offsets.block_hash_tree
    tree_size = 32 * (2 * 64 - 1)

    def tree_reads() -> int:
        return sum(1 for s in servers for _n, offset, length in s.reads
                   if offset != 0 and offset < start + tree_size and start < offset + length)

    # one share's tree changed on its server's disk (a node over untouched segments)
    (path,) = [p for p in (servers[0].backend.root).glob("**/shares/*/*/*")
               if p.name.isdigit()]
    stored = bytearray(path.read_bytes())
    stored[MUTABLE_DATA_OFFSET + start + 32 * 5] ^= 0x01
    path.write_bytes(bytes(stored))
    for server in servers:
        server.forget()
    patch = os.urandom(4096)
    await files.write_at(cap, 1000, patch)
    data[1000:1000 + len(patch)] = patch
    assert tree_reads() == 0
    for server in servers:  # every share's tree as written is whole and consistent
        for share in server.backend.root.glob("**/shares/*/*/*"):
            raw = share.read_bytes()[MUTABLE_DATA_OFFSET + start:][:tree_size]
            assert merkle.verify_full_tree(merkle.split_hashes(raw)), share
    other = MutableFiles(lambda: cast(list[StorageClient], servers), 3, 5, b"l" * 32, None,
                         KeyPool(0, None))
    for server in servers:
        server.forget()
    await other.write_at(cap, 5 * MIB, patch)
    data[5 * MIB:5 * MIB + len(patch)] = patch
    assert tree_reads() == 5
    for server in servers:
        server.forget()
    await files.write_at(cap, 7 * MIB, patch)  # its own version is not the newest now
    data[7 * MIB:7 * MIB + len(patch)] = patch
    assert tree_reads() == 5
    out = bytearray()
    await other.read(cap, out.extend)
    assert bytes(out) == bytes(data)
