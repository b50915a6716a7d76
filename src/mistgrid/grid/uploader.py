"""Upload an immutable file to storage servers: place, allocate, stream, verify happiness.

How this works: the convergent key needs one pass over the file; then shares are spread
round-robin over the servers in this storage index's permuted order and allocated on all
servers at once. Servers that fail are dropped and their shares offered to the others. If
the servers that accepted cannot reach `happy` (servers-of-happiness), every allocation is
aborted and the upload fails saying why. Otherwise the file goes through a pipeline: with
an executor, a feeder thread reads the file and runs the encoder (whose segments encode on
the executor's threads) while the reactor sends earlier chunks' writes, up to `WINDOW`
chunks in flight (more over Tor and I2P, whose round trips are long: a chunk lands when
all its servers have it, so a short window leaves circuits idle). Each chunk's writes go
to all servers in parallel, one request per share (its blocks of that chunk are
contiguous), so the upload runs at the pace of the slowest server, not the sum of all; a
server that fails mid-way costs only its shares while happiness holds. The writes that
complete the shares go last, after everything else landed and happiness was checked once
more. A server that stops answering while the others answer (hung: SIGSTOP, a wedged
route) is given up on after a patience that depends on its route (`settle_within`), so it
costs seconds, not its requests' two-minute timeout: at allocation its shares go to other
servers; mid-way it costs its shares.
"""

from __future__ import annotations

import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import IO, Any, TypeVar

import attrs
from twisted.internet import defer
from twisted.internet import reactor as _reactor

from ..caps.immutable import ChkCap, ChkVerifierCap, LiteralCap
from ..crypto.hashes import HASH_SIZE, lease_secrets, netstring, storage_index_of, tagged_hash
from ..encoding.params import LIT_MAX_SIZE, EncodingParams
from ..encoding.upload import ChkEncoder, ShareWrite, convergent_key, random_key
from ..errors import MistgridError
from ..placement.happiness import happiness, permuted, spread
from ..storage.client import StorageClient, UploadSecrets
from .threads import in_thread

T = TypeVar("T")
reactor: Any = _reactor
READ_SIZE = 1024 * 1024
INLINE_SIZE = 64 * 1024  # files this small are encoded on the reactor thread
# Chunks of READ_SIZE plaintext whose writes may be in flight at once, by route (8 over
# Tor: 20 MiB to 4 onion servers in 1.5-1.9 s, against 2.0-3.3 s with 3).
WINDOW = {"direct": 3.0, "tor": 8.0, "socks": 8.0, "i2p": 8.0}
# Seconds at least a silent server gets once half have answered, by route: a first
# connection over Tor, and more so I2P, can take tens of seconds without anything wrong.
ALLOCATE_PATIENCE = {"direct": 5.0, "tor": 30.0, "socks": 30.0, "i2p": 90.0}
WRITE_PATIENCE = {"direct": 10.0, "tor": 30.0, "socks": 30.0, "i2p": 90.0}


def patience(table: dict[str, float], servers: Iterable[StorageClient]) -> float:
    """The longest patience (or window) any of `servers`' routes asks for."""
    return max((table.get(route_of(s), max(table.values())) for s in servers),
               default=table["direct"])


def route_of(server: StorageClient) -> str:
    try:
        return server.route
    except Exception:  # a test double, or a NURL the connector no longer routes
        return "i2p"


class UploadUnhappyError(MistgridError):
    """Not enough servers accepted shares to meet happiness."""


async def _caught(coro: Awaitable[T]) -> T | BaseException:
    try:
        return await coro
    except Exception as err:
        return err


def begin(coro: Awaitable[T]) -> defer.Deferred[T | BaseException]:
    """Start `coro` now: its result, or the exception it raised, later (never an errback:
    nothing is reported as unhandled when nobody waits for it)."""
    return defer.Deferred.fromCoroutine(_caught(coro))


async def settle(coros: Iterable[Awaitable[T]]) -> list[T | BaseException]:
    """Run all at once; each result or the exception it raised."""
    deferreds = [begin(c) for c in coros]
    results: list[T | BaseException] = await defer.gatherResults(deferreds)
    return results


class HungServerError(MistgridError):
    """A server that stopped answering while the others answered."""


