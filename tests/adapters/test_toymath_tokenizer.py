"""The toy world's character-level Hugging Face tokenizer."""

from __future__ import annotations

import pytest

pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

from transformers import AutoTokenizer, PreTrainedTokenizerFast

from treesearch.adapters.toymath import (
    CHARACTERS,
    NEGATIVE,
    POSITIVE,
    SEP,
    SPECIAL_TOKENS,
    build_tokenizer,
    heldout_split,
    parse_text,
)

EXAMPLE_TEXT = (
    "Start with 17. Add 25. Multiply by 3. Subtract 8. What is the result?"
    "<sep>17+25=42<sep>42*3=126<sep>126-8=118<sep>The answer is 118<sep><eos>"
)


@pytest.fixture(scope="module")
def tokenizer() -> PreTrainedTokenizerFast:
    return build_tokenizer()


def test_vocabulary_layout(tokenizer):
    assert isinstance(tokenizer, PreTrainedTokenizerFast)
    assert len(tokenizer) == len(SPECIAL_TOKENS) + len(CHARACTERS) == 7 + 95
    assert tokenizer.convert_tokens_to_ids(list(SPECIAL_TOKENS)) == [0, 1, 2, 3, 4, 5, 6]
    assert (tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id) == (0, 1, 2)
    assert (tokenizer.unk_token_id, tokenizer.sep_token_id) == (3, 4)
    assert tokenizer.convert_tokens_to_ids(["0", "9", "+", "="]) == [
        7 + ord("0") - 32,
        7 + ord("9") - 32,
        7 + ord("+") - 32,
        7 + ord("=") - 32,
    ]


def test_each_special_token_is_one_id(tokenizer):
    for i, token in enumerate(SPECIAL_TOKENS):
        assert tokenizer(token, add_special_tokens=False)["input_ids"] == [i]
    ids = tokenizer(f"1{POSITIVE}2{NEGATIVE}", add_special_tokens=False)["input_ids"]
    assert ids == [tokenizer.convert_tokens_to_ids("1"), 5, tokenizer.convert_tokens_to_ids("2"), 6]


def test_round_trip_and_one_id_per_character(tokenizer):
    ids = tokenizer(EXAMPLE_TEXT)["input_ids"]
    assert ids[0] == tokenizer.bos_token_id  # encoding prepends <bos>
    assert ids[-1] == tokenizer.eos_token_id
    plain = EXAMPLE_TEXT.replace("<sep>", "").replace("<eos>", "")
    assert len(ids) == 1 + len(plain) + 5 + 1  # <bos>, characters, five <sep>, <eos>
    assert tokenizer.decode(ids[1:]) == EXAMPLE_TEXT
    assert tokenizer.decode(ids, skip_special_tokens=True) == plain
    no_bos = tokenizer(EXAMPLE_TEXT, add_special_tokens=False)["input_ids"]
    assert no_bos == ids[1:]
    for problem in heldout_split("hard", 20):
        text = problem.text()
        encoded = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert tokenizer.decode(encoded) == text
        assert tokenizer.unk_token_id not in encoded


def test_sep_separates_steps(tokenizer):
    ids = tokenizer(EXAMPLE_TEXT, add_special_tokens=False)["input_ids"]
    pieces: list[list[int]] = [[]]
    for token in ids:
        if token == tokenizer.sep_token_id:
            pieces.append([])
        else:
            pieces[-1].append(token)
    decoded = [tokenizer.decode(p) for p in pieces]
    prompt, steps, finished = parse_text(EXAMPLE_TEXT)
    assert decoded == [prompt, *steps, "<eos>"] and finished
    assert ids.count(tokenizer.sep_token_id) == len(steps) + 1


def test_unknown_characters_become_unk(tokenizer):
    ids = tokenizer("1\u00e92\n", add_special_tokens=False)["input_ids"]
    assert ids == [
        tokenizer.convert_tokens_to_ids("1"),
        tokenizer.unk_token_id,
        tokenizer.convert_tokens_to_ids("2"),
        tokenizer.unk_token_id,
    ]


def test_save_and_reload(tokenizer, tmp_path):
    tokenizer.save_pretrained(tmp_path)
    for loaded in (
        PreTrainedTokenizerFast.from_pretrained(tmp_path),
        AutoTokenizer.from_pretrained(tmp_path),
    ):
        assert loaded(EXAMPLE_TEXT)["input_ids"] == tokenizer(EXAMPLE_TEXT)["input_ids"]
        assert loaded.decode(loaded(EXAMPLE_TEXT)["input_ids"][1:]) == EXAMPLE_TEXT
        assert loaded.sep_token == SEP and loaded.pad_token_id == 0
        assert loaded.convert_tokens_to_ids([POSITIVE, NEGATIVE]) == [5, 6]


def test_batch_padding_uses_pad(tokenizer):
    batch = tokenizer(["1+1=2<sep>", "12+3=15<sep>"], padding=True)["input_ids"]
    assert len(batch[0]) == len(batch[1]) == 9
    assert batch[0].count(tokenizer.pad_token_id) == 2
