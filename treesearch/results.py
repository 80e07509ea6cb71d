"""Typed, frozen search results and the traces that training loops read.

A :class:`SearchResult` is what every algorithm returns. Its :class:`Trace` records are the
root-to-leaf paths with per-step scores and the outcome; they export to JSONL and import back
unchanged, so a user can search on one machine and train on another.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .budget import Usage
from .interfaces import Action, State
from .tree import Tree, _decode_action, _encode_action

__all__ = [
    "SearchResult",
    "Trace",
    "TraceStep",
    "read_traces",
    "root_distribution",
    "trace_from_path",
    "write_traces",
]


def _opt_float(x: float | None) -> float | None:
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) else x


@dataclass(frozen=True, slots=True)
class TraceStep:
    """One edge of a root-to-leaf path.

    Attributes:
        action: the action taken (a move, or the text of a step).
        score: the verifier's score of the state reached, if it was scored.
        value: the search's Q for this edge (player to move at the parent), if visited.
        visits: visit count of the edge.
        prior: the policy's prior for the edge.
        tokens: tokens the policy generated for this action.
    """

    action: Action
    score: float | None = None
    value: float | None = None
    visits: int = 0
    prior: float | None = None
    tokens: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": _encode_action(self.action, 0),
            "score": self.score,
            "value": self.value,
            "visits": self.visits,
            "prior": self.prior,
            "tokens": self.tokens,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TraceStep:
        return cls(
            action=_decode_action(data["action"]),
            score=data.get("score"),
            value=data.get("value"),
            visits=int(data.get("visits", 0)),
            prior=data.get("prior"),
            tokens=int(data.get("tokens", 0)),
        )


@dataclass(frozen=True, slots=True)
class Trace:
    """A root-to-leaf path with per-step scores and the outcome.

    Attributes:
        steps: the edges from the root down.
        outcome: the exact terminal value for the player to move at the leaf (from
            ``State.terminal_value``), or ``None`` when not known.
        terminal: whether the leaf is a terminal state.
        answer: a canonical answer string, for problems that have one.
        metadata: free-form JSON-ready data (problem id, seed, ...).
    """

    steps: tuple[TraceStep, ...]
    outcome: float | None = None
    terminal: bool = False
    answer: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def actions(self) -> tuple[Action, ...]:
        return tuple(s.action for s in self.steps)

    def to_dict(self) -> dict[str, Any]:
        return {
            "steps": [s.to_dict() for s in self.steps],
            "outcome": self.outcome,
            "terminal": self.terminal,
            "answer": self.answer,
            "metadata": self.metadata,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Trace:
        if not isinstance(data, dict) or "steps" not in data:
            raise ValueError("a trace record needs a 'steps' list")
        return cls(
            steps=tuple(TraceStep.from_dict(s) for s in data["steps"]),
            outcome=data.get("outcome"),
            terminal=bool(data.get("terminal", False)),
            answer=data.get("answer"),
            metadata=dict(data.get("metadata") or {}),
        )


def trace_from_path(tree: Tree, leaf: int, *, answer: str | None = None) -> Trace:
    """The trace of the path from the root to ``leaf``."""
    steps = []
    for node in tree.path(leaf)[1:]:
        steps.append(
            TraceStep(
                action=tree.actions[node],
                score=_opt_float(tree.score[node]),
                value=_opt_float(tree.q(node)),
                visits=int(tree.visits[node]),
                prior=float(tree.prior[node]),
                tokens=int(tree.tokens[node]),
            )
        )
    outcome = None
    terminal = bool(tree.terminal[leaf])
    state = tree.states[leaf]
    if state is not None and terminal:
        outcome = _opt_float(state.terminal_value())
    return Trace(steps=tuple(steps), outcome=outcome, terminal=terminal, answer=answer)


def write_traces(path: str | os.PathLike[str], traces: Iterable[Trace]) -> int:
    """Write traces as JSONL, atomically (temp file, then rename). Returns the count."""
    path = Path(path)
    count = 0
    fd, tmp = tempfile.mkstemp(dir=path.parent or ".", prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            for trace in traces:
                if not isinstance(trace, Trace):
                    raise TypeError(f"expected Trace, got {type(trace).__name__}")
                fh.write(json.dumps(trace.to_dict(), allow_nan=False) + "\n")
                count += 1
            fh.flush()
            os.fsync(fh.fileno())
        # mkstemp creates 0600 files; traces are ordinary data files.
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return count


def read_traces(path: str | os.PathLike[str]) -> list[Trace]:
    """Read traces written by :func:`write_traces`; names the line of any bad record."""
    traces = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                traces.append(Trace.from_dict(json.loads(line)))
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"{path}:{lineno}: bad trace record: {exc}") from exc
    return traces


@dataclass(frozen=True)
class SearchResult:
    """What every search returns.

    Attributes:
        action: the chosen action at the root: the move for game searches, the first step on
            the path to the answer for answer-producing searches; ``None`` when the root had
            no children.
        actions: the root's child actions, aligned with ``visit_distribution``.
        visit_distribution: root child visits divided by their sum (for MCTS), or the
            normalised selection weights of the algorithm.
        root_value: the search's value estimate of the root for its player to move.
        tree: the search tree.
        usage: what the search spent.
        traces: root-to-leaf paths for training.
        answer: the chosen final state for answer-producing searches (beam, best-of-N, ...).
        answer_text: its canonical answer string, when the problem has one.
        stop_reason: which budget limit ended the search, or ``"exhausted"`` / ``"solved"``.
    """

    action: Action | None
    actions: tuple[Action, ...]
    visit_distribution: np.ndarray
    root_value: float
    tree: Tree = field(repr=False)
    usage: Usage
    traces: tuple[Trace, ...] = ()
    answer: State | None = None
    answer_text: str | None = None
    stop_reason: str = "exhausted"

    def policy(self) -> dict[Action, float]:
        """The visit distribution keyed by action."""
        return dict(zip(self.actions, self.visit_distribution.tolist(), strict=True))


def root_distribution(tree: Tree) -> tuple[tuple[Action, ...], np.ndarray]:
    """Root child actions and their visit shares (uniform zeros if unvisited)."""
    kids = tree.children(Tree.ROOT)
    actions = tuple(tree.actions[i] for i in kids)
    visits = tree.visits[kids.start : kids.stop].astype(np.float64)
    total = visits.sum()
    dist = visits / total if total > 0 else visits
    return actions, dist
