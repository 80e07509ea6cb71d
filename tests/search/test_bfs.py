"""ToT-BFS: levels in order, exactly the top-k per level, finished pool, budget stops."""

from __future__ import annotations

import pytest

from treesearch import Budget
from treesearch.search.bfs import BFS

LETTERS = {"a": 1.0, "b": 4.0, "c": 2.0}


def letter_sum(steps):
    # Integer-valued sums are exact in floating point, so ties are real ties.
    return sum(LETTERS[s] for s in steps)


def abc_world(tw):
    policy = tw.TablePolicy(default=lambda steps: [("a", 1.0), ("b", 1.0), ("c", 1.0)])
    verifier = tw.TableVerifier(default=letter_sum)
    return policy, verifier


def test_levels_in_order_and_exact_top_k(tw):
    policy, verifier = abc_world(tw)
    result = BFS(policy, verifier, beam_size=2, max_depth=3).search(
        tw.S(max_len=10), tw.BIG, rng=tw.rng()
    )
    # Level 1: a=1 b=4 c=2 -> keep b, c.
    # Level 2: ba=5 bb=8 bc=6 ca=3 cb=6 cc=4 -> keep bb, then bc (ties with cb; bc came first).
    # Level 3: bba=9 bbb=12 bbc=10 bca=7 bcb=10 bcc=8 -> keep bbb, bbc (ties with bcb).
    assert policy.calls == [[()], [("b",), ("c",)], [("b", "b"), ("b", "c")]]
    assert verifier.seen == [
        [("a",), ("b",), ("c",)],
        [("b", "a"), ("b", "b"), ("b", "c"), ("c", "a"), ("c", "b"), ("c", "c")],
        [("b", "b", x) for x in "abc"] + [("b", "c", x) for x in "abc"],
    ]
    tree = result.tree
    assert tw.expanded_by_depth(tree) == {
        0: [()],
        1: [("b",), ("c",)],
        2: [("b", "b"), ("b", "c")],
    }
    assert result.answer == tw.S("b", "b", "b", max_len=10)
    assert result.action == "b"
    assert [t.actions for t in result.traces] == [("b", "b", "b"), ("b", "b", "c")]
    assert result.stop_reason == "exhausted"
    u = result.usage
    assert (u.simulations, u.expansions, u.policy_calls, u.verifier_calls) == (3, 5, 5, 15)
    # Every scored child is backed up once: 15 visits, mean of all 15 scores at the root.
    assert tree.visits[0] == 15
    assert result.root_value == pytest.approx((7 + 32 + 56) / 15)
    assert result.actions == ("a", "b", "c")
    assert result.visit_distribution.tolist() == pytest.approx([1 / 15, 10 / 15, 4 / 15])


def test_scores_stored_in_tree(tw):
    policy, verifier = abc_world(tw)
    tree = (
        BFS(policy, verifier, beam_size=1, max_depth=2)
        .search(tw.S(max_len=10), tw.BIG, rng=tw.rng())
        .tree
    )
    for i in range(1, tree.num_nodes):
        assert tree.score[i] == letter_sum(tw.steps_of(tree, i))


def test_terminal_children_go_to_finished_pool(tw):
    policy = tw.TablePolicy(default=lambda steps: [("a", 1.0), ("EOS", 1.0)])
    scores = {("a",): 0.9, ("a", "a"): 0.8, ("a", "a", "a"): 0.7, ("a", "EOS"): 0.2}
    verifier = tw.TableVerifier(scores, default=lambda steps: 0.1)
    result = BFS(policy, verifier, beam_size=1, max_depth=3).search(
        tw.S(max_len=10), tw.BIG, rng=tw.rng()
    )
    tree = result.tree
    # Terminal children never take a frontier slot and are never expanded.
    assert policy.calls == [[()], [("a",)], [("a", "a")]]
    assert not any(tree.is_expanded(i) for i in range(tree.num_nodes) if tree.terminal[i])
    # A finished state beats a better-scored unfinished one.
    assert result.answer == tw.S("a", "EOS", max_len=10)
    assert [t.actions for t in result.traces] == [
        ("EOS",),
        ("a", "EOS"),
        ("a", "a", "EOS"),
        ("a", "a", "a"),
    ]
    assert [t.terminal for t in result.traces] == [True, True, True, False]


def test_stops_when_every_child_is_terminal(tw):
    policy = tw.TablePolicy({(): [("x", 1.0), ("y", 1.0)]})
    verifier = tw.TableVerifier({("x",): 0.2, ("y",): 0.7})
    result = BFS(policy, verifier, max_depth=5).search(tw.S(max_len=1), tw.BIG, rng=tw.rng())
    assert result.usage.simulations == 1
    assert result.answer == tw.S("y", max_len=1)
    assert result.stop_reason == "exhausted"


def test_simulation_budget_limits_levels(tw):
    policy, verifier = abc_world(tw)
    result = BFS(policy, verifier, beam_size=2, max_depth=5).search(
        tw.S(max_len=10), Budget(simulations=2), rng=tw.rng()
    )
    assert len(policy.calls) == 2
    assert result.stop_reason == "simulations"
    assert result.answer == tw.S("b", "b", max_len=10)


def test_verifier_budget_stops_mid_level(tw):
    policy, verifier = abc_world(tw)
    result = BFS(policy, verifier, beam_size=2, max_depth=5).search(
        tw.S(max_len=10), Budget(verifier_calls=5), rng=tw.rng()
    )
    # Level 1 costs 3 scores, level 2 would cost 6: refused, so the level-1 frontier answers.
    assert result.stop_reason == "verifier_calls"
    assert result.usage.verifier_calls == 3
    assert result.answer == tw.S("b", max_len=10)


def test_max_nodes_stops_cleanly(tw):
    policy, verifier = abc_world(tw)
    result = BFS(policy, verifier, beam_size=2, max_nodes=5).search(
        tw.S(max_len=10), tw.BIG, rng=tw.rng()
    )
    # Root + 3 children fit; the next level (6 children) does not, and nothing is half-added.
    assert result.stop_reason == "max_nodes"
    assert len(result.tree) == 4
    assert result.answer == tw.S("b", max_len=10)


def test_answer_fn_fills_answer_text_and_traces(tw):
    policy, verifier = abc_world(tw)
    result = BFS(policy, verifier, beam_size=2, max_depth=2, answer_fn=lambda s: "".join(s.steps))
    result = result.search(tw.S(max_len=10), tw.BIG, rng=tw.rng())
    assert result.answer_text == "bb"
    assert [t.answer for t in result.traces] == ["bb", "bc"]
