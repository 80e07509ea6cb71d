"""Tests for the ``treesearch`` command (treesearch.cli), run in-process through ``main``."""

from __future__ import annotations

import shutil
import sys
import types
import xml.etree.ElementTree as ET

import numpy as np
import pytest

import treesearch
from treesearch.cli import main, run_demo
from treesearch.tree import Tree
from treesearch.viz import load_json, save_json, to_dot

SVG = "{http://www.w3.org/2000/svg}"
needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz dot not installed")


def saved_tree(tmp_path):
    tree = Tree()
    tree.add_children(0, ["left", "middle", "right"], [0.2, 0.5, 0.3])
    tree.add_children(2, ["deeper"], [1.0])
    tree.visits[:5] = [9, 2, 5, 2, 5]
    tree.value_sum[:5] = [1.0, -1.0, 3.0, 0.0, 2.0]
    return save_json(tree, tmp_path / "tree.json")


def assert_svg(path):
    root = ET.parse(path).getroot()
    assert root.tag == f"{SVG}svg"
    return [el.text for el in root.iter(f"{SVG}text")]


@needs_dot
def test_viz_writes_svg(tmp_path, capsys):
    out = tmp_path / "out.svg"
    assert main(["viz", str(saved_tree(tmp_path)), "-o", str(out)]) == 0
    texts = assert_svg(out)
    assert "middle" in texts and "deeper" in texts
    assert "out.svg" in capsys.readouterr().out


@needs_dot
def test_viz_pruning_options(tmp_path):
    out = tmp_path / "out.svg"
    args = ["viz", str(saved_tree(tmp_path)), "-o", str(out), "--top-k", "1", "--max-depth", "1"]
    assert main(args) == 0
    texts = assert_svg(out)
    assert "middle" in texts and "left" not in texts and "deeper" not in texts
    assert texts.count("+1 more") == 1 and "+2 more" in texts


@needs_dot
def test_viz_writes_png(tmp_path):
    out = tmp_path / "out.png"
    assert main(["viz", str(saved_tree(tmp_path)), "--output", str(out)]) == 0
    assert out.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_viz_writes_dot_source(tmp_path):
    path = saved_tree(tmp_path)
    out = tmp_path / "out.dot"
    assert main(["viz", str(path), "-o", str(out), "--min-visits", "3"]) == 0
    assert out.read_text(encoding="utf-8") == to_dot(load_json(path), min_visits=3)


