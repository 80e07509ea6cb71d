"""The data path from searches to training loops: traces of every leaf, outcomes, grouping and
the prefix tree rebuilt from traces (also after a JSONL round trip)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from treesearch import Budget, Tree
from treesearch.evaluators import LegalActionsPolicy
from treesearch.results import Trace, TraceStep, read_traces, write_traces
from treesearch.search.bfs import BFS
from treesearch.testing.strategies import RandomTreeState
from treesearch.train.traces import (
    TraceTree,
    group_by_problem,
    require_outcomes,
    traces_from_tree,
    with_outcomes,
)


def trace(*actions: str, outcome: float | None = None, problem: str = "p0", **kw) -> Trace:
    steps = tuple(TraceStep(a, visits=kw.get("visits", 1), value=kw.get("value")) for a in actions)
    return Trace(
        steps=steps,
        outcome=outcome,
        terminal=outcome is not None,
        metadata={"problem_id": problem, "prompt": "Q"},
    )


def full_tree() -> Tree:
    #        0
    #      / | \
    #     1  2  3
    #    / \     \
    #   4   5     6
    children = [[1, 2, 3], [4, 5], [], [6], [], [], []]
    values = [None, None, 1.0, None, 0.0, 1.0, 0.0]
    root = RandomTreeState(children, values)
    tree = Tree(root)
    frontier = [0]
    while frontier:
        node = frontier.pop()
        state = tree.state(node)
        if state.is_terminal():
            continue
        acts = list(state.legal_actions())
        frontier.extend(tree.add_children(node, acts, np.full(len(acts), 1.0 / len(acts))))
    return tree


def test_traces_from_tree_gives_one_trace_per_leaf_with_its_path():
    tree = full_tree()
    traces = traces_from_tree(tree, metadata={"problem_id": "t", "prompt": "Q"})
    leaves = [i for i in tree.leaves() if i != 0]
    assert len(traces) == len(leaves) == 4
    for leaf, tr in zip(leaves, traces, strict=True):
        assert tr.actions == tuple(tree.actions[i] for i in tree.path(leaf)[1:])
        assert tr.terminal
        assert tr.metadata == {"problem_id": "t", "prompt": "Q"}
    # metadata is copied, not shared
    traces[0].metadata["x"] = 1
    assert "x" not in traces[1].metadata


def test_traces_from_tree_terminal_only_skips_unexpanded_leaves():
    children = [[1, 2], [3], [], []]
    tree = Tree(RandomTreeState(children, [None, None, 0.5, 1.0]))
    tree.add_children(0, [0, 1], np.array([0.5, 0.5]))
    assert len(traces_from_tree(tree)) == 2  # node 1 is unexpanded: a leaf of the search tree
    only = traces_from_tree(tree, leaves="terminal")
    assert [t.actions for t in only] == [(1,)]


def test_traces_from_tree_rejects_bad_arguments():
    with pytest.raises(TypeError, match="Tree"):
        traces_from_tree("not a tree")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="leaves"):
        traces_from_tree(full_tree(), leaves="some")


def test_trace_tree_merges_common_prefixes():
    traces = [
        trace("a", "b", outcome=1.0),
        trace("a", "c", outcome=0.0),
        trace("d", outcome=0.0),
        trace("a", "b", outcome=1.0),
    ]
    tt = TraceTree.from_traces(traces)
    assert tt.num_nodes == 5  # root, a, a/b, a/c, d
    a = tt.children[0][0]
    assert tt.action[a] == "a" and tt.depth[a] == 1
    assert [tt.action[c] for c in tt.children[a]] == ["b", "c"]
    b = tt.children[a][0]
    assert tt.prefix(b) == ("a", "b")
    assert tt.leaf_traces[b] == [0, 3]
    assert tt.outcome[b] == 1.0 and tt.outcome[a] is None
    assert sorted(tt.leaves()) == sorted(tt.ends())
    assert tt.prompt == "Q" and tt.problem_id == "p0"
    order = tt.postorder()
    assert sorted(order) == list(range(tt.num_nodes))
    position = {node: i for i, node in enumerate(order)}
    assert all(position[c] < position[p] for p in range(tt.num_nodes) for c in tt.children[p])


def test_trace_tree_rebuilds_the_search_tree_from_jsonl(tmp_path):
    tree = full_tree()
    traces = traces_from_tree(tree, metadata={"problem_id": "t"})
    path = tmp_path / "t.jsonl"
    write_traces(path, traces)
    tt = TraceTree.from_traces(read_traces(path))
    assert tt.num_nodes == tree.num_nodes
    # the same shape: sorted child-action sets per depth agree
    for node in range(tt.num_nodes):
        prefix = tt.prefix(node)
        search_node = 0
        for action in prefix:
            kids = tree.children(search_node)
            search_node = next(k for k in kids if tree.actions[k] == action)
        assert len(tt.children[node]) == len(tree.children(search_node))


def test_trace_tree_errors():
    with pytest.raises(ValueError, match="at least one"):
        TraceTree.from_traces([])
    with pytest.raises(ValueError, match="different problems"):
        TraceTree.from_traces([trace("a", problem="x"), trace("b", problem="y")])
    with pytest.raises(ValueError, match=r"outcome 0\.0 instead of 1\.0"):
        TraceTree.from_traces([trace("a", outcome=1.0), trace("a", outcome=0.0)])
    with pytest.raises(TypeError, match="not a Trace"):
        TraceTree.from_traces(["a"])  # type: ignore[list-item]
    tt = TraceTree.from_traces([trace("a")])
    with pytest.raises(IndexError, match="out of range"):
        tt.path(5)


def test_outcomes_labelling_and_requirement():
    traces = [trace("a"), trace("b")]
    with pytest.raises(ValueError, match=r"trace 0 \(problem 'p0'\) has none"):
        require_outcomes(traces, what="value targets")
    labelled = with_outcomes(traces, lambda t: t.actions == ("a",))
    assert [t.outcome for t in labelled] == [1.0, 0.0]
    require_outcomes(labelled, what="value targets")
    assert traces[0].outcome is None  # the originals are untouched
    with pytest.raises(ValueError, match="finite"):
        with_outcomes(traces, lambda t: float("nan"))
    with pytest.raises(TypeError, match="number or None"):
        with_outcomes(traces, lambda t: "yes")  # type: ignore[arg-type, return-value]
    # numpy scalars (a comparison of arrays, a float32 score) are numbers too
    assert [t.outcome for t in with_outcomes(traces, lambda t: np.bool_(t.actions == ("a",)))] == [
        1.0,
        0.0,
    ]
    assert with_outcomes(traces, lambda t: np.float32(0.5))[0].outcome == 0.5
    assert with_outcomes(traces, lambda t: np.int64(1))[1].outcome == 1.0
    with pytest.raises(ValueError, match="finite"):
        with_outcomes(traces, lambda t: np.float32("inf"))
    with pytest.raises(TypeError, match="number or None"):
        with_outcomes(traces, lambda t: 1j)  # type: ignore[arg-type, return-value]


def test_group_by_problem_keeps_first_seen_order():
    traces = [trace("a", problem="y"), trace("b", problem="x"), trace("c", problem="y")]
    groups = group_by_problem(traces)
    assert list(groups) == ["y", "x"]
    assert [t.actions for t in groups["y"]] == [("a",), ("c",)]
    bare = Trace(steps=(TraceStep("a"),))
    with pytest.raises(ValueError, match="problem_id"):
        group_by_problem([bare])


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.sampled_from("abc"), min_size=1, max_size=4), min_size=1, max_size=12))
def test_trace_tree_nodes_are_the_distinct_prefixes(paths):
    traces = [trace(*p) for p in paths]
    tt = TraceTree.from_traces(traces)
    prefixes = {tuple(p[:k]) for p in paths for k in range(len(p) + 1)}
    assert tt.num_nodes == len(prefixes)
    assert {tt.prefix(n) for n in range(tt.num_nodes)} == prefixes
    for index, p in enumerate(paths):
        ends = [n for n in range(tt.num_nodes) if index in tt.leaf_traces[n]]
        assert len(ends) == 1 and tt.prefix(ends[0]) == tuple(p)


def test_a_real_search_exports_every_leaf():
    children = [[1, 2], [3, 4], [5], [], [], []]
    values = [None, None, None, 1.0, 0.0, 0.5]
    result = BFS(LegalActionsPolicy(), lambda states: [0.5] * len(states)).search(
        RandomTreeState(children, values), Budget(expansions=10), rng=np.random.default_rng(0)
    )
    traces = traces_from_tree(result.tree, leaves="terminal")
    assert sorted(t.actions for t in traces) == [(0, 0), (0, 1), (1, 0)]
