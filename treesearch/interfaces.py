"""Contracts between problems and search algorithms.

Four roles, each a :class:`typing.Protocol`, so any object with the right methods fits:

* :class:`State`: an immutable problem state (a board, a partial solution).
* :class:`Policy`: proposes children for a *batch* of states, as :class:`Candidate` records
  with priors.
* :class:`Verifier`: scores a batch of states (an outcome or process reward model, an exact
  checker, or any callable ``f(states) -> scores``).
* :class:`Evaluator`: priors over legal actions plus a value, for a batch of states (an
  AlphaZero network, random rollouts).

Value sign (the one rule, see ``docs/concepts.md``): every value a State, Verifier or Evaluator
reports is from the point of view of ``state.to_play``, the player to move at that state. In
single-agent problems ``to_play`` is always 0 and values are plain rewards. Search trees store
Q(s, a) from the point of view of the player to move at ``s``; only backup converts between the
two, negating when the player changes.
"""

from __future__ import annotations

import functools
import math
import types
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = [
    "Action",
    "Candidate",
    "Evaluation",
    "Evaluator",
    "Policy",
    "Score",
    "State",
    "Verifier",
    "VerifierFn",
    "as_verifier",
    "check_batch",
    "check_evaluation",
    "check_scores",
    "check_value",
    "describe_callable",
    "describe_not_a_state",
]

Action = Hashable


@runtime_checkable
class State(Protocol):
    """An immutable problem state.

    ``step`` returns a new state and never mutates ``self``. Games list their legal actions;
    open-ended problems (LLM text) return an empty tuple from ``legal_actions`` and rely on a
    :class:`Policy` to propose actions.
    """

    @property
    def to_play(self) -> int:
        """Index of the player to move (always 0 in single-agent problems)."""
        ...

    @property
    def key(self) -> Hashable:
        """A hashable identity, equal for equal states (transpositions, caches)."""
        ...

    def legal_actions(self) -> Sequence[Action]:
        """Legal actions; empty when terminal or when actions are open-ended."""
        ...

    def step(self, action: Action) -> State:
        """The state reached by ``action``; raises ``ValueError`` for an illegal action."""
        ...

    def is_terminal(self) -> bool: ...

    def terminal_value(self) -> float | None:
        """Exact outcome of a terminal state for ``to_play``; ``None`` when unknown."""
        ...


@dataclass(frozen=True, slots=True)
class Candidate:
    """One proposed child: an action with its prior.

    Attributes:
        action: the action (a move, or the text of a reasoning step).
        prior: non-negative prior weight; a policy's priors need not sum to one.
        logprob: total log-probability of the action under a generative policy, if known.
        num_tokens: every token the policy generated to produce the action (0 for games), what
            ``Budget(tokens=...)`` charges and the tree records (``Tree.tokens``,
            ``TraceStep.tokens``). A policy that merges several identical samples into one
            candidate counts the tokens of all of them, so each generated token is charged
            exactly once; the action's own length (the tokens the child adds to the tree) may
            be smaller and is the policy's to report (e.g. its ``payload``).
        payload: anything the policy wants to keep beside the child (token ids, cache handles).
    """

    action: Action
    prior: float = 1.0
    logprob: float | None = None
    num_tokens: int = 0
    payload: Any = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.prior, (int, float, np.floating, np.integer)) or isinstance(
            self.prior, bool
        ):
            raise TypeError(f"Candidate.prior must be a number, got {type(self.prior).__name__}")
        if not math.isfinite(self.prior) or self.prior < 0:
            raise ValueError(f"Candidate.prior must be finite and >= 0, got {self.prior!r}")
        if not isinstance(self.num_tokens, (int, np.integer)) or self.num_tokens < 0:
            raise ValueError(f"Candidate.num_tokens must be an int >= 0, got {self.num_tokens!r}")


@runtime_checkable
class Policy(Protocol):
    """Proposes children for a batch of states in one call."""

    def propose(
        self,
        states: Sequence[State],
        *,
        rng: np.random.Generator,
        max_tokens: int | None = None,
    ) -> Sequence[Sequence[Candidate]]:
        """One list of candidates per state.

        Args:
            states: the states to expand, none of them terminal.
            rng: the only source of randomness.
            max_tokens: when not ``None``, the candidates of the whole call must together
                carry at most this many ``num_tokens`` (the search's remaining token budget).
        """
        ...


@dataclass(frozen=True, slots=True)
class Score:
    """A verifier's judgement of one state.

    ``value`` is the score search uses; ``step_scores`` are per-step scores of a process
    verifier (oldest step first), which algorithms may aggregate themselves.
    """

    value: float
    step_scores: tuple[float, ...] = ()


@runtime_checkable
class Verifier(Protocol):
    """Scores a batch of states; a higher score is better for ``state.to_play``."""

    def score(self, states: Sequence[State]) -> Sequence[float | Score]: ...


VerifierFn = Callable[[Sequence[State]], Sequence["float | Score"]]


@dataclass(frozen=True, slots=True)
class Evaluation:
    """Priors over ``state.legal_actions()`` (same order) and a value for ``state.to_play``."""

    priors: np.ndarray
    value: float


