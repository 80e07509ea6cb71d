"""ReST-MCTS*: self-training of a policy and a process value model from MCTS* search traces.

Paper: Zhang, Zhoubian, Hu, Yue, Dong & Tang, "ReST-MCTS*: LLM Self-Training via Process Reward
Guided Tree Search" (arXiv 2406.03816). Code: THUDM/ReST-MCTS (``MCTS/base.py``
``get_full_value_samples_vm`` / ``get_all_value_samples_vm``, ``MCTS/task.py``
``verify_end_nodes``, ``self_train/``). ``docs/algorithms.md`` section 3.

The pieces, each usable on its own:

* :func:`value_targets`: the value of every node of one problem's search tree from the verified
  end leaves (reasoning distance and the weighted-reward recursion below);
* :func:`value_examples`: those values as per-step soft labels
  (:class:`~treesearch.adapters.data.PRMExample`, trainable by
  :func:`treesearch.train.prm.train_prm`); :func:`policy_sft_examples`: the verified-correct
  solutions as SFT data (:class:`~treesearch.adapters.data.SFTExample`);
* :class:`ReSTMCTSConfig` and :func:`run_rest_mcts`: the self-training loop on the toy
  arithmetic world (:mod:`treesearch.adapters.toymath`), resumable phase by phase.

**Value targets.** End leaves carry outcomes (1.0: the final answer is right, 0.0: wrong; a
leaf counts as correct when its outcome is at least 0.5). For every node, ``he`` says whether
some end leaf below it (or the node itself) is correct, and the reasoning distance ``m`` is

    m(correct end leaf) = 1,   m(node) = 1 + min over children with a known m,

so ``m`` counts the node's own step: **this code's m is the paper's m_k + 1**, where the paper's
``m_k`` is the number of steps still needed after step k (a correct leaf has ``m_k = 0``).
Nodes with no correct end below them (failed branches) take ``m`` from their nearest ancestor
with a known distance. From ``v_0 = 0`` at the root, top-down:

    v_k = max(0, v_{k-1} + (1 - v_{k-1}) * r_k / m),   r_k = +1 if he else -1

(the paper's ``v_k = max(v_{k-1} + w_k, 0)`` with ``w_k = (1 - v_{k-1}) / (m_k + 1) * r_k``).
Along a correct path of K steps ``v_k = k / K``; a wrong step whose parent has ``v = 0.25`` and
``m = 4`` gets ``max(0, 0.25 - 0.75 / 4) = 0.0625``. A problem with no correct end leaf gives
no value data at all (not all-zero targets). Targets are clamped to ``[low, high]``.

``target="he"`` gives the reference's PRM mode instead (``get_full_value_samples_prm``): the
label of a node is ``he`` itself (1.0 or 0.0), a Math-Shepherd-style hard estimate, for
problems with at least one correct leaf.

**The loop** (:func:`run_rest_mcts`). Starting from the shipped toy policy pi_0 and PRM V_0
(:func:`~treesearch.train.toymath_recipe.shipped_checkpoint`), for i = 1..T:

1. ``search``: MCTS* (:class:`~treesearch.search.mcts_star.MCTSStar`, generation mode) with
   pi_{i-1} proposing steps and V_{i-1} valuing them (an
   :class:`~treesearch.adapters.verifiers.HFPRM`, ``"seed"`` preset) on fresh training problems
   with gold answers; every end leaf is checked exactly (``outcome_check``); the traces go
   to ``iteration-i/traces.jsonl``.
2. ``targets``: D_pi (correct end leaves) and D_V (``he`` labels by default, or v_k; see
   :class:`ReSTMCTSConfig` ``value_target``) from the traces of
   iterations 1..i (accumulated), written to ``iteration-i/policy_data.jsonl`` and
   ``value_data.jsonl``.
3. ``train-value``: V_i = V_0 trained on D_V (``iteration-i/value/``).
4. ``train-policy``: pi_i = pi_0 fine-tuned on D_pi (``iteration-i/policy/``).
5. ``evaluate``: held-out greedy accuracy of pi_i per level, and V_i's ProcessBench first-error
   F1 on a fixed set of held-out solutions sampled once by pi_0 (``iteration-i/eval.json``).

Iteration 0 evaluates pi_0 and V_0 the same way. Every phase writes its output atomically and
then records itself in ``out_dir/state.json`` (:class:`~treesearch.train.loop.RunState`), so a
rerun skips finished phases; each phase draws from
:func:`~treesearch.train.loop.phase_rng` ``(seed, iteration, phase)``, and models are read back
from disk at every phase, so a resumed run equals an uninterrupted one. ``out_dir/report.json``
is rewritten after every phase.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from treesearch.adapters.data import PRMExample, SFTExample

from ..interfaces import Action
from ..results import Trace, read_traces, write_traces
from .atomic import atomic_write_json, atomic_write_jsonl, read_json, read_jsonl
from .loop import PhasedLoop, ProgressFn, config_dict, phase_rng
from .traces import TraceTree, group_by_problem, require_outcomes, with_outcomes

__all__ = [
    "ReSTMCTSConfig",
    "ValueTargets",
    "drop_blank_steps",
    "policy_sft_examples",
    "run_rest_mcts",
    "value_examples",
    "value_targets",
]

Target = Literal["value", "he"]
_TARGETS = ("value", "he")
LOOP = "rest-mcts"


def _is_correct(outcome: float | None) -> bool:
    return outcome is not None and outcome >= 0.5


def _check_bounds(low: object, high: object) -> tuple[float, float]:
    for name, value in (("low", low), ("high", high)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{name} must be a number, not {value!r}")
        if not math.isfinite(value):
            raise ValueError(f"{name} must be finite, not {value!r}")
    if not low < high:  # type: ignore[operator]
        raise ValueError(f"low ({low}) must be below high ({high})")
    return float(low), float(high)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ value targets
@dataclass(frozen=True)
class ValueTargets:
    """The value targets of one problem's trace tree (tuples indexed by node).

    Attributes:
        solvable: some end leaf is correct; otherwise there are no targets.
        reaches_correct: ``he`` per node: a correct end leaf is at or below it.
        distance: the reasoning distance ``m`` per node in this code's convention (the node's
            own step counted; the paper's ``m_k`` is ``m - 1``), inherited from the nearest
            ancestor with a known distance on failed branches; ``None`` when unsolvable.
        values: ``v_k`` per node, clamped to ``[low, high]``; ``None`` at the root (whose
            ``v_0 = 0`` only starts the recursion) and everywhere when unsolvable.
    """

    solvable: bool
    reaches_correct: tuple[bool, ...]
    distance: tuple[int | None, ...]
    values: tuple[float | None, ...]

    def paper_distance(self, node: int) -> int | None:
        """The paper's ``m_k`` of ``node``: steps still needed after it (``m - 1``)."""
        m = self.distance[node]
        return None if m is None else m - 1

    def samples(self) -> list[tuple[int, float]]:
        """``(node, v)`` for every node with a target, in node order."""
        return [(i, v) for i, v in enumerate(self.values) if v is not None]


