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
from ..interfaces import Candidate, Policy, State, Verifier, VerifierFn
from ..results import SearchResult
from ..tree import Tree
from ._common import check_aggregation, expand_node
from .best_of_n import (
    AnswerFn,
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
        self.policy, self.verify = _check_roles(policy, verifier)
        self.n = _check_int("n", n)
        self.beam_width = _check_int("beam_width", beam_width)
        if self.n % self.beam_width:
            raise ValueError(f"n ({n}) must be a multiple of beam_width ({beam_width})")
        self.aggregation = check_aggregation(aggregation)
        self.max_iterations = _check_int("max_iterations", max_iterations)
        if not isinstance(dedupe, bool):
            raise TypeError(f"dedupe must be a bool, got {dedupe!r}")
        self.dedupe = dedupe
        self.mode = _check_choice("mode", mode, _MODES)
        self.max_nodes = _check_max_nodes(max_nodes)
        self.answer_fn = _check_answer_fn(answer_fn)

    def search(self, root: State, budget: Budget, *, rng: np.random.Generator) -> SearchResult:
        """Run beam search from ``root`` within ``budget``."""
        tree, meter = _start(root, budget, rng, self.max_nodes)
        keep = self.n // self.beam_width
        active = [Tree.ROOT]
        finished: list[int] = []
        stop = "exhausted"
        for iteration in range(self.max_iterations):
            if not meter.can(simulations=1, expansions=len(active)):
                stop = meter.stop_reason or "exhausted"
                break
            meter.charge(simulations=1)
            copies = keep if iteration == 0 else 1  # the root stands for the n / M first beams
            states = [tree.state(i) for i in active for _ in range(copies)]
            proposals = _propose_checked(self.policy, states, meter, rng)
            if proposals is None:
                stop = meter.stop_reason or "exhausted"
                break
            per_beam: list[list[Candidate]] = []
            for b in range(len(active)):
                cands = [
                    c
                    for lst in proposals[b * copies : (b + 1) * copies]
                    for c in _top_by_prior(lst, self.beam_width)
                ]
                per_beam.append(_unique_actions(cands) if self.dedupe else cands)
            if not _fits(tree, sum(len(c) for c in per_beam)):
                stop = "max_nodes"
                break
            children = [
                child
                for node, cands in zip(active, per_beam, strict=True)
                for child in expand_node(tree, node, cands)
            ]
            meter.charge(expansions=len(active))
            if self.dedupe:
                children = _unique_states(tree, children)
            if not _score_nodes(self.verify, tree, children, meter, self.aggregation):
                stop = meter.stop_reason or "exhausted"
                break
            finished.extend(i for i in children if tree.terminal[i])
            open_ = [i for i in children if not tree.terminal[i]]
            open_.sort(key=lambda i: -tree.score[i])  # stable: ties keep the earlier beam
            active = open_[:keep]
            if not active:
                break
        last = [i for i in active if i != Tree.ROOT]
        # The vote sees the n best-scored finished states (the last beams when none finished).
        pool = sorted(finished, key=lambda i: -tree.score[i])[: self.n] if finished else last
        chosen = _vote(tree, pool, self.mode, self.answer_fn)
        return _make_result(tree, meter, chosen, finished + last, self.answer_fn, stop)


def _unique_actions(candidates: list[Candidate]) -> list[Candidate]:
    seen: set[object] = set()
    out = []
    for c in candidates:
        if c.action not in seen:
            seen.add(c.action)
            out.append(c)
    return out


def _unique_states(tree: Tree, nodes: list[int]) -> list[int]:
    seen: set[object] = set()
    out = []
    for i in nodes:
        key = tree.state(i).key
        if key not in seen:
            seen.add(key)
            out.append(i)
    return out
