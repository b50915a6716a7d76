"""Check, verify, repair and renew the leases of one file or directory on the grid.

How this works. A *check* asks every server which shares it holds (an immutable file) or
maps the servers (a mutable file: every share's signed prefix); no block is read. A
*verify* also reads every share whole, once, and checks every byte of it (immutable: the
`ShareVerifier` machine, shares in parallel, blocks hashed on the executor; mutable: every
block and hash against the signed root, and, with a write cap, the encrypted signing key),
naming each bad share. `add_lease` adds or renews this client's lease on every server that
holds shares, with the secrets derived as Tahoe derives them. A *repair* of an unhealthy
file puts back what is missing: an immutable file is downloaded (spooled to a temporary
file above a few MiB, so memory stays bounded) and encoded again with its own key, and only
the missing or corrupt shares are written, to servers chosen by the usual placement (a
corrupt share's number goes to another server; nothing is completed unless the new shares
give the same cap); a mutable file's best version is published again, as the next version,
over every share (Tahoe's rule: never an older version). Results are Tahoe's
(`health.results`), before and after.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import IO, Any, cast

import attrs
from twisted.internet import defer

from ..caps import parse_cap
from ..caps.directory import DirectoryCap, is_directory_text, parse_directory_cap
from ..caps.immutable import ChkCap, ChkVerifierCap, LiteralCap
from ..caps.mutable import (
    MutableCap,
    MutableReadCap,
    MutableVerifierCap,
    MutableWriteCap,
    is_mutable_text,
    parse_mutable_cap,
)
from ..crypto.hashes import lease_secrets
from ..encoding.download import ReadRequest
from ..encoding.params import EncodingParams
from ..encoding.ueb import Ueb
from ..encoding.verify import ShareVerifier
from ..errors import MistgridError, ShareError
from ..health.results import (
    CheckResults,
    Corrupt,
    RepairResults,
    immutable_results,
    mutable_results,
)
from ..mutable import version as core
from ..shares.mutable import parse_header
from ..storage.client import StorageClient
from .downloader import download
from .mutable import checked_share, map_servers
from .mutable_files import MutableFiles
from .threads import ThreadPipe, in_thread
from .uploader import Repairing, WrongRootsError, reads_on_a_thread, repair, settle

SPOOL_IN_MEMORY = 8 * 1024 * 1024  # a repair keeps a file this small in memory
PIPE_BYTES = 4 * 1024 * 1024  # a streaming repair's pipe holds about this much
FIRST_READ = 64 * 1024  # bytes of each share a verify asks for first
FileCap = LiteralCap | ChkCap | ChkVerifierCap | MutableCap


class Checker:
    """Checks and repairs for one client node."""

    def __init__(self, servers: Callable[[], Sequence[tuple[str, StorageClient]]],
                 lease_secret: bytes, happy: int, convergence: bytes | None,
                 mutable: MutableFiles | None, executor: Executor | None) -> None:
        """`servers()`: (server ID, client) of every known server."""
        self._servers = servers
        self._lease_secret = lease_secret
        self.happy = happy
        self._convergence = convergence
        self._mutable = mutable
        self._executor = executor

    # ---- the surface ----

    async def check(self, cap: FileCap | DirectoryCap, verify: bool = False,
                    add_lease: bool = False) -> CheckResults:
        file = cap.file if isinstance(cap, DirectoryCap) else cap
        if isinstance(file, LiteralCap):
            return CheckResults.of_literal()
        servers = list(self._servers())
        if isinstance(file, (ChkCap, ChkVerifierCap)):
            results, _ = await self._check_immutable(file, servers, verify, add_lease)
            return results
        return await self._check_mutable(file, servers, verify, add_lease)

    async def check_and_repair(self, cap: FileCap | DirectoryCap, verify: bool = False,
                               add_lease: bool = False) -> RepairResults:
        file = cap.file if isinstance(cap, DirectoryCap) else cap
        pre = await self.check(file, verify, add_lease)
        if pre.literal or pre.healthy:
            return RepairResults(pre, pre, False, False)
        if not pre.recoverable:
            return RepairResults(pre, pre, False, False,
                                 "fewer than k good shares are left; it cannot be repaired")
        try:
            if isinstance(file, (ChkCap, ChkVerifierCap)):
                await self._repair_immutable(file, pre)
            elif isinstance(file, MutableWriteCap) and self._mutable is not None:
                await self._mutable.republish(file)
            else:
                return RepairResults(pre, pre, False, False, _cannot_repair(file))
        except MistgridError as err:
            post = await self.check(file, verify)
            return RepairResults(pre, post, True, False, str(err))
        post = await self.check(file, verify)
        return RepairResults(pre, post, True, post.healthy)

    # ---- immutable ----

    async def _check_immutable(self, cap: ChkCap | ChkVerifierCap,
                               servers: list[tuple[str, StorageClient]], verify: bool,
                               add_lease: bool) -> tuple[CheckResults, Ueb | None]:
        si = cap.storage_index
        answers = await settle(client.list_shares(si) for _, client in servers)
        held = {i: answer for i, answer in enumerate(answers)
                if not isinstance(answer, BaseException)}
        if add_lease:
            await self._add_leases(si, [servers[i] for i, numbers in held.items() if numbers])
        good = {servers[i][0]: set(numbers) for i, numbers in held.items()}
        corrupt: list[Corrupt] = []
        ueb: Ueb | None = None
        if verify:
            jobs = [(i, n) for i, numbers in held.items() for n in sorted(numbers)]
            verdicts = await settle(self._verify_share(cap, servers[i][1], n)
                                    for i, n in jobs)
            for (i, number), verdict in zip(jobs, verdicts, strict=True):
                name = servers[i][0]
                if isinstance(verdict, ShareVerifier):
                    ueb = ueb or verdict.ueb
                    continue
                good[name].discard(number)
                if isinstance(verdict, (ShareError, _CorruptError)):
                    corrupt.append(Corrupt(name, number, _reason(verdict)))
                    with contextlib.suppress(Exception):
                        await servers[i][1].advise_corrupt(si, number, _reason(verdict))
        results = immutable_results(si, cap.needed, cap.total, good,
                                    [servers[i][0] for i in held], corrupt)
        return results, ueb

    async def _verify_share(self, cap: ChkCap | ChkVerifierCap, server: StorageClient,
                            number: int) -> ShareVerifier:
        verifier = ShareVerifier(cap, number)
        # The first read fetches the share's first FIRST_READ bytes: a small share (most
        # of a directory tree's) is then checked from that one answer.
        head = await server.read(cap.storage_index, number, 0, FIRST_READ)
        # Blocks are read one chunk ahead: the next chunk travels while this one is hashed.
        ahead: tuple[ReadRequest, defer.Deferred[bytes]] | None = None
        try:
            while (request := verifier.next_read()) is not None:
                end = request.offset + request.length
                if end <= len(head) or len(head) < FIRST_READ:  # all of it is in hand
                    data = head[request.offset:end]
                elif ahead is not None and ahead[0] == request:
                    data = await ahead[1]
                else:
                    data = await server.read(cap.storage_index, number, request.offset,
                                             request.length)
                ahead = None
                following = verifier.following(request)
                if following is not None and following.offset + following.length > len(head):
                    ahead = (following, defer.ensureDeferred(server.read(
                        cap.storage_index, number, following.offset, following.length)))
                try:
                    if self._executor is not None and request.purpose == "blocks":
                        await in_thread(self._executor, verifier.give, data)
                    else:
                        verifier.give(data)
                except ShareError:
                    raise
                except MistgridError as err:  # the UEB itself is malformed: this share's
                    raise _CorruptError(str(err)) from err
        finally:
            if ahead is not None:  # a read asked ahead that nobody will use
                ahead[1].addErrback(lambda _: None)
                ahead[1].cancel()
        return verifier

    async def _repair_immutable(self, cap: ChkCap | ChkVerifierCap,
                                pre: CheckResults) -> None:
        """Download the file (its ciphertext, given the verify cap, as Tahoe's repairer
        does: a repairer need not be able to read it) and put back its missing shares."""
        servers = list(self._servers())
        names = [name for name, _ in servers]
        ueb = await self._read_ueb(cap, servers, pre)
        position = {name: i for i, name in enumerate(names)}
        distrust = frozenset((position[c.server], c.number) for c in pre.corrupt
                             if c.server in position)
        held: dict[int, set[int]] = {position[n]: set() for n in pre.servers_responding
                                     if n in position}
        for number, holders in pre.sharemap.items():
            for name in holders:
                if name in position:
                    held.setdefault(position[name], set()).add(int(number))
        for server, corrupt_number in distrust:
            held.setdefault(server, set()).add(corrupt_number)
        params = EncodingParams(cap.needed, cap.total, ueb.layout.segment_size)
        clients = [client for _, client in servers]
        repairing = Repairing(cap, distrust, {p: frozenset(ns) for p, ns in held.items()})
        # (the check after the repair says how healthy the file is now)
        if reads_on_a_thread(cap.size, self._executor):
            try:
                await self._repair_streaming(cap, clients, params, repairing)
                return
            except WrongRootsError:  # encode every share, from a source read again
                repairing = attrs.evolve(repairing, reuse_roots=False)
        with tempfile.SpooledTemporaryFile(SPOOL_IN_MEMORY) as spool:
            await download(cap, clients, spool, executor=self._executor)
            spool.seek(0)
            await repair(spool, cap.size, clients, params, repairing, self._executor,
                         self._lease_secret, self._convergence)

    async def _repair_streaming(self, cap: ChkCap | ChkVerifierCap,
                                clients: list[StorageClient], params: EncodingParams,
                                repairing: Repairing) -> None:
        """Download and re-encode at once: the file flows through a pipe of PIPE_BYTES
        from the download to the repair's encoder (no copy of the file on disk, and
        reading overlaps writing)."""
        pipe = ThreadPipe(PIPE_BYTES)
        stream = cast(IO[bytes], pipe)  # written and read as a file is

        async def fetch() -> None:
            try:
                await download(cap, clients, stream, executor=self._executor)
            except BaseException as err:
                pipe.end(f"the download failed: {_reason(err)}")
                raise
            pipe.end()

        fetching = defer.Deferred.fromCoroutine(fetch())
        try:
            await repair(stream, cap.size, clients, params, repairing,
                         self._executor, self._lease_secret, self._convergence)
        except BaseException:
            fetching.cancel()
            with contextlib.suppress(defer.CancelledError):
                await fetching  # a failed download's own error says more
            raise
        await fetching

    async def _read_ueb(self, cap: ChkCap | ChkVerifierCap,
                        servers: list[tuple[str, StorageClient]],
                        pre: CheckResults) -> Ueb:
        """The file's UEB (its segment size), from the first share that gives a good one."""
        index = dict(servers)
        for key, holders in pre.sharemap.items():
            for name in holders:
                verifier = ShareVerifier(cap, int(key))
                try:
                    for _ in range(2):  # the header, then the UEB
                        request = verifier.next_read()
                        assert request is not None
                        verifier.give(await index[name].read(
                            cap.storage_index, int(key), request.offset, request.length))
                except Exception:
                    continue
                if verifier.ueb is not None:
                    return verifier.ueb
        raise MistgridError("no share gave this file's UEB")

    # ---- mutable ----

    async def _check_mutable(self, cap: MutableCap, servers: list[tuple[str, StorageClient]],
                             verify: bool, add_lease: bool) -> CheckResults:
        clients = [client for _, client in servers]
        names = [name for name, _ in servers]
        mapped = await map_servers(clients, cap,
                                   self._mutable.total if self._mutable else 0)
        servermap = mapped.map
        if add_lease:
            holding = {r.server for r in servermap.found} | {b.server for b in servermap.bad}
            await self._add_leases(cap.storage_index, [servers[i] for i in sorted(holding)])
        corrupt: list[Corrupt] = []
        if verify:
            records = list(servermap.found)
            verdicts = await settle(self._verify_mutable_share(cap, clients[r.server],
                                                               r.number, mapped.heads[
                                                                   (r.server, r.number)])
                                    for r in records)
            for record, verdict in zip(records, verdicts, strict=True):
                if isinstance(verdict, (ShareError, _CorruptError)):
                    corrupt.append(Corrupt(names[record.server], record.number,
                                           _reason(verdict)))
                elif isinstance(verdict, BaseException):  # unreadable now: not counted good
                    corrupt.append(Corrupt(names[record.server], record.number,
                                           f"not readable: {_reason(verdict)}"))
        return mutable_results(cap.storage_index, servermap, names, corrupt)

    async def _verify_mutable_share(self, cap: MutableCap, server: StorageClient,
                                    number: int, head: bytes) -> None:
        header = parse_header(head, number)
        data = head[:header.offsets.end]
        if len(data) < header.offsets.end:
            data += await server.read_mutable(cap.storage_index, number, len(data),
                                              header.offsets.end - len(data))
        share = await self._in(checked_share, data, number)
        if isinstance(cap, MutableWriteCap) and not core.private_key_matches(
                cap, share.encrypted_private_key):
            raise _CorruptError("encrypted private key: not this file's key")

    async def _in(self, fn: Callable[..., Any], *args: Any) -> Any:
        if self._executor is None:
            return fn(*args)
        return await in_thread(self._executor, fn, *args)

    # ---- leases ----

    async def _add_leases(self, storage_index: bytes,
                          servers: Sequence[tuple[str, StorageClient]]) -> None:
        async def one(client: StorageClient) -> None:
            renew, cancel = lease_secrets(self._lease_secret, storage_index, client.tub_id)
            await client.add_lease(storage_index, renew, cancel)

        await settle(one(client) for _, client in servers)


class _CorruptError(MistgridError):
    """A share that failed a check other than a ShareError's."""


def _reason(err: BaseException) -> str:
    if isinstance(err, ShareError):
        return err.check + (f": {err.detail}" if err.detail else "")
    return str(err) or err.__class__.__name__


def _cannot_repair(file: object) -> str:
    if isinstance(file, (MutableReadCap, MutableVerifierCap)):
        return "repairing a mutable file needs its write cap"
    return "this node does not repair mutable files"  # (a node made without them)


def parse_any_cap(text: str) -> FileCap | DirectoryCap:
    """A file or directory cap of any kind we know (CapabilityError otherwise)."""
    if is_directory_text(text):
        return parse_directory_cap(text)
    if is_mutable_text(text):
        return parse_mutable_cap(text)
    cap = parse_cap(text)
    assert isinstance(cap, (LiteralCap, ChkCap, ChkVerifierCap))
    return cap
