"""Backup and the value-sign rule, by hand and against each other."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from treesearch import Tree
from treesearch.backup import alternate, apply_virtual_loss, backup, backup_path, value_for_player


def chain(players: list[int]) -> Tree:
    """A root-to-leaf chain whose nodes have the given players to move."""
    tree = Tree(None)
    for depth in range(1, len(players)):
        tree.add_children(depth - 1, [depth], [1.0])
    tree.to_play[: len(players)] = players
    return tree


def test_two_player_signs_by_hand():
    tree = chain([0, 1, 0, 1])  # alternate moves; the leaf (node 3) has player 1 to move
    backup(tree, 3, 0.8)  # 0.8 for player 1 at the leaf
    # Node 3's edge is chosen by player 0 (its parent): -0.8. Node 2's by player 1: +0.8.
    # Node 1's by player 0: -0.8. The root holds the value for its own player 0: -0.8.
    np.testing.assert_allclose(tree.value_sum[:4], [-0.8, -0.8, 0.8, -0.8])
    np.testing.assert_array_equal(tree.visits[:4], [1, 1, 1, 1])


def test_single_agent_never_negates():
    tree = chain([0, 0, 0])
    backup(tree, 2, -0.3)
    np.testing.assert_allclose(tree.value_sum[:3], [-0.3, -0.3, -0.3])


def test_a_player_moving_twice_keeps_the_sign():
    tree = chain([0, 1, 1, 0])  # player 1 moves twice in a row
    backup(tree, 3, 1.0)
    np.testing.assert_allclose(tree.value_sum[:4], [1.0, 1.0, -1.0, -1.0])


def test_value_for_player():
    assert value_for_player(0.5, 0, 0) == 0.5
    assert value_for_player(0.5, 0, 1) == -0.5


@given(players=st.lists(st.integers(0, 1), min_size=1, max_size=12), value=st.floats(-1, 1))
def test_backup_path_equals_backup(players, value):
    a, b = chain(players), chain(players)
    path = list(range(len(players)))
    backup(a, path[-1], value)
    backup_path(b, path, value)
    np.testing.assert_array_equal(a.visits[: len(players)], b.visits[: len(players)])
    np.testing.assert_allclose(a.value_sum[: len(players)], b.value_sum[: len(players)])


@given(players=st.lists(st.integers(0, 1), min_size=1, max_size=8), amount=st.integers(1, 3))
def test_virtual_loss_is_reverted_by_backup(players, amount):
    a, b = chain(players), chain(players)
    path = list(range(len(players)))
    apply_virtual_loss(a, path, amount)
    assert a.virtual_loss[: len(players)].tolist() == [amount] * len(players)
    backup(a, path[-1], 0.25, virtual_loss=amount)
    backup(b, path[-1], 0.25)
    np.testing.assert_array_equal(a.visits[: len(players)], b.visits[: len(players)])
    np.testing.assert_allclose(a.value_sum[: len(players)], b.value_sum[: len(players)])
    assert not a.virtual_loss[: len(players)].any()


@pytest.mark.parametrize("amount", [1, 2])
def test_negative_virtual_loss_reverts(amount):
    tree = chain([0, 1, 0])
    apply_virtual_loss(tree, [0, 1, 2], amount)
    apply_virtual_loss(tree, [0, 1, 2], -amount)
    assert not tree.visits[:3].any() and not tree.value_sum[:3].any()


def test_alternate_is_the_rule_for_trees_without_players() -> None:
    """The array form used by batched trees: negate for odd distances in two-player games."""
    assert alternate(0.5, 0) == 0.5
    assert alternate(0.5, 3) == -0.5
    assert alternate(0.5, 3, two_player=False) == 0.5
    values = np.array([0.25, -1.0, 0.5, 0.0])
    plies = np.array([0, 1, 2, 7])
    np.testing.assert_array_equal(alternate(values, plies), [0.25, 1.0, 0.5, 0.0])
    np.testing.assert_array_equal(alternate(values, plies, two_player=False), values)


@given(st.lists(st.integers(0, 1), min_size=2, max_size=8), st.floats(-1, 1))
def test_alternate_agrees_with_backup_on_alternating_chains(start: list[int], value: float) -> None:
    players = [(start[0] + d) % 2 for d in range(len(start))]
    tree = chain(players)
    backup(tree, len(players) - 1, value)
    for depth in range(1, len(players)):
        # Node ``depth`` stores the value for the player at depth - 1, plies from the leaf.
        expected = alternate(value, len(players) - 1 - (depth - 1))
        assert tree.value_sum[depth] == pytest.approx(expected)
