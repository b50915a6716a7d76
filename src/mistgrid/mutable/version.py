"""One version of a mutable file: encode plaintext into N signed shares; check shares and
decode them back.

How this works: each segment (SDMF: the whole file) is encrypted with AES-CTR under a key
made from the read key and a fresh 16-byte salt (SDMF's IV), padded to a multiple of k and
erasure-coded into N blocks. Each share's blocks get a block hash tree; the roots of those
trees are the leaves of the share hash tree, whose root is signed together with the
version's fields. The signing key travels in every share, encrypted under the write key,
so any write-cap holder can make the next version. Pure and thread-safe (zfec and RSA are
CPU work: the shell runs these on a worker).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence

import attrs
import zfec

from ..caps.mutable import MutableFormat, MutableWriteCap
from ..crypto import merkle, rsa
from ..crypto.aes import CtrStream
from ..crypto.hashes import ssk_data_key, ssk_fingerprint, ssk_writekey
from ..errors import MistgridError, ShareError
from ..shares.mutable import SALT_SIZE, Geometry, Prefix, Share, block_leaf


@attrs.frozen
class SigningKey:
    """A mutable file's RSA key with its two serializations."""

    key: rsa.PrivateKey
    private_der: bytes
    public_der: bytes

    @classmethod
    def of(cls, key: rsa.PrivateKey) -> SigningKey:
        return cls(key, rsa.private_der(key), rsa.public_der(key.public_key()))

    def cap(self, fmt: MutableFormat) -> MutableWriteCap:
        return MutableWriteCap.from_keys(fmt, self.private_der, self.public_der)

    def __repr__(self) -> str:
        return "<SigningKey redacted>"


def encrypt_private_key(writekey: bytes, private_der: bytes) -> bytes:
    return CtrStream(writekey).process(private_der)


def private_key_matches(cap: MutableWriteCap, encrypted: bytes) -> bool:
    """Whether a share's encrypted private key is the key this write cap names (the write
    key is a hash of it), without loading it."""
    return ssk_writekey(CtrStream(cap.writekey).process(encrypted)) == cap.writekey


def recover_signing_key(cap: MutableWriteCap, encrypted: bytes) -> SigningKey:
    """The signing key from a share's encrypted copy; MistgridError unless it is the key
    this write cap names."""
    der = CtrStream(cap.writekey).process(encrypted)
    if ssk_writekey(der) != cap.writekey:
        raise MistgridError("the share's encrypted private key is not this file's key")
    key = SigningKey.of(rsa.load_private_der(der, authenticated=True))
    if ssk_fingerprint(key.public_der) != cap.fingerprint:
        raise MistgridError("the share's private key does not match the cap's fingerprint")
    return key


