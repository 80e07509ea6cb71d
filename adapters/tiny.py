"""Tiny tokenizers and randomly initialised transformer models, built locally (no downloads).

For tests, benchmarks and trying a search set-up end to end: real transformers architectures
(Llama, Qwen2, Mistral, GPT-2) from small configs, with the heads that real checkpoints use
(causal LM, token classification, sequence classification), and a character-level
``PreTrainedTokenizerFast`` (a ``tokenizers`` BPE model without merges, so every character is
one token) plus whatever special and added tokens a checkpoint convention needs (``<sep>``,
``ки``, ``<extra_0>``, ``Positive``...). Code written against these runs unchanged on
``from_pretrained`` checkpoints, since only the standard transformers API is involved.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
from tokenizers import Tokenizer, decoders, models, processors
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    GPT2Config,
    LlamaConfig,
    MistralConfig,
    PreTrainedTokenizerFast,
    Qwen2Config,
)

__all__ = ["CHATML_TEMPLATE", "DEFAULT_ALPHABET", "char_tokenizer", "tiny_model"]

DEFAULT_ALPHABET = "0123456789+-*/=()., \n?:abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

# The ChatML template of Qwen2 models (enough of it for a system, user and assistant turn).
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

Architecture = Literal["llama", "qwen2", "mistral", "gpt2"]
Head = Literal["causal-lm", "token-classification", "sequence-classification"]


def char_tokenizer(
    alphabet: str = DEFAULT_ALPHABET,
    *,
    bos_token: str | None = "<s>",
    eos_token: str = "</s>",
    pad_token: str = "<pad>",
    sep_token: str | None = "<sep>",
    special_tokens: Sequence[str] = (),
    added_tokens: Sequence[str] = (),
    chat_template: str | None = None,
    padding_side: Literal["left", "right"] = "right",
) -> PreTrainedTokenizerFast:
    """A character-level fast tokenizer.

    Args:
        alphabet: the characters, one token each (others become ``<unk>``).
        bos_token: prepended when ``add_special_tokens=True`` (``None``: no BOS).
        eos_token, pad_token, sep_token: the tokenizer's special tokens.
        special_tokens: more special tokens (e.g. ``"<extra_0>"``, ``"<|im_start|>"``).
        added_tokens: ordinary added tokens matched whole in text (e.g. ``"Positive"``,
            ``"ки"``, ``"\\n\\n"``).
        chat_template: a Jinja chat template (:data:`CHATML_TEMPLATE` for a Qwen-like one).
        padding_side: the tokenizer's padding side (the adapters do their own padding and
            do not depend on it).
    """
    chars = list(dict.fromkeys(alphabet))
    if not chars:
        raise ValueError("alphabet must not be empty")
    vocab = {"<unk>": 0}
    for c in chars:
        vocab.setdefault(c, len(vocab))
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    backend.decoder = decoders.Fuse()
    roles: dict[str, Any] = {
        "unk_token": "<unk>",
        "eos_token": eos_token,
        "pad_token": pad_token,
    }
    if bos_token is not None:
        roles["bos_token"] = bos_token
    if sep_token is not None:
        roles["sep_token"] = sep_token
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        extra_special_tokens=list(special_tokens),
        padding_side=padding_side,
        **roles,
    )
    if added_tokens:
        tokenizer.add_tokens(list(added_tokens))
    if bos_token is not None:
        bos_id = tokenizer.convert_tokens_to_ids(bos_token)
        tokenizer.backend_tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{bos_token} $A",
            pair=f"{bos_token} $A $B",
            special_tokens=[(bos_token, bos_id)],
        )
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    return tokenizer


def tiny_model(
    tokenizer: Any,
    *,
    architecture: Architecture = "llama",
    head: Head = "causal-lm",
    num_labels: int = 2,
    hidden_size: int = 32,
    num_layers: int = 2,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    max_positions: int = 512,
    seed: int = 0,
    attn_implementation: str = "sdpa",
) -> Any:
    """A randomly initialised model of a real architecture, sized for tests (eval mode).

    Args:
        tokenizer: sets the vocabulary size and the special token ids.
        architecture: ``"llama"``, ``"qwen2"``, ``"mistral"`` (no sliding window) or
            ``"gpt2"``.
        head: ``"causal-lm"`` (``AutoModelForCausalLM``), ``"token-classification"`` or
            ``"sequence-classification"`` (with ``num_labels`` outputs).
        seed: the weights are drawn inside ``torch.random.fork_rng``, so the global torch
            random state is left as it was.
    """
    ids = {
        "vocab_size": len(tokenizer),
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
    }
    config: Any
    if architecture == "gpt2":
        config = GPT2Config(
            n_embd=hidden_size,
            n_layer=num_layers,
            n_head=num_heads,
            n_positions=max_positions,
            **ids,
        )
    else:
        common = {
            "hidden_size": hidden_size,
            "intermediate_size": 2 * hidden_size,
            "num_hidden_layers": num_layers,
            "num_attention_heads": num_heads,
            "num_key_value_heads": num_kv_heads,
            "max_position_embeddings": max_positions,
            "tie_word_embeddings": False,
            **ids,
        }
        if architecture == "llama":
            config = LlamaConfig(**common)
        elif architecture == "qwen2":
            config = Qwen2Config(**common)
        elif architecture == "mistral":
            config = MistralConfig(sliding_window=None, **common)
        else:
            raise ValueError(f"unknown architecture {architecture!r}")
    config.num_labels = num_labels
    config._attn_implementation = attn_implementation
    auto = {
        "causal-lm": AutoModelForCausalLM,
        "token-classification": AutoModelForTokenClassification,
        "sequence-classification": AutoModelForSequenceClassification,
    }.get(head)
    if auto is None:
        raise ValueError(f"unknown head {head!r}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = auto.from_config(config)
    return model.eval()
