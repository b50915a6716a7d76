"""Mutable files on a grid: map, read, create, replace and modify, over GBS.

How this works: `map_servers` asks every server which shares of the file it holds and reads
each share's first bytes (header, verification key, signature; the share a server most
likely holds is read beside the question, in the same round trip); a share whose key is not
the cap's or whose signature fails is recorded as bad, never used. A map for reading asks
only for that likely share where it is good, and is made complete when anything is amiss;
where a client last saw a file's shares is remembered and read first. `retrieve` reads k
whole shares of the best version (distinct servers first), checks every hash, routes around
a bad share (named in the result) and decodes on the executor. `publish` encodes the next
version (the highest sequence number seen plus one) and writes every share with one
test-and-set per server: each share found is replaced only if it is still what the map saw
there, so a writer who raced us makes the write fail with `UncoordinatedWriteError`;
`replace` and `modify` then map again and publish on top of the newer version (a few
tries). Write enablers and lease secrets are derived per server from the write key, the
client's lease secret and the server's tub ID, exactly as Tahoe-LAFS derives them.
"""

from __future__ import annotations

import contextlib
import os
import random
import threading
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any

import attrs
from twisted.internet import defer, task
from twisted.internet import reactor as _reactor

from ..caps.mutable import (
    MutableCap,
    MutableFormat,
    MutableReadCap,
    MutableVerifierCap,
    MutableWriteCap,
)
from ..crypto import rsa
from ..crypto.hashes import lease_secrets
from ..errors import (
    MistgridError,
    NoSuchFileError,
    NotEnoughSharesError,
    ShareError,
    UncoordinatedWriteError,
)
from ..mutable import version as core
from ..mutable.servermap import (
    NEW_SHARE_TEST,
    Bad,
    Found,
    ServerMap,
    ShareTest,
    Sightings,
    plan_publish,
    seen_in,
    still,
)
from ..placement.happiness import permuted
from ..shares.mutable import HEADER_READ_SIZE, Header, Prefix, Share, parse_header, parse_share
from ..storage.client import MutableSecrets, ShareVectors, StorageClient
from .threads import in_thread
from .uploader import (
    ALLOCATE_PATIENCE,
    WRITE_PATIENCE,
    begin,
    patience,
    settle,
    settle_within,
)

# Seconds at least a server silent while half the others answered is waited for when
# mapping and reading, by route (it is then left out: its shares are not used).
READ_PATIENCE = {"direct": 2.0, "tor": 15.0, "socks": 15.0, "i2p": 45.0}

reactor: Any = _reactor
FIRST_READ = 16 * 1024  # a share's header, keys and signature: all of a small share (a
# directory of about 90 entries, 3-of-10) in the map's one read, so no second round trip
RETRIES = 8
WRITE_PIECE = 2 * 1024 * 1024 - 4096  # share bytes per read-test-write request
LEAD_PIECE = 64 * 1024  # bytes of the share written first, alone, when replacing a version


class NotEnoughServersError(MistgridError):
    """Too few shares of a new version could be placed."""


@attrs.frozen
class Mapped:
    """A servermap, and the first bytes read of each share (a small share's whole)."""

    map: ServerMap
    heads: dict[tuple[int, int], bytes]
    # False: made for reading (a server whose guessed share was good was not asked what
    # else it holds), so a read that finds too few good shares maps again, completely
    complete: bool = True


async def _in(executor: Executor | None, fn: Callable[..., Any], *args: Any) -> Any:
    return fn(*args) if executor is None else await in_thread(executor, fn, *args)


def _signed_part_end(header: Header) -> int:
    o = header.offsets
    return max(o.verification_key_end, o.share_hash_chain if header.prefix.format
               is MutableFormat.SDMF else o.verification_key)


