"""Tests for treesearch.train.sft (step-wise SFT) and the shared loop and checkpoint helpers."""

from __future__ import annotations

import itertools
import json
import math
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from treesearch.adapters import toymath as tm  # noqa: E402
from treesearch.adapters.data import SFTExample  # noqa: E402
from treesearch.train.lm_common import (  # noqa: E402
    LMTrainConfig,
    learning_rate_at,
    load_training_info,
    save_pretrained_atomic,
)
from treesearch.train.sft import (  # noqa: E402
    IGNORE_INDEX,
    SFTConfig,
    collate_sft,
    encode_sft_example,
    sft_loss,
    train_sft,
)

PROBLEM = tm.ToyProblem(17, (tm.Operation("+", 25), tm.Operation("*", 3), tm.Operation("-", 8)))


def easy_examples(count: int, seed: int = 0) -> list[SFTExample]:
    rng = np.random.default_rng(seed)
    return [p.sft_example() for p in tm.generate_problems(rng, tm.DIFFICULTIES["easy"], count)]


# ------------------------------------------------------------------------------- encoding
def test_loss_mask_covers_exactly_the_answer_tokens(toy_tokenizer):
    encoded = encode_sft_example(toy_tokenizer, PROBLEM.sft_example())
    # The joined text tokenizes to the same ids (one character per token).
    assert list(encoded.input_ids) == toy_tokenizer(PROBLEM.text())["input_ids"]
    context = len(toy_tokenizer(PROBLEM.prompt)["input_ids"]) + 1  # <bos> prompt <sep>
    assert encoded.labels[:context] == (IGNORE_INDEX,) * context
    assert encoded.labels[context:] == encoded.input_ids[context:]
    answer = "17+25=42<sep>42*3=126<sep>126-8=118<sep>The answer is 118<sep><eos>"
    learned = [t for t in encoded.labels if t != IGNORE_INDEX]
    assert toy_tokenizer.decode(learned, skip_special_tokens=False) == answer
    # 4 steps: their characters, one separator each, and the end-of-sequence token.
    assert encoded.answer_tokens == sum(len(s) for s in PROBLEM.steps) + 4 + 1
    assert encoded.input_ids[context - 1] == toy_tokenizer.sep_token_id
    assert encoded.input_ids[-1] == toy_tokenizer.eos_token_id


def test_text_and_record_encode_alike(toy_tokenizer):
    from_record = encode_sft_example(toy_tokenizer, PROBLEM.sft_example())
    assert encode_sft_example(toy_tokenizer, PROBLEM.text()) == from_record
    assert encode_sft_example(toy_tokenizer, "<bos>" + PROBLEM.text()) == from_record
    assert encode_sft_example(toy_tokenizer, PROBLEM.text(finished=False)) == from_record


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("What is 1+1?", "missing separator '<sep>' after the prompt"),
        ("What is 1+1?<sep>1+1=2<sep>The answer is 2", "missing separator '<sep>' after step 1"),
        ("What is 1+1?<sep>1+1=2<sep><sep>The answer is 2<sep>", "step 1 is empty"),
        ("<sep>1+1=2<sep>", "the prompt is empty"),
    ],
)
def test_malformed_text_is_refused(toy_tokenizer, text, message):
    with pytest.raises(ValueError, match=message):
        encode_sft_example(toy_tokenizer, text)


def test_bad_records_are_refused(toy_tokenizer):
    with pytest.raises(ValueError, match="step 1 is empty"):
        encode_sft_example(toy_tokenizer, SFTExample("Start with 1.", ("1+1=2", " "), "2"))
    with pytest.raises(ValueError, match="step 0 holds the step separator"):
        encode_sft_example(toy_tokenizer, SFTExample("Start.", ("1+1=2<sep>2+1=3",), "3"))
    with pytest.raises(ValueError, match="prompt holds the step separator"):
        encode_sft_example(toy_tokenizer, SFTExample("Start.<sep>", ("1+1=2",), "2"))
    with pytest.raises(ValueError, match="over max_length=10"):
        encode_sft_example(toy_tokenizer, PROBLEM.sft_example(), max_length=10)
    with pytest.raises(TypeError, match="SFTExample or a str"):
        encode_sft_example(toy_tokenizer, ["1+1=2"])