async def settle_within(coros: Iterable[Awaitable[T]], minimum: float,
                        patience: float = 4.0) -> list[T | BaseException]:
    """Like `settle`, but once half have answered, the rest get `patience` times as long
    as that took (at least `minimum` seconds); any still silent then are cancelled and
    count as failed (HungServerError), so one hung server (SIGSTOP, a wedged route) costs
    seconds, not its requests' timeout. With one alone there is nothing to compare: it is
    waited for."""

    deferreds = [begin(c) for c in coros]
    silent = HungServerError("no answer")
    results: list[T | BaseException] = [silent] * len(deferreds)
    pending = set(range(len(deferreds)))
    done: defer.Deferred[None] = defer.Deferred()
    began = time.monotonic()
    timer: list[Any] = []

    def give_up() -> None:
        if done.called:
            return
        for index in sorted(pending):
            results[index] = HungServerError(
                f"no answer in {time.monotonic() - began:.0f} s while the others answered")
        pending.clear()
        done.callback(None)
        for d in deferreds:
            if not d.called:
                d.cancel()

    def finished(value: T | BaseException, index: int) -> None:
        if done.called or index not in pending:
            return
        results[index] = value
        pending.discard(index)
        if not pending:
            done.callback(None)
        elif len(pending) <= len(deferreds) // 2 and not timer:
            delay = max(minimum, patience * (time.monotonic() - began))
            timer.append(reactor.callLater(delay, give_up))

    for index, d in enumerate(deferreds):
        d.addCallback(finished, index)
    if deferreds:
        await done
    for call in timer:
        if call.active():
            call.cancel()
    return results


@attrs.define
class _Placement:
    servers: list[StorageClient]
    owner: dict[int, int]  # share number -> server position
    have: dict[int, set[int]]  # server position -> shares it has or will have
    to_write: set[int]


async def _place(servers: list[StorageClient], storage_index: bytes, total: int, size: int,
                 upload_secrets: list[UploadSecrets],
                 repairing: Repairing | None = None) -> _Placement:
    """With `repairing`: shares found corrupt count as missing and go to other servers,
    and the missing shares go first to the servers that answered the check holding no
    share (in permuted order), so the repair spreads the file as widely as it can."""
    order = permuted([s.permutation_seed for s in servers], storage_index)
    alive = list(order)
    distrust = repairing.distrust if repairing else frozenset()
    wanted = {n: alive[p] for n, p in enumerate(spread(total, len(alive)))}
    if repairing is not None and repairing.held is not None:
        held = repairing.held
        good = {p: {n for n in ns if (p, n) not in distrust} for p, ns in held.items()}
        present = {n for ns in good.values() for n in ns}
        answering = [p for p in order if p in held]
        empty = [p for p in answering if not good[p]]
        by_load = sorted(answering, key=lambda p: (len(good[p]), answering.index(p)))
        missing = [n for n in range(total) if n not in present]
        targets = empty + [p for p in by_load if p not in empty]
        wanted = {}
        for i, number in enumerate(missing):
            choices = [p for p in targets if (p, number) not in distrust] or targets
            if choices:
                wanted[number] = choices[i % len(choices)]
    owner: dict[int, int] = {}
    have: dict[int, set[int]] = {}
    to_write: set[int] = set()
    existing: dict[int, int] = {}  # share number -> a server that says it holds it already
    # Each round asks only servers not yet failed, so this ends; a grid with many servers
    # gone (stopped for good, still listed) needs as many rounds as it takes.
    for _round in range(len(servers) + 1):
        by_server: dict[int, set[int]] = {}
        for number, position in wanted.items():
            by_server.setdefault(position, set()).add(number)
        positions = list(by_server)
        answers = await settle_within(
            (servers[p].allocate(storage_index, by_server[p], size, upload_secrets[p])
             for p in positions), patience(ALLOCATE_PATIENCE, servers))
        leftover: list[int] = []
        for position, answer in zip(positions, answers, strict=True):
            if isinstance(answer, BaseException):
                alive = [p for p in alive if p != position]
                leftover.extend(by_server[position])
                continue
            already, allocated = answer
            already = {n for n in already if (position, n) not in distrust}
            for number in already:  # every share it holds, asked for or not (as Tahoe)
                if 0 <= number < total:
                    existing.setdefault(number, position)
            for number in by_server[position]:
                if number in existing and number not in already | allocated:
                    continue  # held elsewhere already
                if number in already | allocated:
                    owner[number] = position
                    have.setdefault(position, set()).add(number)
                    if number in allocated:
                        to_write.add(number)
                else:
                    leftover.append(number)
        leftover = [n for n in leftover if n not in existing]
        others = [p for p in alive if p not in have] or alive
        if not leftover or not others:
            break
        wanted = {}
        for i, number in enumerate(sorted(leftover)):
            # never back to a server whose copy of that share is corrupt
            choices = [p for p in others if (p, number) not in distrust] or \
                [p for p in alive if (p, number) not in distrust]
            if choices:
                wanted[number] = choices[i % len(choices)]
        if not wanted:
            break
    # A share some server holds already is not written again elsewhere: that allocation
    # is given back (a repeat upload of a file another client placed differently).
    redundant = []
    for number, position in existing.items():
        if number in to_write and owner.get(number) != position:
            redundant.append((owner[number], number))
            have[owner[number]].discard(number)
            to_write.discard(number)
        owner[number] = position
        have.setdefault(position, set()).add(number)
    await settle_within((servers[p].abort(storage_index, n, upload_secrets[p].upload)
                         for p, n in redundant), patience(ALLOCATE_PATIENCE, servers))
    return _Placement(servers, owner, {p: ns for p, ns in have.items() if ns}, to_write)


