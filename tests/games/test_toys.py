"""Tests for treesearch.games.toys: exact values checked by hand and by brute force."""

from __future__ import annotations

import importlib.util
import itertools
import math
import os
import pickle
import subprocess
import sys
from collections.abc import Hashable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import treesearch.games
from treesearch.games import Bandit, Chain, DeceptiveTrap, ExplicitTree
from treesearch.interfaces import State


def exact_value(root: Any) -> float:
    """Exact value of ``root`` for its player to move, by full expansion (no keys, no memo).

    Iterative: each frame holds a state, its remaining actions and the best value so far. A
    child's value is negated when the player to move changes, so this is max for single-agent
    trees and negamax for alternating two-player trees.
    """
    if root.is_terminal():
        return root.terminal_value()
    frames: list[list[Any]] = [[root, list(root.legal_actions()), -math.inf]]
    while True:
        state, remaining, best = frames[-1]
        if remaining:
            child = state.step(remaining.pop())
            if child.is_terminal():
                value = child.terminal_value()
                frames[-1][2] = max(best, value if child.to_play == state.to_play else -value)
            else:
                frames.append([child, list(child.legal_actions()), -math.inf])
            continue
        frames.pop()
        if not frames:
            return best
        parent = frames[-1]
        parent[2] = max(parent[2], best if state.to_play == parent[0].to_play else -best)


def all_paths(root: Any) -> list[tuple[tuple[Hashable, ...], float]]:
    """Every (action sequence, leaf value) of the tree below ``root``, iteratively."""
    out: list[tuple[tuple[Hashable, ...], float]] = []
    stack: list[tuple[Any, tuple[Hashable, ...]]] = [(root, ())]
    while stack:
        state, path = stack.pop()
        if state.is_terminal():
            out.append((path, state.terminal_value()))
        else:
            stack.extend((state.step(a), (*path, a)) for a in state.legal_actions())
    return out


def play(state: Any, actions: list[Hashable]) -> Any:
    for a in actions:
        state = state.step(a)
    return state


def test_package_guard_rejects_a_bare_import() -> None:
    init = Path(treesearch.games.__file__)
    spec = importlib.util.spec_from_file_location("games", init)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    with pytest.raises(ImportError, match=r"treesearch\.games"):
        spec.loader.exec_module(module)


# -- Bandit -------------------------------------------------------------------------------------


def test_bandit_values() -> None:
    b = Bandit([0.1, 0.7, -0.2, 0.7])
    assert isinstance(Bandit([0.0]), State)
    assert b.to_play == 0
    assert b.legal_actions() == (0, 1, 2, 3)
    assert not b.is_terminal() and b.terminal_value() is None
    assert [b.step(i).terminal_value() for i in range(4)] == [0.1, 0.7, -0.2, 0.7]
    assert b.step(2).is_terminal() and b.step(2).legal_actions() == ()
    assert b.optimal_action == 1  # the first of the tied best arms
    assert b.optimal_value == 0.7
    assert exact_value(b) == 0.7
    assert b.step(np.int64(1)) == b.step(1)


