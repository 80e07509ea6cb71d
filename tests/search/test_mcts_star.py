"""MCTS* (ReST-MCTS*): the selection score, the weighted backup and the rollout mix by hand;
a scripted search followed iteration by iteration; retries, duplicate skipping, end leaves,
modes, budgets (hypothesis), determinism and argument errors."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from treesearch import Budget, Candidate, MCTSStar
from treesearch.search.mcts_star import (
    EVALUATION_DEFAULTS,
    SELF_TRAINING_DEFAULTS,
    mix_rollout,
    uct_scores,
    weighted_value,
)


# ---------------------------------------------------------------------- the formulas
def test_uct_scores_by_hand():
    # N_parent = 10, c = 0.4: visited children get V + 0.4 * sqrt(2 ln 10 / N), unvisited V + 0.8.
    scores = uct_scores([0.6, 0.2, 0.3], [3, 1, 0], 10, c=0.4, inf_bonus=0.8)
    assert scores[0] == pytest.approx(0.6 + 0.4 * math.sqrt(2 * math.log(10) / 3))
    assert scores[0] == pytest.approx(1.09558, abs=1e-5)
    assert scores[1] == pytest.approx(0.2 + 0.4 * math.sqrt(2 * math.log(10)))
    assert scores[1] == pytest.approx(1.05839, abs=1e-5)
    assert scores[2] == pytest.approx(1.1)
    assert int(np.argmax(scores)) == 2
    # With a smaller bonus the visited child wins.
    assert int(np.argmax(uct_scores([0.6, 0.2, 0.3], [3, 1, 0], 10, c=0.4, inf_bonus=0.5))) == 0


def test_weighted_backup_by_hand():
    assert weighted_value([0.6, 0.2], [3, 1]) == pytest.approx(0.5)
    assert weighted_value([0.6, 0.2, 0.9], [3, 1, 0]) == pytest.approx(0.5)  # unvisited: weight 0
    assert weighted_value([0.6, 0.2], [0, 0]) is None


def test_rollout_mix_by_hand():
    assert mix_rollout(0.6, 0.8, 0.5) == pytest.approx(0.7)
    assert mix_rollout(0.6, 0.8, 0.25) == pytest.approx(0.65)
    assert mix_rollout(0.6, 0.8, 0.0) == pytest.approx(0.6)


def test_defaults_are_the_reference_settings():
    search = MCTSStar(_NoPolicy(), lambda states: [0.5] * len(states))
    for name, value in EVALUATION_DEFAULTS.items():
        assert getattr(search, name) == value
    assert (search.mode, search.retries, search.roll_branch) == ("evaluation", 3, 1)
    trainer = MCTSStar.for_self_training(_NoPolicy(), lambda states: [0.5] * len(states))
    for name, value in SELF_TRAINING_DEFAULTS.items():
        assert getattr(trainer, name) == value
    assert MCTSStar.for_self_training(_NoPolicy(), lambda s: [0.5] * len(s), c=1.0).c == 1.0


class _NoPolicy:
    def propose(self, states, *, rng, max_tokens=None):
        return [[] for _ in states]


# ---------------------------------------------------------------------- a scripted search
def test_scripted_search_step_by_step(tw):
    """Three iterations followed by hand (branch 2, one greedy rollout step, alpha 0.5)."""
    policy = tw.ScriptedPolicy(
        [
            [["a"], ["b"]],  # iteration 1: expand the root (two sample slots)
            [["x"]],  # rollout from a
            [["c"], ["c"]],  # iteration 2: expand b; the second "c" is a duplicate
            [["y"]],  # rollout from b,c
            [["d"], ["e"]],  # iteration 3: expand a
            [["z"]],  # rollout from the better of a,d / a,e
        ]
    )
    table = {
        ("a",): 0.6,
        ("b",): 0.2,
        ("a", "x"): 0.8,
        ("b", "c"): 0.4,
        ("b", "c", "y"): 0.0,
        ("a", "d"): 0.5,
        ("a", "e"): 0.3,
        ("a", "d", "z"): 0.1,
    }
    verifier = tw.TableVerifier(table)
    search = MCTSStar(
        policy,
        verifier,
        iterations=1,
        branch=2,
        c=0.4,
        inf_bonus=0.8,
        roll_forward_steps=1,
        alpha=0.5,
        end_gate=0.9,
    )

    def run(iterations):
        policy.calls.clear()
        verifier.seen.clear()
        search.iterations = iterations
        return search.search(tw.S(), tw.BIG, rng=tw.rng())

    result = run(1)
    tree = result.tree
    a, b = tree.children(0)
    assert [tree.actions[a], tree.actions[b]] == ["a", "b"]
    # The rollout from a saw 0.8: V(a) = 0.5 * 0.6 + 0.5 * 0.8 = 0.7, one visit.
    assert tree.q(a) == pytest.approx(0.7)
    assert tree.visits[a] == 1 and tree.visits[b] == 0
    assert result.root_value == pytest.approx(0.7)  # (1 * 0.7 + 0 * 0.2) / 1
    assert tree.score[a] == 0.6 and tree.score[b] == 0.2

    result = run(2)
    tree = result.tree
    # Iteration 2 at the root (N = 1): a scores 0.7 + 0.4 sqrt(2 ln 1) = 0.7, unvisited b
    # 0.2 + 0.8 = 1.0, so b is expanded; its two samples are both "c": one child.
    assert policy.calls[2] == [("b",), ("b",)]
    (c,) = tree.children(b)
    assert tree.actions[c] == "c"
    # The rollout from b,c saw 0.0 (the maximum starts at low = 0): V(c) = 0.5 * 0.4 = 0.2.
    assert tree.q(c) == pytest.approx(0.2)
    assert tree.q(b) == pytest.approx(0.2) and tree.visits[b] == 1
    assert tree.visits[0] == 2
    assert result.root_value == pytest.approx((1 * 0.7 + 1 * 0.2) / 2)

    result = run(3)
    tree = result.tree
    # Iteration 3 (root N = 2): a scores 0.7 + 0.4 sqrt(2 ln 2) = 1.171, b 0.2 + 0.471 = 0.671.
    assert policy.calls[4] == [("a",), ("a",)]
    d, e = tree.children(a)
    # Rollout from d (0.5 + 0.8 beats 0.3 + 0.8) saw 0.1: V(d) = 0.5 * 0.5 + 0.5 * 0.1 = 0.3.
    assert policy.calls[5] == [("a", "d")]
    assert tree.q(d) == pytest.approx(0.3)
    assert tree.visits[e] == 0
    # a: N = 2, V = (1 * 0.3) / 1 = 0.3 (the rollout value is replaced by the children's mean).
    assert tree.visits[a] == 2 and tree.q(a) == pytest.approx(0.3)
    assert result.root_value == pytest.approx((2 * 0.3 + 1 * 0.2) / 3)
    # Every state was scored once: the cache serves repeats.
    flat = [steps for batch in verifier.seen for steps in batch]
    assert len(flat) == len(set(flat)) == 8
    assert result.usage.verifier_calls == 8
    assert result.usage.expansions == 3 and result.usage.simulations == 3


def test_random_rollout_scores_only_the_chosen_step(tw):
    policy = tw.TablePolicy(default=lambda steps: [("a", 1.0), ("b", 1.0)])
    verifier = tw.TableVerifier(default=lambda steps: 0.1 * len(steps))
    search = MCTSStar(
        policy,
        verifier,
        iterations=1,
        branch=1,
        roll_forward_steps=3,
        roll_branch=2,
        roll_policy="random",
    )
    result = search.search(tw.S(max_len=10), tw.BIG, rng=tw.rng(1))
    # One child scored, then three rollout steps scoring one state each.
    assert result.usage.verifier_calls == 4
    (child,) = result.tree.children(0)
    # V = 0.5 * 0.1 + 0.5 * max(0.2, 0.3, 0.4): values grow with depth.
    assert result.tree.q(child) == pytest.approx(0.5 * 0.1 + 0.5 * 0.4)


def test_greedy_rollout_follows_the_best_candidate(tw):
    scores = {
        ("a",): 0.5,
        ("a", "p"): 0.2,
        ("a", "q"): 0.6,
        ("a", "q", "p"): 0.3,
        ("a", "q", "q"): 0.1,
    }
    policy = tw.ScriptedPolicy([[["a"]], [["p"], ["q"]], [["p"], ["q"]]])
    search = MCTSStar(
        policy,
        tw.TableVerifier(scores),
        iterations=1,
        branch=1,
        roll_forward_steps=2,
        roll_branch=2,
    )
    result = search.search(tw.S(), tw.BIG, rng=tw.rng())
    assert policy.calls[2] == [("a", "q"), ("a", "q")]  # moved to q (0.6 > 0.2)
    (child,) = result.tree.children(0)
    assert result.tree.q(child) == pytest.approx(0.5 * 0.5 + 0.5 * 0.6)  # max(0.6, 0.3)


# ---------------------------------------------------------------------- expansion
class FlakyPolicy:
    """Returns no candidate for the first ``fails`` calls of each state, then ``step``."""

    def __init__(self, fails: int, step: str = "s") -> None:
        self.fails = fails
        self.step = step
        self.asked: dict[tuple[str, ...], int] = {}

    def propose(self, states, *, rng, max_tokens=None):
        out = []
        for s in states:
            k = self.asked.get(s.steps, 0)
            self.asked[s.steps] = k + 1
            out.append([] if k < self.fails else [Candidate(f"{self.step}{len(s.steps)}")])
        return out


@pytest.mark.parametrize(("retries", "children"), [(3, 1), (2, 0)])
def test_retries(tw, retries, children):
    # Two failures per state: three tries get a step, two do not (the root is then a dead end).
    policy = FlakyPolicy(fails=2)
    search = MCTSStar(
        policy,
        lambda s: [0.5] * len(s),
        iterations=1,
        branch=1,
        retries=retries,
        roll_forward_steps=0,
    )
    result = search.search(tw.S(), tw.BIG, rng=tw.rng())
    assert len(result.tree.children(0)) == children
    assert policy.asked[()] == min(retries, 3)
    assert result.usage.policy_calls == min(retries, 3)


def test_duplicates_are_skipped_not_retried(tw):
    policy = tw.TablePolicy(default=lambda steps: [("same", 1.0)])
    search = MCTSStar(
        policy, lambda s: [0.5] * len(s), iterations=1, branch=3, roll_forward_steps=0
    )
    result = search.search(tw.S(), tw.BIG, rng=tw.rng())
    assert [result.tree.actions[i] for i in result.tree.children(0)] == ["same"]
    assert result.usage.policy_calls == 3  # three slots, one call each, no retries


def test_samples_are_drawn_by_prior(tw):
    # Each slot draws one of the candidates in proportion to its prior: "rare" almost never.
    policy = tw.TablePolicy(default=lambda steps: [("often", 1000.0), ("rare", 1e-6)])
    search = MCTSStar(
        policy, lambda s: [0.5] * len(s), iterations=1, branch=5, roll_forward_steps=0
    )
    result = search.search(tw.S(), tw.BIG, rng=tw.rng())
    assert [result.tree.actions[i] for i in result.tree.children(0)] == ["often"]


# ---------------------------------------------------------------------- end leaves and modes
def _chain_policy(steps):
    return [(f"{len(steps)}a", 1.0), (f"{len(steps)}b", 1.0), ("EOS", 0.5)]


class RoundRobin:
    """State ``k`` of a call gets candidate ``k mod 3`` of :func:`_chain_policy`: three slots
    sample three different steps."""

    def propose(self, states, *, rng, max_tokens=None):
        return [[Candidate(_chain_policy(s.steps)[k % 3][0])] for k, s in enumerate(states)]


def test_evaluation_stops_at_the_first_selected_leaf_past_the_gate(tw):
    target = ("0a", "1b")
    verifier = tw.TableVerifier(
        default=lambda steps: 0.95 if steps == target else (0.6 if steps == target[:1] else 0.1)
    )
    search = MCTSStar(RoundRobin(), verifier, roll_forward_steps=0, branch=3)
    result = search.search(tw.S(), tw.BIG, rng=tw.rng())
    assert result.stop_reason == "solved"
    assert result.answer == tw.S(*target)
    assert result.action == "0a"
    # 1: expand the root (0a 0.6, 0b 0.1, EOS 0.1); 2: expand 0a (1b scores 0.95); 3: root
    # picks 0a (0.6 + 0.4 sqrt(2 ln 2) = 1.071 > 0.1 + 0.8), 0a picks 1b (0.95 + 0.8): solved.
    assert result.usage.simulations == 3
    solved = [t for t in result.traces if t.actions == target]
    assert solved and solved[0].metadata["end"] == "value"
    assert solved[0].steps[-1].value == pytest.approx(0.95)


def test_generation_runs_every_iteration_and_traces_every_end_leaf(tw):
    verifier = tw.TableVerifier(default=tw.hash_score)
    search = MCTSStar(
        tw.TablePolicy(default=_chain_policy),
        verifier,
        mode="generation",
        iterations=40,
        end_gate=0.9,
        roll_forward_steps=1,
        max_depth=4,
    )
    result = search.search(tw.S(), tw.BIG, rng=tw.rng())
    tree = result.tree
    assert result.stop_reason == "exhausted" and result.usage.simulations == 40
    ends = {t.actions for t in result.traces}
    for node in range(1, tree.num_nodes):
        steps = tw.steps_of(tree, node)
        is_end = not tree.is_expanded(node) and (
            steps[-1] == "EOS" or len(steps) >= 4 or tw.hash_score(steps) >= 0.9
        )
        assert (steps in ends) == is_end, steps
    assert len(ends) == len(result.traces) > 3
    for trace in result.traces:
        reason = trace.metadata["end"]
        assert reason in ("terminal", "max_depth", "value")
        assert all(s.value is not None and 0 <= s.value <= 1 for s in trace.steps)
    # Traces carry V: q for visited nodes, the verifier's score for never-visited end leaves.
    node_of = {tw.steps_of(tree, i): i for i in range(1, tree.num_nodes)}
    unvisited = 0
    for trace in result.traces:
        for k, step in enumerate(trace.steps):
            node = node_of[trace.actions[: k + 1]]
            expected = tree.q(node) if tree.visits[node] else tree.score[node]
            unvisited += not tree.visits[node]
            assert step.value == pytest.approx(expected)
            assert step.score == pytest.approx(tw.hash_score(trace.actions[: k + 1]))
    assert unvisited > 0


def test_selected_end_leaf_is_backed_up_not_expanded(tw):
    # The root's only step ends the solution with a low value: it is revisited, never expanded.
    policy = tw.TablePolicy(default=lambda steps: [("EOS", 1.0)])
    search = MCTSStar(policy, lambda s: [0.3] * len(s), iterations=5, branch=1)
    result = search.search(tw.S(), tw.BIG, rng=tw.rng())
    (eos,) = result.tree.children(0)
    assert result.stop_reason == "exhausted"
    assert result.usage.expansions == 1 and result.usage.policy_calls == 1  # no rollout from EOS
    # Iteration 1: the rollout of an end leaf returns its own V (one visit); 2-5 back it up.
    assert result.tree.visits[eos] == 5 and result.tree.visits[0] == 5
    assert result.tree.q(eos) == pytest.approx(0.3)
    assert result.answer == tw.S("EOS")
    (trace,) = result.traces
    assert trace.metadata["end"] == "terminal" and trace.terminal


def test_is_end_predicate_and_no_gate(tw):
    # Without a gate, the first selected end leaf (here: is_end) stops an evaluation search.
    search = MCTSStar(
        tw.TablePolicy(default=lambda steps: [("x", 1.0)]),
        lambda s: [0.99] * len(s),
        end_gate=None,
        is_end=lambda state: len(state.steps) == 3,
        roll_forward_steps=0,
        branch=1,
    )
    result = search.search(tw.S(max_len=10), tw.BIG, rng=tw.rng())
    assert result.stop_reason == "solved"
    assert result.answer == tw.S("x", "x", "x", max_len=10)
    assert [t.metadata["end"] for t in result.traces] == ["is_end"]


def test_dead_root_ends_the_search(tw):
    search = MCTSStar(_NoPolicy(), lambda s: [0.5] * len(s), retries=2, branch=2)
    result = search.search(tw.S(), tw.BIG, rng=tw.rng())
    assert result.tree.num_nodes == 1 and result.answer is None and result.traces == ()
    assert result.usage.simulations == 2  # the failed expansion, then the dead root selected


# ---------------------------------------------------------------------- budget and seeds
@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    limits=st.fixed_dictionaries(
        {},
        optional={
            "simulations": st.integers(1, 30),
            "expansions": st.integers(1, 10),
            "policy_calls": st.integers(1, 40),
            "tokens": st.integers(1, 40),
            "verifier_calls": st.integers(1, 40),
        },
    ),
    mode=st.sampled_from(["evaluation", "generation"]),
    roll=st.sampled_from(["greedy", "random"]),
)
def test_budget_is_never_exceeded(tw, seed, limits, mode, roll):
    budget = Budget(**limits) if limits else Budget(simulations=20)
    search = MCTSStar(
        tw.RandomPolicy(),
        tw.TableVerifier(default=tw.hash_score),
        iterations=25,
        mode=mode,
        roll_policy=roll,
        roll_branch=2,
        max_nodes=60,
    )
    result = search.search(tw.S(), budget, rng=tw.rng(seed))
    assert result.usage.within(budget), (result.usage, budget)
    tree = result.tree
    for node in range(tree.num_nodes):
        if tree.visits[node]:
            assert 0.0 <= tree.q(node) <= 1.0


def test_same_seed_same_search(tw):
    def run(seed):
        search = MCTSStar(
            tw.RandomPolicy(),
            tw.TableVerifier(default=tw.hash_score),
            iterations=30,
            mode="generation",
            roll_policy="random",
        )
        return search.search(tw.S(), tw.BIG, rng=tw.rng(seed))

    first, again, other = run(3), run(3), run(4)
    assert first.traces == again.traces
    assert first.tree.to_dict() == again.tree.to_dict()
    assert first.tree.to_dict() != other.tree.to_dict()


# ---------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"branch": 0}, ValueError, "branch"),
        ({"iterations": 0}, ValueError, "iterations"),
        ({"retries": 0}, ValueError, "retries"),
        ({"roll_forward_steps": -1}, ValueError, "roll_forward_steps"),
        ({"alpha": 1.5}, ValueError, "alpha"),
        ({"c": -0.1}, ValueError, "c must"),
        ({"c": "big"}, TypeError, "c must"),
        ({"end_gate": 1.2}, ValueError, "end_gate"),
        ({"low": 1.0, "high": 0.0}, ValueError, "low"),
        ({"mode": "train"}, ValueError, "mode"),
        ({"roll_policy": "best"}, ValueError, "roll_policy"),
        ({"is_end": 3}, TypeError, "is_end"),
        ({"max_depth": 0}, ValueError, "max_depth"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        MCTSStar(_NoPolicy(), lambda s: [0.5] * len(s), **kwargs)


def test_two_player_states_are_refused(tw):
    @dataclass(frozen=True)
    class Alternating(tw.TextState):
        @property
        def to_play(self) -> int:
            return len(self.steps) % 2

        def step(self, action):
            return Alternating((*self.steps, str(action)), self.max_len)

    search = MCTSStar(tw.TablePolicy(default=_chain_policy), lambda s: [0.5] * len(s))
    with pytest.raises(ValueError, match="single-agent"):
        search.search(Alternating(), tw.BIG, rng=tw.rng())


def test_root_at_an_end_is_refused(tw):
    search = MCTSStar(_NoPolicy(), lambda s: [0.5] * len(s), is_end=lambda s: True)
    with pytest.raises(ValueError, match="end state"):
        search.search(tw.S(), tw.BIG, rng=tw.rng())
