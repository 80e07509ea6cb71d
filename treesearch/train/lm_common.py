"""Shared pieces of the language-model training loops (step-wise SFT, PRM, ORM).

The optimiser settings every loop takes (:class:`LMTrainConfig`: AdamW with linear warm-up and
cosine decay, gradient clipping, length-grouped minibatches), the loop itself
(:func:`run_steps`), the step-wise encoding of ``prompt SEP step SEP ... step SEP`` with the
tokenizer's separator (:func:`encode_steps`, the layout of ``treesearch.adapters.toymath`` and of
MA-RLHF's PRM data, Lightman et al., arXiv 2305.20050), and atomic Hugging Face checkpoints
(:func:`save_pretrained_atomic`: ``model.safetensors`` + ``config.json`` + tokenizer files +
``training.json``, written into a temporary folder beside the target and renamed into place).

Randomness: minibatch order comes from the ``numpy.random.Generator`` passed in; anything torch
draws during training (dropout) runs under ``torch.random.fork_rng`` seeded from that
generator, so the global torch state is untouched and a fixed seed repeats a run on CPU.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

__all__ = [
    "IGNORE_INDEX",
    "EncodedSteps",
    "LMTrainConfig",
    "TrainLog",
    "TrainProgress",
    "batch_order",
    "encode_steps",
    "learning_rate_at",
    "load_training_info",
    "next_token_loss",
    "run_steps",
    "save_pretrained_atomic",
    "separator_id",
    "single_token_id",
]

_log = logging.getLogger(__name__)

TRAINING_INFO = "training.json"
IGNORE_INDEX = -100  # Hugging Face's "no target" label


# ------------------------------------------------------------------------------------ config
def _check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, not {value}")


def _check_float(name: str, value: object, low: float, high: float, *, open_low: bool) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number, not {type(value).__name__} {value!r}")
    if not math.isfinite(value) or value < low or value > high or (open_low and value == low):
        bound = "(" if open_low else "["
        raise ValueError(f"{name} must be in {bound}{low}, {high}], not {value!r}")


@dataclass(frozen=True, kw_only=True)
class LMTrainConfig:
    """Optimiser and batching settings shared by the SFT, PRM and ORM loops (frozen, checked).

    Attributes:
        num_steps: optimiser steps.
        batch_size: sequences per step.
        learning_rate: peak AdamW learning rate.
        warmup_steps: linear warm-up from 0 to ``learning_rate``.
        min_lr_ratio: the cosine decay ends at ``learning_rate * min_lr_ratio``.
        weight_decay: AdamW's decoupled weight decay.
        betas: AdamW's betas.
        max_grad_norm: gradients are clipped to this global norm (``None``: no clipping).
        group_by_length: draw each minibatch from sequences of similar length (less padding):
            a shuffled pool of ``50 * batch_size`` sequences is sorted by length and cut into
            batches, and the batches are shuffled.
        max_length: a longer encoded example raises ``ValueError`` (``None``: no limit).
        device: where to train (``"cpu"``, ``"cuda"``); the model is moved there.
        precision: ``"fp32"``, or ``"bf16"`` for bfloat16 autocast of the forward pass (weights
            and optimiser state stay float32; on CPUs with AMX about twice as fast).
        log_every: ``progress`` is called every this many steps (and after the last).
    """

    num_steps: int = 500
    batch_size: int = 32
    learning_rate: float = 1e-3
    warmup_steps: int = 20
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.95)
    max_grad_norm: float | None = 1.0
    group_by_length: bool = True
    max_length: int | None = None
    device: str = "cpu"
    precision: Literal["fp32", "bf16"] = "fp32"
    log_every: int = 10

    def __post_init__(self) -> None:
        _check_int("num_steps", self.num_steps, 1)
        _check_int("batch_size", self.batch_size, 1)
        _check_int("warmup_steps", self.warmup_steps, 0)
        _check_int("log_every", self.log_every, 1)
        _check_float("learning_rate", self.learning_rate, 0.0, 10.0, open_low=True)
        _check_float("min_lr_ratio", self.min_lr_ratio, 0.0, 1.0, open_low=False)
        _check_float("weight_decay", self.weight_decay, 0.0, 10.0, open_low=False)
        if (
            not isinstance(self.betas, tuple)
            or len(self.betas) != 2
            or any(isinstance(b, bool) or not isinstance(b, int | float) for b in self.betas)
            or not all(0.0 <= b < 1.0 for b in self.betas)
        ):
            raise ValueError(f"betas must be a pair of numbers in [0, 1), not {self.betas!r}")
        if self.max_grad_norm is not None:
            _check_float("max_grad_norm", self.max_grad_norm, 0.0, math.inf, open_low=True)
        if not isinstance(self.group_by_length, bool):
            raise TypeError(f"group_by_length must be True or False, not {self.group_by_length!r}")
        if self.max_length is not None:
            _check_int("max_length", self.max_length, 2)
        if not isinstance(self.device, str) or not self.device:
            raise TypeError(f"device must be a device name such as 'cpu', not {self.device!r}")
        if self.precision not in ("fp32", "bf16"):
            raise ValueError(f"precision must be 'fp32' or 'bf16', not {self.precision!r}")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy (``betas`` as a list)."""
        data = dataclasses.asdict(self)
        data["betas"] = list(self.betas)
        return data


