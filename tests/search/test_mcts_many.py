"""``MCTS.search_many``: B searches in lock-step with one evaluator call per round for all trees.

Checks: one tree gives exactly ``search``'s tree; with a deterministic evaluator and no noise,
every tree equals its own separate search; one call per round whose size is the number of live
trees' leaves; trees stop independently; errors leave every tree usable; bad input.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from treesearch import MCTS, Budget, Evaluation, RandomRollout, reuse_subtree
from treesearch.games import ConnectFour, TicTacToe
from treesearch.testing import HashEvaluator, assert_tree_invariants


def _roots() -> list:
    return [
        TicTacToe(),
        TicTacToe.from_moves([4]),
        TicTacToe.from_moves([0, 4, 8]),
        ConnectFour.from_moves([3, 3, 2]),
    ]


def test_one_root_equals_search() -> None:
    mcts = MCTS(RandomRollout(), selection="uct")
    root = ConnectFour.from_moves([3, 3])
    single = mcts.search(root, Budget(simulations=300), rng=np.random.default_rng(7))
    (many,) = mcts.search_many([root], Budget(simulations=300), rng=np.random.default_rng(7))
    assert many.tree.to_dict() == single.tree.to_dict()
    assert many.action == single.action
    assert many.stop_reason == single.stop_reason == "simulations"


@settings(deadline=None, max_examples=30)
@given(
    sims=st.integers(1, 120),
    leaves=st.sampled_from([1, 3]),
    selection=st.sampled_from(["uct", "puct"]),
    solver=st.booleans(),
)
def test_each_tree_equals_its_own_search(sims: int, leaves: int, selection, solver: bool) -> None:
    """A deterministic evaluator and no noise: lock-step changes nothing in any tree."""
    mcts = MCTS(HashEvaluator(), selection=selection, solver=solver, leaves_per_round=leaves)
    roots = _roots()
    many = mcts.search_many(roots, Budget(simulations=sims), rng=np.random.default_rng(0))
    for root, result in zip(roots, many, strict=True):
        alone = mcts.search(root, Budget(simulations=sims), rng=np.random.default_rng(0))
        assert result.tree.to_dict() == alone.tree.to_dict()
        assert result.stop_reason == alone.stop_reason
        assert result.usage.simulations == alone.usage.simulations <= sims
        assert_tree_invariants(result.tree)
        assert int(result.tree.virtual_loss[: result.tree.num_nodes].sum()) == 0


def test_one_evaluator_call_per_round_for_all_trees() -> None:
    evaluator = HashEvaluator()
    mcts = MCTS(evaluator, solver=False)
    roots = [ConnectFour.from_moves([c]) for c in range(7)]
    mcts.search_many(roots, Budget(simulations=20), rng=np.random.default_rng(0))
    # Round 1 expands the 7 roots together; then one leaf per tree per round.
    assert evaluator.calls == [7] * 20


def test_leaves_per_round_batches_within_and_across_trees() -> None:
    evaluator = HashEvaluator()
    mcts = MCTS(evaluator, leaves_per_round=4, solver=False)
    roots = [ConnectFour.from_moves([c]) for c in range(3)]
    results = mcts.search_many(roots, Budget(simulations=40), rng=np.random.default_rng(0))
    # The first round has one leaf per tree (the unexpanded root); later rounds up to 4 each.
    assert evaluator.calls[0] == 3
    assert max(evaluator.calls) == 12
    assert len(evaluator.calls) < 40
    for result in results:
        assert result.usage.simulations == 40
        assert result.tree.visits[0] == 40


def test_trees_stop_independently() -> None:
    """A won position is solved at once; the other search runs its whole budget."""
    win_in_one = TicTacToe.from_moves([0, 3, 1, 4])  # X plays 2 and wins
    open_board = TicTacToe()
    mcts = MCTS(RandomRollout(), selection="uct")
    solved, running = mcts.search_many(
        [win_in_one, open_board], Budget(simulations=200), rng=np.random.default_rng(1)
    )
    assert solved.stop_reason == "solved"
    assert solved.action == 2
    assert solved.usage.simulations < 200
    assert running.stop_reason == "simulations"
    assert running.usage.simulations == 200


def test_policy_searches_each_get_their_own_wall_time(monkeypatch) -> None:
    """Policy/verifier searches run one after the other; each one's clock starts with it, so
    a later tree does not find its wall time spent by the trees before it."""
    import treesearch.budget as budget_module

    class Clock:  # advanced only by the verifier: a deterministic wall clock
        now = 0.0

        @classmethod
        def perf_counter(cls) -> float:
            return cls.now

    def verifier(states):
        Clock.now += 1 / 64  # exact in binary: no rounding differences between clocks
        return [0.0] * len(states)

    monkeypatch.setattr(budget_module, "time", Clock)
    mcts = MCTS(verifier=verifier, selection="uct")
    roots = [TicTacToe(), TicTacToe.from_moves([4]), TicTacToe.from_moves([0])]
    many = mcts.search_many(roots, Budget(wall_time=10 / 64), rng=np.random.default_rng(0))
    for root, result in zip(roots, many, strict=True):
        alone = mcts.search(root, Budget(wall_time=10 / 64), rng=np.random.default_rng(0))
        assert result.usage.simulations == alone.usage.simulations > 0
        assert result.action is not None and result.stop_reason == "wall_time"


def test_reused_trees_continue() -> None:
    mcts = MCTS(HashEvaluator(), solver=False)
    first = mcts.search_many(
        [TicTacToe(), TicTacToe.from_moves([4])],
        Budget(simulations=50),
        rng=np.random.default_rng(0),
    )
    kept = [reuse_subtree(r.tree, r.action) for r in first]
    before = [int(t.visits[0]) for t in kept]
    second = mcts.search_many(kept, Budget(simulations=30), rng=np.random.default_rng(0))
    for tree, old, result in zip(kept, before, second, strict=True):
        assert result.tree is tree
        assert tree.visits[0] == old + 30


def test_root_noise_is_drawn_per_tree() -> None:
    """Identical roots with Dirichlet noise get different noise, so different trees."""
    mcts = MCTS(HashEvaluator(), dirichlet_alpha=0.3, solver=False)
    results = mcts.search_many(
        [ConnectFour(), ConnectFour()], Budget(simulations=200), rng=np.random.default_rng(0)
    )
    a, b = (r.visit_distribution for r in results)
    assert not np.array_equal(a, b)
    plain = MCTS(HashEvaluator(), solver=False).search_many(
        [ConnectFour(), ConnectFour()], Budget(simulations=200), rng=np.random.default_rng(0)
    )
    assert np.array_equal(plain[0].visit_distribution, plain[1].visit_distribution)


class _Failing:
    def __init__(self, fail_on_call: int) -> None:
        self.fail_on_call = fail_on_call
        self.calls = 0
        self.inner = HashEvaluator()

    def evaluate(self, states, *, rng):
        self.calls += 1
        if self.calls == self.fail_on_call:
            raise RuntimeError("network exploded")
        return self.inner.evaluate(states, rng=rng)


def test_evaluator_error_leaves_every_tree_usable() -> None:
    evaluator = _Failing(fail_on_call=5)
    mcts = MCTS(evaluator, leaves_per_round=3, solver=False)
    first = mcts.search_many(
        [TicTacToe(), TicTacToe.from_moves([4])],
        Budget(simulations=6),
        rng=np.random.default_rng(0),
    )
    trees = [r.tree for r in first]
    with pytest.raises(RuntimeError, match="network exploded") as info:
        mcts.search_many(trees, Budget(simulations=30), rng=np.random.default_rng(0))
    assert any("_Failing.evaluate" in note for note in info.value.__notes__)
    for tree in trees:
        assert int(tree.virtual_loss[: tree.num_nodes].sum()) == 0
        assert_tree_invariants(tree)
    again = mcts.search_many(trees, Budget(simulations=10), rng=np.random.default_rng(0))
    assert all(r.usage.simulations == 10 for r in again)


def test_bad_evaluation_count_is_named() -> None:
    class Short:
        def evaluate(self, states, *, rng):
            return [Evaluation(np.ones(len(s.legal_actions())), 0.0) for s in states[:-1]]

    mcts = MCTS(Short())
    with pytest.raises(ValueError, match="returned 1 evaluations for 2 states"):
        mcts.search_many(
            [TicTacToe(), TicTacToe()], Budget(simulations=3), rng=np.random.default_rng(0)
        )


def test_bad_input() -> None:
    mcts = MCTS(HashEvaluator())
    rng = np.random.default_rng(0)
    budget = Budget(simulations=5)
    with pytest.raises(ValueError, match="at least one root"):
        mcts.search_many([], budget, rng=rng)
    with pytest.raises(TypeError, match="sequence of states or trees"):
        mcts.search_many(TicTacToe(), budget, rng=rng)  # type: ignore[arg-type]
    tree = mcts.search(TicTacToe(), budget, rng=rng).tree
    with pytest.raises(ValueError, match="same tree twice"):
        mcts.search_many([tree, tree], budget, rng=rng)
    with pytest.raises(ValueError, match="terminal"):
        mcts.search_many([TicTacToe(), TicTacToe.from_moves([0, 3, 1, 4, 2])], budget, rng=rng)
    with pytest.raises(TypeError):
        mcts.search_many([TicTacToe()], {"simulations": 5}, rng=rng)  # type: ignore[arg-type]
