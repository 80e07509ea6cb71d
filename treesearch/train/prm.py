"""Process and outcome reward model training (PRM / ORM), and the ProcessBench first-error F1.

A PRM gives every step of a solution a score, the probability that the solution is still on
track after it ("Let's Verify Step by Step", Lightman et al., arXiv 2305.20050; Math-Shepherd,
Wang et al., arXiv 2312.08935). The input is one sequence::

    <bos> prompt <sep> step_1 <sep> step_2 <sep> ... step_K <sep>

and step ``k`` is read at the separator that closes it (position ``p_k``; the separator after
the prompt is not read). This is the layout the ``"seed"`` and ``"value-head"`` presets of
:class:`treesearch.adapters.verifiers.HFPRM` score, with the question ``prompt <sep>`` (a
:class:`~treesearch.adapters.state.ReasoningState` started from ``format_prefix(prompt)``) or
``prm_preset(..., prefix_template="{question}<sep>")``. Two heads (``docs/algorithms.md``
section 1):

* ``head="lm"`` (MA-RLHF's recipe; the ``"seed"`` preset): a causal LM whose logits *at* the
  separator are trained to emit the label word ``Positive`` (good step) or ``Negative``. The
  targets are placed at ``p_k`` and the loss is written by hand, so there is no shift: with
  Hugging Face's own causal-LM loss the same target would sit at ``p_k + 1``
  (:func:`hf_shifted_labels` builds that tensor; a test checks the two losses agree). Inputs are
  unchanged. ``label_loss="two-way"`` (default) is the binary cross-entropy of
  ``softmax([z_Positive, z_Negative])``, the very score the verifier reads, so soft targets are
  exact and the rest of the vocabulary is left alone; ``"full-vocab"`` is MA-RLHF's
  cross-entropy over the whole vocabulary, with soft targets as a two-point target
  distribution ``y * Positive + (1 - y) * Negative``.
* ``head="value"`` (ReST-MCTS-style value model; the ``"value-head"`` preset): one scalar per
  token (``AutoModelForTokenClassification`` with ``num_labels=1``, see
  :func:`value_head_model`), binary cross-entropy with logits at ``p_k``; the score is its
  sigmoid.

Targets are hard (0/1, exact or human labels) or soft (Monte-Carlo success rates in [0, 1]).

**Keeping the language-model loss** (``lm_weight > 0``): the loss adds ``lm_weight`` times the
causal-LM cross-entropy of the tokens of every step labelled good (target >= 0.5), each step's
tokens and its closing separator predicted from the position before, as step-wise SFT trains
them. A PRM that must also write right steps keeps computing them, which is what checking a step
takes: a tiny arithmetic checker trained on labels alone stayed at chance where the same model
with this term learned the check (``docs/adapters.md``, "The shipped PRM"). Generative and
multi-task verifiers (GenRM, Zhang et al., arXiv 2408.15240) keep this term for the same reason.
The LM head's logits at a separator serve both terms: the label loss reads only the difference
of the two label words' logits, so it does not compete with the next-token targets there.

An ORM is the same model with one target, the outcome (1 if the final answer is right), at the
separator closing the last step (MA-RLHF ``process_orm_step``). It is scored by
:class:`~treesearch.adapters.verifiers.HFORM` with ``head="lm"``, ``good_token="Positive"``,
``bad_token="Negative"``, ``step_joiner="<sep>"`` and ``suffix="<sep>"`` (question
``prompt <sep>``).

**ProcessBench** (Zheng et al., arXiv 2412.06559): a PRM predicts the first step whose score is
below 0.5 (or -1: no error); a prediction counts only if it equals the labelled first error.
F1 is the harmonic mean of the accuracy on erroneous and on correct solutions
(:func:`processbench_f1`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from treesearch.adapters.data import PRMExample

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
    single_token_id,
    split_step_text,
)

__all__ = [
    "EncodedRewardExample",
    "ORMExample",
    "PRMConfig",
    "ProcessBenchResult",
    "collate_reward",
    "encode_orm_example",
    "encode_prm_example",
    "first_error_prediction",
    "hf_shifted_labels",
    "processbench_f1",
    "reward_loss",
    "score_steps",
    "train_orm",
    "train_prm",
    "value_head_model",
]

_log = logging.getLogger(__name__)


Head = Literal["lm", "value"]
LabelLoss = Literal["two-way", "full-vocab"]


@dataclass(frozen=True, kw_only=True)
class PRMConfig(LMTrainConfig):
    """Settings of :func:`train_prm` and :func:`train_orm` (and :class:`LMTrainConfig`'s).

    Attributes:
        head: ``"lm"`` (label words from the LM head) or ``"value"`` (one scalar per token).
        label_loss: for ``head="lm"``: ``"two-way"`` (BCE over the two label logits) or
            ``"full-vocab"`` (cross-entropy over the vocabulary, MA-RLHF).
        good_token, bad_token: the label words (single tokens of the tokenizer).
        sep_token: the step separator (``None``: the tokenizer's ``sep_token``).
        lm_weight: weight of the language-model loss on the steps labelled good (0: off; needs
            ``head="lm"``; see the module docstring).
    """

    head: Head = "lm"
    label_loss: LabelLoss = "two-way"
    good_token: str = "Positive"
    bad_token: str = "Negative"
    sep_token: str | None = None
    lm_weight: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.head not in ("lm", "value"):
            raise ValueError(f"head must be 'lm' or 'value', not {self.head!r}")
        if self.label_loss not in ("two-way", "full-vocab"):
            raise ValueError(
                f"label_loss must be 'two-way' or 'full-vocab', not {self.label_loss!r}"
            )
        for name in ("good_token", "bad_token"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise ValueError(f"{name} must be a non-empty str, not {value!r}")
        if self.good_token == self.bad_token:
            raise ValueError("good_token and bad_token must differ")
        if self.sep_token is not None and (
            not isinstance(self.sep_token, str) or not self.sep_token
        ):
            raise ValueError(f"sep_token must be a non-empty str or None, not {self.sep_token!r}")
        weight = self.lm_weight
        if isinstance(weight, bool) or not isinstance(weight, int | float):
            raise TypeError(f"lm_weight must be a number, not {weight!r}")
        if not (math.isfinite(weight) and weight >= 0):
            raise ValueError(f"lm_weight must be finite and >= 0, not {weight!r}")
        if weight > 0 and self.head != "lm":
            raise ValueError("lm_weight > 0 needs head='lm' (a value head has no LM logits)")


@dataclass(frozen=True)
class ORMExample:
    """A solution and its outcome label: 1 if its final answer is right, 0 if not (or a
    probability in [0, 1])."""

    prompt: str
    steps: tuple[str, ...]
    label: float

    def __post_init__(self) -> None:
        if not isinstance(self.prompt, str):
            raise TypeError(f"prompt must be a str, not {type(self.prompt).__name__}")
        if isinstance(self.steps, str) or not isinstance(self.steps, Sequence):
            raise TypeError("steps must be a sequence of strings")
        object.__setattr__(self, "steps", tuple(self.steps))
        if not self.steps:
            raise ValueError("steps is empty")
        label = self.label
        if isinstance(label, bool) or not isinstance(label, int | float):
            raise TypeError(f"label must be a number, not {label!r}")
        if not (math.isfinite(label) and 0 <= label <= 1):
            raise ValueError(f"label must be in [0, 1], not {label!r}")


@dataclass(frozen=True, slots=True)
class EncodedRewardExample:
    """Token ids with the positions read (one separator per labelled step) and their targets.

    ``step_starts`` (optional) holds the index of the first token of each labelled step, so that
    ``lm_weight`` can train the tokens ``step_starts[k] .. positions[k]`` of the good steps;
    without it an example adds nothing to the language-model term."""

    input_ids: tuple[int, ...]
    positions: tuple[int, ...]
    targets: tuple[float, ...]
    step_starts: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if len(self.positions) != len(self.targets):
            raise ValueError(
                f"{len(self.positions)} positions but {len(self.targets)} targets: one each"
            )
        length = len(self.input_ids)
        if any(not 0 <= p < length for p in self.positions):
            raise ValueError(f"a labelled position lies outside the {length} tokens")
        if self.step_starts:
            if len(self.step_starts) != len(self.positions):
                raise ValueError(
                    f"{len(self.step_starts)} step starts but {len(self.positions)} positions"
                )
            if any(
                not 1 <= start <= p
                for start, p in zip(self.step_starts, self.positions, strict=True)
            ):
                raise ValueError("each step must start after token 0 and at or before its label")


def _check_targets(labels: Sequence[float], steps: int) -> tuple[float, ...]:
    if isinstance(labels, str | bytes) or not isinstance(labels, Sequence):
        raise TypeError(f"labels must be a sequence of numbers, not {labels!r}")
    if len(labels) != steps:
        raise ValueError(f"{steps} steps but {len(labels)} labels: one label per step")
    out = []
    for i, label in enumerate(labels):
        if isinstance(label, bool) or not isinstance(label, int | float):
            raise TypeError(f"label {i} must be a number, not {label!r}")
        if not (math.isfinite(label) and 0 <= label <= 1):
            raise ValueError(f"label {i} is {label!r}; labels lie in [0, 1]")
        out.append(float(label))
    return tuple(out)


def encode_prm_example(
    tokenizer: Any,
    example: PRMExample | tuple[str, Sequence[float]],
    *,
    sep_token: str | None = None,
    max_length: int | None = None,
) -> EncodedRewardExample:
    """Tokenize a labelled solution: one target per step, at the separator closing it.

    Args:
        tokenizer: with a separator token (``ValueError`` without one).
        example: a :class:`~treesearch.adapters.data.PRMExample`, or ``(text, labels)`` with text
            ``prompt SEP step SEP ... step SEP`` (a leading BOS is allowed).
        sep_token: the separator (default: the tokenizer's ``sep_token``).
        max_length: raise ``ValueError`` for a longer example.

    Raises:
        ValueError: a missing separator, an empty step, a step holding the separator, a label
            count that is not the step count, a label outside [0, 1], a too long example.
    """
    sep_text, _ = separator_id(tokenizer, sep_token)
    if isinstance(example, PRMExample):
        prompt, steps, labels = example.prompt, example.steps, example.labels
    elif isinstance(example, tuple) and len(example) == 2 and isinstance(example[0], str):
        text = example[0]
        bos = getattr(tokenizer, "bos_token", None)
        if bos:
            text = text.removeprefix(bos)
        prompt, steps = split_step_text(text, sep_text)
        labels = _check_targets(example[1], len(steps))
    else:
        raise TypeError(
            f"example must be a PRMExample or a (text, labels) pair, not {type(example).__name__}"
        )
    targets = _check_targets(labels, len(steps))
    encoded = encode_steps(tokenizer, prompt, steps, sep_token=sep_text)
    if max_length is not None and len(encoded.input_ids) > max_length:
        raise ValueError(
            f"the example has {len(encoded.input_ids)} tokens, over max_length={max_length}"
        )
    starts = (encoded.prompt_length, *(p + 1 for p in encoded.separator_positions[:-1]))
    return EncodedRewardExample(encoded.input_ids, encoded.separator_positions, targets, starts)


def encode_orm_example(
    tokenizer: Any,
    example: ORMExample,
    *,
    sep_token: str | None = None,
    max_length: int | None = None,
) -> EncodedRewardExample:
    """Tokenize a solution with its outcome label, placed at the separator after the last step."""
    if not isinstance(example, ORMExample):
        raise TypeError(f"example must be an ORMExample, not {type(example).__name__}")
    encoded = encode_steps(tokenizer, example.prompt, example.steps, sep_token=sep_token)
    if max_length is not None and len(encoded.input_ids) > max_length:
        raise ValueError(
            f"the example has {len(encoded.input_ids)} tokens, over max_length={max_length}"
        )
    return EncodedRewardExample(
        encoded.input_ids, encoded.separator_positions[-1:], (float(example.label),)
    )


def hf_shifted_labels(
    example: EncodedRewardExample, good_id: int, bad_id: int, length: int | None = None
) -> list[int]:
    """The label row for Hugging Face's causal-LM loss (which shifts labels left by one):
    -100 everywhere, and the label word of step ``k`` at ``p_k + 1``, so that the logits *at* the
    separator ``p_k`` are the ones trained. Hard targets only (a soft one is rounded at 0.5)."""
    width = len(example.input_ids) + 1 if length is None else length
    row = [-100] * width
    for position, target in zip(example.positions, example.targets, strict=True):
        if position + 1 >= width:
            raise ValueError(f"length {width} leaves no room for the label after {position}")
        row[position + 1] = good_id if target >= 0.5 else bad_id
    return row


def collate_reward(
    examples: Sequence[EncodedRewardExample], pad_id: int
) -> dict[str, torch.Tensor]:
    """Right-padded ``input_ids`` and ``attention_mask``; ``rows``, ``positions`` and
    ``targets`` list every labelled position of the batch; ``lm_labels`` holds the token ids of
    the good steps (target >= 0.5: their tokens and closing separator, where ``step_starts``
    says where they begin) and -100 elsewhere, in Hugging Face's unshifted layout."""
    if not examples:
        raise ValueError("no examples to collate")
    rows = [i for i, e in enumerate(examples) for _ in e.positions]
    positions = [p for e in examples for p in e.positions]
    targets = [t for e in examples for t in e.targets]
    lm_rows = []
    for e in examples:
        row = [IGNORE_INDEX] * len(e.input_ids)
        for start, end, target in zip(e.step_starts, e.positions, e.targets, strict=False):
            if target >= 0.5:
                row[start : end + 1] = e.input_ids[start : end + 1]
        lm_rows.append(row)
    return {
        "input_ids": pad_batch([e.input_ids for e in examples], pad_id),
        "attention_mask": pad_batch([[1] * len(e.input_ids) for e in examples], 0),
        "rows": torch.tensor(rows, dtype=torch.long),
        "positions": torch.tensor(positions, dtype=torch.long),
        "targets": torch.tensor(targets, dtype=torch.float32),
        "lm_labels": pad_batch(lm_rows, IGNORE_INDEX),
    }


def _label_ids(tokenizer: Any, good: str, bad: str) -> tuple[int, int]:
    ids = (
        single_token_id(tokenizer, good, "the label word"),
        single_token_id(tokenizer, bad, "the label word"),
    )
    if ids[0] == ids[1]:
        raise ValueError(f"the label words {good!r} and {bad!r} are the same token")
    return ids


def _forward(model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits


def _outputs_at(model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The model's outputs at the labelled positions: ``(labelled positions, outputs)``."""
    return _forward(model, batch)[batch["rows"], batch["positions"]].float()


def _logits_from(
    outputs: torch.Tensor, head: Head, label_ids: tuple[int, int] | None
) -> torch.Tensor:
    """The logit of "good" per labelled position (two-way for an LM head)."""
    if head == "value":
        if outputs.shape[-1] != 1:
            raise ValueError(
                f"head='value' needs one output per token (AutoModelForTokenClassification with "
                f"num_labels=1), but the model returns {outputs.shape[-1]}"
            )
        return outputs[:, 0]
    assert label_ids is not None  # set for LM heads by the callers
    if outputs.shape[-1] <= max(label_ids):
        raise ValueError(
            f"head='lm' reads label words from an LM head, but the model returns "
            f"{outputs.shape[-1]} outputs per token"
        )
    return outputs[:, label_ids[0]] - outputs[:, label_ids[1]]


def reward_loss(
    model: Any,
    batch: dict[str, torch.Tensor],
    *,
    head: Head = "lm",
    label_ids: tuple[int, int] | None = None,
    label_loss: LabelLoss = "two-way",
    lm_weight: float = 0.0,
) -> torch.Tensor:
    """Mean loss over the labelled positions of a batch from :func:`collate_reward`, plus
    ``lm_weight`` times the mean next-token cross-entropy over its ``lm_labels`` tokens (a
    batch without such tokens adds nothing)."""
    all_logits = _forward(model, batch)
    outputs = all_logits[batch["rows"], batch["positions"]].float()
    targets = batch["targets"]
    if head == "lm" and label_loss == "full-vocab":
        assert label_ids is not None
        _logits_from(outputs, head, label_ids)  # checks the width
        logp = torch.log_softmax(outputs, dim=-1)
        loss = -(targets * logp[:, label_ids[0]] + (1 - targets) * logp[:, label_ids[1]]).mean()
    else:
        logits = _logits_from(outputs, head, label_ids)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets)
    lm_labels = batch.get("lm_labels") if lm_weight > 0 else None
    if lm_labels is not None and bool((lm_labels[:, 1:] != IGNORE_INDEX).any()):
        loss = loss + lm_weight * next_token_loss(all_logits, lm_labels)
    return loss


def value_head_model(causal_lm: Any, *, seed: int = 0) -> Any:
    """An ``AutoModelForTokenClassification`` with ``num_labels=1`` whose body is a copy of
    ``causal_lm``'s: the model behind the ``"value-head"`` preset. The new head is drawn under a
    forked torch RNG seeded with ``seed`` (the global state is untouched)."""
    import copy

    from transformers import AutoModelForTokenClassification

    config = copy.deepcopy(causal_lm.config)
    config.num_labels = 1
    config.id2label = {0: "value"}
    config.label2id = {"value": 0}
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, not {seed!r}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForTokenClassification.from_config(config)
    source = getattr(causal_lm, causal_lm.base_model_prefix)
    target = getattr(model, model.base_model_prefix)
    target.load_state_dict(source.state_dict())
    return model.to(next(causal_lm.parameters()).device).eval()


def _encode_all(
    tokenizer: Any,
    examples: Sequence[Any],
    config: PRMConfig,
    encode: Callable[..., EncodedRewardExample],
) -> list[EncodedRewardExample]:
    encoded = []
    for i, e in enumerate(examples):
        if isinstance(e, EncodedRewardExample):
            encoded.append(e)
            continue
        try:
            encoded.append(
                encode(tokenizer, e, sep_token=config.sep_token, max_length=config.max_length)
            )
        except ValueError as exc:
            raise ValueError(f"example {i}: {exc}") from None
    if not encoded:
        raise ValueError("no training examples")
    return encoded


def _train_reward(
    model: Any,
    tokenizer: Any,
    encoded: list[EncodedRewardExample],
    config: PRMConfig,
    rng: np.random.Generator,
    progress: Callable[[TrainProgress], None] | None,
) -> TrainLog:
    pad = getattr(tokenizer, "pad_token_id", None)
    if pad is None:
        raise ValueError("the tokenizer has no pad_token: batches are padded with it")
    label_ids = _label_ids(tokenizer, config.good_token, config.bad_token)
    if config.head == "value":
        label_ids = None  # type: ignore[assignment]
    model.to(config.device)

    def loss_of(indices: np.ndarray) -> tuple[torch.Tensor, int]:
        batch = collate_reward([encoded[i] for i in indices], int(pad))
        batch = {k: v.to(config.device) for k, v in batch.items()}
        loss = reward_loss(
            model,
            batch,
            head=config.head,
            label_ids=label_ids,
            label_loss=config.label_loss,
            lm_weight=config.lm_weight,
        )
        return loss, int(batch["attention_mask"].sum())

    return run_steps(model, config, rng, [len(e.input_ids) for e in encoded], loss_of, progress)


def train_prm(
    model: Any,
    tokenizer: Any,
    examples: Sequence[PRMExample | tuple[str, Sequence[float]] | EncodedRewardExample],
    *,
    config: PRMConfig,
    rng: np.random.Generator,
    progress: Callable[[TrainProgress], None] | None = None,
) -> TrainLog:
    """Train a PRM in place on step-labelled solutions (hard or soft labels).

    Args:
        model: a causal LM for ``head="lm"``, a one-output token classifier for
            ``head="value"`` (:func:`value_head_model`).
        tokenizer: with the separator and (for ``"lm"``) the label words as single tokens.
        examples: see :func:`encode_prm_example`.
        config: the head, the loss and the optimiser settings.
        rng: the only source of randomness.
        progress: called every ``config.log_every`` steps.
    """
    if not isinstance(config, PRMConfig):
        raise TypeError(f"config must be a PRMConfig, not {type(config).__name__}")
    _label_ids(tokenizer, config.good_token, config.bad_token)
    encoded = _encode_all(tokenizer, examples, config, encode_prm_example)
    return _train_reward(model, tokenizer, encoded, config, rng, progress)


def train_orm(
    model: Any,
    tokenizer: Any,
    examples: Sequence[ORMExample | EncodedRewardExample],
    *,
    config: PRMConfig,
    rng: np.random.Generator,
    progress: Callable[[TrainProgress], None] | None = None,
) -> TrainLog:
    """Train an outcome reward model in place: one target per solution, at its last separator.

    Arguments as :func:`train_prm`, with :class:`ORMExample` examples.
    """
    if not isinstance(config, PRMConfig):
        raise TypeError(f"config must be a PRMConfig, not {type(config).__name__}")
    _label_ids(tokenizer, config.good_token, config.bad_token)
    encoded = _encode_all(tokenizer, examples, config, encode_orm_example)
    return _train_reward(model, tokenizer, encoded, config, rng, progress)


@torch.no_grad()
def score_steps(
    model: Any,
    tokenizer: Any,
    solutions: Sequence[tuple[str, Sequence[str]]],
    *,
    head: Head = "lm",
    good_token: str = "Positive",
    bad_token: str = "Negative",
    sep_token: str | None = None,
    batch_size: int = 64,
    last_only: bool = False,
) -> list[tuple[float, ...]]:
    """Per-step scores of ``(prompt, steps)`` solutions, read as in training: the two-way
    softmax ``p(good) / (p(good) + p(bad))`` (``head="lm"``) or the sigmoid of the scalar
    (``head="value"``) at each step's separator. ``last_only`` reads only the last step (an
    ORM's score)."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, not {batch_size!r}")
    pad = getattr(tokenizer, "pad_token_id", None)
    pad_id = 0 if pad is None else int(pad)
    label_ids = _label_ids(tokenizer, good_token, bad_token) if head == "lm" else None
    encoded = []
    for prompt, steps in solutions:
        layout = encode_steps(tokenizer, prompt, steps, sep_token=sep_token)
        positions = layout.separator_positions[-1:] if last_only else layout.separator_positions
        encoded.append(EncodedRewardExample(layout.input_ids, positions, (0.0,) * len(positions)))
    device = next(model.parameters()).device
    scores: list[tuple[float, ...]] = []
    for start in range(0, len(encoded), batch_size):
        chunk = encoded[start : start + batch_size]
        batch = {k: v.to(device) for k, v in collate_reward(chunk, pad_id).items()}
        logits = _logits_from(_outputs_at(model, batch), head, label_ids)
        values = torch.sigmoid(logits).tolist()
        offset = 0
        for example in chunk:
            scores.append(tuple(values[offset : offset + len(example.positions)]))
            offset += len(example.positions)
    return scores


# ------------------------------------------------------------------------------- ProcessBench
def first_error_prediction(step_scores: Sequence[float], threshold: float = 0.5) -> int:
    """The index of the first step scored below ``threshold`` (judged wrong), or -1."""
    for index, score in enumerate(step_scores):
        if score < threshold:
            return index
    return -1


@dataclass(frozen=True)
class ProcessBenchResult:
    """ProcessBench accuracies: on erroneous solutions (the predicted first error is the true
    one) and on correct ones (no error predicted); ``f1`` is their harmonic mean. An accuracy
    over no samples is NaN, and so is then ``f1``."""

    acc_erroneous: float
    acc_correct: float
    f1: float
    num_erroneous: int
    num_correct: int


def processbench_f1(labels: Sequence[int], predictions: Sequence[int]) -> ProcessBenchResult:
    """Score first-error predictions against labels (0-based first wrong step, -1: none)."""
    if len(labels) != len(predictions):
        raise ValueError(f"{len(labels)} labels but {len(predictions)} predictions")
    for name, values in (("labels", labels), ("predictions", predictions)):
        for value in values:
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < -1:
                raise ValueError(f"{name} must be ints >= -1 (-1: no error), not {value!r}")
    erroneous = [(y, p) for y, p in zip(labels, predictions, strict=True) if y != -1]
    correct = [(y, p) for y, p in zip(labels, predictions, strict=True) if y == -1]
    acc_err = sum(y == p for y, p in erroneous) / len(erroneous) if erroneous else math.nan
    acc_cor = sum(p == -1 for _, p in correct) / len(correct) if correct else math.nan
    if math.isnan(acc_err) or math.isnan(acc_cor):
        f1 = math.nan
    elif acc_err + acc_cor == 0:
        f1 = 0.0
    else:
        f1 = 2 * acc_err * acc_cor / (acc_err + acc_cor)
    return ProcessBenchResult(acc_err, acc_cor, f1, len(erroneous), len(correct))