async def _checked_head(server: StorageClient, cap: MutableCap, number: int,
                        data: bytes) -> tuple[bytes, Header]:
    """A share's first bytes (`data`, read more where its signed part goes on), with
    its header, once its verification key is the cap's and its signature holds."""
    header = parse_header(data[:HEADER_READ_SIZE], number)
    end = _signed_part_end(header)
    if len(data) < end and len(data) == FIRST_READ:
        data += await server.read_mutable(cap.storage_index, number, len(data),
                                          end - len(data))
    if len(data) < end:
        raise ShareError(number, "length", "truncated before its signature")
    o, p = header.offsets, header.prefix
    signature = data[o.signature:o.share_hash_chain if p.format
                     is MutableFormat.SDMF else o.verification_key]
    core.verify_signature(p, data[o.verification_key:o.verification_key_end],
                          signature, cap.fingerprint, number)
    return data, header


async def _map_one(server: StorageClient, index: int, cap: MutableCap, servermap: ServerMap,
                   heads: dict[tuple[int, int], bytes], guess: int | None,
                   complete: bool) -> None:
    # The share this server most likely holds is read beside the listing (one round trip
    # instead of two: over Tor, a circuit's latency saved on every mutable read).
    early = None if guess is None else begin(
        server.read_mutable(cap.storage_index, guess, 0, FIRST_READ))
    guessed: bytes | BaseException | None = None
    if early is not None and guess is not None and not complete:
        # for reading, a good guessed share is enough from this server: it is not asked
        # for its list (half the requests); a miss costs the listing's round trip after
        guessed, early = await early, None
        if isinstance(guessed, bytes) and guessed:
            with contextlib.suppress(ShareError):
                data, header = await _checked_head(server, cap, guess, guessed)
                heads[(index, guess)] = data
                servermap.found.append(Found(index, guess, header.prefix))
                servermap.responded.add(index)
                return
    numbers = await server.list_mutable(cap.storage_index)
    servermap.responded.add(index)

    async def one(number: int) -> None:
        data = guessed if number == guess else None
        if early is not None and number == guess:
            data = await early
        if not isinstance(data, bytes):
            data = await server.read_mutable(cap.storage_index, number, 0, FIRST_READ)
        try:
            data, header = await _checked_head(server, cap, number, data)
        except ShareError as err:
            servermap.bad.append(Bad(index, number, _reason(err), data[:57]))
            return
        heads[(index, number)] = data
        servermap.found.append(Found(index, number, header.prefix))

    await settle(one(n) for n in sorted(numbers))


async def map_servers(servers: Sequence[StorageClient], cap: MutableCap,
                      expect: int = 0, complete: bool = True,
                      sightings: Sightings | None = None) -> Mapped:
    """Which server holds which share of which version. `expect`: the shares a file of
    this grid usually has (its N); the server at position p of the file's permuted order
    is read for share p while it lists its shares, as publishing puts share p there.
    0 (a new file: nothing to read) guesses nothing. `sightings`: where this client saw
    the file's shares last (those are read instead; what this map sees is added).
    `complete` False (for reading): a server whose guessed share is good is not asked
    what else it holds."""
    servermap = ServerMap()
    heads: dict[tuple[int, int], bytes] = {}
    guesses: dict[int, int] = {}
    seeds = [s.permutation_seed for s in servers]
    if expect:
        order = permuted(seeds, cap.storage_index)
        guesses = {server: number for number, server in enumerate(order[:expect])}
    if sightings is not None:
        seen = sightings.of(cap.storage_index)
        for index, seed in enumerate(seeds):
            if seed in seen:
                number = seen[seed]
                if number is None:
                    guesses.pop(index, None)  # it held none: it is only asked its list
                else:
                    guesses[index] = number
    # a server that stays silent while the others answered is left out of the map
    await settle_within((_map_one(s, i, cap, servermap, heads, guesses.get(i), complete)
                         for i, s in enumerate(servers)), patience(READ_PATIENCE, servers))
    if sightings is not None:
        # a server that held none is worth remembering only where it would be guessed at
        guessed = {seeds[index] for index in guesses} | set(seen)
        sightings.learn(cap.storage_index, {
            seed: number for seed, number in seen_in(servermap, seeds).items()
            if number is not None or seed in guessed})
    if not complete and (servermap.bad or len(servermap.versions()) != 1
                         or not servermap.recoverable()):
        # shares of more than one version (a write under way or interrupted), a bad one,
        # or too few: then every server is asked for everything it holds
        return await map_servers(servers, cap, expect, sightings=sightings)
    return Mapped(servermap, heads, complete)


