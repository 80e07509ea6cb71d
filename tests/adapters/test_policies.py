"""HFStepPolicy / HFTokenPolicy and ReasoningState on tiny random transformers models.

A "scripted" model makes generation exact: with attention and MLP outputs zeroed, the final
hidden state is the current token's (orthonormal) embedding, and the LM head is set so the
logits are ``scale`` for the scripted next token(s) and 0 for every other one.
"""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from treesearch import Candidate  # noqa: E402
from treesearch.adapters.policies import HFStepPolicy, HFTokenPolicy  # noqa: E402
from treesearch.adapters.state import ReasoningState, Step  # noqa: E402
from treesearch.adapters.tiny import char_tokenizer, tiny_model  # noqa: E402


@pytest.fixture(scope="module")
def tok():
    return char_tokenizer()


@pytest.fixture(scope="module")
def lm(tok):
    return tiny_model(tok, architecture="llama", seed=0)


def scripted_model(tok, script: dict[str, list[str]], *, scale: float = 40.0):
    """A Llama whose next-token logits are ``scale`` at ``script[current token]``, else 0."""
    vocab = len(tok)
    hidden = 128
    assert vocab <= hidden
    model = tiny_model(tok, architecture="llama", hidden_size=hidden, num_heads=4, num_kv_heads=2)
    basis = torch.linalg.qr(
        torch.randn(hidden, hidden, generator=torch.Generator().manual_seed(0))
    )[0]
    embeddings = basis[:vocab].clone()  # orthonormal rows
    head = torch.zeros(vocab, hidden)
    normalised = embeddings * math.sqrt(hidden)  # what RMSNorm makes of a unit-norm row
    ids = tok.convert_tokens_to_ids
    for current, nexts in script.items():
        for nxt in nexts:
            head[ids(nxt)] += scale * normalised[ids(current)] / hidden
    with torch.no_grad():
        model.model.embed_tokens.weight.copy_(embeddings)
        model.lm_head.weight.copy_(head)
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
    return model


def reference_logprob(model, ids: list[int], start: int) -> float:
    """Sum of log p(ids[t] | ids[:t]) for t >= start, from one uncached forward pass."""
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].float()
    logp = torch.log_softmax(logits, dim=-1)
    return float(sum(logp[t - 1, ids[t]] for t in range(start, len(ids))))


def greedy_reference(model, ids: list[int], stop_ids: set[int], limit: int) -> list[int]:
    out: list[int] = []
    for _ in range(limit):
        with torch.no_grad():
            nxt = int(model(torch.tensor([ids + out])).logits[0, -1].argmax())
        out.append(nxt)
        if nxt in stop_ids:
            break
    return out


# ---------------------------------------------------------------------- ReasoningState


def test_state_from_prompt_and_steps(tok):
    root = ReasoningState.from_prompt("1+1=", tok, question="one plus one", max_steps=2)
    bos = tok.bos_token_id
    assert root.prompt_ids == (bos, *tok("1+1=", add_special_tokens=False)["input_ids"])
    assert root.question == "one plus one" and root.text == "1+1="
    assert root.to_play == 0 and root.legal_actions() == () and root.terminal_value() is None
    assert root.key == root.prompt_ids and not root.is_terminal()
    sep = tok.convert_tokens_to_ids("<sep>")
    two = tok.convert_tokens_to_ids("2")
    a = root.step(Step("2<sep>", (two, sep), "separator", "2"))
    assert a.key == (*root.key, two, sep) and a.text == "1+1=2<sep>" and a.step_texts == ("2",)
    assert not a.is_terminal()
    b = a.step("3")  # plain text is tokenized with the state's tokenizer
    assert b.steps[-1].token_ids == (tok.convert_tokens_to_ids("3"),) and b.steps[-1].stop == "text"
    assert b.is_terminal()  # max_steps=2
    with pytest.raises(ValueError, match="terminal"):
        b.step("4")
    eos = ReasoningState.from_prompt("1+1=", tok).step(Step("", (tok.eos_token_id,), "eos"))
    assert eos.is_terminal()
    assert root == ReasoningState.from_prompt("1+1=", tok, question="other", max_steps=2)
    assert hash(a) == hash(a.key)


