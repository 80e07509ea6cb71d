"""Toy problems with known optimal values, for testing search algorithms.

* :class:`Bandit`: a one-step single-agent problem; the best arm is the argmax of the means.
* :class:`Chain`: a single-agent binary tree where only the all-ones path is rewarded (a needle
  in a haystack of ``2 ** length`` leaves).
* :class:`DeceptiveTrap`: a single-agent binary tree where random rollouts favour the wrong first
  action.
* :class:`ExplicitTree`: any finite tree written as nested dicts or lists, single-agent or
  two-player zero-sum, with its exact (negamax) value from :meth:`ExplicitTree.minimax_value`.

All of them are immutable :class:`~treesearch.interfaces.State` objects whose rewards are
deterministic. Values follow the project's sign rule: from the point of view of ``to_play``, which
is always 0 in the single-agent problems.
"""

from __future__ import annotations

import hashlib
import math
import numbers
import operator
from collections.abc import Hashable, Mapping, Sequence
from typing import Any, NoReturn, TypeAlias

__all__ = ["Bandit", "Chain", "DeceptiveTrap", "ExplicitTree", "NestedTree"]

_new = object.__new__
_set = object.__setattr__

NestedTree: TypeAlias = "float | Mapping[Hashable, NestedTree] | Sequence[NestedTree]"
"""A tree spec for :meth:`ExplicitTree.from_nested`: a number is a leaf (terminal value), a
mapping's keys are actions, and a list or tuple has the actions ``0..n-1``."""


def _is_number(x: object) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def _finite_float(x: object, what: str) -> float:
    if not _is_number(x):
        raise TypeError(f"{what} must be a real number, got {type(x).__name__} {x!r}")
    value = float(x)  # type: ignore[arg-type]
    if not math.isfinite(value):
        raise ValueError(f"{what} must be finite, got {value!r}")
    return value


def _binary_action(owner: str, action: Any) -> int:
    """``action`` as 0 or 1; ``TypeError`` for non-ints, ``ValueError`` for other ints."""
    if type(action) is not int:
        if isinstance(action, bool):
            raise TypeError(f"{owner} action must be the int 0 or 1, got bool {action!r}")
        try:
            action = operator.index(action)
        except TypeError:
            raise TypeError(
                f"{owner} action must be the int 0 or 1, got {type(action).__name__} {action!r}"
            ) from None
    if action not in (0, 1):
        raise ValueError(f"{owner} action must be 0 or 1, got {action}")
    return action


class _Frozen:
    """Mixin: instances cannot be changed after construction (slots are set with ``_set``)."""

    __slots__ = ()

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError(f"{type(self).__name__} is immutable; cannot set {name!r}")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError(f"{type(self).__name__} is immutable; cannot delete {name!r}")

    @property
    def key(self) -> Hashable:  # pragma: no cover - every subclass overrides it
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self.key == other.key  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(self.key)


# -- Bandit -----------------------------------------------------------------------------------


