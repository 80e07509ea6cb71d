"""The recipe behind the shipped toy-math checkpoints: a tiny policy, a PRM and an ORM.

Everything is trained from scratch on the toy arithmetic world of
:mod:`treesearch.adapters.toymath` on one CPU core: the policy in about 40 minutes, the reward
models in about an hour (see ``docs/adapters.md`` for measured times):

1. **Policy** (:func:`train_policy`): a tiny ``LlamaForCausalLM`` from a config, trained by
   step-wise SFT (:mod:`treesearch.train.sft`) on correct solutions, with a curriculum: easy
   problems first (a small model learns to copy numbers from the prompt there), then longer and
   larger ones. It stays imperfect on purpose: it makes arithmetic and bookkeeping slips on
   medium and hard problems, which search can fix.
2. **Reward data**: the policy samples solutions to fresh training problems (at two
   temperatures); the exact checker (``toymath.check_solution``) labels every step (1 until the
   first wrong step, then 0), as PRM800K's raters would (Lightman et al., arXiv 2305.20050);
   gold solutions and solutions with slipped results (``toymath.slipped_steps``,
   ``toymath.flawed_steps``) are mixed in.
3. **PRM** (:func:`train_prm_curriculum`): a model of its own, not a copy of the policy, so that
   its mistakes are not the policy's. It learns arithmetic first and the solution format last,
   every stage with the language-model term of :mod:`treesearch.train.prm` (``lm_weight``)
   besides the labels at each ``<sep>`` (read as ``Positive`` / ``Negative``, the ``"seed"``
   preset of :class:`~treesearch.adapters.verifiers.HFPRM`):

   a. ``"steps"``: isolated steps ``a<op>b=c`` with the result right or slipped
      (:func:`toymath.slip_value`), one at a time and then in chains, each judged on its own;
   b. ``"problems"``: whole problems with the prompt, whose steps slip independently, each step
      judged on its own (``StepCheck.correct``): the check moved into the real context;
   c. ``"reward"``: the reward data with the process labels (1 until the first wrong step).

   Labels alone do not teach a small model to check arithmetic, and a checker trained on
   isolated steps alone does not work inside a prompt full of numbers; the stages are there
   because each was measured to be needed (``docs/adapters.md``, "The shipped PRM").
   **ORM**: the policy's weights, with one outcome label at the last ``<sep>``.
4. **Evaluation** on the held-out splits: the policy's greedy accuracy per level; the PRM's
   ProcessBench first-error F1 (:func:`~treesearch.train.prm.processbench_f1`) on sampled
   held-out solutions with exact labels; best-of-N reranking (first sample, majority vote, ORM,
   PRM) against the oracle; and Math-Shepherd Monte-Carlo labels
   (:mod:`treesearch.train.math_shepherd`) against the exact ones.

:func:`run_recipe` does it all and writes the three checkpoints with
:func:`~treesearch.train.lm_common.save_pretrained_atomic`; ``scripts/train_toymath.py`` is its
command line, and ``adapters/checkpoints/toymath/{policy,prm,orm}`` hold the shipped result
(:func:`shipped_checkpoint`). The numbers of a run are in each checkpoint's ``training.json``.

All randomness comes from ``numpy.random.default_rng([seed, phase])`` (and torch generators
seeded from it), so the same seed, torch version and CPU repeat a run; a run killed part way
resumes from the models it had finished (:func:`run_recipe`).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from treesearch.adapters import toymath
from treesearch.adapters.data import PRMExample

__all__ = [
    "CHECKPOINT_NAMES",
    "PRMStage",
    "PolicyStage",
    "Solution",
    "ToyMathRecipe",
    "evaluate_policy",
    "evaluate_prm",
    "load_policy",
    "new_policy_model",
    "new_prm_model",
    "reward_solutions",
    "run_recipe",
    "sample_solutions",
    "shipped_checkpoint",
    "train_policy",
    "train_prm_curriculum",
    "truncate_after_error",
]

_log = logging.getLogger(__name__)

CHECKPOINT_NAMES = ("policy", "prm", "orm")
LEVELS = ("easy", "medium", "hard")


@dataclass(frozen=True, kw_only=True)
class PolicyStage:
    """One SFT stage: problems drawn uniformly from ``mix``, pairs ``(level, num_steps)`` (the
    level's operand sizes with that many operations)."""

    mix: tuple[tuple[str, int], ...]
    num_steps: int
    batch_size: int
    learning_rate: float

    def __post_init__(self) -> None:
        if not self.mix:
            raise ValueError("a stage needs at least one (level, num_steps) pair")
        for level, steps in self.mix:
            if level not in toymath.DIFFICULTIES:
                raise ValueError(f"unknown level {level!r}")
            if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= 64:
                raise ValueError(f"num_steps of a mix entry must be in 1..64, not {steps!r}")


PRM_STAGE_KINDS = ("steps", "problems", "reward")


@dataclass(frozen=True, kw_only=True)
class PRMStage:
    """One stage of the PRM curriculum (:func:`train_prm_curriculum`).

    Attributes:
        kind: ``"steps"`` (isolated arithmetic steps, no prompt), ``"problems"`` (whole problems
            with independently slipped steps) or ``"reward"`` (the reward data).
        mix: for ``"steps"``, pairs ``(level, chain)``: a sequence holds ``chain`` independent
            steps drawn like a mid-problem step of ``level`` (:func:`toymath.random_step`); for
            ``"problems"``, pairs ``(level, num_steps)`` as in :class:`PolicyStage`; unused
            by ``"reward"``.
        num_steps, batch_size, learning_rate, warmup_steps: the optimiser run; ``"steps"`` and
            ``"problems"`` draw ``num_steps * batch_size`` fresh sequences.
        slip_rate: the chance that a step's result is slipped (``"steps"``: each step;
            ``"problems"``: each step and the answer, :func:`toymath.slipped_steps`).
    """

    kind: str
    num_steps: int
    batch_size: int
    learning_rate: float
    warmup_steps: int = 50
    mix: tuple[tuple[str, int], ...] = ()
    slip_rate: float = 0.5

    def __post_init__(self) -> None:
        if self.kind not in PRM_STAGE_KINDS:
            raise ValueError(f"kind must be one of {PRM_STAGE_KINDS}, not {self.kind!r}")
        if self.kind != "reward" and not self.mix:
            raise ValueError(f"a {self.kind!r} stage needs a mix of (level, count) pairs")
        for level, count in self.mix:
            if level not in toymath.DIFFICULTIES:
                raise ValueError(f"unknown level {level!r}")
            if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 64:
                raise ValueError(f"the count of a mix entry must be in 1..64, not {count!r}")
        rate = self.slip_rate
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 1:
            raise ValueError(f"slip_rate must be in [0, 1], not {rate!r}")


def _default_prm_stages() -> tuple[PRMStage, ...]:
    # Measured on the shipped policy's medium-level slips (docs/adapters.md): single steps
    # teach the arithmetic (check accuracy 97% on fresh steps after 6,000 steps), chains teach
    # finding the step to check among several, whole problems move the check into a prompt full
    # of numbers (without this stage the checker is at chance there), and the reward data
    # teaches the process labels.
    return (
        PRMStage(
            kind="steps",
            mix=(("medium", 1),),
            num_steps=6000,
            batch_size=128,
            learning_rate=1e-3,
            warmup_steps=100,
        ),
        PRMStage(
            kind="steps", mix=(("medium", 4),), num_steps=2000, batch_size=64, learning_rate=1e-3
        ),
        PRMStage(
            kind="problems",
            mix=(
                ("medium", 4),
                ("medium", 4),
                ("medium", 3),
                ("medium", 2),
                ("easy", 2),
                ("hard", 6),
            ),
            num_steps=1500,
            batch_size=32,
            learning_rate=5e-4,
            slip_rate=0.3,
        ),
        PRMStage(kind="reward", num_steps=1000, batch_size=32, learning_rate=5e-4),
    )


def _default_reward_mix() -> tuple[tuple[str, int, int, int], ...]:
    # (level, operations, problems, samples): mostly four-step medium problems, where the
    # policy slips and search is measured; a few of every other size so that the PRM sees them.
    return (
        ("medium", 4, 5000, 4),
        ("medium", 3, 800, 2),
        ("medium", 2, 800, 2),
        ("easy", 2, 1000, 2),
        ("hard", 6, 800, 2),
    )


def _default_stages() -> tuple[PolicyStage, ...]:
    # One-operation problems of every size first (copying numbers from the prompt, one lookup,
    # one sum), then longer chains: a tiny model trained on full-length problems from the start
    # learns to copy numbers far more slowly (measured). The later stages favour the medium
    # level: at this budget the hard level's arithmetic stays out of reach either way.
    return (
        PolicyStage(
            mix=(("easy", 1), ("easy", 2), ("medium", 1), ("hard", 1)),
            num_steps=600,
            batch_size=32,
            learning_rate=3e-3,
        ),
        PolicyStage(
            mix=(
                ("easy", 2),
                ("medium", 1),
                ("medium", 2),
                ("medium", 3),
                ("hard", 1),
                ("hard", 2),
            ),
            num_steps=800,
            batch_size=32,
            learning_rate=3e-3,
        ),
        PolicyStage(
            mix=(
                ("easy", 2),
                ("medium", 2),
                ("medium", 3),
                ("medium", 4),
                ("medium", 4),
                ("hard", 2),
                ("hard", 4),
            ),
            num_steps=800,
            batch_size=32,
            learning_rate=2e-3,
        ),
        PolicyStage(
            mix=(("easy", 2), ("medium", 4), ("medium", 4), ("medium", 4), ("hard", 6)),
            num_steps=400,
            batch_size=32,
            learning_rate=1e-3,
        ),
        # A long medium-level stage: after the four stages above the model still gains on
        # medium problems with every few hundred steps (greedy accuracy 9% -> 22% over 1,200
        # more steps, measured), so it is trained until it solves a useful share of them while
        # still slipping on many (search and self-training need both).
        PolicyStage(
            mix=(
                ("easy", 2),
                ("medium", 3),
                ("medium", 4),
                ("medium", 4),
                ("medium", 4),
                ("hard", 2),
            ),
            num_steps=3000,
            batch_size=32,
            learning_rate=1e-3,
        ),
    )


@dataclass(frozen=True, kw_only=True)
class ToyMathRecipe:
    """Every setting of :func:`run_recipe` (frozen).

    Attributes:
        seed: the one seed of the run.
        hidden_size, num_layers, num_heads, intermediate_size: the Llama config.
        initializer_range: the std of the initial weights; 0.06 rather than Llama's 0.02 (at
            width 128 the small default leaves attention nearly uniform for hundreds of steps
            and the model is slow to learn to copy numbers; measured on the first stage).
        policy_stages: the SFT curriculum.
        precision: ``"fp32"``, or ``"bf16"`` autocast (float32 weights; slower than float32
            at this size on a CPU, measured 1.6-1.9x).
        sample_temperature: temperature of the sampled solutions of the evaluation, best-of-N
            and the Math-Shepherd completions.
        reward_mix: the reward data: entries ``(level, operations, problems, samples)``; the
            policy solves ``problems`` fresh training problems of ``level`` with that many
            operations ``samples`` times each, spread over ``reward_temperatures``.
        reward_temperatures: sampling temperatures of the reward data (more than one gives the
            reward models more kinds of slips).
        gold_fraction, slipped_fraction, flawed_fraction: per mix entry, this fraction of
            ``problems`` more fresh problems each gives a gold solution, a solution with one
            slipped result (:func:`toymath.slipped_steps`) and one with a small slip
            (:func:`toymath.flawed_steps`); the policy's own samples are mostly wrong on the
            harder levels, and these keep the labels near balance.
        prm_hidden_size, prm_num_layers, prm_num_heads, prm_intermediate_size: the PRM's own
            Llama config (it is not a copy of the policy).
        prm_stages: the PRM curriculum (:class:`PRMStage`).
        prm_lm_weight: the language-model term of every PRM stage
            (:class:`~treesearch.train.prm.PRMConfig` ``lm_weight``).
        prm_truncate_after_error: the ``"reward"`` stage trains each solution only up to its
            first wrong step, PRM800K's convention (Lightman et al.): a step's label then says
            whether that step is right given the ones before it, and a solution is ranked by
            its weakest step (aggregation ``"min"``). With the labels after an error kept (all
            0) a small PRM learned that late steps are often wrong instead of checking them
            (correct medium solutions scored 0.99, 0.90, 0.78, 0.68, 0.52 step by step;
            measured, ``docs/adapters.md``).
        orm_steps, orm_batch_size, orm_learning_rate: ORM training.
        eval_size: held-out problems per level for greedy accuracy and the ProcessBench F1.
        best_of_n, best_of_problems: best-of-N reranking on ``best_of_problems`` held-out
            problems of the medium and hard levels.
        shepherd_solutions, shepherd_completions: Math-Shepherd labels for this many reward
            solutions with ``N`` completions per step.
    """

    seed: int = 0
    hidden_size: int = 128
    num_layers: int = 3
    num_heads: int = 8
    intermediate_size: int = 384
    initializer_range: float = 0.06
    policy_stages: tuple[PolicyStage, ...] = field(default_factory=_default_stages)
    precision: str = "fp32"
    sample_temperature: float = 0.8
    reward_mix: tuple[tuple[str, int, int, int], ...] = field(default_factory=_default_reward_mix)
    reward_temperatures: tuple[float, ...] = (0.8, 1.0)
    gold_fraction: float = 0.5
    slipped_fraction: float = 0.5
    flawed_fraction: float = 0.25
    prm_hidden_size: int = 128
    prm_num_layers: int = 4
    prm_num_heads: int = 8
    prm_intermediate_size: int = 384
    prm_stages: tuple[PRMStage, ...] = field(default_factory=_default_prm_stages)
    prm_lm_weight: float = 1.0
    prm_truncate_after_error: bool = True
    orm_steps: int = 150
    orm_batch_size: int = 32
    orm_learning_rate: float = 1e-3
    eval_size: int = 200
    best_of_n: int = 8
    best_of_problems: int = 100
    shepherd_solutions: int = 60
    shepherd_completions: int = 8

    def __post_init__(self) -> None:
        not_counts = {
            "policy_stages",
            "prm_stages",
            "reward_mix",
            "reward_temperatures",
            "precision",
            "sample_temperature",
            "initializer_range",
            "prm_lm_weight",
            "prm_truncate_after_error",
        }
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in not_counts or "rate" in f.name or f.name.endswith("_fraction"):
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{f.name} must be a non-negative int, not {value!r}")
        if self.precision not in ("fp32", "bf16"):
            raise ValueError(f"precision must be 'fp32' or 'bf16', not {self.precision!r}")
        if not self.policy_stages:
            raise ValueError("policy_stages is empty")
        if not self.prm_stages or not all(isinstance(s, PRMStage) for s in self.prm_stages):
            raise ValueError("prm_stages must be a non-empty sequence of PRMStage")
        object.__setattr__(self, "prm_stages", tuple(self.prm_stages))
        for name in ("sample_temperature", "prm_lm_weight"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{name} must be a number, not {value!r}")
        if not (math.isfinite(self.sample_temperature) and self.sample_temperature > 0):
            raise ValueError("sample_temperature must be positive")
        if not (math.isfinite(self.prm_lm_weight) and self.prm_lm_weight >= 0):
            raise ValueError(f"prm_lm_weight must be >= 0, not {self.prm_lm_weight!r}")
        if not isinstance(self.prm_truncate_after_error, bool):
            raise ValueError(
                f"prm_truncate_after_error must be True or False, not "
                f"{self.prm_truncate_after_error!r}"
            )
        temperatures = tuple(self.reward_temperatures)
        if not temperatures or not all(
            isinstance(t, int | float) and not isinstance(t, bool) and math.isfinite(t) and t > 0
            for t in temperatures
        ):
            raise ValueError(f"reward_temperatures must be positive numbers, not {temperatures!r}")
        object.__setattr__(self, "reward_temperatures", temperatures)
        mix = []
        for entry in self.reward_mix:
            if isinstance(entry, str) or len(entry) != 4:
                raise ValueError(
                    f"a reward_mix entry is (level, operations, problems, samples), not {entry!r}"
                )
            level, operations, problems, samples = entry
            if level not in toymath.DIFFICULTIES:
                raise ValueError(f"unknown level {level!r} in reward_mix")
            for name, value, low in (
                ("operations", operations, 1),
                ("problems", problems, 0),
                ("samples", samples, 0),
            ):
                if isinstance(value, bool) or not isinstance(value, int) or value < low:
                    raise ValueError(f"reward_mix {name} must be an int >= {low}, not {value!r}")
            mix.append((level, operations, problems, samples))
        object.__setattr__(self, "reward_mix", tuple(mix))
        for name in ("gold_fraction", "slipped_fraction", "flawed_fraction"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not (math.isfinite(value) and value >= 0)
            ):
                raise ValueError(f"{name} must be a non-negative number, not {value!r}")

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["policy_stages"] = [
            {**dataclasses.asdict(s), "mix": [list(m) for m in s.mix]} for s in self.policy_stages
        ]
        data["prm_stages"] = [
            {**dataclasses.asdict(s), "mix": [list(m) for m in s.mix]} for s in self.prm_stages
        ]
        data["reward_mix"] = [list(m) for m in self.reward_mix]
        data["reward_temperatures"] = list(self.reward_temperatures)
        return data


# ------------------------------------------------------------------------------------ policy
def new_policy_model(tokenizer: Any, recipe: ToyMathRecipe) -> Any:
    """A randomly initialised tiny ``LlamaForCausalLM`` (weights drawn under a forked torch RNG
    seeded with ``recipe.seed``)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=recipe.hidden_size,
        intermediate_size=recipe.intermediate_size,
        num_hidden_layers=recipe.num_layers,
        num_attention_heads=recipe.num_heads,
        num_key_value_heads=recipe.num_heads,
        max_position_embeddings=512,
        tie_word_embeddings=False,
        initializer_range=recipe.initializer_range,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.seed)
        model = LlamaForCausalLM(config)
    return model.eval()


def stage_problems(
    stage: PolicyStage, count: int, rng: np.random.Generator
) -> list[toymath.ToyProblem]:
    """``count`` training problems drawn uniformly from the stage's mix."""
    out = []
    for _ in range(count):
        level, steps = stage.mix[int(rng.integers(len(stage.mix)))]
        config = dataclasses.replace(toymath.DIFFICULTIES[level], num_steps=steps)
        out.append(toymath.generate_problem(rng, config))
    return out


def train_policy(
    model: Any,
    tokenizer: Any,
    recipe: ToyMathRecipe,
    rng: np.random.Generator,
    progress: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Run the SFT curriculum on ``model`` (in place); one summary per stage."""
    from .sft import SFTConfig, train_sft

    summaries = []
    for index, stage in enumerate(recipe.policy_stages):
        problems = stage_problems(stage, stage.num_steps * stage.batch_size, rng)
        config = SFTConfig(
            num_steps=stage.num_steps,
            batch_size=stage.batch_size,
            learning_rate=stage.learning_rate,
            warmup_steps=20,
            min_lr_ratio=0.2,
            precision=recipe.precision,  # type: ignore[arg-type]
            log_every=50,
        )

        def report(p: Any, _index: int = index) -> None:
            if progress is not None:
                progress(
                    f"policy stage {_index + 1}: step {p.step}/{p.num_steps} loss {p.loss:.3f}"
                )

        log = train_sft(
            model,
            tokenizer,
            [p.sft_example() for p in problems],
            config=config,
            rng=rng,
            progress=report,
        )
        summaries.append(
            {"stage": index + 1, "final_loss": round(log.final_loss, 4), "seconds": log.seconds}
        )
    return summaries


# --------------------------------------------------------------------------------- solutions
@dataclass(frozen=True)
class Solution:
    """A sampled solution with its exact verdict."""

    problem: toymath.ToyProblem
    steps: tuple[str, ...]
    finished: bool
    check: toymath.SolutionCheck

    @property
    def solved(self) -> bool:
        """Finished, every step right and the answer given."""
        return self.finished and self.check.solved

    @property
    def answer_correct(self) -> bool:
        """Finished with the right final answer (the steps may be wrong)."""
        return self.finished and self.check.answer == self.problem.answer

    @property
    def first_error(self) -> int:
        """ProcessBench's label: the first wrong step, or -1."""
        return -1 if self.check.first_error is None else self.check.first_error


def sample_solutions(
    model: Any,
    tokenizer: Any,
    problems: Sequence[toymath.ToyProblem],
    *,
    samples: int,
    temperature: float,
    rng: np.random.Generator,
    max_new_tokens: int = 200,
) -> list[list[Solution]]:
    """``samples`` solutions per problem (temperature 0: greedy), checked exactly."""
    from .math_shepherd import HFCompleter

    completer = HFCompleter(
        model, tokenizer, max_new_tokens=max_new_tokens, temperature=temperature, batch_size=64
    )
    completions = completer.complete([(p.prompt, ()) for p in problems], samples, rng=rng)
    return [
        [
            Solution(problem, c.steps, c.finished, toymath.check_solution(problem, c.steps))
            for c in per_problem
        ]
        for problem, per_problem in zip(problems, completions, strict=True)
    ]


def evaluate_policy(
    model: Any, tokenizer: Any, *, size: int, rng: np.random.Generator
) -> dict[str, dict[str, Any]]:
    """Greedy accuracy per level on ``toymath.heldout_split(level, size)`` (``accuracy``: every
    step right; ``answer_accuracy``: the final answer right), with the reasons of the first
    errors."""
    out = {}
    for level in LEVELS:
        problems = toymath.heldout_split(level, size)
        solutions = sample_solutions(model, tokenizer, problems, samples=1, temperature=0, rng=rng)
        flat = [s[0] for s in solutions]
        reasons = Counter(
            s.check.steps[s.check.first_error].reason
            for s in flat
            if s.check.first_error is not None
        )
        out[level] = {
            "accuracy": sum(s.solved for s in flat) / len(flat),
            "answer_accuracy": sum(s.answer_correct for s in flat) / len(flat),
            "first_error_reasons": dict(sorted(reasons.items())),
            "problems": len(flat),
        }
    return out


# ------------------------------------------------------------------------------ reward data
def reward_solutions(
    policy: Any, tokenizer: Any, recipe: ToyMathRecipe, rng: np.random.Generator
) -> list[Solution]:
    """The policy's checked samples of :attr:`ToyMathRecipe.reward_mix`, each problem solved
    ``max(1, samples // len(reward_temperatures))`` times at every reward temperature."""
    out: list[Solution] = []
    per_temperature = len(recipe.reward_temperatures)
    for level, operations, problems, samples in recipe.reward_mix:
        if not problems or not samples:
            continue
        config = dataclasses.replace(toymath.DIFFICULTIES[level], num_steps=operations)
        drawn = toymath.generate_problems(rng, config, problems)
        for temperature in recipe.reward_temperatures:
            groups = sample_solutions(
                policy,
                tokenizer,
                drawn,
                samples=max(1, samples // per_temperature),
                temperature=temperature,
                rng=rng,
            )
            out.extend(s for group in groups for s in group)
    return out


def reward_examples(
    solutions: Sequence[Solution],
    rng: np.random.Generator,
    recipe: ToyMathRecipe,
) -> tuple[list[PRMExample], list[Any]]:
    """PRM examples (the finished sampled solutions, and per mix entry gold, one-slip and
    small-slip solutions, exact labels) and ORM examples (the same solutions with their
    outcome)."""
    from .prm import ORMExample

    finished = [s for s in solutions if s.finished and s.steps]
    prm = [toymath.prm_example(s.problem, s.steps) for s in finished]
    orm = [ORMExample(s.problem.prompt, s.steps, float(s.solved)) for s in finished]
    for level, operations, problems, _ in recipe.reward_mix:
        config = dataclasses.replace(toymath.DIFFICULTIES[level], num_steps=operations)
        made: list[tuple[toymath.ToyProblem, tuple[str, ...]]] = []
        for problem in toymath.generate_problems(
            rng, config, round(recipe.gold_fraction * problems)
        ):
            made.append((problem, problem.steps))
        count = round(recipe.slipped_fraction * problems)
        for problem in toymath.generate_problems(rng, config, count):
            made.append((problem, toymath.slipped_steps(problem, rng)))
        for problem in toymath.generate_problems(
            rng, config, round(recipe.flawed_fraction * problems)
        ):
            made.append((problem, toymath.flawed_steps(problem, rng)[0]))
        for problem, steps in made:
            prm.append(toymath.prm_example(problem, steps))
            orm.append(ORMExample(problem.prompt, steps, float(steps == problem.steps)))
    return prm, orm


# ------------------------------------------------------------------------------------- PRM
def new_prm_model(tokenizer: Any, recipe: ToyMathRecipe) -> Any:
    """A randomly initialised ``LlamaForCausalLM`` of the PRM's own size (weights drawn under a
    forked torch RNG seeded with ``recipe.seed + 1``)."""
    shaped = dataclasses.replace(
        recipe,
        seed=recipe.seed + 1,
        hidden_size=recipe.prm_hidden_size,
        num_layers=recipe.prm_num_layers,
        num_heads=recipe.prm_num_heads,
        intermediate_size=recipe.prm_intermediate_size,
    )
    return new_policy_model(tokenizer, shaped)


def _step_examples(stage: PRMStage, tokenizer: Any, rng: np.random.Generator) -> list[Any]:
    """``num_steps * batch_size`` sequences ``<bos> a<op>b=c <sep> ...`` of ``chain``
    independent steps, each slipped with ``slip_rate`` and labelled on its own; the
    language-model term covers the result and the separator of the right ones."""
    from .lm_common import separator_id
    from .prm import EncodedRewardExample

    _, sep = separator_id(tokenizer, None)
    bos = tokenizer.bos_token_id
    if bos is None:
        raise ValueError("the tokenizer has no bos_token: step sequences start with it")
    vocab = tokenizer.get_vocab()
    ids = {c: vocab[c] for c in toymath.CHARACTERS if c in vocab}
    out = []
    for _ in range(stage.num_steps * stage.batch_size):
        level, chain = stage.mix[int(rng.integers(len(stage.mix)))]
        config = toymath.DIFFICULTIES[level]
        sequence, positions, targets, starts = [bos], [], [], []
        for _ in range(chain):
            value, operation = toymath.random_step(rng, config)
            result = operation.apply(value)
            if result is None:  # unreachable: random_step divides exactly
                raise RuntimeError(f"inexact step {value}{operation}")
            good = rng.random() >= stage.slip_rate
            if not good:
                result = toymath.slip_value(result, rng)
            sequence.extend(ids[c] for c in f"{value}{operation.op}{operation.operand}=")
            starts.append(len(sequence))
            sequence.extend(ids[c] for c in str(result))
            positions.append(len(sequence))
            sequence.append(sep)
            targets.append(float(good))
        out.append(
            EncodedRewardExample(tuple(sequence), tuple(positions), tuple(targets), tuple(starts))
        )
    return out


def _problem_examples(stage: PRMStage, rng: np.random.Generator) -> list[PRMExample]:
    """``num_steps * batch_size`` problems of the mix with independently slipped steps
    (:func:`toymath.slipped_steps`), each step labelled on its own (``StepCheck.correct``)."""
    out = []
    for _ in range(stage.num_steps * stage.batch_size):
        level, operations = stage.mix[int(rng.integers(len(stage.mix)))]
        config = dataclasses.replace(toymath.DIFFICULTIES[level], num_steps=operations)
        problem = toymath.generate_problem(rng, config)
        steps = toymath.slipped_steps(problem, rng, rate=stage.slip_rate)
        check = toymath.check_solution(problem, steps)
        out.append(PRMExample(problem.prompt, steps, tuple(float(c.correct) for c in check.steps)))
    return out


def truncate_after_error(example: PRMExample) -> PRMExample:
    """``example`` up to and including its first step labelled below 0.5 (all of it when every
    step is good): the labelled path of PRM800K, which ends at the first wrong step."""
    for index, label in enumerate(example.labels):
        if label < 0.5:
            return PRMExample(
                example.prompt, example.steps[: index + 1], example.labels[: index + 1]
            )
    return example


def train_prm_curriculum(
    model: Any,
    tokenizer: Any,
    recipe: ToyMathRecipe,
    reward_data: Sequence[PRMExample],
    rng: np.random.Generator,
    progress: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Train the PRM (in place) through ``recipe.prm_stages``; one summary per stage."""
    from .prm import PRMConfig, train_prm

    summaries = []
    for index, stage in enumerate(recipe.prm_stages):
        if stage.kind == "steps":
            examples: Sequence[Any] = _step_examples(stage, tokenizer, rng)
        elif stage.kind == "problems":
            examples = _problem_examples(stage, rng)
        elif recipe.prm_truncate_after_error:
            examples = [truncate_after_error(e) for e in reward_data]
        else:
            examples = reward_data
        config = PRMConfig(
            num_steps=stage.num_steps,
            batch_size=stage.batch_size,
            learning_rate=stage.learning_rate,
            warmup_steps=stage.warmup_steps,
            lm_weight=recipe.prm_lm_weight,
            precision=recipe.precision,  # type: ignore[arg-type]
            log_every=50,
        )

        def report(p: Any, _index: int = index, _kind: str = stage.kind) -> None:
            if progress is not None:
                progress(
                    f"prm stage {_index + 1} ({_kind}): step {p.step}/{p.num_steps} "
                    f"loss {p.loss:.3f}"
                )

        log = train_prm(model, tokenizer, examples, config=config, rng=rng, progress=report)
        summaries.append(
            {
                "stage": index + 1,
                "kind": stage.kind,
                "examples": len(examples),
                "final_loss": round(log.final_loss, 4),
                "seconds": round(log.seconds, 1),
            }
        )
    return summaries


# ------------------------------------------------------------------------------ evaluation
def evaluate_prm(prm: Any, tokenizer: Any, solutions: Sequence[Solution]) -> dict[str, Any]:
    """ProcessBench first-error F1 of an LM-head PRM on finished solutions with exact labels."""
    from .prm import first_error_prediction, processbench_f1, score_steps

    finished = [s for s in solutions if s.finished and s.steps]
    scores = score_steps(prm, tokenizer, [(s.problem.prompt, s.steps) for s in finished])
    labels = [s.first_error for s in finished]
    predictions = [first_error_prediction(ss) for ss in scores]
    result = processbench_f1(labels, predictions)
    step_right = sum(
        (score >= 0.5) == (label == 1)
        for s, ss in zip(finished, scores, strict=True)
        for score, label in zip(ss, s.check.labels, strict=True)
    )
    return {
        "f1": result.f1,
        "acc_erroneous": result.acc_erroneous,
        "acc_correct": result.acc_correct,
        "num_erroneous": result.num_erroneous,
        "num_correct": result.num_correct,
        "step_accuracy": step_right / max(1, sum(len(s.steps) for s in finished)),
    }


def best_of_n(
    prm: Any,
    orm: Any,
    tokenizer: Any,
    solutions: Sequence[Sequence[Solution]],
) -> dict[str, float]:
    """Final-answer accuracy of picking one of N sampled solutions per problem: the first
    sample, majority vote over answers, the ORM's best, the PRM's best (min and last
    aggregation) and the oracle (any sample with the right answer)."""
    from .prm import score_steps

    flat = [s for group in solutions for s in group]
    pairs = [(s.problem.prompt, s.steps or ("?",)) for s in flat]
    prm_scores = score_steps(prm, tokenizer, pairs)
    orm_scores = score_steps(orm, tokenizer, pairs, last_only=True)
    picks: dict[str, int] = Counter()
    offset = 0
    for group in solutions:
        n = len(group)
        steps_scores = prm_scores[offset : offset + n]
        outcome = [s[0] for s in orm_scores[offset : offset + n]]
        offset += n
        usable = [s.finished and bool(s.steps) for s in group]

        def best(values: Sequence[float], _usable: list[bool] = usable) -> int:
            return max(range(len(values)), key=lambda i: (_usable[i], values[i]))

        answers = [s.check.answer if s.finished else None for s in group]
        votes = Counter(a for a in answers if a is not None)
        majority = votes.most_common(1)[0][0] if votes else None
        picks["first_sample"] += group[0].answer_correct
        picks["majority_vote"] += majority is not None and majority == group[0].problem.answer
        picks["orm"] += group[best(outcome)].answer_correct
        picks["prm_min"] += group[best([min(s) for s in steps_scores])].answer_correct
        picks["prm_last"] += group[best([s[-1] for s in steps_scores])].answer_correct
        picks["oracle"] += any(s.answer_correct for s in group)
    return {name: picks[name] / len(solutions) for name in sorted(picks)}


def shepherd_report(
    policy: Any,
    tokenizer: Any,
    solutions: Sequence[Solution],
    recipe: ToyMathRecipe,
    rng: np.random.Generator,
) -> dict[str, Any]:
    """Math-Shepherd labels with the policy as completer, compared with the exact labels."""
    from .math_shepherd import HFCompleter, SolutionToLabel, compare_with_exact, monte_carlo_labels

    chosen = [s for s in solutions if s.finished and s.steps][: recipe.shepherd_solutions]
    if not chosen:
        return {}
    completer = HFCompleter(
        policy, tokenizer, max_new_tokens=200, temperature=recipe.sample_temperature
    )
    to_label = [
        SolutionToLabel(s.problem.prompt, s.steps, str(s.problem.answer), True) for s in chosen
    ]
    start = time.perf_counter()
    estimates = monte_carlo_labels(
        to_label, completer, num_completions=recipe.shepherd_completions, rng=rng
    )
    comparison = compare_with_exact(estimates, [s.check.labels for s in chosen])
    return {
        **dataclasses.asdict(comparison),
        "solutions": len(chosen),
        "completions_sampled": completer.sequences_sampled,
        "seconds": time.perf_counter() - start,
    }


# ------------------------------------------------------------------------------------ recipe
# The phases of a run, each with a generator of its own (``default_rng([seed, index])``), so
# that a run resumed after a kill draws what an uninterrupted one would have drawn.
PHASES = (
    "policy",
    "policy_evaluation",
    "reward_data",
    "prm",
    "orm",
    "reward_evaluation",
    "math_shepherd",
)
PROGRESS_FOLDER = ".progress"


def _phase_rng(recipe: ToyMathRecipe, phase: str) -> np.random.Generator:
    return np.random.default_rng([recipe.seed, PHASES.index(phase)])


def _finished_phase(
    progress_dir: Path, name: str, identity: dict[str, Any]
) -> dict[str, Any] | None:
    """The report of a model saved under ``progress_dir/name`` by an earlier run with the same
    ``identity`` (recipe and starting policy), or ``None`` when there is none; ``ValueError``
    when it is another run's."""
    info_path = progress_dir / name / "training.json"
    if not info_path.exists():
        return None
    info = json.loads(info_path.read_text(encoding="utf-8"))
    if any(info.get(key) != value for key, value in identity.items()):
        raise ValueError(
            f"{progress_dir} holds a model of another recipe or starting policy; finish that "
            "run, use another output folder, or pass resume=False (--restart) to start over"
        )
    return info


def run_recipe(
    out_dir: str | Path,
    recipe: ToyMathRecipe | None = None,
    *,
    command: str = "",
    progress: Callable[[str], None] | None = None,
    policy_from: str | Path | None = None,
    resume: bool = True,
) -> dict[str, Any]:
    """Train the policy, PRM and ORM, evaluate them, and save the three checkpoints under
    ``out_dir`` (``policy``, ``prm``, ``orm``; ``adapters/checkpoints/toymath`` is where
    :mod:`treesearch.adapters.toymath_search` finds the shipped ones). Returns the report
    that each checkpoint's ``training.json`` also holds.

    ``policy_from``: a saved policy checkpoint folder (``from_pretrained``) to start from
    instead of training one; the policy stages are skipped, the rest of the recipe (reward
    data, PRM, ORM, evaluation) runs as usual, and the policy is saved again unchanged. This
    is how the reward models are retrained without the policy's 40 minutes.

    Nothing is lost to a kill: each trained model is saved atomically under
    ``out_dir/.progress`` as soon as it is done, and a later call with the same recipe
    (``resume=True``, the default) loads it instead of training it again. Every phase draws
    from a generator of its own, so a resumed run repeats what the uninterrupted one would
    have done (on the same CPU and torch). ``resume=False`` discards that progress; a
    ``.progress`` folder of a different recipe is refused (``ValueError``). The folder is
    removed once the three checkpoints are saved."""
    import shutil

    import torch

    from .lm_common import save_pretrained_atomic
    from .prm import PRMConfig, train_orm

    recipe = ToyMathRecipe() if recipe is None else recipe
    say = progress if progress is not None else (lambda message: _log.info("%s", message))
    out = Path(out_dir)
    progress_dir = out / PROGRESS_FOLDER
    if not resume and progress_dir.exists():
        shutil.rmtree(progress_dir)
    tokenizer = toymath.build_tokenizer()
    identity = {
        "recipe": _json_safe(recipe.to_dict()),
        "policy_from": None if policy_from is None else str(policy_from),
    }
    times: dict[str, float] = {}
    report: dict[str, Any] = {
        "recipe": recipe.to_dict(),
        "command": command,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }

    def timed(name: str, start: float) -> None:
        times[name] = round(time.perf_counter() - start, 1)
        say(f"{name}: {times[name]} s")

    def keep(name: str, model: Any, keys: Sequence[str]) -> None:
        saved = {**identity, **{k: _json_safe(report[k]) for k in keys}}
        save_pretrained_atomic(progress_dir / name, model, tokenizer, training=saved)

    def resumed(name: str, keys: Sequence[str]) -> Any | None:
        info = _finished_phase(progress_dir, name, identity)
        if info is None:
            return None
        report.update({k: info[k] for k in keys})
        report.setdefault("resumed", []).append(name)
        say(f"{name}: resumed from {progress_dir / name}")
        return load_policy(progress_dir / name, tokenizer)

    start = time.perf_counter()
    if policy_from is not None:
        policy = load_policy(policy_from, tokenizer)
        report["policy_from"] = str(policy_from)
        previous = Path(policy_from) / "training.json"
        if previous.exists():
            report["policy_stages"] = json.loads(previous.read_text()).get("policy_stages")
    else:
        policy = resumed("policy", ("policy_stages",))
        if policy is None:
            policy = new_policy_model(tokenizer, recipe)
            report["policy_stages"] = train_policy(
                policy, tokenizer, recipe, _phase_rng(recipe, "policy"), say
            )
            keep("policy", policy, ("policy_stages",))
    report["policy_parameters"] = sum(p.numel() for p in policy.parameters())
    timed("policy_training", start)

    start = time.perf_counter()
    report["policy_greedy"] = evaluate_policy(
        policy, tokenizer, size=recipe.eval_size, rng=_phase_rng(recipe, "policy_evaluation")
    )
    timed("policy_evaluation", start)
    say(f"greedy accuracy: { {k: v['accuracy'] for k, v in report['policy_greedy'].items()} }")

    start = time.perf_counter()
    rng = _phase_rng(recipe, "reward_data")
    sampled = reward_solutions(policy, tokenizer, recipe, rng)
    prm_data, orm_data = reward_examples(sampled, rng, recipe)
    report["reward_data"] = {
        "sampled_solutions": len(sampled),
        "sampled_solved": sum(s.solved for s in sampled),
        "prm_examples": len(prm_data),
        "prm_negative_steps": sum(y == 0 for e in prm_data for y in e.labels),
        "prm_positive_steps": sum(y == 1 for e in prm_data for y in e.labels),
        "orm_examples": len(orm_data),
        "orm_positive": sum(e.label == 1 for e in orm_data),
    }
    timed("reward_data", start)

    start = time.perf_counter()
    prm_keys = ("prm_parameters", "prm_stages", "prm_final_loss")
    prm = resumed("prm", prm_keys)
    if prm is None:
        prm = new_prm_model(tokenizer, recipe)
        report["prm_parameters"] = sum(p.numel() for p in prm.parameters())
        report["prm_stages"] = train_prm_curriculum(
            prm, tokenizer, recipe, prm_data, _phase_rng(recipe, "prm"), say
        )
        report["prm_final_loss"] = report["prm_stages"][-1]["final_loss"]
        keep("prm", prm, prm_keys)
    timed("prm_training", start)

    start = time.perf_counter()
    orm = resumed("orm", ("orm_final_loss",))
    if orm is None:
        orm = copy.deepcopy(policy)
        orm_config = PRMConfig(
            num_steps=recipe.orm_steps,
            batch_size=recipe.orm_batch_size,
            learning_rate=recipe.orm_learning_rate,
            warmup_steps=20,
            precision=recipe.precision,  # type: ignore[arg-type]
            log_every=50,
        )
        orm_log = train_orm(
            orm,
            tokenizer,
            orm_data,
            config=orm_config,
            rng=_phase_rng(recipe, "orm"),
            progress=lambda p: say(f"orm: step {p.step}/{p.num_steps} loss {p.loss:.3f}"),
        )
        report["orm_final_loss"] = round(orm_log.final_loss, 4)
        keep("orm", orm, ("orm_final_loss",))
    timed("orm_training", start)

    start = time.perf_counter()
    rng = _phase_rng(recipe, "reward_evaluation")
    processbench: dict[str, Any] = {}
    heldout: list[Solution] = []
    for level in LEVELS:
        groups = sample_solutions(
            policy,
            tokenizer,
            toymath.heldout_split(level, recipe.eval_size),
            samples=1,
            temperature=recipe.sample_temperature,
            rng=rng,
        )
        solutions = [g[0] for g in groups]
        heldout.extend(solutions)
        processbench[level] = evaluate_prm(prm, tokenizer, solutions)
    processbench["all"] = evaluate_prm(prm, tokenizer, heldout)
    report["prm_processbench"] = processbench
    say(f"PRM ProcessBench F1: { {k: round(v['f1'], 3) for k, v in processbench.items()} }")
    report["best_of_n"] = {}
    for level in ("medium", "hard"):
        groups = sample_solutions(
            policy,
            tokenizer,
            toymath.heldout_split(level, recipe.best_of_problems),
            samples=recipe.best_of_n,
            temperature=recipe.sample_temperature,
            rng=rng,
        )
        report["best_of_n"][level] = best_of_n(prm, orm, tokenizer, groups)
    say(f"best-of-{recipe.best_of_n}: {report['best_of_n']}")
    timed("reward_evaluation", start)

    start = time.perf_counter()
    report["math_shepherd_vs_exact"] = shepherd_report(
        policy,
        tokenizer,
        sampled[:: max(1, len(sampled) // 500)],
        recipe,
        _phase_rng(recipe, "math_shepherd"),
    )
    timed("math_shepherd", start)
    report["seconds"] = times
    report["total_seconds"] = round(sum(times.values()), 1)
    report = _json_safe(report)

    for name, model in zip(CHECKPOINT_NAMES, (policy, prm, orm), strict=True):
        save_pretrained_atomic(out / name, model, tokenizer, training={"model": name, **report})
    shutil.rmtree(progress_dir, ignore_errors=True)
    say(f"saved {', '.join(str(out / n) for n in CHECKPOINT_NAMES)}")
    return report


def load_policy(folder: str | Path, tokenizer: Any) -> Any:
    """A saved toy-math policy (``from_pretrained``), checked against the toy tokenizer."""
    from transformers import AutoModelForCausalLM

    from .lm_common import quiet_transformers

    path = Path(folder)
    if not (path / "config.json").exists():
        raise FileNotFoundError(f"{path} is not a saved checkpoint (no config.json)")
    with quiet_transformers():
        model = AutoModelForCausalLM.from_pretrained(path)
    if model.config.vocab_size != len(tokenizer):
        raise ValueError(
            f"{path} has a vocabulary of {model.config.vocab_size} tokens, the toy-math "
            f"tokenizer {len(tokenizer)}: not a toy-math policy"
        )
    return model


def _json_safe(value: Any) -> Any:
    """``value`` with NaN and infinities as ``None`` (strict JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def shipped_checkpoint(name: str) -> Path:
    """The folder of a toy-math checkpoint shipped with the package: ``"policy"``, ``"prm"``
    or ``"orm"`` (load it with ``from_pretrained``)."""
    if name not in CHECKPOINT_NAMES:
        raise ValueError(f"unknown checkpoint {name!r}; shipped: {CHECKPOINT_NAMES}")
    import treesearch.adapters

    folder = Path(treesearch.adapters.__file__).parent / "checkpoints" / "toymath" / name
    if not (folder / "model.safetensors").exists():
        raise FileNotFoundError(
            f"{folder} is missing; reinstall treesearch or rebuild it with "
            "python scripts/train_toymath.py"
        )
    return folder
