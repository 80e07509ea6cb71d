"""Tests for ``treesearch train gomoku`` (treesearch.cli_train), run in-process through ``main``."""

from __future__ import annotations

import json

import pytest

from treesearch.cli import main

torch = pytest.importorskip("torch")
pytest.importorskip("treesearch.games.nets")

TINY = [
    "--size", "5", "--k", "4", "--blocks", "1", "--channels", "8", "--sims", "8",
    "--parallel-games", "8", "--games-per-iteration", "8", "--replay", "400",
    "--batch-size", "32", "--train-steps", "4", "--arena-games", "0", "--arena-sims", "8",
    "--mcts-games", "2",
    "--mcts-sims", "8", "--threads", "1",
]  # fmt: skip


@pytest.fixture(autouse=True)
def restore_torch_threads():
    before = torch.get_num_threads()  # --threads changes the process-wide setting
    yield
    torch.set_num_threads(before)


def test_train_gomoku_runs_resumes_with_saved_settings_and_reports(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "gomoku", *TINY, "--iterations", "1", "--out", str(run)]) == 0
    out, err = capsys.readouterr()
    assert "iteration 1/1  loss " in out and "vs mcts:8 " in out
    assert f"best network: {run / 'best.safetensors'} (iteration 1)" in out
    assert "training 5x5 Gomoku, 4 in a row" in err
    for name in ("best.safetensors", "metrics.jsonl", "curves.png", "checkpoint"):
        assert (run / name).exists(), name

    # Rerun with only --iterations: the run's own settings (5x5, 4 in a row) are kept.
    assert main(["train", "gomoku", "--iterations", "2", "--out", str(run)]) == 0
    out, err = capsys.readouterr()
    assert "resuming from the checkpoint of iteration 1" in err
    assert "iteration 2/2  loss " in out and "iteration 1/" not in out
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [line["iteration"] for line in lines] == [1, 2]
    config = json.loads((run / "checkpoint" / "config.json").read_text())
    assert (config["size"], config["k"], config["iterations"]) == (5, 4, 2)
    assert config["selfplay"]["simulations"] == 8


def test_train_gomoku_errors(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "gomoku", *TINY, "--iterations", "1", "--out", str(run)]) == 0
    capsys.readouterr()
    assert main(["train", "gomoku", "--no-resume", "--out", str(run)]) == 1
    assert "already holds a checkpoint" in capsys.readouterr().err
    assert main(["train", "gomoku", "--size", "6", "--out", str(run)]) == 1
    assert "size 5 -> 6" in capsys.readouterr().err
    assert main(["train", "gomoku", "--k", "7", "--size", "5", "--out", str(tmp_path / "x")]) == 1
    assert "k must be <= 5" in capsys.readouterr().err
    assert main(["train", "gomoku", "--sims", "0"]) == 2
    assert main(["train", "chess"]) == 2