def value_targets(tree: TraceTree, *, low: float = 0.0, high: float = 1.0) -> ValueTargets:
    """ReST-MCTS* value targets of every node of ``tree`` (see the module docstring).

    Raises:
        ValueError: a trace of ``tree`` has no outcome.
    """
    if not isinstance(tree, TraceTree):
        raise TypeError(f"tree must be a treesearch.train.traces.TraceTree, not {tree!r:.80}")
    low, high = _check_bounds(low, high)
    require_outcomes(tree.traces, what="ReST-MCTS* value targets")
    n = tree.num_nodes
    order = tree.postorder()  # children before parents
    distance: list[int | None] = [None] * n
    for node in order:
        best = 1 if tree.leaf_traces[node] and _is_correct(tree.outcome[node]) else None
        for child in tree.children[node]:
            m = distance[child]
            if m is not None and (best is None or m + 1 < best):
                best = m + 1
        distance[node] = best
    reaches = tuple(m is not None for m in distance)
    if distance[0] is None:
        return ValueTargets(False, reaches, (None,) * n, (None,) * n)
    raw = [0.0] * n
    values: list[float | None] = [None] * n
    for node in reversed(order):  # parents before children
        if node == 0:
            continue
        parent = tree.parent[node]
        if distance[node] is None:
            distance[node] = distance[parent]  # failed branch: the nearest known ancestor's m
        m = distance[node]
        assert m is not None  # the root's is known, so every node inherits one
        r = 1.0 if reaches[node] else -1.0
        v_parent = raw[parent]
        raw[node] = max(0.0, v_parent + (1.0 - v_parent) * r / m)
        values[node] = min(high, max(low, raw[node]))
    return ValueTargets(True, reaches, tuple(distance), tuple(values))


# --------------------------------------------------------------------------- data builders
def _step_content(action: Action, separator: str | None) -> str:
    text = str(action)
    if separator:
        text = text.removesuffix(separator)
    return text


def drop_blank_steps(traces: Iterable[Trace], *, separator: str | None = None) -> list[Trace]:
    """The traces without steps whose text (less a trailing ``separator``) is blank.

    A reasoning policy ends a solution with a step holding only end-of-sequence (text ``""``);
    dropping it makes the answer step the end leaf, so a correct path's last step gets the
    value 1 and the distance counts reasoning steps only.
    """
    out = []
    for index, trace in enumerate(traces):
        if not isinstance(trace, Trace):
            raise TypeError(f"trace {index} is a {type(trace).__name__}, not a Trace")
        steps = tuple(s for s in trace.steps if _step_content(s.action, separator).strip())
        out.append(
            trace if len(steps) == len(trace.steps) else dataclasses.replace(trace, steps=steps)
        )
    return out


