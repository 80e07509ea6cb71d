"""Step-level beam search: the target found in depth-many iterations, the exact beam width at
every depth, duplicate filtering, aggregation, and the final vote."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from treesearch import Budget, Score
from treesearch.search.beam import BeamSearch

TARGET = ("b", "a", "b", "EOS")


def mock_generator(steps):
    """Proposes a, b and EOS; EOS only gets a high prior after three steps."""
    eos = 0.9 if len(steps) >= 3 else 0.1
    return [("a", 0.4), ("b", 0.4), ("EOS", eos)]


@pytest.mark.parametrize("mode", ["argmax", "weighted"])
def test_finds_target_in_depth_many_iterations(tw, mode):
    policy = tw.TablePolicy(default=mock_generator)
    verifier = tw.TargetVerifier(TARGET)
    search = BeamSearch(policy, verifier, n=4, beam_width=2, max_iterations=len(TARGET), mode=mode)
    result = search.search(tw.S(), tw.BIG, rng=tw.rng())
    assert result.answer == tw.S(*TARGET)
    assert result.action == "b"
    assert result.usage.simulations == len(TARGET)
    # The root stands for n/M = 2 beams; then the 2 best of each level are expanded.
    assert policy.calls == [
        [(), ()],
        [("b",), ("a",)],
        [("b", "a"), ("b", "b")],
        [("b", "a", "b"), ("b", "a", "a")],
    ]
    finished = [t.actions for t in result.traces if t.terminal]
    assert finished == [("b", "a", "b", "EOS"), ("b", "a", "a", "EOS")]


def test_more_candidates_than_width_keeps_top_priors(tw):
    policy = tw.TablePolicy({(): [("p", 0.1), ("q", 0.5), ("r", 0.3), ("s", 0.5)]})
    verifier = tw.TableVerifier(default=lambda steps: 0.5)
    result = BeamSearch(policy, verifier, n=2, beam_width=2, max_iterations=1).search(
        tw.S(max_len=1), tw.BIG, rng=tw.rng()
    )
    # Top-2 priors are q and s (0.5 each); p and r are never added to the tree.
    assert result.tree.actions[1:] == ["q", "s"]


def test_dedupe_filters_repeated_steps(tw):
    policy = tw.TablePolicy(default=lambda steps: [("a", 1.0), ("b", 1.0)])
    verifier = tw.TargetVerifier(("b", "b"))
    on = BeamSearch(policy, verifier, n=4, beam_width=2, max_iterations=2, dedupe=True)
    tree = on.search(tw.S(), tw.BIG, rng=tw.rng()).tree
    # The two root proposals repeat a and b: only one copy each is added.
    assert [tree.actions[i] for i in tree.children(0)] == ["a", "b"]
    off = BeamSearch(
        policy, tw.TargetVerifier(("b", "b")), n=4, beam_width=2, max_iterations=2, dedupe=False
    )
    tree = off.search(tw.S(), tw.BIG, rng=tw.rng()).tree
    assert [tree.actions[i] for i in tree.children(0)] == ["a", "b", "a", "b"]
    # Without filtering, both surviving beams are the same state ("b").
    assert tw.expanded_by_depth(tree)[1] == [("b",), ("b",)]


@dataclass(frozen=True)
class BagState:
    """Order does not matter: ("a", "b") and ("b", "a") are the same state."""

    steps: tuple[str, ...] = ()

    to_play = 0

    @property
    def key(self):
        return tuple(sorted(self.steps))

    def legal_actions(self):
        return ()

    def step(self, action):
        return BagState((*self.steps, action))

    def is_terminal(self):
        return len(self.steps) >= 3

    def terminal_value(self):
        return None


def test_dedupe_filters_equal_states_across_beams(tw):
    policy = tw.TablePolicy(default=lambda steps: [("a", 1.0), ("b", 1.0)])
    verifier = tw.TableVerifier(default=lambda steps: 0.5)
    BeamSearch(policy, verifier, n=4, beam_width=2, max_iterations=2).search(
        BagState(), tw.BIG, rng=tw.rng()
    )
    # Iteration 2 proposes aa, ab, ba, bb; ba equals ab and is not scored.
    assert verifier.seen[1] == [("a", "a"), ("a", "b"), ("b", "b")]
    verifier = tw.TableVerifier(default=lambda steps: 0.5)
    BeamSearch(policy, verifier, n=4, beam_width=2, max_iterations=2, dedupe=False).search(
        BagState(), tw.BIG, rng=tw.rng()
    )
    assert len(verifier.seen[0]) == 4  # the root's repeated a, b, a, b are all scored


X = (1.0, 0.25, 0.5)
Y = (0.6, 0.6, 0.45)


@pytest.mark.parametrize(
    ("aggregation", "x", "y", "winner"),
    [
        ("last", 0.5, 0.45, "x"),
        ("min", 0.25, 0.45, "y"),
        ("prod", 0.125, 0.162, "y"),
        ("mean", 1.75 / 3, 1.65 / 3, "x"),
    ],
)
def test_aggregation_by_hand(tw, aggregation, x, y, winner):
    policy = tw.TablePolicy({(): [("x", 1.0), ("y", 1.0)]})
    verifier = tw.TableVerifier({("x",): Score(0.0, X), ("y",): Score(0.0, Y)})
    result = BeamSearch(
        policy, verifier, n=2, beam_width=2, aggregation=aggregation, max_iterations=1
    ).search(tw.S(), tw.BIG, rng=tw.rng())
    tree = result.tree
    assert tree.score[1] == pytest.approx(x)
    assert tree.score[2] == pytest.approx(y)
    assert result.answer == tw.S(winner)  # the one surviving beam (nothing finished)


@pytest.mark.parametrize("aggregation", ["last", "min", "prod", "mean"])
def test_score_without_steps_uses_value(tw, aggregation):
    policy = tw.TablePolicy({(): [("x", 1.0), ("y", 1.0)]})
    verifier = tw.TableVerifier({("x",): Score(0.3), ("y",): 0.7})
    result = BeamSearch(
        policy, verifier, n=2, beam_width=2, aggregation=aggregation, max_iterations=1
    ).search(tw.S(), tw.BIG, rng=tw.rng())
    assert result.tree.score[1:3].tolist() == [0.3, 0.7]
    assert result.answer == tw.S("y")


def test_weighted_vote_differs_from_argmax(tw):
    policy = tw.TablePolicy({(): [("A1", 1.0), ("B1", 1.0), ("B2", 1.0)]})
    verifier = tw.TableVerifier({("A1",): 0.9, ("B1",): 0.5, ("B2",): 0.5})
    first_letter = lambda s: s.steps[-1][0]  # noqa: E731
    results = {
        mode: BeamSearch(
            policy, verifier, n=4, beam_width=4, mode=mode, answer_fn=first_letter
        ).search(tw.S(max_len=1), tw.BIG, rng=tw.rng())
        for mode in ("argmax", "weighted")
    }
    assert results["argmax"].answer_text == "A"
    assert results["weighted"].answer_text == "B"
    assert results["weighted"].answer == tw.S("B1", max_len=1)


def test_vote_sees_only_the_n_best_finished(tw):
    # n = 2, M = 2: one beam survives per iteration and one state finishes per iteration.
    policy = tw.TablePolicy(default=lambda steps: [("x", 1.0), ("EOS", 1.0)])
    scores = {("EOS",): 0.1, ("x", "EOS"): 0.15, ("x", "x", "EOS"): 0.2}
    answers = {("EOS",): "Z", ("x", "EOS"): "Z", ("x", "x", "EOS"): "W"}
    result = BeamSearch(
        policy,
        tw.TableVerifier(scores, default=lambda steps: 0.5),
        n=2,
        beam_width=2,
        max_iterations=3,
        answer_fn=lambda s: answers.get(s.steps),
    ).search(tw.S(max_len=10), tw.BIG, rng=tw.rng())
    # All three finished would vote Z (.25) over W (.2); the 2 best (.2 W, .15 Z) vote W.
    assert result.answer_text == "W"
    assert [t.actions for t in result.traces] == [
        ("EOS",),
        ("x", "EOS"),
        ("x", "x", "EOS"),
        ("x", "x", "x"),
    ]


# ------------------------------------------------------------------ beam width, exactly


@settings(deadline=None)
@given(
    keep=st.integers(1, 3),
    width=st.integers(1, 3),
    iterations=st.integers(1, 4),
    dedupe=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_beam_width_respected_at_every_depth(tw, keep, width, iterations, dedupe, seed):
    n = keep * width
    policy = tw.RandomPolicy()
    result = BeamSearch(
        policy,
        tw.TableVerifier(default=tw.hash_score),
        n=n,
        beam_width=width,
        max_iterations=iterations,
        dedupe=dedupe,
    ).search(tw.S(max_len=5), tw.BIG, rng=tw.rng(seed))
    tree = result.tree
    assert len(tree.children(0)) <= n
    depth = tree.depth[: len(tree)]
    for d in range(1, int(depth.max()) + 1):
        at_d = [i for i in range(len(tree)) if depth[i] == d]
        expanded = [i for i in at_d if tree.is_expanded(i)]
        for i in expanded:
            assert len(tree.children(i)) <= width
        # Exactly the n/M best-scored (ties: earlier) unfinished, scored states are expanded.
        eligible = [i for i in at_d if not tree.terminal[i] and not math.isnan(tree.score[i])]
        if expanded:
            best = sorted(eligible, key=lambda i: -tree.score[i])[:keep]
            assert expanded == sorted(best)
        if dedupe:
            keys = [tree.state(i).key for i in at_d if not math.isnan(tree.score[i])]
            assert len(keys) == len(set(keys))
    assert result.usage.simulations <= iterations


def test_budget_stop_keeps_last_beams(tw):
    policy = tw.TablePolicy(default=mock_generator)
    result = BeamSearch(policy, tw.TargetVerifier(TARGET), n=4, beam_width=2).search(
        tw.S(), Budget(simulations=2), rng=tw.rng()
    )
    assert result.stop_reason == "simulations"
    assert result.answer == tw.S("b", "a")  # best of the two surviving beams
    assert [t.actions for t in result.traces] == [("b", "a"), ("b", "b")]