@attrs.frozen
class Retrieved:
    data: bytes
    prefix: Prefix
    bad: list[Bad]  # shares that failed a check (named, not used)
    # each share's copy (not signed: one read across a racing replacement can be torn)
    encrypted_private_keys: tuple[bytes, ...]


READ_ATTEMPTS = 4
# Checks a share fails when it was replaced between the map and the read.
_CHANGED_CHECKS = ("block hash", "share hash chain", "signature", "verification key",
                   "length", "header", "offsets", "share number")


async def retrieve(servers: Sequence[StorageClient], cap: MutableCap,
                   executor: Executor | None = None, mapped: Mapped | None = None
                   ) -> Retrieved:
    """The best recoverable version's plaintext. When shares of the version the map chose
    fail their checks (a writer replaced them between the map and the reads), the servers
    are mapped again and the newer version is read (a few times)."""
    for attempt in range(READ_ATTEMPTS):
        try:
            return await _retrieve_once(servers, cap, executor, mapped)
        except NotEnoughSharesError as err:
            if mapped is not None and not mapped.complete and attempt < READ_ATTEMPTS - 1:
                mapped = None  # the other shares the servers hold were not asked for
                continue
            if not _torn(err) or attempt == READ_ATTEMPTS - 1:
                raise
            mapped = None
            # a writer is replacing the shares now: let it finish before mapping again
            await _pause(random.uniform(0.02, 0.2) * (attempt + 1))
    raise AssertionError("unreachable")


def _torn(err: NotEnoughSharesError) -> bool:
    """Whether shares failed as shares replaced between the map and the reads do."""
    return any(p.check.startswith(_CHANGED_CHECKS) for p in err.problems)


async def _retrieve_once(servers: Sequence[StorageClient], cap: MutableCap,
                         executor: Executor | None, mapped: Mapped | None) -> Retrieved:
    if isinstance(cap, MutableVerifierCap):
        raise MistgridError("a verify cap cannot read a file")
    mapped = mapped or await map_servers(servers, cap)
    servermap = mapped.map
    best = servermap.best()
    if best is None:
        if not servermap.found and not servermap.bad:
            raise NoSuchFileError("no share of this mutable file was found on any server "
                                  f"({len(servermap.responded)} of {len(servers)} answered)")
        needed = max((r.prefix.needed for r in servermap.found), default=1)
        raise NotEnoughSharesError(len({r.number for r in servermap.found}), needed,
                                   [ShareError(b.number, b.reason) for b in servermap.bad])
    prefix = servermap.prefix_of(best)
    holders = servermap.holders(best)
    good: dict[int, Share] = {}
    bad: list[Bad] = list(servermap.bad)
    used: set[int] = set()

    async def fetch(number: int, server: int) -> None:
        head = mapped.heads[(server, number)]
        header = parse_header(head[:HEADER_READ_SIZE], number)
        data = head[:header.offsets.end]
        if len(data) < header.offsets.end:
            data += await servers[server].read_mutable(
                cap.storage_index, number, len(data), header.offsets.end - len(data))
        share = await _in(executor, checked_share, data, number)
        good[number] = share

    numbers = sorted(holders, key=lambda n: (n >= prefix.needed, n))
    queue = [(n, s) for n in numbers for s in holders[n]]
    while len(good) < prefix.needed and queue:
        batch: list[tuple[int, int]] = []
        for number, server in list(queue):
            if len(good) + len(batch) >= prefix.needed:
                break
            if number in good or any(b[0] == number for b in batch):
                continue
            if server in used and any(s not in used for n, s in queue if n == number):
                continue
            batch.append((number, server))
        if not batch:
            batch = [queue[0]]
        for item in batch:
            queue.remove(item)
            used.add(item[1])
        results = await settle_within((fetch(n, s) for n, s in batch),
                                      patience(READ_PATIENCE, servers))
        for (number, server), result in zip(batch, results, strict=True):
            if isinstance(result, BaseException):
                reason = _reason(result)
                bad.append(Bad(server, number, reason))
                if isinstance(result, ShareError):
                    defer.Deferred.fromCoroutine(_advise(servers[server], cap, number,
                                                         reason))
        queue = [(n, s) for n, s in queue if n not in good]
    if len(good) < prefix.needed:
        raise NotEnoughSharesError(len(good), prefix.needed,
                                   [ShareError(b.number, b.reason) for b in bad])
    data = await _in(executor, core.decode_version, good, _readkey(cap))
    keys = tuple(dict.fromkeys(share.encrypted_private_key for share in good.values()))
    return Retrieved(data, prefix, bad, keys)


