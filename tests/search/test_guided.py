"""What the six verifier-guided searches share: the GuidedSearch base and its checks, units of
work done whole or not at all, ranking in two-player problems, and the visiting orders of BFS
and DFS checked against naive reference searches."""

from __future__ import annotations

import contextlib
import math
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from treesearch import Budget
from treesearch.evaluators import LegalActionsPolicy
from treesearch.games import Chain, ExplicitTree
from treesearch.search._common import (
    GuidedSearch,
    check_beams,
    check_policy_role,
    chooser_score,
    root_score,
)
from treesearch.search.beam import BeamSearch
from treesearch.search.best_first import BestFirst
from treesearch.search.best_of_n import BestOfN
from treesearch.search.bfs import BFS
from treesearch.search.dfs import DFS
from treesearch.search.dvts import DVTS
from treesearch.testing import strategies as tst
from treesearch.testing.strategies import HashVerifier

CLASSES = (BFS, DFS, BestFirst, BestOfN, BeamSearch, DVTS)
BIG = Budget(simulations=10_000)


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def hashed(states):
    """A deterministic verifier for text-world states."""
    return [_hash_score(s.steps) for s in states]


def _hash_score(steps) -> float:
    return float(np.random.default_rng(zlib.crc32(repr(steps).encode())).random())


# ------------------------------------------------------------------ the GuidedSearch base


@pytest.mark.parametrize("cls", CLASSES)
def test_every_guided_search_is_a_guided_search(tw, cls):
    assert issubclass(cls, GuidedSearch)
    answer = lambda s: "x"  # noqa: E731
    search = cls(tw.RandomPolicy(), hashed, aggregation="min", max_nodes=9, answer_fn=answer)
    assert (search.aggregation, search.max_nodes, search.answer_fn) == ("min", 9, answer)
    assert search.verify([tw.S("a")])[0].value == tw.hash_score(("a",))
    # Each algorithm's module still opens with its docstring naming its source.
    doc = __import__(cls.__module__, fromlist=["_"]).__doc__
    assert any(word in doc for word in ("Paper", "Source", "Reference"))


def test_guided_search_checks_its_options(tw):
    GuidedSearch(tw.RandomPolicy(), hashed)
    with pytest.raises(TypeError, match=r"policy must have \.propose"):
        GuidedSearch(object(), hashed)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="a verifier is required"):
        GuidedSearch(tw.RandomPolicy(), None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="aggregation"):
        GuidedSearch(tw.RandomPolicy(), hashed, aggregation="max")
    with pytest.raises(ValueError, match="max_nodes"):
        GuidedSearch(tw.RandomPolicy(), hashed, max_nodes=0)
    with pytest.raises(TypeError, match="answer_fn"):
        GuidedSearch(tw.RandomPolicy(), hashed, answer_fn=3)  # type: ignore[arg-type]


def test_check_policy_role(tw):
    policy = tw.RandomPolicy()
    assert check_policy_role(policy) is policy
    with pytest.raises(TypeError, match=r"policy must have .propose\(states.*got int"):
        check_policy_role(3)


@pytest.mark.parametrize(
    ("n", "width", "error", "match"),
    [
        (6, 4, ValueError, r"n \(6\) must be a multiple of beam_width \(4\)"),
        (0, 1, ValueError, "n must be >= 1"),
        (4, 0, ValueError, "beam_width must be >= 1"),
        (4.0, 2, TypeError, "n must be an int"),
        (4, True, TypeError, "beam_width must be an int"),
    ],
)
def test_check_beams(n, width, error, match):
    assert check_beams(8, 4) == (8, 4)
    with pytest.raises(error, match=match):
        check_beams(n, width)


# ------------------------------------------------------------------ whole units of work


def on_path(states):
    return [1.0 if s.on_path else 0.0 for s in states]


UNIT_SEARCHES = {
    "bfs": lambda: BFS(LegalActionsPolicy(), on_path, beam_size=2),
    "dfs": lambda: DFS(LegalActionsPolicy(), on_path, threshold=0.0),
    "best_first": lambda: BestFirst(LegalActionsPolicy(), on_path),
    "beam": lambda: BeamSearch(LegalActionsPolicy(), on_path, n=4, beam_width=2),
    "dvts": lambda: DVTS(LegalActionsPolicy(), on_path, n=2, beam_width=2),
}


@pytest.mark.parametrize("name", sorted(UNIT_SEARCHES))
def test_a_unit_the_verifier_cannot_finish_is_not_started(name):
    # The first unit scores 2 children; the second would score 2 (DFS, best-first, DVTS) or 4
    # (BFS, beam) more, which 3 verifier calls cannot pay for.
    result = UNIT_SEARCHES[name]().search(Chain(4), Budget(verifier_calls=3), rng=rng())
    tree = result.tree
    assert result.stop_reason == "verifier_calls"
    assert result.usage.simulations == 1
    assert result.usage.verifier_calls == 2
    assert len(tree) == 3  # the root and the first unit's two children, nothing half-added
    assert all(not math.isnan(tree.score[i]) for i in range(1, len(tree)))
    assert tree.visits[0] == 2


