"""Best-of-N sampling with a verifier: plain, weighted and majority vote.

Paper: Snell, Lee, Xu & Kumar, "Scaling LLM Test-Time Compute Optimally can be More Effective
than Scaling Model Parameters" (arXiv 2408.03314). Code: huggingface/search-and-learn
(``src/sal/search/best_of_n.py``, ``src/sal/utils/score.py``). Weighted best-of-N: Beeching,
Tunstall & Rush, "Scaling test-time compute with open models" (Hugging Face blog, 2024).

N complete solutions are sampled step by step (one batched policy call per step for all
unfinished samples; each sample draws one candidate in proportion to its prior), the finished
states are scored by the verifier, and the answer is chosen by

* ``"plain"``: the highest score;
* ``"weighted"``: the canonical answer with the largest sum of scores;
* ``"majority"``: the canonical answer given most often (weighted with every score 1).

This module also holds the helpers the other verifier-guided searches in this package (BFS,
DFS, beam search, best-first, DVTS) share: hyperparameter checks, the budgeted policy call with
the empty-expansion check, scoring with backup, answer voting and the result record.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Hashable, Sequence

import numpy as np

from ..backup import backup
from ..budget import Budget, BudgetMeter
from ..interfaces import Candidate, Policy, Score, State, Verifier, VerifierFn, as_verifier
from ..results import SearchResult, root_distribution, trace_from_path
from ..tree import Tree
from ._common import aggregate, check_aggregation, check_rng, expand_node, propose, score_states

__all__ = ["BestOfN"]

AnswerFn = Callable[[State], "str | None"]
_MODES = ("plain", "weighted", "majority")


class BestOfN:
    """Sample ``n`` complete solutions, score them, pick one by score or by vote.

    Args:
        policy: the generator; asked once per step for all unfinished samples together.
        verifier: scores the finished states (an outcome or process reward model).
        n: number of samples.
        max_depth: a sample stops at a terminal state or after this many steps.
        mode: ``"plain"`` (argmax score), ``"weighted"`` (largest score sum per answer) or
            ``"majority"`` (most frequent answer).
        aggregation: how a process verifier's per-step scores become one number: ``"last"``,
            ``"min"``, ``"prod"`` or ``"mean"`` (a Score without step scores uses its value).
        max_nodes: node cap for the tree; the search stops with ``"max_nodes"`` at it.
        answer_fn: canonical answer of a state for voting and ``answer_text``; ``None`` votes
            on ``state.key`` and leaves ``answer_text`` empty.

    The tree holds one root-to-leaf chain per sample (the root's children are the samples'
    first steps, one each, so two samples that agree are still two nodes); priors are the
    probabilities the steps were drawn with. Scored leaves are backed up, so the root's value is
    the mean score. ``traces`` holds one trace per scored sample.
    """

    def __init__(
        self,
        policy: Policy,
        verifier: Verifier | VerifierFn,
        *,
        n: int = 8,
        max_depth: int = 40,
        mode: str = "weighted",
        aggregation: str = "last",
        max_nodes: int | None = None,
        answer_fn: AnswerFn | None = None,
    ) -> None:
        self.policy, self.verify = _check_roles(policy, verifier)
        self.n = _check_int("n", n)
        self.max_depth = _check_int("max_depth", max_depth)
        self.mode = _check_choice("mode", mode, _MODES)
        self.aggregation = check_aggregation(aggregation)
        self.max_nodes = _check_max_nodes(max_nodes)
        self.answer_fn = _check_answer_fn(answer_fn)

    def search(self, root: State, budget: Budget, *, rng: np.random.Generator) -> SearchResult:
        """Sample, score and vote from ``root`` within ``budget``."""
        tree, meter = _start(root, budget, rng, self.max_nodes)
        nodes = [Tree.ROOT] * self.n  # the current node of every sample
        stop = "exhausted"
        while pending := [k for k in range(self.n) if not self._finished(tree, nodes[k])]:
            # One unit of work: one step of every unfinished sample, in one policy call.
            at_root = nodes[pending[0]] == Tree.ROOT  # the first step: every sample is there
            expanding = 1 if at_root else len(pending)
            if not meter.can(simulations=1, expansions=expanding):
                stop = meter.stop_reason or "exhausted"
                break
            meter.charge(simulations=1)
            states = [tree.state(nodes[k]) for k in pending]
            proposals = _propose_checked(self.policy, states, meter, rng)
            if proposals is None:
                stop = meter.stop_reason or "exhausted"
                break
            if not _fits(tree, len(pending)):
                stop = "max_nodes"
                break
            drawn = [_draw(cands, rng) for cands in proposals]
            if at_root:
                children = expand_node(tree, Tree.ROOT, drawn, normalise=False)
                for k, child in zip(pending, children, strict=True):
                    nodes[k] = child
            else:
                for k, cand in zip(pending, drawn, strict=True):
                    nodes[k] = expand_node(tree, nodes[k], [cand], normalise=False)[0]
            meter.charge(expansions=expanding)
            for k in pending:
                tree.state(nodes[k])  # records terminal flags
        done = [node for node in nodes if node != Tree.ROOT and self._finished(tree, node)]
        if done and not _score_nodes(self.verify, tree, done, meter, self.aggregation):
            stop = meter.stop_reason or "exhausted"
            done = []
        mode = "argmax" if self.mode == "plain" else self.mode
        chosen = _vote(tree, done, mode, self.answer_fn)
        return _make_result(tree, meter, chosen, done, self.answer_fn, stop)

    def _finished(self, tree: Tree, node: int) -> bool:
        return bool(tree.terminal[node]) or int(tree.depth[node]) >= self.max_depth


def _draw(candidates: Sequence[Candidate], rng: np.random.Generator) -> Candidate:
    """One candidate drawn in proportion to its prior (uniformly when all priors are 0),
    returned with its draw probability as the prior."""
    priors = np.fromiter((c.prior for c in candidates), dtype=np.float64, count=len(candidates))
    total = priors.sum()
    p = priors / total if total > 0 else np.full(len(priors), 1.0 / len(priors))
    i = int(rng.choice(len(p), p=p))
    return dataclasses.replace(candidates[i], prior=float(p[i]))


# ---------------------------------------------------------------------- shared helpers
# Used by bfs, dfs, beam, best_first and dvts as well.


def _check_int(name: str, value: object, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _check_choice(name: str, value: object, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return str(value)


def _check_max_nodes(max_nodes: object) -> int | None:
    return None if max_nodes is None else _check_int("max_nodes", max_nodes)


def _check_answer_fn(answer_fn: object) -> AnswerFn | None:
    if answer_fn is not None and not callable(answer_fn):
        raise TypeError(
            f"answer_fn must be a callable f(state) -> str | None, got {type(answer_fn).__name__}"
        )
    return answer_fn  # type: ignore[return-value]


def _check_roles(
    policy: object, verifier: Verifier | VerifierFn | None
) -> tuple[Policy, Callable[[Sequence[State]], list[Score]]]:
    if not isinstance(policy, Policy):
        raise TypeError(
            f"policy must have .propose(states, rng=..., max_tokens=...), got "
            f"{type(policy).__name__}"
        )
    if verifier is None:
        raise TypeError("a verifier is required: a .score(states) object or f(states) -> scores")
    return policy, as_verifier(verifier)


def _start(
    root: State, budget: Budget, rng: object, max_nodes: int | None
) -> tuple[Tree, BudgetMeter]:
    """Validate the arguments of ``search`` and create its tree and meter."""
    check_rng(rng)
    meter = BudgetMeter(budget)
    if not isinstance(root, State):
        raise TypeError(f"root must be a treesearch State, got {type(root).__name__}")
    tree = Tree(root, max_nodes=max_nodes)
    if tree.terminal[Tree.ROOT]:
        raise ValueError(f"cannot search from a terminal state: {root!r}")
    return tree, meter


def _propose_checked(
    policy: Policy, states: Sequence[State], meter: BudgetMeter, rng: np.random.Generator
) -> list[list[Candidate]] | None:
    """Candidates for every state, or ``None`` when the budget ends the search.

    A policy that was given a token allowance may return no candidates for a state because the
    allowance ran out: with a token budget set, an empty list ends the search with ``"tokens"``
    (the call's other candidates are dropped). Without one, an empty list is an error.
    """
    proposals = propose(policy, states, meter, rng)
    if proposals is None:
        return None
    for state, cands in zip(states, proposals, strict=True):
        if not cands:
            if meter.budget.tokens is not None:
                meter.stop_reason = meter.stop_reason or "tokens"
                return None
            raise ValueError(
                f"empty expansion: {type(policy).__name__}.propose returned no candidates for "
                f"the non-terminal state {state!r}"
            )
    return proposals


def _top_by_prior(candidates: Sequence[Candidate], m: int) -> list[Candidate]:
    """The ``m`` candidates with the highest prior (ties: earlier first), in their order."""
    if len(candidates) <= m:
        return list(candidates)
    keep = sorted(range(len(candidates)), key=lambda j: -candidates[j].prior)[:m]
    return [candidates[j] for j in sorted(keep)]


def _fits(tree: Tree, extra: int) -> bool:
    room = tree.room()
    return room is None or extra <= room


def _score_nodes(
    verify: Callable[[Sequence[State]], list[Score]],
    tree: Tree,
    nodes: Sequence[int],
    meter: BudgetMeter,
    aggregation: str,
) -> bool:
    """Score ``nodes`` in one verifier call, store the scores and back them up.

    Returns False (nothing scored) when the budget refuses the call.
    """
    scores = score_states(verify, [tree.state(i) for i in nodes], meter)
    if scores is None:
        return False
    for node, score in zip(nodes, scores, strict=True):
        value = aggregate(score, aggregation)
        if not math.isfinite(value):
            raise ValueError(f"aggregated score of node {node} is not finite: {value}")
        tree.score[node] = value
        backup(tree, node, value)
    return True


def _best(tree: Tree, nodes: Sequence[int]) -> int | None:
    """The highest-scored of ``nodes`` (ties: earlier in ``nodes``), ignoring unscored ones."""
    best = None
    for node in nodes:
        s = tree.score[node]
        if not math.isnan(s) and (best is None or s > tree.score[best]):
            best = node
    return best


def _vote(tree: Tree, nodes: Sequence[int], mode: str, answer_fn: AnswerFn | None) -> int | None:
    """The chosen node among scored ``nodes``: ``"argmax"`` score, or the best-scored node of
    the answer with the largest ``"weighted"`` score sum / ``"majority"`` count.

    Answers are ``answer_fn(state)`` (``state.key`` without one); states whose answer is
    ``None`` do not vote, and when none votes the argmax is returned. Ties go to the answer
    seen first.
    """
    nodes = [i for i in nodes if not math.isnan(tree.score[i])]
    best = _best(tree, nodes)
    if mode == "argmax" or best is None:
        return best
    answers: list[Hashable] = [
        answer_fn(tree.state(i)) if answer_fn is not None else tree.state(i).key for i in nodes
    ]
    totals: dict[Hashable, float] = {}
    for node, answer in zip(nodes, answers, strict=True):
        if answer is not None:
            weight = 1.0 if mode == "majority" else float(tree.score[node])
            totals[answer] = totals.get(answer, 0.0) + weight
    if not totals:
        return best
    winner = max(totals, key=totals.__getitem__)  # first maximum in insertion order
    return _best(tree, [i for i, a in zip(nodes, answers, strict=True) if a == winner])


def _make_result(
    tree: Tree,
    meter: BudgetMeter,
    chosen: int | None,
    pool: Sequence[int],
    answer_fn: AnswerFn | None,
    stop_reason: str,
) -> SearchResult:
    """The result record: ``chosen`` is the answer node, ``pool`` the nodes traced."""
    path = tree.path(chosen) if chosen is not None else []
    actions, dist = root_distribution(tree)
    answer = tree.state(chosen) if chosen is not None else None
    traces = tuple(
        trace_from_path(tree, i, answer=answer_fn(tree.state(i)) if answer_fn else None)
        for i in pool
    )
    return SearchResult(
        action=tree.actions[path[1]] if len(path) > 1 else None,
        actions=actions,
        visit_distribution=dist,
        root_value=tree.q(Tree.ROOT),
        tree=tree,
        usage=meter.usage(),
        traces=traces,
        answer=answer,
        answer_text=answer_fn(answer) if answer_fn is not None and answer is not None else None,
        stop_reason=stop_reason,
    )
