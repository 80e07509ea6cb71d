"""TS-LLM critic training: value targets from search traces, and an MSE value-head trainer.

Paper: Feng et al., "Alphazero-like Tree-Search can Guide Large Language Model Decoding and
Training" (arXiv 2309.17179). Code: waterhorse1/LLM_Tree_Search
(``tsllm/envs/*/data.py`` ``build_critic_data_component``, ``tsllm/rl/data/node_types_new.py``
``TrajInstance``, ``tsllm/rl/trainer/mcts_trainer_traj_ct2_value.py`` ``loss_fn``).
``docs/algorithms.md`` section 5. The searches that use the critic are
:class:`~treesearch.search.ts_llm.MCTSAlpha` and :class:`~treesearch.search.ts_llm.MCTSRollout`.

**The critic** is a language model with a scalar head on every token
(:func:`treesearch.train.prm.value_head_model`); the value of a state (the question and the
steps so far) is read at its last token. With the step-wise layout of
:func:`treesearch.train.lm_common.encode_steps`::

    <bos> prompt <sep> step_1 <sep> step_2 <sep> ... step_K <sep>

state ``s_0`` (the question) is read at the separator after the prompt and ``s_k`` at the
separator closing step ``k``, which is where
:class:`~treesearch.adapters.verifiers.HFPRM` with ``prm_preset("value-head",
activation="identity")`` reads it during search (:func:`critic_verifier`).

**Targets** (:func:`critic_examples`), for a trace of ``K`` steps whose final answer is right
(reward ``+1``) or wrong (``-1``): rewards ``r_0 .. r_{K-1}`` are 0 except the last, the
reward; ``s_0 .. s_{K-1}`` get the return ``G_k``, and the final state ``s_K`` gets the reward
itself (TS-LLM's ORM target, ``mask == 2`` in its code). So ``K + 1`` targets at ``K + 1``
separators: the one after the prompt and the one closing each step.

* ``method="mc"``: Monte-Carlo returns ``G_k = sum_{j >= k} gamma^(j-k) r_j``
  (:func:`treesearch.train.advantages.monte_carlo_returns`); with TS-LLM's ``gamma = 1`` every
  target equals the final reward (rewards ``[0, 0, 1]`` give ``[1, 1, 1]``; ``gamma = 0.9``
  gives ``[0.81, 0.9, 1]``).
* ``method="td"``: TD(lambda) returns computed the GAE way
  (:func:`treesearch.train.advantages.td_lambda_returns`, ``lam = 0.95``) from the critic's own
  values ``V(s_1) .. V(s_{K-1})`` along the trace: the search's critic scores
  (``TraceStep.score``, else ``TraceStep.value``), or recomputed by the current critic
  (``values=critic_value_fn(model, tokenizer)``, as TS-LLM does). ``V(s_0)`` does not enter:
  the lambda-return of ``s_k`` is ``r_k + gamma ((1 - lam) V(s_{k+1}) + lam G_{k+1})``.

Traces follow :mod:`treesearch.train.traces`: ``outcome`` 1.0 for a right final answer and 0.0
for a wrong or unfinished one (a trace without an outcome is refused, naming it),
``metadata["prompt"]`` the question text, each action a step's text with its separator (a
trailing blank step is the end-of-sequence step and is dropped, as the verifiers skip it).
The outcome maps linearly to the reward, ``wrong_reward + (correct_reward - wrong_reward) *
outcome`` (-1 and +1 by default, TS-LLM's convention). :func:`merge_traces` merges the traces
of several iterations without duplicates (TS-LLM merges earlier data and deduplicates).

**Loss.** Mean squared error between the raw head output and the target at every labelled
position (TS-LLM's ``value_loss``), in :func:`train_critic`. This module does not reuse
:func:`treesearch.train.prm.train_prm` with ``head="value"``, whose binary cross-entropy on a
sigmoid would need the targets mapped from [-1, 1] to [0, 1]: its minimiser over a
distribution of targets is the same conditional mean (both losses are proper for the mean),
but it weights examples differently (the gradient in logit space is ``sigmoid(z) - y``, not
``2 (v - t)``) and bounds the output, so it is a different fit, not the paper's. TS-LLM trains
a 7B critic with learning rate 2e-5, cosine decay and 3% warm-up; :class:`CriticConfig`
inherits the toy-scale defaults of :class:`~treesearch.train.lm_common.LMTrainConfig`.

Like the other training modules, this one imports torch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from ..results import Trace
from .advantages import monte_carlo_returns, td_lambda_returns
from .lm_common import (
    LMTrainConfig,
    TrainLog,
    TrainProgress,
    encode_steps,
    run_steps,
    separator_id,
)
from .prm import EncodedRewardExample, collate_reward
from .traces import require_outcomes

__all__ = [
    "CriticConfig",
    "CriticExample",
    "critic_examples",
    "critic_loss",
    "critic_value_fn",
    "critic_verifier",
    "encode_critic_example",
    "merge_traces",
    "predict_values",
    "train_critic",
]

Method = Literal["mc", "td"]
ValuesFn = Callable[[Trace], Sequence[float]]


# ---------------------------------------------------------------------------------- targets
@dataclass(frozen=True)
class CriticExample:
    """One trace's critic targets.

    Attributes:
        prompt: the question (``metadata["prompt"]`` of the trace).
        steps: the step texts as the trace holds them (separators included), without the
            trailing blank end-of-sequence step.
        targets: ``len(steps) + 1`` numbers: the targets of ``s_0 .. s_{K-1}`` (at the
            separator after the prompt and after steps ``1 .. K-1``), then the reward at the
            separator closing the last step.
        problem_id: ``metadata["problem_id"]`` of the trace, if any.
    """

    prompt: str
    steps: tuple[str, ...]
    targets: tuple[float, ...]
    problem_id: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.prompt, str):
            raise TypeError(f"prompt must be a str, not {type(self.prompt).__name__}")
        if isinstance(self.steps, str) or not isinstance(self.steps, Sequence):
            raise TypeError("steps must be a sequence of step texts")
        object.__setattr__(self, "steps", tuple(str(s) for s in self.steps))
        object.__setattr__(self, "targets", tuple(float(t) for t in self.targets))
        if not self.steps:
            raise ValueError("a critic example needs at least one step")
        if len(self.targets) != len(self.steps) + 1:
            raise ValueError(
                f"{len(self.steps)} steps need {len(self.steps) + 1} targets (one per state, "
                f"the question included), not {len(self.targets)}"
            )
        if not all(math.isfinite(t) for t in self.targets):
            raise ValueError(f"targets must be finite, not {self.targets}")


def _describe(trace: Trace, index: int) -> str:
    problem = trace.metadata.get("problem_id")
    return f"trace {index}" + (f" (problem {problem!r})" if problem is not None else "")


def _trace_steps(trace: Trace, index: int) -> tuple[str, ...]:
    """The step texts, without trailing blank (end-of-sequence) steps."""
    texts = [str(step.action) for step in trace.steps]
    while texts and not texts[-1].strip():
        texts.pop()
    if not texts:
        raise ValueError(f"{_describe(trace, index)} has no non-blank step to learn from")
    for k, text in enumerate(texts):
        if not text.strip():
            raise ValueError(
                f"{_describe(trace, index)}: step {k} is blank but not the last step (only the "
                "end-of-sequence step may be blank)"
            )
    return tuple(texts)


def _trace_prompt(trace: Trace, index: int) -> str:
    prompt = trace.metadata.get("prompt")
    if not isinstance(prompt, str) or not prompt:
        raise ValueError(
            f"{_describe(trace, index)} has no metadata['prompt'] (the question text); "
            "traces_from_tree(..., metadata={'prompt': ..., 'problem_id': ...}) records it"
        )
    return prompt


def _reward(trace: Trace, index: int, correct: float, wrong: float) -> float:
    outcome = trace.outcome
    assert outcome is not None  # require_outcomes ran first
    if not 0.0 <= outcome <= 1.0:
        raise ValueError(
            f"{_describe(trace, index)} has outcome {outcome}; outcomes are 1.0 (right) to 0.0 "
            f"(wrong), mapped to rewards {correct} and {wrong} (treesearch.train.traces)"
        )
    return wrong + (correct - wrong) * float(outcome)


def _trace_values(trace: Trace, index: int, count: int) -> list[float]:
    """``V(s_1) .. V(s_count)`` from the search: each step's critic score, else its Q."""
    out = []
    for k in range(count):
        step = trace.steps[k]
        value = step.score if step.score is not None else step.value
        if value is None or not math.isfinite(value):
            raise ValueError(
                f"{_describe(trace, index)}: step {k} has no critic value (score or value) for "
                "TD(lambda) targets; pass values=critic_value_fn(model, tokenizer) to recompute"
            )
        out.append(float(value))
    return out


