"""Tests for treesearch.train.prm: label placement, losses, training, scoring, ProcessBench F1."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from treesearch.adapters import toymath as tm  # noqa: E402
from treesearch.adapters.data import PRMExample  # noqa: E402
from treesearch.train.prm import (  # noqa: E402
    EncodedRewardExample,
    ORMExample,
    PRMConfig,
    collate_reward,
    encode_orm_example,
    encode_prm_example,
    first_error_prediction,
    hf_shifted_labels,
    processbench_f1,
    reward_loss,
    score_steps,
    train_orm,
    train_prm,
    value_head_model,
)

PROBLEM = tm.ToyProblem(17, (tm.Operation("+", 25), tm.Operation("*", 3), tm.Operation("-", 8)))
SLIPPED = ("17+25=42", "42*3=127", "127-8=119", "The answer is 119")


def labelled(count: int, seed: int = 0) -> list[PRMExample]:
    """Easy problems, half solved right and half with one slip, with exact labels."""
    rng = np.random.default_rng(seed)
    out = []
    for i, problem in enumerate(tm.generate_problems(rng, tm.DIFFICULTIES["easy"], count)):
        steps = problem.steps if i % 2 == 0 else tm.flawed_steps(problem, rng)[0]
        out.append(tm.prm_example(problem, steps))
    return out


# ------------------------------------------------------------------------------- placement
def test_labels_land_exactly_on_the_step_separators(toy_tokenizer):
    example = tm.prm_example(PROBLEM, SLIPPED)
    assert example.labels == (1, 0, 0, 0)
    encoded = encode_prm_example(toy_tokenizer, example)
    ids = encoded.input_ids
    sep = toy_tokenizer.sep_token_id
    assert list(ids) == toy_tokenizer(PROBLEM.text(SLIPPED, finished=False))["input_ids"]
    # Every labelled position holds the separator, and every separator after the prompt's own
    # gets exactly one label, in order.
    assert all(ids[p] == sep for p in encoded.positions)
    separators = [i for i, t in enumerate(ids) if t == sep]
    prompt_sep = len(toy_tokenizer(PROBLEM.prompt)["input_ids"])
    assert separators[0] == prompt_sep
    assert list(encoded.positions) == separators[1:]
    assert encoded.targets == (1.0, 0.0, 0.0, 0.0)
    # The tokens before each labelled separator spell its step.
    starts = [prompt_sep, *encoded.positions[:-1]]
    for step, start, end in zip(SLIPPED, starts, encoded.positions, strict=True):
        assert toy_tokenizer.decode(ids[start + 1 : end]) == step


def test_text_form_and_soft_labels(toy_tokenizer):
    text = PROBLEM.text(SLIPPED, finished=False)
    encoded = encode_prm_example(toy_tokenizer, (text, [1, 0.25, 0, 0.0]))
    assert encoded.targets == (1.0, 0.25, 0.0, 0.0)
    assert encoded == encode_prm_example(
        toy_tokenizer, PRMExample(PROBLEM.prompt, SLIPPED, (1, 0.25, 0, 0.0))
    )


@pytest.mark.parametrize(
    ("example", "error", "message"),
    [
        (("Go.<sep>1+1=2<sep>2+2=4", [1, 1]), ValueError, "missing separator '<sep>' after step 1"),
        (("Go. 1+1=2", [1]), ValueError, "missing separator '<sep>' after the prompt"),
        (("Go.<sep>1+1=2<sep><sep>", [1, 1]), ValueError, "step 1 is empty"),
        (("Go.<sep>1+1=2<sep>2+2=4<sep>", [1]), ValueError, "2 steps but 1 labels"),
        (("Go.<sep>1+1=2<sep>", [1.5]), ValueError, r"label 0 is 1.5; labels lie in \[0, 1\]"),
        (("Go.<sep>1+1=2<sep>", [True]), TypeError, "label 0 must be a number"),
        (PRMExample("Go.", ("1+1=2", " "), (1, 1)), ValueError, "step 1 is empty"),
        (PRMExample("Go.", ("1+1=2<sep>2+2=4",), (1,)), ValueError, "holds the step separator"),
        ("Go.<sep>1+1=2<sep>", TypeError, "PRMExample or a"),
    ],
)
def test_bad_examples_are_refused(toy_tokenizer, example, error, message):
    with pytest.raises(error, match=message):
        encode_prm_example(toy_tokenizer, example)


def test_label_count_must_match_step_count():
    # The record itself refuses the mismatch (adapters.data), before any tokenizer sees it.
    with pytest.raises(ValueError, match="2 steps but 3 labels"):
        PRMExample("Go.", ("1+1=2", "2+2=4"), (1, 1, 0))


def test_tokenizer_without_separator_or_label_words_is_refused(tiny_llama):
    no_sep = tm.build_tokenizer()
    no_sep.sep_token = None
    with pytest.raises(ValueError, match="no sep_token"):
        encode_prm_example(no_sep, tm.prm_example(PROBLEM, PROBLEM.steps))
    tokenizer = tm.build_tokenizer()
    model = tiny_llama(tokenizer)
    config = PRMConfig(num_steps=1, good_token="Good", bad_token="Bad")
    with pytest.raises(ValueError, match="label word 'Good' is not a single token"):
        train_prm(model, tokenizer, labelled(2), config=config, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="not a single token"):
        score_steps(model, tokenizer, [(PROBLEM.prompt, PROBLEM.steps)], good_token="Good")


def test_orm_label_sits_at_the_last_separator(toy_tokenizer):
    encoded = encode_orm_example(toy_tokenizer, ORMExample(PROBLEM.prompt, SLIPPED, 0))
    separators = [i for i, t in enumerate(encoded.input_ids) if t == toy_tokenizer.sep_token_id]
    assert encoded.positions == (separators[-1],) == (len(encoded.input_ids) - 1,)
    assert encoded.targets == (0.0,)
    with pytest.raises(ValueError, match=r"label must be in \[0, 1\]"):
        ORMExample(PROBLEM.prompt, SLIPPED, 2)
    with pytest.raises(ValueError, match="steps is empty"):
        ORMExample(PROBLEM.prompt, (), 1)


# ------------------------------------------------------------------------------- losses
def test_full_vocab_loss_equals_hugging_face_shifted_loss(toy_tokenizer, tiny_llama):
    """Our target at the separator p_k equals HF's label at p_k + 1 (HF shifts labels left)."""
    model = tiny_llama(toy_tokenizer, seed=3)
    good, bad = toy_tokenizer.convert_tokens_to_ids(["Positive", "Negative"])
    encoded = [encode_prm_example(toy_tokenizer, e) for e in labelled(4)]
    batch = collate_reward(encoded, toy_tokenizer.pad_token_id)
    width = batch["input_ids"].shape[1] + 1
    labels = torch.tensor([hf_shifted_labels(e, good, bad, width) for e in encoded])
    # HF's loss needs inputs as wide as the labels: one pad column more (masked out).
    input_ids = torch.nn.functional.pad(batch["input_ids"], (0, 1), value=0)
    mask = torch.nn.functional.pad(batch["attention_mask"], (0, 1), value=0)
    with torch.no_grad():
        ours = reward_loss(model, batch, head="lm", label_ids=(good, bad), label_loss="full-vocab")
        theirs = model(input_ids=input_ids, attention_mask=mask, labels=labels).loss
    assert math.isclose(float(ours), float(theirs), rel_tol=1e-5)
    # Each HF label sits right after a separator.
    for e, row in zip(encoded, labels.tolist(), strict=True):
        marked = [i for i, t in enumerate(row) if t != -100]
        assert [i - 1 for i in marked] == list(e.positions)