def test_state_is_immutable_and_pickles(tok):
    root = ReasoningState.from_prompt("1+1=", tok)
    child = root.step(Step("2", (5,), "length"))
    with pytest.raises(AttributeError):
        child.steps = ()  # type: ignore[misc]
    with pytest.raises(AttributeError):
        child.steps[0].stop = "eos"  # type: ignore[misc]
    again = pickle.loads(pickle.dumps(child))
    assert again == child and again.steps[0].stop == "length" and again.steps[0].token_ids == (5,)
    assert isinstance(again.steps[0], Step) and again.steps[0] == "2"


def test_state_rejects_bad_input(tok):
    root = ReasoningState.from_prompt("1", tok)
    with pytest.raises(TypeError, match="str or Step"):
        root.step(3)
    with pytest.raises(ValueError, match="empty"):
        root.step("")
    with pytest.raises(ValueError, match="no tokenizer"):
        ReasoningState("q", "q", (1, 2)).step("x")
    with pytest.raises(ValueError, match="at least one token"):
        Step("x", ())
    with pytest.raises(ValueError, match="stop"):
        Step("x", (1,), "done")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not the last step"):
        ReasoningState("q", "q", (1,), (Step("", (2,), "eos"), Step("x", (3,))))
    with pytest.raises(TypeError, match="Step"):
        ReasoningState("q", "q", (1,), ("x",))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_steps"):
        ReasoningState.from_prompt("1", tok, max_steps=0)


# ---------------------------------------------------------------------- HFStepPolicy: stops


def test_steps_stop_at_separator_then_at_eos(tok):
    model = scripted_model(
        tok, {"b": ["c"], "c": ["d"], "d": ["<sep>"], "<sep>": ["x"], "x": ["</s>"]}
    )
    policy = HFStepPolicy(model, tok, step_separator="<sep>", num_candidates=3, temperature=1.0)
    root = policy.initial_state("ab")
    (cands,) = policy.propose([root], rng=np.random.default_rng(0))
    assert len(cands) == 1  # three identical samples merged
    (c,) = cands
    assert c.action == "cd<sep>" and c.action.stop == "separator" and c.action.content == "cd"
    assert c.payload["count"] == 3 and c.payload["token_ids"] == c.action.token_ids
    assert len(c.action.token_ids) == 3 and c.num_tokens == 9  # three samples of 3 tokens
    child = root.step(c.action)
    assert not child.is_terminal()
    (cands,) = policy.propose([child], rng=np.random.default_rng(0))
    (last,) = cands
    assert last.action == "x" and last.action.stop == "eos" and len(last.action.token_ids) == 2
    assert last.num_tokens == 6 and last.payload["count"] == 3
    assert last.action.token_ids[-1] == tok.eos_token_id
    assert child.step(last.action).is_terminal()
    assert child.step(last.action).text == "abcd<sep>x"


def test_separator_before_any_content_does_not_end_the_step(tok):
    model = scripted_model(tok, {"b": ["<sep>"], "<sep>": ["y"], "y": ["<sep>"]})
    policy = HFStepPolicy(model, tok, step_separator="<sep>", num_candidates=1, temperature=0)
    root = policy.initial_state("b", add_special_tokens=False)
    (cands,) = policy.propose([root], rng=np.random.default_rng(0))
    assert cands[0].action == "<sep>y<sep>" and cands[0].action.content == "y"


def test_long_steps_are_cut_at_max_step_tokens(tok):
    model = scripted_model(tok, {"a": ["a"]})
    policy = HFStepPolicy(model, tok, step_separator="<sep>", max_step_tokens=5, temperature=0)
    root = policy.initial_state("a")
    (cands,) = policy.propose([root], rng=np.random.default_rng(0))
    assert cands[0].action == "aaaaa" and cands[0].action.stop == "length"
    assert not root.step(cands[0].action).is_terminal()