def learning_rate_at(step: int, config: LMTrainConfig) -> float:
    """The learning rate of optimiser step ``step`` (0-based): linear warm-up, then cosine decay
    from ``learning_rate`` to ``learning_rate * min_lr_ratio`` at the last step."""
    peak = config.learning_rate
    if step < config.warmup_steps:
        return peak * (step + 1) / config.warmup_steps
    span = max(1, config.num_steps - 1 - config.warmup_steps)
    progress = min(1.0, (step - config.warmup_steps) / span)
    floor = peak * config.min_lr_ratio
    return floor + (peak - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


# ------------------------------------------------------------------------------ tokenization
def single_token_id(tokenizer: Any, text: str, what: str) -> int:
    """The id of ``text`` when the tokenizer writes it as exactly one token, else ``ValueError``."""
    if not isinstance(text, str) or not text:
        raise ValueError(f"{what} must be a non-empty str, not {text!r}")
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if len(ids) == 1:
        return int(ids[0])
    raise ValueError(
        f"{what} {text!r} is not a single token of this tokenizer (it encodes to {len(ids)} "
        "tokens); add it (tokenizer.add_tokens, then model.resize_token_embeddings)"
    )


def separator_id(tokenizer: Any, sep_token: str | None = None) -> tuple[str, int]:
    """The step separator's text and id: ``sep_token``, or else the tokenizer's ``sep_token``."""
    if not callable(tokenizer) or not hasattr(tokenizer, "decode"):
        raise TypeError(
            f"tokenizer must be a transformers tokenizer, not {type(tokenizer).__name__}"
        )
    text = sep_token if sep_token is not None else getattr(tokenizer, "sep_token", None)
    if not text:
        raise ValueError(
            "the tokenizer has no sep_token and no sep_token was given: the step-wise format "
            "needs a separator token after the prompt and after every step"
        )
    return text, single_token_id(tokenizer, text, "the step separator")


@dataclass(frozen=True)
class EncodedSteps:
    """``prompt SEP step_1 SEP ... step_K SEP`` as token ids.

    Attributes:
        input_ids: the tokens (the prompt with the tokenizer's special tokens, such as BOS).
        prompt_length: tokens of the prompt part, its own separator included.
        separator_positions: index of the separator that closes each step, in order.
    """

    input_ids: tuple[int, ...]
    prompt_length: int
    separator_positions: tuple[int, ...]


def encode_steps(
    tokenizer: Any, prompt: str, steps: Sequence[str], *, sep_token: str | None = None
) -> EncodedSteps:
    """Tokenize ``prompt`` (with special tokens) and each step (without) separately and join
    them with the separator id, as the verifiers and the step policy build their inputs
    (``docs/algorithms.md`` section 1, pitfall c).

    Raises:
        ValueError: no separator token, an empty prompt or step, a text holding the separator,
            or no steps.
        TypeError: a prompt or step that is not a str.
    """
    sep_text, sep = separator_id(tokenizer, sep_token)
    if not isinstance(prompt, str):
        raise TypeError(f"the prompt must be a str, not {type(prompt).__name__}")
    if not prompt:
        raise ValueError("the prompt is empty")
    if isinstance(steps, str) or not isinstance(steps, Sequence):
        raise TypeError(f"steps must be a sequence of strings, not {type(steps).__name__}")
    if not steps:
        raise ValueError("an example needs at least one step")
    prompt_ids = list(tokenizer(prompt, add_special_tokens=True)["input_ids"])
    if sep in prompt_ids or sep_text in prompt:
        raise ValueError(
            f"the prompt holds the step separator {sep_text!r}; give the prompt without it "
            "(the separator after the prompt is added here)"
        )
    ids = [*prompt_ids, sep]
    prompt_length = len(ids)
    positions = []
    for k, step in enumerate(steps):
        if not isinstance(step, str):
            raise TypeError(f"step {k} must be a str, not {type(step).__name__}")
        if not step.strip():
            raise ValueError(f"step {k} is empty")
        step_ids = list(tokenizer(step, add_special_tokens=False)["input_ids"])
        if sep in step_ids or sep_text in step:
            raise ValueError(
                f"step {k} holds the step separator {sep_text!r} (two steps run together?): "
                f"{step!r:.60}"
            )
        ids.extend(step_ids)
        positions.append(len(ids))
        ids.append(sep)
    return EncodedSteps(tuple(ids), prompt_length, tuple(positions))


def split_step_text(text: str, sep_token: str) -> tuple[str, tuple[str, ...]]:
    """``(prompt, steps)`` from ``prompt SEP step SEP ... step SEP [EOS]`` text.

    Raises ``ValueError`` for a text without a separator after the prompt, a last step without
    its separator, or an empty step.
    """
    if not isinstance(text, str):
        raise TypeError(f"the text must be a str, not {type(text).__name__}")
    prompt, found, rest = text.partition(sep_token)
    if not found:
        raise ValueError(f"missing separator {sep_token!r} after the prompt: {text!r:.60}")
    pieces = rest.split(sep_token)
    if pieces[-1].strip():
        raise ValueError(
            f"missing separator {sep_token!r} after step {len(pieces) - 1}: {pieces[-1]!r:.60}"
        )
    steps = tuple(pieces[:-1])
    for k, step in enumerate(steps):
        if not step.strip():
            raise ValueError(f"step {k} is empty (two separators in a row)")
    return prompt, steps


# ---------------------------------------------------------------------------------- batching
def batch_order(
    lengths: Sequence[int], config: LMTrainConfig, rng: np.random.Generator
) -> Iterator[np.ndarray]:
    """Endless minibatches of example indices: each pass over the data is a fresh shuffle
    (grouped by length when ``config.group_by_length``)."""
    count = len(lengths)
    if count == 0:
        raise ValueError("no training examples")
    size = min(config.batch_size, count)
    length_array = np.asarray(lengths)
    while True:
        order = rng.permutation(count)
        batches: list[np.ndarray] = []
        if config.group_by_length:
            pool = 50 * size
            for start in range(0, count, pool):
                chunk = order[start : start + pool]
                chunk = chunk[np.argsort(length_array[chunk], kind="stable")]
                batches.extend(chunk[i : i + size] for i in range(0, len(chunk), size))
            for i in rng.permutation(len(batches)):
                yield batches[i]
        else:
            for start in range(0, count, size):
                yield order[start : start + size]


def pad_batch(rows: Sequence[Sequence[int]], pad_id: int, fill: int | None = None) -> torch.Tensor:
    """Right-pad rows of ints into a ``(len(rows), longest)`` long tensor."""
    width = max(len(row) for row in rows)
    out = torch.full((len(rows), width), pad_id if fill is None else fill, dtype=torch.long)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.tensor(row, dtype=torch.long)
    return out


def next_token_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of predicting ``labels[:, t + 1]`` from ``logits[:, t]`` over the
    labels that are not :data:`IGNORE_INDEX` (Hugging Face's unshifted label layout)."""
    return torch.nn.functional.cross_entropy(
        logits[:, :-1].float().reshape(-1, logits.shape[-1]),
        labels[:, 1:].reshape(-1),
        ignore_index=IGNORE_INDEX,
    )


# -------------------------------------------------------------------------------------- loop
@dataclass(frozen=True)
class TrainProgress:
    """What ``progress`` receives every ``log_every`` steps.

    ``loss`` is the mean training loss over the steps since the previous report.
    """

    step: int
    num_steps: int
    loss: float
    learning_rate: float
    seconds: float


@dataclass(frozen=True)
class TrainLog:
    """The outcome of a training call: the loss of every step, in order."""

    losses: tuple[float, ...]
    seconds: float
    tokens: int

    @property
    def final_loss(self) -> float:
        """Mean loss over the last tenth of the steps (at least one)."""
        tail = self.losses[-max(1, len(self.losses) // 10) :]
        return float(sum(tail) / len(tail))


def run_steps(
    model: Any,
    config: LMTrainConfig,
    rng: np.random.Generator,
    lengths: Sequence[int],
    loss_of: Callable[[np.ndarray], tuple[torch.Tensor, int]],
    progress: Callable[[TrainProgress], None] | None,
) -> TrainLog:
    """AdamW over minibatches of example indices; ``loss_of(indices)`` returns the batch loss
    and the number of tokens it ran. The model ends in eval mode."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, not {type(rng).__name__}")
    if progress is not None and not callable(progress):
        raise TypeError("progress must be a callable or None")
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters")
    optimizer = torch.optim.AdamW(
        params,
        lr=config.learning_rate,
        betas=config.betas,
        weight_decay=config.weight_decay,
    )
    batches = batch_order(lengths, config, rng)
    torch_seed = int(rng.integers(0, 2**63 - 1))
    losses: list[float] = []
    tokens = 0
    start = time.perf_counter()
    pending: list[float] = []
    model.train()
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(torch_seed)
            for step in range(config.num_steps):
                rate = learning_rate_at(step, config)
                for group in optimizer.param_groups:
                    group["lr"] = rate
                with torch.autocast(
                    device_type=torch.device(config.device).type,
                    dtype=torch.bfloat16,
                    enabled=config.precision == "bf16",
                ):
                    loss, ran = loss_of(next(batches))
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"the training loss is {loss.item()} at step {step}")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if config.max_grad_norm is not None:
                    torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
                optimizer.step()
                value = float(loss.detach())
                losses.append(value)
                pending.append(value)
                tokens += ran
                last = step + 1 == config.num_steps
                if (step + 1) % config.log_every == 0 or last:
                    report = TrainProgress(
                        step + 1,
                        config.num_steps,
                        sum(pending) / len(pending),
                        rate,
                        time.perf_counter() - start,
                    )
                    pending = []
                    _log.info(
                        "step %d/%d loss %.4f lr %.2e",
                        report.step,
                        report.num_steps,
                        report.loss,
                        rate,
                    )
                    if progress is not None:
                        progress(report)
    finally:
        model.eval()
    return TrainLog(tuple(losses), time.perf_counter() - start, tokens)


# ------------------------------------------------------------------------------- checkpoints
def _fsync_tree(folder: Path) -> None:
    # mkdtemp makes the folder private (0700) and some writers make private files; a saved
    # checkpoint gets ordinary permissions.
    folder.chmod(0o755)
    for item in folder.rglob("*"):
        if item.is_file():
            item.chmod(0o644)
            with open(item, "rb") as handle:
                os.fsync(handle.fileno())
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' own progress bars ("Loading weights", "Writing model shards") for
    the duration: library code does not write to the terminal. The previous setting is put
    back afterwards."""
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


def load_causal_lm(path: str | os.PathLike[str]) -> Any:
    """``AutoModelForCausalLM.from_pretrained(path)`` without transformers' progress bars."""
    from transformers import AutoModelForCausalLM

    with quiet_transformers():
        return AutoModelForCausalLM.from_pretrained(path)


def save_pretrained_atomic(
    directory: str | os.PathLike[str],
    model: Any,
    tokenizer: Any,
    *,
    training: Mapping[str, Any] | None = None,
) -> Path:
    """Save ``model`` (safetensors and ``config.json``) and ``tokenizer`` as a Hugging Face
    folder that ``from_pretrained`` loads, plus ``training.json`` with ``training``.

    Everything is written into a temporary folder beside ``directory`` and renamed into place:
    an interrupted save leaves the previous folder (if any) whole. Replacing an existing
    folder takes two renames; the old copy is then deleted.
    """
    target = Path(directory)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists() and not target.is_dir():
        raise ValueError(f"{target} exists and is not a folder")
    info = json.dumps(dict(training or {}), indent=2, sort_keys=True) + "\n"
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        with quiet_transformers():
            model.save_pretrained(staging)
            tokenizer.save_pretrained(staging)
        if not (staging / "model.safetensors").exists():
            raise RuntimeError(f"save_pretrained wrote no model.safetensors in {staging}")
        (staging / TRAINING_INFO).write_text(info, encoding="utf-8")
        _fsync_tree(staging)
        if target.exists():
            retired = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
            os.replace(target, retired / target.name)
            os.replace(staging, target)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def load_training_info(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``training.json`` that :func:`save_pretrained_atomic` wrote (``{}`` if none)."""
    path = Path(directory) / TRAINING_INFO
    if not path.exists():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path} does not hold a JSON object")
    return data
