"""TS-LLM's tree searches over reasoning steps: MCTS-alpha and MCTS-Rollout, and answer votes.

Paper: Feng et al., "Alphazero-like Tree-Search can Guide Large Language Model Decoding and
Training" (arXiv 2309.17179). Code: waterhorse1/LLM_Tree_Search (``tsllm/mcts/tree.py``:
``MCTS.get_next_action``, ``rollout``, ``_simulate``, ``_expand_leaf_node``, ``_ucb_score``;
``tsllm/inference/trajectory_collector.py``; ``tsllm/inference/evaluation/vote_utils.py``).
``docs/algorithms.md`` section 5 describes them.

A state is the question plus the steps so far; a :class:`~treesearch.interfaces.Policy` proposes
the next steps (with priors) and a critic, any :class:`~treesearch.interfaces.Verifier` (a
value-head model read through :class:`~treesearch.adapters.verifiers.HFPRM` with
``prm_preset("value-head", activation="identity")``, see :mod:`treesearch.train.ts_llm`), values
states. Both searches share TS-LLM's simulation:

* **Expansion with critic values.** Expanding a node asks the policy for its children (repeated
  steps dropped, priors normalised) and the critic for the value of *every* child at once; an
  unvisited child's Q is that value (TS-LLM's ``init_critic_value``), not a first-play urgency.
* **Selection** by PUCT with AlphaZero's schedule:
  ``Q + P * (log((N + c_base + 1) / c_base) + c_init) * sqrt(N) / (1 + n)``, ``c_base`` 19652,
  ``c_init`` 1.25 (the code's default; TS-LLM's GSM8K scripts use 3). The scores come from
  :func:`treesearch.selection.puct_scores` plus each unvisited child's critic value.
* **Lazy expansion.** A simulation ends at the first node it enters for the first time and
  backs up that node's critic value; the node is expanded (the policy generates its children)
  only when a later simulation enters it again, and that simulation goes on into its children.
  No random rollouts.
* **Leaf values.** A terminal state's ``terminal_value()`` when it knows one (training with gold
  answers), else its critic value (test time: no gold answer).
* **Backup** adds the leaf value along the whole path from the tree's root with
  :func:`treesearch.backup.backup_path`, which negates only where ``to_play`` changes: reasoning
  states all have ``to_play == 0``, so values are never negated (``docs/concepts.md``).

The searches:

* :class:`MCTSAlpha` (``get_next_action``): from the current root run ``num_simulations``
  simulations (root Dirichlet(0.3) noise at weight 0.25 when ``sample``), pick the step by the
  visit counts (``pi ~ N^(1/temperature)`` sampled, or the most visited), move the root to it
  keeping its subtree, and repeat until a terminal state; repeat whole episodes
  ``num_episodes`` times (TS-LLM's ``num_mcts_aggregation``) for several answers.
* :class:`MCTSRollout` (``rollout``): every simulation starts at the original root; each one
  that reaches a terminal state yields a path; stop after ``num_paths`` paths or when the
  budget (TS-LLM: a generated-token budget) is spent.

The final answer is chosen among the finished paths by :func:`majority_vote`,
:func:`orm_vote` (sum of min-max-normalised values per answer) or :func:`orm_max`, and the
answer state is that answer's highest-valued path (the highest-valued path of all when no path
has an answer); :func:`choose_path` applies the votes to states or traces.

**Budget.** TS-LLM compares methods at equal numbers of generated tokens: give
``Budget(tokens=...)``. One simulation is one ``simulations`` unit, an expansion one
``expansions``, each state given to the policy one ``policy_calls`` (plus its ``tokens``),
each state the critic values one ``verifier_calls``. Every piece of work is asked for before
it starts, so no counted limit is exceeded: an expansion whose children cannot all be valued
adds none (the tokens of its policy call stay charged), the unfinished simulation is dropped,
and the search stops with the refusing limit as ``stop_reason``.

**Traces.** ``SearchResult.traces`` holds one trace per finished path, in the order they were
found, with each step's statistics when the path finished (``score`` = critic value,
``value`` = Q, ``visits``, ``prior``, ``tokens``) and ``metadata`` ``{"path": i, "value": the
leaf value the votes use, "tokens": tokens generated so far}`` (TS-LLM's
``num_generated_token``, for accuracy-versus-tokens curves). MCTS-Rollout can reach one
terminal node several times; each arrival is a path, as in TS-LLM, so its votes count repeats.

**Why not** :class:`~treesearch.MCTS`. MCTS values a leaf when a simulation first selects it
and scores unvisited children with a first-play urgency, and it expands a leaf on its first
visit. TS-LLM values all children at expansion, uses those values as the Q of unvisited
children, and expands on the second visit; with its few simulations per step (5 on GSM8K)
these change which steps are explored and how many tokens are generated. So this module runs
its own simulation loop on the same :class:`~treesearch.tree.Tree`, with the library's PUCT
scores and AlphaZero schedule (:mod:`treesearch.selection`), backup and sign rule
(:mod:`treesearch.backup`), budgeted policy and verifier calls, and
:func:`~treesearch.search.mcts.visit_policy`. MCTS-alpha moves its root by index instead of
:func:`~treesearch.search.mcts.reuse_subtree`: the subtree is kept either way, but in the
reference the moved root keeps its parent, so backups reach the original root and the next
episode (``episode_tree="keep"``) starts there with every statistic.

**Differences from the reference code.** Budgets are never exceeded (TS-LLM checks its token
limit between simulations and can pass it); tokens are charged when the policy generates them
(TS-LLM counts a node's children when they are first selected from); ``prm_factor`` (a PRM
bonus in selection, 0 in the reported runs) is not implemented. Root noise is drawn with the
search's ``rng`` for each move and never stored in the tree.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Hashable, Sequence
from typing import Any, Literal

import numpy as np

from ..backup import backup_path
from ..budget import Budget, BudgetMeter
from ..interfaces import Policy, State, Verifier, VerifierFn
from ..results import SearchResult, Trace, root_distribution, trace_from_path
from ..selection import alphazero_c, puct_scores
from ..tree import Tree
from ._common import (
    AnswerFn,
    GuidedSearch,
    Stop,
    aggregate,
    check_choice,
    check_int,
    expand_node,
    log_stop,
    propose_children,
    require_room,
    require_scores,
    score_states,
    start_search,
    unique,
)
from .mcts import visit_policy

__all__ = [
    "VOTES",
    "MCTSAlpha",
    "MCTSRollout",
    "choose_path",
    "majority_vote",
    "min_max_normalise",
    "orm_max",
    "orm_vote",
]

Vote = Literal["majority", "orm_vote", "orm_max"]
VOTES: tuple[str, ...] = ("majority", "orm_vote", "orm_max")
EpisodeTree = Literal["keep", "clear", "reset"]
_EPISODE_TREES = ("keep", "clear", "reset")


# ---------------------------------------------------------------------- answer aggregation


def min_max_normalise(values: Sequence[float], *, eps: float = 1e-3) -> np.ndarray:
    """``(v - min) / (max - min + eps)``: TS-LLM's normalisation of path values before a vote
    (``judge_ans``), so that every value is in [0, 1) and the worst path adds nothing."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"values must be a 1-D sequence, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"values must be finite, got {list(array)}")
    if not math.isfinite(eps) or eps <= 0:
        raise ValueError(f"eps must be finite and > 0, got {eps}")
    if not len(array):
        return array
    shifted = array - array.min()
    return shifted / (shifted.max() + eps)


