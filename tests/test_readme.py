"""The README's Python examples run as written, in order, and print what they claim."""

from __future__ import annotations

import contextlib
import io
import re
import sys
import types
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_examples_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    blocks = python_blocks()
    assert len(blocks) >= 4
    module = types.ModuleType("readme_examples")  # dataclasses look their module up
    monkeypatch.setitem(sys.modules, module.__name__, module)
    namespace = module.__dict__
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        for block in blocks:
            # Our own documentation, not model output: running it is the point of the test.
            exec(compile(block, str(README), "exec"), namespace)
    printed = out.getvalue().splitlines()
    assert printed[0].startswith("2 ")  # Nim: take two, leaving a multiple of four
    assert any(line.startswith("(3, 4, 3) 44 exhausted") for line in printed)
    assert (tmp_path / "tree.svg").read_text().lstrip().startswith("<?xml")
    assert (tmp_path / "tree.json").exists()
