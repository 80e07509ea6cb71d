"""The README's Python examples run as written, in order, and print what they claim."""

from __future__ import annotations

import contextlib
import io
import re
import shutil
import sys
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def python_blocks(path: Path = README) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)


def run_blocks(path: Path, monkeypatch, *, skip: str | None = None) -> str:
    module = types.ModuleType(f"examples_{path.stem}")  # dataclasses look their module up
    monkeypatch.setitem(sys.modules, module.__name__, module)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        for block in python_blocks(path):
            if skip is not None and skip in block:
                continue
            # Our own documentation, not model output: running it is the point of the test.
            exec(compile(block, str(path), "exec"), module.__dict__)
    return out.getvalue()


def test_readme_examples_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert len(python_blocks()) >= 5
    has_dot = shutil.which("dot") is not None
    # Without Graphviz only the block that draws a picture is left out.
    printed = run_blocks(README, monkeypatch, skip=None if has_dot else "render(").splitlines()
    assert printed[0].startswith("2 ")  # Nim: take two, leaving a multiple of four
    assert any(line.startswith("(3, 4, 3) 44 exhausted") for line in printed)
    assert "3 800" in printed  # the stand-in network's favourite move, one call per simulation
    if has_dot:
        assert (tmp_path / "tree.svg").read_text().lstrip().startswith("<?xml")
        assert (tmp_path / "tree.json").exists()
    # The README's stand-in generator honours max_tokens, so a token budget ends the search.
    import numpy as np

    from treesearch import Budget

    ns = sys.modules["examples_README"]
    r = ns.search.search(ns.Sum(), Budget(tokens=10), rng=np.random.default_rng(0))
    assert r.stop_reason == "tokens" and r.usage.tokens <= 10


def test_algorithm_doc_examples_print_their_stated_output(monkeypatch):
    doc = ROOT / "docs" / "algorithms.md"
    pairs = re.findall(
        r"```python\n(.*?)```\n\nOutput:\n\n```text\n(.*?)```", doc.read_text(), flags=re.S
    )
    assert len(pairs) >= 7  # one example per algorithm
    assert len(pairs) == len(python_blocks(doc))  # every example states its output
    module = types.ModuleType("examples_algorithms")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    for code, expected in pairs:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(code, str(doc), "exec"), module.__dict__)
        assert out.getvalue() == expected, code


def test_games_doc_examples_print_their_stated_output(tmp_path, monkeypatch):
    import importlib.util

    doc = ROOT / "docs" / "games.md"
    pairs = re.findall(
        r"```python\n(.*?)```\n\nOutput:\n\n```text\n(.*?)```", doc.read_text(), flags=re.S
    )
    # Gomoku, the arena, networks and self-play. The training example (minutes of CPU) states
    # no output and is not run here; tests/train covers train().
    assert len(pairs) >= 3
    needs = {"import torch": "torch", "openspiel-mcts": "pyspiel"}
    monkeypatch.chdir(tmp_path)  # the self-play example saves a network file
    module = types.ModuleType("examples_games")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    torch_threads = None
    if importlib.util.find_spec("torch") is not None:
        import torch

        torch_threads = torch.get_num_threads()  # the self-play example sets one thread
    try:
        for code, expected in pairs:
            if any(m in code and importlib.util.find_spec(n) is None for m, n in needs.items()):
                continue  # an optional extra (hf, bench) is not installed
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                exec(compile(code, str(doc), "exec"), module.__dict__)
            assert out.getvalue() == expected, code
    finally:
        if torch_threads is not None:
            torch.set_num_threads(torch_threads)


def test_training_doc_examples_print_their_stated_output(tmp_path, monkeypatch):
    doc = ROOT / "docs" / "training.md"
    pairs = re.findall(
        r"```python\n(.*?)```\n\nOutput:\n\n```text\n(.*?)```", doc.read_text(), flags=re.S
    )
    assert len(pairs) >= 4
    assert len(pairs) == len(python_blocks(doc))  # every example states its output
    monkeypatch.chdir(tmp_path)  # the data-path example writes traces.jsonl
    module = types.ModuleType("examples_training")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    for code, expected in pairs:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(code, str(doc), "exec"), module.__dict__)
        assert out.getvalue() == expected, code
