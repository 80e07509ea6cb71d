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
    Stop,
    best,
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

__all__ = ["BestFirst"]


class BestFirst:
    """Expand the best-scored open state first.

    Args:
        policy: proposes the children of the popped state.
        verifier: scores every child; the queue is ordered by this score.
        num_solutions: stop (``"solved"``) after popping this many terminal states.
        max_depth: deepest level a non-terminal state may reach.
        aggregation: how a process verifier's per-step scores become one number: ``"last"``,
            ``"min"``, ``"prod"`` or ``"mean"`` (a Score without step scores uses its value).
        max_nodes: node cap for the tree; the search stops with ``"max_nodes"`` at it.
        answer_fn: canonical answer string of a state, for ``answer_text`` and the traces.

    One pop is one unit of work (``simulations``). The answer is the best-scored solution
    (ties: found first), ``None`` when none was found. ``traces`` holds the solutions in the
    order they were popped.
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
        self.policy, self.verify = check_roles(policy, verifier)
        self.num_solutions = check_int("num_solutions", num_solutions)
        self.max_depth = check_int("max_depth", max_depth)
        self.aggregation = check_aggregation(aggregation)
        self.max_nodes = check_max_nodes(max_nodes)
        self.answer_fn = check_answer_fn(answer_fn)

    def search(self, root: State, budget: Budget, *, rng: np.random.Generator) -> SearchResult:
        """Search best-first from ``root`` within ``budget``."""
        tree, meter = start_search(root, budget, rng, self.max_nodes)
        heap: list[tuple[float, int, int]] = [(0.0, 0, Tree.ROOT)]  # (-score, push order, node)
        pushed = 1
        solutions: list[int] = []
        stop = "exhausted"
        try:
            while heap:
                terminal = bool(tree.terminal[heap[0][2]])
                start_unit(meter, expansions=0 if terminal else 1)
                node = heapq.heappop(heap)[2]
                if terminal:
                    solutions.append(node)
                    if len(solutions) >= self.num_solutions:
                        stop = "solved"
                        break
                    continue
                [children] = expand_and_score(self, tree, meter, rng, [node])
                for child in children:
                    if tree.terminal[child] or tree.depth[child] < self.max_depth:
                        heapq.heappush(heap, (-float(tree.score[child]), pushed, child))
                        pushed += 1
        except Stop as e:
            stop = e.reason
        chosen = best(tree, solutions)
        return make_result(tree, meter, chosen, solutions, self.answer_fn, stop)