@settings(deadline=None)
@given(
    fields=st.fixed_dictionaries(
        {
            name: st.none() | st.integers(1, 30)
            for name in ("simulations", "expansions", "policy_calls", "verifier_calls")
        }
    ),
    seed=st.integers(0, 2**16),
    max_nodes=st.none() | st.integers(1, 30),
)
def test_units_leave_no_unscored_children(tw, fields, seed, max_nodes):
    # Without dedupe every child a unit adds is scored, whatever stopped the search, and every
    # simulation charged is one unit that was done whole.
    budget = Budget(**fields) if any(v is not None for v in fields.values()) else BIG
    p = tw.RandomPolicy()
    searches = {
        "bfs": BFS(p, hashed, beam_size=2, max_nodes=max_nodes),
        "dvts": DVTS(p, hashed, n=4, beam_width=2, max_nodes=max_nodes),
        "beam": BeamSearch(p, hashed, n=4, beam_width=2, dedupe=False, max_nodes=max_nodes),
        "dfs": DFS(p, hashed, threshold=0.3, max_nodes=max_nodes),
        "best_first": BestFirst(p, hashed, max_nodes=max_nodes),
    }
    for name, search in searches.items():
        result = search.search(tw.S(max_len=5), budget, rng=tw.rng(seed))
        tree = result.tree
        assert all(not math.isnan(tree.score[i]) for i in range(1, len(tree))), name
        expanded = [i for i in range(len(tree)) if tree.is_expanded(i)]
        if name == "bfs":
            assert result.usage.simulations == len({int(tree.depth[i]) for i in expanded})
        elif name in ("dfs", "best_first"):
            assert result.usage.simulations == len(expanded) + len(result.traces), name


# ------------------------------------------------------------------ two-player ranking


def exact(states):
    """The exact value of each state, for its own player to move (the sign rule)."""
    return [s.minimax_value() for s in states]


TWO_PLAYER_SEARCHES = {
    "bfs": lambda: BFS(LegalActionsPolicy(), exact, beam_size=1),
    "dfs": lambda: DFS(LegalActionsPolicy(), exact, threshold=-1.0),
    "best_first": lambda: BestFirst(LegalActionsPolicy(), exact),
    "beam": lambda: BeamSearch(LegalActionsPolicy(), exact, n=2, beam_width=2),
    "dvts": lambda: DVTS(LegalActionsPolicy(), exact, n=2, beam_width=2),
}


@pytest.mark.parametrize("name", [*sorted(TWO_PLAYER_SEARCHES), "best_of_n"])
def test_two_player_answer_is_good_for_the_root_player(name):
    # Leaf values are for the player to move at the leaf (player 1): "win" is +1 for player 0.
    root = ExplicitTree({"lose": 1.0, "win": -1.0}, two_player=True)
    if name == "best_of_n":
        search = BestOfN(LegalActionsPolicy(), exact, n=8, mode="plain")
    else:
        search = TWO_PLAYER_SEARCHES[name]()
    result = search.search(root, BIG, rng=rng())
    assert result.action == "win"
    assert result.answer == root.step("win")


@pytest.mark.parametrize("name", sorted(TWO_PLAYER_SEARCHES))
def test_two_player_children_are_ranked_for_the_player_who_chose_them(name):
    # Player 1 answers "a" with a2 (-1 for player 0) and "b" with b1 (0.5): "b" is the move.
    # Ranked by the raw score (player 1's view) "a" (+1) would look best to player 0.
    root = ExplicitTree(
        {"a": {"a1": 1.0, "a2": -1.0}, "b": {"b1": 0.5, "b2": 0.6}}, two_player=True
    )
    assert root.best_actions() == ("b",)
    result = TWO_PLAYER_SEARCHES[name]().search(root, BIG, rng=rng())
    assert result.action == "b"
    tree = result.tree
    a, b = tree.children(0)
    assert (tree.score[a], tree.score[b]) == (1.0, -0.5)  # stored as the verifier gave them
    assert (chooser_score(tree, a), chooser_score(tree, b)) == (-1.0, 0.5)
    assert root_score(tree, b) == 0.5


def test_single_agent_ranking_is_the_raw_score(tw):
    result = BFS(tw.RandomPolicy(), hashed).search(tw.S(max_len=3), BIG, rng=tw.rng())
    tree = result.tree
    for i in range(1, len(tree)):
        assert chooser_score(tree, i) == root_score(tree, i) == tree.score[i]


# ------------------------------------------------------------------ BFS and DFS orders


