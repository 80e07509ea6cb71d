"""``treesearch train rest-mcts|mcts-dpo``: flags reach the loop configs, the table and the
plot show the report's history, and a run killed with SIGKILL resumes to the same report as an
uninterrupted one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from treesearch.cli import _build_parser, main
from treesearch.cli_train_llm import config_from_args, format_history, plot_history

HISTORY = [
    {"iteration": 0, "greedy": {"easy": 0.775, "medium": 0.065}, "prm_f1": 0.625},
    {"iteration": 1, "greedy": {"easy": 0.8, "medium": 0.1}, "prm_f1": 0.6391},
]


def test_history_table():
    assert format_history(HISTORY).splitlines() == [
        "iteration  greedy easy  greedy medium  PRM F1",
        "0 (start)        77.5%           6.5%   0.625",
        "        1        80.0%          10.0%   0.639",
    ]
    no_f1 = [{"iteration": 0, "greedy": {"easy": 0.5}}]
    assert "PRM F1" not in format_history(no_f1)


def test_history_plot(tmp_path):
    pytest.importorskip("matplotlib")
    path = plot_history(HISTORY, tmp_path / "curves.png", "ReST-MCTS*")
    assert path is not None and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def parse(*argv: str):
    return _build_parser().parse_args(["train", *argv])


def test_flags_and_settings_reach_the_configs(tmp_path):
    pytest.importorskip("torch")
    config, out = config_from_args(
        parse(
            "rest-mcts",
            "--problems",
            "7",
            "--iterations",
            "3",
            "--set",
            "search_iterations=5",
            "--set",
            'levels=["easy", "medium:2"]',
            "--prm",
            "some/folder",
        )
    )
    assert (config.problems_per_level, config.iterations, config.search_iterations) == (7, 3, 5)
    assert config.levels == ("easy", "medium:2") and config.value_start == "some/folder"
    assert str(out) == os.path.join("runs", "rest-mcts-toymath")
    config, out = config_from_args(
        parse("mcts-dpo", "--problems", "9", "--policy", "p", "--out", str(tmp_path))
    )
    assert (config.problems_per_iteration, config.policy_path, out) == (9, "p", tmp_path)


def test_bad_settings_are_named(capsys):
    pytest.importorskip("torch")
    assert main(["train", "rest-mcts", "--set", "no_such=1"]) == 1
    assert "no setting 'no_such'" in capsys.readouterr().err
    assert main(["train", "mcts-dpo", "--set", "iterations"]) == 1
    assert "FIELD=VALUE" in capsys.readouterr().err
    assert main(["train", "rest-mcts", "--set", "iterations=0"]) == 1
    assert "iterations" in capsys.readouterr().err
    assert main(["train", "rest-mcts", "--task", "chess"]) == 2


# ------------------------------------------------------------------------- SIGKILL resume
TINY = [
    "--iterations", "1", "--problems", "3", "--eval-size", "2", "--threads", "1",
    "--set", 'levels=["easy"]', "--set", "search_iterations=6", "--set", "prm_eval_size=2",
    "--set", "sft_max_steps=6", "--set", "sft_batch_size=4", "--set", "value_max_steps=6",
    "--set", "value_batch_size=4",
]  # fmt: skip


def _without_seconds(value):
    if isinstance(value, dict):
        return {k: _without_seconds(v) for k, v in value.items() if "seconds" not in k}
    if isinstance(value, list):
        return [_without_seconds(v) for v in value]
    return value


def test_sigkill_then_rerun_resumes_to_the_uninterrupted_report(tmp_path, capsys):
    pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")
    from treesearch.adapters.tiny import tiny_model
    from treesearch.adapters.toymath import build_tokenizer
    from treesearch.train.lm_common import save_pretrained_atomic

    tokenizer = build_tokenizer()
    save_pretrained_atomic(tmp_path / "value", tiny_model(tokenizer, seed=5), tokenizer)
    flags = [*TINY, "--prm", str(tmp_path / "value")]
    run = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, "-m", "treesearch.cli", "train", "rest-mcts", *flags, "--out", str(run)],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 300
        while True:  # kill once the search of iteration 1 is on disk, before training ends
            state = run / "state.json"
            if state.exists() and "1/search" in json.loads(state.read_text())["done"]:
                break
            if process.poll() is not None:
                pytest.fail(f"the run exited early: {process.stderr.read().decode()}")
            if time.monotonic() > deadline:
                pytest.fail("no finished search phase within 300 s")
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGKILL)
        assert process.wait(timeout=30) == -signal.SIGKILL
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stderr.close()
    done = json.loads((run / "state.json").read_text())["done"]
    assert "1/evaluate" not in done

    threads = torch.get_num_threads()
    try:
        assert main(["train", "rest-mcts", *flags, "--out", str(run)]) == 0
        resumed_out = capsys.readouterr().out
        assert main(["train", "rest-mcts", *flags, "--out", str(tmp_path / "straight")]) == 0
        capsys.readouterr()
    finally:
        torch.set_num_threads(threads)
    assert "0 (start)" in resumed_out and f"report: {run / 'report.json'}" in resumed_out
    assert (run / "curves.png").exists()
    resumed = json.loads((run / "report.json").read_text())
    straight = json.loads((tmp_path / "straight" / "report.json").read_text())
    assert resumed["complete"] and straight["complete"]
    assert _without_seconds(resumed) == _without_seconds(straight)