def _trees(items: Iterable[Trace | TraceTree]) -> list[TraceTree]:
    """TraceTrees as given, and loose traces grouped by ``metadata["problem_id"]``."""
    trees: list[TraceTree] = []
    loose: list[Trace] = []
    for index, item in enumerate(items):
        if isinstance(item, TraceTree):
            trees.append(item)
        elif isinstance(item, Trace):
            loose.append(item)
        else:
            raise TypeError(f"item {index} is a {type(item).__name__}, not a Trace or TraceTree")
    trees.extend(TraceTree.from_traces(group) for group in group_by_problem(loose).values())
    return trees


def _prompt(tree: TraceTree) -> str:
    if tree.prompt is None:
        raise ValueError(
            f"the traces of problem {tree.problem_id!r} have no metadata['prompt'] (the question "
            "text the examples start from)"
        )
    return tree.prompt


def value_examples(
    items: Iterable[Trace | TraceTree],
    *,
    separator: str | None = None,
    target: Target = "value",
    low: float = 0.0,
    high: float = 1.0,
) -> list[PRMExample]:
    """D_V: soft-labelled step sequences for :func:`treesearch.train.prm.train_prm`.

    For every solvable problem (some correct end leaf), one example per node where a trace
    ends: the prompt, the steps from the root to that node (their text less ``separator``;
    blank steps and their labels left out), and each step's target (``v_k`` by default,
    ``he`` with ``target="he"``). Every node of the tree lies on such a path, so every node
    gets its target; nodes shared by several paths are seen once per path.

    Args:
        items: :class:`~treesearch.train.traces.TraceTree` objects, or traces (grouped by
            ``metadata["problem_id"]``); every trace needs an outcome and
            ``metadata["prompt"]``.
        separator: the step separator to strip from each step's text.
        target: ``"value"`` (ReST-MCTS*'s v_k) or ``"he"`` (the reference's PRM mode).
        low, high: the clamp of ``"value"`` targets.

    Raises:
        ValueError: a trace without an outcome or a prompt.
    """
    if target not in _TARGETS:
        raise ValueError(f"target must be one of {_TARGETS}, not {target!r}")
    low, high = _check_bounds(low, high)
    out: list[PRMExample] = []
    for tree in _trees(items):
        targets = value_targets(tree, low=low, high=high)
        if not targets.solvable:
            continue
        prompt = _prompt(tree)
        for end in tree.ends():
            steps: list[str] = []
            labels: list[float] = []
            for node in tree.path(end)[1:]:
                content = _step_content(tree.action[node], separator)
                if not content.strip():
                    continue
                steps.append(content)
                if target == "he":
                    labels.append(1.0 if targets.reaches_correct[node] else 0.0)
                else:
                    value = targets.values[node]
                    assert value is not None  # every non-root node of a solvable tree has one
                    labels.append(value)
            if steps:
                out.append(PRMExample(prompt, tuple(steps), tuple(labels)))
    return out


def policy_sft_examples(
    items: Iterable[Trace | TraceTree],
    *,
    separator: str | None = None,
    min_score: float | None = None,
) -> list[SFTExample]:
    """D_pi: the verified-correct solutions (outcome >= 0.5) as SFT examples, deduplicated.

    Args:
        items: traces or :class:`~treesearch.train.traces.TraceTree` objects (their traces);
            every trace needs an outcome and, when correct, ``metadata["prompt"]``.
        separator: the step separator to strip from each step's text (blank steps, such as
            the end-of-sequence step, are left out; SFT adds the end of sequence itself).
        min_score: keep only solutions whose last step the value model scored at least this
            (``TraceStep.score``; the reference filters its policy data at 0.2). ``None``: no
            filter.

    Raises:
        ValueError: a trace without an outcome, or a correct one without a prompt.
    """
    if min_score is not None and (
        isinstance(min_score, bool)
        or not isinstance(min_score, (int, float))
        or not math.isfinite(min_score)
    ):
        raise ValueError(f"min_score must be a finite number or None, not {min_score!r}")
    traces: list[Trace] = []
    for index, item in enumerate(items):
        if isinstance(item, TraceTree):
            traces.extend(item.traces)
        elif isinstance(item, Trace):
            traces.append(item)
        else:
            raise TypeError(f"item {index} is a {type(item).__name__}, not a Trace or TraceTree")
    require_outcomes(traces, what="ReST-MCTS* policy data")
    out: list[SFTExample] = []
    seen: set[tuple[str, tuple[str, ...]]] = set()
    for index, trace in enumerate(traces):
        if not _is_correct(trace.outcome):
            continue
        if min_score is not None:
            last = trace.steps[-1].score if trace.steps else None
            if last is None or last < min_score:
                continue
        prompt = trace.metadata.get("prompt")
        if not isinstance(prompt, str):
            raise ValueError(f"correct trace {index} has no metadata['prompt'] (a str)")
        steps = tuple(
            c for c in (_step_content(s.action, separator) for s in trace.steps) if c.strip()
        )
        if not steps or (prompt, steps) in seen:
            continue
        seen.add((prompt, steps))
        out.append(SFTExample(prompt, steps, trace.answer or ""))
    return out


