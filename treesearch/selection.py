"""Child-selection rules as small pure functions over a node's child statistics.

All functions take the contiguous child arrays of one node and return one score per child;
the caller picks the argmax. Q values are from the point of view of the player to move at
the parent (see ``docs/concepts.md``).

* UCT (Kocsis & Szepesvari, "Bandit based Monte-Carlo Planning", ECML 2006):
  ``Q(s,a) + c * sqrt(ln N(s) / N(s,a))``; unvisited children score ``+inf`` (or the first-play
  urgency value when one is given).
* PUCT (Silver et al., "Mastering the game of Go without human knowledge", Nature 2017):
  ``Q(s,a) + c(s) * P(s,a) * sqrt(N(s)) / (1 + N(s,a))``; unvisited children take the
  first-play urgency value as Q.
* AlphaZero's growing exploration constant (Silver et al., Science 2018):
  ``c(s) = log((1 + N(s) + c_base) / c_base) + c_init``.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["alphazero_c", "puct_scores", "q_values", "uct_scores"]


def q_values(visits: np.ndarray, value_sum: np.ndarray, fpu: float) -> np.ndarray:
    """Mean values, with ``fpu`` standing in for unvisited children."""
    q = np.full(visits.shape, fpu, dtype=np.float64)
    seen = visits > 0
    np.divide(value_sum, visits, out=q, where=seen)
    return q


def uct_scores(
    visits: np.ndarray,
    value_sum: np.ndarray,
    parent_visits: int,
    *,
    c: float,
    fpu: float = math.inf,
) -> np.ndarray:
    """UCT score per child; unvisited children score ``fpu`` (``+inf``: try each once)."""
    scores = np.full(visits.shape, fpu, dtype=np.float64)
    seen = visits > 0
    if seen.any():
        n = visits[seen]
        log_n = math.log(max(parent_visits, 1))
        scores[seen] = value_sum[seen] / n + c * np.sqrt(log_n / n)
    return scores


def puct_scores(
    visits: np.ndarray,
    value_sum: np.ndarray,
    priors: np.ndarray,
    parent_visits: int,
    *,
    c: float,
    fpu: float = 0.0,
) -> np.ndarray:
    """PUCT score per child; unvisited children use ``fpu`` as their Q."""
    q = q_values(visits, value_sum, fpu)
    return q + c * priors * (math.sqrt(parent_visits) / (1.0 + visits))


def alphazero_c(parent_visits: int, *, c_base: float = 19652.0, c_init: float = 1.25) -> float:
    """AlphaZero's exploration schedule ``log((1 + N + c_base) / c_base) + c_init``."""
    return math.log((1.0 + parent_visits + c_base) / c_base) + c_init
