"""Backup: the one place where the value-sign convention is implemented.

A value arrives for the player to move at the leaf. Walking up, each node's statistics store
the value for the player to move at its *parent*, so the value is negated whenever the parent's
player differs from the child's (two-player zero-sum games) and never in single-agent problems,
where every node has ``to_play == 0``. The root's own statistics hold the value for the root's
player to move. See ``docs/concepts.md``.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np

from .tree import Tree

_V = TypeVar("_V", float, np.ndarray)

__all__ = [
    "alternate",
    "apply_virtual_loss",
    "backup",
    "backup_path",
    "value_for_parent",
    "value_for_player",
]


def value_for_parent(tree: Tree, node: int, value: float) -> float:
    """Convert ``value`` (for the player to move at ``node``) to the parent's player."""
    parent = tree.parent[node]
    if parent >= 0 and tree.to_play[parent] != tree.to_play[node]:
        return -value
    return value


def value_for_player(value: float, player: int, viewer: int) -> float:
    """Convert ``value`` (for ``player``) to ``viewer``'s point of view: the same player keeps
    it, the opponent in a two-player zero-sum game gets its negation. For code outside the tree,
    such as rollouts, that must turn a terminal value into the value of the player who started.
    """
    return value if player == viewer else -value


def alternate(value: _V, plies: int | np.ndarray, *, two_player: bool = True) -> _V:
    """``value`` for the player to move ``plies`` plies away, in trees whose players alternate
    every ply (two-player zero-sum): negated for an odd distance, kept for an even one; kept
    always for one agent (``two_player=False``). The array form of the rule, for batched trees
    that store no per-node player (:mod:`treesearch.search.batched`); ``value`` and ``plies``
    may be arrays of the same shape.
    """
    if not two_player:
        return value
    if isinstance(plies, np.ndarray):
        return np.where(plies & 1, -value, value)  # type: ignore[return-value]
    return -value if plies & 1 else value


def backup(tree: Tree, leaf: int, value: float, *, virtual_loss: int = 0) -> None:
    """Add one visit and ``value`` (for the player to move at ``leaf``) along the leaf's path.

    ``virtual_loss`` reverts that much virtual loss, as applied by :func:`apply_virtual_loss`
    during selection, on every node of the path.
    """
    backup_path(tree, tree.path(leaf), value, virtual_loss=virtual_loss)


def backup_path(tree: Tree, path: list[int], value: float, *, virtual_loss: int = 0) -> None:
    """:func:`backup` along a known root-to-leaf ``path``; the one implementation of the rule.

    Iterative, from the leaf up: each node's statistics get the value for its parent's player,
    negated whenever the player changes; the root gets it for its own player.
    """
    to_play = tree.to_play
    visits = tree.visits
    value_sum = tree.value_sum
    player = to_play[path[-1]]
    for i in range(len(path) - 1, 0, -1):
        parent_player = to_play[path[i - 1]]
        if parent_player != player:
            value = -value
            player = parent_player
        node = path[i]
        visits[node] += 1 - virtual_loss
        value_sum[node] += value + virtual_loss
    visits[path[0]] += 1 - virtual_loss
    value_sum[path[0]] += value + virtual_loss
    if virtual_loss:
        tree.virtual_loss[path] -= virtual_loss


def apply_virtual_loss(tree: Tree, path: list[int], amount: int) -> None:
    """Count ``amount`` pretend losses on every node of ``path`` so that the next selection in
    the same round prefers other leaves; :func:`backup` with ``virtual_loss=amount`` reverts it
    (as does a negative ``amount``, for a round that is abandoned).
    """
    tree.visits[path] += amount
    tree.value_sum[path] -= amount
    tree.virtual_loss[path] += amount
