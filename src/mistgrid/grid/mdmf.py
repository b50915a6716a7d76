"""MDMF files a segment at a time: ranged reads, streamed writes, in-place writes.

How this works. A ranged read opens k shares of the best version (its block hash tree,
checked through its share hash chain against the signed root), then reads only the blocks
of the segments the range covers, a window of segments per request, each block checked
against its tree before it is decoded; a share that fails is named and replaced by
another. A streamed write (a new version from a file of any size) first marks every share
with a checkstring only this writer knows (the "canary": version, new sequence number and
a random nonce) sent with its first blocks, then writes the blocks a window at a time (the
next window encoded while this one is written) with each request testing the canary, and
last writes the header, signature, keys and block hash tree, which makes the version
visible. An in-place write at an offset reads only the touched segments and every
share's block hash tree, re-encodes those segments, and rewrites in each share, in one
test-and-set request per share, just the touched blocks, the tree, the chain, the
signature and the signed prefix. Memory stays bounded by two windows of segments and the
block hash trees (32 bytes per segment per share).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor
from typing import IO, Any

import attrs
from twisted.internet import defer

from ..caps.mutable import MutableCap, MutableFormat, MutableWriteCap
from ..crypto import merkle
from ..crypto.hashes import lease_secrets
from ..errors import MistgridError, NotEnoughSharesError, ShareError, UncoordinatedWriteError
from ..mutable import version as core
from ..mutable.servermap import NEW_SHARE_TEST, Bad, ShareTest, plan_publish, still
from ..placement.happiness import permuted
from ..shares.mutable import (
    HEADER_READ_SIZE,
    MDMF_CHECKSTRING,
    SALT_SIZE,
    Geometry,
    Offsets,
    Prefix,
    mdmf_head,
    mdmf_offsets,
    pack_chain,
    parse_chain,
    parse_header,
)
from ..storage.client import MutableSecrets, ShareVectors, StorageClient
from .mutable import (
    READ_PATIENCE,
    WRITE_PIECE,
    Mapped,
    NotEnoughServersError,
    Published,
    _in,
    _readkey,
    _reason,
    map_servers,
    retrieve,
)
from .uploader import patience, settle, settle_within

WINDOW_BYTES = 4 * 1024 * 1024  # plaintext read or written per round of requests
Sink = Callable[[bytes], Awaitable[None] | None]


@attrs.define
class _Share:
    server: int
    number: int
    offsets: Offsets
    tree: list[bytes]
    head: bytes = b""  # the share's first bytes, read when the servers were mapped


async def _read(client: StorageClient, cap: MutableCap, number: int, head: bytes,
                offset: int, length: int) -> bytes:
    """Share bytes [offset, offset + length): from the map's read of the share's head
    when they lie in it (all of a small share), else from its server."""
    if offset + length <= len(head):
        return head[offset:offset + length]
    return await client.read_mutable(cap.storage_index, number, offset, length)


async def _open(servers: Sequence[StorageClient], cap: MutableCap, mapped: Mapped,
                prefix: Prefix, server: int, number: int,
                executor: Executor | None) -> _Share:
    head = mapped.heads[(server, number)]
    o = parse_header(head[:HEADER_READ_SIZE], number).offsets
    client = servers[server]
    if len(head) < o.signature:
        head += await client.read_mutable(cap.storage_index, number, len(head),
                                          o.signature - len(head))
    chain = parse_chain(head[o.share_hash_chain:o.signature], number)
    size = merkle.node_count(prefix.geometry.num_segments) * 32
    raw = await _read(client, cap, number, head, o.block_hash_tree, size)
    if len(raw) != size:
        raise ShareError(number, "block hash tree", "truncated")
    tree = merkle.split_hashes(raw)
    await _in(executor, core.check_block_tree, number, prefix, tree, chain)
    return _Share(server, number, o, tree, head)


def _segments_per_window(geometry: Geometry) -> int:
    return max(1, WINDOW_BYTES // max(1, geometry.segment_size))


async def read_range(servers: Sequence[StorageClient], cap: MutableCap, start: int,
                     end: int | None, sink: Sink, executor: Executor | None = None,
                     mapped: Mapped | None = None, opened: Sequence[_Share] = ()
                     ) -> tuple[Prefix, list[Bad]]:
    """Send plaintext bytes [start, end) of the best version (an MDMF one) to `sink`,
    reading only the segments they lie in. Returns the version and the bad shares met.
    `opened`: shares of that version already opened (their trees checked)."""
    mapped = mapped or await map_servers(servers, cap)
    servermap = mapped.map
    best = servermap.best()
    if best is None:
        await retrieve(servers, cap, executor, mapped)  # raises the right error
        raise AssertionError("unreachable")
    prefix = servermap.prefix_of(best)
    if prefix.format is not MutableFormat.MDMF:
        raise MistgridError("read_range reads MDMF versions")
    g = prefix.geometry
    start = max(0, start)
    end = g.data_length if end is None else min(end, g.data_length)
    bad: list[Bad] = list(servermap.bad)
    if start >= end:
        return prefix, bad
    holders = servermap.holders(best)
    candidates = [(n, s) for n in sorted(holders, key=lambda n: (n >= prefix.needed, n))
                  for s in holders[n]]
    readkey = _readkey(cap)
    open_shares: dict[int, _Share] = {}
    for share in sorted(opened, key=lambda s: s.number):
        if len(open_shares) < prefix.needed and share.number not in open_shares:
            open_shares[share.number] = share
            candidates.remove((share.number, share.server))

    async def fill() -> None:
        while len(open_shares) < prefix.needed:
            used = {s.server for s in open_shares.values()}
            choices = [c for c in candidates if c[0] not in open_shares]
            if not choices:
                raise NotEnoughSharesError(len(open_shares), prefix.needed,
                                           [ShareError(b.number, b.reason) for b in bad])
            batch: list[tuple[int, int]] = []
            for number, server in sorted(choices, key=lambda c: c[1] in used):
                if len(open_shares) + len(batch) >= prefix.needed:
                    break
                if all(number != b[0] for b in batch):
                    batch.append((number, server))
            for item in batch:
                candidates.remove(item)
            results = await settle_within((_open(servers, cap, mapped, prefix, s, n,
                                                 executor) for n, s in batch),
                                          patience(READ_PATIENCE, servers))
            for (number, server), result in zip(batch, results, strict=True):
                if isinstance(result, _Share):
                    open_shares[number] = result
                else:
                    bad.append(Bad(server, number, _reason(result)))

    first, last = start // g.segment_size, (end - 1) // g.segment_size
    step = _segments_per_window(g)
    segment = first
    while segment <= last:
        upto = min(last, segment + step - 1)
        await fill()
        shares = list(open_shares.values())
        begin = g.block_offset(segment)
        length = g.block_offset(upto) + SALT_SIZE + g.block_length(upto) - begin
        answers = await settle_within((_read(
            servers[s.server], cap, s.number, s.head, s.offsets.share_data + begin, length)
            for s in shares), patience(READ_PATIENCE, servers))
        pieces: dict[int, dict[int, bytes]] = {seg: {} for seg in range(segment, upto + 1)}
        failed = False
        for share, answer in zip(shares, answers, strict=True):
            try:
                if isinstance(answer, BaseException):
                    raise answer
                for seg in range(segment, upto + 1):
                    at = g.block_offset(seg) - begin
                    piece = answer[at:at + SALT_SIZE + g.block_length(seg)]
                    core.check_piece(share.number, prefix, share.tree, seg, piece)
                    pieces[seg][share.number] = piece
            except Exception as err:
                bad.append(Bad(share.server, share.number, _reason(err)))
                del open_shares[share.number]
                failed = True
        if failed:
            continue  # the same window again, with a replacement share
        for seg in range(segment, upto + 1):
            plain = await _in(executor, core.decode_mdmf_segment, readkey, g, seg,
                              pieces[seg])
            seg_start = seg * g.segment_size
            piece_of = plain[max(0, start - seg_start):end - seg_start]
            done = sink(piece_of)
            if done is not None:
                await done
        segment = upto + 1
    return prefix, bad


def _secrets(cap: MutableWriteCap, server: StorageClient, lease_secret: bytes
             ) -> MutableSecrets:
    renew, cancel = lease_secrets(lease_secret, cap.storage_index, server.tub_id)
    return MutableSecrets(cap.write_enabler(server.tub_id), renew, cancel)


async def publish_stream(servers: Sequence[StorageClient], cap: MutableWriteCap,
                         key: core.SigningKey, source: IO[bytes], size: int, needed: int,
                         total: int, lease_secret: bytes, mapped: Mapped,
                         executor: Executor | None = None, fresh: bool = False
                         ) -> Published:
    """A new MDMF version read from `source` (`size` bytes from its current position), a
    window of segments at a time. `fresh`: `key` was made just now, so no other writer
    can be writing this file. UncoordinatedWriteError when another writer changes a
    share on the way; NotEnoughServersError when fewer than k shares land."""
    servermap = mapped.map
    seqnum = servermap.highest_seqnum() + 1
    g = Geometry.for_new(MutableFormat.MDMF, needed, total, size)
    order = permuted([s.permutation_seed for s in servers], cap.storage_index)
    usable = servermap.responded or None
    plan = sorted(plan_publish(servermap, order, total, usable),
                  key=lambda p: (p.test == NEW_SHARE_TEST, p.number, p.server))
    if not plan:
        raise NotEnoughServersError("no storage server to write to")
    canary = MDMF_CHECKSTRING.pack(1, seqnum, os.urandom(32))
    encrypted_key = core.encrypt_private_key(cap.writekey, key.private_der)
    chain_size = 34 * len(merkle.needed_nodes(total, 0, include_leaf=False))
    signature_size = key.key.key_size // 8
    offsets = mdmf_offsets(g, len(encrypted_key), chain_size, signature_size,
                           len(key.public_der))
    live = list(plan)  # placements still being written
    failures: list[str] = []

    async def rtw(p: Any, test: ShareTest, writes: tuple[tuple[int, bytes], ...]
                  ) -> bool:
        server = servers[p.server]
        ok, _ = await server.read_test_write(
            cap.storage_index, _secrets(cap, server, lease_secret),
            {p.number: ShareVectors((test,), writes)})
        return bool(ok)

    async def round_(placements: list[Any], test: Callable[[Any], ShareTest],
                     writes: Callable[[Any], tuple[tuple[int, bytes], ...]]) -> None:
        results = await settle(rtw(p, test(p), writes(p)) for p in placements)
        for p, result in zip(placements, results, strict=True):
            if result is False:
                raise UncoordinatedWriteError(
                    "another writer changed this file during the write; read it again "
                    "and retry")
            if isinstance(result, BaseException):
                failures.append(_reason(result))
                live.remove(p)

    leaves: dict[int, list[bytes]] = {n: [] for n in range(total)}
    readkey = cap.readkey

    def encode(first: int, upto: int) -> dict[int, bytes]:
        """Segments first..upto of the source, each share's blocks of them (on a worker)."""
        stored: dict[int, list[bytes]] = {n: [] for n in range(total)}
        for seg in range(first, upto + 1):
            plain = source.read(g.segment_length(seg))
            if len(plain) != g.segment_length(seg):
                raise MistgridError("the source ended early")
            pieces = core.encode_mdmf_segment(readkey, g, plain, os.urandom(SALT_SIZE))
            for number, piece in enumerate(pieces):
                stored[number].append(piece)
                leaves[number].append(core.block_leaf_of(piece))
        return {number: b"".join(blocks) for number, blocks in stored.items()}

    # a window's blocks of one share go in one request, kept under the size a storage
    # server holds in memory (a larger body is spooled to disk and read back)
    step = max(1, min(_segments_per_window(g), WRITE_PIECE // (SALT_SIZE + g.block_size)))
    windows = [(first, min(g.num_segments - 1, first + step - 1))
               for first in range(0, g.num_segments, step)]
    marked: set[Any] = set()
    if not fresh:
        # mark the first share alone: a writer racing from the same map loses there,
        # having written nothing (a fresh key's file has no other writer)
        await round_(plan[:1], lambda p: p.test, lambda p: ((0, canary),))
        if not live:
            raise NotEnoughServersError(
                f"the first share could not be written: {failures[0]}")
        marked.add(plan[0])
    # Each window's blocks are written while the next window is encoded (two windows in
    # memory at most); a share not yet marked gets its canary with its first blocks.
    def encoding(window: tuple[int, int]) -> defer.Deferred[dict[int, bytes]]:
        return defer.Deferred.fromCoroutine(_in(executor, encode, *window))

    ahead = encoding(windows[0])
    taken = 0  # windows whose encoding has been awaited
    try:
        for index, (first, _) in enumerate(windows):
            stored = await ahead
            taken += 1
            if index + 1 < len(windows):
                ahead = encoding(windows[index + 1])
            at = offsets.share_data + g.block_offset(first)

            def test(p: Any) -> ShareTest:
                return still(canary) if p in marked else p.test

            def blocks(p: Any, at: int = at, stored: dict[int, bytes] = stored
                       ) -> tuple[tuple[int, bytes], ...]:
                if p in marked:
                    return ((at, stored[p.number]),)
                return ((0, canary), (at, stored[p.number]))

            await round_(list(live), test, blocks)
            marked.update(live)
            if len({p.number for p in live}) < needed:
                raise NotEnoughServersError(f"fewer than {needed} shares could be written: "
                                            f"{failures[-1]}")
    finally:
        if taken < len(windows):  # a round failed: the encode in flight ends, unheeded,
            with contextlib.suppress(Exception):  # before the caller closes the source
                await ahead
    done = await _in(executor, core.finish_version, key, g, seqnum, leaves)

    def final(p: Any) -> tuple[tuple[int, bytes], ...]:
        chain = pack_chain(done.chains[p.number])
        head = mdmf_head(done.prefix, offsets, encrypted_key, chain, done.signature,
                         key.public_der)
        return ((0, head), (offsets.block_hash_tree, b"".join(done.trees[p.number])))

    await round_(list(live), lambda p: still(canary), final)
    placed: dict[int, list[int]] = {}
    for p in live:
        placed.setdefault(p.number, []).append(p.server)
    if len(placed) < needed:
        raise NotEnoughServersError(
            f"only {len(placed)} of {total} shares could be placed ({needed} needed)"
            + (f": {failures[0]}" if failures else ""))
    return Published(done.prefix, placed, done.trees)


async def write_in_place(servers: Sequence[StorageClient], cap: MutableWriteCap,
                         key: core.SigningKey, offset: int, data: bytes,
                         lease_secret: bytes, mapped: Mapped,
                         executor: Executor | None = None,
                         known: Published | None = None) -> Published | None:
    """Write `data` at `offset` into the best MDMF version by rewriting only the touched
    segments. None (nothing written) when that cannot be done in place: the version is
    not MDMF, the write would change the file's length, or the map is not clean (a
    missing, stale or bad share, which a whole new version puts right). `known`: what
    this client's own last write of the file gave; when the best version is that one,
    its block hash trees are taken from there, not read and checked again (every write
    stores each share's whole tree, so a changed copy on a server is put right)."""
    servermap = mapped.map
    best = servermap.best()
    if best is None or not data:
        return None
    prefix = servermap.prefix_of(best)
    g = prefix.geometry
    holders = servermap.holders(best)
    if prefix.format is not MutableFormat.MDMF or offset + len(data) > g.data_length \
            or servermap.bad or len(holders) != prefix.total \
            or any(r.prefix.version_id != best for r in servermap.found):
        return None
    first, last = offset // g.segment_size, (offset + len(data) - 1) // g.segment_size
    # every share's tree (each holder's copy is checked against the signed root)
    records = [(r.server, r.number) for r in servermap.found]
    ours = known.trees if known is not None and known.trees is not None \
        and known.prefix.version_id == best else {}

    async def open_share(server: int, number: int) -> _Share:
        if number in ours:
            head = mapped.heads[(server, number)]
            offsets = parse_header(head[:HEADER_READ_SIZE], number).offsets
            return _Share(server, number, offsets, ours[number], head)
        return await _open(servers, cap, mapped, prefix, server, number, executor)

    opened = await settle(open_share(s, n) for s, n in records)
    trees: dict[int, list[bytes]] = {}
    shares: list[_Share] = []
    for (_, number), result in zip(records, opened, strict=True):
        if not isinstance(result, _Share):
            return None  # not clean after all: a whole new version instead
        trees.setdefault(number, result.tree)
        shares.append(result)
    old = bytearray()
    await read_range(servers, cap, first * g.segment_size,
                     min(g.data_length, (last + 1) * g.segment_size), old.extend,
                     executor, mapped, shares)
    at = offset - first * g.segment_size
    old[at:at + len(data)] = data
    readkey = cap.readkey
    pieces: dict[int, list[bytes]] = {n: [] for n in range(g.total)}
    leaves: dict[int, dict[int, bytes]] = {n: {} for n in range(g.total)}  # the new ones
    for seg in range(first, last + 1):
        begin = (seg - first) * g.segment_size
        plain = bytes(old[begin:begin + g.segment_length(seg)])
        encoded = await _in(executor, core.encode_mdmf_segment, readkey, g, plain,
                            os.urandom(SALT_SIZE))
        for number, piece in enumerate(encoded):
            pieces[number].append(piece)
            leaves[number][seg] = core.block_leaf_of(piece)
    # only the nodes above the rewritten segments' leaves change
    new_trees = {n: merkle.update_tree(trees[n], leaves[n]) for n in range(g.total)}
    done = await _in(executor, core.sign_trees, key, g, servermap.highest_seqnum() + 1,
                     new_trees)

    for server_index, number in records:
        o = parse_header(mapped.heads[(server_index, number)][:HEADER_READ_SIZE],
                         number).offsets
        if o.signature - o.share_hash_chain != len(pack_chain(done.chains[number])) or \
                o.verification_key - o.signature != len(done.signature):
            return None  # laid out unlike ours: a whole new version instead

    async def rewrite(server_index: int, number: int) -> bool:
        head = mapped.heads[(server_index, number)]
        o = parse_header(head[:HEADER_READ_SIZE], number).offsets
        writes = ((0, done.prefix.pack()),
                  (o.share_hash_chain, pack_chain(done.chains[number])),
                  (o.signature, done.signature),
                  (o.share_data + g.block_offset(first), b"".join(pieces[number])),
                  (o.block_hash_tree, b"".join(done.trees[number])))
        server = servers[server_index]
        ok, _ = await server.read_test_write(
            cap.storage_index, _secrets(cap, server, lease_secret),
            {number: ShareVectors((still(prefix.checkstring()),), writes)})
        return ok

    written = await settle(rewrite(s, n) for s, n in records)
    if any(r is False for r in written):
        raise UncoordinatedWriteError("another writer changed this file during the write; "
                                      "read it again and retry")
    placed: dict[int, list[int]] = {}
    for (server, number), outcome in zip(records, written, strict=True):
        if outcome is True:
            placed.setdefault(number, []).append(server)
    if len(placed) < g.needed:
        raise NotEnoughServersError(f"only {len(placed)} shares could be rewritten")
    return Published(done.prefix, placed, done.trees)
