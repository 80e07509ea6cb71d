"""Properties shared by all six verifier-guided searches: budgets are never exceeded, the tree
is consistent, results are reproducible from the seed, and bad input fails loudly."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from treesearch import Budget
from treesearch.search.beam import BeamSearch
from treesearch.search.best_first import BestFirst
from treesearch.search.best_of_n import BestOfN
from treesearch.search.bfs import BFS
from treesearch.search.dfs import DFS
from treesearch.search.dvts import DVTS

COUNTERS = ("simulations", "expansions", "policy_calls", "tokens", "verifier_calls")
STOP_REASONS = {"exhausted", "solved", "max_nodes", *COUNTERS}

budgets = st.fixed_dictionaries({name: st.none() | st.integers(1, 40) for name in COUNTERS}).filter(
    lambda d: any(v is not None for v in d.values())
)


def run(tw, algo, seed=0, budget=None, **kwargs):
    policy = tw.RandomPolicy()
    verifier = tw.TableVerifier(default=tw.hash_score)
    search = tw.FACTORIES[algo](policy, verifier, **kwargs)
    result = search.search(tw.S(max_len=4), budget or tw.BIG, rng=tw.rng(seed))
    return result, policy, verifier


def check_tree(tree) -> None:
    """Each scored node was backed up once: visits = own score + children's visits."""
    for i in range(len(tree)):
        kids = tree.children(i)
        own = 0 if math.isnan(tree.score[i]) else 1
        assert tree.visits[i] == own + tree.visits[kids.start : kids.stop].sum(), i
        if tree.terminal[i]:
            assert not tree.is_expanded(i)


@settings(deadline=None)  # example count from the active profile (ci: 200)
@given(fields=budgets, seed=st.integers(0, 2**16), max_nodes=st.none() | st.integers(1, 30))
def test_budget_is_never_exceeded(tw, algo, fields, seed, max_nodes):
    budget = Budget(**fields)
    result, policy, verifier = run(tw, algo, seed, budget, max_nodes=max_nodes)
    usage = result.usage
    assert usage.within(budget)
    # Usage counts exactly what the policy and the verifier were asked.
    assert usage.policy_calls == sum(len(batch) for batch in policy.calls)
    assert usage.verifier_calls == sum(len(batch) for batch in verifier.seen)
    if budget.policy_calls is not None:
        assert usage.policy_calls <= budget.policy_calls
    if budget.verifier_calls is not None:
        assert usage.verifier_calls <= budget.verifier_calls
    assert result.stop_reason in STOP_REASONS
    if result.stop_reason in COUNTERS:
        assert getattr(budget, result.stop_reason) is not None
    tree = result.tree
    if max_nodes is not None:
        assert len(tree) <= max_nodes
    check_tree(tree)
    # The answer, when there is one, is reached by the first action and is traced.
    if result.answer is not None:
        assert result.action == result.answer.steps[0]
        assert result.answer.steps in {t.actions for t in result.traces}
    assert result.visit_distribution.shape == (len(result.actions),)


def test_same_seed_same_tree(tw, algo):
    trees = [run(tw, algo, seed)[0] for seed in (11, 11, 12, 13, 14)]
    assert trees[0].tree.to_dict() == trees[1].tree.to_dict()
    assert trees[0].traces == trees[1].traces
    assert trees[0].answer == trees[1].answer
    # ... and the seed matters: the policy draws with the search's rng.
    assert len({str(r.tree.to_dict()) for r in trees}) > 2


def test_traces_carry_answers_scores_and_outcomes(tw, algo):
    policy = tw.TablePolicy(default=lambda steps: [("a", 1.0), ("EOS", 2.0)])
    verifier = tw.TableVerifier(default=lambda steps: 0.4 + 0.1 * len(steps))
    search = tw.FACTORIES[algo](policy, verifier, answer_fn=lambda s: "/".join(s.steps))
    result = search.search(tw.S(max_len=4, eos_value=1.0), tw.BIG, rng=tw.rng())
    assert result.traces
    assert result.answer_text == "/".join(result.answer.steps)
    for trace in result.traces:
        assert trace.answer == "/".join(trace.actions)
        assert trace.steps[-1].score == pytest.approx(0.4 + 0.1 * len(trace.steps))
        ends_in_eos = trace.actions[-1] == "EOS"
        assert trace.outcome == (1.0 if ends_in_eos else None)


def test_max_nodes_stops_cleanly(tw, algo):
    result, _, _ = run(tw, algo, max_nodes=1)
    assert result.stop_reason == "max_nodes"
    assert len(result.tree) == 1
    assert result.answer is None and result.action is None


def test_token_budget_stops_cleanly(tw, algo):
    # Never "EOS" and always above DFS's threshold, so only the budget can end the search.
    policy = tw.RandomPolicy(alphabet=("a", "b", "c"))
    search = tw.FACTORIES[algo](policy, lambda states: [0.9] * len(states))
    result = search.search(tw.S(max_len=10), Budget(tokens=1), rng=tw.rng())
    # A policy short of tokens returns nothing for some state: that is the budget, not an error.
    assert result.stop_reason == "tokens"
    assert result.usage.tokens == 1


def test_wall_time_budget(tw, algo):
    result, policy, _ = run(tw, algo, budget=Budget(wall_time=1e-9))
    assert result.stop_reason == "wall_time"
    assert policy.calls == []
    assert result.usage.simulations == 0


