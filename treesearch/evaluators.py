"""Ready-made policies and evaluators for problems that list their legal actions.

* :class:`LegalActionsPolicy`: every legal action as a Candidate with a uniform prior.
* :class:`UniformEvaluator`: uniform priors and a constant value (0 by default); the "free"
  evaluator that measures pure tree overhead.
* :class:`RandomRollout`: uniform priors and the mean outcome of random playouts, the classic
  UCT evaluator (Kocsis & Szepesvari 2006; Coulom 2006).
* :class:`PolicyVerifierEvaluator`: priors from a Policy over legal actions, value from a Verifier.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .backup import value_for_player
from .interfaces import (
    Candidate,
    Evaluation,
    Policy,
    State,
    Verifier,
    VerifierFn,
    as_verifier,
)

_BLOCK = 64

__all__ = ["LegalActionsPolicy", "PolicyVerifierEvaluator", "RandomRollout", "UniformEvaluator"]


class LegalActionsPolicy:
    """Proposes every legal action with a uniform prior."""

    def propose(
        self,
        states: Sequence[State],
        *,
        rng: np.random.Generator,
        max_tokens: int | None = None,
    ) -> list[list[Candidate]]:
        out = []
        for state in states:
            actions = state.legal_actions()
            prior = 1.0 / len(actions) if actions else 0.0
            out.append([Candidate(a, prior) for a in actions])
        return out


class UniformEvaluator:
    """Uniform priors over legal actions and a constant value."""

    def __init__(self, value: float = 0.0) -> None:
        self.value = float(value)
        self._uniform: dict[int, np.ndarray] = {}

    def evaluate(self, states: Sequence[State], *, rng: np.random.Generator) -> list[Evaluation]:
        out = []
        for state in states:
            n = len(state.legal_actions())
            priors = self._uniform.get(n)
            if priors is None:
                priors = self._uniform[n] = np.full(n, 1.0 / max(n, 1))
                priors.flags.writeable = False  # shared between calls
            out.append(Evaluation(priors, self.value))
        return out


class RandomRollout:
    """Uniform priors, and the mean outcome of ``num_rollouts`` uniformly random playouts.

    The value is for the player to move at the evaluated state. Playouts whose terminal value is
    unknown (``None``) count as 0. ``max_depth`` bounds a playout; one cut short counts as 0.

    A playout picks, before move ``d``, ``actions[int(u * len(actions))]`` from
    ``state.legal_actions()`` with ``u`` the ``d % 64``-th of a block of uniforms drawn by
    ``rng.random(64)`` before moves ``0, 64, 128, ...``. It stops at the first state with
    ``is_terminal()`` and converts its ``terminal_value()`` (for the player to move there) to
    the player who started with :func:`~treesearch.backup.value_for_player`.

    **Fast-path protocol.** Building a State per move is most of a rollout's cost. A state class
    may provide::

        def random_playout(self, rng, *, block, max_depth) -> float: ...

    which plays the same random game without creating states (on bitboards, say) and returns
    its value for the player to move at ``self``. When ``state`` has it, it is used instead of
    the generic loop. It must consume ``rng`` exactly as described above, ``rng.random(block)``
    at the same moves and the same choice rule over the same ``legal_actions()`` order, and
    return ``0.0`` for a draw, an unknown value, or a playout cut short: the generic loop checks
    for a terminal state before each of at most ``max_depth`` moves, so a terminal state first
    reached by move number ``max_depth`` is not seen and the playout is worth 0. Then the fast
    and the generic playouts give identical values for the same seed, and searches give
    identical trees. :class:`~treesearch.games.ConnectFour` and
    :class:`~treesearch.games.TicTacToe` implement it.
    """

    def __init__(self, *, num_rollouts: int = 1, max_depth: int = 10_000) -> None:
        if not isinstance(num_rollouts, int) or num_rollouts < 1:
            raise ValueError(f"num_rollouts must be a positive int, got {num_rollouts!r}")
        if not isinstance(max_depth, int) or max_depth < 1:
            raise ValueError(f"max_depth must be a positive int, got {max_depth!r}")
        self.num_rollouts = num_rollouts
        self.max_depth = max_depth
        self._uniform: dict[int, np.ndarray] = {}

    def evaluate(self, states: Sequence[State], *, rng: np.random.Generator) -> list[Evaluation]:
        out = []
        max_depth = self.max_depth
        for state in states:
            n = len(state.legal_actions())
            priors = self._uniform.get(n)
            if priors is None:
                priors = self._uniform[n] = np.full(n, 1.0 / max(n, 1))
                priors.flags.writeable = False  # shared between calls
            fast = getattr(state, "random_playout", None)
            total = 0.0
            for _ in range(self.num_rollouts):
                if fast is not None:
                    total += float(fast(rng, block=_BLOCK, max_depth=max_depth))
                else:
                    total += self._playout(state, rng)
            out.append(Evaluation(priors, total / self.num_rollouts))
        return out

    def _playout(self, state: State, rng: np.random.Generator) -> float:
        """The generic playout through the State API (used when ``state`` has no fast path)."""
        player = state.to_play
        # Uniforms drawn in blocks: one rng call per move costs more than the move itself.
        uniforms: list[float] = []
        for depth in range(self.max_depth):
            actions = state.legal_actions()
            if not actions or state.is_terminal():
                if not state.is_terminal():
                    raise ValueError(
                        f"non-terminal state with no legal actions in a rollout: {state!r}"
                    )
                value = state.terminal_value()
                if value is None:
                    return 0.0
                return value_for_player(value, state.to_play, player)
            if depth % _BLOCK == 0:
                uniforms = rng.random(_BLOCK).tolist()
            state = state.step(actions[int(uniforms[depth % _BLOCK] * len(actions))])
        return 0.0


class PolicyVerifierEvaluator:
    """Priors from ``policy`` (matched to legal actions) and the value from ``verifier``.

    Legal actions the policy does not propose get prior 0; the priors are renormalised.
    """

    def __init__(self, policy: Policy, verifier: Verifier | VerifierFn) -> None:
        self.policy = policy
        self.verify = as_verifier(verifier)

    def evaluate(self, states: Sequence[State], *, rng: np.random.Generator) -> list[Evaluation]:
        proposals = self.policy.propose(states, rng=rng)
        scores = self.verify(states)
        out = []
        for state, cands, score in zip(states, proposals, scores, strict=True):
            legal = list(state.legal_actions())
            index = {a: i for i, a in enumerate(legal)}
            priors = np.zeros(len(legal))
            for c in cands:
                if c.action not in index:
                    raise ValueError(f"policy proposed illegal action {c.action!r} for {state!r}")
                priors[index[c.action]] += c.prior
            total = priors.sum()
            priors = priors / total if total > 0 else np.full(len(legal), 1.0 / max(len(legal), 1))
            out.append(Evaluation(priors, score.value))
        return out