# ------------------------------------------------------------------------------------ config
_LEVELS = ("easy", "medium", "hard")
_ROLL_POLICIES = ("greedy", "random")
_OUTCOME_CHECKS = ("solved", "answer")


def _check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, not {value}")


def _check_real(name: str, value: object, low: float, high: float, *, open_low: bool) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, not {type(value).__name__} {value!r}")
    if not math.isfinite(value) or not low <= value <= high or (open_low and value == low):
        bound = "(" if open_low else "["
        raise ValueError(f"{name} must be in {bound}{low}, {high}], not {value!r}")


@dataclass(frozen=True, kw_only=True)
class ReSTMCTSConfig:
    """Every setting of :func:`run_rest_mcts` (frozen, checked).

    The defaults run two iterations in 11 to 19 minutes on one core of a shared 2-CPU
    machine; they are the settings of the measured run in ``docs/training.md``.

    Attributes:
        seed: the one seed of the run (every phase's generator derives from it).
        iterations: self-training iterations T (the paper reports two).
        levels: where the training problems come from: toy-math levels (``"easy"``,
            ``"medium"``, ``"hard"``), or a level with another number of operations
            (``"medium:2"``: medium-sized numbers, two operations). The shipped policy solves
            about half of the medium problems greedily and two thirds with MCTS*, so medium
            problems are where self-training has something to add; easy ones keep what it
            already does well.
        problems_per_level: fresh training problems per level and iteration.
        search_iterations: MCTS* iterations per problem (the reference's self-training
            setting, 50). A path ends at its answer step (``The answer is N``, the reference's
            "answer is" check), at end-of-sequence, or at the step limit.
        branch, c, inf_bonus, roll_forward_steps, roll_branch, roll_policy, alpha: MCTS*
            settings (:class:`~treesearch.search.mcts_star.MCTSStar`); the defaults are the
            reference's self-training ones (c 0.5, bonus 0.9, one rollout step).
        end_gate: MCTS*'s value gate, ``None`` by default: the starting verifier is a PRM
            whose score is the probability that the steps so far are right, about 1 after any
            correct step, so a gate would end every path at its first good step (the
            reference's PRM mode has no gate either). Solutions end at end-of-sequence or at
            the step limit.
        temperature: sampling temperature of the policy in the search (the paper's 0.7).
        outcome_check: how an end leaf is verified: ``"solved"`` (the toy world's exact
            checker: every step right and the right answer; default) or ``"answer"`` (the
            final answer matches the gold one, as the paper checks MATH answers). With
            ``"answer"``, a solution that slips and still lands on the right number counts as
            correct, so wrong steps get ``he = 1`` and positive value targets (measured on the
            first iteration of a default run: 15 of 174 labelled nodes).
        max_step_tokens: a step is cut after this many tokens.
        value_target: ``"he"`` (default: 1 when a correct end leaf lies at or below the
            node, else 0; the reference's PRM mode, ``get_full_value_samples_prm``) or
            ``"value"`` (ReST-MCTS*'s v_k, :func:`value_targets`; the reference's value-model
            mode). V_0 is a PRM, read as "the probability that the steps so far are right",
            and the evaluation is ProcessBench's first-error F1, which calls a step wrong when
            its score is below 0.5. ``"he"`` keeps that meaning. ``"value"`` turns the PRM
            into a progress value (``k / K`` along a correct K-step path), whose early correct
            steps score below 0.5 by design, so its first-error F1 falls however good it is;
            use it with a value gate (``end_gate``) from the second iteration on.
        value_low, value_high: the clamp of the value targets.
        min_policy_score: keep only correct solutions whose last step V_{i-1} scored at least
            this (``None``: all correct solutions).
        sft_epochs, sft_max_steps, sft_batch_size, sft_learning_rate: policy SFT; it runs
            ``min(sft_max_steps, ceil(sft_epochs * examples / sft_batch_size))`` steps, from
            pi_0 on the data of iterations 1..i. The policy already fits its own correct
            solutions (loss about 0.005), so AdamW's normalised steps are mostly noise at a
            high rate: 3e-4 lowered medium greedy accuracy from 0.51 to 0.43 on the first
            iteration's data, 1e-4 with batches of 32 raised it (measured).
        value_epochs, value_max_steps, value_batch_size, value_learning_rate: value-model
            training, likewise from V_0.
        eval_size: held-out problems per level (all three levels) for greedy accuracy (the
            easy level has about 400 distinct held-out problems).
        prm_eval_size: held-out problems per level whose solutions, sampled once by pi_0 at
            ``eval_temperature``, measure the PRM's first-error F1.
        eval_temperature: see ``prm_eval_size``.
        policy_start, value_start: folders of pi_0 and V_0 (``None``: the shipped toy-math
            policy and PRM).
        device: where the models run.
    """

    seed: int = 0
    iterations: int = 2
    levels: tuple[str, ...] = ("easy", "medium")
    problems_per_level: int = 200
    search_iterations: int = 50
    branch: int = 3
    c: float = 0.5
    end_gate: float | None = None
    inf_bonus: float = 0.9
    roll_forward_steps: int = 1
    roll_branch: int = 1
    roll_policy: str = "greedy"
    alpha: float = 0.5
    temperature: float = 0.7
    max_step_tokens: int = 24
    outcome_check: str = "solved"
    value_target: str = "he"
    value_low: float = 0.0
    value_high: float = 1.0
    min_policy_score: float | None = None
    sft_epochs: float = 3.0
    sft_max_steps: int = 300
    sft_batch_size: int = 32
    sft_learning_rate: float = 1e-4
    value_epochs: float = 3.0
    value_max_steps: int = 300
    value_batch_size: int = 16
    value_learning_rate: float = 3e-4
    eval_size: int = 400
    prm_eval_size: int = 100
    eval_temperature: float = 0.8
    policy_start: str | None = None
    value_start: str | None = None
    device: str = "cpu"

    def __post_init__(self) -> None:
        _check_int("seed", self.seed, 0)
        for name in ("iterations", "problems_per_level", "search_iterations", "branch"):
            _check_int(name, getattr(self, name), 1)
        for name in ("roll_branch", "max_step_tokens", "eval_size", "prm_eval_size"):
            _check_int(name, getattr(self, name), 1)
        for name in ("sft_max_steps", "sft_batch_size", "value_max_steps", "value_batch_size"):
            _check_int(name, getattr(self, name), 1)
        _check_int("roll_forward_steps", self.roll_forward_steps, 0)
        if self.eval_size > 1000 or self.prm_eval_size > 1000:
            raise ValueError("eval_size and prm_eval_size must be at most 1000 (held-out splits)")
        levels = self.levels
        if isinstance(levels, str) or not isinstance(levels, tuple) or not levels:
            raise TypeError(f"levels must be a non-empty tuple of level names, not {levels!r}")
        for level in levels:
            _problem_config(level)
        if len(set(levels)) != len(levels):
            raise ValueError(f"levels repeat a level: {levels!r}")
        _check_real("c", self.c, 0.0, math.inf, open_low=False)
        _check_real("inf_bonus", self.inf_bonus, 0.0, math.inf, open_low=False)
        _check_real("alpha", self.alpha, 0.0, 1.0, open_low=False)
        _check_real("temperature", self.temperature, 0.0, 100.0, open_low=True)
        _check_real("eval_temperature", self.eval_temperature, 0.0, 100.0, open_low=True)
        if self.roll_policy not in _ROLL_POLICIES:
            raise ValueError(
                f"roll_policy must be one of {_ROLL_POLICIES}, not {self.roll_policy!r}"
            )
        if self.outcome_check not in _OUTCOME_CHECKS:
            raise ValueError(
                f"outcome_check must be one of {_OUTCOME_CHECKS}, not {self.outcome_check!r}"
            )
        if self.value_target not in _TARGETS:
            raise ValueError(f"value_target must be one of {_TARGETS}, not {self.value_target!r}")
        _check_bounds(self.value_low, self.value_high)
        if self.end_gate is not None:
            _check_real("end_gate", self.end_gate, 0.0, 1.0, open_low=False)
        if self.min_policy_score is not None:
            _check_real("min_policy_score", self.min_policy_score, 0.0, 1.0, open_low=False)
        for name in ("sft_epochs", "value_epochs"):
            _check_real(name, getattr(self, name), 0.0, 1000.0, open_low=True)
        for name in ("sft_learning_rate", "value_learning_rate"):
            _check_real(name, getattr(self, name), 0.0, 10.0, open_low=True)
        for name in ("policy_start", "value_start"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise TypeError(f"{name} must be a folder path (str) or None, not {value!r}")
        if not isinstance(self.device, str) or not self.device:
            raise TypeError(f"device must be a device name such as 'cpu', not {self.device!r}")

    def to_dict(self) -> dict[str, Any]:
        return config_dict(self)


def _problem_config(level: object) -> Any:
    """The :class:`~treesearch.adapters.toymath.ToyMathConfig` of ``"easy"`` or ``"medium:2"``."""
    if not isinstance(level, str):
        raise TypeError(f"a level must be a str such as 'easy' or 'medium:2', not {level!r}")
    name, colon, count = level.partition(":")
    if name not in _LEVELS:
        raise ValueError(f"unknown level {level!r}; expected one of {_LEVELS}, or e.g. 'medium:2'")
    from treesearch.adapters import toymath

    config = toymath.DIFFICULTIES[name]
    if colon:
        if not count.isdigit() or not 1 <= int(count) <= 64:
            raise ValueError(f"level {level!r}: the number of operations must be 1..64")
        config = dataclasses.replace(config, num_steps=int(count))
    return config


# ------------------------------------------------------------------------------------ loop
def _steps_for(examples: int, epochs: float, batch_size: int, max_steps: int) -> int:
    return max(1, min(max_steps, math.ceil(epochs * examples / batch_size)))


class _Loop(PhasedLoop[ReSTMCTSConfig]):
    """One run of :func:`run_rest_mcts`: paths, models and phases."""

    loop = LOOP
    PHASES = ("search", "targets", "train-value", "train-policy", "evaluate")

    def __init__(self, out_dir: Path, config: ReSTMCTSConfig, progress: ProgressFn | None):
        from treesearch.adapters import toymath

        from .toymath_recipe import shipped_checkpoint

        self.tokenizer = toymath.build_tokenizer()
        self.sep = str(self.tokenizer.sep_token)
        self.policy_start = Path(config.policy_start or shipped_checkpoint("policy"))
        self.value_start = Path(config.value_start or shipped_checkpoint("prm"))
        super().__init__(out_dir, config, progress)

    # ------------------------------------------------------------------ helpers
    def policy_path(self, iteration: int) -> Path:
        return self.policy_start if iteration == 0 else self.folder(iteration) / "policy"

    def value_path(self, iteration: int) -> Path:
        return self.value_start if iteration == 0 else self.folder(iteration) / "value"

    def save(self, path: Path, model: Any, info: dict[str, Any]) -> None:
        from .lm_common import save_pretrained_atomic

        save_pretrained_atomic(path, model, self.tokenizer, training={"loop": LOOP, **info})

    # ------------------------------------------------------------------ evaluation
    def eval_data(self, iteration: int) -> dict[str, Any]:
        from treesearch.adapters import toymath

        from .toymath_recipe import sample_solutions

        rng = phase_rng(self.cfg.seed, 0, "eval-data")
        policy = self.load(self.policy_start)
        data: dict[str, list[dict[str, Any]]] = {}
        for level in _LEVELS:
            groups = sample_solutions(
                policy,
                self.tokenizer,
                toymath.heldout_split(level, self.cfg.prm_eval_size),
                samples=1,
                temperature=self.cfg.eval_temperature,
                rng=rng,
            )
            data[level] = [
                {"index": j, "steps": list(g[0].steps), "finished": g[0].finished}
                for j, g in enumerate(groups)
            ]
        atomic_write_json(self.out / "eval_solutions.json", data)
        return {"solutions": {level: len(rows) for level, rows in data.items()}}

    def eval_solutions(self) -> dict[str, list[Any]]:
        from treesearch.adapters import toymath

        from .toymath_recipe import Solution

        data = read_json(self.out / "eval_solutions.json")
        out: dict[str, list[Any]] = {}
        for level, rows in data.items():
            problems = toymath.heldout_split(level, self.cfg.prm_eval_size)
            out[level] = [
                Solution(
                    problems[row["index"]],
                    tuple(row["steps"]),
                    bool(row["finished"]),
                    toymath.check_solution(problems[row["index"]], row["steps"]),
                )
                for row in rows
            ]
        return out

    def evaluate(self, iteration: int) -> dict[str, Any]:
        from .toymath_recipe import evaluate_policy, evaluate_prm

        rng = phase_rng(self.cfg.seed, iteration, "evaluate")
        policy = self.load(self.policy_path(iteration))
        greedy = evaluate_policy(policy, self.tokenizer, size=self.cfg.eval_size, rng=rng)
        self.say(iteration, "evaluate", 1, 2, "greedy accuracy measured")
        prm = self.load(self.value_path(iteration))
        solutions = self.eval_solutions()
        prm_eval = {
            level: evaluate_prm(prm, self.tokenizer, rows) for level, rows in solutions.items()
        }
        prm_eval["all"] = evaluate_prm(
            prm, self.tokenizer, [s for rows in solutions.values() for s in rows]
        )
        result = {"greedy": greedy, "prm": _json_safe(prm_eval)}
        atomic_write_json(self.folder(iteration) / "eval.json", result)
        return result

    # ------------------------------------------------------------------ search
    def search(self, iteration: int) -> dict[str, Any]:
        from treesearch import Budget, MCTSStar
        from treesearch.adapters import toymath
        from treesearch.adapters.toymath_search import ScalingConfig, ToyMathSearcher, final_answer

        cfg = self.cfg
        rng = phase_rng(cfg.seed, iteration, "search")
        searcher = ToyMathSearcher(
            self.load(self.policy_path(iteration - 1)),
            self.load(self.value_path(iteration - 1)),
            self.tokenizer,
            config=ScalingConfig(
                temperature=cfg.temperature, max_step_tokens=cfg.max_step_tokens, device=cfg.device
            ),
        )
        search = MCTSStar.for_self_training(
            searcher.policy(temperature=cfg.temperature, num_candidates=1),
            searcher.prm,
            iterations=cfg.search_iterations,
            branch=cfg.branch,
            c=cfg.c,
            end_gate=cfg.end_gate,
            inf_bonus=cfg.inf_bonus,
            roll_forward_steps=cfg.roll_forward_steps,
            roll_branch=cfg.roll_branch,
            roll_policy=cfg.roll_policy,
            alpha=cfg.alpha,
            # The reference's "answer is" check: a solution ends with its answer step.
            is_end=lambda state: final_answer(state) is not None,
            answer_fn=final_answer,
        )
        problems = [
            (level, problem)
            for level in cfg.levels
            for problem in toymath.generate_problems(
                rng, _problem_config(level), cfg.problems_per_level
            )
        ]
        traces: list[Trace] = []
        stats = {
            level: {"problems": 0, "solved": 0, "end_leaves": 0, "correct_leaves": 0, "tokens": 0}
            for level in cfg.levels
        }
        for j, (level, problem) in enumerate(problems):
            result = search.search(
                searcher.root(problem), Budget(simulations=cfg.search_iterations), rng=rng
            )
            gold = str(problem.answer)
            meta = {
                "problem_id": f"{iteration}-{j}",
                "prompt": problem.prompt,
                "level": level,
                "gold": gold,
                "iteration": iteration,
            }
            found = with_outcomes(
                [dataclasses.replace(t, metadata={**t.metadata, **meta}) for t in result.traces],
                _outcome_check(problem, cfg.outcome_check, self.sep),
            )
            traces.extend(found)
            correct = sum(_is_correct(t.outcome) for t in found)
            row = stats[level]
            row["problems"] += 1
            row["solved"] += correct > 0
            row["end_leaves"] += len(found)
            row["correct_leaves"] += correct
            row["tokens"] += int(result.usage.tokens)
            self.say(iteration, "search", j + 1, len(problems), f"{level}: {correct} correct")
        self.folder(iteration).mkdir(parents=True, exist_ok=True)
        write_traces(self.folder(iteration) / "traces.jsonl", traces)
        return {"levels": stats, "traces": len(traces)}

    # ------------------------------------------------------------------ data
    def targets(self, iteration: int) -> dict[str, Any]:
        traces: list[Trace] = []
        for k in range(1, iteration + 1):
            traces.extend(read_traces(self.folder(k) / "traces.jsonl"))
        clean = drop_blank_steps(traces, separator=self.sep)
        trees = [TraceTree.from_traces(group) for group in group_by_problem(clean).values()]
        d_pi = policy_sft_examples(trees, separator=self.sep, min_score=self.cfg.min_policy_score)
        d_v = value_examples(
            trees,
            separator=self.sep,
            target=self.cfg.value_target,  # type: ignore[arg-type]
            low=self.cfg.value_low,
            high=self.cfg.value_high,
        )
        folder = self.folder(iteration)
        atomic_write_jsonl(
            folder / "policy_data.jsonl",
            ({"prompt": e.prompt, "steps": list(e.steps), "answer": e.answer} for e in d_pi),
            sort_keys=True,
        )
        atomic_write_jsonl(
            folder / "value_data.jsonl",
            ({"prompt": e.prompt, "steps": list(e.steps), "labels": list(e.labels)} for e in d_v),
            sort_keys=True,
        )
        solvable = sum(value_targets(t).solvable for t in trees)
        labels = [y for e in d_v for y in e.labels]
        return {
            "problems": len(trees),
            "solvable_problems": solvable,
            "policy_examples": len(d_pi),
            "value_examples": len(d_v),
            "value_labels": len(labels),
            "mean_value_label": round(float(np.mean(labels)), 4) if labels else None,
        }

    # ------------------------------------------------------------------ training
    def train_value(self, iteration: int) -> dict[str, Any]:
        from .prm import PRMConfig, train_prm

        cfg = self.cfg
        rows = read_jsonl(self.folder(iteration) / "value_data.jsonl")
        examples = [PRMExample(r["prompt"], tuple(r["steps"]), tuple(r["labels"])) for r in rows]
        return self._train(
            iteration,
            "value",
            examples,
            train_prm,
            PRMConfig,
            epochs=cfg.value_epochs,
            batch_size=cfg.value_batch_size,
            learning_rate=cfg.value_learning_rate,
            max_steps=cfg.value_max_steps,
        )

    def train_policy(self, iteration: int) -> dict[str, Any]:
        from .sft import SFTConfig, train_sft

        cfg = self.cfg
        rows = read_jsonl(self.folder(iteration) / "policy_data.jsonl")
        examples = [SFTExample(r["prompt"], tuple(r["steps"]), r["answer"]) for r in rows]
        return self._train(
            iteration,
            "policy",
            examples,
            train_sft,
            SFTConfig,
            epochs=cfg.sft_epochs,
            batch_size=cfg.sft_batch_size,
            learning_rate=cfg.sft_learning_rate,
            max_steps=cfg.sft_max_steps,
        )

    def _train(
        self,
        iteration: int,
        which: Literal["value", "policy"],
        examples: list[Any],
        trainer: Any,
        config_type: Any,
        *,
        epochs: float,
        batch_size: int,
        learning_rate: float,
        max_steps: int,
    ) -> dict[str, Any]:
        """Train the ``which`` model of ``iteration`` from its starting checkpoint on
        ``examples``; with none (no problem solved yet) the previous one is kept."""
        phase = f"train-{which}"
        path = self.value_path if which == "value" else self.policy_path
        if not examples:
            model = self.load(path(iteration - 1))
            self.save(path(iteration), model, {"model": which, "skipped": True})
            return {"examples": 0, "steps": 0, "skipped": True}
        model = self.load(path(0))
        steps = _steps_for(len(examples), epochs, batch_size, max_steps)
        config = config_type(
            num_steps=steps,
            batch_size=batch_size,
            learning_rate=learning_rate,
            warmup_steps=min(20, steps // 10),
            log_every=max(1, steps // 20),
            device=self.cfg.device,
        )
        log = trainer(
            model,
            self.tokenizer,
            examples,
            config=config,
            rng=phase_rng(self.cfg.seed, iteration, phase),
            progress=lambda p: self.say(
                iteration, phase, p.step, p.num_steps, f"loss {p.loss:.4f}"
            ),
        )
        summary = _log_summary(log, len(examples), steps)
        self.save(path(iteration), model, {"model": which, **summary})
        return summary

    # ------------------------------------------------------------------ report
    def report(self) -> dict[str, Any]:
        iterations = self.iteration_entries(self.PHASES)
        f1: dict[str, list[float | None]] = {level: [] for level in (*_LEVELS, "all")}
        for entry in iterations:
            evaluation = entry.get("evaluate")
            for level in f1:
                f1[level].append(evaluation["prm"][level]["f1"] if evaluation else None)
        history = [
            {
                "iteration": entry["iteration"],
                "greedy": {
                    level: entry["evaluate"]["greedy"][level]["accuracy"] for level in _LEVELS
                },
                "prm_f1": entry["evaluate"]["prm"]["all"]["f1"],
            }
            for entry in iterations
            if "evaluate" in entry
        ]
        return {
            "loop": LOOP,
            "config": self.cfg.to_dict(),
            "history": history,
            "complete": self.complete(),
            "greedy_accuracy": self.greedy_accuracy(iterations, _LEVELS),
            "prm_f1": f1,
            "iterations": iterations,
            "seconds": self.seconds(),
        }

    def go(self) -> dict[str, Any]:
        self.run_phase(0, "eval-data", self.eval_data)
        self.run_phase(0, "evaluate", self.evaluate)
        for i in range(1, self.cfg.iterations + 1):
            self.run_phase(i, "search", self.search)
            self.run_phase(i, "targets", self.targets)
            self.run_phase(i, "train-value", self.train_value)
            self.run_phase(i, "train-policy", self.train_policy)
            self.run_phase(i, "evaluate", self.evaluate)
        return self.write_report()


def _outcome_check(problem: Any, how: str, separator: str) -> Any:
    """The exact check of a toy-math trace for ``problem``: 1.0 when it is solved (``how``
    ``"solved"``) or its final answer is right (``"answer"``), else 0.0."""
    from treesearch.adapters import toymath

    gold = str(problem.answer)

    def check(trace: Trace) -> float:
        if trace.answer is None or trace.answer != gold:
            return 0.0
        if how == "answer":
            return 1.0
        steps = [_step_content(s.action, separator) for s in trace.steps]
        return float(toymath.check_solution(problem, [c for c in steps if c.strip()]).solved)

    return check


def _log_summary(log: Any, examples: int, steps: int) -> dict[str, Any]:
    losses = list(log.losses)
    head = losses[: max(1, len(losses) // 10)]
    return {
        "examples": examples,
        "steps": steps,
        "first_loss": round(float(sum(head) / len(head)), 5),
        "final_loss": round(float(log.final_loss), 5),
        "train_seconds": round(float(log.seconds), 2),
    }


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def run_rest_mcts(
    out_dir: str | Path,
    config: ReSTMCTSConfig | None = None,
    *,
    progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """Run (or resume) ReST-MCTS* self-training on the toy arithmetic world (module docstring).

    Args:
        out_dir: the run's folder; a folder holding finished phases of a run with the same
            config (``iterations`` may differ, to train further) is resumed.
        config: the settings (default :class:`ReSTMCTSConfig`).
        progress: called with a :class:`~treesearch.train.loop.LoopProgress` as work advances.

    Returns:
        The report, also written to ``out_dir/report.json``: held-out greedy accuracy per level
        and PRM first-error F1 per level for iteration 0 (the starting models) and each
        iteration, and each phase's numbers (search statistics, data sizes, losses, seconds).

    Raises:
        ValueError: ``out_dir`` holds a run with a different config.
    """
    config = ReSTMCTSConfig() if config is None else config
    if not isinstance(config, ReSTMCTSConfig):
        raise TypeError(f"config must be a ReSTMCTSConfig, not {type(config).__name__}")
    if progress is not None and not callable(progress):
        raise TypeError(f"progress must be callable or None, not {progress!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return _Loop(out, config, progress).go()