class Bandit(_Frozen):
    """A one-step, single-agent problem with ``len(means)`` arms and deterministic payoffs.

    The root offers the actions ``0..K-1``; arm ``i`` leads to a terminal state whose
    :meth:`terminal_value` is ``means[i]``. The optimal action is :attr:`optimal_action` (the
    first argmax) and the optimal value is ``max(means)``. Use it to check that a search puts
    its visits on the best arm.

    Args:
        means: payoff of each arm; at least one, all finite.
    """

    __slots__ = ("_arm", "_means")
    _arm: int | None
    _means: tuple[float, ...]

    def __init__(self, means: Sequence[float]) -> None:
        if isinstance(means, (str, bytes)) or not isinstance(means, Sequence):
            raise TypeError(f"Bandit means must be a sequence of numbers, got {means!r}")
        if len(means) == 0:
            raise ValueError("Bandit needs at least one arm")
        values = tuple(_finite_float(m, f"Bandit mean {i}") for i, m in enumerate(means))
        _set(self, "_means", values)
        _set(self, "_arm", None)

    @classmethod
    def _make(cls, means: tuple[float, ...], arm: int | None) -> Bandit:
        state = _new(cls)
        _set(state, "_means", means)
        _set(state, "_arm", arm)
        return state

    @property
    def to_play(self) -> int:
        """Always 0: single-agent."""
        return 0

    @property
    def key(self) -> Hashable:
        """``(means, arm)``, with ``arm`` ``None`` at the root."""
        return (self._means, self._arm)

    def legal_actions(self) -> tuple[int, ...]:
        """The arms ``0..K-1`` at the root; empty once an arm is chosen."""
        return tuple(range(len(self._means))) if self._arm is None else ()

    def step(self, action: int) -> Bandit:
        """The terminal state after pulling arm ``action``.

        Raises:
            TypeError: ``action`` is not an int.
            ValueError: an arm was already chosen, or ``action`` is not an arm.
        """
        if type(action) is not int:
            if isinstance(action, bool):
                raise TypeError(f"Bandit action must be an int arm, got bool {action!r}")
            try:
                action = operator.index(action)
            except TypeError:
                raise TypeError(
                    f"Bandit action must be an int arm, got {type(action).__name__} {action!r}"
                ) from None
        if self._arm is not None:
            raise ValueError(f"Bandit: arm {self._arm} was already chosen; the problem is over")
        if not 0 <= action < len(self._means):
            raise ValueError(
                f"Bandit action must be an arm in 0..{len(self._means) - 1}, got {action}"
            )
        return self._make(self._means, action)

    def is_terminal(self) -> bool:
        return self._arm is not None

    def terminal_value(self) -> float | None:
        """The chosen arm's mean; ``None`` at the root."""
        return None if self._arm is None else self._means[self._arm]

    @property
    def means(self) -> tuple[float, ...]:
        return self._means

    @property
    def arm(self) -> int | None:
        """The chosen arm, or ``None`` at the root."""
        return self._arm

    @property
    def optimal_action(self) -> int:
        """The first arm with the highest mean."""
        return max(range(len(self._means)), key=self._means.__getitem__)

    @property
    def optimal_value(self) -> float:
        """Value of this state under optimal play: ``max(means)`` at the root."""
        return max(self._means) if self._arm is None else self._means[self._arm]

    def __repr__(self) -> str:
        arm = "" if self._arm is None else f".step({self._arm})"
        return f"Bandit({list(self._means)!r}){arm}"

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self)._make, (self._means, self._arm))


# -- Chain ------------------------------------------------------------------------------------


