"""Typical user mistakes get messages that say what to fix (found by a new-user walkthrough)."""

from __future__ import annotations

import numpy as np
import pytest

from treesearch import (
    BFS,
    DFS,
    DVTS,
    MCTS,
    BeamSearch,
    BestFirst,
    BestOfN,
    Budget,
    Candidate,
    LegalActionsPolicy,
    UniformEvaluator,
)
from treesearch.games import TicTacToe


def rng():
    return np.random.default_rng(0)


class Cheater:
    def propose(self, states, *, rng, max_tokens=None):
        return [[Candidate(99, 1.0)] for _ in states]


@pytest.mark.parametrize(
    "make",
    [
        lambda p, v: BFS(p, v),
        lambda p, v: DFS(p, v, threshold=0.0),
        lambda p, v: BestFirst(p, v),
        lambda p, v: BestOfN(p, v, n=2),
        lambda p, v: BeamSearch(p, v, n=4, beam_width=2),
        lambda p, v: DVTS(p, v, n=4, beam_width=2),
        lambda p, v: MCTS(policy=p, verifier=v),
    ],
)
def test_every_search_refuses_illegal_actions(make):
    search = make(Cheater(), lambda s: [0.5] * len(s))
    with pytest.raises(ValueError, match=r"illegal action 99 for tree node 0 .*legal actions"):
        search.search(TicTacToe(), Budget(simulations=5), rng=rng())


def test_verifier_errors_name_the_verifier():
    def my_prm(states):
        return [0.0, 0.0]

    with pytest.raises(ValueError, match=r"verifier .*my_prm returned 2 scores for 1 states"):
        MCTS(verifier=my_prm).search(TicTacToe(), Budget(simulations=3), rng=rng())


def test_a_verifier_written_for_one_state_gets_a_hint():
    def one_state_prm(state):
        return state.winner  # a list of states has no .winner

    with pytest.raises(AttributeError) as info:
        MCTS(verifier=one_state_prm).search(TicTacToe(), Budget(simulations=3), rng=rng())
    assert "called with a list of 1 state(s)" in "\n".join(info.value.__notes__)


def test_roots_that_are_not_states():
    with pytest.raises(TypeError, match=r"got the class TicTacToe; pass an instance"):
        MCTS(verifier=lambda s: [0.0] * len(s)).search(TicTacToe, Budget(simulations=3), rng=rng())

    class NoToPlay:
        key = 0

        def legal_actions(self):
            return (0,)

        def step(self, a):
            return self

        def is_terminal(self):
            return False

        def terminal_value(self):
            return None

    with pytest.raises(TypeError, match="lacks to_play"):
        MCTS(verifier=lambda s: [0.0] * len(s)).search(NoToPlay(), Budget(simulations=3), rng=rng())


def test_a_flat_candidate_list_is_named():
    class Flat:
        def propose(self, states, *, rng, max_tokens=None):
            return [Candidate(a) for a in states[0].legal_actions()]

    with pytest.raises(TypeError, match="flat list of Candidates"):
        MCTS(policy=Flat(), verifier=lambda s: [0.0] * len(s)).search(
            TicTacToe(), Budget(simulations=3), rng=rng()
        )


class Stuck:
    """Claims not to be over yet lists no moves: what a step() that mutates its state leaves."""

    to_play = 0
    key = "stuck"

    def legal_actions(self):
        return ()

    def step(self, action):
        raise ValueError("no moves")

    def is_terminal(self):
        return False

    def terminal_value(self):
        return None


@pytest.mark.parametrize(
    "search",
    [
        MCTS(UniformEvaluator()),
        MCTS(UniformEvaluator(), leaves_per_round=2),
        BeamSearch(LegalActionsPolicy(), lambda s: [0.5] * len(s), n=2, beam_width=2),
    ],
)
def test_an_empty_expansion_points_to_step_and_check_state(search):
    with pytest.raises(ValueError, match=r"empty expansion.*step\(\).*check_state"):
        search.search(Stuck(), Budget(simulations=10), rng=rng())


def test_unhashable_actions_are_named():
    class ListAction:
        def propose(self, states, *, rng, max_tokens=None):
            return [[Candidate([1, 2])] for _ in states]

    with pytest.raises(TypeError, match=r"returned action \[1, 2\] \(list\).*must be hashable"):
        BFS(ListAction(), lambda s: [0.5] * len(s)).search(
            TicTacToe(), Budget(simulations=3), rng=rng()
        )


def test_callable_descriptions():
    import functools

    from treesearch.interfaces import describe_callable, describe_not_a_state

    def prm(states, scale):
        return [scale] * len(states)

    assert describe_callable(prm, "verifier") == "verifier test_callable_descriptions.<locals>.prm"
    assert describe_callable(functools.partial(prm, scale=1.0), "verifier").endswith(".prm")
    assert describe_callable(len, "verifier") == "verifier len"
    assert describe_callable(TicTacToe, "verifier") == "verifier TicTacToe (a class)"

    class BrokenKey(TicTacToe):
        @property
        def key(self):
            return self.no_such_attribute

    assert "key raised AttributeError" in describe_not_a_state(BrokenKey())
