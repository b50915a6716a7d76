"""Complete binary Merkle trees over 32-byte leaves, in Tahoe-LAFS's layout.

How this works: the leaves are padded to a power of two with "empty leaf" hashes (each
tagged with its own leaf index), and every internal node is the tagged pair hash of its two
children. The tree is a flat list in breadth-first order: node 0 is the root and the children
of node i are 2i+1 and 2i+2, so the leaves of a tree with P (power of two) leaves are nodes
P-1 .. 2P-2. A proof for one leaf ("needed hashes") is the leaf's index plus the sibling of
every node on the path up to, but not including, the root.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence

from .hashes import (
    HASH_SIZE,
    TAG_MERKLE_EMPTY_LEAF,
    TAG_MERKLE_INTERNAL,
    netstring,
    tagged_hash,
    tagged_pair_hash,
)

# SHA-256 having read the internal-node tag's netstring: copied for each node, not redone
_INTERNAL = hashlib.sha256(netstring(TAG_MERKLE_INTERNAL))


def empty_leaf_hash(index: int) -> bytes:
    """The hash that pads leaf position `index`."""
    return tagged_hash(TAG_MERKLE_EMPTY_LEAF, b"%d" % index)


def pair_hash(left: bytes, right: bytes) -> bytes:
    """An internal node from its two children."""
    if len(left) == HASH_SIZE and len(right) == HASH_SIZE:  # every node: the same bytes
        inner = _INTERNAL.copy()  # as tagged_pair_hash hashes, a third less work
        inner.update(b"32:%s,32:%s," % (left, right))
        return hashlib.sha256(inner.digest()).digest()
    return tagged_pair_hash(TAG_MERKLE_INTERNAL, left, right)


def padded_leaf_count(leaf_count: int) -> int:
    """The smallest power of two >= leaf_count (and >= 1)."""
    count = 1
    while count < leaf_count:
        count *= 2
    return count


def node_count(leaf_count: int) -> int:
    """How many nodes a tree over `leaf_count` leaves has."""
    return 2 * padded_leaf_count(leaf_count) - 1


def build_tree(leaves: Sequence[bytes]) -> list[bytes]:
    """Every node of the tree over `leaves`, root first."""
    width = padded_leaf_count(len(leaves))
    level = list(leaves) + [empty_leaf_hash(i) for i in range(len(leaves), width)]
    levels = [level]
    while len(level) > 1:
        level = [pair_hash(level[i], level[i + 1]) for i in range(0, len(level), 2)]
        levels.append(level)
    nodes: list[bytes] = []
    for lvl in reversed(levels):
        nodes.extend(lvl)
    return nodes


def update_tree(nodes: Sequence[bytes], leaves: Mapping[int, bytes]) -> list[bytes]:
    """A whole flat tree with some leaves replaced ({leaf number: new leaf}): only the
    nodes above those leaves are hashed again."""
    tree = list(nodes)
    first_leaf = len(tree) // 2
    level = set()  # the nodes to hash again, one level of the tree at a time
    for leaf, value in leaves.items():
        tree[first_leaf + leaf] = value
        if first_leaf:
            level.add(parent(first_leaf + leaf))
    while level:
        for node in level:
            tree[node] = pair_hash(tree[2 * node + 1], tree[2 * node + 2])
        level = {parent(node) for node in level if node}
    return tree


def parent(node: int) -> int:
    return (node - 1) // 2


def sibling(node: int) -> int:
    return node + 1 if node % 2 == 1 else node - 1


def leaf_node(leaf_count: int, leaf: int) -> int:
    """The node index of leaf number `leaf`."""
    return padded_leaf_count(leaf_count) - 1 + leaf


def needed_nodes(leaf_count: int, leaf: int, include_leaf: bool = True) -> list[int]:
    """Node indexes that prove leaf `leaf` against the root, ascending."""
    here = leaf_node(leaf_count, leaf)
    needed = {here} if include_leaf else set()
    while here != 0:
        needed.add(sibling(here))
        here = parent(here)
    return sorted(needed)


def root_from_proof(leaf_count: int, leaf: int, leaf_hash: bytes,
                    proof: Mapping[int, bytes]) -> bytes:
    """The root implied by `leaf_hash` at `leaf` and the sibling hashes in `proof`.

    Raises KeyError when the proof lacks a sibling on the path.
    """
    here = leaf_node(leaf_count, leaf)
    value = leaf_hash
    while here != 0:
        other = proof[sibling(here)]
        value = pair_hash(value, other) if here % 2 == 1 else pair_hash(other, value)
        here = parent(here)
    return value


def verify_full_tree(nodes: Sequence[bytes]) -> bool:
    """True when every internal node of a whole flat tree is the hash of its children."""
    count = len(nodes)
    if count == 0 or (count + 1) & count:
        return False
    first_leaf = count // 2
    return all(
        nodes[i] == pair_hash(nodes[2 * i + 1], nodes[2 * i + 2]) for i in range(first_leaf)
    )


def split_hashes(data: bytes, size: int = 32) -> list[bytes]:
    """Cut a concatenation of hashes into a list."""
    return [data[i : i + size] for i in range(0, len(data), size)]


def join_hashes(hashes: Iterable[bytes]) -> bytes:
    return b"".join(hashes)