class Chain(_Frozen):
    """A single-agent binary tree of depth ``length`` with one rewarded leaf.

    Every non-terminal state offers the actions 0 and 1; the problem ends after ``length``
    steps. The leaf reached by playing 1 ``length`` times is worth ``reward``; every other leaf
    is worth 0. So the optimal value is ``reward``, the optimal actions are all 1
    (:meth:`optimal_actions`), and a uniform random rollout from the root finds the reward with
    probability ``2 ** -length``.

    A state is Markov: it records only the depth and whether every action so far was 1, so all
    states that left the rewarded path at the same depth share a key (their futures are equal).

    Args:
        length: number of steps, at least 1.
        reward: value of the rewarded leaf; must be finite and positive.
    """

    __slots__ = ("_depth", "_length", "_on_path", "_reward")
    _depth: int
    _length: int
    _on_path: bool
    _reward: float

    def __init__(self, length: int, reward: float = 1.0) -> None:
        if isinstance(length, bool) or not isinstance(length, numbers.Integral):
            raise TypeError(f"Chain length must be an int, got {type(length).__name__}")
        if length < 1:
            raise ValueError(f"Chain length must be >= 1, got {length}")
        reward = _finite_float(reward, "Chain reward")
        if reward <= 0:
            raise ValueError(f"Chain reward must be positive, got {reward}")
        _set(self, "_length", int(length))
        _set(self, "_reward", reward)
        _set(self, "_depth", 0)
        _set(self, "_on_path", True)

    @classmethod
    def _make(cls, length: int, reward: float, depth: int, on_path: bool) -> Chain:
        state = _new(cls)
        _set(state, "_length", length)
        _set(state, "_reward", reward)
        _set(state, "_depth", depth)
        _set(state, "_on_path", on_path)
        return state

    @property
    def to_play(self) -> int:
        """Always 0: single-agent."""
        return 0

    @property
    def key(self) -> Hashable:
        """``(length, reward, depth, on_path)``."""
        return (self._length, self._reward, self._depth, self._on_path)

    def legal_actions(self) -> tuple[int, ...]:
        """``(0, 1)``, or empty at the end of the chain."""
        return () if self._depth == self._length else (0, 1)

    def step(self, action: int) -> Chain:
        """The state after ``action`` (0 or 1).

        Raises:
            TypeError: ``action`` is not an int.
            ValueError: the chain is over, or ``action`` is not 0 or 1.
        """
        action = _binary_action("Chain", action)
        if self._depth == self._length:
            raise ValueError(f"Chain: cannot play {action}, all {self._length} steps are done")
        return self._make(
            self._length, self._reward, self._depth + 1, self._on_path and action == 1
        )

    def is_terminal(self) -> bool:
        return self._depth == self._length

    def terminal_value(self) -> float | None:
        """``reward`` on the all-ones leaf, 0 on any other leaf, ``None`` before the end."""
        if self._depth != self._length:
            return None
        return self._reward if self._on_path else 0.0

    @property
    def length(self) -> int:
        return self._length

    @property
    def reward(self) -> float:
        return self._reward

    @property
    def depth(self) -> int:
        """Steps taken so far."""
        return self._depth

    @property
    def on_path(self) -> bool:
        """Whether every action so far was 1 (the reward is still reachable)."""
        return self._on_path

    @property
    def optimal_value(self) -> float:
        """Value of this state under optimal play: ``reward`` on the path, else 0."""
        return self._reward if self._on_path else 0.0

    def optimal_actions(self) -> tuple[int, ...]:
        """An optimal continuation from this state: 1 for every remaining step.

        (Off the path every continuation is worth 0, so this one is optimal there too.)
        """
        return (1,) * (self._length - self._depth)

    def __repr__(self) -> str:
        return (
            f"Chain(length={self._length}, reward={self._reward!r}, depth={self._depth}, "
            f"on_path={self._on_path})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self)._make, (self._length, self._reward, self._depth, self._on_path))


# -- DeceptiveTrap ----------------------------------------------------------------------------

_ROOT, _LURE, _PATH, _DEAD = 0, 1, 2, 3
_REGION_NAMES = ("root", "lure", "path", "dead")


class DeceptiveTrap(_Frozen):
    """A single-agent binary tree whose best leaf hides behind the worse-looking first action.

    Every non-terminal state offers the actions 0 and 1; every leaf is at depth ``depth``.
    Leaf values:

    * any leaf whose first action is 0 is worth ``lure`` (default 0.5);
    * the leaf reached by playing 1 ``depth`` times is worth ``prize`` (default 1.0);
    * every other leaf (first action 1, some later action 0) is worth 0.

    Exact answers: the optimal value is ``prize``, the optimal first action is 1, and the
    optimal action sequence is all ones (:meth:`optimal_actions`). Under uniform random
    rollouts, action 0 averages ``lure`` but action 1 averages only ``prize / 2 ** (depth - 1)``
    (:attr:`mean_random_value`), so with the defaults and ``depth >= 3`` flat Monte Carlo and
    shallow averaging prefer the trap (action 0); a search that keeps exploring (UCT with enough
    simulations) must find the prize, since about ``2 ** (depth - 1)`` rollouts under action 1
    are needed to see it by chance.

    A state is Markov: it records the depth reached and its region (root, lure subtree, prize
    path, or dead part of the action-1 subtree), so states with equal futures share a key.

    Args:
        depth: number of steps, at least 1.
        lure: value of every leaf under action 0.
        prize: value of the all-ones leaf; must exceed both ``lure`` and 0.
    """

    __slots__ = ("_depth", "_level", "_lure", "_prize", "_region")
    _depth: int
    _level: int
    _lure: float
    _prize: float
    _region: int

    def __init__(self, depth: int, *, lure: float = 0.5, prize: float = 1.0) -> None:
        if isinstance(depth, bool) or not isinstance(depth, numbers.Integral):
            raise TypeError(f"DeceptiveTrap depth must be an int, got {type(depth).__name__}")
        if depth < 1:
            raise ValueError(f"DeceptiveTrap depth must be >= 1, got {depth}")
        lure = _finite_float(lure, "DeceptiveTrap lure")
        prize = _finite_float(prize, "DeceptiveTrap prize")
        if not prize > max(lure, 0.0):
            raise ValueError(
                f"DeceptiveTrap prize must exceed both lure and 0, got prize={prize}, lure={lure}"
            )
        _set(self, "_depth", int(depth))
        _set(self, "_lure", lure)
        _set(self, "_prize", prize)
        _set(self, "_level", 0)
        _set(self, "_region", _ROOT)

    @classmethod
    def _make(cls, depth: int, lure: float, prize: float, level: int, region: int) -> DeceptiveTrap:
        state = _new(cls)
        _set(state, "_depth", depth)
        _set(state, "_lure", lure)
        _set(state, "_prize", prize)
        _set(state, "_level", level)
        _set(state, "_region", region)
        return state

    @property
    def to_play(self) -> int:
        """Always 0: single-agent."""
        return 0

    @property
    def key(self) -> Hashable:
        """``(depth, lure, prize, level, region)``."""
        return (self._depth, self._lure, self._prize, self._level, self._region)

    def legal_actions(self) -> tuple[int, ...]:
        """``(0, 1)``, or empty at a leaf."""
        return () if self._level == self._depth else (0, 1)

    def step(self, action: int) -> DeceptiveTrap:
        """The state after ``action`` (0 or 1).

        Raises:
            TypeError: ``action`` is not an int.
            ValueError: the state is a leaf, or ``action`` is not 0 or 1.
        """
        action = _binary_action("DeceptiveTrap", action)
        if self._level == self._depth:
            raise ValueError(f"DeceptiveTrap: cannot play {action}, the state is a leaf")
        region = self._region
        if region == _ROOT:
            region = _PATH if action == 1 else _LURE
        elif region == _PATH and action == 0:
            region = _DEAD
        return self._make(self._depth, self._lure, self._prize, self._level + 1, region)

    def is_terminal(self) -> bool:
        return self._level == self._depth

    def terminal_value(self) -> float | None:
        """The leaf value (see the class docstring); ``None`` before a leaf."""
        if self._level != self._depth:
            return None
        return self._leaf_value(self._region)

    def _leaf_value(self, region: int) -> float:
        if region == _LURE:
            return self._lure
        return self._prize if region == _PATH else 0.0

    @property
    def depth(self) -> int:
        """Steps from the root to every leaf."""
        return self._depth

    @property
    def level(self) -> int:
        """Steps taken so far."""
        return self._level

    @property
    def region(self) -> str:
        """``"root"``, ``"lure"`` (under action 0), ``"path"`` (all ones so far) or ``"dead"``."""
        return _REGION_NAMES[self._region]

    @property
    def optimal_value(self) -> float:
        """Value of this state under optimal play."""
        if self._region == _ROOT:
            return self._prize
        return self._leaf_value(self._region)

    @property
    def mean_random_value(self) -> float:
        """Expected leaf value of a uniform random rollout from this state."""
        remaining = self._depth - self._level
        if self._region == _ROOT:
            return 0.5 * (self._lure + self._prize / 2 ** (self._depth - 1))
        if self._region == _PATH:
            return self._prize / 2**remaining
        return self._leaf_value(self._region)

    def optimal_actions(self) -> tuple[int, ...]:
        """An optimal continuation from this state: 1 for every remaining step.

        (In the lure and dead regions every continuation is equally good.)
        """
        return (1,) * (self._depth - self._level)

    def __repr__(self) -> str:
        return (
            f"DeceptiveTrap(depth={self._depth}, lure={self._lure!r}, prize={self._prize!r}, "
            f"level={self._level}, region={self.region!r})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            type(self)._make,
            (self._depth, self._lure, self._prize, self._level, self._region),
        )


# -- ExplicitTree -----------------------------------------------------------------------------


class _Tree:
    """The shared, immutable structure of an :class:`ExplicitTree`: flat per-node arrays.

    Node 0 is the root and every child has a larger id than its parent. Two trees are equal
    when their arrays are; the hash is computed once. The ``repr`` names the tree by a digest of
    its contents (structure, actions, values, players), so equal trees have equal reprs in every
    process (``ExplicitTree.key`` is hashed through its repr by ``treesearch.testing``), as long
    as the actions' own reprs are stable (ints and strings are).
    """

    __slots__ = (
        "_digest",
        "_hash",
        "actions",
        "child_index",
        "children",
        "depth",
        "minimax",
        "parent",
        "two_player",
        "values",
    )

    def __init__(
        self,
        actions: tuple[tuple[Hashable, ...], ...],
        children: tuple[tuple[int, ...], ...],
        values: tuple[float | None, ...],
        two_player: bool,
    ) -> None:
        self.actions = actions
        self.children = children
        self.values = values
        self.two_player = two_player
        n = len(values)
        self.child_index: tuple[dict[Hashable, int], ...] = tuple(
            dict(zip(actions[i], children[i], strict=True)) for i in range(n)
        )
        parent = [-1] * n
        for i in range(n):
            for c in children[i]:
                parent[c] = i
        depth = [0] * n
        for i in range(1, n):  # parents come before children
            depth[i] = depth[parent[i]] + 1
        self.parent: tuple[int, ...] = tuple(parent)
        self.depth: tuple[int, ...] = tuple(depth)
        # Exact values, children first: max over children, negated in two-player trees.
        minimax = [0.0] * n
        for i in range(n - 1, -1, -1):
            value = values[i]
            if value is not None:
                minimax[i] = value
            elif two_player:
                minimax[i] = max(-minimax[c] for c in children[i])
            else:
                minimax[i] = max(minimax[c] for c in children[i])
        self.minimax: tuple[float, ...] = tuple(minimax)
        self._hash = hash((actions, children, values, two_player))
        self._digest: str | None = None

    @property
    def digest(self) -> str:
        """16 hex digits identifying the contents; equal in every process (computed once)."""
        if self._digest is None:
            text = repr((self.actions, self.children, self.values, self.two_player))
            self._digest = hashlib.blake2b(text.encode(), digest_size=8).hexdigest()
        return self._digest

    def __repr__(self) -> str:
        kind = "two-player" if self.two_player else "single-agent"
        return f"_Tree({len(self.values)} nodes, {kind}, {self.digest})"

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if not isinstance(other, _Tree):
            return NotImplemented
        return (
            self._hash == other._hash
            and self.two_player == other.two_player
            and self.values == other.values
            and self.children == other.children
            and self.actions == other.actions
        )

    def __hash__(self) -> int:
        return self._hash

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuild on unpickling: the cached hash of string actions differs between processes.
        return (_Tree, (self.actions, self.children, self.values, self.two_player))


def _parse_nested(spec: NestedTree, two_player: bool) -> _Tree:
    """Flatten a nested spec into a :class:`_Tree`, iteratively (specs may be deep)."""
    objs: list[Any] = [spec]
    parent: list[int] = [-1]
    actions: list[tuple[Hashable, ...]] = []
    children: list[tuple[int, ...]] = []
    values: list[float | None] = []
    i = 0
    while i < len(objs):  # breadth-first: ids grow with depth, children after parents
        obj = objs[i]
        if _is_number(obj):
            value = float(obj)
            if not math.isfinite(value):
                raise ValueError(f"ExplicitTree leaf values must be finite, got {value!r}")
            actions.append(())
            children.append(())
            values.append(value)
        else:
            if isinstance(obj, Mapping):
                items = list(obj.items())
            elif isinstance(obj, (list, tuple)):
                items = list(enumerate(obj))
            else:
                raise TypeError(
                    "ExplicitTree nodes must be numbers (leaves), mappings or lists, got "
                    f"{type(obj).__name__} {obj!r}"
                )
            if not items:
                raise ValueError(
                    "ExplicitTree: an inner node needs at least one child; use a number for a leaf"
                )
            # A container that is its own ancestor would make the tree infinite.
            j = parent[i]
            while j >= 0:
                if objs[j] is obj:
                    raise ValueError("ExplicitTree spec contains a cycle")
                j = parent[j]
            first = len(objs)
            for _, child in items:
                objs.append(child)
                parent.append(i)
            actions.append(tuple(a for a, _ in items))
            children.append(tuple(range(first, first + len(items))))
            values.append(None)
        i += 1
    return _Tree(tuple(actions), tuple(children), tuple(values), two_player)


class ExplicitTree(_Frozen):
    """A state in a finite tree written out by hand, for checking search against exact values.

    Build the root with ``ExplicitTree({"a": {"c": 1.0, "d": 0.0}, "b": 0.5})`` or the same via
    :meth:`from_nested`. In the spec a number is a leaf (its terminal value), a mapping's keys
    are the actions in insertion order (strings, usually), and a list or tuple has the actions
    ``0..n-1``.

    With ``two_player=False`` ``to_play`` is always 0 and leaf values are rewards. With
    ``two_player=True`` the players alternate by depth (player 0 at the root) and each leaf value
    is from the point of view of the player to move at that leaf, as the project's sign rule
    says. :meth:`minimax_value` gives the exact value under optimal play (negamax when
    two-player) and :meth:`best_actions` the actions that achieve it.

    Args:
        spec: the nested tree, see :data:`NestedTree`.
        two_player: whether the players alternate by depth.
    """

    __slots__ = ("_node", "_tree")
    _node: int
    _tree: _Tree

    def __init__(self, spec: NestedTree, *, two_player: bool = False) -> None:
        _set(self, "_tree", _parse_nested(spec, bool(two_player)))
        _set(self, "_node", 0)

    @classmethod
    def from_nested(cls, spec: NestedTree, *, two_player: bool = False) -> ExplicitTree:
        """The root state of the tree ``spec`` (same as the constructor)."""
        return cls(spec, two_player=two_player)

    @classmethod
    def _make(cls, tree: _Tree, node: int) -> ExplicitTree:
        state = _new(cls)
        _set(state, "_tree", tree)
        _set(state, "_node", node)
        return state

    @property
    def to_play(self) -> int:
        """0 in a single-agent tree; ``depth % 2`` in a two-player tree."""
        return self._tree.depth[self._node] % 2 if self._tree.two_player else 0

    @property
    def key(self) -> Hashable:
        """``(tree, node id)``; trees built from equal specs compare equal."""
        return (self._tree, self._node)

    def legal_actions(self) -> tuple[Hashable, ...]:
        """The node's actions in spec order; empty at a leaf."""
        return self._tree.actions[self._node]

    def step(self, action: Hashable) -> ExplicitTree:
        """The child reached by ``action``.

        Raises:
            ValueError: the state is a leaf, or ``action`` is not one of its actions.
            TypeError: ``action`` is unhashable.
        """
        tree, node = self._tree, self._node
        if tree.values[node] is not None:
            raise ValueError(f"ExplicitTree: cannot play {action!r} at a leaf ({self!r})")
        try:
            child = tree.child_index[node][action]
        except KeyError:
            raise ValueError(
                f"ExplicitTree: {action!r} is not an action here; legal actions are "
                f"{list(tree.actions[node])!r}"
            ) from None
        except TypeError:
            raise TypeError(
                f"ExplicitTree action must be hashable, got {type(action).__name__}"
            ) from None
        return self._make(tree, child)

    def is_terminal(self) -> bool:
        return self._tree.values[self._node] is not None

    def terminal_value(self) -> float | None:
        """The leaf's value for ``to_play``; ``None`` at an inner node."""
        return self._tree.values[self._node]

    def minimax_value(self) -> float:
        """Exact value of this state under optimal play, from the view of ``to_play``.

        The max over children for single-agent trees; negamax (the max of the negated child
        values) for two-player trees. Computed once per tree, without recursion.
        """
        return self._tree.minimax[self._node]

    def best_actions(self) -> tuple[Hashable, ...]:
        """The actions here whose children achieve :meth:`minimax_value`; empty at a leaf."""
        tree, node = self._tree, self._node
        sign = -1.0 if tree.two_player else 1.0
        best = tree.minimax[node]
        return tuple(
            a
            for a, c in zip(tree.actions[node], tree.children[node], strict=True)
            if sign * tree.minimax[c] == best
        )

    @property
    def depth(self) -> int:
        """Steps from the root."""
        return self._tree.depth[self._node]

    @property
    def two_player(self) -> bool:
        return self._tree.two_player

    @property
    def num_nodes(self) -> int:
        """Nodes in the whole tree, leaves included."""
        return len(self._tree.values)

    @property
    def path(self) -> tuple[Hashable, ...]:
        """The actions from the root to this state."""
        tree, node = self._tree, self._node
        steps: list[Hashable] = []
        while node > 0:
            parent = tree.parent[node]
            steps.append(tree.actions[parent][tree.children[parent].index(node)])
            node = parent
        return tuple(reversed(steps))

    def __repr__(self) -> str:
        kind = "two-player" if self._tree.two_player else "single-agent"
        return f"<ExplicitTree {kind} node {self._node} path={list(self.path)!r}>"

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self)._make, (self._tree, self._node))
