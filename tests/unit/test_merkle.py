"""Merkle trees: shape, proofs, and that any changed node is caught."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mistgrid.crypto import merkle
from mistgrid.crypto.hashes import TAG_MERKLE_INTERNAL, tagged_pair_hash


def leaves(count: int) -> list[bytes]:
    return [hashlib.sha256(b"%d" % i).digest() for i in range(count)]


@pytest.mark.parametrize("count", [1, 2, 3, 4, 5, 8, 9, 255, 256])
def test_tree_shape(count: int) -> None:
    """A tree has 2P-1 nodes for P = next power of two, leaves at the end, padded."""
    tree = merkle.build_tree(leaves(count))
    width = merkle.padded_leaf_count(count)
    assert len(tree) == merkle.node_count(count) == 2 * width - 1
    assert tree[width - 1 : width - 1 + count] == leaves(count)
    for i in range(count, width):
        assert tree[width - 1 + i] == merkle.empty_leaf_hash(i)
    assert merkle.verify_full_tree(tree)


@given(st.integers(1, 300), st.data())
def test_proofs(count: int, data: st.DataObject) -> None:
    """needed_nodes proves every leaf; dropping any sibling makes the proof incomplete."""
    tree = merkle.build_tree(leaves(count))
    leaf = data.draw(st.integers(0, count - 1))
    needed = merkle.needed_nodes(count, leaf)
    proof = {i: tree[i] for i in needed}
    assert merkle.root_from_proof(count, leaf, tree[merkle.leaf_node(count, leaf)], proof) \
        == tree[0]
    siblings = [i for i in needed if i != merkle.leaf_node(count, leaf)]
    if siblings:
        del proof[data.draw(st.sampled_from(siblings))]
        with pytest.raises(KeyError):
            merkle.root_from_proof(count, leaf, tree[merkle.leaf_node(count, leaf)], proof)


@given(st.integers(2, 40), st.data())
def test_any_changed_node_is_caught(count: int, data: st.DataObject) -> None:
    """Changing one node other than the root breaks verify_full_tree."""
    tree = merkle.build_tree(leaves(count))
    index = data.draw(st.integers(1, len(tree) - 1))
    tree[index] = bytes(32)
    assert not merkle.verify_full_tree(tree)


def test_verify_rejects_bad_sizes() -> None:
    """A list that is not a complete tree is never valid."""
    assert not merkle.verify_full_tree([])
    assert not merkle.verify_full_tree(leaves(2))


@given(st.binary(min_size=0, max_size=80), st.binary(min_size=0, max_size=80))
def test_the_pair_hash_is_the_tagged_hash_of_both_netstrings(left: bytes,
                                                              right: bytes) -> None:
    """The fast path for two 32-byte nodes hashes exactly the bytes Tahoe's does."""
    assert merkle.pair_hash(left, right) == tagged_pair_hash(TAG_MERKLE_INTERNAL, left, right)
    node, other = left[:32].ljust(32, b"\0"), right[:32].ljust(32, b"\1")
    assert merkle.pair_hash(node, other) == tagged_pair_hash(TAG_MERKLE_INTERNAL, node,
                                                             other)


@given(st.integers(1, 70), st.data())
def test_an_updated_tree_is_the_tree_of_the_new_leaves(count: int,
                                                        data: st.DataObject) -> None:
    old = leaves(count)
    changed = data.draw(st.dictionaries(st.integers(0, count - 1),
                                        st.binary(min_size=32, max_size=32), max_size=5))
    new = [changed.get(i, leaf) for i, leaf in enumerate(old)]
    assert merkle.update_tree(merkle.build_tree(old), changed) == merkle.build_tree(new)
