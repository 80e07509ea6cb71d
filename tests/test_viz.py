"""Tests for treesearch.viz: JSON round trip, DOT text, rendering, networkx export."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from treesearch.tree import Tree
from treesearch.viz import from_json, load_json, render, save_json, to_dot, to_json, to_networkx

SVG = "{http://www.w3.org/2000/svg}"
needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz dot not installed")


# ------------------------------------------------------------------------------ helpers
def small_tree() -> Tree:
    """root -> a (good), b (bad), c (unvisited); a -> a1, a2 (a1 scored, a2 terminal)."""
    tree = Tree()
    tree.add_children(0, ["a", "b", "c"], [0.5, 0.3, 0.2])  # ids 1, 2, 3
    tree.add_children(1, [10, (1, "x")], [0.75, 0.25])  # ids 4, 5
    tree.visits[:6] = [10, 6, 4, 0, 4, 1]
    tree.value_sum[:6] = [2.0, 4.5, -3.0, 0.0, 1.0, -1.0]
    tree.to_play[:6] = [0, 1, 1, 1, 0, 0]
    tree.score[4] = 0.875
    tree.terminal[5] = True
    tree.proven[5] = -1.0
    return tree


def node_attrs(dot: str) -> dict[str, str]:
    """DOT node id -> its attribute text, for node statements of to_dot's output."""
    return {m[1]: m[2] for m in re.finditer(r"^\s*([nm]\d+) \[(.*)\];$", dot, re.MULTILINE)}


def edges(dot: str) -> set[tuple[str, str]]:
    return set(re.findall(r"^\s*([nm]\d+) -> ([nm]\d+)", dot, re.MULTILINE))


def label(dot: str, node: str) -> str:
    return re.search(r"label=<(.*?)>, ", node_attrs(dot)[node] + ", ")[1]


def fill(dot: str, node: str) -> tuple[int, int, int]:
    hexcode = re.search(r'fillcolor="#([0-9a-f]{6})"', node_attrs(dot)[node])[1]
    return tuple(int(hexcode[i : i + 2], 16) for i in (0, 2, 4))


def svg_texts(path) -> list[str]:
    root = ET.parse(path).getroot()
    assert root.tag == f"{SVG}svg"
    return [el.text or "" for el in root.iter(f"{SVG}text")]


def assert_same_tree(a: Tree, b: Tree) -> None:
    assert a.num_nodes == b.num_nodes
    n = a.num_nodes
    for name in (
        "parent",
        "depth",
        "visits",
        "value_sum",
        "prior",
        "first_child",
        "num_children",
        "to_play",
        "terminal",
        "score",
        "proven",
        "tokens",
    ):
        x, y = getattr(a, name)[:n], getattr(b, name)[:n]
        assert x.dtype == y.dtype, name
        np.testing.assert_array_equal(x, y, err_msg=name)  # NaN == NaN here
    assert [(type(x), x) for x in a.actions] == [(type(x), x) for x in b.actions]


# --------------------------------------------------------------------------------- JSON
def test_json_round_trip_is_exact():
    tree = small_tree()
    text = to_json(tree)
    back = from_json(text)
    assert_same_tree(tree, back)
    assert to_json(back) == text
    assert math.isnan(back.score[1]) and back.score[4] == 0.875
    assert back.actions[5] == (1, "x") and isinstance(back.actions[5], tuple)
    assert back.states == [None] * tree.num_nodes


def test_json_is_strict_json():
    data = json.loads(to_json(small_tree()), parse_constant=lambda c: pytest.fail(c))
    assert data["arrays"]["score"][0] is None


