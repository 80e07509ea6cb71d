"""MCTS scores wide nodes (more than 32 children) with its own vectorised PUCT and a shortcut
for UCT's unvisited children; both must pick exactly the argmax of the reference formulas in
treesearch.selection. Also Tree.reserve, which the fused loop calls before it starts."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from treesearch import MCTS, Budget, RandomRollout, UniformEvaluator
from treesearch.games import Gomoku
from treesearch.selection import alphazero_c, puct_scores, uct_scores
from treesearch.tree import Tree

WIDTH = 49  # a 7x7 Gomoku root: wide enough for the vectorised path


def _wide_tree(visits: list[int], values: list[float], priors: np.ndarray) -> Tree:
    tree = Tree(Gomoku(size=7), capacity=64)
    children = tree.add_children(Tree.ROOT, Gomoku(size=7).legal_actions(), priors)
    for child, n, v in zip(children, visits, values, strict=True):
        tree.visits[child] = n
        tree.value_sum[child] = v * n  # no visits, no value: as every search leaves it
    tree.visits[Tree.ROOT] = max(sum(visits), 1)
    return tree


@settings(deadline=None)
@given(
    st.lists(st.integers(0, 6), min_size=WIDTH, max_size=WIDTH),
    st.lists(st.floats(-1, 1), min_size=WIDTH, max_size=WIDTH),
    st.lists(st.floats(0.0, 1.0), min_size=WIDTH, max_size=WIDTH),
    st.sampled_from([0.0, -0.3, 1.0, -1.0]),
    st.sampled_from([None, 19652.0]),
    st.floats(0.1, 5.0),
)
def test_wide_puct_picks_the_reference_argmax(
    visits: list[int],
    values: list[float],
    raw_priors: list[float],
    fpu: float,
    c_base: float | None,
    c: float,
) -> None:
    priors = np.asarray(raw_priors) + 1e-3
    priors /= priors.sum()
    tree = _wide_tree(visits, values, priors)
    mcts = MCTS(UniformEvaluator(), selection="puct", c=c, c_base=c_base, fpu=fpu)
    parent_visits = int(tree.visits[Tree.ROOT])
    scale = c if c_base is None else alphazero_c(parent_visits, c_base=c_base, c_init=c)
    start, end = 1, 1 + WIDTH
    reference = puct_scores(
        tree.visits[start:end], tree.value_sum[start:end], priors, parent_visits, c=scale, fpu=fpu
    )
    assert mcts._best_child(tree, Tree.ROOT, start, end, None) == int(np.argmax(reference))
    noised = np.roll(priors, 3)  # root priors passed in (Dirichlet noise) are used instead
    reference = puct_scores(
        tree.visits[start:end], tree.value_sum[start:end], noised, parent_visits, c=scale, fpu=fpu
    )
    assert mcts._best_child(tree, Tree.ROOT, start, end, noised) == int(np.argmax(reference))


@settings(deadline=None)
@given(
    st.lists(st.integers(0, 6), min_size=WIDTH, max_size=WIDTH),
    st.lists(st.floats(-1, 1), min_size=WIDTH, max_size=WIDTH),
    st.sampled_from([math.inf, 0.0, 0.5]),
)
def test_wide_uct_picks_the_reference_argmax(
    visits: list[int], values: list[float], fpu: float
) -> None:
    tree = _wide_tree(visits, values, np.full(WIDTH, 1.0 / WIDTH))
    mcts = MCTS(RandomRollout(), selection="uct", c=1.5, fpu=fpu)
    start, end = 1, 1 + WIDTH
    reference = uct_scores(
        tree.visits[start:end],
        tree.value_sum[start:end],
        int(tree.visits[Tree.ROOT]),
        c=1.5,
        fpu=fpu,
    )
    assert mcts._best_child(tree, Tree.ROOT, start, end, None) == int(np.argmax(reference))


@pytest.mark.parametrize("leaves_per_round", [1, 4])
def test_searches_leave_unvisited_children_without_value(leaves_per_round: int) -> None:
    """The wide PUCT path relies on it: a child with no visit has a value sum of exactly 0,
    also after virtual loss was added and taken back."""
    mcts = MCTS(UniformEvaluator(value=0.3), leaves_per_round=leaves_per_round, fpu=-0.2)
    result = mcts.search(Gomoku(size=7), Budget(simulations=300), rng=np.random.default_rng(1))
    tree = result.tree
    n = tree.num_nodes
    unvisited = tree.visits[:n] == 0
    assert unvisited.any() and (tree.value_sum[:n][unvisited] == 0.0).all()
    assert not np.signbit(tree.value_sum[:n][unvisited]).any()


def test_reserve_grows_once_and_respects_max_nodes() -> None:
    tree = Tree(Gomoku(size=5), capacity=4)
    tree.add_children(Tree.ROOT, [0, 1], [0.5, 0.5])
    tree.visits[1] = 7
    tree.reserve(1000)
    assert tree.capacity >= 1003 and tree.num_nodes == 3
    assert tree.visits[1] == 7 and tree.first_child[0] == 1 and tree.parent[2] == 0
    assert tree.first_child[5] == Tree.UNEXPANDED and math.isnan(tree.proven[5])  # fresh slots
    capacity = tree.capacity
    tree.reserve(0)
    tree.reserve(-5)
    assert tree.capacity == capacity
    capped = Tree(Gomoku(size=5), capacity=4, max_nodes=50)
    capped.reserve(10**6)  # clamped to max_nodes, no TreeFull
    assert capped.capacity == 50


def test_fused_search_reserves_for_its_budget() -> None:
    mcts = MCTS(UniformEvaluator())
    result = mcts.search(Gomoku(size=9), Budget(simulations=20), rng=np.random.default_rng(0))
    # 20 simulations of at most 81 children each: one allocation, no doubling on the way.
    assert result.tree.capacity == 1 + 20 * 81
    assert result.tree.num_nodes <= result.tree.capacity
