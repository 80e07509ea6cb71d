"""Hypothesis strategies for property-testing a search setup.

* :func:`random_trees`: random explicit game trees (:class:`RandomTreeState` roots), single-agent
  or two-player zero-sum, with known negamax values.
* :func:`verifiers`: random deterministic verifiers (:class:`HashVerifier`) scoring a state's key.
* :func:`budgets`: small random :class:`~treesearch.budget.Budget` objects.
* :func:`seeds`: seeds for ``np.random.default_rng``.

This module imports hypothesis; ``import treesearch.testing`` does not load it.

Example::

    from hypothesis import given
    from treesearch.testing import strategies as tst

    @given(tst.random_trees(), tst.budgets(), tst.seeds())
    def test_budget_respected(root, budget, seed):
        ...
"""

from __future__ import annotations

import hashlib
import math
import numbers
import operator
from collections.abc import Hashable, Sequence
from typing import Any, NoReturn

from hypothesis import strategies as st

from ..budget import Budget

__all__ = [
    "HashVerifier",
    "RandomTreeState",
    "budgets",
    "random_trees",
    "seeds",
    "verifiers",
]

_set = object.__setattr__


class _Spec:
    """The shared, immutable description of one explicit tree."""

    __slots__ = ("_negamax", "children", "depth", "digest", "two_player", "values")

    def __init__(
        self,
        children: tuple[tuple[int, ...], ...],
        values: tuple[float | None, ...],
        two_player: bool,
    ) -> None:
        self.children = children
        self.values = values
        self.two_player = two_player
        depth = [0] * len(children)
        for node, kids in enumerate(children):
            for child in kids:
                depth[child] = depth[node] + 1
        self.depth = tuple(depth)
        text = repr((children, values, two_player)).encode()
        self.digest = hashlib.blake2b(text, digest_size=8).hexdigest()
        self._negamax: tuple[float, ...] | None = None

    def same(self, other: _Spec) -> bool:
        return self is other or (
            self.digest == other.digest
            and self.children == other.children
            and self.values == other.values
            and self.two_player == other.two_player
        )

    def to_play(self, node: int) -> int:
        return self.depth[node] % 2 if self.two_player else 0

    def negamax(self) -> tuple[float, ...]:
        """Exact value of every node for its own player to move (children follow parents)."""
        if self._negamax is None:
            value = [0.0] * len(self.children)
            for node in range(len(self.children) - 1, -1, -1):
                kids = self.children[node]
                if not kids:
                    leaf = self.values[node]
                    assert leaf is not None  # validated in RandomTreeState.__init__
                    value[node] = leaf
                    continue
                sign = -1.0 if self.two_player else 1.0
                value[node] = max(sign * value[c] for c in kids)
            self._negamax = tuple(value)
        return self._negamax