@attrs.frozen
class Repairing:
    """An upload that repairs a file: its cap is known (a read cap, or a verify cap: then
    the ciphertext is re-encoded), and some shares that servers hold are corrupt (server
    position, share number)."""

    cap: ChkCap | ChkVerifierCap
    distrust: frozenset[tuple[int, int]] = frozenset()
    # what each server that answered the check holds (server position -> share numbers)
    held: dict[int, frozenset[int]] | None = None
    # encode only the shares put back, taking the others' block tree roots from their
    # servers (False: encode every share, as after a root that proved wrong)
    reuse_roots: bool = True


class WrongRootsError(MistgridError):
    """The block tree roots servers gave for the shares they hold did not give the cap
    (from `repair` only when its source cannot be read again: repair again, from a
    source that can, with `reuse_roots` False)."""


def reads_on_a_thread(size: int, executor: Executor | None) -> bool:
    """Whether an upload or repair of `size` bytes reads its source on a thread of its
    own (else on the reactor, where a read must never block)."""
    return executor is not None and size > INLINE_SIZE


async def upload(source: IO[bytes], size: int, servers: list[StorageClient],
                 params: EncodingParams, happy: int, convergence: bytes | None,
                 progress: Callable[[int], None] | None = None,
                 executor: Executor | None = None, lease_secret: bytes | None = None
                 ) -> LiteralCap | ChkCap:
    """Upload `size` bytes from `source` (seekable); returns the cap. `lease_secret`: the
    client's lease secret, from which each server's lease secrets are derived as Tahoe
    derives them (so `check --add-lease` renews them later); random ones without it."""
    if size <= LIT_MAX_SIZE:
        return LiteralCap(source.read(size))
    cap = await _run(source, size, servers, params, happy, convergence, progress, executor,
                     lease_secret, None)
    assert isinstance(cap, ChkCap)
    return cap


async def repair(source: IO[bytes], size: int, servers: list[StorageClient],
                 params: EncodingParams, repairing: Repairing,
                 executor: Executor | None = None, lease_secret: bytes | None = None,
                 convergence: bytes | None = None) -> None:
    """Put back the missing shares of `repairing.cap`'s file from its plaintext (a read
    cap) or ciphertext (a verify cap) in `source`: the same key or ciphertext gives the
    same shares, and nothing is completed unless the cap comes out the same. Any
    placement that puts shares back is better than none: no happiness floor.
    `convergence`: as for `upload` (a repeated repair of a read cap finishes its own
    partly written shares)."""
    try:
        await _run(source, size, servers, params, 1, convergence, None, executor,
                   lease_secret, repairing)
    except WrongRootsError:  # a held share's stored root is not its own: encode every share
        if not source.seekable():
            raise
        source.seek(0)
        await _run(source, size, servers, params, 1, convergence, None, executor,
                   lease_secret, attrs.evolve(repairing, reuse_roots=False))


async def _run(source: IO[bytes], size: int, servers: list[StorageClient],
               params: EncodingParams, happy: int, convergence: bytes | None,
               progress: Callable[[int], None] | None, executor: Executor | None,
               lease_secret: bytes | None, repairing: Repairing | None
               ) -> ChkCap | ChkVerifierCap:
    if not servers:
        raise UploadUnhappyError("no storage servers are connected")
    if not reads_on_a_thread(size, executor):
        # a small file: hashing and encoding it take less than handing it to threads
        return await _upload(source, size, servers, params, happy, convergence, progress,
                             None, None, lease_secret, repairing)
    # One thread of its own reads and feeds: feed waits on the executor's segment jobs.
    with ThreadPoolExecutor(1, thread_name_prefix="mistgrid-upload") as feeder:
        return await _upload(source, size, servers, params, happy, convergence, progress,
                             executor, feeder, lease_secret, repairing)