def _check_real(name: str, value: object, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, not {value!r}")
    number = float(value)
    if not (math.isfinite(number) and low <= number <= high):
        raise ValueError(f"{name} must be in [{low}, {high}], not {value!r}")
    return number


def _trace_key(trace: Trace) -> tuple[Any, ...]:
    return (
        trace.metadata.get("problem_id"),
        trace.metadata.get("prompt"),
        tuple(str(step.action) for step in trace.steps),
    )


def merge_traces(*groups: Iterable[Trace]) -> list[Trace]:
    """The traces of ``groups`` in order, each path once: a trace with the same problem id,
    prompt and step texts as an earlier one is dropped (merging the data of several
    iterations, or the repeated paths of one MCTS-Rollout)."""
    seen: set[tuple[Any, ...]] = set()
    out = []
    for group in groups:
        if isinstance(group, Trace):
            raise TypeError("merge_traces takes lists of traces: merge_traces(old, new)")
        for trace in group:
            if not isinstance(trace, Trace):
                raise TypeError(f"expected Trace records, got {type(trace).__name__}")
            key = _trace_key(trace)
            if key not in seen:
                seen.add(key)
                out.append(trace)
    return out


def critic_examples(
    traces: Sequence[Trace],
    *,
    method: Method = "mc",
    gamma: float = 1.0,
    lam: float = 0.95,
    values: ValuesFn | None = None,
    correct_reward: float = 1.0,
    wrong_reward: float = -1.0,
    dedupe: bool = True,
) -> list[CriticExample]:
    """TS-LLM's critic targets, one :class:`CriticExample` per trace (module docstring).

    Args:
        traces: with outcomes and ``metadata["prompt"]``.
        method: ``"mc"`` (Monte-Carlo returns) or ``"td"`` (TD(lambda) returns).
        gamma: discount (TS-LLM: 1).
        lam: lambda of the TD(lambda) returns (TS-LLM: 0.95).
        values: for ``"td"``: ``values(trace)`` gives ``V(s_0) .. V(s_{K-1})`` (``K`` the
            trace's steps without the trailing blank one), e.g. :func:`critic_value_fn`;
            default: the search's critic scores along the trace.
        correct_reward, wrong_reward: the rewards of outcome 1.0 and 0.0.
        dedupe: drop repeated paths first (:func:`merge_traces`).

    Raises:
        ValueError: a trace without an outcome, prompt or step, an outcome outside [0, 1],
            TD values missing or of the wrong length; each names the trace.
    """
    traces = list(traces)
    require_outcomes(traces, what="TS-LLM critic targets")
    if method not in ("mc", "td"):
        raise ValueError(f"method must be 'mc' or 'td', not {method!r}")
    gamma = _check_real("gamma", gamma, 0.0, 1.0)
    lam = _check_real("lam", lam, 0.0, 1.0)
    correct = _check_real("correct_reward", correct_reward, -math.inf, math.inf)
    wrong = _check_real("wrong_reward", wrong_reward, -math.inf, math.inf)
    if values is not None and not callable(values):
        raise TypeError("values must be a callable values(trace) -> V(s_0) .. V(s_{K-1})")
    seen: set[tuple[Any, ...]] = set()
    out = []
    for index, trace in enumerate(traces):
        if dedupe:
            key = _trace_key(trace)
            if key in seen:
                continue
            seen.add(key)
        prompt = _trace_prompt(trace, index)
        steps = _trace_steps(trace, index)
        count = len(steps)
        rewards = np.zeros(count)
        rewards[-1] = _reward(trace, index, correct, wrong)
        if method == "mc":
            returns = monte_carlo_returns(rewards, gamma=gamma)
        else:
            if values is None:
                # V(s_0) is a placeholder: a lambda-return never uses its own state's value.
                state_values = [0.0, *_trace_values(trace, index, count - 1)]
            else:
                state_values = [float(v) for v in values(trace)]
                if len(state_values) != count:
                    raise ValueError(
                        f"values({_describe(trace, index)}) gave {len(state_values)} values for "
                        f"its {count} states s_0 .. s_{count - 1}"
                    )
            returns = td_lambda_returns(rewards, state_values, gamma=gamma, lam=lam)
        problem = trace.metadata.get("problem_id")
        out.append(
            CriticExample(
                prompt,
                steps,
                (*returns.tolist(), float(rewards[-1])),
                None if problem is None else str(problem),
            )
        )
    return out


# --------------------------------------------------------------------------------- encoding
def _clean_prompt(tokenizer: Any, prompt: str, sep: str) -> str:
    bos = getattr(tokenizer, "bos_token", None)
    if bos:
        prompt = prompt.removeprefix(bos)
    return prompt.removesuffix(sep)


def encode_critic_example(
    tokenizer: Any,
    example: CriticExample,
    *,
    sep_token: str | None = None,
    max_length: int | None = None,
) -> EncodedRewardExample:
    """Token ids of ``prompt <sep> step_1 <sep> ... step_K <sep>`` with the ``K + 1`` targets at
    the separators (the prompt's, then each step's); a trailing separator in the prompt or a
    step text is the one the layout adds, and steps are stripped of surrounding whitespace
    (as :class:`~treesearch.adapters.verifiers.HFPRM` reads them)."""
    if not isinstance(example, CriticExample):
        raise TypeError(f"example must be a CriticExample, not {type(example).__name__}")
    sep, _ = separator_id(tokenizer, sep_token)
    prompt = _clean_prompt(tokenizer, example.prompt, sep)
    steps = [step.removesuffix(sep).strip() for step in example.steps]
    layout = encode_steps(tokenizer, prompt, steps, sep_token=sep)
    if max_length is not None and len(layout.input_ids) > max_length:
        raise ValueError(
            f"the example has {len(layout.input_ids)} tokens, over max_length={max_length}"
        )
    positions = (layout.prompt_length - 1, *layout.separator_positions)
    return EncodedRewardExample(layout.input_ids, positions, example.targets)


# --------------------------------------------------------------------------------- training
@dataclass(frozen=True, kw_only=True)
class CriticConfig(LMTrainConfig):
    """Settings of :func:`train_critic` (and :class:`LMTrainConfig`'s).

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


def _head_outputs(model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The scalar head's raw output at every labelled position of ``batch``."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    if logits.shape[-1] != 1:
        raise ValueError(
            "the critic needs one output per token (AutoModelForTokenClassification with "
            f"num_labels=1, see treesearch.train.prm.value_head_model); the model returns "
            f"{logits.shape[-1]}"
        )
    return logits[batch["rows"], batch["positions"], 0].float()


def critic_loss(model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean squared error over the labelled positions of a batch from
    :func:`treesearch.train.prm.collate_reward` (TS-LLM's ``value_loss``)."""
    return torch.nn.functional.mse_loss(_head_outputs(model, batch), batch["targets"])


def _encode_all(
    tokenizer: Any, examples: Sequence[Any], sep_token: str | None, max_length: int | None
) -> list[EncodedRewardExample]:
    encoded = []
    for i, example in enumerate(examples):
        if isinstance(example, EncodedRewardExample):
            encoded.append(example)
            continue
        if not isinstance(example, CriticExample):
            raise TypeError(
                f"example {i} is a {type(example).__name__}; expected a CriticExample "
                "(critic_examples(traces)) or an EncodedRewardExample"
            )
        try:
            encoded.append(
                encode_critic_example(
                    tokenizer, example, sep_token=sep_token, max_length=max_length
                )
            )
        except ValueError as exc:
            raise ValueError(f"example {i}: {exc}") from None
    if not encoded:
        raise ValueError("no training examples")
    return encoded


def train_critic(
    model: Any,
    tokenizer: Any,
    examples: Sequence[CriticExample | EncodedRewardExample],
    *,
    config: CriticConfig,
    rng: np.random.Generator,
    progress: Callable[[TrainProgress], None] | None = None,
) -> TrainLog:
    """Train the critic in place with MSE at every target position.

    Args:
        model: a one-output token classifier (:func:`treesearch.train.prm.value_head_model`).
        tokenizer: with the step separator and a pad token.
        examples: from :func:`critic_examples` (or already encoded).
        config: optimiser and batching settings.
        rng: the only source of randomness.
        progress: called every ``config.log_every`` steps.
    """
    if not isinstance(config, CriticConfig):
        raise TypeError(f"config must be a CriticConfig, not {type(config).__name__}")
    encoded = _encode_all(tokenizer, examples, config.sep_token, config.max_length)
    pad = getattr(tokenizer, "pad_token_id", None)
    if pad is None:
        raise ValueError("the tokenizer has no pad_token: batches are padded with it")
    model.to(config.device)

    def loss_of(indices: np.ndarray) -> tuple[torch.Tensor, int]:
        batch = collate_reward([encoded[i] for i in indices], int(pad))
        batch = {k: v.to(config.device) for k, v in batch.items()}
        return critic_loss(model, batch), int(batch["attention_mask"].sum())

    return run_steps(model, config, rng, [len(e.input_ids) for e in encoded], loss_of, progress)


def predict_values(
    model: Any,
    tokenizer: Any,
    examples: Sequence[CriticExample | EncodedRewardExample],
    *,
    sep_token: str | None = None,
    batch_size: int = 64,
) -> list[tuple[float, ...]]:
    """The critic's raw values at each example's target positions (``s_0 .. s_K``)."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, not {batch_size!r}")
    encoded = _encode_all(tokenizer, examples, sep_token, None)
    pad = getattr(tokenizer, "pad_token_id", None)
    pad_id = 0 if pad is None else int(pad)
    device = next(model.parameters()).device
    out: list[tuple[float, ...]] = []
    with torch.no_grad():
        for start in range(0, len(encoded), batch_size):
            chunk = encoded[start : start + batch_size]
            batch = {k: v.to(device) for k, v in collate_reward(chunk, pad_id).items()}
            flat = _head_outputs(model, batch).tolist()
            offset = 0
            for example in chunk:
                out.append(tuple(flat[offset : offset + len(example.positions)]))
                offset += len(example.positions)
    return out


def critic_value_fn(
    model: Any, tokenizer: Any, *, sep_token: str | None = None
) -> Callable[[Trace], tuple[float, ...]]:
    """``values(trace)`` for :func:`critic_examples` with ``method="td"``: ``V(s_0) ..
    V(s_{K-1})`` recomputed by the current critic (TS-LLM's ``policy_forward_seq_value``)."""

    def values(trace: Trace) -> tuple[float, ...]:
        steps = _trace_steps(trace, 0)
        placeholder = CriticExample(_trace_prompt(trace, 0), steps, (0.0,) * (len(steps) + 1))
        return predict_values(model, tokenizer, [placeholder], sep_token=sep_token)[0][:-1]

    return values


def critic_verifier(model: Any, tokenizer: Any, **kwargs: Any) -> Any:
    """The critic as a search verifier: :class:`~treesearch.adapters.verifiers.HFPRM` with
    ``prm_preset("value-head", activation="identity")`` and ``aggregation="last"`` (the raw
    value at the last step's separator, the layout :func:`encode_critic_example` trains);
    ``kwargs`` go to ``HFPRM`` (``device``, ``kv_reuse``, ...)."""
    from treesearch.adapters.verifiers import HFPRM, prm_preset

    kwargs.setdefault("aggregation", "last")
    kwargs.setdefault("empty_value", 0.0)  # a state without steps: the middle of [-1, 1]
    return HFPRM(model, tokenizer, preset=prm_preset("value-head", activation="identity"), **kwargs)