def test_save_and_load_json(tmp_path):
    tree = small_tree()
    path = save_json(tree, tmp_path / "tree.json")
    assert path == tmp_path / "tree.json"
    assert_same_tree(tree, load_json(path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tree.json"]  # no temp file left
    save_json(Tree(), path)  # overwrite in place
    assert load_json(path).num_nodes == 1


def test_save_json_leaves_old_file_when_serialising_fails(tmp_path):
    path = save_json(small_tree(), tmp_path / "tree.json")
    before = path.read_text()
    bad = Tree()
    bad.add_children(0, [object()], [1.0])
    with pytest.raises(TypeError):
        save_json(bad, path)
    assert path.read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tree.json"]


@pytest.mark.parametrize("action", [object(), [1, 2], {"a": 1}, {1, 2}])
def test_non_serialisable_action_raises_type_error(action):
    tree = Tree()
    tree.add_children(0, [0, action], [0.5, 0.5])
    with pytest.raises(TypeError, match="node 2"):
        to_json(tree)


def test_infinite_statistic_raises_value_error():
    tree = small_tree()
    tree.value_sum[2] = math.inf
    with pytest.raises(ValueError, match="non-finite"):
        to_json(tree)


def _corrupt(mutate):
    data = json.loads(to_json(small_tree()))
    mutate(data)
    return json.dumps(data)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "{",
        to_json(small_tree())[:-10],
        "[]",
        '"tree"',
        '{"format": "something else"}',
        to_json(small_tree()).replace("null", "NaN", 1),
        _corrupt(lambda d: d.pop("arrays")),
        _corrupt(lambda d: d.pop("actions")),
        _corrupt(lambda d: d.update(num_nodes=7)),
        _corrupt(lambda d: d.update(num_nodes="6")),
        _corrupt(lambda d: d["arrays"]["visits"].pop()),
        _corrupt(lambda d: d["arrays"].update(bogus=[0] * 6)),
        _corrupt(lambda d: d["arrays"]["visits"].__setitem__(1, "many")),
        _corrupt(lambda d: d["arrays"]["visits"].__setitem__(1, 2**40)),
        _corrupt(lambda d: d["arrays"]["visits"].__setitem__(1, -3)),
        _corrupt(lambda d: d["arrays"]["parent"].__setitem__(4, 9)),
        _corrupt(lambda d: d["arrays"]["parent"].__setitem__(4, 2)),
        _corrupt(lambda d: d["arrays"]["parent"].__setitem__(0, 0)),
        _corrupt(lambda d: d["arrays"]["first_child"].__setitem__(1, 5)),
        _corrupt(lambda d: d["arrays"]["num_children"].__setitem__(1, 9)),
        _corrupt(lambda d: d["arrays"]["num_children"].__setitem__(3, 1)),
        _corrupt(lambda d: d["arrays"]["depth"].__setitem__(5, 7)),
        _corrupt(lambda d: d["actions"].__setitem__(1, [1])),
        _corrupt(lambda d: d["actions"].__setitem__(1, {"tuple": [1], "x": 2})),
    ],
)
def test_corrupted_json_raises_value_error(text):
    with pytest.raises(ValueError):
        from_json(text)


def test_load_json_names_the_file(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match=r"bad\.json"):
        load_json(path)
    with pytest.raises(FileNotFoundError):
        load_json(tmp_path / "missing.json")


scalar_actions = st.one_of(
    st.integers(-(2**40), 2**40),
    st.text(max_size=12),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=False, allow_infinity=False),
)
actions = st.one_of(
    scalar_actions, st.tuples(scalar_actions), st.tuples(scalar_actions, scalar_actions)
)
finite = st.floats(-1e6, 1e6, allow_nan=False)
maybe_nan = st.one_of(st.just(math.nan), finite)


@st.composite
def random_trees(draw) -> Tree:
    tree = Tree(capacity=4)
    for _ in range(draw(st.integers(0, 8))):
        leaves = [i for i in range(tree.num_nodes) if not tree.is_expanded(i)]
        node = draw(st.sampled_from(leaves))
        k = draw(st.integers(1, 4))  # an expansion has at least one child
        acts = draw(st.lists(actions, min_size=k, max_size=k))
        priors = draw(st.lists(st.floats(0, 1), min_size=k, max_size=k))
        tokens = draw(st.lists(st.integers(0, 1000), min_size=k, max_size=k))
        tree.add_children(node, acts, priors, tokens=tokens)
    n = tree.num_nodes
    tree.visits[:n] = draw(st.lists(st.integers(0, 2**31 - 1), min_size=n, max_size=n))
    tree.value_sum[:n] = draw(st.lists(finite, min_size=n, max_size=n))
    tree.score[:n] = draw(st.lists(maybe_nan, min_size=n, max_size=n))
    tree.proven[:n] = draw(st.lists(maybe_nan, min_size=n, max_size=n))
    tree.to_play[:n] = draw(st.lists(st.integers(-1, 1), min_size=n, max_size=n))
    tree.terminal[:n] = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    return tree


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_trees())
def test_json_round_trip_random_trees(tree):
    text = to_json(tree)
    back = from_json(text)
    assert_same_tree(tree, back)
    assert to_json(back) == text
    dot = to_dot(back)  # any valid tree draws
    assert dot.startswith("digraph")


