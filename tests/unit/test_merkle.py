"""Merkle trees: shape, proofs, and that any changed node is caught."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mistgrid.crypto import merkle


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
