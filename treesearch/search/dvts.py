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
from ._common import (
    AnswerFn,
    GuidedSearch,
    Stop,
    best,
    check_beams,
    check_choice,
    check_int,
    check_unit,
    expand_and_score,
    make_result,
    start_search,
    vote,
)

__all__ = ["DVTS"]

_MODES = ("weighted", "argmax")


class DVTS(GuidedSearch):
    """Diverse verifier tree search: ``n / beam_width`` greedy subtrees searched side by side.

    Args:
        policy: the generator; proposes the next steps of every unfinished subtree.
        verifier: a process reward model scoring every new step.
        n: total candidates returned (``n / beam_width`` subtrees of ``beam_width`` each).
        beam_width: M, steps proposed per subtree per iteration; ``n`` must be a multiple.
        max_iterations: at most this many steps per subtree.
        mode: final choice over the ``n`` candidates: ``"weighted"`` vote (largest score sum
            per answer) or ``"argmax"`` score.
        aggregation, max_nodes, answer_fn: as for every verifier-guided search
            (:class:`~treesearch.search._common.GuidedSearch`).

    One iteration (one step of every unfinished subtree) is one unit of work
    (``simulations``), done whole or not at all: it is charged and its steps are added to the
    tree only once the policy has proposed them and the node cap and the verifier allowance can
    take them all (see :class:`~treesearch.search.bfs.BFS`). Each subtree moves to the step
    best for the player who chose it; the final choice is made for the root's player.
    ``traces`` holds the candidates, subtree by subtree.
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
        super().__init__(
            policy, verifier, aggregation=aggregation, max_nodes=max_nodes, answer_fn=answer_fn
        )
        self.n, self.beam_width = check_beams(n, beam_width)
        self.max_iterations = check_int("max_iterations", max_iterations)
        self.mode = check_choice("mode", mode, _MODES)

    def search(self, root: State, budget: Budget, *, rng: np.random.Generator) -> SearchResult:
        """Run the ``n / beam_width`` subtrees from ``root`` within ``budget``."""
        tree, meter = start_search(root, budget, rng, self.max_nodes)
        subtrees = self.n // self.beam_width
        current = [Tree.ROOT] * subtrees  # each subtree's current state
        blocks: list[list[int]] = [[] for _ in range(subtrees)]  # its last scored alternatives
        active = list(range(subtrees))
        stop = "exhausted"
        try:
            for _ in range(self.max_iterations):
                at = [current[j] for j in active]
                check_unit(meter, expansions=len(set(at)))  # all subtrees start at the root
                made = expand_and_score(self, tree, meter, rng, at, top=self.beam_width)  # whole
                for j, block in zip(active, made, strict=True):
                    blocks[j] = block
                    current[j] = best(tree, block)  # type: ignore[assignment]  # all are scored
                active = [j for j in active if not tree.terminal[current[j]]]
                if not active:
                    break
        except Stop as e:
            stop = e.reason
        candidates = [i for block in blocks for i in block]
        chosen = vote(tree, candidates, self.mode, self.answer_fn)
        return make_result(self, tree, meter, chosen, candidates, stop)
