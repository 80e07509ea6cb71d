"""Verifier-guided test-time search on the toy arithmetic world, at a fixed token budget.

The experiment of Snell, Lee, Xu & Kumar, "Scaling LLM Test-Time Compute Optimally can be More
Effective than Scaling Model Parameters" (arXiv 2408.03314), and of the Hugging Face
search-and-learn recipes (``src/sal/search/*.py``; Beeching, Tunstall & Rush, "Scaling
test-time compute with open models", 2024), on :mod:`treesearch.adapters.toymath`: a policy
proposes reasoning steps, a process reward model (PRM) scores them, and a search spends a budget
of generated tokens. ``docs/algorithms.md`` section 9 describes the methods.

Methods (:data:`METHODS`), each given ``n`` and the token budget of ``n`` solutions:

* ``greedy``: one greedy (temperature 0) solution; ``n`` is ignored.
* ``best_of_n``: ``n`` sampled solutions, the one with the highest verifier score
  (:class:`~treesearch.BestOfN` ``mode="plain"``).
* ``weighted_best_of_n``: the same samples; the final answer with the largest sum of scores.
* ``beam``: step-level beam search (:class:`~treesearch.BeamSearch`), ``n`` beams, beam width
  ``M`` (the largest divisor of ``n`` up to ``ScalingConfig.beam_width``), weighted vote over
  the finished beams.
* ``dvts``: diverse verifier tree search (:class:`~treesearch.DVTS`), ``n / M`` subtrees,
  weighted vote.
* ``mcts``: PUCT MCTS over steps (:class:`~treesearch.MCTS` with the policy sampling ``M``
  children per expanded leaf, ``M`` as for beam search, and the verifier valuing every leaf;
  ``c`` 1.25, first-play urgency the parent's value); the answer is the terminal
  state at the end of the most-visited path, else the best-scored terminal state of the tree.

A path's step scores are aggregated with ``ScalingConfig.aggregation``, ``"min"`` by default:
the shipped PRM is trained PRM800K's way, on each solution up to its first wrong step, so a
step's score says whether that step is right given the ones before it, and a path is as good as
its weakest step (Math-Shepherd's rule). ``"last"`` suits a PRM whose last score is the chance
that the whole path is right (Monte-Carlo labels, or exact labels kept after the first error);
for the exact checker both rules agree. The verifier is the trained PRM (``"prm"``), an outcome
reward model (``"orm"``) or the exact checker (``"oracle"``, :class:`OracleVerifier`).

**Budget.** The unit is the number of policy tokens of the problem's reference solution (every
step with its ``<sep>``, plus ``<eos>``): the cost of one correct solution. A search at ``n``
gets ``Budget(tokens=ceil(budget_slack * n * unit))``, so ``n`` sampled solutions fit even when
some are a little longer than the reference (``budget_slack`` 1.25 by default). Only tokens the
policy generates count; PRM work is reported separately (``token_ratios``). Every sampled token
counts once, duplicates included: :class:`~treesearch.adapters.policies.HFStepPolicy` merges
identical samples into one candidate whose ``num_tokens`` is the tokens of all of them (a
confident policy proposing four copies of one step has spent four steps' worth of generation).
Those copies add no node to the tree; :func:`duplicate_sample_tokens` reports them.

Every search starts with empty KV caches and zeroed counters, so its ``tokens_processed`` and
tree sizes (:func:`treesearch.adapters.accounting.token_ratios`) describe that search alone.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from treesearch import (
    DVTS,
    MCTS,
    BeamSearch,
    BestOfN,
    Budget,
    Score,
    SearchResult,
    Tree,
)
from treesearch.adapters.accounting import TokenCounting, tree_tokens
from treesearch.adapters.state import ReasoningState
from treesearch.adapters.toymath import (
    ANSWER_PREFIX,
    EOS,
    SEP,
    ParsedAnswer,
    ToyProblem,
    check_solution,
    format_prefix,
    parse_step,
)
from treesearch.search._common import check_aggregation

__all__ = [
    "LEVELS",
    "METHODS",
    "SHIPPED_CHECKPOINTS",
    "VERIFIERS",
    "OracleVerifier",
    "ScalingConfig",
    "SearchOutcome",
    "ToyMathSearcher",
    "beam_width_for",
    "duplicate_sample_tokens",
    "final_answer",
    "load_checkpoints",
    "mcts_answer_node",
    "open_searcher",
    "reference_tokens",
    "tiny_models",
    "weighted_vote",
]

LEVELS = ("easy", "medium", "hard")
METHODS = ("greedy", "best_of_n", "weighted_best_of_n", "beam", "dvts", "mcts")
VERIFIERS = ("prm", "orm", "oracle")

SHIPPED_CHECKPOINTS = Path(__file__).resolve().parent / "checkpoints" / "toymath"
"""Where the trained toy-world policy, PRM and ORM live (folders ``policy``, ``prm``, ``orm``)."""


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _check_real(name: str, value: object, minimum: float, *, strict: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    x = float(value)
    if not math.isfinite(x) or x < minimum or (strict and x == minimum):
        raise ValueError(f"{name} must be a finite number {'>' if strict else '>='} {minimum}")
    return x


@dataclass(frozen=True, kw_only=True)
class ScalingConfig:
    """Settings of the searches (frozen, validated).

    Attributes:
        beam_width: M for beam search and DVTS, and the samples MCTS draws per expanded leaf
            (capped at the largest divisor of ``n`` up to it).
        temperature: sampling temperature of the policy (greedy uses 0).
        max_step_tokens: a step is cut after this many tokens.
        extra_steps: a state is terminal after ``num_steps + 2 + extra_steps`` steps (the
            operations, the answer, the ``<eos>`` step, and this many spare ones).
        budget_slack: the token budget is ``ceil(budget_slack * n * unit)``.
        mcts_c: PUCT exploration constant of ``mcts``.
        aggregation: how a path's step scores become one score (``"min"``, ``"last"``,
            ``"prod"``, ``"mean"``), for every method and verifier.
        kv_reuse: prefix (KV-cache) reuse in the policy and the verifiers.
        device, dtype: where the models run (as for
            :class:`~treesearch.adapters.policies.HFStepPolicy`).
    """

    beam_width: int = 4
    temperature: float = 0.8
    max_step_tokens: int = 24
    extra_steps: int = 1
    budget_slack: float = 1.25
    mcts_c: float = 1.25
    aggregation: str = "min"
    kv_reuse: bool = True
    device: str = "cpu"
    dtype: str | None = None

    def __post_init__(self) -> None:
        _check_int("beam_width", self.beam_width, 1)
        _check_real("temperature", self.temperature, 0.0, strict=True)
        _check_int("max_step_tokens", self.max_step_tokens, 1)
        _check_int("extra_steps", self.extra_steps, 0)
        if _check_real("budget_slack", self.budget_slack, 1.0, strict=False) > 16:
            raise ValueError(f"budget_slack must be at most 16, got {self.budget_slack}")
        _check_real("mcts_c", self.mcts_c, 0.0, strict=False)
        check_aggregation(self.aggregation)
        if not isinstance(self.kv_reuse, bool):
            raise TypeError(f"kv_reuse must be True or False, got {self.kv_reuse!r}")
        if not isinstance(self.device, str) or not self.device:
            raise TypeError(f"device must be a non-empty str, got {self.device!r}")
        if self.dtype is not None and self.dtype not in ("bf16", "fp16", "fp32"):
            raise ValueError(f"dtype must be None, 'bf16', 'fp16' or 'fp32', got {self.dtype!r}")


def beam_width_for(n: int, beam_width: int) -> int:
    """The largest divisor of ``n`` that is at most ``beam_width`` (beam search and DVTS need
    ``n`` to be a multiple of the width): 4 for ``n = 16``, 2 for ``n = 2`` or ``6``."""
    n = _check_int("n", n, 1)
    beam_width = _check_int("beam_width", beam_width, 1)
    return max(m for m in range(1, min(n, beam_width) + 1) if n % m == 0)


def final_answer(state: Any) -> str | None:
    """The answer a solution gives: the value of its last non-blank step when that step is
    ``The answer is N`` (as a canonical integer string), else ``None``."""
    for content in reversed(tuple(getattr(state, "step_texts", ()))):
        if not content.strip():
            continue  # the <eos> step
        if not content.startswith(ANSWER_PREFIX):
            return None
        try:
            parsed = parse_step(content)
        except ValueError:
            return None
        return str(parsed.value) if isinstance(parsed, ParsedAnswer) else None
    return None


def _contents(state: Any) -> list[str]:
    return [text for text in state.step_texts if text.strip()]


def reference_tokens(problem: ToyProblem, tokenizer: Any) -> int:
    """Policy tokens of ``problem``'s reference solution: each step and its ``<sep>``, then
    ``<eos>`` (the budget unit): 31 for ``3+4=7``, ``7*2=14``, ``The answer is 14`` (27
    characters, 3 separators, ``<eos>``)."""
    text = "".join(step + SEP for step in problem.steps) + EOS
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


class OracleVerifier:
    """The exact checker as a process verifier: step ``k`` scores 1.0 while steps ``1..k`` are
    all correct (the toy world's process labels from
    :func:`~treesearch.adapters.toymath.check_solution`), 0.0 from the first wrong step on. A
    finished state's last score is 1.0 only if it is solved (an early ``<eos>`` scores 0).
    ``Score.value`` is the last step score (0.5 without steps).

    Args:
        problems: the problems whose states it will score, found by their question
            (``format_prefix(problem.prompt)``, as :meth:`ToyMathSearcher.root` writes it).
    """

    def __init__(self, problems: Iterable[ToyProblem]) -> None:
        self._problems: dict[str, ToyProblem] = {}
        for problem in problems:
            if not isinstance(problem, ToyProblem):
                raise TypeError(f"problems must be ToyProblems, got {type(problem).__name__}")
            self._problems[format_prefix(problem.prompt)] = problem
            self._problems[problem.prompt] = problem

    def step_scores(self, state: Any) -> tuple[float, ...]:
        """The exact per-step scores of one state."""
        question = getattr(state, "question", None)
        problem = self._problems.get(question) if isinstance(question, str) else None
        if problem is None:
            raise ValueError(f"OracleVerifier does not know the problem of question {question!r}")
        contents = _contents(state)
        check = check_solution(problem, contents)
        scores = [float(label) for label in check.labels]
        if scores and state.is_terminal() and not check.solved:
            scores[-1] = 0.0
        return tuple(scores)

    def score(self, states: Sequence[Any]) -> list[Score]:
        out = []
        for state in states:
            steps = self.step_scores(state)
            out.append(Score(steps[-1] if steps else 0.5, steps))
        return out


@dataclass(frozen=True)
class SearchOutcome:
    """One search on one problem.

    Attributes:
        method, verifier, n: what ran.
        answer: the chosen solution's final answer (``None``: none given).
        correct: ``answer`` equals the problem's answer.
        tokens: policy tokens generated, duplicate samples included (what the budget counts).
        budget: the token budget (``ceil(budget_slack * n * unit)``).
        unit: tokens of the reference solution.
        policy_processed, policy_tree: tokens run through the policy model, and the search
            tree's unique tokens in the policy's input; ``policy_duplicates``: the generated
            tokens of samples merged into an identical one (:func:`duplicate_sample_tokens`),
            part of ``policy_processed``; ``verifier_processed`` and
            ``verifier_tree`` likewise (0 for the oracle, which runs no model).
        seconds: wall time of the search.
        result: the search result (its tree, usage, chosen state).
    """

    method: str
    verifier: str
    n: int
    answer: str | None
    correct: bool
    tokens: int
    budget: int
    unit: int
    policy_processed: int
    policy_tree: int
    policy_duplicates: int
    verifier_processed: int
    verifier_tree: int
    seconds: float
    result: SearchResult = field(repr=False, compare=False)


def mcts_answer_node(tree: Tree) -> int | None:
    """The state MCTS answers with: follow the most-visited child (ties: the higher score, then
    the earlier child) from the root; if that path ends at a terminal state, that state, else
    the best-scored terminal state of the tree (ties: the earlier node), else ``None``."""
    node = Tree.ROOT
    while tree.is_expanded(node):
        kids = tree.children(node)
        visits = tree.visits[kids.start : kids.stop]
        if visits.max() <= 0:
            break
        scores = np.nan_to_num(tree.score[kids.start : kids.stop], nan=-np.inf)
        order = np.lexsort((np.arange(len(kids)), -scores, -visits))
        node = kids.start + int(order[0])
    if tree.terminal[node]:
        return node
    best, best_score = None, -math.inf
    for i in range(tree.num_nodes):
        score = float(tree.score[i])
        if tree.terminal[i] and not math.isnan(score) and score > best_score:
            best, best_score = i, score
    return best


def duplicate_sample_tokens(tree: Tree) -> int:
    """Tokens the policy generated for samples it merged into an identical sample of the same
    state: ``(payload["count"] - 1) * len(step)`` summed over the nodes. They are charged to the
    token budget (part of the node's ``num_tokens``, ``tree.tokens[i]``) and run through the
    model (all but each copy's last token), but add no node to the tree, so they raise the
    policy's tokens-per-tree-token ratio (:func:`~treesearch.adapters.accounting.token_ratios`)
    above 1."""
    total = 0
    for i in range(1, tree.num_nodes):
        payload = tree.payloads[i]
        if isinstance(payload, dict) and payload.get("count", 1) > 1:
            total += (int(payload["count"]) - 1) * len(payload["token_ids"])
    return total


def weighted_vote(tree: Tree, nodes: Sequence[int]) -> int | None:
    """Weighted best-of-N over scored ``nodes``: the answer (:func:`final_answer`) with the
    largest sum of scores wins (ties: the answer seen first), and its best-scored node is
    returned (ties: the earlier node). Nodes without an answer do not vote; when none votes,
    the best-scored node is returned. The same rule as ``BestOfN(mode="weighted")``.

    Answers ``7, 9, 9`` scored ``0.9, 0.5, 0.5`` give ``9`` (sum 1.0 against 0.9).
    """
    scored = [i for i in nodes if not math.isnan(float(tree.score[i]))]
    if not scored:
        return None

    def best_of(group: list[int]) -> int:
        return max(group, key=lambda i: (float(tree.score[i]), -group.index(i)))

    totals: dict[str, float] = {}
    members: dict[str, list[int]] = {}
    for i in scored:
        answer = final_answer(tree.state(i))
        if answer is not None:
            totals[answer] = totals.get(answer, 0.0) + float(tree.score[i])
            members.setdefault(answer, []).append(i)
    if not totals:
        return best_of(scored)
    winner = max(totals, key=totals.__getitem__)  # the first maximum in insertion order
    return best_of(members[winner])


class ToyMathSearcher:
    """Runs the methods of :data:`METHODS` on toy-world problems with one policy and verifiers.

    Args:
        policy_model: a causal LM trained on the toy world's format (or a tiny random one).
        prm_model: the PRM, a causal LM read with the ``"seed"`` preset (``Positive`` /
            ``Negative`` at each ``<sep>``).
        tokenizer: the toy world's tokenizer (:func:`~treesearch.adapters.toymath.build_tokenizer`),
            shared by all models.
        orm_model: optional outcome reward model, a causal LM read with
            :class:`~treesearch.adapters.verifiers.HFORM` (``head="lm"``, steps joined by
            ``<sep>``, suffix ``<sep>``).
        config: search settings.
    """

    def __init__(
        self,
        policy_model: Any,
        prm_model: Any,
        tokenizer: Any,
        *,
        orm_model: Any = None,
        config: ScalingConfig | None = None,
    ) -> None:
        from treesearch.adapters.verifiers import HFORM, HFPRM

        config = ScalingConfig() if config is None else config
        if not isinstance(config, ScalingConfig):
            raise TypeError(f"config must be a ScalingConfig, got {type(config).__name__}")
        self.config = config
        self.tokenizer = tokenizer
        self.policy_model = policy_model
        self._policies: dict[tuple[float, int], Any] = {}
        self.prm = HFPRM(
            prm_model,
            tokenizer,
            preset="seed",
            aggregation=config.aggregation,
            device=config.device,
            dtype=config.dtype,
            kv_reuse=config.kv_reuse,
        )
        self.orm = None
        if orm_model is not None:
            self.orm = HFORM(
                orm_model,
                tokenizer,
                head="lm",
                good_token="Positive",
                bad_token="Negative",
                step_joiner=SEP,
                suffix=SEP,
                device=config.device,
                dtype=config.dtype,
                kv_reuse=config.kv_reuse,
            )

    # ------------------------------------------------------------------ components
    def policy(self, *, temperature: float, num_candidates: int) -> Any:
        """The step policy with these settings (one per setting, sharing the model)."""
        from treesearch.adapters.policies import HFStepPolicy

        key = (float(temperature), int(num_candidates))
        policy = self._policies.get(key)
        if policy is None:
            policy = HFStepPolicy(
                self.policy_model,
                self.tokenizer,
                step_separator=SEP,
                num_candidates=num_candidates,
                max_step_tokens=self.config.max_step_tokens,
                temperature=temperature,
                device=self.config.device,
                dtype=self.config.dtype,
                kv_reuse=self.config.kv_reuse,
            )
            self._policies[key] = policy
        return policy

    def verifier(self, kind: str, problem: ToyProblem) -> Any:
        """The verifier ``kind`` (``"prm"``, ``"orm"`` or ``"oracle"``) for ``problem``."""
        if kind == "prm":
            return self.prm
        if kind == "orm":
            if self.orm is None:
                raise ValueError("no ORM was given (orm_model=...), so verifier='orm' cannot run")
            return self.orm
        if kind == "oracle":
            return OracleVerifier([problem])
        raise ValueError(f"verifier must be one of {VERIFIERS}, got {kind!r}")

    def max_steps(self, problem: ToyProblem) -> int:
        return problem.num_steps + 2 + self.config.extra_steps

    def root(self, problem: ToyProblem) -> ReasoningState:
        """The search's root: ``<bos>prompt<sep>``, the question the PRM reads likewise."""
        if not isinstance(problem, ToyProblem):
            raise TypeError(f"problem must be a ToyProblem, got {type(problem).__name__}")
        prefix = format_prefix(problem.prompt)
        return ReasoningState.from_prompt(
            prefix, self.tokenizer, question=prefix, max_steps=self.max_steps(problem)
        )

    def unit_tokens(self, problem: ToyProblem) -> int:
        """Tokens of ``problem``'s reference solution (:func:`reference_tokens`)."""
        return reference_tokens(problem, self.tokenizer)

    def budget_tokens(self, problem: ToyProblem, n: int) -> int:
        """``ceil(budget_slack * n * unit)``: the token budget of a search at ``n``."""
        n = _check_int("n", n, 1)
        return math.ceil(self.config.budget_slack * n * self.unit_tokens(problem))

    # ------------------------------------------------------------------ searches
    def run(
        self,
        problem: ToyProblem,
        method: str,
        n: int,
        *,
        rng: np.random.Generator,
        verifier: str = "prm",
    ) -> SearchOutcome:
        """Run ``method`` at ``n`` on ``problem`` with ``verifier`` guiding it."""
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        return self._run(problem, method, n, rng, verifier)[0]

    def run_best_of_n(
        self,
        problem: ToyProblem,
        n: int,
        *,
        rng: np.random.Generator,
        verifier: str = "prm",
    ) -> tuple[SearchOutcome, SearchOutcome]:
        """``best_of_n`` and ``weighted_best_of_n`` on the same ``n`` samples (one search; the
        weighted outcome reports the same tokens and time): Snell et al. compare the two
        selection rules on shared samples too."""
        return self._run(problem, "best_of_n", n, rng, verifier, weighted_too=True)

    def _search(self, method: str, n: int, judge: Any, problem: ToyProblem) -> tuple[Any, Any]:
        """The search object of ``method`` and the policy it uses."""
        steps = self.max_steps(problem)
        width = beam_width_for(n, self.config.beam_width)
        temperature = self.config.temperature
        aggregation = self.config.aggregation
        search: Any
        if method == "greedy":
            policy = self.policy(temperature=0.0, num_candidates=1)
            search = BestOfN(
                policy, judge, n=1, max_depth=steps, mode="plain", aggregation=aggregation
            )
            return search, policy
        if method in ("best_of_n", "weighted_best_of_n"):
            policy = self.policy(temperature=temperature, num_candidates=1)
            mode = "plain" if method == "best_of_n" else "weighted"
            search = BestOfN(
                policy,
                judge,
                n=n,
                max_depth=steps,
                mode=mode,
                answer_fn=final_answer,
                aggregation=aggregation,
            )
            return search, policy
        if method in ("beam", "dvts"):
            policy = self.policy(temperature=temperature, num_candidates=width)
            kind = BeamSearch if method == "beam" else DVTS
            search = kind(
                policy,
                judge,
                n=n,
                beam_width=width,
                max_iterations=steps,
                mode="weighted",
                answer_fn=final_answer,
                aggregation=aggregation,
            )
            return search, policy
        policy = self.policy(temperature=temperature, num_candidates=width)
        search = MCTS(
            policy=policy,
            verifier=judge,
            selection="puct",
            c=self.config.mcts_c,
            fpu="parent",
            value_bounds=(0.0, 1.0),
        )
        return search, policy

    def _run(
        self,
        problem: ToyProblem,
        method: str,
        n: int,
        rng: object,
        verifier: str,
        *,
        weighted_too: bool = False,
    ) -> tuple[SearchOutcome, SearchOutcome]:
        n = _check_int("n", n, 1)
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
        judge = self.verifier(verifier, problem)
        root = self.root(problem)
        search, policy = self._search(method, n, judge, problem)
        if method == "greedy":
            # Greedy decoding is not budgeted: one solution, however long, up to max_steps.
            budget = self.max_steps(problem) * self.config.max_step_tokens
        else:
            budget = self.budget_tokens(problem, n)
        counting = [c for c in (policy, judge) if isinstance(c, TokenCounting)]
        for component in counting:
            component.cache.clear()  # type: ignore[attr-defined]
            component.reset_counters()  # type: ignore[attr-defined]
        started = time.perf_counter()
        result = search.search(root, Budget(tokens=budget), rng=rng)
        seconds = time.perf_counter() - started
        tree = result.tree
        if method == "mcts":
            node = mcts_answer_node(tree)
            chosen = tree.state(node) if node is not None else None
        else:
            chosen = result.answer
        judge_counts = isinstance(judge, TokenCounting)
        policy_counts = isinstance(policy, TokenCounting)
        common = {
            "verifier": verifier,
            "n": n,
            "tokens": int(result.usage.tokens),
            "budget": budget,
            "unit": self.unit_tokens(problem),
            "policy_processed": int(policy.tokens_processed) if policy_counts else 0,
            "policy_tree": tree_tokens(result, policy) if policy_counts else 0,
            "policy_duplicates": duplicate_sample_tokens(tree),
            "verifier_processed": int(judge.tokens_processed) if judge_counts else 0,
            "verifier_tree": tree_tokens(result, judge) if judge_counts else 0,
            "seconds": seconds,
            "result": result,
        }

        def outcome(name: str, state: Any) -> SearchOutcome:
            answer = final_answer(state) if state is not None else None
            correct = answer is not None and answer == str(problem.answer)
            return SearchOutcome(method=name, answer=answer, correct=correct, **common)

        first = outcome(method, chosen)
        if not weighted_too:
            return first, first
        finished = [i for i in range(1, tree.num_nodes) if not math.isnan(float(tree.score[i]))]
        node = weighted_vote(tree, finished)
        second = outcome("weighted_best_of_n", tree.state(node) if node is not None else None)
        return first, second

    def node_step_scores(self, tree: Tree) -> list[float]:
        """The PRM's score of each node's last non-blank step (NaN at the root; an ``<eos>``
        step shows the score of the step before it): the labels of a picture of the tree."""
        states = [tree.state(i) for i in range(tree.num_nodes)]
        per_state = self.prm.step_scores(states)
        return [steps[-1] if steps else math.nan for steps in per_state]


def tiny_models(
    tokenizer: Any, *, seed: int = 0, hidden_size: int = 32, num_layers: int = 2
) -> tuple[Any, Any, Any]:
    """Randomly initialised (policy, PRM, ORM) causal LMs over ``tokenizer`` (Llama
    architecture; for tests and timing, not for accuracy)."""
    from treesearch.adapters.tiny import tiny_model

    return tuple(  # type: ignore[return-value]
        tiny_model(tokenizer, hidden_size=hidden_size, num_layers=num_layers, seed=seed + k)
        for k in range(3)
    )


def load_checkpoints(directory: str | os.PathLike[str]) -> tuple[Any, Any, Any]:
    """The (policy, PRM, ORM) causal LMs saved under ``directory``/``policy``, ``prm`` and
    ``orm`` (Hugging Face folders; the ORM is optional and ``None`` when missing)."""
    from treesearch.train.lm_common import load_causal_lm

    root = Path(directory)
    models: list[Any] = []
    for name in ("policy", "prm", "orm"):
        folder = root / name
        if not (folder / "config.json").exists():
            if name == "orm":
                models.append(None)
                continue
            raise FileNotFoundError(f"no {name} checkpoint in {folder} (expected config.json)")
        models.append(load_causal_lm(folder).eval())
    return models[0], models[1], models[2]


def open_searcher(
    checkpoints: str | os.PathLike[str] | None = None,
    *,
    tiny: bool = False,
    seed: int = 0,
    config: ScalingConfig | None = None,
) -> tuple[ToyMathSearcher, str]:
    """A :class:`ToyMathSearcher` and a description of its models: random tiny models with
    ``tiny`` (seeded by ``seed``), else the checkpoints in ``checkpoints`` (default: the
    shipped ones, :data:`SHIPPED_CHECKPOINTS`)."""
    from treesearch.adapters.toymath import build_tokenizer

    tokenizer = build_tokenizer()
    if tiny:
        policy, prm, orm = tiny_models(tokenizer, seed=seed)
        if config is None:
            config = ScalingConfig(max_step_tokens=4, extra_steps=0)
        description = f"random tiny models (seed {seed})"
    else:
        folder = Path(checkpoints) if checkpoints is not None else SHIPPED_CHECKPOINTS
        policy, prm, orm = load_checkpoints(folder)
        description = "shipped checkpoints" if checkpoints is None else f"checkpoints {folder}"
    searcher = ToyMathSearcher(policy, prm, tokenizer, orm_model=orm, config=config)
    return searcher, description