def test_duplicate_samples_merge_and_priors_follow_the_formula(tok):
    # After "b", "c" and "e" are equally likely; each continues to "<sep>" for sure.
    script = {"b": ["c", "e"], "c": ["<sep>"], "e": ["<sep>"]}
    model = scripted_model(tok, script)
    policy = HFStepPolicy(model, tok, step_separator="<sep>", num_candidates=8, temperature=1.0)
    root = policy.initial_state("b")
    (cands,) = policy.propose([root], rng=np.random.default_rng(3))
    assert sorted(c.action for c in cands) == ["c<sep>", "e<sep>"]
    assert sum(c.payload["count"] for c in cands) == 8
    vocab = len(tok)
    for c in cands:
        # p(c | b) = e^40 / (2 e^40 + vocab - 2); p(<sep> | c) = e^40 / (e^40 + vocab - 1)
        p1 = math.exp(40) / (2 * math.exp(40) + vocab - 2)
        p2 = math.exp(40) / (math.exp(40) + vocab - 1)
        assert c.logprob == pytest.approx(math.log(p1) + math.log(p2), abs=1e-4)
        assert c.prior == pytest.approx(math.sqrt(p1 * p2), abs=1e-4)  # exp(logprob / 2)


def test_logprobs_and_priors_match_an_uncached_forward(tok, lm):
    policy = HFStepPolicy(
        lm, tok, step_separator="<sep>", num_candidates=4, max_step_tokens=6, temperature=1.0
    )
    root = policy.initial_state("Compute 7*6.")
    (cands,) = policy.propose([root], rng=np.random.default_rng(0))
    child = root.step(cands[0].action)
    (grand,) = policy.propose([child], rng=np.random.default_rng(1))
    for state, group in ((root, cands), (child, grand)):
        for c in group:
            ids = list(state.token_ids) + list(c.payload["token_ids"])
            ref = reference_logprob(lm, ids, len(state.token_ids))
            assert c.logprob == pytest.approx(ref, abs=1e-4)
            length = len(c.payload["token_ids"])
            assert c.prior == pytest.approx(math.exp(ref / length), rel=1e-4)
            assert isinstance(c, Candidate) and c.num_tokens == c.payload["count"] * length


# ---------------------------------------------------------------------- sampling


def test_same_seed_same_candidates_other_seed_differs(tok, lm):
    policy = HFStepPolicy(lm, tok, step_separator="<sep>", num_candidates=4, max_step_tokens=6)
    root = policy.initial_state("Compute 7*6.")
    first = policy.propose([root], rng=np.random.default_rng(5))
    again = policy.propose([root], rng=np.random.default_rng(5))
    other = policy.propose([root], rng=np.random.default_rng(6))
    assert [c.action for c in first[0]] == [c.action for c in again[0]]
    assert [c.action for c in first[0]] != [c.action for c in other[0]]


def test_temperature_zero_and_tiny_top_p_are_greedy(tok, lm):
    root = ReasoningState.from_prompt("Compute 7*6.", tok)
    stops = {tok.eos_token_id, tok.convert_tokens_to_ids("<sep>")}
    expected = greedy_reference(lm, list(root.token_ids), stops, 7)
    for kwargs in (
        {"temperature": 0.0},
        {"temperature": 1e-4},
        {"temperature": 1.0, "top_p": 1e-9},
    ):
        policy = HFStepPolicy(
            lm, tok, step_separator="<sep>", num_candidates=3, max_step_tokens=7, **kwargs
        )
        (cands,) = policy.propose([root], rng=np.random.default_rng(0))
        assert len(cands) == 1 and list(cands[0].payload["token_ids"]) == expected, kwargs
        assert cands[0].payload["count"] == 3


def test_top_p_keeps_only_the_nucleus(tok):
    # After "b": "c" has 0.6 of the mass, "e" 0.4 (logits log 3 and log 2 above the rest,
    # which are made negligible); top_p = 0.5 keeps only "c".
    model = scripted_model(tok, {"b": ["c", "e"]}, scale=30.0)
    with torch.no_grad():
        ids = tok.convert_tokens_to_ids
        model.lm_head.weight[ids("e")] *= (30.0 - math.log(1.5)) / 30.0
    policy = HFStepPolicy(
        model, tok, step_separator="<sep>", num_candidates=16, max_step_tokens=1, temperature=1.0
    )
    root = policy.initial_state("b")
    (all_,) = policy.propose([root], rng=np.random.default_rng(0))
    assert sorted(c.action for c in all_) == ["c", "e"]
    policy.top_p = 0.5
    (nucleus,) = policy.propose([root], rng=np.random.default_rng(0))
    assert [c.action for c in nucleus] == ["c"]


