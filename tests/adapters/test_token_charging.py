"""Every token HFStepPolicy generates is charged to the token budget exactly once.

Identical samples of one state are merged into one candidate whose ``num_tokens`` counts all of
them. Here the generated tokens are counted independently (each token the policy samples, by
wrapping its sampling step) and compared with what the searches charge, on a tiny random model
at a low temperature, where some samples of a state coincide and some do not.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from treesearch import MCTS, BeamSearch, BestOfN, Budget, Score  # noqa: E402
from treesearch.adapters.accounting import token_ratios  # noqa: E402
from treesearch.adapters.policies import HFStepPolicy  # noqa: E402
from treesearch.adapters.tiny import char_tokenizer, tiny_model  # noqa: E402
from treesearch.adapters.toymath_search import duplicate_sample_tokens  # noqa: E402


@pytest.fixture(scope="module")
def tok():
    return char_tokenizer()


@pytest.fixture(scope="module")
def lm(tok):
    return tiny_model(tok, architecture="llama", seed=0)


class CountingStepPolicy(HFStepPolicy):
    """HFStepPolicy that counts the tokens it samples (one per active row per round) and
    records each call: ``(max_tokens, tokens sampled, candidates)``."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.sampled = 0
        self.calls: list[tuple[int | None, int, list]] = []

    def _sample(self, logits, uniforms):
        chosen, logprob = super()._sample(logits, uniforms)
        self.sampled += int(chosen.numel())
        return chosen, logprob

    def propose(self, states, *, rng, max_tokens=None):
        before = self.sampled
        out = super().propose(states, rng=rng, max_tokens=max_tokens)
        self.calls.append((max_tokens, self.sampled - before, out))
        return out


def make_policy(lm, tok, **kwargs) -> CountingStepPolicy:
    options = {
        "step_separator": "<sep>",
        "num_candidates": 4,
        "max_step_tokens": 4,
        "temperature": 0.02,  # this random model's samples then coincide often, not always
    }
    options.update(kwargs)
    return CountingStepPolicy(lm, tok, **options)


def verifier(states):
    """A cheap deterministic score (the verifier plays no part in the accounting)."""
    return [Score((sum(s.token_ids) % 13) / 13) for s in states]


def searches(policy):
    return {
        "beam": BeamSearch(policy, verifier, n=4, beam_width=2, max_iterations=6),
        "best_of_n": BestOfN(policy, verifier, n=3, max_depth=6),
        "mcts": MCTS(policy=policy, verifier=verifier, fpu="parent", value_bounds=(0.0, 1.0)),
    }


def test_one_call_charges_exactly_the_tokens_it_sampled(lm, tok):
    policy = make_policy(lm, tok)
    states = [policy.initial_state("Compute 7*6."), policy.initial_state("Two")]
    merged = 0
    for seed, max_tokens in enumerate((None, 1, 5, 7, 12, 30, 100)):
        before = policy.sampled
        out = policy.propose(states, rng=np.random.default_rng(seed), max_tokens=max_tokens)
        sampled = policy.sampled - before
        charged = sum(c.num_tokens for cands in out for c in cands)
        assert charged == sampled > 0
        assert max_tokens is None or charged <= max_tokens
        for cands in out:
            for c in cands:
                assert c.num_tokens == c.payload["count"] * len(c.action.token_ids)
                merged += c.payload["count"] - 1
    assert merged > 0  # some samples were duplicates, so this differs from one step's length


@pytest.mark.parametrize("name", ["beam", "best_of_n", "mcts"])
def test_searches_never_generate_more_than_the_token_budget(lm, tok, name):
    duplicated = 0
    for limit in (9, 40, 120):
        policy = make_policy(lm, tok)
        root = policy.initial_state("Compute 12+30.", max_steps=6)
        result = searches(policy)[name].search(
            root, Budget(tokens=limit), rng=np.random.default_rng(limit)
        )
        assert policy.sampled <= limit
        assert result.usage.tokens == policy.sampled  # every sampled token charged, once
        for max_tokens, sampled, _ in policy.calls:
            assert max_tokens is not None and sampled <= max_tokens
        # The tree keeps each node's charge: its step times the samples that produced it.
        tree = result.tree
        for i in range(1, tree.num_nodes):
            payload = tree.payloads[i]
            assert tree.tokens[i] == payload["count"] * len(payload["token_ids"])
        duplicated += duplicate_sample_tokens(tree)
    assert duplicated > 0  # the budget had duplicates to see


def test_distinct_samples_are_charged_as_before_and_tree_tokens_stay_unique(lm, tok):
    # One sample per state: no duplicates, so the charge is each step's own length, as it was
    # before duplicates were charged; nothing is counted twice.
    for name in ("beam", "best_of_n", "mcts"):
        policy = make_policy(lm, tok, num_candidates=1, temperature=1.0)
        root = policy.initial_state("Compute 12+30.", max_steps=6)
        result = searches(policy)[name].search(
            root, Budget(tokens=60), rng=np.random.default_rng(1)
        )
        step_lengths = sum(
            len(c.action.token_ids) for _, _, out in policy.calls for cands in out for c in cands
        )
        assert all(c.payload["count"] == 1 for _, _, out in policy.calls for cs in out for c in cs)
        assert result.usage.tokens == step_lengths == policy.sampled > 0
        assert duplicate_sample_tokens(result.tree) == 0


def test_token_ratio_counts_a_merged_step_once_in_the_tree(lm, tok):
    policy = make_policy(lm, tok, temperature=0.0)  # four identical greedy samples per state
    policy.reset_counters()
    root = policy.initial_state("Compute 12+30.", max_steps=3)
    result = BestOfN(policy, verifier, n=1, max_depth=3).search(
        root, Budget(tokens=200), rng=np.random.default_rng(0)
    )
    tree = result.tree
    steps = [len(tree.payloads[i]["token_ids"]) for i in range(1, tree.num_nodes)]
    assert all(tree.payloads[i]["count"] == 4 for i in range(1, tree.num_nodes))
    assert result.usage.tokens == 4 * sum(steps)  # all four samples charged
    ratios = token_ratios(result, policy=policy)
    # Unique tree tokens: the prompt once and each step once, not four times.
    assert ratios["policy_tree"] == len(root.token_ids) + sum(steps)
    assert duplicate_sample_tokens(tree) == 3 * sum(steps)
