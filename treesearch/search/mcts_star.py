"""MCTS*: the value-guided tree search of ReST-MCTS*.

Paper: Zhang, Zhoubian, Hu, Yue, Dong & Tang, "ReST-MCTS*: LLM Self-Training via Process Reward
Guided Tree Search" (arXiv 2406.03816). Code: THUDM/ReST-MCTS (``MCTS/mcts.py``,
``MCTS/base.py``, ``MCTS/task.py``). ``docs/algorithms.md`` section 3 describes it.

A node is a partial solution with a value V in ``[low, high]`` (default ``[0, 1]``) from a
value model or PRM (the verifier; scores are cached by ``state.key``) and a visit count N.
Every iteration:

1. **Selection.** From the root, descend through expanded nodes to the child with the highest
   ``V_c + c * sqrt(2 ln N_parent / N_c)``; an unvisited child scores ``V_c + inf_bonus`` (a fixed
   bonus, not infinity, so a poor unvisited child can lose to a good visited one). Ties are
   broken at random.
2. **End leaves.** A selected *end leaf* is never expanded: its V reaches ``end_gate``, its
   state is terminal (a reasoning state that ended with EOS), ``is_end(state)`` holds (the
   reference's self-critique "solved" or "answer is" check), it is at ``max_depth``, or its
   expansion found no step. In ``"evaluation"`` mode a selected end leaf that passes the value
   gate ends the search (``stop_reason="solved"``; without a gate, ``end_gate=None``, any
   selected end leaf does); otherwise it is backed up (step 5) and the search goes on, as in
   the reference code (``executeRound``), where a finished state below the gate is revisited
   rather than accepted.
3. **Expansion.** ``branch`` next steps are sampled (each sample slot asks the policy up to
   ``retries`` times until it gets a step; one candidate is drawn from each answer in
   proportion to its prior); steps repeating an earlier step of the node are skipped; every
   new child is scored by the verifier and its V set to the score.
4. **Simulation** (value rollouts). From the best child by the selection rule, roll forward up
   to ``roll_forward_steps`` steps, each time sampling ``roll_branch`` candidates and moving to
   the highest-valued one (``roll_policy="greedy"``, all candidates scored) or a random one
   (``"random"``, only it scored); the rollout stops early at a terminal or ``is_end`` state.
   With ``best`` the largest value seen (starting from ``low``; the child's own V when the child
   is an end leaf), the child's value becomes ``V <- (1 - alpha) V + alpha * best`` and its N
   grows by one. Rollout states are not added to the tree.
5. **Backup.** From the expanded (or selected end) node up to the root, iteratively: ``N += 1``
   and, for a node with children, ``V = sum(N_c V_c) / sum(N_c)`` over its children (when some
   child has been visited).

Modes: ``"evaluation"`` stops at the first selected end leaf past the gate and answers with it
(else with the end leaf of highest V, else the node of highest V, like the reference's
``getBestV``); ``"generation"`` (data generation for self-training) runs every iteration and
keeps every end leaf. In both modes ``SearchResult.traces`` holds one trace per end leaf (node
order), with ``TraceStep.value`` the node's V (also for end leaves never visited) and
``metadata["end"]`` saying why it is an end leaf (``"value"``, ``"terminal"``, ``"is_end"``,
``"max_depth"`` or ``"dead_end"``).

Defaults are the reference's evaluation settings (:data:`EVALUATION_DEFAULTS`: 100 iterations,
branch 3, c 0.4, end gate 0.9, bonus 0.8, 2 rollout steps, alpha 0.5); its self-training data
generation (``self_train/generation/generate_both_samples_MATH.py``) uses
:data:`SELF_TRAINING_DEFAULTS` (50 iterations, c 0.5, end gate 0.8, bonus 0.9, 1 rollout step),
which :meth:`MCTSStar.for_self_training` applies.

**Budget.** One iteration is one ``simulations`` unit; an expansion charges one ``expansions``;
every state given to the policy one ``policy_calls`` (plus its ``tokens``); every state scored
(cache misses only) one ``verifier_calls``. Each piece of work is asked for before it starts,
so the budget is never exceeded: an expansion whose children cannot all be scored adds none;
a rollout the budget cuts short updates the child with the values it saw (if any); the search
then stops with the refusing limit as ``stop_reason``.

``tree.q(node)`` is V for every visited node (``value_sum = V * N``); ``tree.score`` is the
verifier's (unclamped) score. MCTS* is a single-agent search: values are for the one player
and are never negated (``ValueError`` if a state's ``to_play`` differs from the root's).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

import numpy as np

from ..budget import Budget, BudgetMeter
from ..interfaces import Candidate, Policy, State, Verifier, VerifierFn
from ..results import SearchResult, Trace, root_distribution, trace_from_path
from ..tree import Tree
from ._common import (
    AnswerFn,
    GuidedSearch,
    Stop,
    aggregate,
    check_choice,
    check_int,
    check_legal,
    expand_node,
    log_stop,
    normalised_priors,
    propose,
    require_room,
    require_scores,
    score_states,
    start_search,
    unique,
    user_call,
)

__all__ = [
    "EVALUATION_DEFAULTS",
    "SELF_TRAINING_DEFAULTS",
    "MCTSStar",
    "mix_rollout",
    "uct_scores",
    "weighted_value",
]

EVALUATION_DEFAULTS: Mapping[str, Any] = {
    "iterations": 100,
    "branch": 3,
    "c": 0.4,
    "end_gate": 0.9,
    "inf_bonus": 0.8,
    "roll_forward_steps": 2,
    "alpha": 0.5,
}
"""The reference's evaluation settings (the defaults of :class:`MCTSStar`)."""