def _valid(
    answers: Sequence[Hashable | None], values: Sequence[float] | None
) -> tuple[list[Hashable], list[float]]:
    if isinstance(answers, (str, bytes)):
        raise TypeError("answers must be a sequence of answers (one per path), not one string")
    if values is not None and len(values) != len(answers):
        raise ValueError(f"{len(answers)} answers but {len(values)} values")
    kept, kept_values = [], []
    for i, answer in enumerate(answers):
        if answer is None:  # no answer extracted (TS-LLM's INVALID_ANS): it does not vote
            continue
        kept.append(answer)
        if values is not None:
            value = float(values[i])
            if not math.isfinite(value):
                raise ValueError(f"value {i} is not finite: {values[i]!r}")
            kept_values.append(value)
    return kept, kept_values


def majority_vote(answers: Sequence[Hashable | None]) -> Hashable | None:
    """The most frequent answer (``None`` answers do not vote; ties: the one seen first);
    ``None`` when no path has an answer."""
    kept, _ = _valid(answers, None)
    counts: dict[Hashable, int] = {}
    for answer in kept:
        counts[answer] = counts.get(answer, 0) + 1
    return max(counts, key=counts.__getitem__) if counts else None


def orm_vote(answers: Sequence[Hashable | None], values: Sequence[float]) -> Hashable | None:
    """The answer with the largest sum of min-max-normalised values (:func:`min_max_normalise`
    over the paths that have an answer; ties: the answer seen first)."""
    kept, kept_values = _valid(answers, values)
    if not kept:
        return None
    totals: dict[Hashable, float] = {}
    for answer, value in zip(kept, min_max_normalise(kept_values).tolist(), strict=True):
        totals[answer] = totals.get(answer, 0.0) + value
    return max(totals, key=totals.__getitem__)