def test_two_way_loss_is_binary_cross_entropy_of_the_verifier_score(toy_tokenizer, tiny_llama):
    model = tiny_llama(toy_tokenizer, seed=4)
    good, bad = toy_tokenizer.convert_tokens_to_ids(["Positive", "Negative"])
    example = encode_prm_example(
        toy_tokenizer, PRMExample(PROBLEM.prompt, SLIPPED, (1, 0.25, 0, 0))
    )
    batch = collate_reward([example], toy_tokenizer.pad_token_id)
    with torch.no_grad():
        loss = float(reward_loss(model, batch, head="lm", label_ids=(good, bad)))
        logits = model(batch["input_ids"]).logits[0]
    expected = 0.0
    for position, target in zip(example.positions, example.targets, strict=True):
        p = float(torch.softmax(logits[position, [good, bad]], dim=0)[0])
        expected -= target * math.log(p) + (1 - target) * math.log(1 - p)
    assert math.isclose(loss, expected / 4, rel_tol=1e-5)


def test_lm_labels_cover_exactly_the_good_steps(toy_tokenizer):
    """The language-model term trains each good step's tokens and closing separator, nothing
    else: not the prompt, not a bad step, not a step with a soft label under 0.5."""
    example = encode_prm_example(
        toy_tokenizer, PRMExample(PROBLEM.prompt, SLIPPED, (1, 0.25, 0, 0.5))
    )
    prompt_length = len(toy_tokenizer(PROBLEM.prompt)["input_ids"]) + 1
    assert example.step_starts[0] == prompt_length
    assert list(example.step_starts[1:]) == [p + 1 for p in example.positions[:-1]]
    row = collate_reward([example], toy_tokenizer.pad_token_id)["lm_labels"][0].tolist()
    trained = [i for i, t in enumerate(row) if t != -100]
    first = list(range(prompt_length, example.positions[0] + 1))  # "17+25=42<sep>"
    last = list(range(example.step_starts[3], example.positions[3] + 1))  # label 0.5 counts
    assert trained == first + last
    assert all(row[i] == example.input_ids[i] for i in trained)
    decoded = toy_tokenizer.decode([example.input_ids[i] for i in first])
    assert decoded == "17+25=42<sep>"