async def _key_of(got: Retrieved, cap: MutableWriteCap,
                  executor: Executor | None) -> core.SigningKey | None:
    """The signing key from the first share copy of it that is this file's key."""
    for encrypted in got.encrypted_private_keys:
        try:
            key: core.SigningKey = await _in(executor, core.recover_signing_key, cap,
                                             encrypted)
            return key
        except MistgridError:
            continue
    return None


def _reason(err: BaseException) -> str:
    """What was wrong with a share, without its number (kept beside it)."""
    if isinstance(err, ShareError):
        return err.check + (f": {err.detail}" if err.detail else "")
    return str(err) or err.__class__.__name__


async def _advise(server: StorageClient, cap: MutableCap, number: int, reason: str) -> None:
    with contextlib.suppress(Exception):  # advisory only
        await server.advise_corrupt_mutable(cap.storage_index, number, reason[:1000])


def _readkey(cap: MutableCap) -> bytes:
    if isinstance(cap, MutableWriteCap):
        return cap.readkey
    if isinstance(cap, MutableReadCap):
        return cap.readkey
    raise MistgridError("a verify cap cannot read a file")


def checked_share(data: bytes, number: int) -> Share:
    share = parse_share(data, number)
    core.verify_hashes(share)
    return share


@attrs.frozen
class Published:
    prefix: Prefix
    placed: dict[int, list[int]]  # share number -> servers
    # every share's block hash tree, when the writer built them all (MDMF): what a next
    # in-place write of this very version needs, without reading and checking them
    trees: dict[int, list[bytes]] | None = None


def _learnt(sightings: Sightings | None, servers: Sequence[StorageClient], cap: MutableCap,
            published: Published) -> Published:
    """`published`, once `sightings` (if any) knows where the write put the shares."""
    if sightings is not None:
        seen: dict[bytes, int | None] = {}
        for number, holders in sorted(published.placed.items(), reverse=True):
            for server in holders:
                seen[servers[server].permutation_seed] = number  # the lowest, last
        sightings.learn(cap.storage_index, seen)
    return published