def orm_max(answers: Sequence[Hashable | None], values: Sequence[float]) -> Hashable | None:
    """The answer of the highest-valued path that has one (ties: the first)."""
    kept, kept_values = _valid(answers, values)
    if not kept:
        return None
    return kept[int(np.argmax(kept_values))]


def choose_path(
    paths: Sequence[State | Trace],
    *,
    method: str = "majority",
    answer_fn: Any = None,
    values: Sequence[float] | None = None,
) -> int | None:
    """The index of the path whose answer ``method`` chooses (``"majority"``, ``"orm_vote"``,
    ``"orm_max"``): among the paths with that answer, the highest-valued one (the first when no
    values are known). ``None`` when no path has an answer.

    Args:
        paths: finished states, or traces.
        method: one of :data:`VOTES`.
        answer_fn: the answer of a path: ``answer_fn(state)`` for states (required),
            ``answer_fn(trace)`` for traces (default: ``trace.answer``). ``None`` answers do not
            vote.
        values: one value per path (the critic's value of its final state). Default for traces:
            ``trace.metadata["value"]`` (what these searches record), else the last step's
            ``score``. Required for states with the ORM methods.
    """
    check_choice("method", method, VOTES)
    paths = list(paths)
    answers: list[Hashable | None] = []
    for i, path in enumerate(paths):
        if isinstance(path, Trace):
            answers.append(answer_fn(path) if answer_fn is not None else path.answer)
        elif answer_fn is None:
            raise TypeError(
                f"path {i} is a {type(path).__name__}: states need answer_fn=f(state) -> answer"
            )
        else:
            answers.append(answer_fn(path))
    if values is None and all(isinstance(p, Trace) for p in paths):
        values = [_trace_value(p, i) for i, p in enumerate(paths)]  # type: ignore[arg-type]
    if values is None and method != "majority":
        raise ValueError(f"method={method!r} needs values= (one per path) for states")
    if values is not None and len(values) != len(paths):
        raise ValueError(f"{len(paths)} paths but {len(values)} values")
    if method == "majority":
        winner = majority_vote(answers)
    elif method == "orm_vote":
        winner = orm_vote(answers, values)  # type: ignore[arg-type]
    else:
        winner = orm_max(answers, values)  # type: ignore[arg-type]
    if winner is None:
        return None
    members = [i for i, answer in enumerate(answers) if answer is not None and answer == winner]
    if values is None:
        return members[0]
    return max(members, key=lambda i: float(values[i]))  # type: ignore[index]


def _trace_value(trace: Trace, index: int) -> float:
    value = trace.metadata.get("value")
    if value is None and trace.steps:
        value = trace.steps[-1].score
    if value is None:
        raise ValueError(
            f"trace {index} has no value (metadata['value'] or a scored last step); pass values="
        )
    return float(value)


# ---------------------------------------------------------------------- the shared simulation


@dataclasses.dataclass
class _Path:
    """A finished path: its tree, terminal node, leaf value and trace."""

    tree: Tree
    node: int
    value: float
    trace: Trace


