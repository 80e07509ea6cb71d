"""Traces: built from tree paths, JSONL round trips, atomic writes, clear errors."""

from __future__ import annotations

import json
import math
import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from treesearch import Trace, TraceStep, Tree, read_traces, write_traces
from treesearch.games.tictactoe import TicTacToe
from treesearch.results import trace_from_path

finite = st.floats(-1e6, 1e6, allow_nan=False)
actions = st.one_of(
    st.integers(-100, 100), st.text(max_size=20), st.tuples(st.integers(), st.text(max_size=3))
)
steps = st.builds(
    TraceStep,
    action=actions,
    score=st.one_of(st.none(), finite),
    value=st.one_of(st.none(), finite),
    visits=st.integers(0, 10**6),
    prior=st.one_of(st.none(), st.floats(0, 1)),
    tokens=st.integers(0, 10**4),
)
traces = st.builds(
    Trace,
    steps=st.lists(steps, max_size=6).map(tuple),
    outcome=st.one_of(st.none(), finite),
    terminal=st.booleans(),
    answer=st.one_of(st.none(), st.text(max_size=10)),
    metadata=st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)


@given(st.lists(traces, max_size=5))
def test_jsonl_round_trip(tmp_path_factory, items):
    path = tmp_path_factory.mktemp("t") / "traces.jsonl"
    assert write_traces(path, items) == len(items)
    assert read_traces(path) == items


def test_trace_from_path_reads_the_tree():
    tree = Tree(TicTacToe.from_moves([0, 3, 1, 4]))
    tree.add_children(0, [2, 5], [0.75, 0.25])
    tree.state(1)
    tree.visits[:3] = [4, 3, 1]
    tree.value_sum[:3] = [2.0, 3.0, -1.0]
    tree.score[1] = 0.9
    trace = trace_from_path(tree, 1, answer="X wins")
    assert trace.actions == (2,)
    step = trace.steps[0]
    assert (step.score, step.value, step.visits, step.prior) == (0.9, 1.0, 3, 0.75)
    assert trace.terminal and trace.outcome == -1.0  # O to move at the leaf has lost
    assert trace.answer == "X wins"
    unscored = trace_from_path(tree, 2)
    assert unscored.steps[0].score is None and not unscored.terminal and unscored.outcome is None


def test_write_is_atomic(tmp_path):
    path = tmp_path / "traces.jsonl"
    write_traces(path, [Trace(steps=())])
    before = path.read_text()

    def broken():
        yield Trace(steps=(TraceStep(action=1),))
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        write_traces(path, broken())
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["traces.jsonl"]  # no temp file left
    assert oct(os.stat(path).st_mode & 0o777) == "0o644"


def test_bad_records_name_the_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(Trace(steps=()).to_dict()) + "\n" + json.dumps({"x": 1}) + "\n")
    with pytest.raises(ValueError, match=r"bad\.jsonl:2"):
        read_traces(path)
    with pytest.raises(TypeError, match="Trace"):
        write_traces(tmp_path / "x.jsonl", [{"steps": []}])
    with pytest.raises(ValueError):
        write_traces(tmp_path / "nan.jsonl", [Trace(steps=(), outcome=math.nan)])