async def publish(servers: Sequence[StorageClient], cap: MutableWriteCap,
                  key: core.SigningKey, plaintext: bytes, needed: int, total: int,
                  lease_secret: bytes, mapped: Mapped, executor: Executor | None = None,
                  segment_size: int | None = None) -> Published:
    """Write the next version over what `mapped` saw. UncoordinatedWriteError when any
    share has changed since; NotEnoughServersError when fewer than k shares landed."""
    servermap = mapped.map
    seqnum = servermap.highest_seqnum() + 1
    shares: list[Share] = await _in(executor, core.encode_version, cap, key, plaintext,
                                    seqnum, needed, total, _salt, segment_size)
    packed = {s.number: s.pack() for s in shares}
    order = permuted([s.permutation_seed for s in servers], cap.storage_index)
    usable = servermap.responded if not servermap.is_empty() or servermap.responded else None
    plan = plan_publish(servermap, order, total, usable)
    checkstring = shares[0].prefix.checkstring()

    # A share of more than one request first gets a checkstring only this writer knows
    # (a random root hash), which each of its later requests tests, and the real one
    # last: a writer that maps it half-written, and tests what it saw there, cannot
    # then write over it once it is whole (the checkstring alone, the same half-written
    # and whole, would let it: the change this writer reports done would be lost). A new
    # file has no older version for such a writer to build on: its shares go without.
    canary = checkstring if servermap.is_empty() else \
        checkstring[:9] + os.urandom(len(checkstring) - 9)  # version and seqnum kept

    async def piece(index: int, number: int, start: int, data: bytes,
                    test: ShareTest) -> bool:
        server = servers[index]
        renew, cancel = lease_secrets(lease_secret, cap.storage_index, server.tub_id)
        secrets = MutableSecrets(cap.write_enabler(server.tub_id), renew, cancel)
        ok, _ = await server.read_test_write(cap.storage_index, secrets, {
            number: ShareVectors((test,), ((start, data),))})
        return ok

    def head(number: int, end: int) -> bytes:
        """The share's first bytes, up to `end`: with the canary if more are to come."""
        share = packed[number]
        if end >= len(share) or canary == checkstring:
            return share[:end]
        return b"".join((canary, memoryview(share)[len(canary):end]))  # one copy

    async def rest(index: int, number: int, start: int) -> bool:
        """The share from `start` on (its head is in), in pieces at once, each testing
        the canary; then the real checkstring over it."""
        share = packed[number]
        if start >= len(share):
            return True
        results = await settle(piece(index, number, at, share[at:at + WRITE_PIECE],
                                     still(canary))
                               for at in range(start, len(share), WRITE_PIECE))
        for result in results:
            if isinstance(result, BaseException):
                raise result  # this server failed: its share may go elsewhere
            if not result:
                return False  # another writer took the share over half-way: a conflict
        return canary == checkstring or await piece(index, number, 0, checkstring,
                                                    still(canary))

    async def write(index: int, number: int, test: ShareTest) -> bool:
        """One share, in pieces of at most WRITE_PIECE bytes: the first (with the header)
        tests what the map saw; then the rest at once."""
        return await piece(index, number, 0, head(number, WRITE_PIECE), test) and \
            await rest(index, number, WRITE_PIECE)

    # The first placement's first bytes are written alone: two writers racing from the
    # same map both test them, one loses there and has changed nothing (no split of the
    # shares between two half-written versions from that race). They are only the
    # header's first LEAD_PIECE bytes, so the rest of the write waits a short round trip.
    plan = sorted(plan, key=lambda p: (p.test == NEW_SHARE_TEST, p.number, p.server))
    if servermap.is_empty():  # a new file: nothing to race over, everything at once
        # (perhaps unmapped, so a first contact, as an immutable upload's allocate: a
        # server silent while the others answer has its shares placed elsewhere)
        results = await settle_within((write(p.server, p.number, p.test) for p in plan),
                                      patience(ALLOCATE_PATIENCE, servers))
    elif plan:
        lead = plan[0]
        first = (await settle([piece(lead.server, lead.number, 0,
                                     head(lead.number, LEAD_PIECE), lead.test)]))[0]
        if first is False:
            raise UncoordinatedWriteError(
                "another writer changed this file first (its first share was not what "
                "was read); read it again and retry")

        async def finish_lead() -> bool:
            if isinstance(first, BaseException):
                raise first
            return await rest(lead.server, lead.number, LEAD_PIECE)

        results = await settle_within(
            [finish_lead(), *(write(p.server, p.number, p.test) for p in plan[1:])],
            patience(WRITE_PATIENCE, servers))
    else:
        results = []
    placed: dict[int, list[int]] = {}
    conflicts = []
    for placement, result in zip(plan, results, strict=True):
        if result is True:
            placed.setdefault(placement.number, []).append(placement.server)
        elif result is False:
            conflicts.append(placement)
    if conflicts:
        raise UncoordinatedWriteError(
            f"another writer changed this file during the write ({len(conflicts)} share(s) "
            "were not what was read); read it again and retry")
    # Shares whose server failed go to the servers that took theirs (fewest first), as
    # Tahoe does, so a server lost between the map and the write costs no share.
    failed_servers = {p.server for p, r in zip(plan, results, strict=True)
                      if isinstance(r, BaseException)}
    working = [p.server for p in plan if p.server not in failed_servers]
    for number in sorted({p.number for p in plan} - set(placed)):
        load = {s: sum(s in holders for holders in placed.values()) for s in set(working)}
        for server in sorted(load, key=lambda s: (load[s], s)):
            if server in placed.get(number, []):
                continue
            again = await settle([write(server, number, NEW_SHARE_TEST)])
            if again[0] is True:
                placed.setdefault(number, []).append(server)
                break
    if len(placed) < needed:
        failures = [str(r) for r in results if isinstance(r, BaseException)]
        raise NotEnoughServersError(
            f"only {len(placed)} of {total} shares could be placed ({needed} needed)"
            + (f": {failures[0]}" if failures else ""))
    return Published(shares[0].prefix, placed)


