"""MCTS has a fused loop for the common case and a general loop; both must behave the same.

Adding ``wall_time`` to a budget forces the general loop (the fused one only takes budgets that
limit simulations alone), so each case runs twice and the trees must match exactly. Also the
regressions found by the second review.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from treesearch import (
    MCTS,
    BestOfN,
    Budget,
    Candidate,
    Evaluation,
    RandomRollout,
    UniformEvaluator,
    reuse_subtree,
)
from treesearch.games import Chain, ConnectFour, ExplicitTree, TicTacToe
from treesearch.testing import HashEvaluator, assert_tree_invariants


def both_paths(mcts: MCTS, root, sims: int, seed: int = 0):
    fast = mcts.search(root, Budget(simulations=sims), rng=np.random.default_rng(seed))
    general = mcts.search(
        root, Budget(simulations=sims, wall_time=1e9), rng=np.random.default_rng(seed)
    )
    return fast, general


def same(fast, general) -> None:
    assert fast.tree.to_dict() == general.tree.to_dict()
    assert fast.action == general.action
    assert fast.stop_reason == general.stop_reason
    assert (fast.usage.simulations, fast.usage.expansions, fast.usage.policy_calls) == (
        general.usage.simulations,
        general.usage.expansions,
        general.usage.policy_calls,
    )
    assert fast.root_value == pytest.approx(general.root_value, nan_ok=True)


@settings(deadline=None)
@given(
    game=st.sampled_from(["tictactoe", "connect_four"]),
    moves=st.lists(st.integers(0, 8), max_size=5),
    sims=st.integers(1, 150),
    selection=st.sampled_from(["uct", "puct"]),
    solver=st.booleans(),
    noise=st.booleans(),
    fpu=st.sampled_from([None, "parent", -0.5]),
    max_nodes=st.sampled_from([None, 40]),
    seed=st.integers(0, 1000),
)
def test_fused_and_general_loops_agree(
    game, moves, sims, selection, solver, noise, fpu, max_nodes, seed
):
    state = TicTacToe() if game == "tictactoe" else ConnectFour()
    for m in moves:
        legal = state.legal_actions()
        if state.is_terminal():
            break
        state = state.step(legal[m % len(legal)])
    if state.is_terminal():
        return
    evaluator = RandomRollout() if selection == "uct" else HashEvaluator()
    mcts = MCTS(
        evaluator,
        selection=selection,
        solver=solver,
        fpu=fpu,
        max_nodes=max_nodes,
        dirichlet_alpha=0.3 if noise and selection == "puct" else None,
        c_base=19652 if selection == "puct" else None,
    )
    same(*both_paths(mcts, state, sims, seed))


def test_paths_agree_when_continuing_a_reused_tree():
    mcts = MCTS(HashEvaluator())
    first = mcts.search(ConnectFour(), Budget(simulations=100), rng=np.random.default_rng(0))
    sub_a = reuse_subtree(first.tree, first.action)
    sub_b = reuse_subtree(first.tree, first.action)
    a = mcts.search(sub_a, Budget(simulations=50), rng=np.random.default_rng(1))
    b = mcts.search(sub_b, Budget(simulations=50, wall_time=1e9), rng=np.random.default_rng(1))
    same(a, b)


def test_solved_is_reported_by_both_paths():
    root = ExplicitTree.from_nested({"a": 1.0, "b": 0.0})
    fast, general = both_paths(MCTS(RandomRollout(), selection="uct"), root, 2)
    assert fast.stop_reason == general.stop_reason == "solved"


class Fragile:
    """Depth-2 game whose "boom" child cannot be created: step raises."""

    to_play = 0

    def __init__(self, path=()):
        self.path = path

    @property
    def key(self):
        return self.path

    def legal_actions(self):
        if len(self.path) == 0:
            return (0, 1, 2, 3)
        if len(self.path) == 1:  # child 0 lists "ok" first, the others "boom" first
            return ("ok", "boom") if self.path[0] == 0 else ("boom", "ok")
        return ()

    def step(self, action):
        if action == "boom":
            raise RuntimeError("cannot build this state")
        return Fragile((*self.path, action))

    def is_terminal(self):
        return len(self.path) == 2

    def terminal_value(self):
        return 0.0 if self.is_terminal() else None


def test_selection_error_leaves_no_virtual_loss():
    mcts = MCTS(UniformEvaluator(), leaves_per_round=4, solver=False)
    tree = mcts.search(Fragile(), Budget(simulations=5), rng=np.random.default_rng(0)).tree
    assert all(tree.is_expanded(child) for child in tree.children(0))
    # Next round: the first path takes child 0 then "ok" and gathers virtual loss; virtual loss
    # sends the second path to child 1, whose first choice "boom" fails while being built.
    with pytest.raises(RuntimeError, match="cannot build"):
        mcts.search(tree, Budget(simulations=20), rng=np.random.default_rng(0))
    assert not tree.virtual_loss[: tree.num_nodes].any()
    assert_tree_invariants(tree)


def test_failed_round_expands_nothing():
    calls = {"n": 0}

    class IllegalOnce:
        def propose(self, states, *, rng, max_tokens=None):
            calls["n"] += 1
            out = [[Candidate(a) for a in s.legal_actions()] for s in states]
            if calls["n"] == 3 and len(out) > 1:
                out[-1] = [Candidate(99)]
            return out

    mcts = MCTS(policy=IllegalOnce(), verifier=lambda s: [0.0] * len(s), leaves_per_round=2)
    tree = mcts.search(TicTacToe(), Budget(simulations=3), rng=np.random.default_rng(0)).tree
    nodes_before = tree.num_nodes
    snapshot = tree.to_dict()
    with pytest.raises(ValueError, match="illegal action 99"):
        mcts.search(tree, Budget(simulations=20), rng=np.random.default_rng(0))
    assert tree.num_nodes == nodes_before
    # Statistics and scores are untouched. (to_play / terminal of children whose states were
    # created while selecting are filled in lazily from the game: a cache, not search data.)
    after = tree.to_dict()
    for name in ("to_play", "terminal"):
        del snapshot["arrays"][name], after["arrays"][name]
    assert after == snapshot
    assert_tree_invariants(tree)
    again = mcts.search(tree, Budget(simulations=10), rng=np.random.default_rng(1))
    assert_tree_invariants(again.tree)


def test_stale_buffer_priors_are_validated_again():
    class Refilling:
        """Hands back one read-only view of a buffer it overwrites; the third call is NaN."""

        def __init__(self):
            self.buffer = np.full(7, 1 / 7)
            self.view = self.buffer[:]
            self.view.flags.writeable = False
            self.calls = 0

        def evaluate(self, states, *, rng):
            self.calls += 1
            self.buffer[:] = np.nan if self.calls == 3 else 1 / 7
            return [Evaluation(self.view, 0.0) for _ in states]

    for budget in (Budget(simulations=10), Budget(simulations=10, wall_time=1e9)):
        with pytest.raises(ValueError, match="non-finite priors"):
            MCTS(Refilling()).search(ConnectFour(), budget, rng=np.random.default_rng(0))


def test_values_outside_bounds_are_refused():
    for budget in (Budget(simulations=3), Budget(simulations=3, wall_time=1e9)):
        with pytest.raises(ValueError, match="value_bounds"):
            MCTS(UniformEvaluator(value=5.0)).search(
                TicTacToe(), budget, rng=np.random.default_rng(0)
            )
    r = MCTS(UniformEvaluator(value=5.0), value_bounds=(-10.0, 10.0)).search(
        TicTacToe(), Budget(simulations=20), rng=np.random.default_rng(0)
    )
    assert r.tree.q(1) <= 10.0


def test_token_budget_with_a_policy_that_spends_none_still_ends():
    r = MCTS(verifier=lambda s: [0.0] * len(s)).search(
        ConnectFour(), Budget(tokens=10), rng=np.random.default_rng(0)
    )
    assert r.stop_reason == "exhausted"
    assert r.usage.tokens == 0


def test_proven_children_counts_stay_exact_with_batched_rounds():
    for seed in range(5):
        r = MCTS(RandomRollout(), selection="uct", leaves_per_round=4).search(
            TicTacToe.from_moves([4]), Budget(simulations=3000), rng=np.random.default_rng(seed)
        )
        tree = r.tree
        n = tree.num_nodes
        actual = np.zeros(n, dtype=int)
        proven = ~np.isnan(tree.proven[1:n])
        np.add.at(actual, tree.parent[1:n][proven], 1)
        np.testing.assert_array_equal(tree.proven_children[:n], actual)


def test_terminal_leaves_without_outcome_are_scored_once():
    scored: list[int] = []

    def verifier(states):
        scored.extend(1 for s in states if s.is_terminal())
        return [0.5] * len(states)

    r = MCTS(UniformEvaluator(), verifier=verifier).search(
        Bandit_with_unknown_outcomes(), Budget(simulations=30), rng=np.random.default_rng(0)
    )
    assert sum(scored) == 2  # two arms, each terminal leaf scored on its first visit only
    assert r.usage.verifier_calls == 2


class Bandit_with_unknown_outcomes:
    """Two arms whose terminal states have no known outcome: a verifier must score them."""

    def __init__(self, arm=None):
        self.arm = arm

    to_play = 0

    @property
    def key(self):
        return self.arm

    def legal_actions(self):
        return () if self.arm is not None else (0, 1)

    def step(self, action):
        return Bandit_with_unknown_outcomes(action)

    def is_terminal(self):
        return self.arm is not None

    def terminal_value(self):
        return None


def test_best_of_n_answers_when_the_wall_time_runs_out():
    class Slow:
        def propose(self, states, *, rng, max_tokens=None):
            time.sleep(0.06)
            return [[Candidate(a, 0.5) for a in s.legal_actions()] for s in states]

    # Two steps of 60 ms each: both start in time, and the samples finish after the deadline.
    r = BestOfN(Slow(), lambda s: [1.0] * len(s), n=2, max_depth=2).search(
        Chain(2), Budget(wall_time=0.1), rng=np.random.default_rng(0)
    )
    assert r.answer is not None
    assert r.usage.verifier_calls > 0
