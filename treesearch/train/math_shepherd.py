"""Math-Shepherd: step labels from Monte-Carlo completions (Wang et al., arXiv 2312.08935).

For a solution ``s_1 .. s_K`` of a problem with a known answer, each prefix ``s_1 .. s_k`` is
handed to a *completer* (usually the policy itself) that samples ``N`` continuations to a final
answer. Step ``k`` gets

* the **hard estimate** ``1`` if any continuation reaches the right answer, else ``0``;
* the **soft estimate**: the fraction of continuations that reach it.

A finished solution's last prefix needs no completion: its label is whether its own answer is
right. The labels feed :func:`treesearch.train.prm.train_prm` (soft labels with binary
cross-entropy). They are noisy: a wrong step can still be completed to the right answer by luck,
and a right step can fail when the completer is weak (``docs/algorithms.md`` section 2;
:func:`compare_with_exact` measures both against exact labels, such as
``treesearch.adapters.toymath.check_solution``'s).

:class:`HFCompleter` samples continuations from a causal LM in the step-wise format
``prompt <sep> step <sep> ... <eos>`` with :func:`treesearch.train.sampling.sample_continuations`
(batched, KV cache, an explicit ``torch.Generator`` seeded from the ``numpy`` generator).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from treesearch.adapters.answers import answers_match, extract_answer

from .lm_common import encode_steps, separator_id
from .sampling import sample_continuations

__all__ = [
    "Completer",
    "Completion",
    "HFCompleter",
    "LabelComparison",
    "MonteCarloLabels",
    "SolutionToLabel",
    "compare_with_exact",
    "last_step_answer",
    "monte_carlo_labels",
]


@dataclass(frozen=True)
class Completion:
    """A sampled continuation: the steps it wrote and whether it finished (end of sequence)."""

    steps: tuple[str, ...]
    finished: bool


class Completer(Protocol):
    """Samples continuations of solution prefixes."""

    def complete(
        self,
        prefixes: Sequence[tuple[str, tuple[str, ...]]],
        num_samples: int,
        *,
        rng: np.random.Generator,
    ) -> list[list[Completion]]:
        """``num_samples`` continuations of each ``(prompt, steps so far)``."""
        ...


def last_step_answer(steps: Sequence[str]) -> str | None:
    """The answer written in the last step as "The answer is N" (``None`` if none)."""
    return extract_answer(steps[-1], style="answer_is") if steps else None


@dataclass(frozen=True)
class SolutionToLabel:
    """A solution to label: its problem, steps, the gold answer, and whether it is finished
    (its last step gives the final answer, so its last label needs no completion)."""

    prompt: str
    steps: tuple[str, ...]
    answer: str
    finished: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.prompt, str) or not isinstance(self.answer, str):
            raise TypeError("prompt and answer must be str")
        if isinstance(self.steps, str) or not isinstance(self.steps, Sequence):
            raise TypeError("steps must be a sequence of strings")
        object.__setattr__(self, "steps", tuple(self.steps))
        if not self.steps:
            raise ValueError("a solution to label needs at least one step")
        for k, step in enumerate(self.steps):
            if not isinstance(step, str) or not step.strip():
                raise ValueError(f"step {k} is empty or not a str: {step!r}")
        if not isinstance(self.finished, bool):
            raise TypeError(f"finished must be True or False, not {self.finished!r}")


@dataclass(frozen=True)
class MonteCarloLabels:
    """Per step: the hard and soft estimates and the number of successful completions.

    ``sampled[k]`` is False where no completion was needed (a finished solution's last step,
    judged by its own answer, or a step after the first hard 0 with ``stop_at_first_failure``).
    """

    hard: tuple[int, ...]
    soft: tuple[float, ...]
    successes: tuple[int, ...]
    sampled: tuple[bool, ...]
    num_completions: int


def monte_carlo_labels(
    solutions: Sequence[SolutionToLabel],
    completer: Completer,
    *,
    num_completions: int,
    rng: np.random.Generator,
    final_answer: Callable[[Sequence[str]], str | None] = last_step_answer,
    stop_at_first_failure: bool = False,
) -> list[MonteCarloLabels]:
    """Math-Shepherd's hard and soft estimates for every step of every solution.

    All prefixes that need completions go to the completer in one call (it batches them).

    Args:
        solutions: what to label.
        completer: samples the continuations.
        num_completions: ``N`` per prefix.
        rng: the only source of randomness (passed to the completer).
        final_answer: reads the final answer of a finished solution's steps.
        stop_at_first_failure: label the steps after the first step no completion could finish
            0 without sampling (the prefix is already lost; saves completions when the labels
            are used up to the first error only, as Lightman et al. supervise).
    """
    if isinstance(num_completions, bool) or not isinstance(num_completions, int):
        raise TypeError(f"num_completions must be an int, not {num_completions!r}")
    if num_completions < 1:
        raise ValueError(f"num_completions must be at least 1, not {num_completions}")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, not {type(rng).__name__}")
    for i, solution in enumerate(solutions):
        if not isinstance(solution, SolutionToLabel):
            raise TypeError(
                f"solution {i} must be a SolutionToLabel, not {type(solution).__name__}"
            )
    successes = [[0] * len(s.steps) for s in solutions]
    how = [["open"] * len(s.steps) for s in solutions]  # then "judged", "sampled" or "skipped"
    for i, s in enumerate(solutions):
        if s.finished:
            right = answers_match(final_answer(s.steps), s.answer)
            successes[i][-1] = num_completions if right else 0
            how[i][-1] = "judged"
    # With stop_at_first_failure the prefixes go in rounds by depth, so that a step no
    # completion could finish stops its solution's later prefixes; otherwise one call.
    depth = max((len(s.steps) for s in solutions), default=0)
    rounds = [[k] for k in range(depth)] if stop_at_first_failure else [list(range(depth))]
    for ks in rounds:
        wanted: list[tuple[int, int]] = []
        for i, s in enumerate(solutions):
            for k in ks:
                if k >= len(s.steps) or how[i][k] != "open":
                    continue
                if stop_at_first_failure and any(successes[i][j] == 0 for j in range(k)):
                    how[i][k] = "skipped"
                    continue
                wanted.append((i, k))
        if not wanted:
            continue
        prefixes = [(solutions[i].prompt, solutions[i].steps[: k + 1]) for i, k in wanted]
        completions = completer.complete(prefixes, num_completions, rng=rng)
        if len(completions) != len(prefixes):
            raise ValueError(
                f"the completer returned {len(completions)} lists for {len(prefixes)} prefixes"
            )
        for (i, k), samples in zip(wanted, completions, strict=True):
            if len(samples) != num_completions:
                raise ValueError(
                    f"the completer returned {len(samples)} completions, not {num_completions}"
                )
            prefix = solutions[i].steps[: k + 1]
            successes[i][k] = sum(
                sample.finished
                and answers_match(final_answer((*prefix, *sample.steps)), solutions[i].answer)
                for sample in samples
            )
            how[i][k] = "sampled"
    return [
        MonteCarloLabels(
            hard=tuple(int(c > 0) for c in counts),
            soft=tuple(c / num_completions for c in counts),
            successes=tuple(counts),
            sampled=tuple(h == "sampled" for h in kinds),
            num_completions=num_completions,
        )
        for counts, kinds in zip(successes, how, strict=True)
    ]


class HFCompleter:
    """Samples continuations from a causal LM in the step-wise format.

    The input of a prefix is ``prompt SEP step_1 SEP ... step_k SEP`` (as
    :func:`treesearch.train.lm_common.encode_steps` builds it, the layout of SFT training); a
    continuation runs to the end-of-sequence token or ``max_new_tokens``, and its steps are the
    pieces between separators (an unfinished last piece is dropped).

    Args:
        model: the completer (a causal LM; usually the policy).
        tokenizer: its tokenizer, with a separator, EOS and pad token.
        max_new_tokens: a continuation is cut (unfinished) after this many tokens.
        temperature, top_p: sampling settings (Math-Shepherd samples at temperature 1 or
            close to it; 0 is greedy decoding, which makes every completion the same).
        batch_size: sequences per forward pass.
        sep_token: the separator (default: the tokenizer's ``sep_token``).
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        max_new_tokens: int = 256,
        temperature: float = 1.0,
        top_p: float = 1.0,
        batch_size: int = 64,
        sep_token: str | None = None,
    ) -> None:
        self.sep_text, self.sep_id = separator_id(tokenizer, sep_token)
        eos = getattr(tokenizer, "eos_token_id", None)
        if eos is None:
            raise ValueError("the tokenizer has no eos_token: continuations could not end")
        pad = getattr(tokenizer, "pad_token_id", None)
        self.model = model
        self.tokenizer = tokenizer
        self.eos_id = int(eos)
        self.pad_id = int(pad) if pad is not None else self.eos_id
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int):
            raise TypeError(f"max_new_tokens must be an int, not {max_new_tokens!r}")
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, not {max_new_tokens}")
        if isinstance(temperature, bool) or not isinstance(temperature, int | float):
            raise TypeError(f"temperature must be a number, not {temperature!r}")
        if not (math.isfinite(temperature) and temperature >= 0):
            raise ValueError(f"temperature must be finite and >= 0, not {temperature}")
        self.max_new_tokens = max_new_tokens
        self.temperature = float(temperature)
        self.top_p = float(top_p)
        self.batch_size = batch_size
        self.sequences_sampled = 0

    def prefix_ids(self, prompt: str, steps: Sequence[str]) -> tuple[int, ...]:
        """The token ids a continuation of ``(prompt, steps)`` starts from."""
        if steps:
            return encode_steps(self.tokenizer, prompt, steps, sep_token=self.sep_text).input_ids
        ids = self.tokenizer(prompt, add_special_tokens=True)["input_ids"]
        return (*ids, self.sep_id)

    def parse(self, ids: Sequence[int]) -> Completion:
        """The steps of a continuation's token ids."""
        finished = bool(ids) and ids[-1] == self.eos_id
        body = list(ids[:-1] if finished else ids)
        steps = []
        piece: list[int] = []
        for token in body:
            if token == self.sep_id:
                text = self.tokenizer.decode(piece, skip_special_tokens=False)
                if text.strip():
                    steps.append(text)
                piece = []
            else:
                piece.append(token)
        # An unfinished last piece is not a step; a finished one without its separator is
        # kept (a model that ends right after writing its answer).
        if piece and finished:
            text = self.tokenizer.decode(piece, skip_special_tokens=False)
            if text.strip():
                steps.append(text)
        return Completion(tuple(steps), finished)

    def complete(
        self,
        prefixes: Sequence[tuple[str, tuple[str, ...]]],
        num_samples: int,
        *,
        rng: np.random.Generator,
    ) -> list[list[Completion]]:
        import torch

        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng must be a numpy.random.Generator, not {type(rng).__name__}")
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
            raise ValueError(f"num_samples must be an int >= 1, not {num_samples!r}")
        inputs = [self.prefix_ids(prompt, steps) for prompt, steps in prefixes]
        rows = [ids for ids in inputs for _ in range(num_samples)]
        generator = torch.Generator(device=next(self.model.parameters()).device)
        generator.manual_seed(int(rng.integers(0, 2**63 - 1)))
        outputs = sample_continuations(
            self.model,
            rows,
            max_new_tokens=self.max_new_tokens,
            stop_ids=[self.eos_id],
            pad_id=self.pad_id,
            temperature=self.temperature,
            top_p=self.top_p,
            generator=generator,
            batch_size=self.batch_size,
        )
        self.sequences_sampled += len(rows)
        parsed = [self.parse(ids) for ids in outputs]
        return [parsed[i * num_samples : (i + 1) * num_samples] for i in range(len(prefixes))]


