"""Tree-of-Thoughts depth-first search (ToT-DFS) with threshold pruning.

Paper: Yao, Yu, Zhao, Shafran, Griffiths, Cao & Narasimhan, "Tree of Thoughts: Deliberate
Problem Solving with Large Language Models" (NeurIPS 2023, arXiv 2305.10601), Algorithm 2.

An explicit stack (no recursion, so depth is not bounded by Python's recursion limit): pop a
node; a terminal node is a solution; otherwise expand it, score its children, and push the
children whose score is at least ``threshold`` so that the best-scored one is popped next
(ties: the earlier child first). Children below the threshold are pruned, and non-terminal
children at ``max_depth`` are not pushed, so the search backtracks from dead ends by popping
the next node of the stack.
"""

from __future__ import annotations

import math

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
    chooser_score,
    expand_and_score,
    make_result,
    root_score,
    start_search,
    start_unit,
)

__all__ = ["DFS"]


class DFS(GuidedSearch):
    """Depth-first search that prunes children scored below ``threshold``.

    Args:
        policy: proposes the children of the popped state.
        verifier: scores every child.
        threshold: children scoring below it are pruned; a solution is a terminal state
            scoring at least this.
        max_depth: deepest level a non-terminal state may reach.
        stop_at_first: stop at the first solution (``"solved"``); when False, search until the
            stack is empty or the budget ends and return the best-scored solution.
        aggregation, max_nodes, answer_fn: as for every verifier-guided search
            (:class:`~treesearch.search._common.GuidedSearch`).

    One pop is one unit of work (``simulations``); a non-terminal pop is done whole or not at
    all (see :class:`~treesearch.search.bfs.BFS`). Children are compared with ``threshold`` and
    ranked by their score for the player who chose them (their parent's player to move). The
    answer is ``None`` when no solution was found. ``traces`` holds the solutions in the order
    they were found.
    """

    def __init__(
        self,
        policy: Policy,
        verifier: Verifier | VerifierFn,
        *,
        threshold: float = 0.5,
        max_depth: int = 10,
        stop_at_first: bool = True,
        aggregation: str = "last",
        max_nodes: int | None = None,
        answer_fn: AnswerFn | None = None,
    ) -> None:
        super().__init__(
            policy, verifier, aggregation=aggregation, max_nodes=max_nodes, answer_fn=answer_fn
        )
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.floating)):
            raise TypeError(f"threshold must be a number, got {type(threshold).__name__}")
        if not math.isfinite(threshold):
            raise ValueError(f"threshold must be finite, got {threshold}")
        if not isinstance(stop_at_first, bool):
            raise TypeError(f"stop_at_first must be a bool, got {stop_at_first!r}")
        self.threshold = float(threshold)
        self.max_depth = check_int("max_depth", max_depth)
        self.stop_at_first = stop_at_first

    def search(self, root: State, budget: Budget, *, rng: np.random.Generator) -> SearchResult:
        """Search depth-first from ``root`` within ``budget``."""
        tree, meter = start_search(root, budget, rng, self.max_nodes)
        stack = [Tree.ROOT]
        solutions: list[int] = []
        stop = "exhausted"
        try:
            while stack:
                if tree.terminal[stack[-1]]:
                    start_unit(meter, expansions=0)
                    solutions.append(stack.pop())  # pushed only with a score >= threshold
                    if self.stop_at_first:
                        stop = "solved"
                        break
                    continue
                check_unit(meter, expansions=1)
                [children] = expand_and_score(self, tree, meter, rng, [stack[-1]])  # the pop
                stack.pop()
                survivors = [
                    i
                    for i in children
                    if chooser_score(tree, i) >= self.threshold
                    and (tree.terminal[i] or tree.depth[i] < self.max_depth)
                ]
                # The best-scored child ends on top (ties: the earlier child).
                stack.extend(reversed(by_score(tree, survivors)))
        except Stop as e:
            stop = e.reason
        chosen = (
            solutions[0] if self.stop_at_first and solutions else best(tree, solutions, root_score)
        )
        return make_result(self, tree, meter, chosen, solutions, stop)
