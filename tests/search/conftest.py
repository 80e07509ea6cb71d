"""A tiny deterministic "text world" for the verifier-guided searches.

* :class:`TextState`: a tuple of step strings; terminal when the last step is ``"EOS"`` or the
  state holds ``max_len`` steps.
* :class:`TablePolicy`: proposes fixed candidate steps (with priors) per state.
* :class:`ScriptedPolicy`: returns pre-written outputs call by call (for positional tests).
* :class:`RandomPolicy`: draws candidates with the search's rng, one token per candidate.
* :class:`TableVerifier` / :class:`TargetVerifier`: score states from a table, or reward a
  target sequence step by step (a process reward model with per-step scores).

Every policy and verifier records what it was asked, so tests can check the order of calls.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import pytest

from treesearch import Budget, Candidate, Score
from treesearch.search.beam import BeamSearch
from treesearch.search.best_first import BestFirst
from treesearch.search.best_of_n import BestOfN
from treesearch.search.bfs import BFS
from treesearch.search.dfs import DFS
from treesearch.search.dvts import DVTS

Steps = tuple[str, ...]


@dataclass(frozen=True)
class TextState:
    steps: Steps = ()
    max_len: int = 6
    eos_value: float | None = None  # terminal_value() of a state ending in "EOS"

    @property
    def to_play(self) -> int:
        return 0

    @property
    def key(self) -> Steps:
        return self.steps

    def legal_actions(self) -> tuple[()]:
        return ()

    def step(self, action: object) -> TextState:
        if self.is_terminal():
            raise ValueError(f"cannot step the terminal state {self.steps}")
        return TextState((*self.steps, str(action)), self.max_len, self.eos_value)

    def is_terminal(self) -> bool:
        return (bool(self.steps) and self.steps[-1] == "EOS") or len(self.steps) >= self.max_len

    def terminal_value(self) -> float | None:
        return self.eos_value if self.steps and self.steps[-1] == "EOS" else None


def S(*steps: str, max_len: int = 6, eos_value: float | None = None) -> TextState:
    return TextState(tuple(steps), max_len, eos_value)


class TablePolicy:
    """``table[steps]`` (or ``default(steps)``) gives ``[(action, prior), ...]``."""

    def __init__(
        self,
        table: Mapping[Steps, Sequence[tuple[str, float]]] | None = None,
        default: Callable[[Steps], Sequence[tuple[str, float]]] | None = None,
    ) -> None:
        self.table = dict(table or {})
        self.default = default
        self.calls: list[list[Steps]] = []

    def propose(self, states, *, rng, max_tokens=None):
        self.calls.append([s.steps for s in states])
        out = []
        for s in states:
            if s.steps in self.table:
                pairs = self.table[s.steps]
            elif self.default is not None:
                pairs = self.default(s.steps)
            else:
                raise KeyError(f"no candidates written for {s.steps}")
            out.append([Candidate(a, p) for a, p in pairs])
        return out


class ScriptedPolicy:
    """Call ``k`` returns ``script[k]``: one list of actions (prior 1) per state."""

    def __init__(self, script: Sequence[Sequence[Sequence[str]]]) -> None:
        self.script = list(script)
        self.calls: list[list[Steps]] = []

    def propose(self, states, *, rng, max_tokens=None):
        out = self.script[len(self.calls)]
        self.calls.append([s.steps for s in states])
        assert len(out) == len(states), "script does not match the batch"
        return [[Candidate(a) for a in actions] for actions in out]


class RandomPolicy:
    """Two to four distinct candidates from ``alphabet`` per state, drawn with ``rng``; each
    costs one token, and the call stays within ``max_tokens`` (later states may get none)."""

    def __init__(self, alphabet: Sequence[str] = ("a", "b", "c", "EOS")) -> None:
        self.alphabet = list(alphabet)
        self.calls: list[list[Steps]] = []

    def propose(self, states, *, rng, max_tokens=None):
        self.calls.append([s.steps for s in states])
        left = max_tokens
        out = []
        for _ in states:
            k = int(rng.integers(2, min(4, len(self.alphabet)) + 1))
            picks = rng.choice(len(self.alphabet), size=k, replace=False)
            priors = rng.random(k)
            if left is not None:
                k = min(k, left)
                left -= k
            out.append(
                [
                    Candidate(self.alphabet[int(i)], float(p), num_tokens=1)
                    for i, p in zip(picks[:k], priors[:k], strict=True)
                ]
            )
        return out


class TableVerifier:
    """``table[steps]`` (or ``default(steps)``) is the score; records every batch it sees."""

    def __init__(
        self,
        table: Mapping[Steps, float | Score] | None = None,
        default: Callable[[Steps], float | Score] | None = None,
    ) -> None:
        self.table = dict(table or {})
        self.default = default
        self.seen: list[list[Steps]] = []

    def score(self, states):
        self.seen.append([s.steps for s in states])
        out = []
        for s in states:
            if s.steps in self.table:
                out.append(self.table[s.steps])
            elif self.default is not None:
                out.append(self.default(s.steps))
            else:
                raise KeyError(f"no score written for {s.steps}")
        return out


class TargetVerifier:
    """A process reward model for one target sequence: step ``i`` scores 1 while the prefix
    up to it matches the target, else 0. ``Score.value`` is the last step score."""

    def __init__(self, target: Sequence[str]) -> None:
        self.target = tuple(target)
        self.seen: list[list[Steps]] = []

    def score(self, states):
        self.seen.append([s.steps for s in states])
        out = []
        for s in states:
            steps = tuple(
                1.0 if s.steps[: i + 1] == self.target[: i + 1] else 0.0
                for i in range(len(s.steps))
            )
            out.append(Score(steps[-1] if steps else 0.0, steps))
        return out


def hash_score(steps: Steps) -> float:
    """A deterministic pseudo-random score in [0, 1) for any state (stable across runs)."""
    return float(np.random.default_rng(zlib.crc32(repr(steps).encode())).random())


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


# Every algorithm built with small, comparable settings: name -> factory(policy, verifier, **kw).
FACTORIES: dict[str, Callable[..., object]] = {
    "bfs": lambda p, v, **kw: BFS(p, v, beam_size=2, max_depth=4, **kw),
    "dfs": lambda p, v, **kw: DFS(p, v, threshold=0.3, max_depth=4, stop_at_first=False, **kw),
    "beam": lambda p, v, **kw: BeamSearch(p, v, n=4, beam_width=2, max_iterations=4, **kw),
    "best_first": lambda p, v, **kw: BestFirst(p, v, num_solutions=3, max_depth=4, **kw),
    "best_of_n": lambda p, v, **kw: BestOfN(p, v, n=4, max_depth=4, **kw),
    "dvts": lambda p, v, **kw: DVTS(p, v, n=4, beam_width=2, max_iterations=4, **kw),
}

BIG = Budget(simulations=10_000)


def steps_of(tree, node: int) -> Steps:
    """The step strings from the root to ``node``."""
    return tuple(tree.actions[i] for i in tree.path(node)[1:])


def expanded_by_depth(tree) -> dict[int, list[Steps]]:
    """Depth -> the expanded nodes there (as step tuples), in node order."""
    out: dict[int, list[Steps]] = {}
    for i in range(tree.num_nodes):
        if tree.is_expanded(i):
            out.setdefault(int(tree.depth[i]), []).append(steps_of(tree, i))
    return out


@pytest.fixture(scope="session")
def tw() -> SimpleNamespace:
    """The text world and helpers (test modules cannot import conftest under importlib mode)."""
    return SimpleNamespace(
        TextState=TextState,
        S=S,
        TablePolicy=TablePolicy,
        ScriptedPolicy=ScriptedPolicy,
        RandomPolicy=RandomPolicy,
        TableVerifier=TableVerifier,
        TargetVerifier=TargetVerifier,
        hash_score=hash_score,
        rng=rng,
        FACTORIES=FACTORIES,
        BIG=BIG,
        expanded_by_depth=expanded_by_depth,
        steps_of=steps_of,
    )


@pytest.fixture(scope="module", params=sorted(FACTORIES))
def algo(request) -> str:
    """The name of each algorithm in turn (a key of ``FACTORIES``)."""
    return request.param