async def _upload(source: IO[bytes], size: int, servers: list[StorageClient],
                  params: EncodingParams, happy: int, convergence: bytes | None,
                  progress: Callable[[int], None] | None, executor: Executor | None,
                  feeder: Executor | None, lease_secret: bytes | None = None,
                  repairing: Repairing | None = None) -> ChkCap | ChkVerifierCap:
    async def off_reactor(fn: Callable[..., T], *args: Any) -> T:
        if feeder is None:
            return fn(*args)
        return await in_thread(feeder, fn, *args)

    def key_pass() -> bytes:
        key = convergent_key(convergence or b"", params, size,
                             iter(lambda: source.read(READ_SIZE), b""))
        source.seek(0)
        return key

    key: bytes | None  # None: re-encoding a verify cap's ciphertext
    if repairing is not None:
        key = repairing.cap.key if isinstance(repairing.cap, ChkCap) else None
        storage_index = repairing.cap.storage_index
    else:
        key = random_key() if convergence is None else await off_reactor(key_pass)
        storage_index = storage_index_of(key)
    encoder = ChkEncoder(key, size, params, executor)
    upload_secrets = [UploadSecrets(upload_secret(key, convergence, server),
                                    *_lease_secrets(lease_secret, storage_index, server))
                      for server in servers]
    placement = await _place(servers, storage_index, params.total, encoder.share_size,
                             upload_secrets, repairing)
    if repairing is not None and repairing.reuse_roots:
        roots = await _held_roots(placement, repairing, storage_index,
                                 encoder.share_layout.block_hashes)
        if roots:
            encoder = ChkEncoder(key, size, params, executor, roots=roots)

    def finish() -> tuple[list[ShareWrite], ChkCap | ChkVerifierCap]:
        cap: ChkCap | ChkVerifierCap
        if key is None:
            writes, cap = encoder.finish_verifier(storage_index)
        else:
            writes, chk = encoder.finish()
            cap = chk if repairing is None or isinstance(repairing.cap, ChkCap) \
                else chk.verifier()
        if repairing is not None and cap != repairing.cap:
            if len(encoder.shares) < params.total:
                raise WrongRootsError("a held share's block hash root is wrong")
            raise MistgridError("re-encoding this file did not give the same shares (its "
                                "UEB was written by other rules); nothing was repaired")
        return writes, cap

    def next_chunk() -> tuple[int, list[ShareWrite]]:
        chunk = source.read(READ_SIZE)
        return len(chunk), encoder.feed(chunk) if chunk else []

    in_flight: deque[tuple[defer.Deferred[None], int]] = deque()
    # A chunk in flight holds its writes: a repair writing a few of the N shares may
    # have as many more chunks in flight, for the same bytes as a whole upload.
    window = int(patience(WINDOW, placement.servers) * params.total
                 / max(1, len(placement.to_write)))

    async def landed() -> None:  # the oldest chunk's writes are done
        sending, length = in_flight.popleft()
        await sending
        _check_happy(placement, happy, params.total)  # servers lost mid-way: stop now
        if progress is not None:
            progress(length)

    try:
        _check_happy(placement, happy, params.total)
        if size <= READ_SIZE:  # one chunk: all of each share in one write where it can
            chunk = await off_reactor(source.read, size)
            writes = await off_reactor(encoder.feed, chunk)
            more, cap = await off_reactor(finish)
            _check_happy(placement, happy, params.total)
            await _send(placement, storage_index, upload_secrets, writes + more)
            _check_happy(placement, happy, params.total)
            if progress is not None:
                progress(size)
            return cap
        while True:
            length, writes = await off_reactor(next_chunk)
            if not length:
                break
            in_flight.append((defer.Deferred.fromCoroutine(
                _send(placement, storage_index, upload_secrets, writes)), length))
            while len(in_flight) >= window:
                await landed()
        while in_flight:
            await landed()
        writes, cap = await off_reactor(finish)
        # The last writes complete the shares (they become visible): only while happy.
        _check_happy(placement, happy, params.total)
        await _send(placement, storage_index, upload_secrets, writes)
        _check_happy(placement, happy, params.total)
    except BaseException:
        await settle(sending for sending, _ in in_flight)
        await _abort(placement, storage_index, upload_secrets)
        raise
    return cap