def _check_real(name: str, value: object, *, low: float, high: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {value!r}")
    number = float(value)
    if not (math.isfinite(number) and low <= number <= high):
        raise ValueError(f"{name} must be finite and in [{low}, {high}], got {value!r}")
    return number


class _TSLLMSearch(GuidedSearch):
    """What MCTS-alpha and MCTS-Rollout share: expansion with critic values, PUCT selection with
    lazy expansion, backup, and the answer vote."""

    def __init__(
        self,
        policy: Policy,
        verifier: Verifier | VerifierFn,
        *,
        c_init: float,
        c_base: float,
        vote: str,
        value_bounds: tuple[float, float],
        clip_values: bool,
        aggregation: str,
        max_nodes: int | None,
        answer_fn: AnswerFn | None,
    ) -> None:
        super().__init__(
            policy, verifier, aggregation=aggregation, max_nodes=max_nodes, answer_fn=answer_fn
        )
        self.c_init = _check_real("c_init", c_init, low=0.0)
        self.c_base = _check_real("c_base", c_base, low=0.0)
        if self.c_base == 0:
            raise ValueError("c_base must be > 0")
        self.vote = check_choice("vote", vote, VOTES)
        if not isinstance(value_bounds, tuple) or len(value_bounds) != 2:
            raise TypeError(f"value_bounds must be a (low, high) pair, got {value_bounds!r}")
        lo = _check_real("value_bounds[0]", value_bounds[0], low=-math.inf)
        hi = _check_real("value_bounds[1]", value_bounds[1], low=-math.inf)
        if not lo < hi:
            raise ValueError(f"value_bounds must have low < high, got {value_bounds}")
        self.value_bounds = (lo, hi)
        if not isinstance(clip_values, (bool, np.bool_)):
            raise TypeError(f"clip_values must be True or False, got {clip_values!r}")
        self.clip_values = bool(clip_values)

    # ------------------------------------------------------------------ pieces
    def _critic_value(self, raw: float, node: int) -> float:
        """A critic value within ``value_bounds``: clipped (an MSE-trained critic overshoots
        the targets a little), or refused when ``clip_values=False``."""
        lo, hi = self.value_bounds
        if self.clip_values:
            return min(max(raw, lo), hi)
        if not lo <= raw <= hi:
            raise ValueError(
                f"the critic gave value {raw} for tree node {node}, outside value_bounds="
                f"{self.value_bounds}; pass value_bounds=... covering it, or clip_values=True"
            )
        return raw

    def _score(self, tree: Tree, nodes: list[int], meter: BudgetMeter) -> None:
        """Critic values of ``nodes`` into ``tree.score`` (the budget was checked)."""
        scores = score_states(self.verify, [tree.state(i) for i in nodes], meter, reserved=True)
        assert scores is not None  # reserved: never refused
        for node, score in zip(nodes, scores, strict=True):
            tree.score[node] = self._critic_value(aggregate(score, self.aggregation), node)

    def _expand(self, tree: Tree, node: int, meter: BudgetMeter, rng: np.random.Generator) -> None:
        """Generate ``node``'s children and value each with the critic, or raise :class:`Stop`
        leaving the tree unchanged."""
        if not meter.can(expansions=1):
            raise Stop(meter.stop_reason or "expansions")
        candidates = unique(
            propose_children(self, tree, meter, rng, [node])[0], key=lambda c: c.action
        )
        require_room(tree, len(candidates))
        require_scores(meter, len(candidates))
        children = list(expand_node(tree, node, candidates))
        meter.charge(expansions=1)
        self._score(tree, children, meter)

    def _select(self, tree: Tree, node: int, priors: np.ndarray | None) -> int:
        """PUCT with the AlphaZero schedule; an unvisited child's Q is its critic value."""
        kids = tree.children(node)
        start, stop = kids.start, kids.stop
        visits = tree.visits[start:stop]
        initial = np.nan_to_num(tree.score[start:stop], nan=0.0)
        # Critic values are for the player to move at the child; Q is for the one at ``node``.
        initial = np.where(tree.to_play[start:stop] != tree.to_play[node], -initial, initial)
        parent_visits = int(tree.visits[node])
        c = alphazero_c(parent_visits, c_base=self.c_base, c_init=self.c_init)
        scores = puct_scores(
            visits,
            tree.value_sum[start:stop],
            tree.prior[start:stop] if priors is None else priors,
            parent_visits,
            c=c,
            fpu=0.0,
        )
        scores += np.where(visits == 0, initial, 0.0)
        return start + int(np.argmax(scores))  # ties: the first, as TS-LLM's strict ">"

    def _leaf_value(self, tree: Tree, node: int, meter: BudgetMeter) -> float:
        """An exact terminal value when the state knows one, else the critic's value."""
        state = tree.state(node)
        if tree.terminal[node]:
            exact = state.terminal_value()
            if exact is not None:
                value = float(exact)
                if not math.isfinite(value):
                    raise ValueError(f"terminal_value() of tree node {node} is {exact!r}")
                return value
        if math.isnan(tree.score[node]):  # a start node that was never valued
            require_scores(meter, 1)
            self._score(tree, [node], meter)
        return float(tree.score[node])

    def _simulate(
        self,
        tree: Tree,
        start: int,
        meter: BudgetMeter,
        rng: np.random.Generator,
        start_priors: np.ndarray | None,
    ) -> int:
        """One simulation from ``start``; returns the leaf it backed up. Raises :class:`Stop`
        (nothing backed up, no simulation charged) when the budget ends it."""
        if not meter.can(simulations=1):
            raise Stop(meter.stop_reason or "simulations")
        node = start
        while tree.first_child[node] != Tree.UNEXPANDED and not tree.terminal[node]:
            node = self._select(tree, node, start_priors if node == start else None)
            tree.state(node)  # sets the node's terminal flag
            if (
                not tree.terminal[node]
                and tree.first_child[node] == Tree.UNEXPANDED
                and tree.visits[node] == 1
            ):
                self._expand(tree, node, meter, rng)  # lazy: on its second visit
        value = self._leaf_value(tree, node, meter)
        backup_path(tree, tree.path(node), value)
        meter.charge(simulations=1)
        return node

    # ------------------------------------------------------------------ result
    def _finish(self, tree: Tree, node: int, value: float, meter: BudgetMeter, index: int) -> _Path:
        answer = self.answer_fn(tree.state(node)) if self.answer_fn is not None else None
        trace = trace_from_path(tree, node, answer=answer)
        trace = dataclasses.replace(
            trace, metadata={"path": index, "value": value, "tokens": meter.used("tokens")}
        )
        return _Path(tree, node, value, trace)

    def _result(
        self, tree: Tree, meter: BudgetMeter, paths: list[_Path], stop_reason: str
    ) -> SearchResult:
        chosen: _Path | None = None
        answer_fn = self.answer_fn
        if paths:
            states = [p.tree.state(p.node) for p in paths]
            answers = [answer_fn(s) if answer_fn is not None else s.key for s in states]
            index = choose_path(
                [p.trace for p in paths],
                method=self.vote,
                answer_fn=lambda trace: answers[trace.metadata["path"]],
                values=[p.value for p in paths],
            )
            chosen = paths[index] if index is not None else max(paths, key=lambda p: p.value)
        actions, dist = root_distribution(tree)
        answer = chosen.tree.state(chosen.node) if chosen is not None else None
        root_visits = tree.visits[Tree.ROOT]
        if chosen is not None:
            action = chosen.trace.steps[0].action if chosen.trace.steps else None
        elif len(actions):
            action = actions[int(np.argmax(dist))]
        else:
            action = None
        result = SearchResult(
            action=action,
            actions=actions,
            visit_distribution=dist,
            root_value=float(tree.value_sum[Tree.ROOT] / root_visits) if root_visits else math.nan,
            tree=tree,
            usage=meter.usage(),
            traces=tuple(p.trace for p in paths),
            answer=answer,
            answer_text=answer_fn(answer) if answer_fn is not None and answer is not None else None,
            stop_reason=stop_reason,
        )
        log_stop(type(self).__name__, stop_reason, result.usage, tree.num_nodes)
        return result


# ---------------------------------------------------------------------- MCTS-alpha


class MCTSAlpha(_TSLLMSearch):
    """TS-LLM's MCTS-alpha: AlphaZero-style move-by-move search over reasoning steps.

    Each move runs ``num_simulations`` simulations from the current root (expanding it first if
    needed), then steps to a child chosen by its visit count: sampled from
    ``pi ~ N^(1/temperature)`` when ``sample``, else the most visited (ties: the first). The
    root moves with its subtree (statistics kept; backups still reach the original root, as in
    the reference code, where the moved root keeps its parent). An episode ends at a terminal
    state; ``num_episodes`` episodes give several answers, voted on with ``vote``.

    Args:
        policy: proposes the steps of a state (anything with ``propose``).
        verifier: the critic: values states for the player to move (a
            :class:`~treesearch.interfaces.Verifier` or ``f(states) -> scores``).
        num_simulations: simulations per move (TS-LLM: 5 on GSM8K, 20 in the code's default).
        num_episodes: whole episodes, each ending with one answer (``num_mcts_aggregation``).
        episode_tree: how an episode after the first starts: ``"keep"`` (from the original
            root with every statistic of the previous episodes, the reference's default),
            ``"clear"`` (same tree and children, visit counts and values zeroed: no step is
            generated twice; ``clear_total_tree``) or ``"reset"`` (a fresh tree;
            ``reset_total_tree``; ``SearchResult.tree`` is then the last episode's tree).
        sample: sample each move from the visit distribution and mix Dirichlet noise into the
            current root's priors (TS-LLM's ``sample``); ``False``: the most visited child, no
            noise.
        temperature: of the visit distribution when sampling.
        c_init, c_base: the PUCT schedule (``pb_c_init``, ``pb_c_base``).
        dirichlet_alpha, dirichlet_epsilon: root noise ``(1 - eps) P + eps Dir(alpha)``.
        vote: how the final answer is chosen among the episodes' answers (:data:`VOTES`).
        value_bounds, clip_values: critic values are clipped into ``value_bounds`` (or refused
            when ``clip_values=False``).
        aggregation: how a process verifier's per-step scores become one value (``"last"``).
        max_nodes: node cap; the search stops with ``"max_nodes"`` at it.
        answer_fn: the canonical answer of a final state (votes, ``answer_text``, traces);
            without it votes compare ``state.key``.
    """

    def __init__(
        self,
        policy: Policy,
        verifier: Verifier | VerifierFn,
        *,
        num_simulations: int = 20,
        num_episodes: int = 1,
        episode_tree: str = "keep",
        sample: bool = True,
        temperature: float = 1.0,
        c_init: float = 1.25,
        c_base: float = 19652.0,
        dirichlet_alpha: float = 0.3,
        dirichlet_epsilon: float = 0.25,
        vote: str = "majority",
        value_bounds: tuple[float, float] = (-1.0, 1.0),
        clip_values: bool = True,
        aggregation: str = "last",
        max_nodes: int | None = None,
        answer_fn: AnswerFn | None = None,
    ) -> None:
        super().__init__(
            policy,
            verifier,
            c_init=c_init,
            c_base=c_base,
            vote=vote,
            value_bounds=value_bounds,
            clip_values=clip_values,
            aggregation=aggregation,
            max_nodes=max_nodes,
            answer_fn=answer_fn,
        )
        self.num_simulations = check_int("num_simulations", num_simulations)
        self.num_episodes = check_int("num_episodes", num_episodes)
        self.episode_tree = check_choice("episode_tree", episode_tree, _EPISODE_TREES)
        if not isinstance(sample, (bool, np.bool_)):
            raise TypeError(f"sample must be True or False, got {sample!r}")
        self.sample = bool(sample)
        self.temperature = _check_real("temperature", temperature, low=0.0)
        self.dirichlet_alpha = _check_real("dirichlet_alpha", dirichlet_alpha, low=0.0)
        if self.dirichlet_alpha == 0:
            raise ValueError("dirichlet_alpha must be > 0")
        self.dirichlet_epsilon = _check_real(
            "dirichlet_epsilon", dirichlet_epsilon, low=0.0, high=1.0
        )

    def search(self, root: State, budget: Budget, *, rng: np.random.Generator) -> SearchResult:
        """Run the episodes from ``root`` within ``budget``."""
        tree, meter = start_search(root, budget, rng, self.max_nodes)
        paths: list[_Path] = []
        stop_reason = "exhausted"
        try:
            for episode in range(self.num_episodes):
                if episode and self.episode_tree == "reset":
                    tree = Tree(root, max_nodes=self.max_nodes)
                elif episode and self.episode_tree == "clear":
                    tree.visits[: tree.num_nodes] = 0
                    tree.value_sum[: tree.num_nodes] = 0.0
                node, value = self._episode(tree, meter, rng)
                paths.append(self._finish(tree, node, value, meter, len(paths)))
        except Stop as stop:
            stop_reason = stop.reason
        return self._result(tree, meter, paths, stop_reason)

    def _episode(
        self, tree: Tree, meter: BudgetMeter, rng: np.random.Generator
    ) -> tuple[int, float]:
        """Moves from the root to a terminal state; returns it and its leaf value."""
        current = Tree.ROOT
        while not tree.terminal[current]:
            if tree.first_child[current] == Tree.UNEXPANDED:
                self._expand(tree, current, meter, rng)
            kids = tree.children(current)
            priors = None
            if self.sample:
                noise = rng.dirichlet(np.full(len(kids), self.dirichlet_alpha))
                eps = self.dirichlet_epsilon
                priors = (1.0 - eps) * tree.prior[kids.start : kids.stop] + eps * noise
            for _ in range(self.num_simulations):
                self._simulate(tree, current, meter, rng, priors)
            visits = tree.visits[kids.start : kids.stop]
            if self.sample:
                pi = visit_policy(visits, self.temperature)
                current = kids.start + int(rng.choice(len(pi), p=pi))
            else:
                current = kids.start + int(np.argmax(visits))
            tree.state(current)
        return current, self._leaf_value(tree, current, meter)


# ---------------------------------------------------------------------- MCTS-Rollout


class MCTSRollout(_TSLLMSearch):
    """TS-LLM's MCTS-Rollout: simulations from the original root until ``num_paths`` of them
    have reached a terminal state, or the budget is spent.

    Every simulation starts at the root (expanded first). One that ends at a terminal state is a
    path; a terminal node reached again is a path again (the reference counts every arrival, so
    votes count repeats). The answer is voted on over the paths with ``vote``.

    Args:
        policy, verifier: as :class:`MCTSAlpha` (the verifier is the critic).
        num_paths: paths to collect (TS-LLM's ``num_paths``).
        c_init, c_base, vote, value_bounds, clip_values, aggregation, max_nodes, answer_fn: as
            :class:`MCTSAlpha`. There is no root noise (the reference adds none here).
    """

    def __init__(
        self,
        policy: Policy,
        verifier: Verifier | VerifierFn,
        *,
        num_paths: int = 10,
        c_init: float = 1.25,
        c_base: float = 19652.0,
        vote: str = "majority",
        value_bounds: tuple[float, float] = (-1.0, 1.0),
        clip_values: bool = True,
        aggregation: str = "last",
        max_nodes: int | None = None,
        answer_fn: AnswerFn | None = None,
    ) -> None:
        super().__init__(
            policy,
            verifier,
            c_init=c_init,
            c_base=c_base,
            vote=vote,
            value_bounds=value_bounds,
            clip_values=clip_values,
            aggregation=aggregation,
            max_nodes=max_nodes,
            answer_fn=answer_fn,
        )
        self.num_paths = check_int("num_paths", num_paths)

    def search(self, root: State, budget: Budget, *, rng: np.random.Generator) -> SearchResult:
        """Collect up to ``num_paths`` paths from ``root`` within ``budget``."""
        tree, meter = start_search(root, budget, rng, self.max_nodes)
        paths: list[_Path] = []
        stop_reason = "exhausted"
        try:
            self._expand(tree, Tree.ROOT, meter, rng)
            while len(paths) < self.num_paths:
                leaf = self._simulate(tree, Tree.ROOT, meter, rng, None)
                if tree.terminal[leaf]:
                    value = self._leaf_value(tree, leaf, meter)
                    paths.append(self._finish(tree, leaf, value, meter, len(paths)))
        except Stop as stop:
            stop_reason = stop.reason
        return self._result(tree, meter, paths, stop_reason)