class RandomTreeState:
    """A node of an explicit, finite game tree: an immutable :class:`~treesearch.State`.

    Nodes are numbered ``0..N-1`` with 0 the root; ``children[n]`` lists node ``n``'s children
    (action ``i`` leads to ``children[n][i]``), and every child's id is larger than its
    parent's. A node without children is terminal with value ``values[n]``. In a two-player
    tree the players alternate (``to_play`` is the depth modulo 2) and values follow the sign
    rule: each terminal value is for the player to move at that leaf.

    Args:
        children: the children of each node.
        values: the terminal value of each leaf (``None`` for internal nodes).
        two_player: alternate players (zero-sum) instead of a single agent.
    """

    __slots__ = ("_node", "_spec")
    _node: int
    _spec: _Spec

    def __init__(
        self,
        children: Sequence[Sequence[int]],
        values: Sequence[float | None],
        *,
        two_player: bool = False,
    ) -> None:
        if isinstance(children, (str, bytes)) or not isinstance(children, Sequence):
            raise TypeError(f"children must be a sequence of sequences of ints, got {children!r}")
        n = len(children)
        if n == 0:
            raise ValueError("a tree needs at least a root")
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
            raise TypeError(f"values must be a sequence, got {type(values).__name__}")
        if len(values) != n:
            raise ValueError(f"{n} nodes but {len(values)} values")
        if not isinstance(two_player, bool):
            raise TypeError(f"two_player must be a bool, got {two_player!r}")
        kids_all: list[tuple[int, ...]] = []
        seen = [False] * n
        for node, kids in enumerate(children):
            if isinstance(kids, (str, bytes)) or not isinstance(kids, Sequence):
                raise TypeError(f"children[{node}] must be a sequence of node ids, got {kids!r}")
            ids: list[int] = []
            for child in kids:
                if isinstance(child, bool) or not isinstance(child, numbers.Integral):
                    raise TypeError(f"children[{node}] holds {child!r}, not a node id")
                child = int(child)
                if not node < child < n:
                    raise ValueError(
                        f"children[{node}] holds {child}; child ids must lie in {node + 1}..{n - 1}"
                    )
                if seen[child]:
                    raise ValueError(f"node {child} has two parents")
                seen[child] = True
                ids.append(child)
            kids_all.append(tuple(ids))
        orphans = [i for i in range(1, n) if not seen[i]]
        if orphans:
            raise ValueError(f"nodes {orphans[:5]} have no parent")
        vals: list[float | None] = []
        for node, value in enumerate(values):
            if kids_all[node]:
                if value is not None:
                    raise ValueError(f"internal node {node} has value {value!r}; use None")
                vals.append(None)
                continue
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise TypeError(f"leaf {node} needs a real terminal value, got {value!r}")
            if not math.isfinite(value):
                raise ValueError(f"leaf {node} has non-finite value {value!r}")
            vals.append(float(value))
        _set(self, "_spec", _Spec(tuple(kids_all), tuple(vals), two_player))
        _set(self, "_node", 0)

    @classmethod
    def _make(cls, spec: _Spec, node: int) -> RandomTreeState:
        state = object.__new__(cls)
        _set(state, "_spec", spec)
        _set(state, "_node", node)
        return state

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError(f"RandomTreeState is immutable; cannot set {name!r}")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError(f"RandomTreeState is immutable; cannot delete {name!r}")

    # ------------------------------------------------------------------ State protocol
    @property
    def to_play(self) -> int:
        """0 in single-agent trees; the depth modulo 2 in two-player trees."""
        return self._spec.to_play(self._node)

    @property
    def key(self) -> Hashable:
        """``(tree digest, node id)``."""
        return (self._spec.digest, self._node)

    def legal_actions(self) -> tuple[int, ...]:
        return tuple(range(len(self._spec.children[self._node])))

    def step(self, action: int) -> RandomTreeState:
        """The child reached by ``action`` (an index into this node's children).

        Raises:
            TypeError: ``action`` is not an int.
            ValueError: ``action`` is out of range, or the state is terminal.
        """
        if isinstance(action, bool):
            raise TypeError(f"RandomTreeState action must be an int, got bool {action!r}")
        try:
            index = operator.index(action)
        except TypeError:
            raise TypeError(
                f"RandomTreeState action must be an int, got {type(action).__name__} {action!r}"
            ) from None
        kids = self._spec.children[self._node]
        if not 0 <= index < len(kids):
            raise ValueError(
                f"illegal action {index} at node {self._node} (legal: 0..{len(kids) - 1})"
                if kids
                else f"node {self._node} is terminal; no action is legal"
            )
        return self._make(self._spec, kids[index])

    def is_terminal(self) -> bool:
        return not self._spec.children[self._node]

    def terminal_value(self) -> float | None:
        return self._spec.values[self._node]

    # ------------------------------------------------------------------ extras
    @property
    def node(self) -> int:
        """This state's node id."""
        return self._node

    @property
    def depth(self) -> int:
        return self._spec.depth[self._node]

    @property
    def num_nodes(self) -> int:
        """Nodes in the whole tree."""
        return len(self._spec.children)

    @property
    def two_player(self) -> bool:
        return self._spec.two_player

    def at(self, node: int) -> RandomTreeState:
        """The state at node id ``node`` of the same tree."""
        if isinstance(node, bool) or not isinstance(node, numbers.Integral):
            raise TypeError(f"node must be an int, got {node!r}")
        if not 0 <= node < self.num_nodes:
            raise ValueError(f"node {node} out of range 0..{self.num_nodes - 1}")
        return self._make(self._spec, int(node))

    def minimax_value(self) -> float:
        """The exact (negamax) value of this state for ``to_play``."""
        return self._spec.negamax()[self._node]

    def optimal_actions(self) -> tuple[int, ...]:
        """The actions that achieve :meth:`minimax_value` (empty at a terminal state)."""
        values = self._spec.negamax()
        best = self.minimax_value()
        sign = -1.0 if self._spec.two_player else 1.0
        kids = self._spec.children[self._node]
        return tuple(i for i, c in enumerate(kids) if sign * values[c] == best)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, RandomTreeState)
        return self._node == other._node and self._spec.same(other._spec)

    def __hash__(self) -> int:
        return hash(self.key)

    def __repr__(self) -> str:
        spec = self._spec
        root = (
            f"RandomTreeState(children={[list(k) for k in spec.children]!r}, "
            f"values={list(spec.values)!r}, two_player={spec.two_player})"
        )
        return root if self._node == 0 else f"{root}.at({self._node})"

    def __reduce__(self) -> tuple[Any, ...]:
        spec = self._spec
        return (_rebuild, (spec.children, spec.values, spec.two_player, self._node))


