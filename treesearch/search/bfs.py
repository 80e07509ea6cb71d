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
from ._common import (
    AnswerFn,
    Stop,
    best,
    by_score,
    check_aggregation,
    check_answer_fn,
    check_int,
    check_max_nodes,
    check_roles,
    expand_and_score,
    make_result,
    start_search,
    start_unit,
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
        self.policy, self.verify = check_roles(policy, verifier)
        self.beam_size = check_int("beam_size", beam_size)
        self.max_depth = check_int("max_depth", max_depth)
        self.aggregation = check_aggregation(aggregation)
        self.max_nodes = check_max_nodes(max_nodes)
        self.answer_fn = check_answer_fn(answer_fn)

    def search(self, root: State, budget: Budget, *, rng: np.random.Generator) -> SearchResult:
        """Search level by level from ``root`` within ``budget``."""
        tree, meter = start_search(root, budget, rng, self.max_nodes)
        frontier = [Tree.ROOT]
        finished: list[int] = []
        stop = "exhausted"
        try:
            for _ in range(self.max_depth):
                start_unit(meter, expansions=len(frontier))
                made = expand_and_score(self, tree, meter, rng, frontier)
                children = [i for block in made for i in block]
                finished.extend(i for i in children if tree.terminal[i])
                open_ = [i for i in children if not tree.terminal[i]]
                frontier = by_score(tree, open_)[: self.beam_size]  # ties: the earlier child
                if not frontier:
                    break
        except Stop as e:
            stop = e.reason
        last = [i for i in frontier if i != Tree.ROOT]
        chosen = best(tree, finished) if finished else best(tree, last)
        return make_result(tree, meter, chosen, finished + last, self.answer_fn, stop)