def test_viz_missing_file_is_a_one_line_error(tmp_path, capsys):
    missing = tmp_path / "nope.json"
    assert main(["viz", str(missing), "-o", str(tmp_path / "out.svg")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("treesearch: error: ") and "nope.json" in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "out.svg").exists()


def test_viz_corrupted_file_is_a_one_line_error(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "treesearch.tree/1", "num_nodes": 2}')
    assert main(["viz", str(bad), "-o", str(tmp_path / "out.dot")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("treesearch: error: ") and "bad.json" in err
    assert err.count("\n") == 1


def test_viz_unknown_output_format(tmp_path, capsys):
    assert main(["viz", str(saved_tree(tmp_path)), "-o", str(tmp_path / "out.bmp")]) == 1
    assert "unknown format" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["frobnicate"],
        ["viz"],
        ["viz", "tree.json"],  # -o is required
        ["viz", "tree.json", "-o", "x.svg", "--top-k", "0"],
        ["viz", "tree.json", "-o", "x.svg", "--max-depth", "deep"],
        ["demo", "--sims", "0"],
        ["demo", "--opening", "38"],
        ["demo", "--gomoku-sims", "0"],
    ],
)
def test_usage_errors_exit_2(argv, capsys):
    assert main(argv) == 2
    assert "usage:" in capsys.readouterr().err


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"treesearch {treesearch.__version__}"


def test_help(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "viz" in out and "demo" in out


# ---------------------------------------------------------------------------------- demo
def check_demo(summary, out_dir, sims):
    assert summary["action"] in range(7)
    assert summary["action"] in summary["actions"]
    assert len(summary["distribution"]) == len(summary["actions"])
    assert sum(summary["distribution"]) == pytest.approx(1.0)
    tree = load_json(out_dir / "tree.json")
    assert int(tree.visits[0]) == sims
    assert summary["paths"]["json"] == out_dir / "tree.json"
    if shutil.which("dot"):
        assert summary["paths"]["svg"] == out_dir / "tree.svg"
        assert_svg(out_dir / "tree.svg")


def test_demo_runs_real_mcts(tmp_path, capsys):
    pytest.importorskip("treesearch.search.mcts")
    summary = run_demo(tmp_path / "a", sims=200, seed=1)
    check_demo(summary, tmp_path / "a", 200)
    # the same search through the command line prints the table and the move
    argv = ["demo", "--out", str(tmp_path / "b"), "--sims", "200", "--seed", "1", "--no-gomoku"]
    argv.append("--no-toymath")
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"chosen move: column {summary['action']}" in out
    assert "column" in out and "visits" in out and "share" in out
    assert int(load_json(tmp_path / "b" / "tree.json").visits[0]) == 200
    if shutil.which("dot"):
        assert_svg(tmp_path / "b" / "tree.svg")


def test_demo_from_an_opening(tmp_path):
    pytest.importorskip("treesearch.search.mcts")
    summary = run_demo(tmp_path, sims=50, seed=0, opening=(3, 3, 2))
    check_demo(summary, tmp_path, 50)
    assert summary["to_play"] == 1


class FakeMCTS:
    """Stands in for treesearch.search.mcts.MCTS: a fixed root with three visited children."""

    def __init__(self, evaluator, *, selection, c):
        assert selection == "uct" and c == 1.4

    def search(self, state, budget, *, rng):
        from treesearch import SearchResult, Usage

        tree = Tree(state)
        kids = tree.add_children(0, [2, 3, 4], np.full(3, 1 / 3))
        visits = [budget.simulations // 4, budget.simulations // 2, budget.simulations // 4]
        tree.visits[list(kids)] = visits
        tree.visits[0] = sum(visits)
        tree.value_sum[list(kids)] = [-1.0, 5.0, 0.0]
        dist = np.asarray(visits, dtype=float) / sum(visits)
        usage = Usage(simulations=sum(visits))
        return SearchResult(3, (2, 3, 4), dist, 0.1, tree, usage)


def test_demo_output_with_a_stand_in_search(tmp_path, capsys, monkeypatch):
    pytest.importorskip("treesearch.games.connect_four")
    import treesearch.search.mcts as real

    fake = types.ModuleType("treesearch.search.mcts")
    fake.__dict__.update({k: v for k, v in vars(real).items() if not k.startswith("__")})
    fake.MCTS = FakeMCTS  # everything else (reuse_subtree, ...) stays the real module's
    monkeypatch.setitem(sys.modules, "treesearch.search.mcts", fake)
    argv = ["demo", "--out", str(tmp_path), "--sims", "40", "--opening", "33", "--no-gomoku"]
    argv.append("--no-toymath")
    assert main(argv) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert "X to move" in lines[0] and "40 simulations" in lines[0]
    row = next(line for line in lines if line.split()[:1] == ["3"])
    assert row.split()[:4] == ["3", "20", "50.0%", "+0.250"]
    assert row.endswith("#" * 15)
    assert "chosen move: column 3" in out
    assert str(tmp_path / "tree.json") in out
    check_demo(run_demo(tmp_path, sims=40, seed=0), tmp_path, 40)


def test_demo_rejects_bad_sims(tmp_path):
    with pytest.raises(ValueError, match="sims"):
        run_demo(tmp_path, sims=0)


def test_viz_prunes_large_trees_unless_asked_for_all(tmp_path, capsys):
    tree = Tree(None)
    for node in range(200):  # 1 + 4 * 200 = 801 nodes
        tree.add_children(node, [0, 1, 2, 3], [0.25] * 4)
    tree.visits[: tree.num_nodes] = np.arange(tree.num_nodes, 0, -1)
    src = tmp_path / "big.json"
    save_json(tree, src)
    assert main(["viz", str(src), "-o", str(tmp_path / "pruned.dot")]) == 0
    err = capsys.readouterr().err
    assert "large tree (801 nodes)" in err and "--all" in err
    pruned = (tmp_path / "pruned.dot").read_text()
    assert main(["viz", str(src), "-o", str(tmp_path / "all.dot"), "--all"]) == 0
    everything = (tmp_path / "all.dot").read_text()
    assert everything.count("->") == 800
    assert pruned.count("->") < 300  # 120 kept edges plus "+N more" summaries
    # Explicit pruning options are taken as given, with no note.
    assert main(["viz", str(src), "-o", str(tmp_path / "k.dot"), "--top-k", "2"]) == 0
    assert "large tree" not in capsys.readouterr().err


# ------------------------------------------------------------------------------ demo: gomoku
@pytest.fixture
def tiny_agent(tmp_path):
    """A small untrained 9x9 network saved like a shipped agent; torch's thread count is
    restored afterwards (the demo sets one thread)."""
    torch = pytest.importorskip("torch")
    from treesearch.games.nets import PolicyValueNet, save_net

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    net = PolicyValueNet(9, blocks=1, channels=8, value_hidden=8)
    path = save_net(tmp_path / "tiny9.safetensors", net, metadata={"game": "gomoku", "k": "5"})
    yield path
    torch.set_num_threads(threads)


def check_gomoku_pictures(out_dir, moves, first_move, agent_sims):
    from treesearch.games.gomoku import Gomoku

    final = Gomoku.from_moves(moves, size=9)
    assert final.is_terminal()
    root = ET.parse(out_dir / "gomoku-final.svg").getroot()
    stones = [c.get("fill") for c in root.iter(f"{SVG}circle") if c.get("r") == "14.7"]
    assert stones.count("#000") == (len(moves) + 1) // 2  # black (the agent) moved first
    assert stones.count("#fff") == len(moves) // 2
    texts = [el.text for el in root.iter(f"{SVG}text")]
    assert [str(n) in texts for n in range(1, len(moves) + 1)] == [True] * len(moves)
    assert str(len(moves) + 1) not in texts
    if shutil.which("dot"):
        texts = assert_svg(out_dir / "gomoku-tree.svg")
        assert texts[0] == "root" and texts[1].startswith(f"N={agent_sims} ")
        assert first_move in texts  # actions drawn as coordinates
        assert any(t.endswith(" more") for t in texts)  # a big tree is pruned, as viz does
    else:
        assert "->" in (out_dir / "gomoku-tree.dot").read_text()


def test_demo_plays_the_shipped_gomoku_agent(tmp_path, capsys, monkeypatch, tiny_agent):
    import treesearch.games.arena as arena
    from treesearch.cli import run_gomoku_demo
    from treesearch.games.gomoku import Gomoku, format_move

    monkeypatch.setattr(arena, "shipped_agent_path", lambda size=9, k=5: tiny_agent)
    out_dir = tmp_path / "demo"
    argv = ["demo", "--out", str(out_dir), "--sims", "30", "--seed", "3", "--gomoku-sims", "12"]
    argv.append("--no-toymath")
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "chosen move: column" in out  # the connect-four part comes first
    lines = out[out.index("Gomoku 9x9") :].splitlines()
    assert "tiny9.safetensors" in lines[0] and "12 simulations per move" in lines[0]
    # The same game again, from Python: the seed fixes it.
    lines_seen: list[str] = []
    summary = run_gomoku_demo(
        tmp_path / "again", tiny_agent, agent_sims=12, seed=3, progress=lines_seen.append
    )
    moves = summary["moves"]
    played = [line.split()[2] for line in lines[1 : 1 + len(moves)]]
    assert played == moves == [line.split()[2] for line in lines_seen[1:]]
    colours = [line.split()[1] for line in lines[1 : 1 + len(moves)]]
    assert colours == ["XO"[i % 2] for i in range(len(moves))]
    final = Gomoku.from_moves(moves, size=9)
    assert summary["winner"] == (None if final.winner is None else ("agent", "mcts")[final.winner])
    assert summary["winning_line"] == [format_move(a, 9) for a in final.winning_line()]
    if final.winner is not None:
        assert f"wins in {len(moves)} moves: {' '.join(summary['winning_line'])}" in out
    assert str(out_dir / "gomoku-final.svg") in out
    check_gomoku_pictures(out_dir, moves, moves[0], 12)
    assert (out_dir / "gomoku-final.svg").read_text() == (
        tmp_path / "again" / "gomoku-final.svg"
    ).read_text()


def test_demo_without_a_shipped_agent_skips_gomoku_with_a_note(tmp_path, capsys, monkeypatch):
    pytest.importorskip("treesearch.games.arena")
    import treesearch.games.arena as arena

    monkeypatch.setattr(arena, "shipped_agent_path", lambda size=9, k=5: None)
    assert main(["demo", "--out", str(tmp_path), "--sims", "20", "--no-toymath"]) == 0
    out = capsys.readouterr().out
    notes = [line for line in out.splitlines() if line.startswith("Gomoku")]
    assert len(notes) == 1
    assert notes[0].startswith("Gomoku: skipped (") and "gomoku9.safetensors" in notes[0]
    assert (tmp_path / "tree.json").exists()
    assert not (tmp_path / "gomoku-final.svg").exists()
    assert not (tmp_path / "gomoku-tree.svg").exists()


def test_demo_with_a_missing_agent_file_is_a_one_line_error(tmp_path, capsys):
    missing = tmp_path / "nope.safetensors"
    argv = ["demo", "--out", str(tmp_path), "--sims", "20", "--gomoku-agent", str(missing)]
    argv.append("--no-toymath")
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "treesearch: error: " in err and "nope.safetensors" in err
    assert "Traceback" not in err


def test_run_demo_takes_the_gomoku_agent_as_an_argument(tmp_path, tiny_agent):
    assert run_demo(tmp_path / "none", sims=20)["gomoku"] is None
    summary = run_demo(tmp_path / "with", sims=20, seed=5, gomoku_agent=tiny_agent, gomoku_sims=8)
    gomoku = summary["gomoku"]
    assert (gomoku["size"], gomoku["k"]) == (9, 5)
    assert gomoku["paths"]["final"] == tmp_path / "with" / "gomoku-final.svg"
    check_gomoku_pictures(tmp_path / "with", gomoku["moves"], gomoku["moves"][0], 8)


# ------------------------------------------------------------------------------ toy math demo
@pytest.fixture
def tiny_toymath_checkpoints(tmp_path):
    """Random tiny policy, PRM and ORM saved as the shipped checkpoints are laid out."""
    pytest.importorskip("transformers")
    from treesearch.adapters.toymath import build_tokenizer
    from treesearch.adapters.toymath_search import tiny_models

    folder = tmp_path / "checkpoints"
    models = tiny_models(build_tokenizer(), seed=0)
    for name, model in zip(("policy", "prm", "orm"), models, strict=True):
        model.save_pretrained(folder / name)
    return folder


def test_toymath_demo_searches_and_draws_the_beam_tree(tmp_path, tiny_toymath_checkpoints):
    from treesearch.cli import _format_toymath, run_toymath_demo

    summary = run_toymath_demo(
        tmp_path / "out", checkpoints=tiny_toymath_checkpoints, problems=1, seed=0
    )
    assert list(summary["results"]) == ["greedy", "best-of-n", "beam"]
    for result in summary["results"].values():
        assert result["problems"] == 1 and 0.0 <= result["accuracy"] <= 1.0
        assert 0 < result["usage"]["tokens"] <= result["usage"]["budget_tokens"]
    beam = summary["results"]["beam"]
    drawn = (
        tmp_path
        / "out"
        / ("toymath-tree.svg" if summary["warning"] is None else "toymath-tree.dot")
    )
    assert beam["viz"] == str(drawn) and drawn.stat().st_size > 0
    text = _format_toymath(summary)
    assert "beam (n=4)" in text and str(drawn) in text


def test_demo_without_toymath_checkpoints_skips_with_a_note(tmp_path, capsys, monkeypatch):
    pytest.importorskip("transformers")
    import treesearch.adapters.toymath_search as toymath_search

    monkeypatch.setattr(toymath_search, "SHIPPED_CHECKPOINTS", tmp_path / "none")
    argv = ["demo", "--out", str(tmp_path), "--sims", "20", "--no-gomoku"]
    assert main(argv) == 0
    assert "Toy math: skipped (no shipped checkpoints" in capsys.readouterr().out
