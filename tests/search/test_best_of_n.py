"""Best-of-N: plain / weighted / majority by hand, batched sampling, prior-proportional draws."""

from __future__ import annotations

import pytest

from treesearch import Budget, Score
from treesearch.search.best_of_n import BestOfN


def last_step(state):
    return state.steps[-1]


def one_step_world(tw, answers, scores):
    """Sample k gets the one-step answer ``answers[k]`` (max_len=1: every answer is final)."""
    policy = tw.ScriptedPolicy([[[a] for a in answers]])
    verifier = tw.TableVerifier({(a,): s for a, s in zip(answers, scores, strict=True)})
    return policy, verifier


@pytest.mark.parametrize(
    ("mode", "expected"), [("plain", "A"), ("weighted", "B"), ("majority", "B")]
)
def test_known_answer_a_b_b(tw, mode, expected):
    policy, verifier = one_step_world(tw, ["A", "B", "B"], [0.9, 0.5, 0.5])
    result = BestOfN(policy, verifier, n=3, mode=mode, answer_fn=last_step).search(
        tw.S(max_len=1), tw.BIG, rng=tw.rng()
    )
    assert result.answer_text == expected
    assert result.answer == tw.S(expected, max_len=1)
    assert [t.answer for t in result.traces] == ["A", "B", "B"]


@pytest.mark.parametrize(
    ("mode", "expected"), [("plain", "A1"), ("weighted", "A1"), ("majority", "B1")]
)
def test_weighted_and_majority_differ(tw, mode, expected):
    # Canonical answers A, A, B, B, B with scores .9, .9, .5, .5, .5:
    # weighted A = 1.8 > B = 1.5; majority B = 3 > A = 2.
    answers = ["A1", "A2", "B1", "B2", "B3"]
    policy, verifier = one_step_world(tw, answers, [0.9, 0.9, 0.5, 0.5, 0.5])
    result = BestOfN(policy, verifier, n=5, mode=mode, answer_fn=lambda s: s.steps[-1][0]).search(
        tw.S(max_len=1), tw.BIG, rng=tw.rng()
    )
    assert result.answer == tw.S(expected, max_len=1)


def test_vote_on_state_key_without_answer_fn(tw):
    policy, verifier = one_step_world(tw, ["A", "B", "B"], [0.9, 0.5, 0.5])
    result = BestOfN(policy, verifier, n=3, mode="weighted").search(
        tw.S(max_len=1), tw.BIG, rng=tw.rng()
    )
    assert result.answer == tw.S("B", max_len=1)
    assert result.answer_text is None


def test_one_batched_call_per_step(tw):
    policy = tw.ScriptedPolicy([[["EOS"], ["a"], ["a"]], [["EOS"], ["b"]], [["EOS"]]])
    verifier = tw.TableVerifier(default=lambda steps: 0.5)
    result = BestOfN(policy, verifier, n=3).search(tw.S(), tw.BIG, rng=tw.rng())
    assert policy.calls == [[(), (), ()], [("a",), ("a",)], [("a", "b")]]
    assert verifier.seen == [[("EOS",), ("a", "EOS"), ("a", "b", "EOS")]]
    u = result.usage
    assert (u.simulations, u.expansions, u.policy_calls, u.verifier_calls) == (3, 4, 6, 3)
    # One chain per sample: the root has one child per sample.
    assert [result.tree.actions[i] for i in result.tree.children(0)] == ["EOS", "a", "a"]
    assert result.root_value == pytest.approx(0.5)
    assert result.visit_distribution.tolist() == pytest.approx([1 / 3] * 3)


def test_samples_in_proportion_to_prior(tw):
    policy = tw.TablePolicy({(): [("a", 3.0), ("b", 1.0), ("c", 0.0)]})
    verifier = tw.TableVerifier(default=lambda steps: 0.5)
    n = 2000
    result = BestOfN(policy, verifier, n=n).search(tw.S(max_len=1), tw.BIG, rng=tw.rng(7))
    tree = result.tree
    drawn = [tree.actions[i] for i in tree.children(0)]
    assert drawn.count("c") == 0
    assert drawn.count("a") / n == pytest.approx(0.75, abs=0.03)  # 3 standard deviations
    # Each step's prior is the probability it was drawn with.
    assert {tree.actions[i]: tree.prior[i] for i in tree.children(0)} == {"a": 0.75, "b": 0.25}


def test_same_seed_same_samples_other_seed_differs(tw):
    def drawn(seed):
        policy = tw.TablePolicy(default=lambda steps: [("a", 1.0), ("b", 1.0), ("EOS", 1.0)])
        verifier = tw.TableVerifier(default=tw.hash_score)
        tree = BestOfN(policy, verifier, n=8).search(tw.S(), tw.BIG, rng=tw.rng(seed)).tree
        return tree.to_dict()

    assert drawn(3) == drawn(3)
    assert drawn(3) != drawn(4)


def test_max_depth_ends_unfinished_samples(tw):
    policy = tw.TablePolicy(default=lambda steps: [("a", 1.0)])
    verifier = tw.TableVerifier(default=lambda steps: 0.5)
    result = BestOfN(policy, verifier, n=2, max_depth=3).search(
        tw.S(max_len=10), tw.BIG, rng=tw.rng()
    )
    assert [t.actions for t in result.traces] == [("a", "a", "a")] * 2
    assert [len(c) for c in policy.calls] == [2, 2, 2]
    assert not any(t.terminal for t in result.traces)


@pytest.mark.parametrize(("aggregation", "expected"), [("last", "x"), ("min", "y")])
def test_aggregation_picks_the_sample(tw, aggregation, expected):
    policy = tw.ScriptedPolicy([[["x"], ["y"]]])
    verifier = tw.TableVerifier(
        {("x",): Score(0.0, (1.0, 0.25, 0.5)), ("y",): Score(0.0, (0.6, 0.6, 0.45))}
    )
    result = BestOfN(policy, verifier, n=2, mode="plain", aggregation=aggregation).search(
        tw.S(max_len=1), tw.BIG, rng=tw.rng()
    )
    assert result.answer == tw.S(expected, max_len=1)


def test_unfinished_samples_are_not_scored(tw):
    policy = tw.TablePolicy(default=lambda steps: [("a", 1.0)])
    verifier = tw.TableVerifier(default=lambda steps: 0.5)
    result = BestOfN(policy, verifier, n=2).search(
        tw.S(max_len=10), Budget(simulations=2), rng=tw.rng()
    )
    assert result.stop_reason == "simulations"
    assert verifier.seen == []
    assert result.answer is None
    assert result.traces == ()


def test_terminal_outcome_in_traces(tw):
    policy = tw.ScriptedPolicy([[["EOS"], ["EOS"]]])
    verifier = tw.TableVerifier(default=lambda steps: 0.25)
    result = BestOfN(policy, verifier, n=2).search(tw.S(eos_value=1.0), tw.BIG, rng=tw.rng())
    assert [t.outcome for t in result.traces] == [1.0, 1.0]
    assert result.tree.score[1] == 0.25  # the verifier still scores terminal states