@dataclass(frozen=True)
class LabelComparison:
    """Monte-Carlo labels against exact ones, over all steps.

    Attributes:
        steps: steps compared.
        hard_accuracy: fraction of steps whose hard estimate equals the exact label.
        false_positive_rate: among exactly wrong steps, the fraction the hard estimate calls
            good (a lucky completion).
        false_negative_rate: among exactly good steps, the fraction it calls bad (every
            completion failed).
        soft_mean_abs_error: mean ``|soft - exact|``.
    """

    steps: int
    hard_accuracy: float
    false_positive_rate: float
    false_negative_rate: float
    soft_mean_abs_error: float


def compare_with_exact(
    estimates: Sequence[MonteCarloLabels], exact: Sequence[Sequence[int]]
) -> LabelComparison:
    """How Monte-Carlo labels agree with exact labels of the same steps."""
    if len(estimates) != len(exact):
        raise ValueError(f"{len(estimates)} estimates but {len(exact)} exact label lists")
    pairs: list[tuple[int, float, int]] = []
    for n, (estimate, labels) in enumerate(zip(estimates, exact, strict=True)):
        if len(estimate.hard) != len(labels):
            raise ValueError(
                f"solution {n}: {len(estimate.hard)} estimated labels but {len(labels)} exact"
            )
        pairs.extend(zip(estimate.hard, estimate.soft, (int(y) for y in labels), strict=True))
    if not pairs:
        raise ValueError("no steps to compare")
    bad = [(h, y) for h, _, y in pairs if y == 0]
    good = [(h, y) for h, _, y in pairs if y == 1]
    return LabelComparison(
        steps=len(pairs),
        hard_accuracy=sum(h == y for h, _, y in pairs) / len(pairs),
        false_positive_rate=sum(h == 1 for h, _ in bad) / len(bad) if bad else math.nan,
        false_negative_rate=sum(h == 0 for h, _ in good) / len(good) if good else math.nan,
        soft_mean_abs_error=sum(abs(s - y) for _, s, y in pairs) / len(pairs),
    )