def test_tokenizer_without_separator_is_refused():
    tokenizer = tm.build_tokenizer()
    tokenizer.sep_token = None
    with pytest.raises(ValueError, match="no sep_token"):
        encode_sft_example(tokenizer, PROBLEM.sft_example())
    # A separator given by hand must be one token.
    with pytest.raises(ValueError, match="not a single token"):
        encode_sft_example(tokenizer, PROBLEM.sft_example(), sep_token="##")
    assert encode_sft_example(tokenizer, PROBLEM.sft_example(), sep_token="<sep>").answer_tokens


def test_collate_pads_inputs_and_masks_labels(toy_tokenizer):
    short = encode_sft_example(toy_tokenizer, "Go.<sep>1+1=2<sep>")
    long = encode_sft_example(toy_tokenizer, PROBLEM.sft_example())
    batch = collate_sft([short, long], toy_tokenizer.pad_token_id)
    n = len(short.input_ids)
    assert batch["input_ids"].shape == (2, len(long.input_ids))
    assert batch["attention_mask"][0].tolist() == [1] * n + [0] * (len(long.input_ids) - n)
    assert (batch["labels"][0, n:] == IGNORE_INDEX).all()
    assert (batch["input_ids"][0, n:] == toy_tokenizer.pad_token_id).all()


def test_hand_written_loss_equals_hugging_face_loss(toy_tokenizer, tiny_llama, one_torch_thread):
    model = tiny_llama(toy_tokenizer)
    examples = [encode_sft_example(toy_tokenizer, e) for e in easy_examples(3)]
    batch = collate_sft(examples, toy_tokenizer.pad_token_id)
    with torch.no_grad():
        ours = sft_loss(model, batch)
        theirs = model(**batch).loss
    assert math.isclose(float(ours), float(theirs), rel_tol=1e-5)


# ------------------------------------------------------------------------------- config
def test_config_validation():
    with pytest.raises(ValueError, match="num_steps"):
        SFTConfig(num_steps=0)
    with pytest.raises(TypeError, match="batch_size"):
        SFTConfig(batch_size=2.0)
    with pytest.raises(ValueError, match="learning_rate"):
        SFTConfig(learning_rate=-1e-3)
    with pytest.raises(ValueError, match="betas"):
        SFTConfig(betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="sep_token"):
        SFTConfig(sep_token="")
    with pytest.raises(TypeError):
        SFTConfig(10)  # keyword-only
    config = SFTConfig(num_steps=3)
    with pytest.raises(AttributeError):
        config.num_steps = 4  # type: ignore[misc]


def test_learning_rate_schedule():
    config = LMTrainConfig(num_steps=12, warmup_steps=2, learning_rate=1.0, min_lr_ratio=0.1)
    rates = [learning_rate_at(s, config) for s in range(12)]
    assert rates[:3] == [0.5, 1.0, 1.0]
    assert math.isclose(rates[-1], 0.1)
    assert all(a >= b for a, b in itertools.pairwise(rates[2:]))
    # Halfway through the decay the cosine is at the midpoint of peak and floor.
    middle = LMTrainConfig(num_steps=5, warmup_steps=0, learning_rate=1.0, min_lr_ratio=0.0)
    assert math.isclose(learning_rate_at(2, middle), 0.5)


# ------------------------------------------------------------------------------- training
def _parameters(model) -> list:
    return [p.detach().clone() for p in model.parameters()]


def test_training_lowers_the_loss_and_changes_the_weights(
    toy_tokenizer, tiny_llama, one_torch_thread
):
    model = tiny_llama(toy_tokenizer)
    before = _parameters(model)
    examples = easy_examples(16)
    config = SFTConfig(num_steps=30, batch_size=8, learning_rate=1e-2, warmup_steps=3)
    reports = []
    log = train_sft(
        model,
        toy_tokenizer,
        examples,
        config=config,
        rng=np.random.default_rng(0),
        progress=reports.append,
    )
    assert len(log.losses) == 30
    assert np.mean(log.losses[-5:]) < 0.6 * np.mean(log.losses[:5])
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    assert [r.step for r in reports] == [10, 20, 30]
    assert not model.training
    assert log.tokens > 0


