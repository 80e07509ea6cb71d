"""The search tree: node statistics as a struct of numpy arrays, children stored CSR-style.

Every expansion appends all children of a node as one contiguous block of node ids
(``first_child[n] .. first_child[n] + num_children[n]``), so the statistics of a node's children
are array slices and a selection rule scores a 225-wide node in one vectorised expression.
Payloads (actions, states, policy payloads) live in side lists indexed by node id. A child's
state is created lazily, by stepping its parent's state, the first time it is needed.

Statistics convention: ``value_sum[n] / visits[n]`` is Q(parent(n), action(n)), from the point
of view of the player to move at the parent (``docs/concepts.md``). ``proven[n]`` is an exact
value in the same frame (MCTS-Solver), NaN while unknown. ``score[n]`` is a verifier score of
node ``n``'s own state, for ``to_play[n]``, NaN when not scored. ``proven_children[n]`` counts
the children of ``n`` with a proven value, so selection skips the solver check when it is 0.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from .interfaces import Action, State

__all__ = ["Node", "Tree", "TreeFull"]

_FORMAT = "treesearch.tree/1"

# name -> (dtype, fill value for fresh nodes)
_ARRAYS: dict[str, tuple[type, float]] = {
    "parent": (np.int32, -1),
    "depth": (np.int32, 0),
    "visits": (np.int32, 0),
    "value_sum": (np.float64, 0.0),
    "prior": (np.float64, 0.0),
    "first_child": (np.int32, -1),
    "num_children": (np.int32, 0),
    "to_play": (np.int8, -1),
    "terminal": (np.bool_, False),
    "score": (np.float64, math.nan),
    "proven": (np.float64, math.nan),
    "tokens": (np.int32, 0),
    "virtual_loss": (np.int32, 0),
    "proven_children": (np.int32, 0),
}

# Derived or transient arrays that JSON does not store.
_NOT_SERIALISED = ("virtual_loss", "proven_children")


class TreeFull(RuntimeError):
    """Raised when an expansion would grow the tree past its ``max_nodes`` cap."""


class Tree:
    """A growable search tree. Node 0 is the root.

    Args:
        root_state: the state at the root (may be ``None`` for trees loaded from JSON).
        capacity: initial number of node slots; arrays double when full.
        max_nodes: hard cap on the number of nodes; expansions past it raise :class:`TreeFull`.
    """

    ROOT = 0
    NO_PARENT = -1
    UNEXPANDED = -1

    parent: np.ndarray
    depth: np.ndarray
    visits: np.ndarray
    value_sum: np.ndarray
    prior: np.ndarray
    first_child: np.ndarray
    num_children: np.ndarray
    to_play: np.ndarray
    terminal: np.ndarray
    score: np.ndarray
    proven: np.ndarray
    tokens: np.ndarray
    virtual_loss: np.ndarray
    proven_children: np.ndarray

    def __init__(
        self,
        root_state: State | None = None,
        *,
        capacity: int = 256,
        max_nodes: int | None = None,
    ) -> None:
        if max_nodes is not None:
            if isinstance(max_nodes, bool) or not isinstance(max_nodes, (int, np.integer)):
                raise TypeError(f"max_nodes must be an int or None, got {max_nodes!r}")
            if max_nodes < 1:
                raise ValueError(f"max_nodes must be positive, got {max_nodes}")
            max_nodes = int(max_nodes)
        capacity = max(1, min(capacity, max_nodes or capacity))
        for name, (dtype, fill) in _ARRAYS.items():
            setattr(self, name, np.full(capacity, fill, dtype=dtype))
        self.max_nodes = max_nodes
        self.num_nodes = 1
        self.actions: list[Action | None] = [None]
        self.states: list[State | None] = [root_state]
        self.payloads: list[Any] = [None]
        if root_state is not None:
            self._record_state(self.ROOT, root_state)

    # ------------------------------------------------------------------ growth
    @property
    def capacity(self) -> int:
        return len(self.parent)

    def _reserve(self, extra: int) -> None:
        needed = self.num_nodes + extra
        if self.max_nodes is not None and needed > self.max_nodes:
            raise TreeFull(
                f"tree holds {self.num_nodes} nodes; {extra} more exceed {self.max_nodes}"
            )
        if needed <= self.capacity:
            return
        new_cap = max(needed, 2 * self.capacity)
        if self.max_nodes is not None:
            new_cap = min(new_cap, self.max_nodes)
        for name, (dtype, fill) in _ARRAYS.items():
            old = getattr(self, name)
            grown: np.ndarray = np.full(new_cap, fill, dtype=dtype)
            grown[: len(old)] = old
            setattr(self, name, grown)

    def room(self) -> int | None:
        """Nodes that can still be added, or ``None`` without a cap."""
        return None if self.max_nodes is None else self.max_nodes - self.num_nodes

    def reserve(self, nodes: int) -> None:
        """Make room for ``nodes`` more nodes now (at most up to ``max_nodes``).

        A search that knows about how far its tree will grow allocates the arrays once instead
        of doubling them on the way; each doubling copies every array into fresh memory.
        """
        room = self.room()
        extra = int(nodes) if room is None else min(int(nodes), room)
        if extra > 0:
            self._reserve(extra)

    def add_children(
        self,
        node: int,
        actions: Sequence[Action],
        priors: Sequence[float] | np.ndarray,
        *,
        payloads: Sequence[Any] | None = None,
        tokens: Sequence[int] | None = None,
    ) -> range:
        """Expand ``node`` with one contiguous block of children; returns their ids."""
        if self.first_child[node] != self.UNEXPANDED:
            raise ValueError(f"node {node} is already expanded")
        k = len(actions)
        if k == 0:
            raise ValueError(f"empty expansion: no children given for node {node}")
        priors = np.asarray(priors, dtype=np.float64)
        if priors.shape != (k,):
            raise ValueError(f"{k} actions but priors of shape {priors.shape}")
        if payloads is not None and len(payloads) != k:
            raise ValueError(f"{k} actions but {len(payloads)} payloads")
        self._reserve(k)
        start = self.num_nodes
        end = start + k
        self.parent[start:end] = node
        self.depth[start:end] = self.depth[node] + 1
        self.prior[start:end] = priors
        if tokens is not None:
            self.tokens[start:end] = tokens
        self.first_child[node] = start
        self.num_children[node] = k
        self.actions.extend(actions)
        self.states.extend([None] * k)
        self.payloads.extend(payloads if payloads is not None else [None] * k)
        self.num_nodes = end
        return range(start, end)

    # ------------------------------------------------------------------ access
    def children(self, node: int) -> range:
        start = int(self.first_child[node])
        if start < 0:
            return range(0)
        return range(start, start + int(self.num_children[node]))

    def is_expanded(self, node: int) -> bool:
        return bool(self.first_child[node] != self.UNEXPANDED)

    def q(self, node: int) -> float:
        """Mean value of ``node`` for the player to move at its parent (NaN if unvisited)."""
        n = self.visits[node]
        return float(self.value_sum[node] / n) if n > 0 else math.nan

    def path(self, node: int) -> list[int]:
        """Node ids from the root down to ``node``."""
        out = [node]
        while (node := int(self.parent[node])) != self.NO_PARENT:
            out.append(node)
        out.reverse()
        return out

    def state(self, node: int) -> State:
        """The state at ``node``, created from the nearest known ancestor when first needed."""
        states = self.states
        known = states[node]
        if known is not None:
            return known
        missing = [node]
        cursor = int(self.parent[node])
        # Usually the parent's state is known (selection descends one level at a time).
        while cursor != self.NO_PARENT and states[cursor] is None:
            missing.append(cursor)
            cursor = int(self.parent[cursor])
        if cursor == self.NO_PARENT:
            raise ValueError("the tree has no root state (was it loaded from JSON?)")
        state = states[cursor]
        assert state is not None  # loop invariant, not user input
        for child in reversed(missing):
            action = self.actions[child]
            try:
                state = state.step(action)
            except Exception as exc:
                if hasattr(exc, "add_note"):  # Python 3.11+
                    exc.add_note(
                        f"treesearch: raised by step({action!r}) creating tree node {child} "
                        f"(child of node {int(self.parent[child])})"
                    )
                raise
            states[child] = state
            self.to_play[child] = state.to_play
            self.terminal[child] = state.is_terminal()
        return state

    def _record_state(self, node: int, state: State) -> None:
        self.to_play[node] = state.to_play
        self.terminal[node] = state.is_terminal()

    def node(self, index: int) -> Node:
        if not 0 <= index < self.num_nodes:
            raise IndexError(f"node {index} out of range (tree has {self.num_nodes} nodes)")
        return Node(self, index)

    @property
    def root(self) -> Node:
        return Node(self, self.ROOT)

    def __len__(self) -> int:
        return self.num_nodes

    def __iter__(self) -> Iterator[Node]:
        return (Node(self, i) for i in range(self.num_nodes))

    def leaves(self) -> list[int]:
        """Ids of nodes with no children."""
        return [i for i in range(self.num_nodes) if self.first_child[i] == self.UNEXPANDED]

    # ------------------------------------------------------------------ reuse
    def subtree(self, node: int) -> Tree:
        """A new tree rooted at ``node`` holding its descendants (tree reuse between moves).

        Statistics are kept; children stay contiguous. The new root keeps its visit count.
        """
        old_ids = [node]
        new_tree = Tree(None, capacity=max(16, self.num_nodes), max_nodes=self.max_nodes)
        # Breadth-first: each node's children block is copied as one block, so CSR holds.
        head = 0
        first_child: list[int] = [-1]
        while head < len(old_ids):
            old = old_ids[head]
            kids = self.children(old)
            if len(kids):
                first_child[head] = len(old_ids)
                old_ids.extend(kids)
                first_child.extend([-1] * len(kids))
            head += 1
        ids = np.asarray(old_ids, dtype=np.int64)
        remap = np.full(self.num_nodes, -1, dtype=np.int64)
        remap[ids] = np.arange(len(ids))
        n = len(ids)
        new_tree._reserve(n - 1)
        for name in _ARRAYS:
            getattr(new_tree, name)[:n] = getattr(self, name)[ids]
        parents = self.parent[ids]
        new_tree.parent[:n] = np.where(parents >= 0, remap[np.maximum(parents, 0)], -1)
        new_tree.parent[0] = self.NO_PARENT
        new_tree.depth[:n] -= self.depth[node]
        new_tree.first_child[:n] = first_child
        new_tree.virtual_loss[:n] = 0
        new_tree.num_nodes = n
        new_tree.actions = [self.actions[i] for i in old_ids]
        new_tree.actions[0] = None
        new_tree.payloads = [self.payloads[i] for i in old_ids]
        root_state = self.state(node) if self.states[0] is not None else None
        new_tree.states = [self.states[i] for i in old_ids]
        new_tree.states[0] = root_state
        return new_tree

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the statistics and actions (states are not stored).

        Actions must be JSON scalars (int, float, str, bool, None) or tuples of them.
        """
        n = self.num_nodes
        arrays = {}
        for name in _ARRAYS:
            if name in _NOT_SERIALISED:
                continue
            values = getattr(self, name)[:n].tolist()
            if getattr(self, name).dtype == np.float64:
                values = [None if math.isnan(v) else v for v in values]
            arrays[name] = values
        return {
            "format": _FORMAT,
            "num_nodes": n,
            "max_nodes": self.max_nodes,
            "arrays": arrays,
            "actions": [_encode_action(a, i) for i, a in enumerate(self.actions)],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Tree:
        """Inverse of :meth:`to_dict`; the result has statistics and actions but no states."""
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            raise ValueError(f"not a treesearch tree (expected format {_FORMAT!r})")
        n = data["num_nodes"]
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"num_nodes must be a positive int, got {n!r}")
        max_nodes = data.get("max_nodes")
        if max_nodes is not None and (not isinstance(max_nodes, int) or max_nodes < n):
            raise ValueError(f"max_nodes must be an int >= num_nodes ({n}), got {max_nodes!r}")
        tree = cls(None, capacity=n, max_nodes=max_nodes)
        tree._reserve(n - 1)
        for name, values in data["arrays"].items():
            if name not in _ARRAYS or name in _NOT_SERIALISED:
                raise ValueError(f"unknown tree array {name!r}")
            if len(values) != n:
                raise ValueError(f"array {name!r} has {len(values)} entries for {n} nodes")
            dtype = _ARRAYS[name][0]
            if dtype is np.float64:
                values = [math.nan if v is None else v for v in values]
            getattr(tree, name)[:n] = np.asarray(values, dtype=dtype)
        actions = data["actions"]
        if len(actions) != n:
            raise ValueError(f"{len(actions)} actions for {n} nodes")
        proven_parents = tree.parent[1:n][~np.isnan(tree.proven[1:n])]
        np.add.at(tree.proven_children, proven_parents, 1)
        tree.actions = [_decode_action(a) for a in actions]
        tree.states = [None] * n
        tree.payloads = [None] * n
        tree.num_nodes = n
        return tree