def test_lm_term_adds_the_next_token_loss_by_hand(toy_tokenizer, tiny_llama):
    model = tiny_llama(toy_tokenizer, seed=5)
    good, bad = toy_tokenizer.convert_tokens_to_ids(["Positive", "Negative"])
    example = encode_prm_example(toy_tokenizer, PRMExample(PROBLEM.prompt, SLIPPED, (1, 0, 0, 0)))
    batch = collate_reward([example], toy_tokenizer.pad_token_id)
    with torch.no_grad():
        plain = float(reward_loss(model, batch, head="lm", label_ids=(good, bad)))
        mixed = float(reward_loss(model, batch, head="lm", label_ids=(good, bad), lm_weight=0.5))
        logp = torch.log_softmax(model(batch["input_ids"]).logits[0], dim=-1)
    tokens = range(example.step_starts[0], example.positions[0] + 1)
    cross_entropy = -sum(float(logp[j - 1, example.input_ids[j]]) for j in tokens) / len(tokens)
    assert math.isclose(mixed, plain + 0.5 * cross_entropy, rel_tol=1e-5)
    # Examples without step starts (an ORM's, or encoded by hand) add nothing to the term.
    bare = EncodedRewardExample(example.input_ids, example.positions, example.targets)
    batch = collate_reward([bare], toy_tokenizer.pad_token_id)
    with torch.no_grad():
        alone = float(reward_loss(model, batch, head="lm", label_ids=(good, bad), lm_weight=1.0))
    assert math.isclose(alone, plain, rel_tol=1e-6)


def test_lm_term_teaches_the_good_steps(toy_tokenizer, tiny_llama, one_torch_thread):
    """Trained with the term, the PRM writes the labelled-good steps far better than the same
    PRM trained on labels alone (same data, seed and steps)."""
    examples = labelled(24, seed=2)
    good, bad = toy_tokenizer.convert_tokens_to_ids(["Positive", "Negative"])
    batch = collate_reward(
        [encode_prm_example(toy_tokenizer, e) for e in examples], toy_tokenizer.pad_token_id
    )

    def step_loss(model):
        with torch.no_grad():
            total = float(reward_loss(model, batch, label_ids=(good, bad), lm_weight=1.0))
            labels_only = float(reward_loss(model, batch, label_ids=(good, bad)))
        return total - labels_only

    losses = {}
    for weight in (0.0, 1.0):
        model = tiny_llama(toy_tokenizer, seed=6)
        config = PRMConfig(num_steps=40, batch_size=8, learning_rate=3e-3, lm_weight=weight)
        train_prm(model, toy_tokenizer, examples, config=config, rng=np.random.default_rng(0))
        losses[weight] = step_loss(model)
    assert losses[1.0] < 0.8 * losses[0.0], losses