@runtime_checkable
class Evaluator(Protocol):
    """Priors and value for a batch of non-terminal states."""

    def evaluate(
        self, states: Sequence[State], *, rng: np.random.Generator
    ) -> Sequence[Evaluation]: ...


def as_verifier(verifier: Verifier | VerifierFn) -> Callable[[Sequence[State]], list[Score]]:
    """Normalise a Verifier object or a plain callable into ``f(states) -> list[Score]``.

    The returned function validates every batch: one score per state, all finite.
    """
    fn: VerifierFn
    if isinstance(verifier, Verifier):
        fn = verifier.score
    elif callable(verifier):
        fn = verifier
    else:
        raise TypeError(
            "verifier must have a .score(states) method or be a callable f(states) -> scores, "
            f"got {type(verifier).__name__}"
        )

    def score(states: Sequence[State]) -> list[Score]:
        return check_scores(fn(states), len(states), source=verifier)

    return score


def describe_callable(source: object, role: str) -> str:
    """How error messages name a user's object: ``verifier my_prm`` or ``MyPRM``."""
    if source is None:
        return role
    if isinstance(source, type):  # a class passed where an instance belongs
        return f"{role} {source.__name__} (a class)"
    if isinstance(source, functools.partial):
        return f"{role} {describe_callable(source.func, role).removeprefix(role + ' ')}"
    if isinstance(source, types.BuiltinFunctionType):
        return f"{role} {source.__name__}"
    if callable(source) and hasattr(source, "__qualname__"):
        qualname = source.__qualname__
        owner = getattr(source, "__self__", None)
        if owner is not None:  # a bound method such as prm.score
            return f"{type(owner).__name__}.{getattr(source, '__name__', qualname)}"
        return f"{role} {qualname}"
    return type(source).__name__


_STATE_MEMBERS = ("to_play", "key", "legal_actions", "step", "is_terminal", "terminal_value")


def describe_not_a_state(obj: object) -> str:
    """Why ``obj`` is not a State, for error messages."""
    if isinstance(obj, type):
        return f"got the class {obj.__name__}; pass an instance such as {obj.__name__}()"
    missing = []
    for member in _STATE_MEMBERS:
        if hasattr(type(obj), member) and not hasattr(obj, member):
            return f"got {type(obj).__name__}, whose {member} raised AttributeError when read"
        if not hasattr(obj, member):
            missing.append(member)
    return f"got {type(obj).__name__}, which lacks {', '.join(missing) or 'nothing (check types)'}"


def check_scores(raw: Any, expected: int, *, source: object = None) -> list[Score]:
    """Validate a verifier's output and turn it into a list of :class:`Score`."""
    name = describe_callable(source, "verifier")
    if isinstance(raw, (str, bytes, Mapping)) or not hasattr(raw, "__len__"):
        raise TypeError(f"{name} must return a sequence of scores, got {type(raw).__name__}")
    if len(raw) != expected:
        raise ValueError(f"{name} returned {len(raw)} scores for {expected} states")
    scores: list[Score] = []
    for i, item in enumerate(raw):
        if isinstance(item, Score):
            score = item
        elif isinstance(item, (int, float, np.floating, np.integer)) and not isinstance(item, bool):
            score = Score(float(item))
        else:
            raise TypeError(
                f"{name} score {i} must be a number or Score, got {type(item).__name__}"
            )
        if not math.isfinite(score.value) or not all(math.isfinite(s) for s in score.step_scores):
            raise ValueError(f"{name} returned a non-finite score for state {i}: {item!r}")
        scores.append(score)
    return scores


def check_batch(raw: Any, expected: int, *, what: str, source: object = None) -> None:
    """Raise unless ``raw`` is a sequence of ``expected`` items (one per state)."""
    name = type(source).__name__ if source is not None else "callback"
    if isinstance(raw, (str, bytes)) or not hasattr(raw, "__len__"):
        raise TypeError(f"{name} must return a sequence of {what}, got {type(raw).__name__}")
    if len(raw) != expected:
        raise ValueError(f"{name} returned {len(raw)} {what} for {expected} states")


def check_evaluation(
    ev: Any, num_legal: int, *, index: int = 0, source: object = None
) -> tuple[np.ndarray, float]:
    """Validate one Evaluation against its state's legal-action count; returns (priors, value)."""
    name = type(source).__name__ if source is not None else "evaluator"
    if not isinstance(ev, Evaluation):
        raise TypeError(f"{name} item {index} must be an Evaluation, got {type(ev).__name__}")
    priors = np.asarray(ev.priors, dtype=np.float64)
    if priors.shape != (num_legal,):
        raise ValueError(
            f"{name} gave priors of shape {priors.shape} for a state with {num_legal} legal actions"
        )
    if num_legal and (not math.isfinite(priors.sum()) or priors.min() < 0):
        raise ValueError(f"{name} gave negative or non-finite priors for state {index}")
    return priors, check_value(ev.value, index=index, source=source)


def check_value(value: Any, *, index: int = 0, source: object = None) -> float:
    """Validate one evaluator value: a finite real number."""
    name = type(source).__name__ if source is not None else "evaluator"
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(
            f"{name} gave a value of type {type(value).__name__} for state {index}; "
            "expected a number"
        )
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{name} gave a non-finite value for state {index}: {value!r}")
    return number