def _salt() -> bytes:
    return os.urandom(16)


async def create(servers: Sequence[StorageClient], fmt: MutableFormat, key: core.SigningKey,
                 plaintext: bytes, needed: int, total: int, lease_secret: bytes,
                 executor: Executor | None = None) -> MutableWriteCap:
    """A new mutable file holding `plaintext`; its write cap."""
    cap = key.cap(fmt)
    mapped = await map_servers(servers, cap)
    if not mapped.map.responded:
        raise NotEnoughServersError("no storage server answered")
    await publish(servers, cap, key, plaintext, needed, total, lease_secret, mapped, executor)
    return cap


async def modify(servers: Sequence[StorageClient], cap: MutableWriteCap,
                 change: Callable[[bytes | None], bytes | Awaitable[bytes]],
                 needed: int, total: int, lease_secret: bytes,
                 executor: Executor | None = None,
                 key: core.SigningKey | None = None, needs_current: bool = True,
                 sightings: Sightings | None = None) -> Published:
    """Publish `change(current plaintext)` as the next version; on an uncoordinated write,
    map again and apply `change` to the newer version (up to RETRIES times, after a short
    random pause). As with Tahoe's modifiers, `change` must be idempotent: a racing write
    that was reported as a conflict may still have landed, so the newer version it sees
    may already hold its own change (replacing, and writing bytes at an offset, are).
    `needs_current=False` (a whole replacement): the current contents are not read, and a
    file left with no recoverable version (writers who raced each other on too few
    servers) is still replaced. `sightings`: as for `map_servers`."""
    last: bytes | None = None  # what the previous, conflicted, attempt published
    for attempt in range(RETRIES + 1):
        mapped = await map_servers(servers, cap, total, sightings=sightings)
        servermap = mapped.map
        current: bytes | None = None
        k, n = needed, total
        best = servermap.best()
        if best is None and last is not None and servermap.found:
            # Racing writers left no version whole: put ours back (one writer's whole
            # data), and the other writer's next try works on top of it.
            newest = max(servermap.found, key=lambda r: r.prefix.version_id).prefix
            try:
                return _learnt(sightings, servers, cap, await publish(
                    servers, cap, key or await _signing_key(servers, cap, mapped, executor),
                    last, newest.needed, newest.total, lease_secret, mapped, executor))
            except UncoordinatedWriteError:
                if attempt == RETRIES:
                    raise
                await _pause(random.uniform(0.05, 0.5) * (attempt + 1))
                continue
        if best is not None:
            prefix = servermap.prefix_of(best)
            k, n = prefix.needed, prefix.total
            if needs_current:
                try:
                    got = await retrieve(servers, cap, executor, mapped)
                except NotEnoughSharesError as err:
                    if not _torn(err) or attempt == RETRIES:
                        raise
                    await _pause(random.uniform(0.05, 0.5) * (attempt + 1))
                    continue
                current = got.data
                if key is None:  # from the shares just read and checked
                    key = await _key_of(got, cap, executor)
                    if key is None:  # torn reads: a writer replaced the shares meanwhile
                        if attempt == RETRIES:
                            raise MistgridError("no share read gave this file's signing key")
                        continue
        elif servermap.found and not needs_current:
            newest = max(servermap.found, key=lambda r: r.prefix.version_id).prefix
            k, n = newest.needed, newest.total
        elif not servermap.is_empty():
            await retrieve(servers, cap, executor, mapped)  # raises: nothing recoverable
        if key is None:
            try:
                key = await _signing_key(servers, cap, mapped, executor)
            except NoSuchFileError:
                if not (servermap.found or servermap.bad) or attempt == RETRIES:
                    raise
                # the shares changed under the map, or are half-written (a racing
                # writer's, each still under its canary): map again
                await _pause(random.uniform(0.05, 0.5) * (attempt + 1))
                continue
        new = change(current)
        new_data = await new if not isinstance(new, bytes) else new
        last = new_data
        try:
            return _learnt(sightings, servers, cap, await publish(
                servers, cap, key, new_data, k, n, lease_secret, mapped, executor))
        except UncoordinatedWriteError:
            if attempt == RETRIES:
                raise
            await _pause(random.uniform(0.05, 0.5) * (attempt + 1))
    raise AssertionError("unreachable")


