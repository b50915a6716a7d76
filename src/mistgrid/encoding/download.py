"""The CHK download machine: says which share bytes it wants, checks what it is given.

How this works: the shell offers the share numbers it can read. The machine activates k of
them (more when one fails) and, for each, asks for the header, then the UEB, then the hash
regions, checking each step: the UEB against the cap's hash, the header against the layout
the UEB implies, the crypttext tree against the UEB, the block-tree root against the share
hash chain and the UEB's share root. Then it asks for blocks up to `window` segments ahead,
`batch` segments at a time so that one read fetches a run of consecutive blocks of a share.
Each segment whose k blocks are here becomes one job (on the executor, if given): decode
with zfec, check the ciphertext against the crypttext tree (that check is what proves the
segment right; only when it fails are the blocks checked against their block trees, to
find the share to blame), decrypt. A job that finds a bad block drops that block's share
and the segment is read again from another; segments come out strictly in order. The flat hash of
the whole ciphertext (checked at the end of a full download) runs on the executor too, one
segment after the other.

Round trips: the first read of a share (its header) takes the whole share when the file
is small (`WHOLE_SHARE_BELOW`), and the UEB read takes the hash regions before it too; what
a read brought beyond what it was for is kept (`_Share.known`), and a later read inside it
is answered from there without asking the shell. So a small file is one read per share,
and a large one header, hashes and UEB, then blocks: over Tor each round trip saved is a
circuit's latency.

A share that fails any check (or that the shell reports unreadable) is dropped with a
`ShareError` naming the share and the check, and another share takes its place. When fewer
than k usable shares remain, `wants()` raises `NotEnoughSharesError`.

    dl = ChkDownload(cap, [0, 3, 7])
    while not dl.done:
        for req in dl.wants():
            dl.give(req, read(req.share_number, req.offset, req.length))
        out.write(dl.take_plaintext())
"""

from __future__ import annotations

import collections
import enum
from collections.abc import Iterable
from concurrent.futures import Executor, Future
from typing import Any, Protocol

import attrs
import zfec

from ..caps.immutable import ChkCap, ChkVerifierCap
from ..crypto import merkle
from ..crypto.aes import CtrStream
from ..crypto.hashes import block_hash, crypttext_hasher, crypttext_segment_hash, ueb_hash
from ..errors import MistgridError, NotEnoughSharesError, ShareError
from ..shares.immutable import HEADER_READ_SIZE, LayoutError, ShareLayout, unpack_share_hashes
from .params import FileLayout
from .ueb import MAX_UEB_SIZE, Ueb, UebError, parse_ueb
from .upload import share_layout_for


@attrs.frozen
class ReadRequest:
    """Read up to `length` bytes at `offset` of share `share_number` (short reads allowed)."""

    share_number: int
    offset: int
    length: int
    purpose: str = attrs.field(eq=False, default="")


class _Phase(enum.Enum):
    HEADER = "header"
    UEB = "ueb"
    HASHES = "hashes"
    READY = "ready"
    BAD = "bad"


Block = bytes | memoryview
WHOLE_SHARE_BELOW = 256 * 1024  # bytes: a share about this small is read in one request


@attrs.frozen
class SegmentResult:
    """A decoded segment, or the shares whose blocks failed their block-tree check."""

    crypttext: bytes = b""
    plaintext: bytes = b""
    bad_shares: tuple[int, ...] = ()


@attrs.frozen
class _Job:
    segment: int
    blocks: dict[int, Block]
    future: Future[SegmentResult]


@attrs.define
class _Share:
    number: int
    phase: _Phase = _Phase.HEADER
    layout: ShareLayout | None = None
    block_tree: list[bytes] = attrs.Factory(list)
    # bytes read already: (offset, data, whether the share ends where data does)
    known: list[tuple[int, bytes, bool]] = attrs.Factory(list)

    def lookup(self, request: ReadRequest) -> bytes | None:
        """What a read for `request` would give, if it is known already."""
        for offset, data, ended in self.known:
            if offset <= request.offset and (
                    ended or request.offset + request.length <= offset + len(data)):
                start = request.offset - offset
                return data[start : start + request.length]
        return None