SELF_TRAINING_DEFAULTS: Mapping[str, Any] = {
    "iterations": 50,
    "branch": 3,
    "c": 0.5,
    "end_gate": 0.8,
    "inf_bonus": 0.9,
    "roll_forward_steps": 1,
    "alpha": 0.5,
    "mode": "generation",
}
"""The reference's self-training data-generation settings (:meth:`MCTSStar.for_self_training`)."""

_MODES = ("evaluation", "generation")
_ROLL_POLICIES = ("greedy", "random")


# ---------------------------------------------------------------------- the formulas


def uct_scores(
    values: np.ndarray | Sequence[float],
    visits: np.ndarray | Sequence[int],
    parent_visits: int,
    *,
    c: float,
    inf_bonus: float,
) -> np.ndarray:
    """MCTS*'s selection score per child: ``V_c + c * sqrt(2 ln N_parent / N_c)`` for a visited
    child, ``V_c + inf_bonus`` for an unvisited one.

    With ``N_parent = 10``, ``c = 0.4``: a child with ``N = 3, V = 0.6`` scores
    ``0.6 + 0.4 * sqrt(2 ln 10 / 3) = 1.0956``, an unvisited child with ``V = 0.3`` and bonus
    0.8 scores 1.1.
    """
    v = np.asarray(values, dtype=np.float64)
    n = np.asarray(visits, dtype=np.float64)
    if v.shape != n.shape:
        raise ValueError(f"values of shape {v.shape} but visits of shape {n.shape}")
    scores = v + inf_bonus
    seen = n > 0
    if seen.any():
        log_n = math.log(max(int(parent_visits), 1))
        scores[seen] = v[seen] + c * np.sqrt(2.0 * log_n / n[seen])
    return scores


def weighted_value(
    values: np.ndarray | Sequence[float], visits: np.ndarray | Sequence[int]
) -> float | None:
    """The backed-up value of a node, ``sum(N_c V_c) / sum(N_c)`` over its children, or
    ``None`` when no child has been visited. Children ``(N=3, V=0.6)`` and ``(N=1, V=0.2)``
    give 0.5."""
    v = np.asarray(values, dtype=np.float64)
    n = np.asarray(visits, dtype=np.float64)
    total = float(n.sum())
    if total <= 0:
        return None
    return float((v * n).sum() / total)


def mix_rollout(value: float, best: float, alpha: float) -> float:
    """A child's value after a value rollout that saw ``best`` at most:
    ``(1 - alpha) * value + alpha * best``."""
    return (1.0 - alpha) * value + alpha * best


# ---------------------------------------------------------------------- argument checks