async def _held_roots(placement: _Placement, repairing: Repairing, storage_index: bytes,
                      offset: int) -> dict[int, bytes]:
    """The root of each held (not rewritten) share's block hash tree, as a server holding
    it has it (the first hash of the share's block hash region): 32 bytes read a share."""
    holder = {n: p for n, p in placement.owner.items() if n not in placement.to_write}
    for position, numbers in (repairing.held or {}).items():
        for number in numbers:
            if number not in placement.to_write and (position, number) not in \
                    repairing.distrust:
                holder.setdefault(number, position)
    held = sorted(holder.items())
    answers = await settle_within(
        (placement.servers[p].read(storage_index, n, offset, HASH_SIZE) for n, p in held),
        patience(ALLOCATE_PATIENCE, placement.servers))
    return {n: answer for (n, _), answer in zip(held, answers, strict=True)
            if isinstance(answer, bytes) and len(answer) == HASH_SIZE}


def upload_secret(key: bytes | None, convergence: bytes | None,
                  server: StorageClient) -> bytes:
    """The upload secret of this file's shares on `server`. Derived, not random, when the
    file is convergent: a repeat of an upload that failed half-way (Tor gone mid-way)
    finds its own partly written shares and finishes them, where a new secret would find
    them held by the earlier attempt until the server gave up on it. Includes the
    convergence secret, so a read-cap holder (who knows the key) cannot derive it."""
    if convergence is None or key is None:
        return secrets.token_bytes(32)  # a random key (or a repair): nothing to resume
    return tagged_hash(UPLOAD_SECRET_TAG, netstring(convergence) + netstring(key)
                       + netstring(server.permutation_seed))


UPLOAD_SECRET_TAG = b"mistgrid_immutable_upload_secret_v1"


def _lease_secrets(lease_secret: bytes | None, storage_index: bytes,
                   server: StorageClient) -> tuple[bytes, bytes]:
    if lease_secret is None:
        return secrets.token_bytes(32), secrets.token_bytes(32)
    return lease_secrets(lease_secret, storage_index, server.tub_id)


def _check_happy(placement: _Placement, happy: int, total: int) -> None:
    achieved = happiness(placement.have)
    if achieved < happy:
        raise UploadUnhappyError(
            f"shares could be placed on only {achieved} servers, need {happy} "
            f"(shares.happy); {len(placement.servers)} servers known")


def coalesce(writes: list[ShareWrite]) -> list[ShareWrite]:
    """The same writes with adjacent ones (same share, touching ranges) joined."""
    joined: list[ShareWrite] = []
    pieces: list[bytes] = []
    for write in sorted(writes, key=lambda w: (w.share_number, w.offset)):
        last = joined[-1] if joined else None
        if last is not None and last.share_number == write.share_number and \
                last.offset + sum(map(len, pieces)) == write.offset:
            pieces.append(write.data)
            continue
        if last is not None:
            joined[-1] = ShareWrite(last.share_number, last.offset, b"".join(pieces))
        joined.append(write)
        pieces = [write.data]
    if joined:
        joined[-1] = ShareWrite(joined[-1].share_number, joined[-1].offset, b"".join(pieces))
    return joined


async def _send(placement: _Placement, storage_index: bytes,
                upload_secrets: list[UploadSecrets], writes: list[ShareWrite]) -> None:
    by_share: dict[int, list[ShareWrite]] = {}
    for write in coalesce(writes):
        if write.share_number in placement.to_write:
            by_share.setdefault(write.share_number, []).append(write)

    async def send_share(number: int, share_writes: list[ShareWrite]) -> None:
        for write in share_writes:
            position = placement.owner.get(number)
            if position is None:  # lost with its server while this chunk was on its way
                return
            await placement.servers[position].write(
                storage_index, number, upload_secrets[position].upload, write.offset,
                write.data)

    results = await settle_within((send_share(n, w) for n, w in by_share.items()),
                                  patience(WRITE_PATIENCE, placement.servers))
    for number, result in zip(by_share, results, strict=True):
        if isinstance(result, BaseException):  # the server lost: so is this share
            position = placement.owner.pop(number, None)
            if position is not None:
                placement.have[position].discard(number)
            placement.to_write.discard(number)


async def _abort(placement: _Placement, storage_index: bytes,
                 upload_secrets: list[UploadSecrets]) -> None:
    await settle_within((placement.servers[p].abort(storage_index, n,
                                                    upload_secrets[p].upload)
                         for n, p in placement.owner.items() if n in placement.to_write),
                        patience(ALLOCATE_PATIENCE, placement.servers))