def first_read_length(cap: ChkCap | ChkVerifierCap,
                      whole_share_below: int = WHOLE_SHARE_BELOW) -> int:
    """Bytes of the first read of each share (from offset 0): its header, or all of it
    for a small file (a generous guess: blocks, hash trees, UEB)."""
    whole = -(-cap.size // cap.needed) + 16 * 1024
    return whole if whole <= whole_share_below else HEADER_READ_SIZE


class ChkDownload:
    """Wants/give machine for the plaintext (or a byte range of it) of one CHK file; given
    the verify cap, for its ciphertext (what a repair re-encodes)."""

    def __init__(self, cap: ChkCap | ChkVerifierCap, share_numbers: Iterable[int],
                 start: int = 0,
                 end: int | None = None, window: int = 4,
                 executor: Executor | None = None, batch: int | None = None,
                 whole_share_below: int = WHOLE_SHARE_BELOW, spread: int = 0) -> None:
        """`spread`: read from this many shares at once (the first offered), each batch of
        segments from the next k of them in turn, not all from the same k: each server's
        route then carries a share of the file (over Tor a circuit, not the machine, is
        what limits a server's throughput). Fewer than k: k; so are shares small enough to
        be read whole at once (more would be read whole for nothing)."""
        self.cap = cap
        self.start = start
        self.end = cap.size if end is None else min(end, cap.size)
        if not 0 <= self.start <= self.end:
            raise MistgridError(f"bad byte range {start}-{end}")
        self.window = max(1, window)
        self.batch = min(self.window, max(1, batch if batch is not None else window // 2))
        self.problems: list[ShareError] = []
        self._candidates = [n for n in dict.fromkeys(share_numbers) if 0 <= n < cap.total]
        self._shares: dict[int, _Share] = {}
        self._outstanding: set[ReadRequest] = set()
        self._ueb: Ueb | None = None
        self._crypttext_tree: list[bytes] = []
        self._layout: FileLayout | None = None
        self._next_emit = 0  # next segment whose plaintext is handed out
        self._next_submit = 0  # next segment to be decoded
        self._last_segment = -1
        self._executor = executor
        self._jobs: collections.deque[_Job] = collections.deque()  # by segment
        self._redo: set[int] = set()  # segments to decode again after a bad block
        self._assigned: dict[int, dict[int, Block | None]] = {}  # segment -> share -> block
        self._asked: set[tuple[int, int]] = set()  # (segment, share) being read
        self._next_assign = 0  # next segment not yet given shares to read it from
        self._output: list[bytes] = []
        self._flat_hasher = crypttext_hasher() if (start, self.end) == (0, cap.size) else None
        self._flat_job: Future[None] | None = None  # the newest flat-hash update
        self.done = self.start == self.end
        self._first_read = first_read_length(cap, whole_share_below)
        self.spread = cap.needed if self._first_read != HEADER_READ_SIZE else \
            min(max(spread, cap.needed), cap.total)

    # ---- what the shell calls ----

    def wants(self) -> list[ReadRequest]:
        """New reads to perform (never one already asked and not yet given)."""
        if self.done:
            return []
        self._activate()
        requests: list[ReadRequest] = []
        for share in self._shares.values():
            request = self._metadata_request(share)
            if request is not None:
                requests.append(request)
        if self._layout is not None:
            requests.extend(self._block_requests())
        fresh = [r for r in requests if r not in self._outstanding]
        self._outstanding.update(fresh)
        known = [(r, data) for r in fresh
                 if (data := self._shares[r.share_number].lookup(r)) is not None]
        if not known:
            return fresh
        for request, data in known:  # answered from bytes read before; then ask again
            self.give(request, data)
        return [r for r in fresh if r in self._outstanding] + self.wants()

    def give(self, request: ReadRequest, data: bytes) -> None:
        """The bytes read for `request` (shorter where the share ended)."""
        if request not in self._outstanding:
            return
        self._outstanding.discard(request)
        share = self._shares.get(request.share_number)
        if share is None or share.phase is _Phase.BAD:
            return
        try:
            if request.purpose == "blocks":
                self._got_block(share, request, data)
            else:
                self._got_metadata(share, request, data)
        except ShareError as err:
            self._drop(share, err)

    def fail(self, request: ReadRequest, reason: str) -> None:
        """The shell could not read `request` at all; the share is dropped."""
        self._outstanding.discard(request)
        share = self._shares.get(request.share_number)
        if share is not None and share.phase is not _Phase.BAD:
            self._drop(share, ShareError(share.number, "read", reason))

    def take_plaintext(self, wait: bool = True) -> bytes:
        """Plaintext decoded so far, in order; each byte is returned once.

        Segments decode on the executor (if any). When no read is outstanding and `wait`
        is true, this waits for the oldest decoding segment, so a simple driver loop always
        makes progress; an event-driven driver passes False and awaits `decoding` itself.
        """
        waited = not wait
        while self._jobs and self._jobs[0].segment == self._next_emit and (
                self._jobs[0].future.done() or not (waited or self._outstanding)):
            waited = True
            job = self._jobs.popleft()
            result = job.future.result()
            if result.bad_shares:
                self._decode_again(job, result.bad_shares)
            else:
                self._emit(result.crypttext, result.plaintext)
        data = b"".join(self._output)
        self._output.clear()
        return data

    @property
    def ueb(self) -> Ueb | None:
        return self._ueb

    @property
    def spare_shares(self) -> int:
        """Shares that could be dropped with k left: those offered and not used yet, and
        those read from beyond k."""
        return len(self._candidates) + max(0, len(self._usable()) - self.cap.needed)

    @property
    def decoding(self) -> Future[SegmentResult] | None:
        """The job of the segment whose plaintext is next out, if it is decoding."""
        if self._jobs and self._jobs[0].segment == self._next_emit:
            return self._jobs[0].future
        return None

    # ---- share selection ----

    def _usable(self) -> list[_Share]:
        return [s for s in self._shares.values() if s.phase is not _Phase.BAD]

    def _activate(self) -> None:
        needed = self.cap.needed
        while len(self._usable()) < self.spread and self._candidates:
            number = self._candidates.pop(0)
            self._shares[number] = _Share(number)
        if len(self._usable()) < needed:
            good = len(self._usable())
            raise NotEnoughSharesError(good, needed, self.problems)

    def _drop(self, share: _Share, error: ShareError) -> None:
        share.phase = _Phase.BAD
        self.problems.append(error)
        for blocks in self._assigned.values():
            blocks.pop(share.number, None)
        self._asked = {(g, n) for g, n in self._asked if n != share.number}
        self._outstanding = {r for r in self._outstanding if r.share_number != share.number}

    # ---- metadata ----

    def _metadata_request(self, share: _Share) -> ReadRequest | None:
        number = share.number
        if share.phase is _Phase.HEADER:
            return ReadRequest(number, 0, self._first_read, "header")
        lay = share.layout
        if lay is None:
            return None
        if share.phase is _Phase.UEB:  # with the hash regions just before it
            ueb = ReadRequest(number, lay.uri_extension, lay.field_size + MAX_UEB_SIZE, "ueb")
            if share.lookup(ueb) is not None:
                return ueb
            return ReadRequest(number, lay.plaintext_hash_tree,
                               ueb.offset + ueb.length - lay.plaintext_hash_tree, "tail")
        if share.phase is _Phase.HASHES:
            return ReadRequest(number, lay.plaintext_hash_tree,
                               lay.uri_extension - lay.plaintext_hash_tree, "hashes")
        return None

    def _got_metadata(self, share: _Share, request: ReadRequest, data: bytes) -> None:
        if request.purpose in ("header", "tail"):  # keep it all for the reads to come
            share.known.append((request.offset, data, len(data) < request.length))
        if request.purpose == "header" and share.phase is _Phase.HEADER:
            try:
                share.layout = ShareLayout.parse(data)
            except LayoutError as err:
                raise ShareError(share.number, "header", str(err)) from err
            share.phase = _Phase.UEB
        elif request.purpose == "tail" and share.phase is _Phase.UEB:
            lay = share.layout
            assert lay is not None
            ueb = ReadRequest(share.number, lay.uri_extension, lay.field_size + MAX_UEB_SIZE,
                              "ueb")
            self._got_metadata(share, ueb, share.lookup(ueb) or b"")
        elif request.purpose == "ueb" and share.phase is _Phase.UEB:
            self._check_ueb(share, data)
            share.phase = _Phase.HASHES
        elif request.purpose == "hashes" and share.phase is _Phase.HASHES:
            self._check_hashes(share, data)
            share.phase = _Phase.READY

    def _check_ueb(self, share: _Share, data: bytes) -> None:
        lay = share.layout
        assert lay is not None
        packed = check_ueb_region(self.cap, share.number, lay, data)
        if self._ueb is None:
            self._ueb = parse_checked_ueb(self.cap, packed)
            self._layout = self._ueb.layout
            self._first_and_last_segments()
        if share_layout_for(self._ueb.layout) != lay:
            raise ShareError(share.number, "header", "offsets do not match the UEB")

    def _check_hashes(self, share: _Share, data: bytes) -> None:
        lay, ueb = share.layout, self._ueb
        assert lay is not None and ueb is not None
        crypttext_tree, share.block_tree = check_hash_regions(self.cap, ueb, share.number,
                                                              lay, data)
        if not self._crypttext_tree:
            self._crypttext_tree = crypttext_tree

    # ---- blocks ----

    def _first_and_last_segments(self) -> None:
        lay = self._layout
        assert lay is not None
        self._next_emit = self._next_submit = self.start // lay.segment_size
        self._next_assign = self._next_emit
        self._last_segment = (self.end - 1) // lay.segment_size

    def _block_requests(self) -> list[ReadRequest]:
        lay = self._layout
        assert lay is not None
        limit = min(self._last_segment, self._next_emit + self.window - 1)
        if limit - self._next_assign + 1 >= self.batch or limit == self._last_segment:
            for segment in range(self._next_assign, limit + 1):
                self._assigned[segment] = {}
            self._next_assign = max(self._next_assign, limit + 1)
        usable = self._usable()
        wanted: dict[int, list[int]] = {}  # share -> segments to read from it
        for segment, blocks in self._assigned.items():
            for share in self._in_turn(usable, segment):
                if len(blocks) >= lay.needed:
                    break
                blocks.setdefault(share.number, None)
            for number, block in blocks.items():  # a share is read once its hashes are in
                if block is None and (segment, number) not in self._asked and \
                        self._shares[number].phase is _Phase.READY:
                    wanted.setdefault(number, []).append(segment)
        requests = []
        for number, segments in wanted.items():
            share_lay = self._shares[number].layout
            assert share_lay is not None
            for first, count in _runs(sorted(segments)):
                length = sum(lay.block_length(g) for g in range(first, first + count))
                requests.append(ReadRequest(number, share_lay.data + first * lay.block_size,
                                            length, "blocks"))
                self._asked.update((g, number) for g in range(first, first + count))
        return requests

    def _in_turn(self, usable: list[_Share], segment: int) -> list[_Share]:
        """The shares in the order `segment` takes them: with more than k in use, each
        batch of segments starts k further along than the one before."""
        if len(usable) <= self.cap.needed:
            return usable
        start = segment // self.batch * self.cap.needed % len(usable)
        return usable[start:] + usable[:start]

    def _got_block(self, share: _Share, request: ReadRequest, data: bytes) -> None:
        lay = self._layout
        share_lay = share.layout
        assert lay is not None and share_lay is not None
        first = (request.offset - share_lay.data) // lay.block_size
        view = memoryview(data)  # blocks are slices of the one read, not copies
        position, segment = 0, first
        while position < request.length:
            length = lay.block_length(segment)
            self._asked.discard((segment, share.number))
            blocks = self._assigned.get(segment)
            if blocks is not None and share.number in blocks:
                if len(data) < position + length:
                    raise ShareError(share.number, "block", f"segment {segment} truncated")
                blocks[share.number] = view[position : position + length]  # checked by the job
            position += length
            segment += 1
        self._submit_ready()

    def _submit_ready(self) -> None:
        """Start decoding each next segment whose k blocks are all here."""
        lay = self._layout
        assert lay is not None
        for segment in sorted(self._redo):  # only ever the next segment out
            if self._submit(segment, front=True):
                self._redo.discard(segment)
        while self._next_submit <= self._last_segment and self._submit(self._next_submit):
            self._next_submit += 1

    def _submit(self, segment: int, front: bool = False) -> bool:
        lay = self._layout
        assert lay is not None
        blocks = self._assigned.get(segment, {})
        have = {n: b for n, b in blocks.items() if b is not None}
        if len(have) < lay.needed:
            return False
        del self._assigned[segment]
        leaf = merkle.leaf_node(lay.num_segments, segment)
        args = (self.cap.key if isinstance(self.cap, ChkCap) else None, lay, segment, have,
                {n: self._shares[n].block_tree[leaf] for n in have},
                self._crypttext_tree[leaf])
        if self._executor is None:
            future: Future[SegmentResult] = Future()
            future.set_result(decode_segment(*args))
        else:
            future = self._executor.submit(decode_segment, *args)
        job = _Job(segment, have, future)
        if front:
            self._jobs.appendleft(job)
        else:
            self._jobs.append(job)
        return True

    def _decode_again(self, job: _Job, bad_shares: tuple[int, ...]) -> None:
        """Drop the shares whose blocks failed; read the segment again from others."""
        for number in bad_shares:
            share = self._shares[number]
            if share.phase is not _Phase.BAD:
                self._drop(share, ShareError(number, "block hash", f"segment {job.segment}"))
        self._assigned[job.segment] = {n: b for n, b in job.blocks.items()
                                       if n not in bad_shares}
        self._redo.add(job.segment)

    def _emit(self, crypttext: bytes, plaintext: bytes) -> None:
        lay = self._layout
        assert lay is not None
        segment = self._next_emit
        if self._flat_hasher is not None:
            if self._executor is None:
                self._flat_hasher.update(crypttext)
            else:  # in order: each update waits for the one before (submitted earlier)
                self._flat_job = self._executor.submit(_update_after, self._flat_job,
                                                       self._flat_hasher, crypttext)
        segment_start = segment * lay.segment_size
        lo = max(self.start - segment_start, 0)
        hi = min(self.end - segment_start, len(crypttext))
        self._output.append(plaintext[lo:hi] if (lo, hi) != (0, len(plaintext)) else plaintext)
        self._next_emit += 1
        if self._next_emit > self._last_segment:
            self.done = True
            self._outstanding.clear()
            if self._flat_job is not None:
                self._flat_job.result()
            if self._flat_hasher is not None and (
                    self._ueb is not None
                    and self._flat_hasher.digest() != self._ueb.crypttext_hash):
                raise MistgridError("the whole ciphertext does not match the UEB's hash")


class ChkFileCap(Protocol):
    """What the checks need of a cap: a read cap or a verify cap."""

    @property
    def ueb_hash(self) -> bytes: ...
    @property
    def needed(self) -> int: ...
    @property
    def total(self) -> int: ...
    @property
    def size(self) -> int: ...


def check_ueb_region(cap: ChkFileCap, number: int, lay: ShareLayout, data: bytes) -> bytes:
    """The packed UEB read at `lay.uri_extension` (its length field first), checked
    against the cap's UEB hash; raises ShareError."""
    length = int.from_bytes(data[: lay.field_size], "big")
    packed = data[lay.field_size : lay.field_size + length]
    if len(data) < lay.field_size or length > MAX_UEB_SIZE or len(packed) != length:
        raise ShareError(number, "UEB", "truncated")
    if ueb_hash(packed) != cap.ueb_hash:
        raise ShareError(number, "UEB hash", "does not match the cap")
    return packed


def parse_checked_ueb(cap: ChkFileCap, packed: bytes) -> Ueb:
    """A UEB whose hash matched the cap: parsed, and agreeing with the cap (else the
    uploader wrote it wrong: no share can help)."""
    try:
        ueb = parse_ueb(packed)
    except UebError as err:
        raise MistgridError(f"the file's UEB is malformed: {err}") from err
    if (ueb.layout.size, ueb.layout.needed, ueb.layout.total) != (
            cap.size, cap.needed, cap.total):
        raise MistgridError("the file's UEB disagrees with the cap")
    return ueb


def check_hash_regions(cap: ChkFileCap, ueb: Ueb, number: int, lay: ShareLayout,
                       data: bytes) -> tuple[list[bytes], list[bytes]]:
    """(crypttext tree, block tree) of one share from its bytes between the unused
    plaintext-tree region and the UEB, each checked up to the UEB; raises ShareError."""
    if len(data) != lay.uri_extension - lay.plaintext_hash_tree:
        raise ShareError(number, "hash regions", "truncated")
    tree_size = lay.tree_size
    if data[:tree_size].count(0) != tree_size:
        raise ShareError(number, "unused region", "not zero")
    data = data[tree_size:]
    crypttext_tree = merkle.split_hashes(data[:tree_size])
    block_tree = merkle.split_hashes(data[tree_size : 2 * tree_size])
    if crypttext_tree[0] != ueb.crypttext_root_hash or not merkle.verify_full_tree(
            crypttext_tree):
        raise ShareError(number, "crypttext hash tree")
    if not merkle.verify_full_tree(block_tree):
        raise ShareError(number, "block hash tree")
    try:
        chain = unpack_share_hashes(data[2 * tree_size :])
        root = merkle.root_from_proof(cap.total, number, block_tree[0], chain)
        leaf_listed = chain[merkle.leaf_node(cap.total, number)]
    except (LayoutError, KeyError) as err:
        raise ShareError(number, "share hash chain", "incomplete") from err
    if root != ueb.share_root_hash or leaf_listed != block_tree[0]:
        raise ShareError(number, "share hash chain", "does not reach the UEB root")
    return crypttext_tree, block_tree


def _runs(numbers: list[int]) -> list[tuple[int, int]]:
    """Sorted distinct integers as (first, count) runs of consecutive ones."""
    runs: list[tuple[int, int]] = []
    for n in numbers:
        if runs and runs[-1][0] + runs[-1][1] == n:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((n, 1))
    return runs


def _update_after(previous: Future[None] | None, hasher: Any, data: bytes) -> None:
    if previous is not None:
        previous.result()
    hasher.update(data)


def decode_segment(key: bytes | None, layout: FileLayout, segment: int,
                   blocks: dict[int, Block],
                   block_hashes: dict[int, bytes], expected_hash: bytes) -> SegmentResult:
    """The ciphertext (checked against the crypttext tree) and plaintext of one segment
    from k blocks; or, when it does not check, which shares' blocks were bad.

    The crypttext hash is what proves the segment right (the tree's root is in the UEB,
    whose hash is in the cap), so blocks are checked against their block trees only when
    it fails, to find the share to blame. Decoding maps the k blocks one-to-one onto the
    segment, so a changed block changes the segment, except where the change lands only in
    the padding cut off a short tail segment: the blocks of a padded segment are always
    checked. Pure and thread-safe, so segments can decode in parallel on an executor.
    """
    numbers = sorted(blocks)[: layout.needed]
    decoder = zfec.Decoder(layout.needed, layout.total)
    pieces = decoder.decode([blocks[n] for n in numbers], numbers)
    joined = b"".join(pieces)
    crypttext = joined[: layout.segment_length(segment)]
    if len(joined) != len(crypttext) or crypttext_segment_hash(crypttext) != expected_hash:
        bad = tuple(n for n in numbers if block_hash(blocks[n]) != block_hashes[n])
        if bad:
            return SegmentResult(bad_shares=bad)
        if len(joined) == len(crypttext) or crypttext_segment_hash(crypttext) != expected_hash:
            raise MistgridError(f"segment {segment} decoded from checked blocks does not "
                                "match the crypttext hash tree")
    if key is None:  # a verify cap's download: the ciphertext is what comes out
        return SegmentResult(crypttext, crypttext)
    plaintext = CtrStream(key, segment * layout.segment_size).process(crypttext)
    return SegmentResult(crypttext, plaintext)