def test_bandit_errors() -> None:
    b = Bandit([0.0, 1.0])
    with pytest.raises(ValueError, match=r"0\.\.1"):
        b.step(2)
    with pytest.raises(ValueError, match="already"):
        b.step(0).step(1)
    with pytest.raises(TypeError):
        b.step("0")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        b.step(1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Bandit([])
    with pytest.raises(ValueError):
        Bandit([0.0, math.nan])
    with pytest.raises(TypeError):
        Bandit([0.0, "1"])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        Bandit(0.5)  # type: ignore[arg-type]


def test_bandit_keys() -> None:
    assert Bandit([1, 2]) == Bandit((1.0, 2.0))
    assert Bandit([1, 2]) != Bandit([2, 1])
    assert Bandit([1, 2]).step(0) != Bandit([1, 2]).step(1)
    assert Bandit([1, 2]).step(0) != Bandit([1, 2])


# -- Chain --------------------------------------------------------------------------------------


@pytest.mark.parametrize("length", [1, 2, 5, 8])
def test_chain_only_the_all_ones_leaf_pays(length: int) -> None:
    root = Chain(length, reward=2.5)
    paths = all_paths(root)
    assert len(paths) == 2**length
    paying = [(p, v) for p, v in paths if v != 0.0]
    assert paying == [((1,) * length, 2.5)]
    assert exact_value(root) == 2.5 == root.optimal_value
    assert root.optimal_actions() == (1,) * length
    assert play(root, list(root.optimal_actions())).terminal_value() == 2.5


def test_chain_states() -> None:
    root = Chain(3)
    assert root.to_play == 0 and root.legal_actions() == (0, 1)
    assert play(root, [1, 1]).on_path and play(root, [1, 1]).optimal_value == 1.0
    off = play(root, [1, 0])
    assert not off.on_path and off.optimal_value == 0.0 and exact_value(off) == 0.0
    assert off == play(root, [0, 1])  # same depth, both off the path: same future
    assert off != play(root, [1, 1])
    leaf = play(root, [1, 1, 1])
    assert leaf.is_terminal() and leaf.legal_actions() == ()
    with pytest.raises(ValueError, match="done"):
        leaf.step(1)
    with pytest.raises(ValueError, match="0 or 1"):
        root.step(2)
    with pytest.raises(TypeError):
        root.step(True)
    for bad in (0, -3):
        with pytest.raises(ValueError):
            Chain(bad)
    with pytest.raises(ValueError):
        Chain(3, reward=0.0)
    with pytest.raises(TypeError):
        Chain(2.0)  # type: ignore[arg-type]


# -- DeceptiveTrap ------------------------------------------------------------------------------


def _trap_leaf_value(path: tuple[Hashable, ...], lure: float, prize: float) -> float:
    """The leaf values exactly as the docstring defines them."""
    if path[0] == 0:
        return lure
    return prize if all(a == 1 for a in path) else 0.0


@pytest.mark.parametrize("depth", [1, 2, 3, 6])
@pytest.mark.parametrize(("lure", "prize"), [(0.5, 1.0), (0.9, 1.0), (-1.0, 3.0)])
def test_trap_matches_its_definition(depth: int, lure: float, prize: float) -> None:
    root = DeceptiveTrap(depth, lure=lure, prize=prize)
    paths = all_paths(root)
    assert len(paths) == 2**depth
    for path, value in paths:
        assert len(path) == depth
        assert value == _trap_leaf_value(path, lure, prize), path
    assert exact_value(root) == prize == root.optimal_value
    assert exact_value(root.step(1)) == prize
    assert exact_value(root.step(0)) == lure
    assert play(root, list(root.optimal_actions())).terminal_value() == prize
    # Mean of uniform random rollouts = mean over all leaves (every leaf at the same depth).
    assert root.mean_random_value == pytest.approx(sum(v for _, v in paths) / len(paths))
    for first in (0, 1):
        sub = [v for p, v in paths if p[0] == first]
        assert root.step(first).mean_random_value == pytest.approx(sum(sub) / len(sub))


@pytest.mark.parametrize("depth", [3, 4, 8])
def test_trap_fools_random_rollouts(depth: int) -> None:
    root = DeceptiveTrap(depth)
    assert root.step(0).mean_random_value == 0.5
    assert root.step(1).mean_random_value == 1.0 / 2 ** (depth - 1) < 0.5
    assert exact_value(root.step(1)) > exact_value(root.step(0))


def test_trap_states_and_errors() -> None:
    root = DeceptiveTrap(4)
    assert root.region == "root" and root.to_play == 0
    assert play(root, [0, 1]) == play(root, [0, 0])  # anywhere under the lure is alike
    assert play(root, [1, 0]).region == "dead"
    assert play(root, [1, 1]).region == "path"
    assert play(root, [1, 1]) != play(root, [1, 0])
    assert DeceptiveTrap(4) != DeceptiveTrap(5)
    with pytest.raises(ValueError, match="leaf"):
        play(root, [1, 1, 1, 1, 1])
    with pytest.raises(ValueError):
        root.step(-1)
    with pytest.raises(TypeError):
        root.step("1")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        DeceptiveTrap(0)
    with pytest.raises(ValueError):
        DeceptiveTrap(3, lure=1.0, prize=1.0)
    with pytest.raises(ValueError):
        DeceptiveTrap(3, lure=-2.0, prize=-1.0)


# -- ExplicitTree -------------------------------------------------------------------------------


def test_explicit_single_agent() -> None:
    root = ExplicitTree.from_nested({"a": {"c": 1.0, "d": 0.0}, "b": 0.5})
    assert root == ExplicitTree({"a": {"c": 1.0, "d": 0.0}, "b": 0.5})
    assert root.legal_actions() == ("a", "b")
    assert root.step("a").legal_actions() == ("c", "d")
    assert root.to_play == root.step("a").to_play == 0
    assert root.minimax_value() == 1.0 == exact_value(root)
    assert root.best_actions() == ("a",)
    assert root.step("b").terminal_value() == 0.5
    assert root.step("a").step("d").path == ("a", "d")
    assert root.num_nodes == 5


def test_explicit_two_player_by_hand() -> None:
    # Player 0 at the root. Leaf values are for the player to move at the leaf.
    # "b" is a leaf at depth 1 (player 1 to move): 0.5 for player 1, so -0.5 for player 0.
    # Under "a", player 1 chooses between c (1.0 for player 0) and d (0.0): player 1 picks d,
    # so "a" is worth 0.0 and the root is worth max(0.0, -0.5) = 0.0 via "a".
    root = ExplicitTree({"a": {"c": 1.0, "d": 0.0}, "b": 0.5}, two_player=True)
    assert [root.to_play, root.step("a").to_play, root.step("a").step("c").to_play] == [0, 1, 0]
    assert root.minimax_value() == 0.0
    assert root.best_actions() == ("a",)
    assert root.step("a").minimax_value() == 0.0
    assert root.step("a").best_actions() == ("d",)

    # Mixed depths: a leaf at depth 3 is valued by player 1.
    # c (player 0) = max(-0.9, 0.3) = 0.3; b (player 1) = max(-0.3, -0.4) = -0.3;
    # root = max(-0.2, 0.3) = 0.3 via "b".
    root = ExplicitTree({"a": 0.2, "b": {"c": {"e": 0.9, "f": -0.3}, "d": 0.4}}, two_player=True)
    assert root.step("b").step("c").minimax_value() == pytest.approx(0.3)
    assert root.step("b").minimax_value() == pytest.approx(-0.3)
    assert root.minimax_value() == pytest.approx(0.3)
    assert root.best_actions() == ("b",)
    assert root.minimax_value() == exact_value(root)

    # Textbook minimax tree (Russell and Norvig, figure 5.2), leaves at depth 2 for player 0.
    textbook = ExplicitTree([[3, 12, 8], [2, 4, 6], [14, 5, 2]], two_player=True)
    assert textbook.legal_actions() == (0, 1, 2)
    assert textbook.minimax_value() == 3.0
    assert textbook.best_actions() == (0,)
    assert [textbook.step(i).minimax_value() for i in range(3)] == [-3.0, -2.0, -2.0]

    # A win in one for player 0: the leaf is worth -1 to player 1, who is to move there.
    assert ExplicitTree({"win": -1.0, "draw": {"x": 0.0}}, two_player=True).minimax_value() == 1.0


def test_explicit_deep_tree_needs_no_recursion() -> None:
    spec: Any = 1.0
    for _ in range(5000):
        spec = {"next": spec}
    root = ExplicitTree(spec, two_player=True)
    assert root.minimax_value() == 1.0  # leaf at even depth: player 0, who is also at the root
    assert exact_value(root) == 1.0
    odd = ExplicitTree({"x": spec}, two_player=True)
    assert odd.minimax_value() == -1.0
    leaf = play(root, ["next"] * 5000)
    assert leaf.is_terminal() and leaf.depth == 5000 and len(leaf.path) == 5000


def test_explicit_keys_and_errors() -> None:
    spec = {"a": {"c": 1.0, "d": 0.0}, "b": 0.5}
    a, b = ExplicitTree(spec), ExplicitTree(dict(spec))
    assert a == b and hash(a) == hash(b) and a.step("a") == b.step("a")
    assert a != ExplicitTree(spec, two_player=True)
    assert a != ExplicitTree({"a": {"c": 1.0, "d": 0.0}, "b": 0.25})
    assert a.step("a") != a.step("b")
    with pytest.raises(ValueError, match="not an action"):
        a.step("z")
    with pytest.raises(ValueError, match="leaf"):
        a.step("b").step("a")
    with pytest.raises(TypeError):
        a.step(["a"])  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        ExplicitTree({"a": {}})
    with pytest.raises(ValueError):
        ExplicitTree({"a": math.inf})
    with pytest.raises(TypeError):
        ExplicitTree({"a": "1.0"})  # type: ignore[dict-item]
    with pytest.raises(TypeError):
        ExplicitTree({"a": True})  # type: ignore[dict-item]
    cyclic: dict[str, Any] = {"a": 1.0}
    cyclic["b"] = cyclic
    with pytest.raises(ValueError, match="cycle"):
        ExplicitTree(cyclic)
    shared = {"x": 1.0, "y": 2.0}
    assert ExplicitTree({"l": shared, "r": shared}).num_nodes == 7  # reuse is not a cycle


nested_specs = st.recursive(
    st.integers(min_value=-5, max_value=5).map(float),
    lambda children: st.one_of(
        st.lists(children, min_size=1, max_size=3),
        st.dictionaries(st.text("abc", min_size=1, max_size=2), children, min_size=1, max_size=3),
    ),
    max_leaves=20,
)


@settings(deadline=None)
@given(nested_specs, st.booleans())
def test_explicit_minimax_matches_brute_force(spec: Any, two_player: bool) -> None:
    root = ExplicitTree(spec, two_player=two_player)
    assert root.minimax_value() == exact_value(root)
    if not root.is_terminal():
        best = root.best_actions()
        assert best
        sign = -1.0 if two_player else 1.0
        for a in root.legal_actions():
            child_value = sign * exact_value(root.step(a))
            assert (a in best) == (child_value == root.minimax_value())


# -- Properties shared by every toy ------------------------------------------------------------

toy_roots = st.one_of(
    st.lists(st.floats(-10, 10), min_size=1, max_size=5).map(Bandit),
    st.integers(1, 6).map(Chain),
    st.integers(1, 6).map(DeceptiveTrap),
    st.builds(ExplicitTree, nested_specs, two_player=st.booleans()),
)
choices = st.lists(st.integers(min_value=0, max_value=100), max_size=10)


def _walk(root: Any, picks: list[int]) -> list[Any]:
    states = [root]
    for pick in picks:
        legal = states[-1].legal_actions()
        if not legal:
            break
        states.append(states[-1].step(legal[pick % len(legal)]))
    return states


@settings(deadline=None)
@given(toy_roots, choices)
def test_toy_random_play(root: Any, picks: list[int]) -> None:
    states = _walk(root, picks)
    for s in states:
        assert isinstance(s, State)
        if s.is_terminal():
            assert s.legal_actions() == ()
            assert isinstance(s.terminal_value(), float)
            with pytest.raises(ValueError):
                s.step(0)
        else:
            assert len(s.legal_actions()) > 0
            assert s.terminal_value() is None
        assert pickle.loads(pickle.dumps(s)) == s
        assert repr(s)


@settings(deadline=None)
@given(toy_roots, choices)
def test_toy_step_never_mutates(root: Any, picks: list[int]) -> None:
    for s in _walk(root, picks):
        before = (s.key, repr(s), s.legal_actions(), s.terminal_value())
        for a in s.legal_actions():
            s.step(a)
        assert (s.key, repr(s), s.legal_actions(), s.terminal_value()) == before
        with pytest.raises(AttributeError):
            s.anything = 1


@settings(deadline=None)
@given(toy_roots, choices, choices)
def test_toy_key_equality_matches_equality(root: Any, a: list[int], b: list[int]) -> None:
    for s, t in itertools.product(_walk(root, a), _walk(root, b)):
        assert (s == t) == (s.key == t.key)
        if s == t:
            assert hash(s) == hash(t)


# -- stable reprs of ExplicitTree keys -----------------------------------------------------------

_KEY_SCRIPT = """
import numpy as np
from treesearch.games import ExplicitTree
from treesearch.testing import HashEvaluator
from treesearch.testing.strategies import HashVerifier

root = ExplicitTree({"a": {"c": 1.0, "d": -0.5}, "b": [0.5, 0.25]}, two_player=True)
states = [root, root.step("a"), root.step("b"), root.step("a").step("d")]
print(repr(root.key))
print(HashVerifier(3).score(states))
evals = HashEvaluator(5).evaluate(states[:3], rng=np.random.default_rng(0))
print([(e.priors.round(12).tolist(), round(e.value, 12)) for e in evals])
"""


def test_explicit_tree_key_repr_is_stable_across_processes():
    outputs = []
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        run = subprocess.run(
            [sys.executable, "-c", _KEY_SCRIPT], capture_output=True, text=True, env=env, check=True
        )
        outputs.append(run.stdout)
    assert outputs[0] == outputs[1]
    assert "0x" not in outputs[0] and " at " not in outputs[0]
    # ... and the same as in this process.
    root = ExplicitTree({"a": {"c": 1.0, "d": -0.5}, "b": [0.5, 0.25]}, two_player=True)
    assert outputs[0].splitlines()[0] == repr(root.key)


def test_explicit_tree_repr_follows_contents():
    spec = {"a": {"c": 1.0, "d": 0.0}, "b": 0.5}
    one, two = ExplicitTree(spec), ExplicitTree({"a": {"c": 1.0, "d": 0.0}, "b": 0.5})
    assert repr(one.key) == repr(two.key) and one.key == two.key
    assert repr(one.step("a").key) != repr(one.key)  # the node id differs
    others = [
        ExplicitTree(spec, two_player=True),
        ExplicitTree({"a": {"c": 1.0, "d": 0.0}, "b": 0.25}),
        ExplicitTree({"a": {"c": 1.0, "e": 0.0}, "b": 0.5}),
        ExplicitTree({"a": {"c": 1.0}, "b": 0.5}),
    ]
    reprs = {repr(t.key) for t in [one, *others]}
    assert len(reprs) == 1 + len(others)
    assert repr(pickle.loads(pickle.dumps(one)).key) == repr(one.key)
