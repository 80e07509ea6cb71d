"""Search traces as training data: the one path from a search to every training loop.

A search returns a :class:`~treesearch.results.SearchResult`; its
:class:`~treesearch.results.Trace` records (root-to-leaf paths with per-step value, visits,
score and prior, plus the outcome) are all a training loop reads. They export to JSONL and
import back unchanged (:func:`~treesearch.results.write_traces`,
:func:`~treesearch.results.read_traces`), so a user can search on one machine and train on
another. This module adds what the loops of ReST-MCTS* (:mod:`treesearch.train.rest_mcts`),
MCTS-DPO (:mod:`treesearch.train.mcts_dpo`) and TS-LLM (:mod:`treesearch.train.ts_llm`) share:

* :func:`traces_from_tree`: one trace per leaf of a search tree (a search's own ``traces`` are
  usually just the chosen path);
* :func:`with_outcomes` / :func:`require_outcomes`: label traces with the verdict of an exact
  checker (1.0 right, 0.0 wrong for reasoning tasks), and refuse unlabelled ones;
* :func:`group_by_problem`: the traces of each search, by ``metadata["problem_id"]``;
* :class:`TraceTree`: the prefix tree of one problem's traces, rebuilt by merging common action
  prefixes, which is where value targets (ReST-MCTS*) and sibling preference sets (MCTS-DPO)
  are computed.

Conventions: ``metadata["problem_id"]`` names the search a trace came from and
``metadata["prompt"]`` holds the question text; for reasoning tasks an action is a step's text
(its separator included), so ``prompt + "".join(actions)`` is the generated text.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from ..interfaces import Action, State
from ..results import Trace, TraceStep, trace_from_path
from ..tree import Tree

__all__ = [
    "TraceTree",
    "group_by_problem",
    "require_outcomes",
    "traces_from_tree",
    "with_outcomes",
]


def traces_from_tree(
    tree: Tree,
    *,
    leaves: str = "all",
    answer_fn: Callable[[State], str | None] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> list[Trace]:
    """One trace per leaf of ``tree``, in node order.

    Args:
        leaves: ``"all"`` (every node without children, expanded or not) or ``"terminal"``
            (terminal nodes only).
        answer_fn: the canonical answer of a leaf's state, stored as ``trace.answer``.
        metadata: copied into every trace (e.g. ``{"problem_id": ..., "prompt": ...}``).
    """
    if not isinstance(tree, Tree):
        raise TypeError(f"tree must be a treesearch.Tree, not {type(tree).__name__}")
    if leaves not in ("all", "terminal"):
        raise ValueError(f"leaves must be 'all' or 'terminal', not {leaves!r}")
    extra = dict(metadata or {})
    out = []
    for node in range(1, tree.num_nodes):
        if tree.num_children[node] > 0 and tree.first_child[node] != Tree.UNEXPANDED:
            continue
        if tree.states[node] is None and tree.states[Tree.ROOT] is not None:
            tree.state(node)  # a lazily created leaf: its terminal flag is set with its state
        if leaves == "terminal" and not tree.terminal[node]:
            continue
        answer = answer_fn(tree.state(node)) if answer_fn is not None else None
        trace = trace_from_path(tree, node, answer=answer)
        out.append(dataclasses.replace(trace, metadata=dict(extra)))
    return out


def _check_outcome(value: Any, index: int) -> float | None:
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)):
        return float(value)
    if not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"outcome of trace {index} must be a number or None, not {value!r}")
    value = float(value)
    if math.isnan(value) or math.isinf(value):
        raise ValueError(f"outcome of trace {index} must be finite, not {value}")
    return value


def with_outcomes(
    traces: Iterable[Trace], outcome_fn: Callable[[Trace], float | bool | None]
) -> list[Trace]:
    """The traces with ``outcome = outcome_fn(trace)`` (``None`` leaves a trace unlabelled;
    ``True``/``False`` become 1.0/0.0)."""
    out = []
    for index, trace in enumerate(traces):
        if not isinstance(trace, Trace):
            raise TypeError(f"trace {index} is a {type(trace).__name__}, not a Trace")
        outcome = _check_outcome(outcome_fn(trace), index)
        out.append(dataclasses.replace(trace, outcome=outcome))
    return out


def _describe(trace: Trace, index: int) -> str:
    problem = trace.metadata.get("problem_id")
    return f"trace {index}" + (f" (problem {problem!r})" if problem is not None else "")


def require_outcomes(traces: Sequence[Trace], *, what: str) -> None:
    """Raise ``ValueError`` naming the first trace without an outcome (``what`` says who needs
    them, e.g. ``"ReST-MCTS* value targets"``)."""
    for index, trace in enumerate(traces):
        if not isinstance(trace, Trace):
            raise TypeError(f"trace {index} is a {type(trace).__name__}, not a Trace")
        if trace.outcome is None:
            raise ValueError(
                f"{what} need traces with outcomes, but {_describe(trace, index)} has none; "
                "label them with treesearch.train.traces.with_outcomes(traces, check) first"
            )
        if math.isnan(trace.outcome):
            raise ValueError(f"{what}: {_describe(trace, index)} has a NaN outcome")


def group_by_problem(traces: Iterable[Trace]) -> dict[str, list[Trace]]:
    """The traces of each problem, keyed by ``metadata["problem_id"]`` in first-seen order."""
    groups: dict[str, list[Trace]] = {}
    for index, trace in enumerate(traces):
        if not isinstance(trace, Trace):
            raise TypeError(f"trace {index} is a {type(trace).__name__}, not a Trace")
        problem = trace.metadata.get("problem_id")
        if problem is None:
            raise ValueError(
                f"trace {index} has no metadata['problem_id']; traces_from_tree(..., "
                "metadata={'problem_id': ...}) records it"
            )
        groups.setdefault(str(problem), []).append(trace)
    return groups


class TraceTree:
    """The prefix tree of one problem's traces: traces that share their first ``k`` actions
    share their first ``k`` nodes. Node 0 is the root (the prompt).

    Per node (lists indexed by node id): ``parent`` (-1 at the root), ``children``,
    ``action`` (``None`` at the root), ``depth``, ``visits``, ``value``, ``score``, ``prior``
    (from the traces' steps; when traces disagree about a shared node the last one read wins),
    ``terminal`` and ``outcome`` (set where a trace ends; ``None`` elsewhere) and
    ``leaf_traces`` (the indices of the traces that end at the node).
    """

    def __init__(self) -> None:
        self.parent: list[int] = [-1]
        self.children: list[list[int]] = [[]]
        self.action: list[Action | None] = [None]
        self.depth: list[int] = [0]
        self.visits: list[int] = [0]
        self.value: list[float | None] = [None]
        self.score: list[float | None] = [None]
        self.prior: list[float | None] = [None]
        self.terminal: list[bool] = [False]
        self.outcome: list[float | None] = [None]
        self.leaf_traces: list[list[int]] = [[]]
        self.problem_id: str | None = None
        self.prompt: str | None = None
        self.traces: tuple[Trace, ...] = ()
        self._child_index: list[dict[Action, int]] = [{}]

    @classmethod
    def from_traces(cls, traces: Sequence[Trace]) -> TraceTree:
        """Merge ``traces`` (all from one problem) into their prefix tree."""
        traces = tuple(traces)
        if not traces:
            raise ValueError("a TraceTree needs at least one trace")
        tree = cls()
        problems = set()
        for index, trace in enumerate(traces):
            if not isinstance(trace, Trace):
                raise TypeError(f"trace {index} is a {type(trace).__name__}, not a Trace")
            problems.add(trace.metadata.get("problem_id"))
            if tree.prompt is None and trace.metadata.get("prompt") is not None:
                tree.prompt = str(trace.metadata["prompt"])
        if len(problems) > 1:
            names = sorted(map(repr, problems))
            raise ValueError(
                f"traces of different problems ({', '.join(names)}) cannot share one tree; "
                "split them with group_by_problem first"
            )
        problem = problems.pop()
        tree.problem_id = None if problem is None else str(problem)
        tree.traces = traces
        for index, trace in enumerate(traces):
            node = 0
            for step in trace.steps:
                node = tree._child(node, step)
            tree._end(node, index, trace)
        return tree

    def _child(self, node: int, step: TraceStep) -> int:
        child = self._child_index[node].get(step.action)
        if child is None:
            child = len(self.parent)
            self._child_index[node][step.action] = child
            self._child_index.append({})
            self.parent.append(node)
            self.children.append([])
            self.children[node].append(child)
            self.action.append(step.action)
            self.depth.append(self.depth[node] + 1)
            self.visits.append(0)
            self.value.append(None)
            self.score.append(None)
            self.prior.append(None)
            self.terminal.append(False)
            self.outcome.append(None)
            self.leaf_traces.append([])
        self.visits[child] = step.visits
        self.value[child] = step.value
        self.score[child] = step.score
        self.prior[child] = step.prior
        return child

    def _end(self, node: int, index: int, trace: Trace) -> None:
        known = self.outcome[node]
        if trace.outcome is not None and known is not None and known != trace.outcome:
            raise ValueError(
                f"{_describe(trace, index)} ends at the same node as an earlier trace but "
                f"with outcome {trace.outcome} instead of {known}"
            )
        if trace.outcome is not None:
            self.outcome[node] = float(trace.outcome)
        self.terminal[node] = self.terminal[node] or trace.terminal
        self.leaf_traces[node].append(index)

    @property
    def num_nodes(self) -> int:
        return len(self.parent)

    def path(self, node: int) -> list[int]:
        """Node ids from the root down to ``node``."""
        self._check_node(node)
        out = [node]
        while (node := self.parent[node]) != -1:
            out.append(node)
        out.reverse()
        return out

    def prefix(self, node: int) -> tuple[Action, ...]:
        """The actions from the root down to ``node``."""
        return tuple(self.action[i] for i in self.path(node)[1:])

    def leaves(self) -> list[int]:
        """Nodes without children."""
        return [i for i in range(self.num_nodes) if not self.children[i]]

    def ends(self) -> list[int]:
        """Nodes where at least one trace ends."""
        return [i for i in range(self.num_nodes) if self.leaf_traces[i]]

    def postorder(self) -> list[int]:
        """Every node after all its descendants (iterative)."""
        order = []
        stack = [0]
        while stack:
            node = stack.pop()
            order.append(node)
            stack.extend(self.children[node])
        order.reverse()
        return order

    def _check_node(self, node: int) -> None:
        if isinstance(node, bool) or not isinstance(node, int):
            raise TypeError(f"node must be an int, not {node!r}")
        if not 0 <= node < self.num_nodes:
            raise IndexError(f"node {node} out of range (the tree has {self.num_nodes} nodes)")

    def __repr__(self) -> str:
        return (
            f"TraceTree(problem_id={self.problem_id!r}, nodes={self.num_nodes}, "
            f"traces={len(self.traces)})"
        )
