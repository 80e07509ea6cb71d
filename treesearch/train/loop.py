"""What the self-improvement loops share: phase-by-phase resume, per-phase random generators and
progress events.

ReST-MCTS* (:mod:`treesearch.train.rest_mcts`) and MCTS-DPO (:mod:`treesearch.train.mcts_dpo`)
run iterations of phases (search, build data, train, evaluate). Each phase writes its output
atomically and then records itself in ``out_dir/state.json`` (:class:`RunState`), so a run
killed at any instant resumes at the first phase not recorded, and every phase draws from its
own generator (:func:`phase_rng`), so the resumed run equals an uninterrupted one.
:class:`PhasedLoop` is the part of a loop's driver they share: progress events, the run folder,
loading models, running a phase once, and the report's per-iteration entries.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np

from .atomic import atomic_write_json, read_json

__all__ = ["LoopProgress", "PhasedLoop", "ProgressFn", "RunState", "config_dict", "phase_rng"]

_log = logging.getLogger(__name__)


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


ConfigT = TypeVar("ConfigT")


class PhasedLoop(Generic[ConfigT]):
    """The driver of one run of a self-improvement loop, minus its phases.

    A subclass sets ``loop`` (its name in progress events and saved models), implements the
    phases as methods ``phase(iteration) -> dict`` (a JSON-ready result) run through
    :meth:`run_phase`, and :meth:`report`. ``config`` must have ``iterations``, ``device`` and
    ``to_dict()``; a folder holding a run with another config is refused (``ValueError``)
    unless only ``iterations`` differs.
    """

    loop: str = ""

    def __init__(self, out_dir: Path, config: ConfigT, progress: ProgressFn | None) -> None:
        self.out = out_dir
        self.cfg = config
        self.progress = progress
        self.state = RunState(out_dir, config.to_dict())  # type: ignore[attr-defined]
        self.state.check_config(allow_changes=("iterations",))

    @property
    def iterations(self) -> int:
        return int(self.cfg.iterations)  # type: ignore[attr-defined]

    def say(
        self, iteration: int, phase: str, done: int = 0, total: int = 0, message: str = ""
    ) -> None:
        """Send a :class:`LoopProgress` event (and log it at debug level)."""
        _log.debug("%s %d %s %d/%d %s", self.loop, iteration, phase, done, total, message)
        if self.progress is not None:
            self.progress(
                LoopProgress(self.loop, iteration, self.iterations, phase, done, total, message)
            )

    def folder(self, iteration: int) -> Path:
        return self.out / f"iteration-{iteration}"

    def load(self, path: Path) -> Any:
        """The causal LM saved at ``path``, on the config's device, in eval mode."""
        from .lm_common import load_causal_lm

        if not (path / "config.json").exists():
            raise FileNotFoundError(f"no model in {path} (expected config.json)")
        model: Any = load_causal_lm(path)
        return model.to(self.cfg.device).eval()  # type: ignore[attr-defined]

    def run_phase(self, iteration: int, phase: str, fn: Callable[[int], dict[str, Any]]) -> None:
        """Run ``fn(iteration)`` unless the phase is recorded as done; then record its result
        (with its ``seconds``) and rewrite the report."""
        if self.state.is_done(iteration, phase):
            return
        self.say(iteration, phase, message="start")
        started = time.perf_counter()
        result = fn(iteration)
        result["seconds"] = round(time.perf_counter() - started, 2)
        self.state.mark_done(iteration, phase, result)
        self.write_report()
        self.say(iteration, phase, message="done")

    def report(self) -> dict[str, Any]:
        raise NotImplementedError

    def write_report(self) -> dict[str, Any]:
        """:meth:`report`, also written atomically to ``out_dir/report.json``."""
        report = self.report()
        atomic_write_json(self.out / "report.json", report)
        return report

    # ------------------------------------------------------------------ report parts
    def iteration_entries(self, phases: Sequence[str]) -> list[dict[str, Any]]:
        """One dict per iteration 0..iterations: ``{"iteration": i, phase: result, ...}`` for
        the phases done (iteration 0 lists only ``"evaluate"``, the other ones ``phases``)."""
        done = self.state.done
        entries: list[dict[str, Any]] = []
        for i in range(self.iterations + 1):
            names = ("evaluate",) if i == 0 else phases
            entry = {p: done[RunState.key(i, p)] for p in names if RunState.key(i, p) in done}
            entries.append({"iteration": i, **entry})
        return entries

    @staticmethod
    def greedy_accuracy(
        entries: Sequence[dict[str, Any]], levels: Sequence[str]
    ) -> dict[str, list[float | None]]:
        """Held-out greedy accuracy per level and iteration (``None`` where not evaluated)."""
        return {
            level: [
                entry["evaluate"]["greedy"][level]["accuracy"] if entry.get("evaluate") else None
                for entry in entries
            ]
            for level in levels
        }

    def complete(self) -> bool:
        """Whether every iteration's evaluation is done."""
        return all(self.state.is_done(i, "evaluate") for i in range(self.iterations + 1))

    def seconds(self) -> float:
        """The seconds of every phase done, summed."""
        done = self.state.done
        return round(
            sum(float(r.get("seconds", 0.0)) for r in done.values() if isinstance(r, dict)), 1
        )
