"""HFPRM presets and HFORM on tiny random models of the checkpoints' real architectures.

Every expected score is computed here independently: the checkpoint's input is built by hand
(prefix, steps, tags), run through the model once without any cache, and read by the
checkpoint's formula at the tag positions.
"""

from __future__ import annotations

import logging
import math

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from treesearch import Score  # noqa: E402
from treesearch.adapters.state import ReasoningState, Step  # noqa: E402
from treesearch.adapters.tiny import CHATML_TEMPLATE, char_tokenizer, tiny_model  # noqa: E402
from treesearch.adapters.verifiers import HFORM, HFPRM, PRM_PRESETS, PRMPreset, prm_preset  # noqa: E402

QWEN_SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."


@pytest.fixture(scope="module")
def tok():
    """A tokenizer carrying every preset's special tokens."""
    return char_tokenizer(
        alphabet="0123456789+-*/=()., \n?:abcdefghijklmnopqrstuvwxyzWSQ\\{}",
        special_tokens=["<extra_0>", "<|im_start|>", "<|im_end|>"],
        added_tokens=["Positive", "Negative", "ки"],
        chat_template=CHATML_TEMPLATE,
    )


def solution(tok, question: str, steps: list[str]) -> ReasoningState:
    state = ReasoningState.from_prompt(question, tok)
    for text in steps:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        state = state.step(Step(text + "\n\n", (*ids, 1), "separator", text))
    return state


QUESTION = "what is 2+3*4?"
STEPS = ["3*4=12", "2+12=14", "the answer is 14"]


def run(model, ids: list[int]) -> torch.Tensor:
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].float()


def encode(tok, text: str) -> list[int]:
    return tok(text, add_special_tokens=False)["input_ids"]


def test_seed_preset_reads_positive_vs_negative_at_sep(tok):
    model = tiny_model(tok, architecture="llama", seed=1)
    prm = HFPRM(model, tok, preset="seed")
    sep, pos, neg = (tok.convert_tokens_to_ids(t) for t in ("<sep>", "Positive", "Negative"))
    ids = tok(QUESTION)["input_ids"]  # with BOS
    tags = []
    for step in STEPS:
        ids += [*encode(tok, step), sep]
        tags.append(len(ids) - 1)
    logits = run(model, ids)
    expected = [
        math.exp(logits[t, pos]) / (math.exp(logits[t, pos]) + math.exp(logits[t, neg]))
        for t in tags
    ]
    (score,) = prm.score([solution(tok, QUESTION, STEPS)])
    assert score.step_scores == pytest.approx(expected, abs=1e-5)
    assert score.value == pytest.approx(expected[-1], abs=1e-5)


def test_math_shepherd_preset_on_mistral(tok):
    model = tiny_model(tok, architecture="mistral", seed=2)
    prm = HFPRM(model, tok, preset="math-shepherd", aggregation="min")
    tag, plus, minus = (tok.convert_tokens_to_ids(t) for t in ("ки", "+", "-"))
    ids = tok(QUESTION + " ")["input_ids"]
    tags = []
    for k, step in enumerate(STEPS):
        ids += [*encode(tok, ("\n" if k else "") + step), tag]  # "s1 ки\ns2 ки\ns3 ки"
        tags.append(len(ids) - 1)
    logits = run(model, ids)
    expected = [torch.softmax(logits[t, [plus, minus]], dim=-1)[0].item() for t in tags]
    (score,) = prm.score([solution(tok, QUESTION, STEPS)])
    assert score.step_scores == pytest.approx(expected, abs=1e-5)
    assert score.value == pytest.approx(min(expected), abs=1e-5)


