"""Packaging: light imports, the import-name guards, the wheel's contents, the public names."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

import treesearch

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DIRS = {
    "treesearch": "treesearch",
    "adapters": "treesearch/adapters",
    "games": "treesearch/games",
}
HEAVY = ("torch", "transformers", "graphviz", "networkx", "matplotlib", "hypothesis")
# The README's test command; .ci/run runs it with "python3 -m pip" for "pip".
README_TEST_COMMAND = 'pip install -e ".[dev,hf,viz,bench]" && pytest'


def run_python(code: str, *, cwd: Path, args: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _search_modules() -> list[str]:
    folder = Path(treesearch.__file__).parent / "search"
    return sorted(
        f"treesearch.search.{p.stem}" for p in folder.glob("*.py") if p.stem != "__init__"
    )


LIGHT_MODULES = [
    "treesearch",
    "treesearch.viz",
    "treesearch.cli",
    "treesearch.search",
    *_search_modules(),
    "treesearch.games",
    "treesearch.testing",
]

_IMPORT_AND_LIST = """
    import importlib, json, sys
    name, heavy = sys.argv[1], sys.argv[2].split(",")
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and name.startswith(exc.name):
            print(json.dumps({"missing": exc.name}))
            raise SystemExit(0)
        raise
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in heavy)
    print(json.dumps({"heavy": loaded}))
"""


@pytest.mark.parametrize("module", LIGHT_MODULES)
def test_import_loads_no_heavy_dependency(module, tmp_path):
    result = run_python(_IMPORT_AND_LIST, cwd=tmp_path, args=(module, ",".join(HEAVY)))
    assert result.returncode == 0, f"import {module} failed:\n{result.stderr}"
    report = json.loads(result.stdout.strip().splitlines()[-1])
    if "missing" in report:
        pytest.skip(f"{report['missing']} does not exist yet")
    assert report["heavy"] == [], (
        f"import {module} loaded {report['heavy']}; import optional dependencies lazily, "
        "inside the functions that need them"
    )


_BARE_IMPORT = """
    import json, sys
    sys.path.insert(0, sys.argv[1])
    try:
        import {name}
    except ImportError as exc:
        print(json.dumps([type(exc).__name__, str(exc)]))
    else:
        print(json.dumps(["imported", str({name}.__file__)]))
"""


@pytest.mark.parametrize("name", ["adapters", "games"])
def test_bare_top_level_import_is_refused(name):
    if not (ROOT / name / "__init__.py").exists():
        pytest.skip(f"{name}/__init__.py does not exist yet")
    result = run_python(_BARE_IMPORT.format(name=name), cwd=ROOT, args=(str(ROOT),))
    assert result.returncode == 0, result.stderr
    kind, message = json.loads(result.stdout.strip().splitlines()[-1])
    assert kind == "ImportError", f"bare 'import {name}' gave {kind}: {message}"
    assert f"treesearch.{name}" in message


def _build_wheel(tmp_path: Path) -> list[str]:
    # Build from a copy so the build leaves nothing behind in the checkout.
    src = tmp_path / "src"
    shutil.copytree(
        ROOT,
        src,
        ignore=shutil.ignore_patterns(
            ".git",
            "__pycache__",
            "*.pyc",
            "build",
            "dist",
            "*.egg-info",
            ".*_cache",
            ".hypothesis",
            ".venv",
            ".whl",
            ".gl",
        ),
    )
    out = tmp_path / "wheels"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            ".",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(out),
            "-q",
        ],
        cwd=src,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "PIP_NO_INPUT": "1"},
    )
    assert result.returncode == 0, f"pip wheel failed:\n{result.stdout}\n{result.stderr}"
    wheels = list(out.glob("treesearch-*.whl"))
    assert len(wheels) == 1, wheels
    with zipfile.ZipFile(wheels[0]) as zf:
        return zf.namelist()


def test_wheel_holds_only_the_treesearch_namespace(tmp_path):
    names = _build_wheel(tmp_path)
    dist_info = f"treesearch-{treesearch.__version__}.dist-info/"
    stray = [n for n in names if not (n.startswith("treesearch/") or n.startswith(dist_info))]
    assert stray == [], f"files outside treesearch/ in the wheel: {stray}"
    for top in ("tests/", "docs/", "adapters/", "games/", "benchmarks/"):
        assert not any(n.startswith(top) for n in names), f"{top} must stay out of the wheel"
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
    for required in (
        "treesearch/__init__.py",
        "treesearch/adapters/__init__.py",
        "treesearch/games/__init__.py",
        "treesearch/search/__init__.py",
        "treesearch/testing/__init__.py",
    ):
        assert required in names
    # Every module in the source folders ships: a subpackage missing from the explicit
    # package list in pyproject.toml would silently drop out of the wheel.
    missing = []
    for folder, target in PACKAGE_DIRS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            shipped = f"{target}/{path.relative_to(ROOT / folder).as_posix()}"
            if shipped not in names:
                missing.append(shipped)
    assert missing == [], f"not in the wheel (add the package to pyproject.toml): {missing}"
    # The shipped Gomoku agents are package data (pyproject.toml [tool.setuptools.package-data]).
    agents = sorted((ROOT / "games" / "agents").glob("*.safetensors"))
    unshipped = [p.name for p in agents if f"treesearch/games/agents/{p.name}" not in names]
    assert unshipped == [], f"shipped agents missing from the wheel: {unshipped}"


def test_all_public_names_import():
    for name in treesearch.__all__:
        getattr(treesearch, name)
    namespace: dict[str, object] = {}
    exec("from treesearch import *", namespace)
    assert set(treesearch.__all__) <= set(namespace)
    assert len(set(treesearch.__all__)) == len(treesearch.__all__)
    import treesearch.testing as testing

    for name in testing.__all__:
        getattr(testing, name)


def test_version_matches_pyproject():
    tomllib = pytest.importorskip("tomllib")
    with open(ROOT / "pyproject.toml", "rb") as f:
        project = tomllib.load(f)["project"]
    assert treesearch.__version__ == project["version"]


def test_test_layout_keeps_local_folders_from_shadowing():
    # Plain ``pytest`` with importlib mode and no tests/__init__.py keeps the repository root off
    # sys.path, so our adapters/ cannot shadow the AdapterHub package (docs: design, layout).
    assert not (ROOT / "tests" / "__init__.py").exists()
    tomllib = pytest.importorskip("tomllib")
    with open(ROOT / "pyproject.toml", "rb") as f:
        addopts = tomllib.load(f)["tool"]["pytest"]["ini_options"]["addopts"]
    assert "--import-mode=importlib" in addopts


def test_ci_script_runs_the_readme_command():
    script = ROOT / ".ci" / "run"
    assert script.exists() and os.access(script, os.X_OK), ".ci/run must exist and be executable"
    assert f"python3 -m {README_TEST_COMMAND}" in script.read_text()
    readme = ROOT / "README.md"
    if not readme.exists():
        pytest.skip("README.md does not exist yet")
    assert README_TEST_COMMAND in readme.read_text(), (
        f"README.md must give the test command {README_TEST_COMMAND!r}, as .ci/run runs it"
    )
