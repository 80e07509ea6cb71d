"""Batched AlphaZero PUCT search over B trees at once, held as numpy arrays.

Algorithm: the PUCT Monte Carlo tree search of AlphaGo Zero and AlphaZero (Silver et al.,
"Mastering the game of Go without human knowledge", Nature 2017; "A general reinforcement
learning algorithm that masters chess, shogi and Go through self-play", Science 2018), with
Dirichlet noise on the root priors and, optionally, AlphaZero's growing exploration constant
``c(s) = log((1 + N(s) + c_base) / c_base) + c_puct``. Each child is scored

    Q(s, a) + (c(s) * sqrt(N(s))) * (P(s, a) / (1 + N(s, a)))

(evaluated in exactly that order) and the highest score wins, the lowest action index on ties.
``Q(s, a)`` is the mean backed-up value of the child for the player to move at ``s``; an
unvisited legal child uses ``fpu`` instead. ``N(s)`` counts the node's own evaluation plus its
children's visits (``1 + sum_a N(s, a)``), so priors matter from a node's first selection on.

Layout: the B trees are a struct of arrays, after DeepMind's mctx (``mctx/_src/tree.py``):
``num_simulations + 1`` nodes are preallocated per tree, node ``i`` is born in simulation ``i``
(node 0 is the root), visit counts and value sums are ``[B, N]`` arrays, and the priors and
legal actions of node ``n``'s children are row ``n`` of ``[B, N, A]`` arrays. Unlike mctx, a
child's visits and value sum are kept once, on the child node (``[B, N, A]`` views are built on
request), and the ``[B, N, A]`` rows are stored node-major (``[N, B, A]``, exposed as ``[B, N,
A]`` views) so that the rows of the nodes born in one simulation are one contiguous block.
Selection scores come from two ``[N * B, A]`` caches, ``Q`` and ``P / (1 + N(s, a))``, updated
at the touched entries during backup, so one level of selection is a multiply-add and an
argmax. Every simulation descends all B trees together level by level with flat fancy indexing
(a tree that has reached its leaf stops descending), calls the user's ``recurrent_fn`` once for
the whole batch, and backs the leaf values up level by level for all trees at once, along the
recorded path, without recursion.

Value sign: values are for the player to move at the node they describe (``docs/concepts.md``).
With ``two_player=True`` (zero-sum, players alternate every ply) the backup negates the value
at each level, so each child's statistics hold the value for the player choosing it; with
``two_player=False`` (one agent) values pass up unchanged. This array backup is the batched
counterpart of :func:`treesearch.backup.backup_path` and follows the same rule.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar, NamedTuple

import numpy as np

from ..backup import alternate
from ._common import check_int, check_rng

__all__ = ["BatchedMCTS", "BatchedSearchResult", "BatchedTree", "RecurrentFn", "RecurrentOutput"]

_log = logging.getLogger("treesearch.search")

# Scratch workspaces a BatchedMCTS keeps between searches (one per recent shape).
_KEPT_WORKSPACES = 2


class RecurrentOutput(NamedTuple):
    """What ``recurrent_fn`` returns for the B nodes created in one simulation.

    A plain tuple ``(priors, values)``, ``(priors, values, terminal)`` or
    ``(priors, values, terminal, legal_mask)`` works as well.

    Attributes:
        priors: `[B, A]` non-negative, finite prior weights of the new nodes' actions; they are
            masked to the legal actions and renormalised (a row with no weight on a legal
            action becomes uniform over them, with a logged warning). Ignored for terminal
            nodes.
        values: `[B]` finite value of each new node for its player to move (for a terminal
            node, the outcome: -1.0 when the player to move has lost).
        terminal: `[B]` bool, or None (no terminal nodes). A terminal node is never expanded;
            a later simulation that reaches it backs up its value again.
        legal_mask: `[B, A]` bool, or None (every action legal). Illegal actions are never
            selected. A non-terminal node needs at least one legal action.
    """

    priors: np.ndarray
    values: np.ndarray
    terminal: np.ndarray | None = None
    legal_mask: np.ndarray | None = None


RecurrentFn = Callable[[np.ndarray, np.ndarray, int], "RecurrentOutput | tuple[np.ndarray, ...]"]
"""``recurrent_fn(parents, actions, node)``, called once per simulation for the whole batch.

