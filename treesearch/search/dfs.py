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

__all__ = ["DFS"]


class DFS:
    """Depth-first search that prunes children scored below ``threshold``.

    Args:
        policy: proposes the children of the popped state.
        verifier: scores every child.
        threshold: children scoring below it are pruned; a solution is a terminal state
            scoring at least this.
        max_depth: deepest level a non-terminal state may reach.
        stop_at_first: stop at the first solution (``"solved"``); when False, search until the
            stack is empty or the budget ends and return the best-scored solution.
        aggregation: how a process verifier's per-step scores become one number: ``"last"``,
            ``"min"``, ``"prod"`` or ``"mean"`` (a Score without step scores uses its value).
        max_nodes: node cap for the tree; the search stops with ``"max_nodes"`` at it.
        answer_fn: canonical answer string of a state, for ``answer_text`` and the traces.

    One pop is one unit of work (``simulations``). The answer is ``None`` when no solution was
    found. ``traces`` holds the solutions in the order they were found.
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
        self.policy, self.verify = _check_roles(policy, verifier)
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.floating)):
            raise TypeError(f"threshold must be a number, got {type(threshold).__name__}")
        if not math.isfinite(threshold):
            raise ValueError(f"threshold must be finite, got {threshold}")
        if not isinstance(stop_at_first, bool):
            raise TypeError(f"stop_at_first must be a bool, got {stop_at_first!r}")
        self.threshold = float(threshold)
        self.max_depth = _check_int("max_depth", max_depth)
        self.stop_at_first = stop_at_first
        self.aggregation = check_aggregation(aggregation)
        self.max_nodes = _check_max_nodes(max_nodes)
        self.answer_fn = _check_answer_fn(answer_fn)

    def search(self, root: State, budget: Budget, *, rng: np.random.Generator) -> SearchResult:
        """Search depth-first from ``root`` within ``budget``."""
        tree, meter = _start(root, budget, rng, self.max_nodes)
        stack = [Tree.ROOT]
        solutions: list[int] = []
        stop = "exhausted"
        while stack:
            node = stack[-1]
            terminal = bool(tree.terminal[node])
            cost = {"simulations": 1} if terminal else {"simulations": 1, "expansions": 1}
            if not meter.can(**cost):
                stop = meter.stop_reason or "exhausted"
                break
            stack.pop()
            meter.charge(simulations=1)
            if terminal:
                solutions.append(node)  # pushed only with a score >= threshold
                if self.stop_at_first:
                    stop = "solved"
                    break
                continue
            proposals = _propose_checked(self.policy, [tree.state(node)], meter, rng)
            if proposals is None:
                stop = meter.stop_reason or "exhausted"
                break
            if not _fits(tree, len(proposals[0])):
                stop = "max_nodes"
                break
            children = expand_node(tree, node, proposals[0])
            meter.charge(expansions=1)
            if not _score_nodes(self.verify, tree, children, meter, self.aggregation):
                stop = meter.stop_reason or "exhausted"
                break
            survivors = [
                i
                for i in children
                if tree.score[i] >= self.threshold
                and (tree.terminal[i] or tree.depth[i] < self.max_depth)
            ]
            survivors.sort(key=lambda i: -tree.score[i])  # stable: ties keep the earlier child
            stack.extend(reversed(survivors))  # the best-scored child ends on top
        chosen = solutions[0] if self.stop_at_first and solutions else _best(tree, solutions)
        return _make_result(tree, meter, chosen, solutions, self.answer_fn, stop)
