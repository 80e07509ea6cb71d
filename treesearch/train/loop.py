"""What the self-improvement loops share: phase-by-phase resume, per-phase random generators and
progress events.

ReST-MCTS* (:mod:`treesearch.train.rest_mcts`) and MCTS-DPO (:mod:`treesearch.train.mcts_dpo`)
run iterations of phases (search, build data, train, evaluate). Each phase writes its output
atomically and then records itself in ``out_dir/state.json`` (:class:`RunState`), so a run
killed at any instant resumes at the first phase not recorded, and every phase draws from its
own generator (:func:`phase_rng`), so the resumed run equals an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_write_json, read_json

__all__ = ["LoopProgress", "ProgressFn", "RunState", "config_dict", "phase_rng"]


@dataclass(frozen=True, slots=True)
class LoopProgress:
    """One progress event of a training loop (the CLI draws its bar from these).

    Attributes:
        loop: the loop's name (``"rest-mcts"``, ``"mcts-dpo"``).
        iteration: 1-based; 0 for the evaluation of the starting models.
        iterations: iterations in the run.
        phase: the phase's name (``"search"``, ``"train-policy"``, ``"evaluate"``, ...).
        done, total: work units of the phase done so far and in all (``total`` 0: unknown).
        message: a short human-readable note.
    """

    loop: str
    iteration: int
    iterations: int
    phase: str
    done: int = 0
    total: int = 0
    message: str = ""


ProgressFn = Callable[[LoopProgress], None]


def phase_rng(seed: int, iteration: int, phase: str) -> np.random.Generator:
    """The generator of one phase, a function of ``(seed, iteration, phase)`` only."""
    phase_code = int.from_bytes(phase.encode("utf-8")[:8].ljust(8, b"\0"), "little")
    return np.random.default_rng([int(seed), int(iteration), phase_code])


class RunState:
    """The completed phases of a run, kept in ``out_dir/state.json`` and rewritten atomically.

    ``config`` (a JSON-ready dict) is stored with the first phase; a rerun with a different
    config is refused unless ``allow_changes`` names the fields that may differ (e.g. the
    number of iterations, to train further).
    """

    FILE = "state.json"

    def __init__(self, out_dir: str | os.PathLike[str], config: dict[str, Any]) -> None:
        self.out_dir = Path(out_dir)
        self.path = self.out_dir / self.FILE
        self.config = dict(config)
        self.done: dict[str, Any] = {}
        self.saved_config: dict[str, Any] | None = None
        if self.path.exists():
            data = read_json(self.path)
            if not isinstance(data, dict) or "done" not in data or "config" not in data:
                raise ValueError(f"{self.path}: not a run state written by treesearch")
            self.done = dict(data["done"])
            self.saved_config = dict(data["config"])

    @property
    def resumed(self) -> bool:
        """Whether the folder held phases of an earlier run."""
        return bool(self.done)

    def check_config(self, allow_changes: tuple[str, ...] = ()) -> None:
        """Raise ``ValueError`` if the stored config differs outside ``allow_changes``."""
        if self.saved_config is None:
            return
        keys = set(self.saved_config) | set(self.config)
        changed = sorted(
            k
            for k in keys
            if k not in allow_changes and self.saved_config.get(k) != self.config.get(k)
        )
        if changed:
            raise ValueError(
                f"{self.out_dir} holds a run with a different config ({', '.join(changed)}); "
                "use the same settings to resume it, or another output folder"
            )

    @staticmethod
    def key(iteration: int, phase: str) -> str:
        return f"{iteration}/{phase}"

    def is_done(self, iteration: int, phase: str) -> bool:
        return self.key(iteration, phase) in self.done

    def result(self, iteration: int, phase: str) -> Any:
        """What :meth:`mark_done` stored for the phase (``KeyError`` if not done)."""
        return self.done[self.key(iteration, phase)]

    def mark_done(self, iteration: int, phase: str, result: Any = None) -> None:
        """Record a finished phase (with a JSON-ready ``result``) and save atomically."""
        self.done[self.key(iteration, phase)] = result
        atomic_write_json(self.path, {"config": self.config, "done": self.done})


def config_dict(config: Any) -> dict[str, Any]:
    """A frozen dataclass config as a JSON-ready dict (tuples become lists)."""
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise TypeError(f"config must be a dataclass instance, not {type(config).__name__}")
    data = dataclasses.asdict(config)
    return _json_ready(data)


def _json_ready(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
