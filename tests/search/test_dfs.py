"""ToT-DFS: hand-derived visiting order, threshold pruning, depth cut-off, no recursion."""

from __future__ import annotations

import sys

from treesearch import Budget
from treesearch.search.dfs import DFS

# root -> a .6, b .9, c .3 (pruned)
# b -> ba .7, bb .4 (pruned);  ba -> bax .2 (pruned)
# a -> aa .5 (kept: score == threshold), aEOS .8;  aa -> aaEOS .95
TABLE = {
    (): [("a", 1.0), ("b", 1.0), ("c", 1.0)],
    ("b",): [("a", 1.0), ("b", 1.0)],
    ("b", "a"): [("x", 1.0)],
    ("a",): [("a", 1.0), ("EOS", 1.0)],
    ("a", "a"): [("EOS", 1.0)],
}
SCORES = {
    ("a",): 0.6,
    ("b",): 0.9,
    ("c",): 0.3,
    ("b", "a"): 0.7,
    ("b", "b"): 0.4,
    ("b", "a", "x"): 0.2,
    ("a", "a"): 0.5,
    ("a", "EOS"): 0.8,
    ("a", "a", "EOS"): 0.95,
}


def world(tw):
    return tw.TablePolicy(TABLE), tw.TableVerifier(SCORES)


def test_visiting_order_and_first_solution(tw):
    policy, verifier = world(tw)
    result = DFS(policy, verifier, threshold=0.5).search(tw.S(max_len=10), tw.BIG, rng=tw.rng())
    # Best child first (b before a), backtrack from ba (its only child is pruned) to a, whose
    # best child aEOS is terminal with 0.8 >= 0.5.
    assert policy.calls == [[()], [("b",)], [("b", "a")], [("a",)]]
    assert verifier.seen == [
        [("a",), ("b",), ("c",)],
        [("b", "a"), ("b", "b")],
        [("b", "a", "x")],
        [("a", "a"), ("a", "EOS")],
    ]
    assert result.answer == tw.S("a", "EOS", max_len=10)
    assert result.action == "a"
    assert result.stop_reason == "solved"
    assert result.usage.simulations == 5  # pops: root, b, ba, a, aEOS
    assert [t.actions for t in result.traces] == [("a", "EOS")]
    # Pruned children are scored but never expanded.
    tree = result.tree
    assert tw.expanded_by_depth(tree) == {0: [()], 1: [("a",), ("b",)], 2: [("b", "a")]}


def test_keep_going_returns_best_solution(tw):
    policy, verifier = world(tw)
    result = DFS(policy, verifier, threshold=0.5, stop_at_first=False).search(
        tw.S(max_len=10), tw.BIG, rng=tw.rng()
    )
    # After aEOS, aa (exactly at the threshold) is popped and yields aaEOS.
    assert policy.calls[-1] == [("a", "a")]
    assert [t.actions for t in result.traces] == [("a", "EOS"), ("a", "a", "EOS")]
    assert result.answer == tw.S("a", "a", "EOS", max_len=10)
    assert result.stop_reason == "exhausted"
    assert result.usage.simulations == 7


def test_threshold_prunes_everything(tw):
    policy, verifier = world(tw)
    result = DFS(policy, verifier, threshold=0.99).search(tw.S(max_len=10), tw.BIG, rng=tw.rng())
    assert policy.calls == [[()]]
    assert result.answer is None
    assert result.action is None
    assert result.traces == ()
    assert result.stop_reason == "exhausted"


def test_max_depth_backtracks(tw):
    policy, verifier = world(tw)
    result = DFS(policy, verifier, threshold=0.5, max_depth=2).search(
        tw.S(max_len=10), tw.BIG, rng=tw.rng()
    )
    # ba sits at depth 2 = max_depth and is not terminal: not pushed, so never expanded.
    assert policy.calls == [[()], [("b",)], [("a",)]]
    assert result.answer == tw.S("a", "EOS", max_len=10)


def test_budget_stop_mid_search(tw):
    policy, verifier = world(tw)
    result = DFS(policy, verifier, threshold=0.5).search(
        tw.S(max_len=10), Budget(policy_calls=2), rng=tw.rng()
    )
    assert policy.calls == [[()], [("b",)]]
    assert result.stop_reason == "policy_calls"
    assert result.answer is None


def test_deep_chain_needs_no_recursion(tw):
    depth = sys.getrecursionlimit() + 200
    policy = tw.TablePolicy(default=lambda steps: [("a", 1.0)])
    verifier = tw.TableVerifier(default=lambda steps: 1.0)
    result = DFS(policy, verifier, threshold=0.5, max_depth=depth).search(
        tw.S(max_len=10**6), tw.BIG, rng=tw.rng()
    )
    assert result.stop_reason == "exhausted"
    assert int(result.tree.depth[: len(result.tree)].max()) == depth
    assert result.usage.expansions == depth
