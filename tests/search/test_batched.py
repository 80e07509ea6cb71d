"""BatchedMCTS against a naive per-tree PUCT loop, hand-computed searches, a solved game, and
bad input."""

from __future__ import annotations

import json
import logging
import math
import sys
import zlib
from dataclasses import dataclass, field

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import treesearch
from treesearch.games.tictactoe import TicTacToe
from treesearch.search.batched import (
    BatchedMCTS,
    BatchedSearchResult,
    BatchedTree,
    RecurrentOutput,
)

# ------------------------------------------------------------------ a deterministic toy world


@dataclass(frozen=True)
class World:
    """Every (tree, action path) gets fixed pseudo-random priors, value, legality and
    terminality, so the batched search and the reference see the same problem."""

    num_actions: int
    seed: int = 0
    terminal_rate: float = 0.15
    illegal_rate: float = 0.3
    zero_prior_rate: float = 0.2

    def eval(self, tree: int, path: tuple[int, ...]) -> tuple[np.ndarray, float, bool, np.ndarray]:
        rng = np.random.default_rng(zlib.crc32(repr((self.seed, tree, path)).encode()))
        priors = rng.random(self.num_actions)
        priors[rng.random(self.num_actions) < self.zero_prior_rate] = 0.0
        legal = rng.random(self.num_actions) >= self.illegal_rate
        legal[rng.integers(self.num_actions)] = True
        value = float(rng.uniform(-1.0, 1.0))
        terminal = bool(path) and bool(rng.random() < self.terminal_rate)
        return priors, value, terminal, legal


