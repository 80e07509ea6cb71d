"""Tests for treesearch.evaluators.RandomRollout: the generic playout and the game fast path.

The fast path (``state.random_playout``) must give exactly the generic loop's values for the
same generator, so that searches give identical trees whichever path runs.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from treesearch import MCTS, Budget, RandomRollout
from treesearch.games import Chain, ConnectFour, TicTacToe
from treesearch.testing import check_evaluator

GAMES = [ConnectFour, TicTacToe]


class Plain:
    """A thin proxy over a game state without ``random_playout``: forces the generic loop."""

    __slots__ = ("inner",)

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    @property
    def to_play(self) -> int:
        return self.inner.to_play

    @property
    def key(self) -> Any:
        return self.inner.key

    def legal_actions(self) -> tuple[int, ...]:
        return self.inner.legal_actions()

    def is_terminal(self) -> bool:
        return self.inner.is_terminal()

    def terminal_value(self) -> float | None:
        return self.inner.terminal_value()

    def step(self, action: int) -> Plain:
        return Plain(self.inner.step(action))


def _random_position(game: type, rng: random.Random) -> Any:
    state = game()
    for _ in range(rng.randrange(game.num_actions * 6 + 1)):
        if state.is_terminal():
            break
        state = state.step(rng.choice(state.legal_actions()))
    return state


def _both(state: Any, seed: int, max_depth: int = 10_000) -> tuple[tuple, tuple]:
    """(fast value, next draw) and (generic value, next draw) from the same seed."""
    evaluator = RandomRollout(max_depth=max_depth)
    fast_rng, generic_rng = np.random.default_rng(seed), np.random.default_rng(seed)
    fast = evaluator.evaluate([state], rng=fast_rng)[0].value
    generic = evaluator.evaluate([Plain(state)], rng=generic_rng)[0].value
    return (fast, fast_rng.random()), (generic, generic_rng.random())


def test_proxy_has_no_fast_path() -> None:
    assert hasattr(ConnectFour(), "random_playout")
    assert not hasattr(Plain(ConnectFour()), "random_playout")


@pytest.mark.parametrize("game", GAMES, ids=lambda g: g.__name__)
def test_fast_playout_equals_generic_on_random_positions(game: type) -> None:
    rng = random.Random(1234)
    seen = set()
    for seed in range(400):
        state = _random_position(game, rng)
        fast, generic = _both(state, seed)
        assert fast == generic, (state, seed)
        seen.add(fast[0])
    assert {-1.0, 1.0} <= seen <= {-1.0, 0.0, 1.0}  # random connect-four games rarely draw


@pytest.mark.parametrize("game", GAMES, ids=lambda g: g.__name__)
def test_fast_playout_equals_generic_with_short_max_depth(game: type) -> None:
    rng = random.Random(99)
    for seed in range(300):
        state = _random_position(game, rng)
        max_depth = rng.randrange(1, 12)
        fast, generic = _both(state, seed, max_depth)
        assert fast == generic, (state, seed, max_depth)


@pytest.mark.parametrize("game", GAMES, ids=lambda g: g.__name__)
def test_fast_playout_equals_generic_across_blocks(game: type) -> None:
    """Several rollouts from one generator: the block boundaries line up between the paths."""
    rng = random.Random(5)
    for seed in range(50):
        state = _random_position(game, rng)
        evaluator = RandomRollout(num_rollouts=7)
        a = evaluator.evaluate([state, state], rng=np.random.default_rng(seed))
        b = evaluator.evaluate([Plain(state), Plain(state)], rng=np.random.default_rng(seed))
        assert [e.value for e in a] == [e.value for e in b]


@settings(deadline=None)
@given(
    st.sampled_from(GAMES),
    st.lists(st.integers(0, 1000), max_size=45),
    st.integers(0, 2**32 - 1),
    st.integers(1, 50),
)
def test_fast_playout_equals_generic_property(
    game: type, choices: list[int], seed: int, max_depth: int
) -> None:
    state = game()
    for c in choices:
        if state.is_terminal():
            break
        legal = state.legal_actions()
        state = state.step(legal[c % len(legal)])
    for depth in (max_depth, 10_000):
        fast, generic = _both(state, seed, depth)
        assert fast == generic


@pytest.mark.parametrize("game", GAMES, ids=lambda g: g.__name__)
def test_priors_are_uniform_over_legal_moves(game: type) -> None:
    rng = random.Random(3)
    states = [_random_position(game, rng) for _ in range(30)]
    evaluations = RandomRollout().evaluate(states, rng=np.random.default_rng(0))
    for state, ev in zip(states, evaluations, strict=True):
        n = len(state.legal_actions())
        assert ev.priors.shape == (n,)
        if n:
            np.testing.assert_array_equal(ev.priors, np.full(n, 1.0 / n))
        assert ev.value in (-1.0, 0.0, 1.0)
    live = [s for s in states if not s.is_terminal()]
    check_evaluator(
        RandomRollout(num_rollouts=3), live, rng=np.random.default_rng(1), deterministic=True
    )


def test_max_depth_cut_off_counts_zero() -> None:
    # X to move; the only empty cell, 8, completes X's diagonal 0-4-8.
    state = TicTacToe.from_string("XOX OXO OX.")
    for s in (state, Plain(state)):
        assert RandomRollout().evaluate([s], rng=np.random.default_rng(0))[0].value == 1.0
        cut = RandomRollout(max_depth=1).evaluate([s], rng=np.random.default_rng(0))
        assert cut[0].value == 0.0
    # A connect-four playout from the empty board needs at least 7 moves to end.
    for seed in range(20):
        for s in (ConnectFour(), Plain(ConnectFour())):
            ev = RandomRollout(max_depth=7).evaluate([s], rng=np.random.default_rng(seed))
            assert ev[0].value == 0.0


def test_forced_results_give_the_known_value() -> None:
    cases = [
        (TicTacToe.from_string("XOX OXO OX."), 1.0),  # the only move wins for the mover
        (TicTacToe.from_moves([0, 1, 2, 4, 3, 5, 7, 6]), 0.0),  # the only move draws
        (TicTacToe.from_moves([0, 3, 1, 4, 2]), -1.0),  # already lost for O, to move
        (ConnectFour.from_string("OXO.XOX/OXO.XOX/XOX.OXO/XOX.OXO/OXO.XOX/XXX.OOO"), 1.0),
        (ConnectFour.from_moves([0, 1, 0, 1, 0, 1, 0]), -1.0),  # X has four; O to move
    ]
    for state, expected in cases:
        for s in (state, Plain(state)):
            ev = RandomRollout(num_rollouts=5).evaluate([s], rng=np.random.default_rng(0))
            assert ev[0].value == expected


def test_states_without_the_fast_path_use_the_generic_loop() -> None:
    # Chain (single agent) has no random_playout; the reward is found only by all-ones play.
    chain = Chain(1, reward=1.0)
    assert not hasattr(chain, "random_playout")
    values = [
        RandomRollout().evaluate([chain], rng=np.random.default_rng(s))[0].value for s in range(40)
    ]
    assert set(values) == {0.0, 1.0}


_SPY_CALLS: list[dict] = []


class _Spy(TicTacToe):
    __slots__ = ()

    def random_playout(self, rng: np.random.Generator, **kwargs: Any) -> float:
        _SPY_CALLS.append(kwargs)
        return 0.5


def test_random_playout_protocol_is_called_with_block_and_max_depth() -> None:
    state = _Spy._make(0, 0, 0, None)
    _SPY_CALLS.clear()
    ev = RandomRollout(num_rollouts=3, max_depth=17).evaluate([state], rng=np.random.default_rng(0))
    assert ev[0].value == 0.5
    assert _SPY_CALLS == [{"block": 64, "max_depth": 17}] * 3


@pytest.mark.parametrize("game", GAMES, ids=lambda g: g.__name__)
def test_search_trees_match_with_and_without_the_fast_path(game: type) -> None:
    mcts = MCTS(RandomRollout(), selection="uct")
    fast = mcts.search(game(), Budget(simulations=300), rng=np.random.default_rng(4))
    generic = mcts.search(Plain(game()), Budget(simulations=300), rng=np.random.default_rng(4))
    np.testing.assert_array_equal(fast.tree.visits, generic.tree.visits)
    np.testing.assert_array_equal(fast.tree.value_sum, generic.tree.value_sum)
    assert fast.action == generic.action