def test_lm_weight_and_step_starts_are_checked():
    with pytest.raises(ValueError, match="lm_weight"):
        PRMConfig(lm_weight=-0.1)
    with pytest.raises(ValueError, match="lm_weight"):
        PRMConfig(lm_weight=float("nan"))
    with pytest.raises(TypeError, match="lm_weight"):
        PRMConfig(lm_weight="1")
    with pytest.raises(ValueError, match="head='lm'"):
        PRMConfig(head="value", lm_weight=1.0)
    with pytest.raises(ValueError, match="step starts"):
        EncodedRewardExample((1, 40, 4, 24, 4), (4,), (1.0,), (3, 4))
    with pytest.raises(ValueError, match="each step must start"):
        EncodedRewardExample((1, 40, 4, 24, 4), (2,), (1.0,), (3,))
    with pytest.raises(ValueError, match="outside"):
        EncodedRewardExample((1, 40, 4), (3,), (1.0,))
    with pytest.raises(ValueError, match="one each"):
        EncodedRewardExample((1, 40, 4), (2,), (1.0, 0.0))


# ------------------------------------------------------------------------------- training
def test_lm_head_prm_learns_and_scores_like_the_verifier(
    toy_tokenizer, tiny_llama, one_torch_thread
):
    model = tiny_llama(toy_tokenizer, hidden=32)
    before = [p.detach().clone() for p in model.parameters()]
    examples = labelled(20)
    config = PRMConfig(num_steps=60, batch_size=10, learning_rate=1e-2, warmup_steps=5)
    log = train_prm(model, toy_tokenizer, examples, config=config, rng=np.random.default_rng(0))
    assert np.mean(log.losses[-10:]) < 0.5 * np.mean(log.losses[:5])
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    scores = score_steps(model, toy_tokenizer, [(e.prompt, e.steps) for e in examples])
    right = sum(
        (s >= 0.5) == (y == 1)
        for e, ss in zip(examples, scores, strict=True)
        for s, y in zip(ss, e.labels, strict=True)
    )
    total = sum(len(e.labels) for e in examples)
    assert right / total >= 0.9  # fits the training set (algorithms.md section 1)

    verifiers = pytest.importorskip("treesearch.adapters.verifiers")
    state_module = pytest.importorskip("treesearch.adapters.state")
    prm = verifiers.HFPRM(model, toy_tokenizer, preset="seed")
    states = []
    for e in examples[:4]:
        state = state_module.ReasoningState.from_prompt(tm.format_prefix(e.prompt), toy_tokenizer)
        for step in e.steps:
            state = state.step(step)
        states.append(state)
    theirs = prm.step_scores(states)
    for ours, other in zip(scores[:4], theirs, strict=True):
        assert np.allclose(ours, other, atol=1e-5)


def test_value_head_trains_on_soft_labels(toy_tokenizer, tiny_llama, one_torch_thread):
    body = tiny_llama(toy_tokenizer, seed=5)
    model = value_head_model(body)
    assert torch.equal(model.model.embed_tokens.weight, body.model.embed_tokens.weight)
    rng = np.random.default_rng(1)
    examples = []
    for problem in tm.generate_problems(rng, tm.DIFFICULTIES["easy"], 8):
        soft = tuple(float(x) for x in rng.choice([0.0, 0.25, 0.75, 1.0], size=3))
        examples.append(PRMExample(problem.prompt, problem.steps, soft))
    config = PRMConfig(head="value", num_steps=80, batch_size=8, learning_rate=1e-2)
    log = train_prm(model, toy_tokenizer, examples, config=config, rng=np.random.default_rng(0))
    assert log.losses[-1] < log.losses[0]
    scores = score_steps(
        model, toy_tokenizer, [(e.prompt, e.steps) for e in examples], head="value"
    )
    errors = [
        abs(s - y)
        for e, ss in zip(examples, scores, strict=True)
        for s, y in zip(ss, e.labels, strict=True)
    ]
    assert np.mean(errors) < 0.15
    # A value head refuses to be read as an LM head, and the other way round.
    with pytest.raises(ValueError, match="label words from an LM head"):
        score_steps(model, toy_tokenizer, [(PROBLEM.prompt, PROBLEM.steps)], head="lm")
    with pytest.raises(ValueError, match="one output per token"):
        score_steps(body, toy_tokenizer, [(PROBLEM.prompt, PROBLEM.steps)], head="value")


