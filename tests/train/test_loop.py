"""Resume bookkeeping and per-phase generators of the self-improvement loops."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from treesearch.train.loop import RunState, config_dict, phase_rng


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
