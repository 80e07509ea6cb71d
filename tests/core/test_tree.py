"""The array tree: CSR children, lazy states, growth, caps, subtrees and serialisation."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from treesearch import Tree
from treesearch.games.tictactoe import TicTacToe
from treesearch.tree import TreeFull


def test_children_are_contiguous_blocks_and_states_are_lazy():
    tree = Tree(TicTacToe(), capacity=2)
    kids = tree.add_children(0, [0, 4, 8], [0.2, 0.5, 0.3])
    assert kids == range(1, 4)
    assert tree.states[2] is None
    state = tree.state(2)
    assert state == TicTacToe.from_moves([4])
    assert tree.to_play[2] == 1 and not tree.terminal[2]
    grand = tree.add_children(2, [0, 1], [0.5, 0.5])
    assert grand == range(4, 6)
    assert tree.state(5) == TicTacToe.from_moves([4, 1])  # built from the nearest known state
    assert tree.path(5) == [0, 2, 5]
    assert list(tree.depth[:6]) == [0, 1, 1, 1, 2, 2]
    assert tree.capacity >= 6  # grew past the initial capacity of 2
    with pytest.raises(ValueError, match="already expanded"):
        tree.add_children(2, [3], [1.0])
    with pytest.raises(ValueError, match="priors"):
        tree.add_children(1, [1, 2], [1.0])


def test_node_cap():
    tree = Tree(TicTacToe(), max_nodes=4)
    tree.add_children(0, [0, 1, 2], [1 / 3] * 3)
    assert tree.room() == 0
    with pytest.raises(TreeFull):
        tree.add_children(1, [3], [1.0])
    assert tree.num_nodes == 4
    with pytest.raises(TypeError):
        Tree(None, max_nodes=2.0)
    with pytest.raises(ValueError):
        Tree(None, max_nodes=0)


def test_subtree_keeps_statistics_and_contiguity():
    tree = Tree(None)
    tree.add_children(0, ["a", "b"], [0.5, 0.5])
    tree.add_children(2, ["c", "d", "e"], [0.2, 0.3, 0.5])
    tree.add_children(1, ["x"], [1.0])
    tree.add_children(4, ["f"], [1.0])
    tree.visits[:8] = [9, 2, 6, 1, 3, 1, 1, 2]
    tree.value_sum[:8] = [1, 2, 3, 4, 5, 6, 7, 8]
    sub = tree.subtree(2)
    assert sub.num_nodes == 5  # b, c, d, e, f
    assert sub.actions == [None, "c", "d", "e", "f"]
    assert list(sub.parent[:5]) == [-1, 0, 0, 0, 2]
    assert list(sub.visits[:5]) == [6, 1, 3, 1, 2]
    assert list(sub.value_sum[:5]) == [3, 4, 5, 6, 8]
    assert list(sub.depth[:5]) == [0, 1, 1, 1, 2]
    assert sub.children(0) == range(1, 4) and sub.children(2) == range(4, 5)


@st.composite
def random_trees(draw):
    tree = Tree(None)
    for _ in range(draw(st.integers(0, 12))):
        leaves = tree.leaves()
        node = draw(st.sampled_from(leaves))
        k = draw(st.integers(1, 4))
        actions = draw(
            st.lists(st.one_of(st.integers(-5, 5), st.text(max_size=3)), min_size=k, max_size=k)
        )
        tree.add_children(node, actions, np.full(k, 1.0 / k))
    n = tree.num_nodes
    tree.visits[:n] = draw(st.lists(st.integers(0, 50), min_size=n, max_size=n))
    tree.value_sum[:n] = draw(st.lists(st.floats(-50, 50, allow_nan=False), min_size=n, max_size=n))
    scores = draw(st.lists(st.one_of(st.none(), st.floats(0, 1)), min_size=n, max_size=n))
    tree.score[:n] = [math.nan if s is None else s for s in scores]
    proven = draw(st.lists(st.sampled_from([None, -1.0, 0.0, 1.0]), min_size=n, max_size=n))
    proven[0] = None
    for i, p in enumerate(proven):
        if p is not None:
            tree.proven[i] = p
            tree.proven_children[tree.parent[i]] += 1
    return tree


@given(random_trees())
def test_dict_round_trip_is_exact(tree):
    data = json.loads(json.dumps(tree.to_dict(), allow_nan=False))
    back = Tree.from_dict(data)
    assert back.to_dict() == tree.to_dict()
    n = tree.num_nodes
    np.testing.assert_array_equal(back.proven_children[:n], tree.proven_children[:n])
    np.testing.assert_array_equal(back.visits[:n], tree.visits[:n])


def test_from_dict_rejects_other_formats():
    with pytest.raises(ValueError, match="format"):
        Tree.from_dict({"format": "something-else"})
    data = Tree(None).to_dict()
    data["arrays"]["visits"] = [1, 2]
    with pytest.raises(ValueError, match="entries"):
        Tree.from_dict(data)


def test_unserialisable_action():
    tree = Tree(None)
    tree.add_children(0, [object()], [1.0])
    with pytest.raises(TypeError, match="JSON"):
        tree.to_dict()


def test_max_nodes_survives_the_round_trip():
    tree = Tree(None, max_nodes=10)
    tree.add_children(0, [1, 2], [0.5, 0.5])
    back = Tree.from_dict(json.loads(json.dumps(tree.to_dict())))
    assert back.max_nodes == 10 and back.room() == 7
    data = tree.to_dict()
    data["max_nodes"] = 2  # fewer than the nodes it holds
    with pytest.raises(ValueError, match="max_nodes"):
        Tree.from_dict(data)
    data = tree.to_dict()
    data["arrays"]["virtual_loss"] = [0, 0, 0]  # transient arrays are not part of the format
    with pytest.raises(ValueError, match="virtual_loss"):
        Tree.from_dict(data)
