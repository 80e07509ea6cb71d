"""Greedy best-first search on verifier scores.

Reference: Pearl, "Heuristics: Intelligent Search Strategies for Computer Problem Solving"
(Addison-Wesley 1984), greedy best-first search; guided by a learned value model over
language-model actions in Koh, Salakhutdinov & Fried, "Tree Search for Language Model Agents"
(arXiv 2407.01476).

A priority queue (:mod:`heapq`) holds every scored but unexpanded state. Each unit of work pops
the highest-scored state (ties: the one pushed first, so the search is deterministic): a
terminal state is a solution, and the search stops once ``num_solutions`` are found; any other
state is expanded and its children are scored and pushed. Non-terminal children at
``max_depth`` are not pushed.
"""

from __future__ import annotations

import heapq

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
    check_int,
    check_unit,
    chooser_score,
    expand_and_score,
    make_result,
    root_score,
    start_search,
    start_unit,
)

__all__ = ["BestFirst"]


class BestFirst(GuidedSearch):
    """Expand the best-scored open state first.

    Args:
        policy: proposes the children of the popped state.
        verifier: scores every child; the queue is ordered by this score, taken for the player
            who chose the state (its parent's player to move).
        num_solutions: stop (``"solved"``) after popping this many terminal states.
        max_depth: deepest level a non-terminal state may reach.
        aggregation, max_nodes, answer_fn: as for every verifier-guided search
            (:class:`~treesearch.search._common.GuidedSearch`).

    One pop is one unit of work (``simulations``); a non-terminal pop is done whole or not at
    all (see :class:`~treesearch.search.bfs.BFS`). The answer is the best-scored solution for
    the root's player (ties: found first), ``None`` when none was found. ``traces`` holds the
    solutions in the order they were popped.
    """

    def __init__(
        self,
        policy: Policy,
        verifier: Verifier | VerifierFn,
        *,
        num_solutions: int = 1,
        max_depth: int = 10,
        aggregation: str = "last",
        max_nodes: int | None = None,
        answer_fn: AnswerFn | None = None,
    ) -> None:
        super().__init__(
            policy, verifier, aggregation=aggregation, max_nodes=max_nodes, answer_fn=answer_fn
        )
        self.num_solutions = check_int("num_solutions", num_solutions)
        self.max_depth = check_int("max_depth", max_depth)

    def search(self, root: State, budget: Budget, *, rng: np.random.Generator) -> SearchResult:
        """Search best-first from ``root`` within ``budget``."""
        tree, meter = start_search(root, budget, rng, self.max_nodes)
        heap: list[tuple[float, int, int]] = [(0.0, 0, Tree.ROOT)]  # (-score, push order, node)
        pushed = 1
        solutions: list[int] = []
        stop = "exhausted"
        try:
            while heap:
                node = heap[0][2]
                if tree.terminal[node]:
                    start_unit(meter, expansions=0)
                    heapq.heappop(heap)
                    solutions.append(node)
                    if len(solutions) >= self.num_solutions:
                        stop = "solved"
                        break
                    continue
                check_unit(meter, expansions=1)
                [children] = expand_and_score(self, tree, meter, rng, [node])  # the pop
                heapq.heappop(heap)
                for child in children:
                    if tree.terminal[child] or tree.depth[child] < self.max_depth:
                        heapq.heappush(heap, (-chooser_score(tree, child), pushed, child))
                        pushed += 1
        except Stop as e:
            stop = e.reason
        chosen = best(tree, solutions, root_score)
        return make_result(self, tree, meter, chosen, solutions, stop)
