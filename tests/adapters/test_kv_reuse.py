"""Prefix (KV-cache) reuse: the same results as naive re-encoding, with about one model pass per
tree token (``docs/design.md`` section 4, target P5)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from treesearch import MCTS, BeamSearch, Budget, Tree  # noqa: E402
from treesearch.adapters.accounting import token_ratios, tree_tokens  # noqa: E402
from treesearch.adapters.kvcache import CacheEntry, KVCacheStore  # noqa: E402
from treesearch.adapters.policies import HFStepPolicy, HFTokenPolicy  # noqa: E402
from treesearch.adapters.state import ReasoningState  # noqa: E402
from treesearch.adapters.tiny import CHATML_TEMPLATE, char_tokenizer, tiny_model  # noqa: E402
from treesearch.adapters.verifiers import HFORM, HFPRM  # noqa: E402

TOL = 2e-5


@pytest.fixture(scope="module")
def ptok():
    """The policy's tokenizer: characters plus <sep>; it cannot write the PRMs' tags."""
    return char_tokenizer()


@pytest.fixture(scope="module")
def vtok():
    return char_tokenizer(
        special_tokens=["<extra_0>", "<|im_start|>", "<|im_end|>"],
        added_tokens=["Positive", "Negative", "ки"],
        chat_template=CHATML_TEMPLATE,
    )


@pytest.fixture(scope="module")
def lm(ptok):
    return tiny_model(ptok, architecture="llama", seed=0)


def policy_pair(lm, ptok, **kwargs):
    options = {
        "step_separator": "<sep>",
        "num_candidates": 3,
        "max_step_tokens": 6,
        "temperature": 1.0,
    }
    options.update(kwargs)
    return (
        HFStepPolicy(lm, ptok, kv_reuse=True, **options),
        HFStepPolicy(lm, ptok, kv_reuse=False, **options),
    )


def same_candidates(a, b) -> None:
    assert [c.action.token_ids for c in a] == [c.action.token_ids for c in b]
    for x, y in zip(a, b, strict=True):
        assert x.logprob == pytest.approx(y.logprob, abs=TOL)
        assert x.prior == pytest.approx(y.prior, abs=TOL)


def grow(policy, root, depth: int, seed: int = 0) -> list[ReasoningState]:
    """A chain of states: each the first candidate of the previous one."""
    states = [root]
    for d in range(depth):
        (cands,) = policy.propose([states[-1]], rng=np.random.default_rng(seed + d))
        states.append(states[-1].step(cands[0].action))
    return states


# ---------------------------------------------------------------------- policy


def test_step_policy_reuse_equals_naive_and_runs_each_token_once(lm, ptok):
    reuse, naive = policy_pair(lm, ptok)
    state = reuse.initial_state("Compute 12+30 step by step.")
    expected_tokens = len(state.token_ids)
    for depth in range(4):
        rng_a, rng_b = np.random.default_rng(depth), np.random.default_rng(depth)
        before = reuse.tokens_processed
        (a,) = reuse.propose([state], rng=rng_a)
        (b,) = naive.propose([state], rng=rng_b)
        same_candidates(a, b)
        # Each sampled row runs all its tokens but the last; the state's own last token is
        # run once when it is expanded (the whole prompt at the root).
        rows = reuse.num_candidates
        generated = sum(c.num_tokens for c in a)  # merged duplicates included
        assert reuse.tokens_processed - before == expected_tokens + generated - rows
        state = state.step(a[0].action)
        expected_tokens = 1
    assert naive.tokens_processed > 2 * reuse.tokens_processed


def test_batch_of_mixed_depths_equals_one_by_one_and_padding_side_is_irrelevant(lm, ptok):
    left = char_tokenizer(padding_side="left")
    reuse, naive = policy_pair(lm, ptok, temperature=0.0)
    chain = grow(reuse, reuse.initial_state("Compute 12+30."), 3)
    other = reuse.initial_state("Go")
    batch = [chain[3], other, chain[1]]
    together = reuse.propose(batch, rng=np.random.default_rng(0))
    for state, got in zip(batch, together, strict=True):
        (alone,) = naive.propose([state], rng=np.random.default_rng(0))
        same_candidates(got, alone)
    left_policy = HFStepPolicy(
        lm, left, step_separator="<sep>", num_candidates=3, max_step_tokens=6, temperature=0.0
    )
    for got, lhs in zip(
        together, left_policy.propose(batch, rng=np.random.default_rng(0)), strict=True
    ):
        same_candidates(got, lhs)


def test_eviction_costs_recomputation_not_correctness(lm, ptok):
    reuse, naive = policy_pair(lm, ptok)
    reuse.cache = KVCacheStore(max_entries=1, max_tokens=10_000)
    state = reuse.initial_state("Compute 12+30.")
    for depth in range(3):
        (a,) = reuse.propose([state], rng=np.random.default_rng(depth))
        (b,) = naive.propose([state], rng=np.random.default_rng(depth))
        same_candidates(a, b)
        state = state.step(a[-1].action)  # not the last child cached: its entry was evicted
    assert reuse.cache.evictions > 0 and len(reuse.cache) == 1


def test_token_policy_reuse_equals_naive(lm, ptok):
    reuse = HFTokenPolicy(lm, ptok, top_k=3)
    naive = HFTokenPolicy(lm, ptok, top_k=3, kv_reuse=False)
    state = reuse.initial_state("Compute 12+30.")
    for _ in range(4):
        (a,) = reuse.propose([state], rng=np.random.default_rng(0))
        (b,) = naive.propose([state], rng=np.random.default_rng(0))
        same_candidates(a, b)
        state = state.step(a[1].action)
    assert reuse.tokens_processed == len(state.token_ids) - 1  # every token once, but the last


# ---------------------------------------------------------------------- verifiers


PRESETS = [
    ("seed", "llama", "causal-lm", 2),
    ("math-shepherd", "mistral", "causal-lm", 2),
    ("qwen2.5-math-prm", "qwen2", "token-classification", 2),
    ("value-head", "llama", "token-classification", 1),
]


def small_tree(lm, ptok) -> list[ReasoningState]:
    """Root, two children, and two grandchildren of the first child."""
    policy = HFStepPolicy(
        lm, ptok, step_separator="<sep>", num_candidates=2, max_step_tokens=5, temperature=1.0
    )
    root = policy.initial_state("what is 12+30?")
    kids = [root.step(c.action) for c in policy.propose([root], rng=np.random.default_rng(1))[0]]
    grand = [
        kids[0].step(c.action) for c in policy.propose([kids[0]], rng=np.random.default_rng(2))[0]
    ]
    return [root, *kids, *grand]


@pytest.mark.parametrize(("preset", "arch", "head", "labels"), PRESETS)
def test_prm_reuse_equals_naive_and_scores_only_new_steps(
    lm, ptok, vtok, preset, arch, head, labels
):
    model = tiny_model(vtok, architecture=arch, head=head, num_labels=labels, seed=3)
    reuse = HFPRM(model, vtok, preset=preset)
    naive = HFPRM(model, vtok, preset=preset, kv_reuse=False)
    root, *kids = small_tree(lm, ptok)
    expected = naive.score(kids)
    first = reuse.score(kids[:2])  # the children: the shared prefix runs once
    prefix = reuse.node_tokens(root)
    assert reuse.tokens_processed == prefix + sum(reuse.node_tokens(s) for s in kids[:2])
    before = reuse.tokens_processed
    second = reuse.score(kids[2:])  # grandchildren: only their own step and tag
    assert reuse.tokens_processed - before == sum(reuse.node_tokens(s) for s in kids[2:])
    for got, want in zip(first + second, expected, strict=True):
        assert got.step_scores == pytest.approx(want.step_scores, abs=TOL)
        assert got.value == pytest.approx(want.value, abs=TOL)
    before = reuse.tokens_processed
    assert reuse.score(kids) == first + second  # scored states are remembered
    assert reuse.tokens_processed == before


def test_prm_deep_states_from_scratch_share_their_common_prefix(lm, ptok, vtok):
    model = tiny_model(vtok, architecture="llama", seed=3)
    reuse = HFPRM(model, vtok)
    naive = HFPRM(model, vtok, kv_reuse=False)
    root, a, b, aa, ab = small_tree(lm, ptok)
    got = reuse.score([aa, ab, b])  # a (shared by aa and ab) and the prefix are computed once
    for g, state in zip(got, [aa, ab, b], strict=True):
        (alone,) = naive.score([state])  # one state at a time: no padding at all
        assert g.step_scores == pytest.approx(alone.step_scores, abs=TOL)
    unique = sum(reuse.node_tokens(s) for s in (root, a, b, aa, ab))
    assert reuse.tokens_processed == unique


def test_orm_reuse_equals_naive(lm, ptok, vtok):
    model = tiny_model(
        vtok, architecture="llama", head="sequence-classification", num_labels=1, seed=6
    )
    reuse = HFORM(model, vtok, suffix=" ok")
    naive = HFORM(model, vtok, suffix=" ok", kv_reuse=False)
    _, *kids = small_tree(lm, ptok)
    got = reuse.score(kids[:2]) + reuse.score(kids[2:])
    want = naive.score(kids)
    assert [g.value for g in got] == pytest.approx([w.value for w in want], abs=TOL)
    assert reuse.tokens_processed < naive.tokens_processed
    before = reuse.tokens_processed
    assert [s.value for s in reuse.score(kids)] == [g.value for g in got]
    assert reuse.tokens_processed == before


def test_cache_store_evicts_least_recently_used_within_both_limits():
    def entry(length: int) -> CacheEntry:
        kv = torch.zeros(1, 1, length, 2)
        return CacheEntry(((kv, kv),), length)

    store = KVCacheStore(max_entries=3, max_tokens=10)
    for key, length in (("a", 2), ("b", 3), ("c", 4)):
        store.put(key, entry(length))
    assert store.get("a") is not None  # "b" is now the least recently used
    store.put("d", entry(1))  # four entries: "b" goes
    assert "b" not in store and {"a", "c", "d"} == {k for k in "abcd" if k in store}
    store.put("e", entry(5))  # 2 + 4 + 1 + 5 = 12 tokens > 10: the oldest, "c", goes
    assert [k for k in "acde" if k in store] == ["a", "d", "e"] and store.tokens == 8
    store.put("huge", entry(11))  # larger than the whole store: not kept, nothing evicted
    assert "huge" not in store and len(store) == 3
    assert store.evictions == 2
    with pytest.raises(ValueError, match="max_entries"):
        KVCacheStore(max_entries=0)


# ---------------------------------------------------------------------- searches (target P5)


def searches():
    yield (
        "beam",
        lambda p, v: BeamSearch(p, v, n=4, beam_width=2, max_iterations=4),
        Budget(tokens=600),
    )
    yield (
        "mcts",
        lambda p, v: MCTS(policy=p, verifier=v, value_bounds=(0.0, 1.0)),
        Budget(simulations=14),
    )


@pytest.mark.parametrize(("name", "make", "budget"), list(searches()), ids=["beam", "mcts"])
def test_searches_run_each_tree_token_about_once(lm, ptok, vtok, name, make, budget):
    prm_model = tiny_model(vtok, architecture="llama", seed=3)
    ratios = {}
    trees = {}
    for reuse in (True, False):
        policy = HFStepPolicy(
            lm,
            ptok,
            step_separator="<sep>",
            num_candidates=2,
            max_step_tokens=6,
            temperature=1.0,
            kv_reuse=reuse,
        )
        prm = HFPRM(prm_model, vtok, preset="seed", kv_reuse=reuse)
        root = ReasoningState.from_prompt(
            "Question: what is 12+30? Think step by step.", ptok, max_steps=5
        )
        result = make(policy, prm).search(root, budget, rng=np.random.default_rng(0))
        ratios[reuse] = token_ratios(result, policy=policy, verifier=prm)
        trees[reuse] = [str(a) for a in result.tree.actions[1:]]
        assert ratios[reuse]["policy_tree"] == tree_tokens(result, policy)
    # The same search either way (same samples, same scores), ...
    assert trees[True] == trees[False] and len(trees[True]) >= 8
    # ... with each tree token run about once with reuse, and several times without.
    assert ratios[True]["policy"] <= 1.1 and ratios[True]["verifier"] <= 1.1
    assert ratios[False]["policy"] >= 2.5 and ratios[False]["verifier"] >= 2.5


def test_token_ratios_refuses_what_it_cannot_count(lm, ptok):
    with pytest.raises(ValueError, match="policy= or verifier="):
        token_ratios(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="SearchResult or a Tree"):
        token_ratios("tree", policy=HFTokenPolicy(lm, ptok))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="does not count tokens"):
        token_ratios(Tree(ReasoningState.from_prompt("1", ptok)), policy=object())  # type: ignore[arg-type]


def test_docs_example_prints_its_output(capsys):
    """The runnable example of docs/adapters.md, section "Policies and verifiers"."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "adapters.md").read_text(encoding="utf-8")
    section = doc.split("## Policies and verifiers", 1)[1]
    blocks = re.findall(r"^```(\w*)\n(.*?)^```$", section, flags=re.S | re.M)
    at = next(i for i, (lang, code) in enumerate(blocks) if not lang and "tiny_model" in code)
    code, (lang, expected) = blocks[at][1], blocks[at + 1]
    assert lang == "text"
    # Our own documentation, not model output: running it is the point of the test.
    exec(compile(code, "docs/adapters.md", "exec"), {"__name__": "docs_adapters_example"})
    assert capsys.readouterr().out == expected
