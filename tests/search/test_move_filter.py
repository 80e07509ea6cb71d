"""``MCTS(move_filter=...)``: every expanded node gets exactly the children the filter names
(all legal actions where it names none), in both search loops, combined with decisive moves."""

from __future__ import annotations

import numpy as np
import pytest

from treesearch import MCTS, Budget
from treesearch.games import Gomoku, TicTacToe
from treesearch.testing import HashEvaluator, assert_tree_invariants


def corner_first(state):
    """Names the free corners of a tic-tac-toe board, if any."""
    return tuple(a for a in (0, 2, 6, 8) if a in state.legal_actions()) or None


@pytest.mark.parametrize("leaves_per_round", [1, 3])
def test_every_expanded_node_has_the_filtered_children(leaves_per_round: int) -> None:
    mcts = MCTS(HashEvaluator(), move_filter=corner_first, leaves_per_round=leaves_per_round)
    result = mcts.search(TicTacToe(), Budget(simulations=300), rng=np.random.default_rng(0))
    tree = result.tree
    assert_tree_invariants(tree)
    expanded = 0
    for node in range(tree.num_nodes):
        if not tree.is_expanded(node):
            continue
        state = tree.state(node)
        named = corner_first(state)
        children = [tree.actions[child] for child in tree.children(node)]
        assert children == list(named or state.legal_actions())
        priors = tree.prior[tree.children(node)]
        assert priors.sum() == pytest.approx(1.0)
        expanded += 1
    assert expanded > 20
    assert set(result.actions) == {0, 2, 6, 8}


def test_decisive_moves_come_before_the_filter() -> None:
    # Black to move can win at e5 (40): forced_actions() names it; the filter would not.
    state = Gomoku.from_moves([36, 0, 37, 1, 38, 2, 39, 3], size=9)
    assert state.forced_actions() == (40,)
    last_cell = lambda s: (max(s.legal_actions()),)  # noqa: E731
    mcts = MCTS(HashEvaluator(), decisive_moves=True, move_filter=last_cell)
    result = mcts.search(state, Budget(simulations=20), rng=np.random.default_rng(0))
    assert result.actions == (40,)
    quiet = Gomoku.from_moves([40], size=9)
    result = mcts.search(quiet, Budget(simulations=20), rng=np.random.default_rng(0))
    assert result.actions == (80,)


def test_bad_filters_are_refused() -> None:
    with pytest.raises(TypeError, match="move_filter must be a function"):
        MCTS(HashEvaluator(), move_filter=(0, 2))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="move_filter applies to evaluator searches"):
        MCTS(verifier=lambda states: [0.0] * len(states), move_filter=corner_first)
    mcts = MCTS(HashEvaluator(), move_filter=lambda s: (99,))
    with pytest.raises(ValueError, match=r"move_filter of .* named 99, which is not a legal"):
        mcts.search(TicTacToe(), Budget(simulations=5), rng=np.random.default_rng(0))
