"""Tree-of-Thoughts breadth-first search (ToT-BFS).

Paper: Yao, Yu, Zhao, Shafran, Griffiths, Cao & Narasimhan, "Tree of Thoughts: Deliberate
Problem Solving with Large Language Models" (NeurIPS 2023, arXiv 2305.10601), Algorithm 1.

Level by level: every state of the frontier is expanded by the policy (one batched call per
level), all children are scored by the verifier (one batched call), terminal children go to a
finished pool, and the ``beam_size`` best-scored non-terminal children (ties: earlier first)
form the next frontier, for at most ``max_depth`` levels. The answer is the best-scored
finished state, or the best state of the last frontier when none finished.
"""

from __future__ import annotations

import numpy as np

from ..budget import Budget
from ..interfaces import Policy, State, Verifier, VerifierFn
from ..results import SearchResult
from ..tree import Tree
from ._common import check_aggregation, expand_node
from .best_of_n import (
    AnswerFn,
    _best,
    _check_answer_fn,
    _check_int,
    _check_max_nodes,
    _check_roles,
    _fits,
    _make_result,
    _propose_checked,
    _score_nodes,
    _start,
)

__all__ = ["BFS"]


class BFS:
    """Breadth-first search keeping the ``beam_size`` best states per level.

    Args:
        policy: proposes the children of every frontier state.
        verifier: scores every child (ToT's state evaluator).
        beam_size: states kept per level (ToT's ``b``).
        max_depth: number of levels (ToT's ``T``).
        aggregation: how a process verifier's per-step scores become one number: ``"last"``,
            ``"min"``, ``"prod"`` or ``"mean"`` (a Score without step scores uses its value).
        max_nodes: node cap for the tree; the search stops with ``"max_nodes"`` at it.
        answer_fn: canonical answer string of a state, for ``answer_text`` and the traces.

    One level is one unit of work (``simulations``); it is done whole or not at all. Every
    scored child is backed up once, so a node's visits count the scored states below it.
    ``traces`` holds the finished states, then the last frontier.
    """

    def __init__(
        self,
        policy: Policy,
        verifier: Verifier | VerifierFn,
        *,
        beam_size: int = 5,
        max_depth: int = 10,
        aggregation: str = "last",
        max_nodes: int | None = None,
        answer_fn: AnswerFn | None = None,
    ) -> None:
        self.policy, self.verify = _check_roles(policy, verifier)
        self.beam_size = _check_int("beam_size", beam_size)
        self.max_depth = _check_int("max_depth", max_depth)
        self.aggregation = check_aggregation(aggregation)
        self.max_nodes = _check_max_nodes(max_nodes)
        self.answer_fn = _check_answer_fn(answer_fn)

    def search(self, root: State, budget: Budget, *, rng: np.random.Generator) -> SearchResult:
        """Search level by level from ``root`` within ``budget``."""
        tree, meter = _start(root, budget, rng, self.max_nodes)
        frontier = [Tree.ROOT]
        finished: list[int] = []
        stop = "exhausted"
        for _ in range(self.max_depth):
            if not meter.can(simulations=1, expansions=len(frontier)):
                stop = meter.stop_reason or "exhausted"
                break
            meter.charge(simulations=1)
            states = [tree.state(i) for i in frontier]
            proposals = _propose_checked(self.policy, states, meter, rng)
            if proposals is None:
                stop = meter.stop_reason or "exhausted"
                break
            if not _fits(tree, sum(len(c) for c in proposals)):
                stop = "max_nodes"
                break
            children = [
                child
                for node, cands in zip(frontier, proposals, strict=True)
                for child in expand_node(tree, node, cands)
            ]
            meter.charge(expansions=len(frontier))
            if not _score_nodes(self.verify, tree, children, meter, self.aggregation):
                stop = meter.stop_reason or "exhausted"
                break
            finished.extend(i for i in children if tree.terminal[i])
            open_ = [i for i in children if not tree.terminal[i]]
            open_.sort(key=lambda i: -tree.score[i])  # stable: ties keep the earlier child
            frontier = open_[: self.beam_size]
            if not frontier:
                break
        last = [i for i in frontier if i != Tree.ROOT]
        chosen = _best(tree, finished) if finished else _best(tree, last)
        return _make_result(tree, meter, chosen, finished + last, self.answer_fn, stop)