# ---------------------------------------------------------------------------------- DOT
def test_dot_labels_show_statistics():
    dot = to_dot(small_tree())
    assert label(dot, "n0") == "root<br/>N=10 Q=+0.200"
    assert label(dot, "n1") == "a<br/>N=6 Q=+0.750<br/>P=0.500"
    assert label(dot, "n2") == "b<br/>N=4 Q=-0.750<br/>P=0.300"
    assert label(dot, "n3") == "c<br/>N=0<br/>P=0.200"  # unvisited: no Q
    assert label(dot, "n4") == "10<br/>N=4 Q=+0.250<br/>P=0.750 S=0.875"
    assert label(dot, "n5") == "(1, 'x')<br/>N=1 Q=-1.000<br/>P=0.250 proven=-1"
    assert "peripheries=2" in node_attrs(dot)["n5"]  # terminal
    assert "peripheries" not in node_attrs(dot)["n4"]
    assert edges(dot) == {("n0", "n1"), ("n0", "n2"), ("n0", "n3"), ("n1", "n4"), ("n1", "n5")}


def test_dot_colour_follows_value():
    dot = to_dot(small_tree())
    red, green, _ = fill(dot, "n2")  # Q = -0.75
    assert red > green
    red, green, _ = fill(dot, "n1")  # Q = +0.75
    assert green > red
    assert fill(dot, "n4")[0] > fill(dot, "n1")[0]  # +0.25 is paler than +0.75
    assert 'fillcolor="' not in node_attrs(dot)["n3"]  # unvisited: the grey default
    assert re.search(r'node \[.*fillcolor="#d9d9d9"', dot)


def test_dot_colour_scale_ends_and_middle():
    tree = Tree()
    tree.add_children(0, [0, 1, 2, 3], np.full(4, 0.25))
    tree.visits[1:5] = 1
    tree.value_sum[1:5] = [-5.0, 0.0, 1.0, 0.5]
    dot = to_dot(tree, value_range=(0.0, 1.0))
    assert fill(dot, "n1") == fill(dot, "n2")  # clipped at the low end
    assert fill(dot, "n4") == (255, 255, 255)  # the middle is white
    assert fill(dot, "n3")[1] > fill(dot, "n3")[0]


def wide_tree() -> Tree:
    tree = Tree()
    kids = tree.add_children(0, list("abcdef"), [0.1, 0.3, 0.1, 0.2, 0.2, 0.1])
    tree.visits[list(kids)] = [5, 2, 9, 2, 7, 2]
    tree.visits[0] = 27
    tree.add_children(3, ["deep"], [1.0])  # under "c"
    tree.visits[7] = 9
    return tree


def test_top_k_keeps_the_most_visited_and_summarises_the_rest():
    dot = to_dot(wide_tree(), top_k=3)
    kept = {child for parent, child in edges(dot) if parent == "n0" and child.startswith("n")}
    assert kept == {"n1", "n3", "n5"}  # visits 5, 9, 7
    assert ("n0", "m0") in edges(dot)
    assert label(dot, "m0") == "+3 more<br/>N=6"
    assert "dashed" in node_attrs(dot)["m0"]
    assert ("n3", "n7") in edges(dot)  # the only child of a kept node stays
    assert "m3" not in node_attrs(dot)


