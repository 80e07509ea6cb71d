"""Diverse verifier tree search (DVTS).

Source: Beeching, Tunstall & Rush, "Scaling test-time compute with open models" (Hugging Face
blog, December 2024). Code: huggingface/search-and-learn (``src/sal/search/
diverse_verifier_tree_search.py``). It extends the step-level beam search of Snell et al.
(arXiv 2408.03314) for diversity at large ``n``.

``n`` is split into ``n / M`` independent subtrees (M = ``beam_width``). Each iteration every
unfinished subtree proposes M next steps from its single current state (one batched call for
all subtrees; the M candidates with the highest prior are kept), all new steps are scored, and
each subtree greedily moves to its best-scored step (ties: earlier first). A subtree stops when
that step is terminal. At the end each subtree contributes its last M alternatives (the chosen
step and its siblings), giving ``n`` candidates, and the answer is chosen from them by
``"weighted"`` vote (default) or ``"argmax"`` score.

The subtrees share the tree's root: the root's children are the first steps of all subtrees,
subtree ``j`` owning the ``j``-th block of (up to) M of them.
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
    _check_choice,
    _check_int,
    _check_max_nodes,
    _check_roles,
    _fits,
    _make_result,
    _propose_checked,
    _score_nodes,
    _start,
    _top_by_prior,
    _vote,
)

__all__ = ["DVTS"]

_MODES = ("weighted", "argmax")


class DVTS:
    """Diverse verifier tree search: ``n / beam_width`` greedy subtrees searched side by side.

    Args:
        policy: the generator; proposes the next steps of every unfinished subtree.
        verifier: a process reward model scoring every new step.
        n: total candidates returned (``n / beam_width`` subtrees of ``beam_width`` each).
        beam_width: M, steps proposed per subtree per iteration; ``n`` must be a multiple.
        aggregation: how a process verifier's per-step scores become one number: ``"last"``,
            ``"min"``, ``"prod"`` or ``"mean"`` (a Score without step scores uses its value).
        max_iterations: at most this many steps per subtree.
        mode: final choice over the ``n`` candidates: ``"weighted"`` vote (largest score sum
            per answer) or ``"argmax"`` score.
        max_nodes: node cap for the tree; the search stops with ``"max_nodes"`` at it.
        answer_fn: canonical answer of a state for voting and ``answer_text``; ``None`` votes
            on ``state.key`` and leaves ``answer_text`` empty.

    One iteration (one step of every unfinished subtree) is one unit of work
    (``simulations``); it is done whole or not at all. ``traces`` holds the candidates, subtree
    by subtree.
    """

    def __init__(
        self,
        policy: Policy,
        verifier: Verifier | VerifierFn,
        *,
        n: int = 8,
        beam_width: int = 4,
        aggregation: str = "last",
        max_iterations: int = 40,
        mode: str = "weighted",
        max_nodes: int | None = None,
        answer_fn: AnswerFn | None = None,
    ) -> None:
        self.policy, self.verify = _check_roles(policy, verifier)
        self.n = _check_int("n", n)
        self.beam_width = _check_int("beam_width", beam_width)
        if self.n % self.beam_width:
            raise ValueError(f"n ({n}) must be a multiple of beam_width ({beam_width})")
        self.aggregation = check_aggregation(aggregation)
        self.max_iterations = _check_int("max_iterations", max_iterations)
        self.mode = _check_choice("mode", mode, _MODES)
        self.max_nodes = _check_max_nodes(max_nodes)
        self.answer_fn = _check_answer_fn(answer_fn)

    def search(self, root: State, budget: Budget, *, rng: np.random.Generator) -> SearchResult:
        """Run the ``n / beam_width`` subtrees from ``root`` within ``budget``."""
        tree, meter = _start(root, budget, rng, self.max_nodes)
        subtrees = self.n // self.beam_width
        current = [Tree.ROOT] * subtrees  # each subtree's current state
        blocks: list[list[int]] = [[] for _ in range(subtrees)]  # its last scored alternatives
        active = list(range(subtrees))
        stop = "exhausted"
        for iteration in range(self.max_iterations):
            expanding = 1 if iteration == 0 else len(active)  # all subtrees start at the root
            if not meter.can(simulations=1, expansions=expanding):
                stop = meter.stop_reason or "exhausted"
                break
            meter.charge(simulations=1)
            states = [tree.state(current[j]) for j in active]
            proposals = _propose_checked(self.policy, states, meter, rng)
            if proposals is None:
                stop = meter.stop_reason or "exhausted"
                break
            steps = [_top_by_prior(lst, self.beam_width) for lst in proposals]
            if not _fits(tree, sum(len(s) for s in steps)):
                stop = "max_nodes"
                break
            new_blocks: list[list[int]] = []
            if iteration == 0:
                ids = iter(expand_node(tree, Tree.ROOT, [c for s in steps for c in s]))
                new_blocks = [[next(ids) for _ in s] for s in steps]
            else:
                new_blocks = [
                    list(expand_node(tree, current[j], s))
                    for j, s in zip(active, steps, strict=True)
                ]
            meter.charge(expansions=expanding)
            new_nodes = [i for block in new_blocks for i in block]
            if not _score_nodes(self.verify, tree, new_nodes, meter, self.aggregation):
                stop = meter.stop_reason or "exhausted"
                break
            for j, block in zip(active, new_blocks, strict=True):
                blocks[j] = block
                current[j] = _best(tree, block)  # type: ignore[assignment]  # all are scored
            active = [j for j in active if not tree.terminal[current[j]]]
            if not active:
                break
        candidates = [i for block in blocks for i in block]
        chosen = _vote(tree, candidates, self.mode, self.answer_fn)
        return _make_result(tree, meter, chosen, candidates, self.answer_fn, stop)