def test_max_tokens_caps_the_whole_call(tok, lm):
    policy = HFStepPolicy(lm, tok, step_separator="<sep>", num_candidates=4, max_step_tokens=8)
    a = policy.initial_state("Compute 7*6.")
    b = policy.initial_state("Compute 2+2.")
    for budget in (1, 5, 9, 17, 40):
        out = policy.propose([a, b], rng=np.random.default_rng(0), max_tokens=budget)
        assert sum(c.num_tokens for cs in out for c in cs) <= budget
        if budget < 4:
            assert out[1] == []  # earlier states are served first
    assert policy.propose([a, b], rng=np.random.default_rng(0), max_tokens=0) == [[], []]
    capped = policy.propose([a], rng=np.random.default_rng(0), max_tokens=9)
    assert any(c.action.stop == "length" and len(c.action.token_ids) < 8 for c in capped[0])


def test_duplicate_samples_are_charged_once_each_by_hand(tok):
    # Every sample of "b" is "c", "d", "<sep>" (probability ~1 at each token): K identical rows.
    model = scripted_model(tok, {"b": ["c"], "c": ["d"], "d": ["<sep>"]})
    policy = HFStepPolicy(model, tok, step_separator="<sep>", num_candidates=4, temperature=1.0)
    root = policy.initial_state("b", add_special_tokens=False)
    other = policy.initial_state("bb", add_special_tokens=False)
    rng = np.random.default_rng(0)
    cases = [
        # max_tokens, states -> (step, count, num_tokens) per state
        (None, [root], [("cd<sep>", 4, 12)]),  # four 3-token samples
        (12, [root], [("cd<sep>", 4, 12)]),
        (10, [root], [("cd", 4, 8)]),  # a third round would need 12: all rows cut at 2
        (3, [root], [("c", 3, 3)]),  # three rows of one token
        (6, [root, other], [("c", 4, 4), ("c", 2, 2)]),  # the first state is served first
        (4, [root, other], [("c", 4, 4), None]),
    ]
    for max_tokens, states, expected in cases:
        out = policy.propose(states, rng=rng, max_tokens=max_tokens)
        for cands, want in zip(out, expected, strict=True):
            if want is None:
                assert cands == []
                continue
            (c,) = cands
            assert (c.action, c.payload["count"], c.num_tokens) == want, max_tokens
            assert c.num_tokens == c.payload["count"] * len(c.action.token_ids)
        charged = sum(c.num_tokens for cands in out for c in cands)
        assert charged == sum(want[2] for want in expected if want is not None)
        assert max_tokens is None or charged <= max_tokens


def test_batched_sampling_equals_one_state_at_a_time(tok, lm):
    policy = HFStepPolicy(
        lm, tok, step_separator="<sep>", num_candidates=3, max_step_tokens=6, kv_reuse=False
    )
    a = policy.initial_state("Compute 7*6.")
    b = policy.initial_state("Two")  # a shorter prompt: padded in the batch
    both = policy.propose([a, b], rng=np.random.default_rng(11))
    alone_a = policy.propose([a], rng=np.random.default_rng(11))
    rng = np.random.default_rng(11)
    rng.integers(0, 2**63 - 1, size=1)  # the draw that state a took
    alone_b = policy.propose([b], rng=rng)
    for batched, alone in ((both[0], alone_a[0]), (both[1], alone_b[0])):
        assert [c.action.token_ids for c in batched] == [c.action.token_ids for c in alone]
        for x, y in zip(batched, alone, strict=True):
            assert x.logprob == pytest.approx(y.logprob, abs=1e-5)


def test_bf16_option_runs(tok):
    model = tiny_model(tok, architecture="qwen2", seed=4)
    policy = HFStepPolicy(
        model, tok, step_separator="<sep>", num_candidates=2, max_step_tokens=4, dtype="bf16"
    )
    assert next(policy.model.parameters()).dtype == torch.bfloat16
    (cands,) = policy.propose([policy.initial_state("7*6")], rng=np.random.default_rng(0))
    assert cands and all(math.isfinite(c.logprob) for c in cands)


# ---------------------------------------------------------------------- HFTokenPolicy


