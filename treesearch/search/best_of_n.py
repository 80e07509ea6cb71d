"""Best-of-N sampling with a verifier: plain, weighted and majority vote.

Paper: Snell, Lee, Xu & Kumar, "Scaling LLM Test-Time Compute Optimally can be More Effective
than Scaling Model Parameters" (arXiv 2408.03314). Code: huggingface/search-and-learn
(``src/sal/search/best_of_n.py``, ``src/sal/utils/score.py``). Weighted best-of-N: Beeching,
Tunstall & Rush, "Scaling test-time compute with open models" (Hugging Face blog, 2024).

N complete solutions are sampled step by step (one batched policy call per step for all
unfinished samples; each sample draws one candidate in proportion to its prior), the finished
states are scored by the verifier, and the answer is chosen by

* ``"plain"``: the highest score;
* ``"weighted"``: the canonical answer with the largest sum of scores;
* ``"majority"``: the canonical answer given most often (weighted with every score 1).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from ..budget import Budget
from ..interfaces import Candidate, Policy, State, Verifier, VerifierFn
from ..results import SearchResult
from ..tree import Tree
from ._common import (
    AnswerFn,
    GuidedSearch,
    Stop,
    check_choice,
    check_int,
    expand_nodes,
    make_result,
    normalised_priors,
    propose_children,
    require_room,
    require_scores,
    score_nodes,
    start_search,
    start_unit,
    vote,
)

__all__ = ["BestOfN"]

_MODES = ("plain", "weighted", "majority")


class BestOfN(GuidedSearch):
    """Sample ``n`` complete solutions, score them, pick one by score or by vote.

    Args:
        policy: the generator; asked once per step for all unfinished samples together.
        verifier: scores the finished states (an outcome or process reward model).
        n: number of samples.
        max_depth: a sample stops at a terminal state or after this many steps.
        mode: ``"plain"`` (argmax score), ``"weighted"`` (largest score sum per answer) or
            ``"majority"`` (most frequent answer); scores are taken for the root's player.
        aggregation, max_nodes, answer_fn: as for every verifier-guided search
            (:class:`~treesearch.search._common.GuidedSearch`).

    The tree holds one root-to-leaf chain per sample (the root's children are the samples'
    first steps, one each, so two samples that agree are still two nodes); priors are the
    probabilities the steps were drawn with. Scored leaves are backed up, so the root's value is
    the mean score. ``traces`` holds one trace per scored sample.
    """

    def __init__(
        self,
        policy: Policy,
        verifier: Verifier | VerifierFn,
        *,
        n: int = 8,
        max_depth: int = 40,
        mode: str = "weighted",
        aggregation: str = "last",
        max_nodes: int | None = None,
        answer_fn: AnswerFn | None = None,
    ) -> None:
        super().__init__(
            policy, verifier, aggregation=aggregation, max_nodes=max_nodes, answer_fn=answer_fn
        )
        self.n = check_int("n", n)
        self.max_depth = check_int("max_depth", max_depth)
        self.mode = check_choice("mode", mode, _MODES)

    def search(self, root: State, budget: Budget, *, rng: np.random.Generator) -> SearchResult:
        """Sample, score and vote from ``root`` within ``budget``."""
        tree, meter = start_search(root, budget, rng, self.max_nodes)
        nodes = [Tree.ROOT] * self.n  # the current node of every sample
        stop = "exhausted"
        try:
            while pending := [k for k in range(self.n) if not self._finished(tree, nodes[k])]:
                # One unit of work: one step of every unfinished sample, in one policy call.
                at = [nodes[k] for k in pending]
                start_unit(meter, expansions=len(set(at)))  # at the first step all are at the root
                proposals = propose_children(self, tree, meter, rng, at)
                require_room(tree, len(pending))  # before drawing: a stopped search draws none
                drawn = [[_draw(cands, rng)] for cands in proposals]
                made = expand_nodes(tree, meter, at, drawn, normalise=False)
                for k, (child,) in zip(pending, made, strict=True):
                    nodes[k] = child
                    tree.state(child)  # records terminal flags
        except Stop as e:
            stop = e.reason
        done = [node for node in nodes if node != Tree.ROOT and self._finished(tree, node)]
        if done:
            try:
                # Scoring the finished samples completes the work already started, so only the
                # verifier allowance may refuse it, not the wall time.
                require_scores(meter, len(done))
                score_nodes(self, tree, meter, done, reserved=True)
            except Stop as e:
                stop = e.reason
                done = []
        mode = "argmax" if self.mode == "plain" else self.mode
        chosen = vote(tree, done, mode, self.answer_fn)
        return make_result(self, tree, meter, chosen, done, stop)

    def _finished(self, tree: Tree, node: int) -> bool:
        return bool(tree.terminal[node]) or int(tree.depth[node]) >= self.max_depth


def _draw(candidates: Sequence[Candidate], rng: np.random.Generator) -> Candidate:
    """One candidate drawn in proportion to its prior (uniformly when all priors are 0),
    returned with its draw probability as the prior."""
    p = normalised_priors(candidates)
    i = int(rng.choice(len(p), p=p))
    return dataclasses.replace(candidates[i], prior=float(p[i]))