@dataclass
class WorldFn:
    """A recurrent_fn over a World: keeps each tree's action path per node id."""

    world: World
    trees: list[int]  # the world's tree id of each batch element
    paths: list[dict[int, tuple[int, ...]]] = field(default_factory=list)
    calls: int = 0

    def __post_init__(self) -> None:
        self.paths = [{0: ()} for _ in self.trees]

    def root(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        evals = [self.world.eval(t, ()) for t in self.trees]
        return (
            np.array([e[0] for e in evals]),
            np.array([e[1] for e in evals]),
            np.array([e[3] for e in evals]),
        )

    def __call__(self, parents: np.ndarray, actions: np.ndarray, node: int) -> RecurrentOutput:
        self.calls += 1
        assert parents.shape == actions.shape == (len(self.trees),)
        evals = []
        for b, tree in enumerate(self.trees):
            path = (*self.paths[b][int(parents[b])], int(actions[b]))
            self.paths[b][node] = path
            evals.append(self.world.eval(tree, path))
        return RecurrentOutput(
            np.array([e[0] for e in evals]),
            np.array([e[1] for e in evals]),
            np.array([e[2] for e in evals]),
            np.array([e[3] for e in evals]),
        )


# ------------------------------------------------------------------ the naive reference


@dataclass
class RefNode:
    raw: float
    terminal: bool
    priors: np.ndarray | None = None  # normalised over legal actions
    legal: np.ndarray | None = None
    children: dict[int, RefNode] = field(default_factory=dict)
    visits: int = 0
    value_sum: float = 0.0  # for the player to move at the parent (the root: its own)


def normalised(priors: np.ndarray, legal: np.ndarray) -> np.ndarray:
    p = priors * legal
    if p.sum() == 0.0:
        p = legal.astype(np.float64)
    return p / p.sum()


def reference_search(
    world: World,
    tree: int,
    num_simulations: int,
    *,
    c_puct: float = 1.25,
    c_base: float | None = None,
    fpu: float = 0.0,
    two_player: bool = True,
    root_priors: np.ndarray | None = None,
) -> tuple[RefNode, dict[tuple[int, ...], RefNode]]:
    """PUCT for one tree, node by node in plain Python, as the module docstring states it."""
    priors, value, _, legal = world.eval(tree, ())
    root = RefNode(raw=value, terminal=False, legal=legal, visits=1, value_sum=value)
    root.priors = normalised(priors, legal) if root_priors is None else root_priors
    nodes: dict[tuple[int, ...], RefNode] = {(): root}
    for _ in range(num_simulations):
        node, path = root, [root]
        actions: tuple[int, ...] = ()
        while True:
            assert node.priors is not None and node.legal is not None
            n = node.visits
            c = c_puct if c_base is None else math.log((1.0 + n + c_base) / c_base) + c_puct
            coef = math.sqrt(n) * c
            best, best_score = -1, -math.inf
            for a in range(world.num_actions):
                if not node.legal[a]:
                    continue
                child = node.children.get(a)
                visits = child.visits if child else 0
                q = child.value_sum / child.visits if child else fpu
                score = q + coef * (node.priors[a] / (1 + visits))
                if score > best_score:
                    best, best_score = a, score
            actions = (*actions, best)
            child = node.children.get(best)
            if child is None:
                p, v, term, lg = world.eval(tree, actions)
                child = RefNode(raw=v, terminal=term)
                if not term:
                    child.priors, child.legal = normalised(p, lg), lg
                node.children[best] = child
                nodes[actions] = child
                path.append(child)
                break
            path.append(child)
            node = child
            if child.terminal:
                break
        value = path[-1].raw
        for member in reversed(path[1:]):
            if two_player:
                value = -value
            member.visits += 1
            member.value_sum += value
        root.visits += 1
        root.value_sum += value
    return root, nodes


def batched_nodes(tree: BatchedTree, b: int) -> dict[tuple[int, ...], int]:
    """Action path -> node id, for tree ``b``."""
    path_of: dict[int, tuple[int, ...]] = {0: ()}
    for n in range(1, tree.num_simulations + 1):
        parent = int(tree.parents[b, n])
        if parent != BatchedTree.NO_PARENT:
            path_of[n] = (*path_of[parent], int(tree.action_from_parent[b, n]))
    return {path: n for n, path in path_of.items()}


def assert_same_as_reference(result: BatchedSearchResult, b: int, ref: dict) -> None:
    tree = result.tree
    mine = batched_nodes(tree, b)
    assert set(mine) == set(ref)
    for path, n in mine.items():
        node = ref[path]
        assert tree.node_visits[b, n] == node.visits, path
        assert tree.value_sums[b, n] == node.value_sum, path  # exact: same sums, same order
        assert tree.terminal[b, n] == node.terminal, path
        assert tree.raw_values[b, n] == node.raw, path
    root = ref[()]
    expected = [
        root.children[a].visits if a in root.children else 0 for a in range(len(root.legal))
    ]
    assert result.visit_counts[b].tolist() == expected


def run_world(
    world: World, trees: list[int], sims: int, **kw
) -> tuple[BatchedSearchResult, WorldFn]:
    fn = WorldFn(world, trees)
    priors, values, legal = fn.root()
    search = BatchedMCTS(**kw)
    result = search.search(priors, values, fn, sims, rng=np.random.default_rng(0), legal_mask=legal)
    return result, fn


# ------------------------------------------------------------------ equality with the reference


@given(
    num_actions=st.integers(1, 6),
    batch=st.integers(1, 4),
    sims=st.integers(1, 24),
    seed=st.integers(0, 10_000),
    two_player=st.booleans(),
    c_base=st.sampled_from([None, 3.0, 19652.0]),
    c_puct=st.sampled_from([0.0, 0.5, 1.25, 4.0]),
    fpu=st.sampled_from([0.0, -0.5, 1.0]),
)
def test_equals_naive_reference(num_actions, batch, sims, seed, two_player, c_base, c_puct, fpu):
    world = World(num_actions, seed)
    kw = dict(c_puct=c_puct, c_base=c_base, fpu=fpu, two_player=two_player)
    result, fn = run_world(world, list(range(batch)), sims, **kw)
    assert fn.calls == sims  # one call per simulation for the whole batch
    for b in range(batch):
        _, ref = reference_search(world, b, sims, **kw)
        assert_same_as_reference(result, b, ref)


def test_reference_comparison_covers_deep_trees_and_terminal_revisits():
    """A fixed case large enough to descend several levels and revisit terminal nodes."""
    world = World(4, seed=7, terminal_rate=0.3)
    result, _ = run_world(world, list(range(8)), 60)
    tree = result.tree
    depth = np.zeros(tree.parents.shape, dtype=int)
    for n in range(1, 61):
        p = tree.parents[:, n]
        depth[:, n] = np.where(p >= 0, depth[np.arange(8), np.maximum(p, 0)] + 1, 0)
    assert depth.max() >= 4
    assert (~tree.exists).any()  # some simulation revisited a terminal node instead of growing
    assert (tree.node_visits[tree.terminal] > 1).any()
    for b in range(8):
        _, ref = reference_search(world, b, 60)
        assert_same_as_reference(result, b, ref)


# ------------------------------------------------------------------ invariants


@given(
    num_actions=st.integers(1, 7),
    batch=st.integers(1, 3),
    sims=st.integers(1, 30),
    seed=st.integers(0, 10_000),
    two_player=st.booleans(),
)
def test_tree_invariants(num_actions, batch, sims, seed, two_player):
    world = World(num_actions, seed)
    result, _ = run_world(world, list(range(batch)), sims, two_player=two_player)
    tree = result.tree
    # Visit conservation: the root's own evaluation plus one visit per simulation.
    assert (tree.node_visits[:, 0] == sims + 1).all()
    assert (result.visit_counts.sum(axis=1) == sims).all()
    # Each expanded node: its own evaluation plus its children's visits; terminal nodes and
    # unused slots have no children.
    children_visits = tree.children_visits
    exists = tree.exists
    open_nodes = exists & ~tree.terminal
    assert (tree.node_visits[open_nodes] == 1 + children_visits[open_nodes].sum(axis=1)).all()
    assert (children_visits[~open_nodes] == 0).all()
    assert (tree.node_visits[~exists] == 0).all()
    # Illegal actions are never taken, anywhere in the tree.
    assert (children_visits[~tree.legal_mask] == 0).all()
    assert (tree.children_index[~tree.legal_mask] == BatchedTree.UNVISITED).all()
    # Values stay within the evaluator's bounds [-1, 1].
    q = result.q_values[~np.isnan(result.q_values)]
    assert (np.abs(q) <= 1.0).all() and (np.abs(result.root_values) <= 1.0).all()
    node_values = tree.node_values[exists]
    assert (np.abs(node_values) <= 1.0 + 1e-12).all()
    # Root priors: a distribution over the legal root actions.
    assert np.allclose(result.priors.sum(axis=1), 1.0)
    assert (result.priors[~tree.legal_mask[:, 0]] == 0).all()
    # The children index and parent pointers agree.
    index = tree.children_index
    for b, n, a in zip(*np.nonzero(index >= 0), strict=True):
        child = index[b, n, a]
        assert tree.parents[b, child] == n and tree.action_from_parent[b, child] == a


def test_root_statistics_agree_with_the_tree():
    world = World(5, seed=3)
    result, _ = run_world(world, [0, 1, 2], 40)
    tree = result.tree
    assert np.array_equal(result.visit_counts, tree.children_visits[:, 0])
    np.testing.assert_array_equal(result.q_values, tree.children_values[:, 0])
    np.testing.assert_array_equal(result.root_values, tree.node_values[:, 0])
    np.testing.assert_array_equal(result.priors, tree.children_priors[:, 0])
    assert np.allclose(result.visit_probs, result.visit_counts / 40)


# ------------------------------------------------------------------ batch independence


def test_each_batch_element_equals_its_search_alone():
    """Different priors, values and masks per element; B = 5 matches five runs with B = 1."""
    world = World(6, seed=11, illegal_rate=0.5)
    together, _ = run_world(world, [0, 1, 2, 3, 4], 30)
    assert len({tuple(m) for m in together.tree.legal_mask[:, 0]}) > 1  # masks differ
    for b in range(5):
        alone, _ = run_world(world, [b], 30)
        assert np.array_equal(together.visit_counts[b], alone.visit_counts[0])
        np.testing.assert_array_equal(together.q_values[b], alone.q_values[0])
        assert together.root_values[b] == alone.root_values[0]
        for name in ("node_visits", "value_sums", "parents", "action_from_parent", "terminal"):
            assert np.array_equal(getattr(together.tree, name)[b], getattr(alone.tree, name)[0])


# ------------------------------------------------------------------ hand-computed searches


def table_fn(values: dict[tuple[int, int], float], num_actions: int):
    """recurrent_fn for B = 1: uniform priors, the value of (parent node, action)."""
    calls = []

    def fn(parents, actions, node):
        calls.append((int(parents[0]), int(actions[0]), node))
        value = values[(int(parents[0]), int(actions[0]))]
        return np.full((1, num_actions), 1.0), np.array([value])

    return fn, calls


def test_three_simulations_by_hand_two_player():
    # Priors [.5, .3, .2], c = 1, fpu = 0; values are for the player to move at the new node.
    # sim 1: N=1, scores = P -> action 0; node 1 worth +.5 to its mover, -.5 to the root.
    # sim 2: N=2, coef sqrt 2: a0 -.5 + 1.414 * .5 / 2 = -.146, a1 1.414 * .3 = .424,
    #        a2 .283 -> action 1; node 2 worth -.4 to its mover, +.4 to the root.
    # sim 3: N=3, coef 1.732: a0 -.5 + .433 = -.067, a1 .4 + .260 = .660, a2 .346 -> into
    #        node 2 (N=1, uniform priors: a tie, the lowest action 0 wins); node 3 worth +.2
    #        to its mover, the root's player, so -.2 for node 2's player.
    fn, calls = table_fn({(0, 0): 0.5, (0, 1): -0.4, (2, 0): 0.2}, 3)
    result = BatchedMCTS(c_puct=1.0).search(
        np.array([[0.5, 0.3, 0.2]]), np.array([0.0]), fn, 3, rng=np.random.default_rng(0)
    )
    assert calls == [(0, 0, 1), (0, 1, 2), (2, 0, 3)]
    tree = result.tree
    assert result.visit_counts.tolist() == [[1, 2, 0]]
    assert tree.node_visits[0].tolist() == [4, 1, 2, 1]
    assert tree.parents[0].tolist() == [-1, 0, 0, 2]
    assert tree.action_from_parent[0].tolist() == [-1, 0, 1, 0]
    np.testing.assert_allclose(tree.value_sums[0], [0.1, -0.5, 0.6, -0.2])
    np.testing.assert_allclose(result.q_values[0], [-0.5, 0.3, np.nan])
    np.testing.assert_allclose(result.root_values, [0.1 / 4])
    np.testing.assert_allclose(tree.node_values[0], [0.025, 0.5, -0.3, 0.2])


def test_three_simulations_by_hand_single_agent():
    # Same priors, no sign flips. sim 1: action 0 (+.5). sim 2: N=2: a0 .5 + .354 = .854 beats
    # a1 .424 -> into node 1 (uniform, tie -> action 0), node 2 worth .1. sim 3: N=3: a0
    # .3 + 1.732 * .5 / 3 = .589, a1 .520, a2 .346 -> node 1 again; there N=2: its a0
    # .1 + 1.414 * (1/3) / 2 = .336, a1 1.414 / 3 = .471 -> action 1, node 3 worth .3.
    fn, calls = table_fn({(0, 0): 0.5, (1, 0): 0.1, (1, 1): 0.3}, 3)
    result = BatchedMCTS(c_puct=1.0, two_player=False).search(
        np.array([[0.5, 0.3, 0.2]]), np.array([0.0]), fn, 3, rng=np.random.default_rng(0)
    )
    assert calls == [(0, 0, 1), (1, 0, 2), (1, 1, 3)]
    assert result.visit_counts.tolist() == [[3, 0, 0]]
    np.testing.assert_allclose(result.q_values[0], [0.3, np.nan, np.nan])
    np.testing.assert_allclose(result.root_values, [0.9 / 4])
    np.testing.assert_allclose(result.tree.node_values[0], [0.225, 0.3, 0.1, 0.3])


def test_growing_exploration_constant_by_hand():
    # Priors [.2, .8], c_puct = .1. Action 1 leads to a node worth +.3 to its mover, so
    # Q(a1) = -.3 for the root's player after simulation 1 (both settings pick a1 first).
    # Simulation 2, N = 2: a0 scores .2 * sqrt2 * c and a1 -.3 + .4 * sqrt2 * c, so a1 wins
    # when c > 1.06. With c_base = 1, c(s) = log((1 + 2 + 1) / 1) + .1 = 1.486: a1 (.541
    # against .420). With the constant c = .1: a0 (.028 against -.243).
    values = {(0, 1): 0.3, (0, 0): 0.0, (1, 0): 0.0, (1, 1): 0.0}

    def run(**kw):
        fn, calls = table_fn(values, 2)
        result = BatchedMCTS(c_puct=0.1, **kw).search(
            np.array([[0.2, 0.8]]), np.array([0.0]), fn, 2, rng=np.random.default_rng(0)
        )
        return result.visit_counts.tolist(), calls

    assert run(c_base=1.0) == ([[0, 2]], [(0, 1, 1), (1, 0, 2)])
    assert run() == ([[1, 1]], [(0, 1, 1), (0, 0, 2)])


def test_fpu_decides_between_a_visited_and_an_unvisited_child():
    # Simulation 1 takes action 1 (prior .9 against .1, both unvisited), whose node is worth
    # -.2 to its mover: Q = +.2 for the root. Simulation 2, N = 2, c = .1: a1 scores
    # .2 + .1 * 1.414 * .9 / 2 = .264 and a0 fpu + .1 * 1.414 * .1 = fpu + .014, so fpu 0
    # goes back into action 1 and fpu .5 tries action 0.
    def run(fpu):
        fn, _ = table_fn({(0, 1): -0.2, (0, 0): 0.0, (1, 0): 0.0, (1, 1): 0.0}, 2)
        result = BatchedMCTS(c_puct=0.1, fpu=fpu).search(
            np.array([[0.1, 0.9]]), np.array([0.0]), fn, 2, rng=np.random.default_rng(0)
        )
        return result.visit_counts.tolist()

    assert run(0.0) == [[0, 2]]
    assert run(0.5) == [[1, 1]]


# ------------------------------------------------------------------ a solved game


class TicTacToeFn:
    """recurrent_fn over B tic-tac-toe positions: uniform priors over legal moves, value 0
    for open positions, the game's terminal value otherwise."""

    def __init__(self, roots: list[TicTacToe]) -> None:
        self.states = [{0: s} for s in roots]

    def evaluate(self, states: list[TicTacToe]) -> RecurrentOutput:
        legal = np.zeros((len(states), 9), dtype=bool)
        values = np.zeros(len(states))
        terminal = np.array([s.is_terminal() for s in states])
        for i, s in enumerate(states):
            legal[i, list(s.legal_actions())] = True
            values[i] = s.terminal_value() if terminal[i] else 0.0
        return RecurrentOutput(np.ones((len(states), 9)), values, terminal, legal)

    def __call__(self, parents, actions, node) -> RecurrentOutput:
        new = []
        for b, tree in enumerate(self.states):
            tree[node] = tree[int(parents[b])].step(int(actions[b]))
            new.append(tree[node])
        return self.evaluate(new)


def test_finds_the_winning_moves_in_a_batch_of_tic_tac_toe_positions():
    boards = [
        "XX. OO. ...",  # X to move completes the top row at 2 (O threatens 5)
        "X.. OX. O..",  # X to move completes the diagonal at 8
        "OX. XO. X..",  # O to move completes the diagonal at 8
    ]
    roots = [TicTacToe.from_string(b) for b in boards]
    fn = TicTacToeFn(roots)
    first = fn.evaluate(roots)
    result = BatchedMCTS(c_puct=1.0).search(
        first.priors,
        first.values,
        fn,
        200,
        rng=np.random.default_rng(0),
        legal_mask=first.legal_mask,
    )
    assert np.argmax(result.visit_counts, axis=1).tolist() == [2, 8, 8]
    # The winning move is worth +1 to the player who makes it, and dominates the visits.
    assert np.allclose(result.q_values[[0, 1, 2], [2, 8, 8]], 1.0)
    assert (result.visit_counts[[0, 1, 2], [2, 8, 8]] > 100).all()
    # Occupied cells are illegal at the root and never visited.
    occupied = np.array([[c != "." for c in "".join(b.split())] for b in boards])
    assert (result.visit_counts[occupied] == 0).all()


# ------------------------------------------------------------------ root noise and seeds


def test_root_noise_is_seeded_and_stays_on_legal_actions():
    world = World(8, seed=5, illegal_rate=0.4)
    fn = WorldFn(world, [0, 1, 2])
    priors, values, legal = fn.root()
    search = BatchedMCTS(dirichlet_alpha=0.3, dirichlet_epsilon=0.25)

    def run(seed):
        return search.search(
            priors,
            values,
            WorldFn(world, [0, 1, 2]),
            25,
            rng=np.random.default_rng(seed),
            legal_mask=legal,
        )

    a, b, c = run(1), run(1), run(2)
    assert np.array_equal(a.priors, b.priors) and np.array_equal(a.visit_counts, b.visit_counts)
    assert not np.array_equal(a.priors, c.priors)
    assert (a.priors[~legal] == 0).all() and np.allclose(a.priors.sum(axis=1), 1.0)
    clean = priors * legal / (priors * legal).sum(axis=1, keepdims=True)
    assert (a.priors >= 0.75 * clean - 1e-12).all()  # (1 - eps) P + eps * noise, noise >= 0
    # With the noisy priors as given, the rest of the search is the reference PUCT.
    for t in range(3):
        _, ref = reference_search(world, t, 25, root_priors=a.priors[t])
        assert_same_as_reference(a, t, ref)


def test_no_noise_means_rng_is_not_used():
    world = World(4, seed=2)
    fn = WorldFn(world, [0])
    priors, values, legal = fn.root()
    rng = np.random.default_rng(3)
    BatchedMCTS().search(priors, values, fn, 5, rng=rng, legal_mask=legal)
    assert rng.random() == np.random.default_rng(3).random()


def test_all_zero_priors_fall_back_to_uniform_with_one_warning(caplog):
    def fn(parents, actions, node):
        return np.zeros((2, 3)), np.zeros(2)

    with caplog.at_level(logging.WARNING, logger="treesearch.search"):
        result = BatchedMCTS().search(
            np.zeros((2, 3)), np.zeros(2), fn, 6, rng=np.random.default_rng(0)
        )
    assert np.allclose(result.priors, 1 / 3)
    assert result.visit_counts.tolist() == [[2, 2, 2], [2, 2, 2]]
    assert len([r for r in caplog.records if "no prior weight" in r.message]) == 1


def test_reused_search_object_gives_the_same_results_as_a_fresh_one():
    """Scratch arrays are kept between searches: results must not depend on what ran before,
    including a search that failed half-way."""
    world = World(5, seed=9)
    search = BatchedMCTS()
    first, _ = run_world(world, [0, 1], 20)

    inner = WorldFn(world, [2, 3])

    def boom(parents, actions, node):
        if node == 4:
            raise RuntimeError("evaluator failed")
        return inner(parents, actions, node)

    p, v, lg = inner.root()
    with pytest.raises(RuntimeError, match="evaluator failed"):
        search.search(p, v, boom, 20, rng=np.random.default_rng(0), legal_mask=lg)
    for trees in ([0, 1], [2, 3], [0, 1]):
        fn = WorldFn(world, trees)
        p, v, lg = fn.root()
        again = search.search(p, v, fn, 20, rng=np.random.default_rng(0), legal_mask=lg)
        fresh, _ = run_world(world, trees, 20)
        assert np.array_equal(again.visit_counts, fresh.visit_counts)
        assert np.array_equal(again.tree.value_sums, fresh.tree.value_sums)
    assert np.array_equal(first.visit_counts, again.visit_counts)


def test_user_error_note_names_the_simulation():
    def fn(parents, actions, node):
        raise KeyError("no such state")

    with pytest.raises(KeyError) as info:
        BatchedMCTS().search(np.ones((2, 3)), np.zeros(2), fn, 3, rng=np.random.default_rng(0))
    assert any("node=1" in note for note in getattr(info.value, "__notes__", ["node=1"]))


def test_inputs_are_not_modified():
    priors, values = np.array([[0.0, 2.0, 1.0]]), np.array([0.5])
    legal = np.array([[True, True, False]])
    out_priors = np.array([[3.0, 1.0, 1.0]])

    def fn(parents, actions, node):
        return out_priors, np.array([0.1])

    BatchedMCTS(dirichlet_alpha=0.5).search(
        priors, values, fn, 4, rng=np.random.default_rng(0), legal_mask=legal
    )
    assert priors.tolist() == [[0.0, 2.0, 1.0]] and values.tolist() == [0.5]
    assert out_priors.tolist() == [[3.0, 1.0, 1.0]] and legal.tolist() == [[True, True, False]]


def test_exported_from_the_package():
    assert treesearch.BatchedMCTS is BatchedMCTS
    assert "BatchedMCTS" in treesearch.__all__


# ------------------------------------------------------------------ bad input


def ok_fn(parents, actions, node):
    return np.ones((2, 3)), np.zeros(2)


def search_with(**overrides):
    args = dict(
        root_priors=np.ones((2, 3)),
        root_values=np.zeros(2),
        recurrent_fn=ok_fn,
        num_simulations=3,
        rng=np.random.default_rng(0),
    )
    args.update(overrides)
    return BatchedMCTS().search(**args)


@pytest.mark.parametrize(
    ("overrides", "error", "match"),
    [
        (dict(root_priors=np.ones(3)), ValueError, r"root_priors must have shape \[B, A\]"),
        (dict(root_priors=np.ones((0, 3))), ValueError, "root_priors must have shape"),
        (dict(root_priors=np.ones((3, 3))), ValueError, r"root_values must have shape \(3,\)"),
        (dict(root_values=np.zeros(3)), ValueError, r"root_values must have shape \(2,\)"),
        (dict(root_priors=np.array([[1, np.nan, 1], [1, 1, 1]])), ValueError, "finite and >= 0"),
        (dict(root_priors=np.array([[1, -1, 1], [1, 1, 1]])), ValueError, r"entry \(0, 1\)"),
        (dict(root_priors=np.array([[1, np.inf, 1], [1, 1, 1]])), ValueError, "finite"),
        (dict(root_priors=np.full((2, 3), "a")), TypeError, "real numbers"),
        (dict(root_priors=np.ones((2, 3), dtype=bool)), TypeError, "real numbers"),
        (dict(root_values=np.array([0.0, np.nan])), ValueError, "root_values must be finite"),
        (dict(legal_mask=np.ones((2, 3))), TypeError, "legal_mask must be a bool array"),
        (dict(legal_mask=np.ones((2, 2), bool)), ValueError, "legal_mask must have shape"),
        (
            dict(legal_mask=np.array([[True, False, False], [False, False, False]])),
            ValueError,
            "root 1 has no legal action",
        ),
        (dict(num_simulations=0), ValueError, "num_simulations must be >= 1"),
        (dict(num_simulations=2.5), TypeError, "num_simulations must be an int"),
        (dict(num_simulations=True), TypeError, "num_simulations must be an int"),
        (dict(rng=0), TypeError, "numpy.random.Generator"),
        (dict(recurrent_fn="f"), TypeError, "recurrent_fn must be callable"),
    ],
)
def test_bad_search_arguments(overrides, error, match):
    with pytest.raises(error, match=match):
        search_with(**overrides)


def returning(*output):
    return lambda parents, actions, node: output


@pytest.mark.parametrize(
    ("fn", "error", "match"),
    [
        (returning(np.ones((2, 3))), TypeError, "tuple of 2 to 4 arrays"),
        (lambda p, a, n: [np.ones((2, 3)), np.zeros(2)], TypeError, "got list"),
        (returning(np.ones((2, 4)), np.zeros(2)), ValueError, r"priors must have shape \(2, 3\)"),
        (returning(np.ones((2, 3)), np.zeros(3)), ValueError, r"values must have shape \(2,\)"),
        (returning(np.full((2, 3), np.nan), np.zeros(2)), ValueError, "node 1.*finite and >= 0"),
        (returning(np.ones((2, 3)), np.array([np.inf, 0])), ValueError, "values must be finite"),
        (
            returning(np.ones((2, 3)), np.zeros(2), np.zeros(2)),
            TypeError,
            "terminal must be a bool",
        ),
        (
            returning(np.ones((2, 3)), np.zeros(2), None, np.zeros((2, 3), bool)),
            ValueError,
            "node 1 of tree 0 is not terminal but has no legal action",
        ),
    ],
)
def test_bad_recurrent_outputs(fn, error, match):
    with pytest.raises(error, match=match):
        search_with(recurrent_fn=fn)


def test_terminal_nodes_may_have_no_legal_action_and_any_priors():
    def fn(parents, actions, node):
        return (
            np.full((2, 3), np.nan),
            np.array([-1.0, 1.0]),
            np.array([True, True]),
            np.zeros((2, 3), bool),
        )

    result = search_with(recurrent_fn=fn, num_simulations=9)
    # Every root action ends the game. In tree 0 the player to move there has lost (Q = +1
    # for the root's player): action 0 is revisited while 1 + 1.25 sqrt(N) / (3 (1 + n0))
    # beats the unvisited 1.25 sqrt(N) / 3, i.e. up to N = 7; at N = 8 action 1 is tried
    # and, also worth +1, taken again. In tree 1 every action loses (Q = -1): the visits
    # spread evenly.
    assert result.visit_counts.tolist() == [[7, 2, 0], [3, 3, 3]]
    np.testing.assert_allclose(result.q_values, [[1.0, 1.0, np.nan], [-1.0, -1.0, -1.0]])
    assert result.tree.exists.sum(axis=1).tolist() == [3, 4]  # revisits add no nodes


@pytest.mark.parametrize(
    ("kw", "error", "match"),
    [
        (dict(c_puct=-1.0), ValueError, "c_puct must be >= 0"),
        (dict(c_puct=math.nan), ValueError, "c_puct must be finite"),
        (dict(c_puct="1"), TypeError, "c_puct must be a number"),
        (dict(c_base=0.0), ValueError, "c_base must be > 0"),
        (dict(fpu=math.inf), ValueError, "fpu must be finite"),
        (dict(fpu=True), TypeError, "fpu must be a number"),
        (dict(dirichlet_alpha=0.0), ValueError, "dirichlet_alpha must be > 0"),
        (dict(dirichlet_epsilon=1.5), ValueError, r"dirichlet_epsilon must be in \[0, 1\]"),
        (dict(two_player=1), TypeError, "two_player must be a bool"),
    ],
)
def test_bad_configuration(kw, error, match):
    with pytest.raises(error, match=match):
        BatchedMCTS(**kw)


def test_configuration_is_keyword_only_and_frozen():
    with pytest.raises(TypeError):
        BatchedMCTS(1.0)  # type: ignore[misc]
    search = BatchedMCTS(c_puct=2.0)
    with pytest.raises(AttributeError):
        search.c_puct = 3.0  # type: ignore[misc]


# ------------------------------------------------------------------ the P3 benchmark script


def load_benchmark():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "batched_vs_mctx.py"
    spec = importlib.util.spec_from_file_location("batched_vs_mctx", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_says_how_to_install_mctx_when_it_is_missing(monkeypatch, capsys):
    bench = load_benchmark()
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")  # main() sets it when unset; keep it local
    monkeypatch.setitem(sys.modules, "mctx", None)  # import mctx -> ImportError
    assert bench.main(["--runs", "1"]) == 2
    assert 'pip install -e ".[mctx]"' in capsys.readouterr().err


@pytest.mark.slow
def test_benchmark_runs_on_small_shapes(monkeypatch, capsys):
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    pytest.importorskip("mctx")
    bench = load_benchmark()
    args = ["--batch", "4", "--actions", "9", "--sims", "8", "--runs", "1", "--json"]
    assert bench.main(args) == 0

    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["ratio"] == report["mctx_seconds"] / report["ours_seconds"]
    for workload in report["workloads"].values():
        assert workload["ours_tree"]["root_visits_per_tree"] == 8
        assert workload["mctx_tree"]["root_visits_per_tree"] == 8
