"""Decisive and anti-decisive moves (Teytaud & Teytaud 2010): ``Gomoku.winning_moves`` and
``forced_actions`` against a brute-force reference, and ``MCTS(decisive_moves=True)``."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from treesearch import MCTS, Budget, UniformEvaluator
from treesearch.games import Gomoku, TicTacToe
from treesearch.testing import HashEvaluator, assert_tree_invariants


def brute_winning_moves(state: Gomoku, player: int) -> tuple[int, ...]:
    """Cells where ``player`` would complete a winning line, by counting on the board."""
    size, k, exact = state.size, state.k, state.exact
    board = state.board
    out = []
    for action in state.legal_actions():
        b = board.copy()
        r, c = divmod(action, size)
        b[r, c] = player + 1
        for dr, dc in ((0, 1), (1, 0), (1, 1), (1, -1)):
            n = 1
            for sign in (1, -1):
                rr, cc = r + sign * dr, c + sign * dc
                while 0 <= rr < size and 0 <= cc < size and b[rr, cc] == player + 1:
                    n += 1
                    rr, cc = rr + sign * dr, cc + sign * dc
            if (n == k) if exact else (n >= k):
                out.append(action)
                break
    return tuple(out)


@settings(deadline=None, max_examples=60)
@given(
    variant=st.sampled_from([(9, 5, False), (7, 4, False), (9, 5, True), (6, 3, True)]),
    seed=st.integers(0, 10_000),
    length=st.integers(0, 40),
)
def test_winning_moves_equal_brute_force(variant, seed: int, length: int) -> None:
    size, k, exact = variant
    rng = np.random.default_rng(seed)
    state = Gomoku(size=size, k=k, exact=exact)
    for _ in range(length):
        if state.is_terminal():
            break
        state = state.step(int(rng.choice(state.legal_actions())))
    if state.is_terminal():
        assert state.winning_moves(0) == state.winning_moves(1) == ()
        assert state.forced_actions() is None
        return
    for player in (0, 1):
        assert state.winning_moves(player) == brute_winning_moves(state, player)
    mine = brute_winning_moves(state, state.to_play)
    theirs = brute_winning_moves(state, 1 - state.to_play)
    assert state.forced_actions() == (mine or theirs or None)


def test_forced_actions_by_hand() -> None:
    # Black (to move) has four in row 4 (e5..h5 as actions 40..43... built by moves).
    black_four = Gomoku.from_moves([36, 0, 37, 1, 38, 2, 39], size=9)  # white to move
    # White must block black's four at 40 (a5..d5 = 36..39, so e5 = 40): one end is the edge.
    assert black_four.to_play == 1
    assert black_four.forced_actions() == (40,)
    # If white also had a four, white's own win comes first.
    white_four = Gomoku.from_moves([36, 0, 37, 1, 38, 2, 39, 3, 80], size=9)
    assert white_four.to_play == 1
    assert white_four.winning_moves(1) == (4,)
    assert white_four.forced_actions() == (4,)
    assert Gomoku(size=9).forced_actions() is None
    with pytest.raises(ValueError, match="player must be 0 or 1"):
        Gomoku(size=9).winning_moves(2)


def test_overline_is_not_a_win_under_the_exact_rule() -> None:
    # Black a5 b5 c5 d5 and f5: e5 makes six in a row (an overline).
    moves = [36, 0, 37, 1, 38, 2, 39, 3, 41]
    assert 40 in Gomoku.from_moves(moves, size=9).winning_moves(0)
    assert 40 not in Gomoku.from_moves(moves, size=9, exact=True).winning_moves(0)


def test_mcts_expands_only_forced_moves() -> None:
    must_block = Gomoku.from_moves([36, 0, 37, 1, 38, 2, 39], size=9)
    mcts = MCTS(HashEvaluator(), decisive_moves=True)
    result = mcts.search(must_block, Budget(simulations=50), rng=np.random.default_rng(0))
    assert result.actions == (40,)
    assert result.action == 40
    assert_tree_invariants(result.tree)
    # Without the option every empty cell is a child.
    plain = MCTS(HashEvaluator()).search(
        must_block, Budget(simulations=50), rng=np.random.default_rng(0)
    )
    assert len(plain.actions) == len(must_block.legal_actions())
    # Every expanded node of the decisive tree has only forced children where some exist.
    tree = result.tree
    for node in range(tree.num_nodes):
        if tree.is_expanded(node):
            forced = tree.state(node).forced_actions()
            if forced:
                kids = tree.children(node)
                assert tuple(tree.actions[i] for i in kids) == forced


def test_decisive_search_finds_a_block_that_plain_puct_misses() -> None:
    """Uniform priors spread 200 simulations over 70 moves; with decisive moves the only
    move that does not lose at once is the one searched."""
    must_block = Gomoku.from_moves([36, 0, 37, 1, 38, 2, 39], size=9)
    plain = MCTS(UniformEvaluator()).search(
        must_block, Budget(simulations=200), rng=np.random.default_rng(1)
    )
    assert plain.action != 40  # plain PUCT with uniform priors does not find the block
    general = Budget(simulations=200, wall_time=1e9)  # the general loop
    for budget in (Budget(simulations=200), general):
        result = MCTS(UniformEvaluator(), decisive_moves=True).search(
            must_block, budget, rng=np.random.default_rng(1)
        )
        assert result.action == 40


def test_decisive_moves_needs_forced_actions() -> None:
    with pytest.raises(TypeError, match="forced_actions"):
        MCTS(HashEvaluator(), decisive_moves=True).search(
            TicTacToe(), Budget(simulations=5), rng=np.random.default_rng(0)
        )
    with pytest.raises(TypeError, match="decisive_moves must be True or False"):
        MCTS(HashEvaluator(), decisive_moves="yes")  # type: ignore[arg-type]