def test_same_seed_same_run(toy_tokenizer, tiny_llama, one_torch_thread):
    examples = easy_examples(12)
    config = SFTConfig(num_steps=6, batch_size=4, warmup_steps=1)

    def run(seed: int):
        model = tiny_llama(toy_tokenizer)
        log = train_sft(
            model, toy_tokenizer, examples, config=config, rng=np.random.default_rng(seed)
        )
        return log.losses, _parameters(model)

    losses_a, params_a = run(5)
    losses_b, params_b = run(5)
    losses_c, _ = run(6)
    assert losses_a == losses_b
    assert all(torch.equal(a, b) for a, b in zip(params_a, params_b, strict=True))
    assert losses_a != losses_c  # another seed, another batch order


def test_training_refuses_bad_input(toy_tokenizer, tiny_llama):
    model = tiny_llama(toy_tokenizer)
    rng = np.random.default_rng(0)
    with pytest.raises(TypeError, match="SFTConfig"):
        train_sft(model, toy_tokenizer, easy_examples(2), config=LMTrainConfig(), rng=rng)
    with pytest.raises(TypeError, match=r"numpy\.random\.Generator"):
        train_sft(model, toy_tokenizer, easy_examples(2), config=SFTConfig(), rng=0)
    with pytest.raises(ValueError, match="no training examples"):
        train_sft(model, toy_tokenizer, [], config=SFTConfig(), rng=rng)
    with pytest.raises(ValueError, match="missing separator"):
        train_sft(model, toy_tokenizer, ["Go.<sep>1+1=2"], config=SFTConfig(), rng=rng)


# ------------------------------------------------------------------------------- checkpoints
def test_atomic_save_and_load_round_trip(toy_tokenizer, tiny_llama, tmp_path, one_torch_thread):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = tiny_llama(toy_tokenizer, seed=1)
    target = tmp_path / "policy"
    save_pretrained_atomic(target, model, toy_tokenizer, training={"steps": 3, "seed": 1})
    assert {"model.safetensors", "config.json", "training.json"} <= set(os.listdir(target))
    assert not any(name.endswith(".bin") for name in os.listdir(target))
    assert load_training_info(target) == {"steps": 3, "seed": 1}

    loaded = AutoModelForCausalLM.from_pretrained(target).eval()
    tokenizer = AutoTokenizer.from_pretrained(target)
    ids = torch.tensor([toy_tokenizer(PROBLEM.text())["input_ids"]])
    assert tokenizer(PROBLEM.text())["input_ids"] == ids[0].tolist()
    assert tokenizer.sep_token == "<sep>"
    with torch.no_grad():
        assert torch.equal(model(ids).logits, loaded(ids).logits)

    # Overwriting swaps the folder whole and leaves no temporary folder behind.
    other = tiny_llama(toy_tokenizer, seed=2)
    save_pretrained_atomic(target, other, toy_tokenizer, training={"steps": 4})
    assert load_training_info(target) == {"steps": 4}
    assert sorted(os.listdir(tmp_path)) == ["policy"]
    reloaded = AutoModelForCausalLM.from_pretrained(target).eval()
    with torch.no_grad():
        assert torch.equal(other(ids).logits, reloaded(ids).logits)


def test_failed_save_keeps_the_previous_checkpoint(toy_tokenizer, tiny_llama, tmp_path):
    model = tiny_llama(toy_tokenizer)
    target = tmp_path / "policy"
    save_pretrained_atomic(target, model, toy_tokenizer, training={"version": 1})
    before = sorted(os.listdir(target))

    class BrokenTokenizer:
        def save_pretrained(self, path):
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        save_pretrained_atomic(target, model, BrokenTokenizer(), training={"version": 2})
    assert sorted(os.listdir(target)) == before
    assert json.loads((target / "training.json").read_text()) == {"version": 1}
    assert sorted(os.listdir(tmp_path)) == ["policy"]