async def _pause(seconds: float) -> None:
    await task.deferLater(reactor, seconds, lambda: None)


async def _signing_key(servers: Sequence[StorageClient], cap: MutableWriteCap,
                       mapped: Mapped, executor: Executor | None) -> core.SigningKey:
    """The file's signing key, from the first share (with a good signature) whose
    encrypted copy decrypts to it."""
    problems = []
    for record in sorted(mapped.map.found, key=lambda r: r.prefix.version_id, reverse=True):
        head = mapped.heads[(record.server, record.number)]
        header = parse_header(head[:HEADER_READ_SIZE], record.number)
        o = header.offsets
        try:
            encrypted = head[o.private_key:o.private_key_end]
            if len(encrypted) < o.private_key_end - o.private_key:
                encrypted = await servers[record.server].read_mutable(
                    cap.storage_index, record.number, o.private_key,
                    o.private_key_end - o.private_key)
            result: core.SigningKey = await _in(executor, core.recover_signing_key, cap,
                                                encrypted)
            return result
        except MistgridError as err:
            problems.append(str(err))
        except Exception as err:  # a server that stopped answering: try the next share
            problems.append(err.__class__.__name__)
    raise NoSuchFileError("no share of this mutable file with its signing key was found"
                          + (f" ({problems[0]})" if problems else ""))


class KeyPool:
    """RSA keys made ahead of time, so a new mutable file does not wait for key
    generation. With an executor, the pool is refilled on a thread of its own at the
    lowest CPU priority (on Linux), so making keys in the background never slows what a
    person is waiting for; a key asked for when none is ready is made on the executor.
    `size` 0: every key is made when asked for (still off the reactor)."""

    def __init__(self, size: int, executor: Executor | None) -> None:
        self.size = size
        self._executor = executor
        self._background: Executor | None = None
        self._ready: list[core.SigningKey] = []
        self._making = 0
        self._stopped = False

    def start(self) -> None:
        if self.size and self._executor is not None and self._background is None:
            self._background = ThreadPoolExecutor(
                1, thread_name_prefix="mistgrid-keys", initializer=_lowest_priority)
            reactor.addSystemEventTrigger("before", "shutdown", self.stop)
        self._fill()

    def stop(self) -> None:
        """Make no more keys (one being made is finished, quickly, by its thread)."""
        self._stopped = True
        if self._background is not None:
            self._background.shutdown(wait=False, cancel_futures=True)

    def _fill(self) -> None:
        while not self._stopped and len(self._ready) + self._making < self.size:
            self._making += 1
            defer.Deferred.fromCoroutine(self._make_one())

    async def _make_one(self) -> None:
        try:
            key = await _in(self._background or self._executor, _new_key)
            self._ready.append(key)
        except defer.CancelledError:
            pass  # stopped (the node is stopping): take() makes a key when asked
        finally:
            self._making -= 1

    async def take(self) -> core.SigningKey:
        if self._ready:
            key = self._ready.pop(0)
            self._fill()
            return key
        return await _in(self._executor, _new_key)  # type: ignore[no-any-return]


def _lowest_priority() -> None:
    """Lower the calling thread's CPU priority (Linux: a thread has its own nice value)."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)


def _new_key() -> core.SigningKey:
    return core.SigningKey.of(rsa.generate())
