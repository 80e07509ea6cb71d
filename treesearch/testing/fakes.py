"""Deterministic stand-ins for learned models, for tests and golden trees.

* :class:`HashEvaluator` derives its numbers from a hash of ``salt`` and ``repr(state.key)``, so
  it gives the same output in every process and on every machine, and needs no randomness.
* :class:`TokenPolicy` proposes the legal actions as candidates that cost tokens, like a
  generator with a token allowance.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from ..interfaces import Candidate, Evaluation, State

__all__ = ["HashEvaluator", "TokenPolicy"]


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


class TokenPolicy:
    """A policy whose candidates cost tokens: every legal action of a state, in order, with prior
    1 and ``tokens_per_candidate`` tokens each.

    It stops proposing (for this state and the rest of the batch) as soon as one more candidate
    would take the call past ``max_tokens``, as a generator does when its allowance runs out, so
    later states may get fewer candidates or none. Deterministic; ``calls`` records the batch
    size of every call.
    """

    def __init__(self, tokens_per_candidate: int = 3) -> None:
        if (
            isinstance(tokens_per_candidate, bool)
            or not isinstance(tokens_per_candidate, int)
            or tokens_per_candidate < 0
        ):
            raise ValueError(
                f"tokens_per_candidate must be an int >= 0, got {tokens_per_candidate!r}"
            )
        self.tokens_per_candidate = tokens_per_candidate
        self.calls: list[int] = []

    def propose(
        self,
        states: Sequence[State],
        *,
        rng: np.random.Generator,
        max_tokens: int | None = None,
    ) -> list[list[Candidate]]:
        self.calls.append(len(states))
        cost = self.tokens_per_candidate
        left = max_tokens
        out: list[list[Candidate]] = []
        for state in states:
            cands = []
            for action in state.legal_actions():
                if left is not None and cost > left:
                    break
                cands.append(Candidate(action, 1.0, num_tokens=cost))
                if left is not None:
                    left -= cost
            out.append(cands)
        return out

    def __repr__(self) -> str:
        return f"TokenPolicy(tokens_per_candidate={self.tokens_per_candidate})"