# ------------------------------------------------------------------ bad input


def test_nan_score_is_rejected(tw, algo):
    search = tw.FACTORIES[algo](tw.RandomPolicy(), lambda states: [math.nan] * len(states))
    with pytest.raises(ValueError, match="non-finite"):
        search.search(tw.S(), tw.BIG, rng=tw.rng())


def test_wrong_number_of_scores_is_rejected(tw, algo):
    search = tw.FACTORIES[algo](tw.RandomPolicy(), lambda states: [0.5] * (len(states) + 1))
    with pytest.raises(ValueError, match="scores for"):
        search.search(tw.S(), tw.BIG, rng=tw.rng())


@pytest.mark.parametrize("bad", [0, None, np.random.RandomState(0)])
def test_rng_must_be_a_generator(tw, algo, bad):
    search = tw.FACTORIES[algo](tw.RandomPolicy(), lambda states: [0.5] * len(states))
    with pytest.raises(TypeError, match="Generator"):
        search.search(tw.S(), tw.BIG, rng=bad)


@pytest.mark.parametrize("bad", [None, {"simulations": 3}, 3])
def test_budget_must_be_a_budget(tw, algo, bad):
    search = tw.FACTORIES[algo](tw.RandomPolicy(), lambda states: [0.5] * len(states))
    with pytest.raises(TypeError, match="Budget"):
        search.search(tw.S(), bad, rng=tw.rng())


def test_empty_expansion_names_the_state(tw, algo):
    search = tw.FACTORIES[algo](
        tw.TablePolicy(default=lambda steps: []), lambda states: [0.5] * len(states)
    )
    with pytest.raises(ValueError, match=r"empty expansion.*TextState\(steps=\(\)"):
        search.search(tw.S(), tw.BIG, rng=tw.rng())


def test_bad_root(tw, algo):
    search = tw.FACTORIES[algo](tw.RandomPolicy(), lambda states: [0.5] * len(states))
    with pytest.raises(ValueError, match="terminal"):
        search.search(tw.S("EOS"), tw.BIG, rng=tw.rng())
    with pytest.raises(TypeError, match="State"):
        search.search("root", tw.BIG, rng=tw.rng())


def test_bad_roles(tw, algo):
    verifier = tw.TableVerifier(default=tw.hash_score)
    with pytest.raises(TypeError, match="policy"):
        tw.FACTORIES[algo](object(), verifier)
    with pytest.raises(TypeError, match="verifier"):
        tw.FACTORIES[algo](tw.RandomPolicy(), None)
    with pytest.raises(TypeError, match="verifier"):
        tw.FACTORIES[algo](tw.RandomPolicy(), 3)
    with pytest.raises(TypeError, match="answer_fn"):
        tw.FACTORIES[algo](tw.RandomPolicy(), verifier, answer_fn="last")


BAD_HYPERPARAMETERS = [
    (BFS, {"beam_size": 0}, ValueError, "beam_size"),
    (BFS, {"beam_size": 1.5}, TypeError, "beam_size"),
    (BFS, {"max_depth": 0}, ValueError, "max_depth"),
    (BFS, {"aggregation": "median"}, ValueError, "aggregation"),
    (BFS, {"max_nodes": 0}, ValueError, "max_nodes"),
    (DFS, {"threshold": math.nan}, ValueError, "threshold"),
    (DFS, {"threshold": "high"}, TypeError, "threshold"),
    (DFS, {"max_depth": 0}, ValueError, "max_depth"),
    (DFS, {"stop_at_first": "yes"}, TypeError, "stop_at_first"),
    (BeamSearch, {"n": 6, "beam_width": 4}, ValueError, "multiple"),
    (BeamSearch, {"n": 0}, ValueError, "n "),
    (BeamSearch, {"beam_width": 0}, ValueError, "beam_width"),
    (BeamSearch, {"max_iterations": 0}, ValueError, "max_iterations"),
    (BeamSearch, {"mode": "plain"}, ValueError, "mode"),
    (BeamSearch, {"dedupe": 1}, TypeError, "dedupe"),
    (BeamSearch, {"aggregation": "max"}, ValueError, "aggregation"),
    (BestFirst, {"num_solutions": 0}, ValueError, "num_solutions"),
    (BestFirst, {"max_depth": -1}, ValueError, "max_depth"),
    (BestOfN, {"n": 0}, ValueError, "n "),
    (BestOfN, {"mode": "argmax"}, ValueError, "mode"),
    (BestOfN, {"max_depth": 0}, ValueError, "max_depth"),
    (BestOfN, {"n": True}, TypeError, "n "),
    (DVTS, {"n": 6, "beam_width": 4}, ValueError, "multiple"),
    (DVTS, {"mode": "majority"}, ValueError, "mode"),
    (DVTS, {"max_iterations": 0}, ValueError, "max_iterations"),
]


@pytest.mark.parametrize(("cls", "kwargs", "error", "name"), BAD_HYPERPARAMETERS)
def test_bad_hyperparameters(tw, cls, kwargs, error, name):
    with pytest.raises(error, match=name):
        cls(tw.RandomPolicy(), tw.TableVerifier(default=tw.hash_score), **kwargs)
