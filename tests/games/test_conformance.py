"""Every shipped game passes the public conformance checks users run on their own states."""

from __future__ import annotations

import numpy as np
import pytest

from treesearch import LegalActionsPolicy, RandomRollout, UniformEvaluator
from treesearch.games import Bandit, Chain, ConnectFour, DeceptiveTrap, ExplicitTree, TicTacToe
from treesearch.testing import check_evaluator, check_policy, check_state

GAMES = [
    TicTacToe(),
    TicTacToe.from_moves([4, 0]),
    ConnectFour(),
    ConnectFour.from_moves([3, 3, 2]),
    Bandit([0.1, 0.7, 0.3]),
    Chain(4),
    DeceptiveTrap(4),
    ExplicitTree.from_nested({"a": {"x": 1.0, "y": -1.0}, "b": 0.0}, two_player=True),
]


@pytest.mark.parametrize("state", GAMES, ids=lambda s: type(s).__name__)
def test_games_conform(state):
    check_state(state, rng=np.random.default_rng(0), require_outcomes=True)


@pytest.mark.parametrize("state", GAMES[:4], ids=lambda s: type(s).__name__)
def test_builtin_policies_and_evaluators_conform(state):
    rng = np.random.default_rng(0)
    check_policy(LegalActionsPolicy(), [state], rng=rng)
    check_evaluator(UniformEvaluator(), [state], rng=rng)
    check_evaluator(RandomRollout(), [state], rng=rng, deterministic=False)
