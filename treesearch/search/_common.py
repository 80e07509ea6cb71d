"""Helpers shared by the search algorithms: budgeted, validated policy and verifier calls."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np

from ..budget import BudgetMeter
from ..interfaces import Candidate, Policy, Score, State, Verifier, VerifierFn, as_verifier
from ..tree import Tree

__all__ = [
    "Aggregation",
    "aggregate",
    "check_rng",
    "expand_node",
    "propose",
    "resolve_verifier",
    "score_states",
]

Aggregation = Literal["last", "min", "prod", "mean"]
_AGGREGATIONS = ("last", "min", "prod", "mean")


def check_rng(rng: object) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            f"rng must be a numpy.random.Generator (np.random.default_rng(seed)), got "
            f"{type(rng).__name__}"
        )
    return rng


def check_aggregation(how: str) -> str:
    if how not in _AGGREGATIONS:
        raise ValueError(f"aggregation must be one of {_AGGREGATIONS}, got {how!r}")
    return how


def aggregate(score: Score, how: str) -> float:
    """One number from a Score: its per-step scores aggregated, or its value when it has none."""
    steps = score.step_scores
    if not steps:
        return score.value
    if how == "last":
        return steps[-1]
    if how == "min":
        return min(steps)
    if how == "prod":
        return math.prod(steps)
    if how == "mean":
        return sum(steps) / len(steps)
    raise ValueError(f"aggregation must be one of {_AGGREGATIONS}, got {how!r}")


def resolve_verifier(
    verifier: Verifier | VerifierFn | None,
) -> Callable[[Sequence[State]], list[Score]] | None:
    return None if verifier is None else as_verifier(verifier)


def propose(
    policy: Policy,
    states: Sequence[State],
    meter: BudgetMeter,
    rng: np.random.Generator,
) -> list[list[Candidate]] | None:
    """Ask ``policy`` for candidates within budget; ``None`` when the budget refuses.

    Charges ``policy_calls`` (one per state) and ``tokens``; validates the output.
    """
    if not states:
        return []
    if not meter.can(policy_calls=len(states)):
        return None
    max_tokens = meter.remaining("tokens")
    if max_tokens is not None and max_tokens <= 0:
        meter.stop_reason = meter.stop_reason or "tokens"
        return None
    raw = policy.propose(states, rng=rng, max_tokens=max_tokens)
    name = type(policy).__name__
    if isinstance(raw, (str, bytes)) or not hasattr(raw, "__len__"):
        raise TypeError(f"{name}.propose must return one list of Candidates per state")
    if len(raw) != len(states):
        raise ValueError(f"{name}.propose returned {len(raw)} lists for {len(states)} states")
    out: list[list[Candidate]] = []
    tokens = 0
    for i, cands in enumerate(raw):
        cands = list(cands)
        for c in cands:
            if not isinstance(c, Candidate):
                raise TypeError(
                    f"{name}.propose returned a {type(c).__name__} for state {i}; "
                    "expected treesearch.Candidate"
                )
            tokens += c.num_tokens
        out.append(cands)
    if max_tokens is not None and tokens > max_tokens:
        raise ValueError(
            f"{name}.propose generated {tokens} tokens, over the max_tokens={max_tokens} "
            "it was given"
        )
    meter.charge(policy_calls=len(states), tokens=tokens)
    return out


def score_states(
    verify: Callable[[Sequence[State]], list[Score]],
    states: Sequence[State],
    meter: BudgetMeter,
) -> list[Score] | None:
    """Score ``states`` within budget (one verifier call per state); ``None`` if refused."""
    if not states:
        return []
    if not meter.can(verifier_calls=len(states)):
        return None
    scores = verify(states)
    meter.charge(verifier_calls=len(states))
    return scores


def expand_node(
    tree: Tree,
    node: int,
    candidates: Sequence[Candidate],
    *,
    dedupe: bool = False,
    normalise: bool = True,
) -> range:
    """Add ``candidates`` as the children of ``node``.

    Priors are normalised to sum to one (uniform when they are all zero). With ``dedupe``,
    candidates whose action repeats an earlier one are dropped.
    """
    if dedupe:
        seen: set[object] = set()
        unique = []
        for c in candidates:
            if c.action not in seen:
                seen.add(c.action)
                unique.append(c)
        candidates = unique
    priors = np.fromiter((c.prior for c in candidates), dtype=np.float64, count=len(candidates))
    if normalise and len(priors):
        total = priors.sum()
        priors = priors / total if total > 0 else np.full(len(priors), 1.0 / len(priors))
    return tree.add_children(
        node,
        [c.action for c in candidates],
        priors,
        payloads=[c.payload for c in candidates],
        tokens=[c.num_tokens for c in candidates],
    )