def test_top_k_ties_break_by_prior_then_index():
    dot = to_dot(wide_tree(), top_k=4)  # fourth place: visits 2 for b (0.3), d (0.2), f (0.1)
    kept = {child for parent, child in edges(dot) if parent == "n0"}
    assert kept == {"n1", "n3", "n5", "n2", "m0"}
    dot = to_dot(wide_tree(), top_k=5)
    kept = {child for parent, child in edges(dot) if parent == "n0"}
    assert kept == {"n1", "n2", "n3", "n4", "n5", "m0"}
    tree = Tree()
    tree.add_children(0, list("abc"), [0.2, 0.2, 0.2])
    dot = to_dot(tree, top_k=2)
    assert {c for _, c in edges(dot)} == {"n1", "n2", "m0"}


def test_min_visits_hides_rarely_visited_children():
    dot = to_dot(wide_tree(), min_visits=5)
    kept = {child for parent, child in edges(dot) if parent == "n0"}
    assert kept == {"n1", "n3", "n5", "m0"}
    assert label(dot, "m0") == "+3 more<br/>N=6"


def test_no_pruning_draws_every_node():
    tree = wide_tree()
    dot = to_dot(tree)
    assert {f"n{i}" for i in range(tree.num_nodes)} == set(node_attrs(dot))
    assert len(edges(dot)) == tree.num_nodes - 1


def test_max_depth_drops_deeper_nodes():
    tree = wide_tree()
    dot = to_dot(tree, max_depth=1)
    assert "n7" not in node_attrs(dot)
    assert ("n3", "m3") in edges(dot)
    assert label(dot, "m3") == "+1 more<br/>N=9"
    dot = to_dot(tree, max_depth=0)
    assert set(node_attrs(dot)) == {"n0", "m0"}
    assert label(dot, "m0") == "+6 more<br/>N=27"
    assert "n7" in node_attrs(to_dot(tree, max_depth=2))


def test_deep_tree_needs_no_recursion():
    tree = Tree(capacity=8)
    node = 0
    for i in range(5000):
        node = tree.add_children(node, [i], [1.0]).start
    tree.visits[: tree.num_nodes] = 1
    dot = to_dot(tree)
    assert len(edges(dot)) == 5000
    assert_same_tree(tree, from_json(to_json(tree)))


def test_long_labels_are_truncated():
    tree = Tree()
    step = "Let x be the number of apples; then 3x + 4 = 19, so x = 5. " * 3
    tree.add_children(0, [step], [1.0])
    text = label(to_dot(tree), "n1").split("<br/>")[0]
    assert len(text) == 40 and text.endswith("\u2026")
    assert text[:-1] == step[:39]


def test_label_fn_replaces_the_label_and_is_escaped():
    dot = to_dot(small_tree(), label_fn=lambda node: f"#{node.index} <{node.visits}>\nend")
    assert label(dot, "n1") == "#1 &lt;6&gt;<br/>end"
    with pytest.raises(TypeError, match="str"):
        to_dot(small_tree(), label_fn=lambda node: node.index)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"top_k": 0},
        {"top_k": 1.5},
        {"max_depth": -1},
        {"min_visits": -1},
        {"min_visits": None},
        {"value_range": (1.0, -1.0)},
        {"value_range": (0.0, math.inf)},
        {"value_range": "ab"},
    ],
)
def test_to_dot_rejects_bad_options(kwargs):
    with pytest.raises(ValueError):
        to_dot(small_tree(), **kwargs)


def test_to_dot_rejects_non_trees():
    with pytest.raises(TypeError):
        to_dot({"format": "treesearch.tree/1"})


NASTY = 'say "hi" & \\N <b>x</b>\nthen \\ done\x01'


def test_labels_escape_quotes_newlines_and_markup():
    tree = Tree()
    tree.add_children(0, [NASTY], [1.0])
    attrs = node_attrs(to_dot(tree))["n1"]
    assert label(to_dot(tree), "n1").startswith(
        "say &quot;hi&quot; &amp; \\\\N &lt;b&gt;x&lt;/b&gt;<br/>then \\\\ done\ufffd"
    )
    assert "\n" not in attrs and "\x01" not in attrs