def test_token_policy_top_k_priors_and_prefix_reuse(tok, lm):
    policy = HFTokenPolicy(lm, tok, top_k=4)
    root = policy.initial_state("Compute 7*6.")
    (cands,) = policy.propose([root], rng=np.random.default_rng(0))
    with torch.no_grad():
        probs = torch.softmax(lm(torch.tensor([list(root.token_ids)])).logits[0, -1], dim=-1)
    top = torch.topk(probs, 4)
    assert [c.action.token_ids[0] for c in cands] == top.indices.tolist()
    assert [c.prior for c in cands] == pytest.approx(top.values.tolist(), abs=1e-5)
    assert all(c.num_tokens == 1 for c in cands)
    assert policy.tokens_processed == len(root.token_ids)
    child = root.step(cands[0].action)
    policy.propose([child], rng=np.random.default_rng(0))
    assert policy.tokens_processed == len(root.token_ids) + 1  # only the new token
    two = policy.propose([root, child], rng=np.random.default_rng(0), max_tokens=6)
    assert [len(x) for x in two] == [4, 2]


def test_token_policy_eos_child_is_terminal(tok):
    model = scripted_model(tok, {"x": ["</s>"]})
    policy = HFTokenPolicy(model, tok, top_k=2)
    root = policy.initial_state("x")
    (cands,) = policy.propose([root], rng=np.random.default_rng(0))
    assert cands[0].action.stop == "eos" and cands[0].prior == pytest.approx(1.0, abs=1e-6)
    assert root.step(cands[0].action).is_terminal()
    assert not root.step(cands[1].action).is_terminal()


# ---------------------------------------------------------------------- errors


def test_bad_arguments_raise(tok, lm):
    with pytest.raises(ValueError, match="num_candidates"):
        HFStepPolicy(lm, tok, num_candidates=0)
    with pytest.raises(ValueError, match="top_p"):
        HFStepPolicy(lm, tok, step_separator="<sep>", top_p=0.0)
    with pytest.raises(ValueError, match="temperature"):
        HFStepPolicy(lm, tok, step_separator="<sep>", temperature=-1)
    with pytest.raises(ValueError, match="no token of this tokenizer contains"):
        HFStepPolicy(lm, tok, step_separator="\n\n")  # two tokens in a character vocabulary
    with pytest.raises(TypeError, match="transformers"):
        HFStepPolicy(object(), tok)
    with pytest.raises(ValueError, match="dtype"):
        HFStepPolicy(lm, tok, step_separator="<sep>", dtype="int3")
    policy = HFStepPolicy(lm, tok, step_separator="<sep>", max_step_tokens=2)
    root = policy.initial_state("1")
    with pytest.raises(TypeError, match="ReasoningState"):
        policy.propose(["1+1"], rng=np.random.default_rng(0))  # type: ignore[list-item]
    with pytest.raises(TypeError, match="numpy"):
        policy.propose([root], rng=0)  # type: ignore[arg-type]
    done = root.step(Step("", (tok.eos_token_id,), "eos"))
    with pytest.raises(ValueError, match="terminal"):
        policy.propose([done], rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="max_tokens"):
        policy.propose([root], rng=np.random.default_rng(0), max_tokens=-1)


@pytest.mark.gpu
def test_cuda_bf16_reuse_matches_naive(tok):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    model = tiny_model(tok, architecture="qwen2", seed=4)
    naive = HFStepPolicy(
        model,
        tok,
        step_separator="<sep>",
        num_candidates=4,
        max_step_tokens=8,
        device="cuda",
        dtype="bf16",
        kv_reuse=False,
        temperature=0,
    )
    reuse = HFStepPolicy(
        model,
        tok,
        step_separator="<sep>",
        num_candidates=4,
        max_step_tokens=8,
        device="cuda",
        dtype="bf16",
        kv_reuse=True,
        temperature=0,
    )
    root = reuse.initial_state("Compute 7*6.")
    state = root
    for _ in range(3):
        (a,) = reuse.propose([state], rng=np.random.default_rng(0))
        (b,) = naive.propose([state], rng=np.random.default_rng(0))
        assert [c.action.token_ids for c in a] == [c.action.token_ids for c in b]
        assert a[0].logprob == pytest.approx(b[0].logprob, abs=0.05)
        state = state.step(a[0].action)
    assert reuse.tokens_processed < naive.tokens_processed
