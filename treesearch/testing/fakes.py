"""Deterministic stand-ins for learned models, for tests and golden trees.

Both derive their numbers from a hash of ``salt`` and ``repr(state.key)``, so they give the same
output in every process and on every machine, and need no randomness.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from ..interfaces import Evaluation, State

__all__ = ["HashEvaluator"]


def _seed(salt: int, state: State) -> int:
    digest = hashlib.blake2b(f"{salt}:{state.key!r}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


class HashEvaluator:
    """Priors over legal actions and a value in [-1, 1], fixed per state key.

    ``calls`` records the batch size of every call, so tests can check batching.
    """

    def __init__(self, salt: int = 0) -> None:
        if isinstance(salt, bool) or not isinstance(salt, int):
            raise TypeError(f"salt must be an int, got {salt!r}")
        self.salt = salt
        self.calls: list[int] = []

    def evaluate(self, states: Sequence[State], *, rng: np.random.Generator) -> list[Evaluation]:
        self.calls.append(len(states))
        out = []
        for state in states:
            gen = np.random.default_rng(_seed(self.salt, state))
            priors = gen.random(len(state.legal_actions())) + 0.1
            out.append(Evaluation(priors / priors.sum(), float(gen.uniform(-1.0, 1.0))))
        return out

    def __repr__(self) -> str:
        return f"HashEvaluator(salt={self.salt})"