def test_orm_learns_the_outcome(toy_tokenizer, tiny_llama, one_torch_thread):
    model = tiny_llama(toy_tokenizer, seed=6)
    examples = [
        ORMExample(e.prompt, e.steps, float(all(y == 1 for y in e.labels))) for e in labelled(16, 2)
    ]
    config = PRMConfig(num_steps=60, batch_size=8, learning_rate=1e-2, label_loss="full-vocab")
    log = train_orm(model, toy_tokenizer, examples, config=config, rng=np.random.default_rng(0))
    assert np.mean(log.losses[-10:]) < 0.5 * np.mean(log.losses[:5])
    scores = score_steps(
        model, toy_tokenizer, [(e.prompt, e.steps) for e in examples], last_only=True
    )
    assert all(len(s) == 1 for s in scores)
    assert sum((s[0] >= 0.5) == (e.label == 1) for s, e in zip(scores, examples, strict=True)) >= 15


def test_same_seed_same_prm(toy_tokenizer, tiny_llama, one_torch_thread):
    config = PRMConfig(head="value", num_steps=5, batch_size=4)

    def run(seed: int):
        model = value_head_model(tiny_llama(toy_tokenizer))  # dropout under the forked RNG
        log = train_prm(
            model, toy_tokenizer, labelled(8), config=config, rng=np.random.default_rng(seed)
        )
        return log.losses, [p.detach().clone() for p in model.parameters()]

    (la, pa), (lb, pb) = run(3), run(3)
    assert la == lb
    assert all(torch.equal(a, b) for a, b in zip(pa, pb, strict=True))


def test_prm_config_validation():
    with pytest.raises(ValueError, match="head"):
        PRMConfig(head="classifier")
    with pytest.raises(ValueError, match="label_loss"):
        PRMConfig(label_loss="mse")
    with pytest.raises(ValueError, match="must differ"):
        PRMConfig(good_token="+", bad_token="+")
    with pytest.raises(ValueError, match="good_token"):
        PRMConfig(good_token="")


def test_encoded_examples_pass_through(toy_tokenizer, tiny_llama):
    model = tiny_llama(toy_tokenizer)
    encoded = EncodedRewardExample((1, 40, 4, 24, 4), (4,), (1.0,))
    log = train_prm(
        model, toy_tokenizer, [encoded], config=PRMConfig(num_steps=2), rng=np.random.default_rng(0)
    )
    assert len(log.losses) == 2


# ------------------------------------------------------------------------------- ProcessBench
def test_processbench_f1_by_hand():
    # algorithms.md section 2: labels [-1, 2, 0], predictions [-1, 1, 0].
    result = processbench_f1([-1, 2, 0], [-1, 1, 0])
    assert result.acc_erroneous == 0.5 and result.acc_correct == 1.0
    assert math.isclose(result.f1, 2 * 0.5 * 1.0 / 1.5)
    assert (result.num_erroneous, result.num_correct) == (2, 1)
    # A PRM that flags an error on a correct solution loses on acc_correct.
    flagged = processbench_f1([-1, -1, 3, 1], [-1, 2, 3, -1])
    assert (flagged.acc_erroneous, flagged.acc_correct) == (0.5, 0.5)
    assert math.isclose(flagged.f1, 0.5)
    assert processbench_f1([1, -1], [-1, 0]).f1 == 0.0
    assert math.isnan(processbench_f1([-1], [-1]).f1)
    with pytest.raises(ValueError, match="2 labels but 1 predictions"):
        processbench_f1([-1, 0], [0])
    with pytest.raises(ValueError, match="ints >= -1"):
        processbench_f1([-2], [0])


def test_first_error_prediction():
    assert first_error_prediction([0.9, 0.3, 0.8]) == 1  # algorithms.md section 2
    assert first_error_prediction([0.9, 0.5, 0.8]) == -1  # 0.5 is not below the threshold
    assert first_error_prediction([0.2, 0.1]) == 0
    assert first_error_prediction([]) == -1
    assert first_error_prediction([0.7, 0.6], threshold=0.65) == 1
