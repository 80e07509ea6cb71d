"""Step-wise supervised fine-tuning (SFT) of a causal language model on worked solutions.

The policy of step-level search (Snell et al., arXiv 2408.03314; the generator of "Let's Verify
Step by Step", Lightman et al., arXiv 2305.20050) is first fine-tuned on correct solutions
written one step at a time::

    <bos> prompt <sep> step_1 <sep> step_2 <sep> ... step_K <sep> <eos>

(the format of ``treesearch.adapters.toymath``; ``<sep>`` is the tokenizer's ``sep_token``,
which :class:`~treesearch.adapters.policies.HFStepPolicy` then uses as its step separator).
The loss is the next-token cross-entropy on the answer part only: every step's tokens, every
step's closing separator and the final ``<eos>``. The prompt and the separator right after it
are context (label -100): a search starts from ``prompt <sep>``.

``labels`` follow the Hugging Face convention (``labels[i]`` is the token at ``i``, predicted by
the logits at ``i - 1``), so ``model(input_ids, labels=labels).loss`` is the same loss as
:func:`sft_loss`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from treesearch.adapters.data import SFTExample

from .lm_common import (
    IGNORE_INDEX,
    LMTrainConfig,
    TrainLog,
    TrainProgress,
    encode_steps,
    next_token_loss,
    pad_batch,
    run_steps,
    separator_id,
    split_step_text,
)

__all__ = [
    "IGNORE_INDEX",
    "EncodedSFTExample",
    "SFTConfig",
    "collate_sft",
    "encode_sft_example",
    "sft_loss",
    "train_sft",
]

_log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class SFTConfig(LMTrainConfig):
    """Settings of :func:`train_sft` (the fields of :class:`LMTrainConfig`), plus:

    Attributes:
        sep_token: the step separator (``None``: the tokenizer's ``sep_token``).
    """

    sep_token: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.sep_token is not None and (
            not isinstance(self.sep_token, str) or not self.sep_token
        ):
            raise ValueError(f"sep_token must be a non-empty str or None, not {self.sep_token!r}")


@dataclass(frozen=True)
class EncodedSFTExample:
    """One tokenized example: ``labels`` is ``input_ids`` with the prompt part set to -100."""

    input_ids: tuple[int, ...]
    labels: tuple[int, ...]

    @property
    def answer_tokens(self) -> int:
        return sum(label != IGNORE_INDEX for label in self.labels)


def encode_sft_example(
    tokenizer: Any,
    example: SFTExample | str,
    *,
    sep_token: str | None = None,
    max_length: int | None = None,
) -> EncodedSFTExample:
    """Tokenize one worked solution.

    Args:
        tokenizer: a Hugging Face tokenizer with a separator token and an ``eos_token``.
        example: an :class:`~treesearch.adapters.data.SFTExample`, or text in the step-wise
            format ``prompt SEP step SEP ... step SEP`` (a trailing EOS and a leading BOS are
            allowed).
        sep_token: the separator (default: the tokenizer's ``sep_token``).
        max_length: raise ``ValueError`` for a longer example.

    Raises:
        ValueError: no separator or EOS token in the tokenizer, a missing separator, an empty
            step, a step holding the separator, or an example over ``max_length``.
    """
    sep_text, _ = separator_id(tokenizer, sep_token)
    eos = getattr(tokenizer, "eos_token_id", None)
    if eos is None:
        raise ValueError("the tokenizer has no eos_token: SFT teaches the model to stop with it")
    if isinstance(example, SFTExample):
        prompt, steps = example.prompt, example.steps
    elif isinstance(example, str):
        text = example
        bos = getattr(tokenizer, "bos_token", None)
        if bos:
            text = text.removeprefix(bos)
        eos_text = getattr(tokenizer, "eos_token", None)
        if eos_text:
            text = text.removesuffix(eos_text)
        prompt, steps = split_step_text(text, sep_text)
    else:
        raise TypeError(f"example must be an SFTExample or a str, not {type(example).__name__}")
    encoded = encode_steps(tokenizer, prompt, steps, sep_token=sep_text)
    ids = (*encoded.input_ids, int(eos))
    labels = (IGNORE_INDEX,) * encoded.prompt_length + ids[encoded.prompt_length :]
    if max_length is not None and len(ids) > max_length:
        raise ValueError(f"the example has {len(ids)} tokens, over max_length={max_length}")
    return EncodedSFTExample(ids, labels)


def collate_sft(examples: Sequence[EncodedSFTExample], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded ``input_ids``, ``attention_mask`` and ``labels`` (-100 on padding)."""
    if not examples:
        raise ValueError("no examples to collate")
    input_ids = pad_batch([e.input_ids for e in examples], pad_id)
    labels = pad_batch([e.labels for e in examples], pad_id, fill=IGNORE_INDEX)
    attention_mask = pad_batch([[1] * len(e.input_ids) for e in examples], 0)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def sft_loss(model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean next-token cross-entropy over the tokens whose label is not -100."""
    if not bool((batch["labels"][:, 1:] != IGNORE_INDEX).any()):
        raise ValueError("the batch has no answer tokens to learn")
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    return next_token_loss(logits, batch["labels"])


def train_sft(
    model: Any,
    tokenizer: Any,
    examples: Sequence[SFTExample | str | EncodedSFTExample],
    *,
    config: SFTConfig,
    rng: np.random.Generator,
    progress: Callable[[TrainProgress], None] | None = None,
) -> TrainLog:
    """Fine-tune ``model`` (a causal LM, changed in place) on step-wise worked solutions.

    Args:
        model: e.g. ``AutoModelForCausalLM.from_pretrained(...)`` or a tiny model from a config.
        tokenizer: its tokenizer, with a separator, EOS and pad token.
        examples: solutions (see :func:`encode_sft_example`), or already encoded ones.
        config: optimiser and batching settings.
        rng: the only source of randomness (batch order, and the seed of a forked torch RNG
            for dropout).
        progress: called with a :class:`~treesearch.train.lm_common.TrainProgress` every
            ``config.log_every`` steps.

    Returns:
        The per-step losses, seconds and tokens; the model is left in eval mode.
    """
    if not isinstance(config, SFTConfig):
        raise TypeError(f"config must be an SFTConfig, not {type(config).__name__}")
    pad = getattr(tokenizer, "pad_token_id", None)
    if pad is None:
        raise ValueError("the tokenizer has no pad_token: batches are padded with it")
    encoded = [
        e
        if isinstance(e, EncodedSFTExample)
        else encode_sft_example(
            tokenizer, e, sep_token=config.sep_token, max_length=config.max_length
        )
        for e in examples
    ]
    for i, e in enumerate(encoded):
        if e.answer_tokens == 0:
            raise ValueError(f"example {i} has no answer tokens")
    vocab = model.get_output_embeddings().weight.shape[0]
    top = max(max(e.input_ids) for e in encoded) if encoded else 0
    if top >= vocab:
        raise ValueError(f"token id {top} is outside the model's vocabulary of {vocab}")
    model.to(config.device)

    def loss_of(indices: np.ndarray) -> tuple[torch.Tensor, int]:
        batch = collate_sft([encoded[i] for i in indices], int(pad))
        batch = {k: v.to(config.device) for k, v in batch.items()}
        return sft_loss(model, batch), int(batch["attention_mask"].sum())

    return run_steps(model, config, rng, [len(e.input_ids) for e in encoded], loss_of, progress)