def _check_real(name: str, value: object, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    x = float(value)
    if not math.isfinite(x) or not low <= x <= high:
        raise ValueError(f"{name} must be in [{low}, {high}], got {value!r}")
    return x


class MCTSStar(GuidedSearch):
    """MCTS* (ReST-MCTS*): UCT on values, expansion with retries, value rollouts mixed in with
    ``alpha``, visit-weighted value backup (see the module docstring).

    Args:
        policy: proposes next steps (``propose(states, rng=, max_tokens=)``); each sample slot
            sends one state and draws one of the candidates returned, in proportion to prior.
        verifier: the value model / PRM: a ``.score(states)`` object or ``f(states)``; scores
            are aggregated with ``aggregation`` and clamped to ``[low, high]``.
        iterations: at most this many iterations (select, expand, roll out, back up).
        branch: steps sampled per expansion.
        retries: times a sample slot asks the policy before giving up (the reference's 3).
        c: exploration constant.
        end_gate: a node whose V reaches it is an end leaf (``None``: no value gate; use that
            when the verifier scores step correctness rather than progress, e.g. a PRM, whose
            score is high after any correct step; the reference's PRM mode has no gate either).
        inf_bonus: the bonus of an unvisited child (the reference's ``INF``).
        roll_forward_steps: steps of each value rollout (0: no rollouts).
        roll_branch: candidates sampled per rollout step.
        roll_policy: ``"greedy"`` (move to the best-valued candidate) or ``"random"``.
        alpha: weight of the rollout's best value in the child's new V.
        mode: ``"evaluation"`` or ``"generation"`` (see the module docstring).
        low, high: values are clamped to this range; ``low`` starts a rollout's maximum.
        is_end: optional predicate ``is_end(state) -> bool`` marking end states (e.g. "the text
            gives an answer").
        max_depth: nodes this deep are end leaves (``None``: no limit).
        aggregation, max_nodes, answer_fn: as for every verifier-guided search
            (:class:`~treesearch.search._common.GuidedSearch`).
    """

    def __init__(
        self,
        policy: Policy,
        verifier: Verifier | VerifierFn,
        *,
        iterations: int = 100,
        branch: int = 3,
        retries: int = 3,
        c: float = 0.4,
        end_gate: float | None = 0.9,
        inf_bonus: float = 0.8,
        roll_forward_steps: int = 2,
        roll_branch: int = 1,
        roll_policy: str = "greedy",
        alpha: float = 0.5,
        mode: str = "evaluation",
        low: float = 0.0,
        high: float = 1.0,
        is_end: Callable[[State], bool] | None = None,
        max_depth: int | None = None,
        aggregation: str = "last",
        max_nodes: int | None = None,
        answer_fn: AnswerFn | None = None,
    ) -> None:
        super().__init__(
            policy, verifier, aggregation=aggregation, max_nodes=max_nodes, answer_fn=answer_fn
        )
        self.iterations = check_int("iterations", iterations)
        self.branch = check_int("branch", branch)
        self.retries = check_int("retries", retries)
        self.roll_forward_steps = check_int("roll_forward_steps", roll_forward_steps, 0)
        self.roll_branch = check_int("roll_branch", roll_branch)
        self.roll_policy = check_choice("roll_policy", roll_policy, _ROLL_POLICIES)
        self.mode = check_choice("mode", mode, _MODES)
        self.c = _check_real("c", c, 0.0, math.inf)
        self.inf_bonus = _check_real("inf_bonus", inf_bonus, 0.0, math.inf)
        self.alpha = _check_real("alpha", alpha, 0.0, 1.0)
        self.low = _check_real("low", low, -math.inf, math.inf)
        self.high = _check_real("high", high, -math.inf, math.inf)
        if not self.low < self.high:
            raise ValueError(f"low ({low}) must be below high ({high})")
        self.end_gate = (
            None if end_gate is None else _check_real("end_gate", end_gate, self.low, self.high)
        )
        if is_end is not None and not callable(is_end):
            raise TypeError(f"is_end must be a callable is_end(state) -> bool, got {is_end!r}")
        self.is_end = is_end
        self.max_depth = None if max_depth is None else check_int("max_depth", max_depth)

    @classmethod
    def for_self_training(
        cls, policy: Policy, verifier: Verifier | VerifierFn, **overrides: Any
    ) -> MCTSStar:
        """An MCTS* with the reference's self-training settings (:data:`SELF_TRAINING_DEFAULTS`,
        ``mode="generation"``), any of them replaced by ``overrides``."""
        return cls(policy, verifier, **{**SELF_TRAINING_DEFAULTS, **overrides})

    def search(self, root: State, budget: Budget, *, rng: np.random.Generator) -> SearchResult:
        """Run MCTS* from ``root`` within ``budget``."""
        tree, meter = start_search(root, budget, rng, self.max_nodes)
        run = _Run(self, tree, meter, rng)
        if run.end_reason(Tree.ROOT) is not None:
            raise ValueError(f"cannot search from an end state (is_end or max_depth): {root!r}")
        return run.go()


class _Run:
    """The mutable state of one MCTS* search: the tree, V per node, the value cache."""

    def __init__(
        self, search: MCTSStar, tree: Tree, meter: BudgetMeter, rng: np.random.Generator
    ) -> None:
        self.s = search
        self.tree = tree
        self.meter = meter
        self.rng = rng
        self.values = np.zeros(tree.capacity, dtype=np.float64)  # V; the root starts at 0
        self.cache: dict[Hashable, float] = {}  # state.key -> aggregated verifier score
        self.dead: set[int] = set()  # nodes whose expansion found no step
        self.player = int(tree.to_play[Tree.ROOT])

    # ------------------------------------------------------------------ the loop
    def go(self) -> SearchResult:
        s, meter = self.s, self.meter
        stop = "exhausted"
        solved: int | None = None
        try:
            for _ in range(s.iterations):
                if not meter.can(simulations=1):
                    raise Stop(meter.stop_reason or "exhausted")
                meter.charge(simulations=1)
                path = self.select()
                node = path[-1]
                if self.end_reason(node) is not None:
                    if node == Tree.ROOT:  # the root has no step to offer: nothing can change
                        break
                    if s.mode == "evaluation" and self.passes_gate(node):
                        solved = node
                        stop = "solved"
                        break
                    self.backup(path)
                    continue
                children = self.expand(node)
                if children:
                    try:
                        self.simulate(node)
                    finally:  # a rollout cut short by the budget still leaves a backed-up tree
                        self.backup(path)
                else:
                    self.backup(path)
        except Stop as e:
            stop = e.reason
        return self.result(solved, stop)

    # ------------------------------------------------------------------ node properties
    def value(self, node: int) -> float:
        return float(self.values[node])

    def set_value(self, node: int, value: float) -> None:
        self.values[node] = value
        self.tree.value_sum[node] = value * float(self.tree.visits[node])

    def clamp(self, value: float) -> float:
        return min(self.s.high, max(self.s.low, value))

    def passes_gate(self, node: int) -> bool:
        gate = self.s.end_gate
        if gate is None:
            return True  # without a gate every end leaf is acceptable
        return node != Tree.ROOT and self.value(node) >= gate

    def state_end(self, state: State, depth: int) -> str | None:
        """Why ``state`` (at ``depth``) ends a path, ignoring values; ``None`` if it does not."""
        if state.is_terminal():
            return "terminal"
        if self.s.is_end is not None:
            with user_call("is_end", [state]):
                ended = self.s.is_end(state)
            if ended:
                return "is_end"
        if self.s.max_depth is not None and depth >= self.s.max_depth:
            return "max_depth"
        return None

    def end_reason(self, node: int) -> str | None:
        """Why ``node`` is an end leaf, or ``None`` when it can still be expanded."""
        if self.tree.is_expanded(node):
            return None
        if node in self.dead:
            return "dead_end"
        reason = self.state_end(self.tree.state(node), int(self.tree.depth[node]))
        if reason is not None:
            return reason
        gate = self.s.end_gate
        if gate is not None and node != Tree.ROOT and self.value(node) >= gate:
            return "value"
        return None

    # ------------------------------------------------------------------ selection
    def best_child(self, node: int) -> int:
        tree = self.tree
        kids = tree.children(node)
        scores = uct_scores(
            self.values[kids.start : kids.stop],
            tree.visits[kids.start : kids.stop],
            int(tree.visits[node]),
            c=self.s.c,
            inf_bonus=self.s.inf_bonus,
        )
        top = np.flatnonzero(scores == scores.max())
        pick = int(top[0]) if len(top) == 1 else int(self.rng.choice(top))
        return kids.start + pick

    def select(self) -> list[int]:
        path = [Tree.ROOT]
        while self.tree.is_expanded(path[-1]):
            path.append(self.best_child(path[-1]))
        return path

    # ------------------------------------------------------------------ policy and verifier
    def sample_steps(self, state: State, count: int, node: int | None) -> list[Candidate]:
        """Up to ``count`` sampled steps from ``state``, duplicates removed; each slot asks the
        policy up to ``retries`` times. Raises :class:`Stop` when the budget refuses a call."""
        got: list[Candidate | None] = [None] * count
        for _ in range(self.s.retries):
            missing = [i for i, c in enumerate(got) if c is None]
            if not missing:
                break
            proposals = propose(self.s.policy, [state] * len(missing), self.meter, self.rng)
            if proposals is None:
                raise Stop(self.meter.stop_reason or "exhausted")
            for slot, candidates in zip(missing, proposals, strict=True):
                if not candidates:
                    continue
                if node is not None:
                    check_legal(self.s.policy, self.tree, node, candidates)
                else:
                    _check_open_or_legal(self.s.policy, state, candidates)
                got[slot] = self.draw(candidates)
        return unique([c for c in got if c is not None], key=lambda c: c.action)

    def draw(self, candidates: Sequence[Candidate]) -> Candidate:
        if len(candidates) == 1:
            return candidates[0]
        p = normalised_priors(candidates)
        return candidates[int(self.rng.choice(len(p), p=p))]

    def score(self, states: Sequence[State], *, reserved: bool = False) -> list[float]:
        """Clamped values of ``states``; cache misses are scored in one verifier call (one
        ``verifier_calls`` per distinct new key). Raises :class:`Stop` when refused."""
        missing = unique([s for s in states if s.key not in self.cache], key=lambda s: s.key)
        if missing:
            if not reserved:
                require_scores(self.meter, len(missing))
            scores = score_states(self.s.verify, missing, self.meter, reserved=True)
            assert scores is not None  # reserved: the allowance was checked above
            for state, score in zip(missing, scores, strict=True):
                value = aggregate(score, self.s.aggregation)
                if not math.isfinite(value):
                    raise ValueError(f"the verifier gave a non-finite value for {state!r}")
                self.cache[state.key] = value
        return [self.clamp(self.cache[s.key]) for s in states]

    def uncached(self, states: Sequence[State]) -> int:
        return len({s.key for s in states if s.key not in self.cache})

    def check_player(self, state: State) -> None:
        if int(state.to_play) != self.player:
            raise ValueError(
                "MCTS* is a single-agent search, but a state has to_play "
                f"{state.to_play} while the root has {self.player}: {state!r}"
            )

    # ------------------------------------------------------------------ expansion
    def expand(self, node: int) -> list[int]:
        """Sample, add and score the children of ``node``; ``[]`` (and ``node`` marked a dead
        end) when no step came back. Adds nothing when the budget refuses any part."""
        tree, meter = self.tree, self.meter
        if not meter.can(expansions=1):
            raise Stop(meter.stop_reason or "exhausted")
        state = tree.state(node)
        candidates = self.sample_steps(state, self.s.branch, node)
        if not candidates:
            self.dead.add(node)
            return []
        require_room(tree, len(candidates))
        states = [state.step(c.action) for c in candidates]
        for child_state in states:
            self.check_player(child_state)
        require_scores(meter, self.uncached(states))
        meter.charge(expansions=1)
        children = expand_node(tree, node, candidates)
        if len(self.values) < tree.capacity:
            grown = np.zeros(tree.capacity, dtype=np.float64)
            grown[: len(self.values)] = self.values
            self.values = grown
        values = self.score([tree.state(i) for i in children], reserved=True)
        for child, value in zip(children, values, strict=True):
            tree.score[child] = self.cache[tree.state(child).key]
            self.values[child] = value
        return list(children)

    # ------------------------------------------------------------------ simulation
    def simulate(self, node: int) -> None:
        """A value rollout from the best child of ``node``, mixed into the child's V."""
        s, tree = self.s, self.tree
        if s.roll_forward_steps == 0:
            return
        child = self.best_child(node)
        if self.end_reason(child) is not None:
            best: float | None = self.value(child)  # the reference returns the node's own V
        else:
            best = self.rollout(tree.state(child), int(tree.depth[child]))
        if best is None:
            return
        tree.visits[child] += 1
        self.set_value(child, mix_rollout(self.value(child), best, s.alpha))

    def rollout(self, state: State, depth: int) -> float | None:
        """The largest value seen in a rollout of up to ``roll_forward_steps`` steps from
        ``state`` (``low`` if the first step finds no candidate). ``None`` when the budget
        stopped it before any value was seen; a later refusal returns what was seen and
        raises :class:`Stop` in :meth:`go`'s next budget check."""
        s = self.s
        best = s.low
        seen = False
        try:
            for _ in range(s.roll_forward_steps):
                candidates = self.sample_steps(state, s.roll_branch, None)
                if not candidates:
                    break
                if s.roll_policy == "greedy":
                    nexts = [state.step(c.action) for c in candidates]
                    values = self.score(nexts)
                    pick = int(np.argmax(values))  # ties: the first, as numpy.argmax
                    state, value = nexts[pick], values[pick]
                else:
                    pick = int(self.rng.integers(len(candidates)))
                    state = state.step(candidates[pick].action)
                    (value,) = self.score([state])
                seen = True
                best = max(best, value)
                depth += 1
                if self.state_end(state, depth) is not None:
                    break
        except Stop:
            if not seen:
                raise
            # Keep what the rollout saw; the next budget check in go() stops the search.
        return best

    # ------------------------------------------------------------------ backup
    def backup(self, path: Sequence[int]) -> None:
        """``N += 1`` and ``V = sum(N_c V_c) / sum(N_c)`` from the last node of ``path`` up."""
        tree = self.tree
        for node in reversed(path):
            tree.visits[node] += 1
            kids = tree.children(node)
            if len(kids):
                value = weighted_value(
                    self.values[kids.start : kids.stop], tree.visits[kids.start : kids.stop]
                )
                if value is not None:
                    self.values[node] = value
            self.set_value(node, self.value(node))

    # ------------------------------------------------------------------ result
    def end_leaves(self) -> list[tuple[int, str]]:
        out = []
        for node in range(1, self.tree.num_nodes):
            reason = self.end_reason(node)
            if reason is not None:
                out.append((node, reason))
        return out

    def trace(self, node: int, reason: str) -> Trace:
        tree, answer_fn = self.tree, self.s.answer_fn
        base = trace_from_path(
            tree, node, answer=answer_fn(tree.state(node)) if answer_fn is not None else None
        )
        steps = tuple(
            dataclasses.replace(step, value=self.value(i))
            for step, i in zip(base.steps, tree.path(node)[1:], strict=True)
        )
        return dataclasses.replace(base, steps=steps, metadata={"end": reason})

    def result(self, solved: int | None, stop: str) -> SearchResult:
        tree = self.tree
        leaves = self.end_leaves()
        chosen = solved
        if chosen is None and leaves:
            chosen = max((node for node, _ in leaves), key=lambda i: (self.value(i), -i))
        if chosen is None and tree.num_nodes > 1:
            chosen = max(range(1, tree.num_nodes), key=lambda i: (self.value(i), -i))
        path = tree.path(chosen) if chosen is not None else []
        actions, dist = root_distribution(tree)
        answer = tree.state(chosen) if chosen is not None else None
        answer_fn = self.s.answer_fn
        result = SearchResult(
            action=tree.actions[path[1]] if len(path) > 1 else None,
            actions=actions,
            visit_distribution=dist,
            root_value=tree.q(Tree.ROOT),
            tree=tree,
            usage=self.meter.usage(),
            traces=tuple(self.trace(node, reason) for node, reason in leaves),
            answer=answer,
            answer_text=answer_fn(answer) if answer_fn is not None and answer is not None else None,
            stop_reason=stop,
        )
        log_stop("MCTSStar", stop, result.usage, tree.num_nodes)
        return result


def _check_open_or_legal(policy: object, state: State, candidates: Sequence[Candidate]) -> None:
    """Raise unless every candidate is legal where ``state`` lists its legal actions (a rollout
    state is not in the tree, so :func:`check_legal` cannot be used)."""
    legal = state.legal_actions()
    if not legal:
        return
    allowed = set(legal)
    for c in candidates:
        if c.action not in allowed:
            raise ValueError(
                f"{type(policy).__name__}.propose returned illegal action {c.action!r} for "
                f"{state!r}; legal actions: {tuple(legal)!r}"
            )
