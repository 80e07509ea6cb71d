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
    by_score,
    check_aggregation,
    check_answer_fn,
    check_choice,
    check_int,
    check_max_nodes,
    check_roles,
    expand_nodes,
    make_result,
    propose_children,
    score_nodes,
    start_search,
    start_unit,
    top_by_prior,
    unique,
    vote,
)

__all__ = ["BeamSearch"]

_MODES = ("argmax", "weighted")


class BeamSearch:
    """Step-level beam search: keep the ``n / beam_width`` best partial solutions each step.

    Args:
        policy: the generator; proposes the next steps of every active beam.
        verifier: a process reward model scoring every new step.
        n: total beams (the search's width; ``n / beam_width`` survive each iteration).
        beam_width: M, the steps kept per surviving beam; ``n`` must be a multiple of it.
        aggregation: how a process verifier's per-step scores become one number: ``"last"``,
            ``"min"``, ``"prod"`` or ``"mean"`` (a Score without step scores uses its value).
        max_iterations: at most this many steps.
        dedupe: filter duplicate steps and states before scoring (duplicates stay in the tree,
            unscored).
        mode: final choice over the finished pool: ``"argmax"`` score or ``"weighted"`` vote
            (largest score sum per answer).
        max_nodes: node cap for the tree; the search stops with ``"max_nodes"`` at it.
        answer_fn: canonical answer of a state for voting and ``answer_text``; ``None`` votes
            on ``state.key`` and leaves ``answer_text`` empty.

    One iteration is one unit of work (``simulations``); it is done whole or not at all.
    ``traces`` holds every finished state, then the last active beams.
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
        self.policy, self.verify = check_roles(policy, verifier)
        self.n = check_int("n", n)
        self.beam_width = check_int("beam_width", beam_width)
        if self.n % self.beam_width:
            raise ValueError(f"n ({n}) must be a multiple of beam_width ({beam_width})")
        self.aggregation = check_aggregation(aggregation)
        self.max_iterations = check_int("max_iterations", max_iterations)
        if not isinstance(dedupe, bool):
            raise TypeError(f"dedupe must be a bool, got {dedupe!r}")
        self.dedupe = dedupe
        self.mode = check_choice("mode", mode, _MODES)
        self.max_nodes = check_max_nodes(max_nodes)
        self.answer_fn = check_answer_fn(answer_fn)

    def search(self, root: State, budget: Budget, *, rng: np.random.Generator) -> SearchResult:
        """Run beam search from ``root`` within ``budget``."""
        tree, meter = start_search(root, budget, rng, self.max_nodes)
        keep = self.n // self.beam_width
        active = [Tree.ROOT]
        finished: list[int] = []
        stop = "exhausted"
        try:
            for iteration in range(self.max_iterations):
                start_unit(meter, expansions=len(active))
                copies = keep if iteration == 0 else 1  # the root stands for the n / M beams
                at = [i for i in active for _ in range(copies)]
                proposals = propose_children(self, tree, meter, rng, at)
                steps = [top_by_prior(cands, self.beam_width) for cands in proposals]
                made = expand_nodes(tree, meter, at, steps, dedupe=self.dedupe)
                children = [i for block in made for i in block]
                if self.dedupe:
                    children = unique(children, key=lambda i: tree.state(i).key)
                score_nodes(self, tree, meter, children)
                finished.extend(i for i in children if tree.terminal[i])
                open_ = [i for i in children if not tree.terminal[i]]
                active = by_score(tree, open_)[:keep]  # ties: the earlier beam
                if not active:
                    break
        except Stop as e:
            stop = e.reason
        last = [i for i in active if i != Tree.ROOT]
        # The vote sees the n best-scored finished states (the last beams when none finished).
        pool = by_score(tree, finished)[: self.n] if finished else last
        chosen = vote(tree, pool, self.mode, self.answer_fn)
        return make_result(tree, meter, chosen, finished + last, self.answer_fn, stop)
