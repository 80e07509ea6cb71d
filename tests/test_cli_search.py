"""Tests for ``treesearch search toymath`` (treesearch.cli_search), run in-process through
``main`` with random tiny models (``--tiny``) and a scripted policy with known answers."""

from __future__ import annotations

import json
import math
import re
import shutil

import numpy as np
import pytest

from treesearch.cli import main
from treesearch.cli_search import run_toymath, tree_label

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")


@pytest.fixture(autouse=True)
def restore_torch_threads():
    before = torch.get_num_threads()  # --threads changes the process-wide setting
    yield
    torch.set_num_threads(before)


def last_json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.skipif(shutil.which("dot") is None, reason="needs Graphviz dot")
def test_search_toymath_reports_json_and_draws_the_tree_with_prm_scores(tmp_path, capsys):
    svg = tmp_path / "tree.svg"
    argv = ["search", "toymath", "--tiny", "--algo", "beam", "--n", "4", "--problems", "2"]
    assert main([*argv, "--level", "hard", "--json", "--viz", str(svg)]) == 0
    out, err = capsys.readouterr()
    summary = last_json(out)
    assert summary["algo"] == "beam" and summary["level"] == "hard" and summary["n"] == 4
    assert summary["problems"] == 2 and summary["verifier"] == "prm"
    assert summary["accuracy"] == summary["correct"] / 2
    usage = summary["usage"]
    # The budget: ceil(1.25 * 4 * reference tokens) per problem; the search kept to it.
    assert 0 < usage["tokens"] <= usage["budget_tokens"]
    assert set(summary["tokens_ratio"]) == {"policy", "policy_without_duplicates", "prm"}
    assert summary["tokens_ratio"]["policy_without_duplicates"] <= summary["tokens_ratio"]["policy"]
    assert 0.5 < summary["tokens_ratio"]["policy"] <= 1.1
    assert 0.5 < summary["tokens_ratio"]["prm"] <= 1.1
    assert "accuracy: " in out and "tokens processed per unique tree token" in out
    assert "2/2 problems" in err and "[####" in err  # the progress bar
    text = svg.read_text()
    assert summary["viz"] == str(svg) and text.startswith(("<?xml", "<svg"))
    assert re.search(r"PRM [01]\.\d{3}", text), "a node label shows a PRM score"
    assert "Start with" in text  # the root shows the problem


@pytest.mark.parametrize("algo", ["greedy", "best-of-n", "weighted-best-of-n", "dvts", "mcts"])
def test_every_algorithm_runs_within_budget(algo, capsys):
    argv = ["search", "toymath", "--tiny", "--algo", algo, "--n", "2", "--problems", "1"]
    assert main([*argv, "--level", "easy", "--json"]) == 0
    summary = last_json(capsys.readouterr().out)
    assert summary["method"] == algo.replace("-", "_")
    if algo != "greedy":  # greedy is one unbudgeted solution
        assert summary["usage"]["tokens"] <= summary["usage"]["budget_tokens"]


def test_oracle_verifier_reports_no_verifier_ratio(capsys):
    argv = ["search", "toymath", "--tiny", "--algo", "beam", "--n", "2", "--problems", "1"]
    assert main([*argv, "--verifier", "oracle", "--json"]) == 0
    summary = last_json(capsys.readouterr().out)
    assert summary["tokens_ratio"]["oracle"] is None  # the checker runs no model
    assert summary["tokens_ratio"]["policy"] is not None


def test_usage_errors(capsys):
    assert main(["search", "toymath", "--algo", "sampling"]) == 2
    assert main(["search", "toymath", "--n", "0"]) == 2
    assert main(["search", "toymath", "--tiny", "--problems", "1001"]) == 1
    assert "at most 1000" in capsys.readouterr().err


class _Outcome:
    def __init__(self, correct: bool) -> None:
        self.correct = correct
        self.answer = "1" if correct else None
        self.tokens, self.budget, self.unit = 10, 20, 8
        self.policy_processed, self.policy_tree, self.policy_duplicates = 9, 10, 2
        self.verifier_processed, self.verifier_tree = 12, 12
        self.result = None


class _FakeSearcher:
    """Right on every problem whose index is in ``right``; records the calls."""

    def __init__(self, right: set[int]) -> None:
        self.right = right
        self.calls: list[tuple[str, int]] = []

    def run(self, problem, method, n, *, rng, verifier):
        self.calls.append((method, n))
        return _Outcome(len(self.calls) - 1 in self.right)

    def run_best_of_n(self, problem, n, *, rng, verifier):
        self.calls.append(("best_of_n", n))
        k = len(self.calls) - 1
        return _Outcome(k in self.right), _Outcome(k not in self.right)


def test_accuracy_and_usage_are_summed_over_problems():
    searcher = _FakeSearcher({0, 1, 3})
    summary = run_toymath(searcher, algo="mcts", n=8, problems=4, level="easy", seed=0)
    assert searcher.calls == [("mcts", 8)] * 4
    assert summary["accuracy"] == 0.75 and summary["correct"] == 3
    assert summary["usage"]["tokens"] == 40 and summary["usage"]["budget_tokens"] == 80
    assert summary["usage"]["budget_used"] == 0.5
    assert summary["tokens_ratio"] == {"policy": 0.9, "policy_without_duplicates": 0.7, "prm": 1.0}
    # The weighted vote is the second outcome of the shared best-of-N samples.
    weighted = run_toymath(
        _FakeSearcher({0, 1, 3}), algo="weighted-best-of-n", n=4, problems=4, level="easy", seed=0
    )
    assert weighted["accuracy"] == 0.25


class _Node:
    def __init__(self, index, action, visits):
        self.index, self.action, self.visits = index, action, visits


def test_tree_label_shows_the_step_and_its_prm_score():
    from treesearch.adapters.state import Step

    scores = [math.nan, 0.8731, math.nan]
    step = Step("12+5=17<sep>", (1, 2), "separator", content="12+5=17")
    assert tree_label(_Node(1, step, 3), scores, "Q") == "12+5=17\nPRM 0.873\nN=3"
    eos = Step("", (2,), "eos", content="")
    assert tree_label(_Node(2, eos, 1), scores, "Q") == "<eos>\nPRM -"
    assert tree_label(_Node(0, None, 9), scores, "Start with 3.") == "Start with 3."
    assert np.isnan(scores[0])