def _encode_action(action: Any, index: int) -> Any:
    if action is None or isinstance(action, (bool, int, float, str)):
        return action
    if isinstance(action, np.integer):
        return int(action)
    if isinstance(action, tuple):
        return {"tuple": [_encode_action(a, index) for a in action]}
    raise TypeError(
        f"action of node {index} ({type(action).__name__}) is not JSON-serialisable; "
        "use ints, strings or tuples of them"
    )


def _decode_action(action: Any) -> Any:
    if isinstance(action, dict):
        if set(action) != {"tuple"}:
            raise ValueError(f"unknown encoded action {action!r}")
        return tuple(_decode_action(a) for a in action["tuple"])
    if isinstance(action, list):
        raise ValueError(f"unknown encoded action {action!r}")
    return action


class Node:
    """A light view of one node of a :class:`Tree`."""

    __slots__ = ("index", "tree")

    def __init__(self, tree: Tree, index: int) -> None:
        self.tree = tree
        self.index = index

    @property
    def parent(self) -> Node | None:
        p = int(self.tree.parent[self.index])
        return None if p == Tree.NO_PARENT else Node(self.tree, p)

    @property
    def children(self) -> list[Node]:
        return [Node(self.tree, i) for i in self.tree.children(self.index)]

    @property
    def action(self) -> Action | None:
        return self.tree.actions[self.index]

    @property
    def state(self) -> State:
        return self.tree.state(self.index)

    @property
    def payload(self) -> Any:
        return self.tree.payloads[self.index]

    @property
    def visits(self) -> int:
        return int(self.tree.visits[self.index])

    @property
    def q(self) -> float:
        return self.tree.q(self.index)

    @property
    def prior(self) -> float:
        return float(self.tree.prior[self.index])

    @property
    def score(self) -> float:
        return float(self.tree.score[self.index])

    @property
    def proven(self) -> float:
        return float(self.tree.proven[self.index])

    @property
    def depth(self) -> int:
        return int(self.tree.depth[self.index])

    @property
    def is_expanded(self) -> bool:
        return self.tree.is_expanded(self.index)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Node) and other.tree is self.tree and other.index == self.index

    def __hash__(self) -> int:
        return hash((id(self.tree), self.index))

    def __repr__(self) -> str:
        return (
            f"Node({self.index}, action={self.action!r}, visits={self.visits}, "
            f"q={self.q:.3f}, prior={self.prior:.3f})"
        )