class Coarse:
    """A deterministic verifier with few distinct scores (so ties happen); records batches."""

    def __init__(self, salt: int) -> None:
        self.hash = HashVerifier(salt)
        self.seen: list[list] = []

    def one(self, state) -> float:
        return round(self.hash.score_one(state) * 3) / 3

    def score(self, states):
        self.seen.append(list(states))
        return [self.one(s) for s in states]


def for_chooser(parent, child, score: float) -> float:
    """The reference sign rule: a child's score for the player who moved to it."""
    return score if child.to_play == parent.to_play else -score


def reference_bfs(root, one, beam_size, max_depth):
    """Naive ToT-BFS: the keys scored at each level."""
    levels = []
    frontier = [root]
    for _ in range(max_depth):
        pairs = [(f, f.step(a)) for f in frontier for a in f.legal_actions()]
        levels.append([c.key for _, c in pairs])
        open_ = [(p, c) for p, c in pairs if not c.is_terminal()]
        open_.sort(key=lambda pc: -for_chooser(pc[0], pc[1], one(pc[1])))  # stable: ties keep order
        frontier = [c for _, c in open_[:beam_size]]
        if not frontier:
            break
    return levels


@settings(deadline=None)
@given(
    root=tst.random_trees(max_depth=5, max_branching=4, max_nodes=60),
    salt=st.integers(0, 2**16),
    beam_size=st.integers(1, 3),
    max_depth=st.integers(1, 6),
)
def test_bfs_visits_level_by_level(root, salt, beam_size, max_depth):
    verifier = Coarse(salt)
    result = BFS(LegalActionsPolicy(), verifier, beam_size=beam_size, max_depth=max_depth).search(
        root, BIG, rng=rng()
    )
    tree = result.tree
    # Every state at depth d is scored before any state at depth d + 1, one batch per level.
    depths = [s.depth for batch in verifier.seen for s in batch]
    assert depths == sorted(depths)
    assert all(len({s.depth for s in batch}) == 1 for batch in verifier.seen)
    # Only the top beam_size open states of each level (for the player who chose them; ties:
    # the earlier node) get children.
    for d in range(1, int(tree.depth[: len(tree)].max()) + 1):
        level = [i for i in range(len(tree)) if tree.depth[i] == d]
        open_ = [i for i in level if not tree.terminal[i]]
        top = sorted(open_, key=lambda i: (-chooser_score(tree, i), i))[:beam_size]
        expanded = [i for i in level if tree.is_expanded(i)]
        assert set(expanded) == (set(top) if d < max_depth else set())
    # The same levels as a naive BFS.
    scored = [[s.key for s in batch] for batch in verifier.seen]
    assert scored == reference_bfs(root, verifier.one, beam_size, max_depth)


def reference_dfs(root, one, threshold, max_depth, stop_at_first):
    """Naive recursive ToT-DFS: the keys scored at each expansion and the solutions found."""
    scored: list[list] = []
    solutions: list = []

    class Found(Exception):
        pass

    def visit(state, depth):
        kids = [state.step(a) for a in state.legal_actions()]
        scored.append([k.key for k in kids])
        keep = [
            (for_chooser(state, k, one(k)), k)
            for k in kids
            if for_chooser(state, k, one(k)) >= threshold
            and (k.is_terminal() or depth + 1 < max_depth)
        ]
        keep.sort(key=lambda vk: -vk[0])  # stable: ties keep the children's order
        for _, k in keep:
            if k.is_terminal():
                solutions.append(k.key)
                if stop_at_first:
                    raise Found
            else:
                visit(k, depth + 1)

    with contextlib.suppress(Found):
        visit(root, 0)
    return scored, solutions


@settings(deadline=None)
@given(
    root=tst.random_trees(max_depth=5, max_branching=4, max_nodes=60),
    salt=st.integers(0, 2**16),
    threshold=st.sampled_from([-1.0, -0.5, 0.0, 1 / 3, 0.5, 1.0]),
    max_depth=st.integers(1, 6),
    stop_at_first=st.booleans(),
)
def test_dfs_visits_in_its_defined_order(root, salt, threshold, max_depth, stop_at_first):
    verifier = Coarse(salt)
    search = DFS(
        LegalActionsPolicy(),
        verifier,
        threshold=threshold,
        max_depth=max_depth,
        stop_at_first=stop_at_first,
    )
    result = search.search(root, BIG, rng=rng())
    scored, solutions = reference_dfs(root, verifier.one, threshold, max_depth, stop_at_first)
    assert [[s.key for s in batch] for batch in verifier.seen] == scored
    found = []
    for trace in result.traces:
        state = root
        for action in trace.actions:
            state = state.step(action)
        found.append(state.key)
    assert found == solutions
    assert result.stop_reason == ("solved" if stop_at_first and solutions else "exhausted")