def test_qwen_math_prm_preset_on_a_two_class_qwen2_head(tok):
    model = tiny_model(tok, architecture="qwen2", head="token-classification", num_labels=2, seed=3)
    prm = HFPRM(model, tok, preset="qwen2.5-math-prm", aggregation="prod")
    prefix = (
        f"<|im_start|>system\n{QWEN_SYSTEM}<|im_end|>\n<|im_start|>user\n{QUESTION}<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    extra = tok.convert_tokens_to_ids("<extra_0>")
    ids = encode(tok, prefix)
    tags = []
    for step in STEPS:
        ids += [*encode(tok, step), extra]
        tags.append(len(ids) - 1)
    logits = run(model, ids)
    expected = [torch.softmax(logits[t], dim=-1)[1].item() for t in tags]
    (score,) = prm.score([solution(tok, QUESTION, STEPS)])
    assert score.step_scores == pytest.approx(expected, abs=1e-5)
    assert score.value == pytest.approx(math.prod(expected), abs=1e-5)


def test_value_head_preset_is_a_sigmoid_of_one_output(tok):
    model = tiny_model(tok, architecture="llama", head="token-classification", num_labels=1, seed=5)
    prm = HFPRM(model, tok, preset="value-head", aggregation="mean")
    sep = tok.convert_tokens_to_ids("<sep>")
    ids = tok(QUESTION)["input_ids"]
    tags = []
    for step in STEPS:
        ids += [*encode(tok, step), sep]
        tags.append(len(ids) - 1)
    logits = run(model, ids)
    expected = [1 / (1 + math.exp(-logits[t, 0].item())) for t in tags]
    (score,) = prm.score([solution(tok, QUESTION, STEPS)])
    assert score.step_scores == pytest.approx(expected, abs=1e-5)
    assert score.value == pytest.approx(sum(expected) / 3, abs=1e-5)
    raw = HFPRM(model, tok, preset=prm_preset("value-head", activation="identity"))
    assert raw.score([solution(tok, QUESTION, STEPS)])[0].step_scores == pytest.approx(
        [logits[t, 0].item() for t in tags], abs=1e-5
    )


def test_states_without_steps_and_blank_final_eos_steps(tok):
    model = tiny_model(tok, architecture="llama", seed=1)
    prm = HFPRM(model, tok, empty_value=0.25)
    root = ReasoningState.from_prompt(QUESTION, tok)
    assert prm.score([root]) == [Score(0.25, ())]
    assert prm.tokens_processed == 0
    one = solution(tok, QUESTION, STEPS[:1])
    ended = one.step(Step("", (tok.eos_token_id,), "eos"))  # the model stopped after a step
    a, b = prm.score([one, ended])
    assert a == b and len(a.step_scores) == 1


def test_custom_preset_and_overrides(tok):
    assert set(PRM_PRESETS) == {"seed", "math-shepherd", "qwen2.5-math-prm", "value-head"}
    model = tiny_model(tok, architecture="llama", seed=1)
    mine = PRMPreset("mine", "lm", step_tag="ки", good_token="Positive", bad_token="Negative")
    via_override = prm_preset("seed", step_tag="ки")
    state = solution(tok, QUESTION, STEPS)
    assert HFPRM(model, tok, preset=mine).score([state]) == HFPRM(
        model, tok, preset=via_override
    ).score([state])
    with pytest.raises(ValueError, match="unknown PRM preset"):
        prm_preset("shepherd")
    with pytest.raises(ValueError, match="good_token"):
        PRMPreset("bad", "lm")
    with pytest.raises(ValueError, match="question"):
        PRMPreset("bad", "scalar", prefix_template="no placeholder")


# ---------------------------------------------------------------------- errors


def test_tokenizers_missing_the_convention_are_refused():
    plain = char_tokenizer(sep_token=None)
    model = tiny_model(plain, architecture="llama")
    with pytest.raises(ValueError, match="sep_token"):
        HFPRM(model, plain, preset="seed")
    with pytest.raises(ValueError, match="step tag 'ки' is not a single token"):
        HFPRM(model, plain, preset="math-shepherd")
    with_sep = char_tokenizer()
    with pytest.raises(ValueError, match="label word 'Positive' is not a single token"):
        HFPRM(tiny_model(with_sep), with_sep, preset="seed")
    no_chat = char_tokenizer(special_tokens=["<extra_0>"])
    with pytest.raises(ValueError, match="chat template"):
        HFPRM(tiny_model(no_chat, head="token-classification"), no_chat, preset="qwen2.5-math-prm")


def test_bad_states_are_refused(tok):
    prm = HFPRM(tiny_model(tok, architecture="llama", seed=1), tok)
    with pytest.raises(ValueError, match="contains the step tag"):
        prm.score([solution(tok, QUESTION, ["3*4=12<sep>2+12=14"])])
    blank = ReasoningState.from_prompt(QUESTION, tok).step(Step("  \n", (5,), "separator", "  "))
    with pytest.raises(ValueError, match="step 0 of state 0 is empty"):
        prm.score([blank])
    with pytest.raises(TypeError, match="question"):
        prm.score(["3*4=12"])
    with pytest.raises(TypeError, match="sequence of states"):
        prm.score(solution(tok, QUESTION, STEPS))  # type: ignore[arg-type]


def test_heads_that_do_not_fit_the_preset_are_refused(tok):
    state = solution(tok, QUESTION, STEPS[:1])
    classifier = tiny_model(tok, architecture="qwen2", head="token-classification", num_labels=2)
    with pytest.raises(ValueError, match="label words from an LM head"):
        HFPRM(classifier, tok, preset="seed").score([state])
    causal = tiny_model(tok, architecture="qwen2")
    with pytest.raises(ValueError, match="classification head"):
        HFPRM(causal, tok, preset="qwen2.5-math-prm").score([state])
    with pytest.raises(ValueError, match="one scalar output"):
        HFPRM(classifier, tok, preset="value-head").score([state])
    with pytest.raises(ValueError, match="aggregation"):
        HFPRM(causal, tok, preset="seed", aggregation="max")  # type: ignore[arg-type]


# ---------------------------------------------------------------------- ORM


def test_orm_sequence_head_reads_the_last_token(tok):
    model = tiny_model(
        tok, architecture="llama", head="sequence-classification", num_labels=1, seed=6
    )
    orm = HFORM(model, tok)
    text = QUESTION + "\n\n".join(STEPS)
    with torch.no_grad():
        expected = torch.sigmoid(model(torch.tensor([tok(text)["input_ids"]])).logits[0, 0]).item()
    (score,) = orm.score([solution(tok, QUESTION, STEPS)])
    assert score.value == pytest.approx(expected, abs=1e-5) and score.step_scores == ()
    two = tiny_model(
        tok, architecture="llama", head="sequence-classification", num_labels=2, seed=6
    )
    with torch.no_grad():
        logits = two(torch.tensor([tok(text)["input_ids"]])).logits[0]
    (score,) = HFORM(two, tok).score([solution(tok, QUESTION, STEPS)])
    assert score.value == pytest.approx(torch.softmax(logits, -1)[1].item(), abs=1e-5)


def test_orm_lm_head_with_a_suffix(tok):
    model = tiny_model(tok, architecture="qwen2", seed=7)
    orm = HFORM(model, tok, head="lm", good_token="Positive", bad_token="Negative", suffix=" ok?")
    pos, neg = tok.convert_tokens_to_ids("Positive"), tok.convert_tokens_to_ids("Negative")
    ids = tok(QUESTION)["input_ids"] + encode(tok, STEPS[0]) + encode(tok, "\n\n" + STEPS[1])
    ids += encode(tok, " ok?")
    last = run(model, ids)[-1]
    expected = torch.softmax(last[[pos, neg]], dim=-1)[0].item()
    (score,) = orm.score([solution(tok, QUESTION, STEPS[:2])])
    assert score.value == pytest.approx(expected, abs=1e-5)
    with pytest.raises(ValueError, match="good_token"):
        HFORM(model, tok, head="lm")


def test_orm_without_a_pad_id_scores_one_state_per_pass(tok, caplog):
    model = tiny_model(
        tok, architecture="llama", head="sequence-classification", num_labels=1, seed=6
    )
    model.config.pad_token_id = None
    with caplog.at_level(logging.WARNING):
        orm = HFORM(model, tok)
    assert orm.batch_size == 1 and "pad_token_id" in caplog.text
    states = [solution(tok, QUESTION, STEPS[:1]), solution(tok, QUESTION, STEPS)]
    scores = orm.score(states)
    assert orm.forward_passes >= 2 and all(0 < s.value < 1 for s in scores)


@pytest.mark.gpu
def test_cuda_bf16_prm_reuse_matches_naive(tok):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    model = tiny_model(tok, architecture="qwen2", head="token-classification", num_labels=2, seed=3)
    reuse = HFPRM(model, tok, preset="qwen2.5-math-prm", device="cuda", dtype="bf16")
    naive = HFPRM(
        model, tok, preset="qwen2.5-math-prm", device="cuda", dtype="bf16", kv_reuse=False
    )
    states = [solution(tok, QUESTION, STEPS[:k]) for k in (1, 2, 3)]
    got = [reuse.score([s])[0] for s in states]
    want = naive.score(states)
    for g, w in zip(got, want, strict=True):
        assert g.step_scores == pytest.approx(w.step_scores, abs=0.02)
    assert reuse.tokens_processed < naive.tokens_processed
