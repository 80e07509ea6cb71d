"""docs/adapters.md: every Python example runs and prints its stated Output block; and the
adapter modules import without torch or transformers."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import re
import subprocess
import sys
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "adapters.md"


def _examples() -> list[tuple[str, str]]:
    text = DOC.read_text(encoding="utf-8")
    pairs = re.findall(r"```python\n(.*?)```\n\nOutput:\n\n```text\n(.*?)```", text, flags=re.S)
    assert len(pairs) == len(re.findall(r"```python\n", text))  # every example states its output
    return pairs


def test_doc_examples_print_their_stated_output(monkeypatch):
    pairs = _examples()
    assert len(pairs) == 4
    module = types.ModuleType("examples_adapters")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    for code, expected in pairs:
        if "build_tokenizer" in code and importlib.util.find_spec("transformers") is None:
            continue  # the tokenizer needs the hf extra
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            # Our own documentation, not model output: running it is the point of the test.
            exec(compile(code, str(DOC), "exec"), module.__dict__)
        assert out.getvalue() == expected, code


_IMPORT = """
import json, sys
import treesearch.adapters.answers, treesearch.adapters.data, treesearch.adapters.toymath
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "transformers", "tokenizers"))
print(json.dumps(heavy))
"""


def test_adapter_modules_import_light(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", _IMPORT],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
