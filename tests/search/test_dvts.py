"""DVTS: n candidates from n/M independent greedy subtrees, and the final vote."""

from __future__ import annotations

import math

import pytest

from treesearch import Candidate
from treesearch.search.dvts import DVTS


class FreshNamesPolicy:
    """Five candidates with never-repeated names per state; the fifth has a low prior."""

    def __init__(self) -> None:
        self.calls: list[list[tuple[str, ...]]] = []

    def propose(self, states, *, rng, max_tokens=None):
        k = len(self.calls)
        self.calls.append([s.steps for s in states])
        return [
            [Candidate(f"{k}.{j}.{i}", 1.0 if i < 4 else 0.5) for i in range(5)]
            for j in range(len(states))
        ]


def test_eight_candidates_from_two_subtrees(tw):
    policy = FreshNamesPolicy()
    verifier = tw.TableVerifier(default=tw.hash_score)
    result = DVTS(policy, verifier, n=8, beam_width=4).search(tw.S(max_len=3), tw.BIG, rng=tw.rng())
    tree = result.tree
    assert len(result.traces) == 8
    assert all(len(t.steps) == 3 and t.terminal for t in result.traces)
    # The root holds both subtrees' first steps: block 0 (proposal 0) and block 1 (proposal 1).
    assert [tree.actions[i] for i in tree.children(0)] == [
        f"0.{j}.{i}" for j in (0, 1) for i in range(4)
    ]
    groups = [result.traces[:4], result.traces[4:]]
    for j, group in enumerate(groups):
        # Each subtree returns the 4 alternatives of its last step, under one path.
        assert len({t.actions[:2] for t in group}) == 1
        assert group[0].actions[0].startswith(f"0.{j}.")
    assert groups[0][0].actions[:2] != groups[1][0].actions[:2]
    # Greedy: each subtree moved to the best-scored step of its block, at every level.
    kids = tree.children(0)
    for j in (0, 1):
        block = list(kids)[4 * j : 4 * j + 4]
        chosen = max(block, key=lambda i: (tree.score[i], -i))
        assert tree.is_expanded(chosen)
        assert sum(tree.is_expanded(i) for i in block) == 1
    assert [len(c) for c in policy.calls] == [2, 2, 2]
    u = result.usage
    assert (u.simulations, u.expansions, u.policy_calls, u.verifier_calls) == (3, 5, 6, 24)
    # Unique answers: the weighted vote is the argmax of the 8 candidates.
    best = max(result.traces, key=lambda t: t.steps[-1].score)
    assert result.answer.steps == best.actions


def test_subtrees_stop_independently(tw):
    policy = tw.ScriptedPolicy(
        [
            [["EOS", "a"], ["b", "c"]],  # subtree 0 picks EOS and stops; subtree 1 picks b
            [["EOS", "d"]],  # b: picks d
            [["EOS", "e"]],  # bd: picks EOS
        ]
    )
    scores = {
        ("EOS",): 0.9,
        ("a",): 0.1,
        ("b",): 0.5,
        ("c",): 0.4,
        ("b", "EOS"): 0.3,
        ("b", "d"): 0.8,
        ("b", "d", "EOS"): 0.7,
        ("b", "d", "e"): 0.2,
    }
    result = DVTS(policy, tw.TableVerifier(scores), n=4, beam_width=2).search(
        tw.S(), tw.BIG, rng=tw.rng()
    )
    assert policy.calls == [[(), ()], [("b",)], [("b", "d")]]
    assert [t.actions for t in result.traces] == [
        ("EOS",),
        ("a",),
        ("b", "d", "EOS"),
        ("b", "d", "e"),
    ]
    assert result.answer == tw.S("EOS")
    assert result.stop_reason == "exhausted"


@pytest.mark.parametrize(("mode", "expected"), [("weighted", "B1"), ("argmax", "A1")])
def test_final_vote(tw, mode, expected):
    policy = tw.ScriptedPolicy([[["A1", "B1"], ["B2", "C"]]])
    verifier = tw.TableVerifier({("A1",): 0.9, ("B1",): 0.5, ("B2",): 0.5, ("C",): 0.1})
    result = DVTS(
        policy, verifier, n=4, beam_width=2, mode=mode, answer_fn=lambda s: s.steps[-1][0]
    ).search(tw.S(max_len=1), tw.BIG, rng=tw.rng())
    assert result.answer == tw.S(expected, max_len=1)
    assert result.answer_text == expected[0]


def test_max_iterations_returns_last_alternatives(tw):
    policy = tw.TablePolicy(default=lambda steps: [("a", 1.0), ("b", 1.0)])
    verifier = tw.TableVerifier(default=lambda steps: 0.5)
    result = DVTS(policy, verifier, n=4, beam_width=2, max_iterations=2).search(
        tw.S(max_len=10), tw.BIG, rng=tw.rng()
    )
    # Ties go to the earlier step, so both subtrees follow a; each returns aa and ab.
    assert [t.actions for t in result.traces] == [("a", "a"), ("a", "b")] * 2
    assert result.usage.simulations == 2
    assert not math.isnan(result.root_value)