def _erasure_code(crypttext: bytes, needed: int, total: int) -> list[bytes]:
    padded_length = -(-len(crypttext) // needed) * needed
    padded = crypttext + b"\x00" * (padded_length - len(crypttext))
    size = padded_length // needed
    pieces = [padded[i * size:(i + 1) * size] for i in range(needed)]
    return [bytes(b) for b in zfec.Encoder(needed, total).encode(pieces)]


def encode_version(cap: MutableWriteCap, key: SigningKey, plaintext: bytes, seqnum: int,
                   needed: int, total: int,
                   salt: Callable[[], bytes] = lambda: secrets.token_bytes(SALT_SIZE),
                   segment_size: int | None = None) -> list[Share]:
    """The N shares of a new version of `cap`'s file holding `plaintext`."""
    fmt = cap.format
    geometry = (Geometry.for_new(fmt, needed, total, len(plaintext)) if segment_size is None
                else Geometry.for_new(fmt, needed, total, len(plaintext), segment_size))
    readkey = cap.readkey
    salts: list[bytes] = []
    data: list[list[bytes]] = [[] for _ in range(total)]
    leaves: list[list[bytes]] = [[] for _ in range(total)]
    first_salt = salt()
    for segment in range(geometry.num_segments):
        this_salt = first_salt if fmt is MutableFormat.SDMF or segment == 0 else salt()
        salts.append(this_salt)
        start = segment * geometry.segment_size
        chunk = plaintext[start:start + geometry.segment_length(segment)]
        crypttext = CtrStream(ssk_data_key(this_salt, readkey)).process(chunk)
        for number, block in enumerate(_erasure_code(crypttext, needed, total)):
            data[number].append(block if fmt is MutableFormat.SDMF else this_salt + block)
            leaves[number].append(block_leaf(fmt, this_salt, block))
    trees = [merkle.build_tree(share_leaves) for share_leaves in leaves]
    share_tree = merkle.build_tree([tree[0] for tree in trees])
    prefix = Prefix(fmt, seqnum, share_tree[0], first_salt if fmt is MutableFormat.SDMF
                    else b"", needed, total, geometry.segment_size, len(plaintext))
    signature = rsa.sign(key.key, prefix.pack())
    encrypted_key = encrypt_private_key(cap.writekey, key.private_der)
    return [Share(number, prefix, key.public_der, signature,
                  _chain(share_tree, total, number),
                  trees[number], b"".join(data[number]), encrypted_key)
            for number in range(total)]


def _chain(share_tree: Sequence[bytes], total: int, number: int) -> dict[int, bytes]:
    """The hashes that prove share `number`'s leaf against the root: the siblings on its
    path, not the leaf itself (as Tahoe-LAFS stores them)."""
    return {i: share_tree[i] for i in merkle.needed_nodes(total, number, include_leaf=False)}


def verify_signature(prefix: Prefix, verification_key: bytes, signature: bytes,
                     fingerprint: bytes, number: int = -1) -> None:
    """ShareError unless the key is the cap's and it signed this prefix."""
    if ssk_fingerprint(verification_key) != fingerprint:
        raise ShareError(number, "verification key", "not this file's key")
    try:
        public = rsa.load_public_der(verification_key)
    except MistgridError as err:
        raise ShareError(number, "verification key", str(err)) from None
    if not rsa.verify(public, signature, prefix.pack()):
        raise ShareError(number, "signature", "bad signature")


def verify_hashes(share: Share) -> None:
    """ShareError unless the share's block hash tree, blocks and share hash chain agree
    with its signed root hash."""
    p, number = share.prefix, share.number
    geometry = p.geometry
    tree = share.block_hash_tree
    if len(tree) != merkle.node_count(geometry.num_segments) or not \
            merkle.verify_full_tree(tree):
        raise ShareError(number, "block hash tree", "inconsistent")
    first_leaf = merkle.leaf_node(geometry.num_segments, 0)
    for segment in range(geometry.num_segments):
        salt, block = share.block(segment)
        if block_leaf(p.format, salt, block) != tree[first_leaf + segment]:
            raise ShareError(number, "block hash", f"segment {segment}")
    if not 0 <= number < p.total:
        raise ShareError(number, "share number", "beyond N")
    try:
        root = merkle.root_from_proof(p.total, number, tree[0], share.share_hash_chain)
    except KeyError:
        raise ShareError(number, "share hash chain", "incomplete") from None
    if root != p.root_hash:
        raise ShareError(number, "share hash chain", "does not lead to the signed root")


def decode_segment(shares: Sequence[Share], readkey: bytes, segment: int) -> bytes:
    """One segment's plaintext from k checked shares of one version."""
    p = shares[0].prefix
    geometry = p.geometry
    chosen = sorted(shares, key=lambda s: s.number)[:p.needed]
    if len(chosen) < p.needed:
        raise MistgridError(f"{len(chosen)} shares, {p.needed} needed")
    blocks = [s.block(segment) for s in chosen]
    salt = blocks[0][0]
    pieces = zfec.Decoder(p.needed, p.total).decode([b for _, b in blocks],
                                                    [s.number for s in chosen])
    crypttext = b"".join(bytes(x) for x in pieces)[:geometry.segment_length(segment)]
    return CtrStream(ssk_data_key(salt, readkey)).process(crypttext)


def decode_version(shares: Mapping[int, Share] | Sequence[Share], readkey: bytes) -> bytes:
    """The whole plaintext from k checked shares of one version."""
    chosen = list(shares.values()) if isinstance(shares, Mapping) else list(shares)
    geometry = chosen[0].prefix.geometry
    return b"".join(decode_segment(chosen, readkey, s) for s in range(geometry.num_segments))


# ---- one MDMF segment at a time (bounded memory; partial reads and writes) ----


def encode_mdmf_segment(readkey: bytes, geometry: Geometry, plaintext: bytes,
                        salt: bytes) -> list[bytes]:
    """The N stored pieces (salt + block) of one MDMF segment."""
    crypttext = CtrStream(ssk_data_key(salt, readkey)).process(plaintext)
    return [salt + block for block in
            _erasure_code(crypttext, geometry.needed, geometry.total)]


def decode_mdmf_segment(readkey: bytes, geometry: Geometry, segment: int,
                        pieces: Mapping[int, bytes]) -> bytes:
    """One segment's plaintext from k checked pieces (salt + block) of it."""
    numbers = sorted(pieces)[:geometry.needed]
    if len(numbers) < geometry.needed:
        raise MistgridError(f"{len(numbers)} blocks of segment {segment}, "
                            f"{geometry.needed} needed")
    salt = pieces[numbers[0]][:SALT_SIZE]
    decoded = zfec.Decoder(geometry.needed, geometry.total).decode(
        [pieces[n][SALT_SIZE:] for n in numbers], numbers)
    crypttext = b"".join(bytes(x) for x in decoded)[:geometry.segment_length(segment)]
    return CtrStream(ssk_data_key(salt, readkey)).process(crypttext)


def check_block_tree(number: int, prefix: Prefix, tree: Sequence[bytes],
                     chain: Mapping[int, bytes]) -> None:
    """ShareError unless a share's whole block hash tree is consistent and leads, through
    its share hash chain, to the signed root."""
    if len(tree) != merkle.node_count(prefix.geometry.num_segments) or not \
            merkle.verify_full_tree(tree):
        raise ShareError(number, "block hash tree", "inconsistent")
    if not 0 <= number < prefix.total:
        raise ShareError(number, "share number", "beyond N")
    try:
        root = merkle.root_from_proof(prefix.total, number, tree[0], chain)
    except KeyError:
        raise ShareError(number, "share hash chain", "incomplete") from None
    if root != prefix.root_hash:
        raise ShareError(number, "share hash chain", "does not lead to the signed root")


def check_piece(number: int, prefix: Prefix, tree: Sequence[bytes], segment: int,
                piece: bytes) -> None:
    """ShareError unless a stored piece (salt + block) is the tree's leaf for `segment`."""
    geometry = prefix.geometry
    if len(piece) != SALT_SIZE + geometry.block_length(segment):
        raise ShareError(number, "block", f"segment {segment} truncated")
    leaf = merkle.leaf_node(geometry.num_segments, segment)
    if block_leaf(MutableFormat.MDMF, piece[:SALT_SIZE], piece[SALT_SIZE:]) != tree[leaf]:
        raise ShareError(number, "block hash", f"segment {segment}")


@attrs.frozen
class Finished:
    """What completes a version written a segment at a time: its signed prefix, and for
    each share its chain and block hash tree."""

    prefix: Prefix
    signature: bytes
    chains: dict[int, dict[int, bytes]]
    trees: dict[int, list[bytes]]


def finish_version(key: SigningKey, geometry: Geometry, seqnum: int,
                   leaves: Mapping[int, Sequence[bytes]]) -> Finished:
    """Sign a version from every share's block leaves."""
    return sign_trees(key, geometry, seqnum,
                      {n: merkle.build_tree(list(leaves[n])) for n in range(geometry.total)})


def sign_trees(key: SigningKey, geometry: Geometry, seqnum: int,
               trees: dict[int, list[bytes]]) -> Finished:
    """Sign a version from every share's whole block hash tree (for a partial rewrite:
    the old trees with the rewritten segments' leaves updated)."""
    share_tree = merkle.build_tree([trees[n][0] for n in range(geometry.total)])
    prefix = Prefix(MutableFormat.MDMF, seqnum, share_tree[0], b"", geometry.needed,
                    geometry.total, geometry.segment_size, geometry.data_length)
    chains = {n: _chain(share_tree, geometry.total, n) for n in range(geometry.total)}
    return Finished(prefix, rsa.sign(key.key, prefix.pack()), chains, trees)


def block_leaf_of(piece: bytes) -> bytes:
    """The block hash tree leaf of a stored MDMF piece (salt + block)."""
    return block_leaf(MutableFormat.MDMF, piece[:SALT_SIZE], piece[SALT_SIZE:])