def _rebuild(
    children: Sequence[Sequence[int]],
    values: Sequence[float | None],
    two_player: bool,
    node: int,
) -> RandomTreeState:
    return RandomTreeState(children, values, two_player=two_player).at(node)


# ---------------------------------------------------------------------------- strategies
@st.composite
def _trees(
    draw: st.DrawFn,
    max_depth: int,
    max_branching: int,
    max_nodes: int,
    two_player: bool | None,
) -> RandomTreeState:
    depth = draw(st.integers(1, max_depth))
    two = draw(st.booleans()) if two_player is None else two_player
    children: list[list[int]] = [[]]
    depths = [0]
    spine = [True]  # the first-child path from the root always reaches ``depth``
    node = 0
    while node < len(children):
        d = depths[node]
        room = max_nodes - len(children)
        if d < depth:
            if spine[node]:  # keep room for the rest of the spine
                limit = min(max_branching, room - (depth - d - 1))
                expand = limit >= 1
            else:
                limit = min(max_branching, room - (depth - 1))
                expand = limit >= 1 and draw(st.booleans())
            if expand:
                k = draw(st.integers(1, limit))
                start = len(children)
                children[node] = list(range(start, start + k))
                for j in range(k):
                    children.append([])
                    depths.append(d + 1)
                    spine.append(spine[node] and j == 0)
        node += 1
    value = st.one_of(st.sampled_from([-1.0, 0.0, 1.0]), st.floats(-1.0, 1.0))
    values = [None if kids else draw(value) for kids in children]
    return RandomTreeState(children, values, two_player=two)


def random_trees(
    *,
    max_depth: int = 5,
    max_branching: int = 4,
    max_nodes: int = 100,
    two_player: bool | None = None,
) -> st.SearchStrategy[RandomTreeState]:
    """Roots of random explicit game trees.

    Each tree has depth ``1..max_depth`` (its first-child path reaches the drawn depth),
    branching ``1..max_branching``, at most ``max_nodes`` nodes and terminal values in
    ``[-1, 1]`` (often exactly -1, 0 or 1, so ties occur). Trees shrink towards a single chain.

    Args:
        two_player: fix single-agent (``False``) or two-player (``True``); ``None`` draws it.
    """
    for name, value, low in (
        ("max_depth", max_depth, 1),
        ("max_branching", max_branching, 1),
        ("max_nodes", max_nodes, max_depth + 1 if isinstance(max_depth, int) else 2),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    if two_player is not None and not isinstance(two_player, bool):
        raise TypeError(f"two_player must be a bool or None, got {two_player!r}")
    return _trees(max_depth, max_branching, max_nodes, two_player)


class HashVerifier:
    """A deterministic verifier: a score in ``[0, 1]`` from a hash of ``salt`` and the state's
    key (its ``repr``), the same in every process."""

    def __init__(self, salt: int = 0) -> None:
        if isinstance(salt, bool) or not isinstance(salt, int):
            raise TypeError(f"salt must be an int, got {salt!r}")
        self.salt = salt

    def score(self, states: Sequence[Any]) -> list[float]:
        return [self.score_one(s) for s in states]

    def score_one(self, state: Any) -> float:
        digest = hashlib.blake2b(f"{self.salt}:{state.key!r}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") / (2**64 - 1)

    def __call__(self, states: Sequence[Any]) -> list[float]:
        return self.score(states)

    def __repr__(self) -> str:
        return f"HashVerifier(salt={self.salt})"


def verifiers(*, callables: bool = True) -> st.SearchStrategy[Any]:
    """Random deterministic verifiers: :class:`HashVerifier` objects and, when ``callables``,
    also their bare ``score`` functions (a plain ``f(states) -> scores``)."""
    objects = st.builds(HashVerifier, st.integers(0, 2**32 - 1))
    if not callables:
        return objects
    return st.one_of(objects, objects.map(lambda v: v.score))


_LIMITS = ("simulations", "expansions", "policy_calls", "verifier_calls")


@st.composite
def _budgets(draw: st.DrawFn, max_value: int) -> Budget:
    required = draw(st.sampled_from(_LIMITS))
    amount = st.integers(1, max_value)
    limits = {
        name: draw(amount) if name == required else draw(st.none() | amount) for name in _LIMITS
    }
    return Budget(**limits)


def budgets(*, max_value: int = 50) -> st.SearchStrategy[Budget]:
    """Small budgets limiting at least one of simulations, expansions, policy calls and verifier
    calls (each set limit in ``1..max_value``; no wall-time or token limit)."""
    if isinstance(max_value, bool) or not isinstance(max_value, int) or max_value < 1:
        raise ValueError(f"max_value must be a positive int, got {max_value!r}")
    return _budgets(max_value)


def seeds() -> st.SearchStrategy[int]:
    """Seeds for ``np.random.default_rng``."""
    return st.integers(0, 2**32 - 1)