``parents`` `[B]` (int) and ``actions`` `[B]` (int): tree ``b`` creates its node ``node`` by
taking ``actions[b]`` in its node ``parents[b]``. ``node`` (an int) is the simulation number,
the same for every tree, so a stateful caller can keep ``states[b][node] =
step(states[b][parents[b]], actions[b])``. A tree whose path ended at a terminal node it already
has does not grow in this simulation: its entry repeats the parent and action that led to that
terminal node, and what is returned for it is ignored.
"""


@dataclass(frozen=True, eq=False)
class BatchedTree:
    """The B search trees as arrays (mctx's ``Tree`` layout; `N` = ``num_simulations + 1``).

    The array fields are views of node-major storage: ``[B, N, ...]`` shaped, not C-contiguous.
    Node ``n`` of tree ``b`` exists when ``n == 0`` or ``parents[b, n] != NO_PARENT`` (a tree
    whose path ended at a terminal node it already had in simulation ``n`` has no node ``n``).
    The statistics of a child are those of its node: ``children_visits[b, n, a]`` is
    ``node_visits`` of the node action ``a`` leads to (0 if none); the ``children_*``
    properties build those ``[B, N, A]`` arrays on request.
    """

    ROOT_INDEX: ClassVar[int] = 0
    NO_PARENT: ClassVar[int] = -1
    UNVISITED: ClassVar[int] = -1

    node_visits: np.ndarray  # [B, N] int32: the node's own evaluation + every visit below it
    value_sums: np.ndarray  # [B, N] float64: every value backed up through the node (its own
    # evaluation included), for the player to move at its parent; the root's for its own player
    raw_values: np.ndarray  # [B, N] float64: the value recurrent_fn gave the node
    parents: np.ndarray  # [B, N] int32, NO_PARENT for the root and for unused nodes
    action_from_parent: np.ndarray  # [B, N] int32, NO_PARENT for the root and unused nodes
    terminal: np.ndarray  # [B, N] bool
    children_priors: np.ndarray  # [B, N, A] float64: the priors PUCT used (root: with noise)
    legal_mask: np.ndarray  # [B, N, A] bool (all False for terminal and unused nodes)
    two_player: bool  # values were negated at each level of the backup

    @property
    def num_actions(self) -> int:
        return int(self.children_priors.shape[-1])

    @property
    def num_simulations(self) -> int:
        return int(self.node_visits.shape[-1]) - 1

    @property
    def exists(self) -> np.ndarray:
        """`[B, N]` bool: which node slots hold a node."""
        out = self.parents != self.NO_PARENT
        out[:, self.ROOT_INDEX] = True
        return out

    @property
    def children_index(self) -> np.ndarray:
        """`[B, N, A]` int32: the node each action leads to, ``UNVISITED`` if none yet."""
        batch, nodes = self.parents.shape
        out = np.full((batch, nodes, self.num_actions), self.UNVISITED, dtype=np.int32)
        tree, node = np.nonzero(self.parents != self.NO_PARENT)
        out[tree, self.parents[tree, node], self.action_from_parent[tree, node]] = node
        return out

    @property
    def children_visits(self) -> np.ndarray:
        """`[B, N, A]` int32: visits of each child (0 for actions never taken)."""
        return self._by_child(self.node_visits, 0)

    @property
    def children_value_sums(self) -> np.ndarray:
        """`[B, N, A]` float64: value sums of each child for the player to move at the parent
        (0 for actions never taken)."""
        return self._by_child(self.value_sums, 0.0)

    @property
    def children_values(self) -> np.ndarray:
        """`[B, N, A]` mean value of each child for the player to move at the parent; NaN for
        actions never taken."""
        return _mean(self.children_value_sums, self.children_visits)

    @property
    def node_values(self) -> np.ndarray:
        """`[B, N]` mean of the node's own value and every value backed up through it, for the
        player to move at the node; NaN for unused nodes."""
        sums = self.value_sums
        if self.two_player:
            sums = -sums
            sums[:, self.ROOT_INDEX] = self.value_sums[:, self.ROOT_INDEX]
        return _mean(sums, self.node_visits)

    def _by_child(self, node_stat: np.ndarray, missing: float) -> np.ndarray:
        index = self.children_index
        taken = index >= 0
        tree = np.arange(index.shape[0])[:, None, None]
        return np.where(taken, node_stat[tree, np.where(taken, index, 0)], missing)


@dataclass(frozen=True, eq=False)
class BatchedSearchResult:
    """The outcome of :meth:`BatchedMCTS.search` for B roots."""

    visit_counts: np.ndarray  # [B, A] int32: visits of each root action
    q_values: np.ndarray  # [B, A] float64: mean value per root action for the root's player
    # (NaN for actions never taken)
    root_values: np.ndarray  # [B] float64: mean of the root value and all backed-up values
    priors: np.ndarray  # [B, A] float64: the root priors the search used (after the noise)
    tree: BatchedTree

    @property
    def visit_probs(self) -> np.ndarray:
        """`[B, A]` visit counts normalised per root (the usual policy training target)."""
        counts = self.visit_counts.astype(np.float64)
        return counts / counts.sum(axis=1, keepdims=True)


class _Workspace:
    """Scratch arrays of one search, reused by later searches of the same shape so that their
    memory is not faulted in afresh each time (at B=256, N=65, A=225 that is 75 MB)."""

    def __init__(self, rows: int, batch: int, num_actions: int) -> None:
        self.shape = (rows, batch, num_actions)
        # Selection caches, kept equal to the formula's two terms: q is the child's mean value
        # for the parent's player (fpu when unvisited, -inf when illegal), scaled_prior is
        # P / (1 + N(s, a)). Rows are written when their node is created, before any read.
        self.q = np.empty((rows, num_actions))
        self.scaled_prior = np.empty((rows, num_actions))
        # The child node of each action, 0 (the root, nobody's child) for none. All zero
        # between searches: a search clears the entries it set.
        self.children = np.zeros((rows, num_actions), dtype=np.int32)
        self.scores = np.empty((batch, num_actions))
        self.flat_q = self.q.reshape(-1)
        self.flat_scaled_prior = self.scaled_prior.reshape(-1)
        self.flat_children = self.children.reshape(-1)


def _mean(total: np.ndarray, count: np.ndarray) -> np.ndarray:
    out = np.full(total.shape, np.nan)
    np.divide(total, count, out=out, where=count > 0)
    return out


def _finite_number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{name} must be finite, got {number}")
    return number


def _as_real_array(name: str, value: object, shape: tuple[int, ...]) -> np.ndarray:
    """``value`` as a float64 array of ``shape`` (no copy when it already is one)."""
    array = np.asarray(value)
    if array.dtype == np.bool_ or not (
        np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)
    ):
        raise TypeError(f"{name} must hold real numbers, got dtype {array.dtype}")
    if array.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {array.shape}")
    return array.astype(np.float64, copy=False)


def _as_bool_array(name: str, value: object, shape: tuple[int, ...]) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype != np.bool_:
        raise TypeError(f"{name} must be a bool array, got dtype {array.dtype}")
    if array.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {array.shape}")
    return array


def _check_priors(name: str, priors: np.ndarray) -> None:
    # min/max propagate NaN, so these two reductions catch NaN, negative and infinite entries.
    if priors.size and not (priors.min() >= 0.0 and priors.max() < np.inf):
        bad = np.argwhere(~(np.isfinite(priors) & (priors >= 0.0)))[0]
        raise ValueError(
            f"{name} must be finite and >= 0; entry {tuple(int(i) for i in bad)} is "
            f"{priors[tuple(bad)]}"
        )


def _check_values(name: str, values: np.ndarray) -> None:
    if not np.isfinite(values).all():
        bad = int(np.flatnonzero(~np.isfinite(values))[0])
        raise ValueError(f"{name} must be finite; entry {bad} is {values[bad]}")


@dataclass(frozen=True, kw_only=True)
class BatchedMCTS:
    """AlphaZero PUCT search over a batch of B trees, vectorised with numpy.

    Args:
        c_puct: exploration constant (``c_init`` when ``c_base`` is set); >= 0.
        c_base: None for a constant ``c_puct``, else AlphaZero's ``c_base`` (19652 in the
            paper): ``c(s) = log((1 + N(s) + c_base) / c_base) + c_puct``.
        fpu: first-play urgency, the Q an unvisited legal child is scored with (default 0).
        dirichlet_alpha: None for no root noise, else the concentration of the Dirichlet noise
            mixed into the root priors: ``(1 - eps) * P + eps * Dir(alpha)`` over the legal
            actions, drawn once per search from the ``rng`` given to :meth:`search`.
        dirichlet_epsilon: the noise fraction ``eps`` in [0, 1].
        two_player: True for two-player zero-sum games where the player to move alternates
            every ply (values are negated at each level of the backup); False for one agent.

    An instance keeps the scratch arrays of its last searches (the selection caches and the
    children index, about 20 bytes x B x N x A) and reuses them for the next search of the
    same shape, so their memory is not faulted in again each time. Searches never share a
    scratch set, so one instance may serve several threads.
    """

    c_puct: float = 1.25
    c_base: float | None = None
    fpu: float = 0.0
    dirichlet_alpha: float | None = None
    dirichlet_epsilon: float = 0.25
    two_player: bool = True
    # Scratch arrays kept between searches (see _Workspace); not part of the configuration.
    _workspaces: list[_Workspace] = field(
        default_factory=list, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if _finite_number("c_puct", self.c_puct) < 0:
            raise ValueError(f"c_puct must be >= 0, got {self.c_puct}")
        if self.c_base is not None and _finite_number("c_base", self.c_base) <= 0:
            raise ValueError(f"c_base must be > 0 or None, got {self.c_base}")
        _finite_number("fpu", self.fpu)
        if self.dirichlet_alpha is not None and (
            _finite_number("dirichlet_alpha", self.dirichlet_alpha) <= 0
        ):
            raise ValueError(f"dirichlet_alpha must be > 0 or None, got {self.dirichlet_alpha}")
        if not 0.0 <= _finite_number("dirichlet_epsilon", self.dirichlet_epsilon) <= 1.0:
            raise ValueError(f"dirichlet_epsilon must be in [0, 1], got {self.dirichlet_epsilon}")
        if not isinstance(self.two_player, (bool, np.bool_)):
            raise TypeError(f"two_player must be a bool, got {type(self.two_player).__name__}")

    def search(
        self,
        root_priors: np.ndarray,
        root_values: np.ndarray,
        recurrent_fn: RecurrentFn,
        num_simulations: int,
        *,
        rng: np.random.Generator,
        legal_mask: np.ndarray | None = None,
    ) -> BatchedSearchResult:
        """Run ``num_simulations`` simulations in each of the B trees.

        Args:
            root_priors: `[B, A]` non-negative prior weights of the root actions (renormalised
                over the legal actions).
            root_values: `[B]` value of each root for its player to move.
            recurrent_fn: ``recurrent_fn(parents, actions, node) -> RecurrentOutput``, called
                once per simulation for the whole batch (see :data:`RecurrentFn`).
            num_simulations: simulations per tree (>= 1); each adds at most one node per tree.
            rng: the generator for the root noise (unused without ``dirichlet_alpha``).
            legal_mask: `[B, A]` bool, the legal root actions (None: all legal); each root
                needs at least one.

        Returns:
            A :class:`BatchedSearchResult`: root visit counts `[B, A]` (summing to
            ``num_simulations`` per root), root Q values, root values, and the trees.
        """
        rng = check_rng(rng)
        num_simulations = check_int("num_simulations", num_simulations)
        if not callable(recurrent_fn):
            raise TypeError(f"recurrent_fn must be callable, got {type(recurrent_fn).__name__}")
        priors = np.asarray(root_priors)
        if priors.ndim != 2 or priors.shape[0] < 1 or priors.shape[1] < 1:
            raise ValueError(
                f"root_priors must have shape [B, A] with B, A >= 1, got {priors.shape}"
            )
        batch, num_actions = priors.shape
        priors = _as_real_array("root_priors", priors, (batch, num_actions))
        values = _as_real_array("root_values", root_values, (batch,))
        _check_priors("root_priors", priors)
        _check_values("root_values", values)
        if legal_mask is not None:
            legal_mask = _as_bool_array("legal_mask", legal_mask, (batch, num_actions))
            if not legal_mask.any(axis=1).all():
                bad = int(np.flatnonzero(~legal_mask.any(axis=1))[0])
                raise ValueError(f"legal_mask: root {bad} has no legal action")
        rows = (num_simulations + 1) * batch
        workspace = self._take_workspace((rows, batch, num_actions))
        search = _Search(self, workspace, num_simulations, recurrent_fn)
        result = search.run(priors, values, legal_mask, rng)
        # Only a search that finished has cleared its scratch; one that raised drops it.
        self._workspaces.append(workspace)
        del self._workspaces[:-_KEPT_WORKSPACES]
        return result

    def _take_workspace(self, shape: tuple[int, int, int]) -> _Workspace:
        for workspace in list(self._workspaces):
            if workspace.shape == shape:
                try:
                    # list.remove is atomic: two threads never get the same workspace.
                    self._workspaces.remove(workspace)
                except ValueError:
                    continue
                return workspace
        return _Workspace(*shape)


class _Search:
    """The arrays of one batched search and its three phases (select, expand, backup).

    Storage is node-major: row ``r = node * B + b`` holds node ``node`` of tree ``b``, and
    flat index ``r * A + a`` its action ``a``. Per-node statistics are ``[N * B]`` vectors.
    """

    def __init__(
        self,
        config: BatchedMCTS,
        workspace: _Workspace,
        num_simulations: int,
        recurrent_fn: RecurrentFn,
    ) -> None:
        rows, batch, num_actions = workspace.shape
        self.config = config
        self.work = workspace
        self.batch = batch
        self.num_actions = num_actions
        self.num_nodes = num_simulations + 1
        self.recurrent_fn = recurrent_fn
        self.c_puct = float(config.c_puct)
        self.c_base = None if config.c_base is None else float(config.c_base)
        self.fpu = float(config.fpu)
        self.two_player = bool(config.two_player)
        self.warned_zero_priors = False
        self.node_visits = np.zeros(rows, dtype=np.int32)
        self.value_sums = np.zeros(rows)
        self.raw_values = np.zeros(rows)
        self.parents = np.full(rows, BatchedTree.NO_PARENT, dtype=np.int32)
        self.action_from_parent = np.full(rows, BatchedTree.NO_PARENT, dtype=np.int32)
        self.terminal = np.zeros(rows, dtype=np.bool_)
        self.priors = np.zeros((rows, num_actions))
        self.flat_priors = self.priors.reshape(-1)
        self.legal = np.zeros((rows, num_actions), dtype=np.bool_)
        self.trees = np.arange(batch)

    # ------------------------------------------------------------------------------ phases

    def run(
        self,
        priors: np.ndarray,
        values: np.ndarray,
        legal_mask: np.ndarray | None,
        rng: np.random.Generator,
    ) -> BatchedSearchResult:
        root = slice(0, self.batch)
        priors = self.normalise(priors, legal_mask, "root_priors")
        alpha = self.config.dirichlet_alpha
        if alpha is not None and self.config.dirichlet_epsilon > 0:
            priors = self.add_noise(priors, legal_mask, float(alpha), rng)
        self.write_nodes(root, priors, legal_mask)
        self.raw_values[root] = values
        self.value_sums[root] = values
        self.node_visits[root] = 1
        for node in range(1, self.num_nodes):
            self.simulate(node)
        return self.result()

    def simulate(self, node: int) -> None:
        batch, num_actions = self.batch, self.num_actions
        flat_children = self.work.flat_children
        # Descend all trees together; every one starts at its root (rows 0..B-1).
        active = self.trees
        flat = active * num_actions + self.select(slice(0, batch), self.node_visits[:batch])
        child = flat_children[flat]
        # An unexpanded action (child 0) leads to the node this simulation creates.
        child_rows = np.where(child > 0, child, node) * batch + active
        path = [(flat, child_rows, active)]
        leaf_flat, leaf_child = flat, child
        depth = np.ones(batch, dtype=np.int64)
        while True:
            going = (child > 0) & ~self.terminal[child_rows]
            if not going.any():
                break
            if len(path) == 1:  # first level below the roots: stop sharing level 0's arrays
                leaf_flat, leaf_child = leaf_flat.copy(), leaf_child.copy()
            if going.all():
                rows = child_rows
            else:
                active, rows = active[going], child_rows[going]
            depth[active] += 1
            flat = rows * num_actions + self.select(rows, self.node_visits[rows])
            child = flat_children[flat]
            child_rows = np.where(child > 0, child, node) * batch + active
            path.append((flat, child_rows, active))
            leaf_flat[active] = flat
            leaf_child[active] = child
        values = self.expand(node, leaf_flat, leaf_child)
        self.backup(path, values, depth)

    def select(self, rows: slice | np.ndarray, parent_visits: np.ndarray) -> np.ndarray:
        """The PUCT choice (first maximum) at the nodes in ``rows``, one per tree."""
        work = self.work
        n = parent_visits.astype(np.float64)
        coef = np.sqrt(n)
        if self.c_base is None:
            coef *= self.c_puct
        else:
            coef *= np.log((1.0 + n + self.c_base) / self.c_base) + self.c_puct
        if isinstance(rows, slice):
            scores = work.scores
            np.multiply(work.scaled_prior[rows], coef[:, None], out=scores)
            scores += work.q[rows]
        else:
            scores = work.scaled_prior[rows]
            scores *= coef[:, None]
            scores += work.q[rows]
        return scores.argmax(axis=1)

    def expand(self, node: int, leaf_flat: np.ndarray, leaf_child: np.ndarray) -> np.ndarray:
        """Create node ``node`` in every tree whose path ended at an unexpanded action;
        return each tree's leaf value (for the player to move at the leaf)."""
        batch, num_actions = self.batch, self.num_actions
        leaf_rows = leaf_flat // num_actions
        parents = (leaf_rows // batch).astype(np.int32)
        actions = (leaf_flat - leaf_rows * num_actions).astype(np.int32)
        try:
            output = self.recurrent_fn(parents, actions, node)
        except Exception as exc:
            if hasattr(exc, "add_note"):
                exc.add_note(
                    f"treesearch: raised in recurrent_fn(parents, actions, node={node}) "
                    f"(simulation {node} of {self.num_nodes - 1}, batch of {batch})"
                )
            raise
        priors, values, terminal, legal = self.unpack(output, node)
        growing = leaf_child == 0
        leaf_values = values
        grown: slice | np.ndarray
        grown_rows: slice | np.ndarray
        if growing.all():
            grown, grown_rows = slice(None), slice(node * batch, (node + 1) * batch)
        else:
            # Trees that reached a terminal node they already had back up its stored value.
            terminal_rows = leaf_child * batch + self.trees
            leaf_values = np.where(growing, values, self.raw_values[terminal_rows])
            grown = np.flatnonzero(growing)
            grown_rows = node * batch + grown
        self.work.flat_children[leaf_flat[grown]] = node
        self.parents[grown_rows] = parents[grown]
        self.action_from_parent[grown_rows] = actions[grown]
        self.raw_values[grown_rows] = values[grown]
        opened, opened_rows = grown, grown_rows
        if terminal is not None:
            self.terminal[grown_rows] = terminal[grown]
            opened = np.flatnonzero(growing & ~terminal)
            opened_rows = node * batch + opened
            if not opened.size:
                return leaf_values
        node_priors = priors[opened]
        node_legal = None if legal is None else legal[opened]
        if node_legal is not None and not node_legal.any(axis=1).all():
            bad = np.flatnonzero(~node_legal.any(axis=1))[0]
            tree = int(self.trees[opened][bad])
            raise ValueError(
                f"recurrent_fn: node {node} of tree {tree} is not terminal but has no legal action"
            )
        _check_priors(f"recurrent_fn priors (node {node})", node_priors)
        # A block of new rows is normalised straight into the tree's storage.
        block = isinstance(opened_rows, slice)
        node_priors = self.normalise(
            node_priors,
            node_legal,
            f"recurrent_fn (node {node})",
            out=self.priors[opened_rows] if block else None,
        )
        self.write_nodes(opened_rows, node_priors, node_legal, stored=block)
        return leaf_values

    def backup(
        self,
        path: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
        leaf_values: np.ndarray,
        depth: np.ndarray,
    ) -> None:
        """Add one visit and the leaf value along each tree's path, for all trees at once.

        The value for the player to move at depth ``d`` is ``leaf_value * (-1) ** (depth -
        d)`` in two-player games: fold the leaf's parity in once, then negate on odd levels.
        Each level touches one node per tree, so the fancy-indexed updates never collide.
        """
        two_player = self.two_player
        base = alternate(leaf_values, depth, two_player=two_player)  # for the roots' player
        root = slice(0, self.batch)
        self.node_visits[root] += 1
        self.value_sums[root] += base
        flat_q, flat_scaled_prior = self.work.flat_q, self.work.flat_scaled_prior
        node_visits, value_sums = self.node_visits, self.value_sums
        for level, (flat, child_rows, trees) in enumerate(path):
            value = alternate(
                base if trees is self.trees else base[trees], level, two_player=two_player
            )
            visits = node_visits[child_rows] + 1
            node_visits[child_rows] = visits
            sums = value_sums[child_rows] + value
            value_sums[child_rows] = sums
            flat_q[flat] = sums / visits
            flat_scaled_prior[flat] = self.flat_priors[flat] / (1 + visits)

    # ------------------------------------------------------------------------------ helpers

    def unpack(
        self, output: object, node: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
        batch, num_actions = self.batch, self.num_actions
        if not isinstance(output, tuple) or not 2 <= len(output) <= 4:
            raise TypeError(
                "recurrent_fn must return RecurrentOutput(priors, values, terminal, "
                f"legal_mask) or a tuple of 2 to 4 arrays, got {type(output).__name__}"
            )
        what = f"recurrent_fn (node {node})"
        priors = _as_real_array(f"{what} priors", output[0], (batch, num_actions))
        values = _as_real_array(f"{what} values", output[1], (batch,))
        _check_values(f"{what} values", values)
        terminal = output[2] if len(output) > 2 else None
        legal = output[3] if len(output) > 3 else None
        if terminal is not None:
            terminal = _as_bool_array(f"{what} terminal", terminal, (batch,))
            if not terminal.any():
                terminal = None
        if legal is not None:
            legal = _as_bool_array(f"{what} legal_mask", legal, (batch, num_actions))
        return priors, values, terminal, legal

    def normalise(
        self,
        priors: np.ndarray,
        legal: np.ndarray | None,
        what: str,
        out: np.ndarray | None = None,
    ) -> np.ndarray:
        """Priors masked to the legal actions, summing to 1 per row, in ``out`` (or a new
        array); ``priors`` is left unchanged."""
        if legal is not None:
            priors = priors * legal
        totals = priors.sum(axis=1, keepdims=True)
        empty = totals[:, 0] == 0.0
        if empty.any():
            if not self.warned_zero_priors:
                _log.warning(
                    "%s: %d row(s) give no prior weight to any legal action; using uniform "
                    "priors over the legal actions there",
                    what,
                    int(empty.sum()),
                )
                self.warned_zero_priors = True
            priors = priors.copy()
            priors[empty] = 1.0 if legal is None else legal[empty]
            totals = priors.sum(axis=1, keepdims=True)
        return np.divide(priors, totals, out=out)

    def add_noise(
        self,
        priors: np.ndarray,
        legal: np.ndarray | None,
        alpha: float,
        rng: np.random.Generator,
    ) -> np.ndarray:
        """``(1 - eps) * P + eps * Dir(alpha)`` over each root's legal actions."""
        noise = rng.standard_gamma(alpha, size=priors.shape)
        if legal is not None:
            noise *= legal
        totals = noise.sum(axis=1, keepdims=True)
        # Tiny alphas can underflow every draw of a row to 0: fall back to uniform there.
        underflow = totals[:, 0] == 0.0
        if underflow.any():
            noise[underflow] = 1.0 if legal is None else legal[underflow]
            totals = noise.sum(axis=1, keepdims=True)
        eps = float(self.config.dirichlet_epsilon)
        return (1.0 - eps) * priors + eps * (noise / totals)

    def write_nodes(
        self,
        rows: slice | np.ndarray,
        priors: np.ndarray,
        legal: np.ndarray | None,
        *,
        stored: bool = False,
    ) -> None:
        """Fill the child arrays of freshly created, non-terminal nodes (``stored``: the
        priors are already in place)."""
        work = self.work
        if not stored:
            self.priors[rows] = priors
        work.scaled_prior[rows] = priors  # P / (1 + 0)
        if legal is None:
            self.legal[rows] = True
            work.q[rows] = self.fpu
        else:
            self.legal[rows] = legal
            work.q[rows] = np.where(legal, self.fpu, -np.inf)

    def result(self) -> BatchedSearchResult:
        batch, nodes = self.batch, self.num_nodes
        root = slice(0, batch)
        children = self.work.children[root]
        taken = children > 0
        child_rows = children * batch + self.trees[:, None]
        visits = np.where(taken, self.node_visits[child_rows], 0).astype(np.int32)
        sums = np.where(taken, self.value_sums[child_rows], 0.0)
        # Leave the scratch children index all zero for the next search.
        made = np.flatnonzero(self.parents != BatchedTree.NO_PARENT)
        parent_rows = self.parents[made] * batch + made % batch
        self.work.flat_children[parent_rows * self.num_actions + self.action_from_parent[made]] = 0

        def by_tree(array: np.ndarray) -> np.ndarray:
            return array.reshape(nodes, batch, *array.shape[1:]).swapaxes(0, 1)

        tree = BatchedTree(
            node_visits=by_tree(self.node_visits),
            value_sums=by_tree(self.value_sums),
            raw_values=by_tree(self.raw_values),
            parents=by_tree(self.parents),
            action_from_parent=by_tree(self.action_from_parent),
            terminal=by_tree(self.terminal),
            children_priors=by_tree(self.priors),
            legal_mask=by_tree(self.legal),
            two_player=self.two_player,
        )
        return BatchedSearchResult(
            visit_counts=visits,
            q_values=_mean(sums, visits),
            root_values=self.value_sums[root] / self.node_visits[root],
            priors=self.priors[root].copy(),
            tree=tree,
        )
