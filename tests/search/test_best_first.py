"""Greedy best-first: pops in score order, insertion-order ties, solutions, depth cut-off."""

from __future__ import annotations

from treesearch import Budget
from treesearch.search.best_first import BestFirst

# root -> a .5, b .9, c .7;  b -> ba .6, bb .2;  c -> ca .65, cb .1
# ca -> caEOS .3;  ba -> baEOS .55;  a -> aEOS .05
TABLE = {
    (): [("a", 1.0), ("b", 1.0), ("c", 1.0)],
    ("b",): [("a", 1.0), ("b", 1.0)],
    ("c",): [("a", 1.0), ("b", 1.0)],
    ("c", "a"): [("EOS", 1.0)],
    ("b", "a"): [("EOS", 1.0)],
    ("a",): [("EOS", 1.0)],
}
SCORES = {
    ("a",): 0.5,
    ("b",): 0.9,
    ("c",): 0.7,
    ("b", "a"): 0.6,
    ("b", "b"): 0.2,
    ("c", "a"): 0.65,
    ("c", "b"): 0.1,
    ("c", "a", "EOS"): 0.3,
    ("b", "a", "EOS"): 0.55,
    ("a", "EOS"): 0.05,
}


def test_pops_in_score_order(tw):
    policy = tw.TablePolicy(TABLE)
    result = BestFirst(policy, tw.TableVerifier(SCORES)).search(
        tw.S(max_len=10), tw.BIG, rng=tw.rng()
    )
    # Pops: root, b (.9), c (.7), ca (.65), ba (.6), baEOS (.55: a solution).
    assert policy.calls == [[()], [("b",)], [("c",)], [("c", "a")], [("b", "a")]]
    assert result.answer == tw.S("b", "a", "EOS", max_len=10)
    assert result.action == "b"
    assert result.stop_reason == "solved"
    assert result.usage.simulations == 6
    assert [t.actions for t in result.traces] == [("b", "a", "EOS")]
    assert result.traces[0].steps[-1].score == 0.55


def test_several_solutions_best_is_answer(tw):
    policy = tw.TablePolicy(TABLE)
    result = BestFirst(policy, tw.TableVerifier(SCORES), num_solutions=2).search(
        tw.S(max_len=10), tw.BIG, rng=tw.rng()
    )
    # After baEOS: a (.5) is expanded, then caEOS (.3) is the second solution.
    assert policy.calls[-1] == [("a",)]
    assert [t.actions for t in result.traces] == [("b", "a", "EOS"), ("c", "a", "EOS")]
    assert result.answer == tw.S("b", "a", "EOS", max_len=10)
    assert result.stop_reason == "solved"


def test_ties_pop_in_insertion_order(tw):
    policy = tw.TablePolicy(
        {(): [("x", 1.0), ("y", 1.0)], ("x",): [("EOS", 1.0)], ("y",): [("EOS", 1.0)]}
    )
    verifier = tw.TableVerifier({("x",): 0.5, ("y",): 0.5, ("x", "EOS"): 0.1, ("y", "EOS"): 0.2})
    result = BestFirst(policy, verifier).search(tw.S(max_len=10), tw.BIG, rng=tw.rng())
    assert policy.calls == [[()], [("x",)], [("y",)]]
    assert result.answer == tw.S("y", "EOS", max_len=10)


def test_max_depth_leaves_nothing_to_pop(tw):
    policy = tw.TablePolicy(TABLE)
    result = BestFirst(policy, tw.TableVerifier(SCORES), max_depth=1).search(
        tw.S(max_len=10), tw.BIG, rng=tw.rng()
    )
    assert policy.calls == [[()]]
    assert result.answer is None
    assert result.traces == ()
    assert result.stop_reason == "exhausted"


def test_expansion_budget(tw):
    policy = tw.TablePolicy(TABLE)
    result = BestFirst(policy, tw.TableVerifier(SCORES)).search(
        tw.S(max_len=10), Budget(expansions=3), rng=tw.rng()
    )
    assert policy.calls == [[()], [("b",)], [("c",)]]
    assert result.stop_reason == "expansions"
    assert result.usage.expansions == 3