@needs_dot
def test_escaped_labels_render_to_valid_svg(tmp_path):
    tree = Tree()
    tree.add_children(0, [NASTY, "plain", "<", ""], np.full(4, 0.25))
    tree.visits[:5] = [3, 1, 1, 1, 0]
    path = render(tree, tmp_path / "nasty.svg")
    texts = svg_texts(path)
    assert 'say "hi" & \\N <b>x</b>' in texts  # first line of the label, verbatim
    assert "then \\ done\ufffd" in texts
    assert "<" in texts
    root = ET.parse(path).getroot()
    titles = [a.get("{http://www.w3.org/1999/xlink}title") for a in root.iter(f"{SVG}a")]
    assert NASTY.replace("\x01", "\ufffd") in titles  # the full text is the tooltip


# ------------------------------------------------------------------------------- render
@needs_dot
def test_render_svg(tmp_path):
    path = render(small_tree(), tmp_path / "tree.svg", top_k=2)
    assert path == tmp_path / "tree.svg"
    assert path.stat().st_size > 0
    texts = svg_texts(path)
    assert "root" in texts and "N=6 Q=+0.750" in texts and "+1 more" in texts


@needs_dot
def test_render_png(tmp_path):
    path = render(small_tree(), tmp_path / "tree.PNG")
    assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


@needs_dot
def test_render_format_overrides_suffix(tmp_path):
    path = render(small_tree(), tmp_path / "picture", format="svg")
    svg_texts(path)


def test_render_dot_source_needs_no_graphviz(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", "")
    path = render(small_tree(), tmp_path / "tree.dot", max_depth=1)
    assert path.read_text(encoding="utf-8") == to_dot(small_tree(), max_depth=1)


def test_render_without_dot_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", "")
    with pytest.raises(RuntimeError, match="Graphviz"):
        render(small_tree(), tmp_path / "tree.svg")
    assert list(tmp_path.iterdir()) == []


def test_render_rejects_unknown_format(tmp_path):
    with pytest.raises(ValueError, match="unknown format"):
        render(small_tree(), tmp_path / "tree.txt")
    with pytest.raises(ValueError, match="unknown format"):
        render(small_tree(), tmp_path / "tree")


# ----------------------------------------------------------------------------- networkx
def test_to_networkx():
    pytest.importorskip("networkx")
    tree = small_tree()
    graph = to_networkx(tree)
    assert graph.number_of_nodes() == 6
    assert graph.number_of_edges() == 5
    assert set(graph.edges) == {(0, 1), (0, 2), (0, 3), (1, 4), (1, 5)}
    a = graph.nodes[1]
    assert a["visits"] == 6 and a["q"] == 0.75 and a["prior"] == 0.5
    assert a["depth"] == 1 and a["action"] == "a" and a["to_play"] == 1
    assert math.isnan(a["score"]) and math.isnan(a["proven"]) and a["terminal"] is False
    assert graph.nodes[4]["score"] == 0.875 and graph.nodes[4]["action"] == 10
    assert graph.nodes[5]["terminal"] is True and graph.nodes[5]["proven"] == -1.0
    assert graph.nodes[5]["action"] == (1, "x")
    assert math.isnan(graph.nodes[3]["q"])
    assert graph.in_degree(0) == 0


def test_import_pulls_in_no_optional_dependency():
    code = (
        "import sys, treesearch, treesearch.viz, treesearch.cli; "
        "bad = {'graphviz', 'networkx', 'matplotlib', 'torch'} & set(sys.modules); "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_to_networkx_without_networkx_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "networkx", None)
    with pytest.raises(ImportError, match=r"treesearch\[viz\]"):
        to_networkx(small_tree())


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes")
def test_saved_files_are_not_private(tmp_path):
    path = save_json(small_tree(), tmp_path / "tree.json")
    assert path.stat().st_mode & 0o777 == 0o644
    path.chmod(0o600)
    save_json(small_tree(), path)
    assert path.stat().st_mode & 0o777 == 0o600  # an existing file keeps its mode
