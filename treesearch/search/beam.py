"""Step-level beam search with a process reward model.

Paper: Snell, Lee, Xu & Kumar, "Scaling LLM Test-Time Compute Optimally can be More Effective
than Scaling Model Parameters" (arXiv 2408.03314), section 5. Code: huggingface/search-and-learn
(``src/sal/search/beam_search.py``).

``n`` beams in total, ``beam_width`` M expansions per surviving beam. The root stands for the
``n / M`` initial beams: it is proposed for ``n / M`` times in the first call, giving up to ``n``
first steps. Every iteration each active beam's state is proposed for (one batched call; the M
candidates with the highest prior are kept per proposal), all new steps are scored by the
verifier (per-step scores aggregated by ``aggregation``), duplicates are filtered
(``dedupe``: same action under one parent, then same ``state.key`` within the iteration, before
scoring), terminal states move to the finished pool, and the ``n / M`` best-scored others
(ties: earlier first) become the next active beams, for at most ``max_iterations``. The answer
is chosen from the ``n`` best-scored finished states (or the last active beams when none
finished) by ``"argmax"`` or ``"weighted"`` vote.

One difference from search-and-learn: it duplicates its survivors back to ``n`` beams every
iteration, while here each survivor is proposed for once, so when fewer than ``n / M``
distinct unfinished states survive (duplicates merged, beams finished), the next iteration
makes fewer proposals and the search spends less of its budget.
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
    by_score,
    check_beams,
    check_choice,
    check_int,
    check_unit,
    expand_and_score,
    make_result,
    root_score,
    start_search,
    vote,
)

__all__ = ["BeamSearch"]

_MODES = ("argmax", "weighted")


class BeamSearch(GuidedSearch):
    """Step-level beam search: keep the ``n / beam_width`` best partial solutions each step.

    Args:
        policy: the generator; proposes the next steps of every active beam.
        verifier: a process reward model scoring every new step.
        n: total beams (the search's width; ``n / beam_width`` survive each iteration).
        beam_width: M, the steps kept per surviving beam; ``n`` must be a multiple of it.
        max_iterations: at most this many steps.
        dedupe: filter duplicate steps and states before scoring (duplicate states stay in the
            tree, unscored).
        mode: final choice over the finished pool: ``"argmax"`` score or ``"weighted"`` vote
            (largest score sum per answer).
        aggregation, max_nodes, answer_fn: as for every verifier-guided search
            (:class:`~treesearch.search._common.GuidedSearch`).

    One iteration is one unit of work (``simulations``), done whole or not at all: it is
    charged and its steps are added to the tree only once the policy has proposed them and the
    node cap and the verifier allowance can take them all (see
    :class:`~treesearch.search.bfs.BFS`). Beams are ranked by their score for the player who
    chose the last step, the final choice for the root's player. ``traces`` holds every finished
    state, then the last active beams.
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
        dedupe: bool = True,
        mode: str = "weighted",
        max_nodes: int | None = None,
        answer_fn: AnswerFn | None = None,
    ) -> None:
        super().__init__(
            policy, verifier, aggregation=aggregation, max_nodes=max_nodes, answer_fn=answer_fn
        )
        self.n, self.beam_width = check_beams(n, beam_width)
        self.max_iterations = check_int("max_iterations", max_iterations)
        if not isinstance(dedupe, bool):
            raise TypeError(f"dedupe must be a bool, got {dedupe!r}")
        self.dedupe = dedupe
        self.mode = check_choice("mode", mode, _MODES)

    def search(self, root: State, budget: Budget, *, rng: np.random.Generator) -> SearchResult:
        """Run beam search from ``root`` within ``budget``."""
        tree, meter = start_search(root, budget, rng, self.max_nodes)
        keep = self.n // self.beam_width
        active = [Tree.ROOT]
        finished: list[int] = []
        stop = "exhausted"
        try:
            for iteration in range(self.max_iterations):
                check_unit(meter, expansions=len(active))
                copies = keep if iteration == 0 else 1  # the root stands for the n / M beams
                at = [i for i in active for _ in range(copies)]
                made = expand_and_score(  # the whole iteration; duplicates are left unscored
                    self, tree, meter, rng, at, top=self.beam_width, dedupe=self.dedupe
                )
                children = [i for block in made for i in block]
                finished.extend(i for i in children if tree.terminal[i])
                open_ = [i for i in children if not tree.terminal[i]]
                active = by_score(tree, open_)[:keep]  # ties: the earlier beam
                if not active:
                    break
        except Stop as e:
            stop = e.reason
        last = [i for i in active if i != Tree.ROOT]
        # The vote sees the n best-scored finished states (the last beams when none finished).
        pool = by_score(tree, finished, root_score)[: self.n] if finished else last
        chosen = vote(tree, pool, self.mode, self.answer_fn)
        return make_result(self, tree, meter, chosen, finished + last, stop)
