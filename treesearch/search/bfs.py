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
    GuidedSearch,
    Stop,
    best,
    by_score,
    check_int,
    check_unit,
    expand_and_score,
    make_result,
    root_score,
    start_search,
)

__all__ = ["BFS"]


class BFS(GuidedSearch):
    """Breadth-first search keeping the ``beam_size`` best states per level.

    Args:
        policy: proposes the children of every frontier state.
        verifier: scores every child (ToT's state evaluator).
        beam_size: states kept per level (ToT's ``b``).
        max_depth: number of levels (ToT's ``T``).
        aggregation, max_nodes, answer_fn: as for every verifier-guided search
            (:class:`~treesearch.search._common.GuidedSearch`).

    One level is one unit of work (``simulations``), done whole or not at all: it is charged
    and its children are added to the tree only once the policy has proposed them and the node
    cap and the verifier allowance can take them all, so every child of a level is scored. A
    level refused at that point leaves the tree as it was (its policy call still counts in
    ``policy_calls`` and ``tokens``). Children are ranked for the player who chose them (their
    parent's player to move) and the answer for the root's player. Every scored child is backed
    up once, so a node's visits count the scored states below it. ``traces`` holds the finished
    states, then the last frontier.
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
        super().__init__(
            policy, verifier, aggregation=aggregation, max_nodes=max_nodes, answer_fn=answer_fn
        )
        self.beam_size = check_int("beam_size", beam_size)
        self.max_depth = check_int("max_depth", max_depth)

    def search(self, root: State, budget: Budget, *, rng: np.random.Generator) -> SearchResult:
        """Search level by level from ``root`` within ``budget``."""
        tree, meter = start_search(root, budget, rng, self.max_nodes)
        frontier = [Tree.ROOT]
        finished: list[int] = []
        stop = "exhausted"
        try:
            for _ in range(self.max_depth):
                check_unit(meter, expansions=len(frontier))
                made = expand_and_score(self, tree, meter, rng, frontier)  # the whole level
                children = [i for block in made for i in block]
                finished.extend(i for i in children if tree.terminal[i])
                open_ = [i for i in children if not tree.terminal[i]]
                frontier = by_score(tree, open_)[: self.beam_size]  # ties: the earlier child
                if not frontier:
                    break
        except Stop as e:
            stop = e.reason
        last = [i for i in frontier if i != Tree.ROOT]
        chosen = best(tree, finished or last, root_score)
        return make_result(self, tree, meter, chosen, finished + last, stop)
