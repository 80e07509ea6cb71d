"""Resume bookkeeping and per-phase generators of the self-improvement loops."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from treesearch.train.loop import LoopProgress, PhasedLoop, RunState, config_dict, phase_rng


def test_phase_rng_depends_on_seed_iteration_and_phase_only():
    a = phase_rng(0, 1, "search").integers(1 << 30, size=4)
    assert np.array_equal(a, phase_rng(0, 1, "search").integers(1 << 30, size=4))
    for other in (phase_rng(1, 1, "search"), phase_rng(0, 2, "search"), phase_rng(0, 1, "train")):
        assert not np.array_equal(a, other.integers(1 << 30, size=4))


def test_run_state_records_phases_and_resumes(tmp_path):
    state = RunState(tmp_path, {"seed": 0, "iterations": 2})
    assert not state.resumed and not state.is_done(1, "search")
    state.mark_done(1, "search", {"traces": 12})
    again = RunState(tmp_path, {"seed": 0, "iterations": 2})
    assert again.resumed and again.is_done(1, "search") and not again.is_done(1, "train")
    assert again.result(1, "search") == {"traces": 12}
    again.check_config()
    data = json.loads((tmp_path / "state.json").read_text())
    assert data["done"] == {"1/search": {"traces": 12}}


def test_run_state_refuses_a_changed_config_unless_allowed(tmp_path):
    RunState(tmp_path, {"seed": 0, "iterations": 2}).mark_done(1, "search")
    changed = RunState(tmp_path, {"seed": 1, "iterations": 3})
    with pytest.raises(ValueError, match="seed"):
        changed.check_config(allow_changes=("iterations",))
    RunState(tmp_path, {"seed": 0, "iterations": 3}).check_config(allow_changes=("iterations",))


def test_run_state_refuses_a_foreign_file(tmp_path):
    (tmp_path / "state.json").write_text('{"x": 1}')
    with pytest.raises(ValueError, match="not a run state"):
        RunState(tmp_path, {})


def test_config_dict_is_json_ready():
    @dataclasses.dataclass(frozen=True)
    class C:
        levels: tuple[str, ...] = ("easy", "medium")
        lr: float = 1e-3
        n: np.int64 = dataclasses.field(default_factory=lambda: np.int64(3))

    assert config_dict(C()) == {"levels": ["easy", "medium"], "lr": 1e-3, "n": 3}
    json.dumps(config_dict(C()))
    with pytest.raises(TypeError, match="dataclass"):
        config_dict({"a": 1})


@dataclasses.dataclass(frozen=True)
class _Config:
    iterations: int = 2
    seed: int = 0
    device: str = "cpu"

    def to_dict(self):
        return config_dict(self)


class _Counting(PhasedLoop[_Config]):
    loop = "demo"

    def __init__(self, out_dir, config, progress=None):
        super().__init__(out_dir, config, progress)
        self.calls: list[tuple[int, str]] = []

    def phase(self, name, accuracy):
        def run(iteration):
            self.calls.append((iteration, name))
            if name == "evaluate":
                return {"greedy": {"easy": {"accuracy": accuracy[iteration]}}}
            return {"n": iteration}

        return run

    def report(self):
        entries = self.iteration_entries(("search", "evaluate"))
        return {
            "iterations": entries,
            "greedy": self.greedy_accuracy(entries, ("easy",)),
            "complete": self.complete(),
        }


def test_phased_loop_runs_each_phase_once_and_reports_what_is_done(tmp_path):
    events: list[LoopProgress] = []
    run = _Counting(tmp_path, _Config(), events.append)
    accuracy = [0.5, 0.625, 0.75]
    run.run_phase(0, "evaluate", run.phase("evaluate", accuracy))
    run.run_phase(1, "search", run.phase("search", accuracy))
    assert [(e.loop, e.iteration, e.iterations, e.phase, e.message) for e in events] == [
        ("demo", 0, 2, "evaluate", "start"),
        ("demo", 0, 2, "evaluate", "done"),
        ("demo", 1, 2, "search", "start"),
        ("demo", 1, 2, "search", "done"),
    ]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["greedy"] == {"easy": [0.5, None, None]} and not report["complete"]
    assert report["iterations"][1]["search"]["n"] == 1
    assert set(report["iterations"][1]["search"]) == {"n", "seconds"}
    assert report["iterations"][2] == {"iteration": 2}

    again = _Counting(tmp_path, _Config(), None)  # a resumed run skips what is recorded
    for i in (1, 2):
        for name in ("search", "evaluate"):
            again.run_phase(i, name, again.phase(name, accuracy))
    again.run_phase(0, "evaluate", again.phase("evaluate", accuracy))
    assert again.calls == [(1, "evaluate"), (2, "search"), (2, "evaluate")]
    final = again.write_report()
    assert final["greedy"] == {"easy": [0.5, 0.625, 0.75]} and final["complete"]
    assert again.seconds() >= 0.0
    with pytest.raises(ValueError, match="seed"):
        _Counting(tmp_path, _Config(seed=1))
    assert _Counting(tmp_path, _Config(iterations=3)).complete() is False


def test_phased_loop_loads_models_without_printing(tmp_path, capfd):
    from treesearch.train.toymath_recipe import shipped_checkpoint

    run = _Counting(tmp_path, _Config(), None)
    model = run.load(shipped_checkpoint("policy"))
    assert not model.training
    captured = capfd.readouterr()
    assert captured.out == "" and "Loading weights" not in captured.err
    with pytest.raises(FileNotFoundError, match=r"config\.json"):
        run.load(tmp_path)
