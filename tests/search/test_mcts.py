"""MCTS: hand-computed formulas, solved positions, a naive reference, and invariants."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from treesearch import Budget, Candidate, Evaluation, Score
from treesearch.evaluators import RandomRollout, UniformEvaluator
from treesearch.games.connect_four import ConnectFour
from treesearch.games.tictactoe import TicTacToe
from treesearch.games.toys import Bandit, Chain, ExplicitTree
from treesearch.search.mcts import MCTS, reuse_subtree, visit_policy
from treesearch.selection import alphazero_c, puct_scores, uct_scores
from treesearch.testing import HashEvaluator, assert_tree_invariants


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def check_conservation(tree) -> None:
    for n in range(tree.num_nodes):
        kids = tree.children(n)
        if len(kids) and tree.visits[n] > 0:
            assert tree.visits[kids.start : kids.stop].sum() == tree.visits[n] - 1, n
        if tree.terminal[n]:
            assert len(kids) == 0
    assert tree.virtual_loss[: tree.num_nodes].sum() == 0
    assert_tree_invariants(tree, value_bounds=(-1.0, 1.0))


# ---------------------------------------------------------------- hand-computed formulas


def test_uct_scores_by_hand():
    visits = np.array([2, 4, 0])
    value_sum = np.array([1.0, -2.0, 0.0])
    s = uct_scores(visits, value_sum, 6, c=1.0)
    assert s[0] == pytest.approx(0.5 + math.sqrt(math.log(6) / 2))
    assert s[1] == pytest.approx(-0.5 + math.sqrt(math.log(6) / 4))
    assert s[2] == math.inf


def test_puct_scores_by_hand():
    visits = np.array([3, 0])
    value_sum = np.array([1.5, 0.0])
    priors = np.array([0.25, 0.75])
    s = puct_scores(visits, value_sum, priors, 4, c=2.0, fpu=-0.5)
    assert s[0] == pytest.approx(0.5 + 2.0 * 0.25 * 2.0 / 4.0)
    assert s[1] == pytest.approx(-0.5 + 2.0 * 0.75 * 2.0 / 1.0)


def test_alphazero_c_schedule():
    assert alphazero_c(0) == pytest.approx(math.log((1 + 19652) / 19652) + 1.25)
    assert alphazero_c(19652 * 2 - 1) == pytest.approx(math.log(3) + 1.25)


def test_visit_policy_temperatures():
    v = np.array([10, 30, 60])
    np.testing.assert_allclose(visit_policy(v, 1.0), [0.1, 0.3, 0.6])
    np.testing.assert_allclose(visit_policy(v, 0.5), [100 / 4600, 900 / 4600, 3600 / 4600])
    assert visit_policy(v, 0.5)[0] == pytest.approx(0.022, abs=1e-3)
    np.testing.assert_array_equal(visit_policy(v, 0.0), [0, 0, 1])
    np.testing.assert_allclose(visit_policy(v, 1e-3), [0, 0, 1], atol=1e-12)


def test_first_selections_follow_puct_by_hand():
    """Priors 0.5/0.3/0.2, value 0 everywhere: the first picks are computable by hand."""

    class Fixed:
        def evaluate(self, states, *, rng):
            return [
                Evaluation(
                    np.array([0.5, 0.3, 0.2])
                    if len(s.legal_actions()) == 3
                    else np.full(len(s.legal_actions()), 1 / max(1, len(s.legal_actions()))),
                    0.0,
                )
                for s in states
            ]

    root = ExplicitTree.from_nested({"a": {"x": 0.0}, "b": {"x": 0.0}, "c": {"x": 0.0}})
    result = MCTS(Fixed(), c=1.0, solver=False).search(root, Budget(simulations=4), rng=rng())
    # sim 1 expands the root. sim 2: N=1, scores 0.5/0.3/0.2 * 1/1 -> a. sim 3: N=2, a has
    # 0 + 0.5*1.414/2 = 0.354, b 0.3*1.414 = 0.424 -> b. sim 4: N=3, a 0.433, b 0.260,
    # c 0.2*1.732 = 0.346 -> a.
    assert result.policy() == {"a": 2 / 3, "b": 1 / 3, "c": 0.0}


# ---------------------------------------------------------------- solved positions


def test_tictactoe_win_in_one():
    state = TicTacToe.from_moves([0, 3, 1, 4])  # X: 0 1, O: 3 4; X plays 2
    for selection in ("uct", "puct"):
        evaluator = RandomRollout() if selection == "uct" else UniformEvaluator()
        r = MCTS(evaluator, selection=selection).search(state, Budget(simulations=200), rng=rng())
        assert r.action == 2
        assert r.root_value == 1.0


def test_tictactoe_forced_block_without_solver():
    state = TicTacToe.from_moves([0, 4, 8, 2])  # O threatens 2-4-6: X must play 6
    r = MCTS(RandomRollout(), selection="uct", solver=False).search(
        state, Budget(simulations=2000), rng=rng(3)
    )
    assert r.action == 6
    assert max(r.visit_distribution) == r.policy()[6]


def test_tictactoe_forced_block_with_solver():
    state = TicTacToe.from_moves([4, 0, 8, 2])  # O holds 0 and 2: X must take 1
    r = MCTS(RandomRollout(), selection="uct").search(state, Budget(simulations=3000), rng=rng())
    assert r.action == 1


def test_tictactoe_proven_draw_from_empty_board():
    r = MCTS(RandomRollout(), selection="uct").search(
        TicTacToe(), Budget(simulations=150_000), rng=rng(1)
    )
    assert r.stop_reason == "solved"
    assert r.root_value == 0.0
    assert r.usage.simulations < 150_000


def test_tictactoe_proven_loss_is_reported():
    # X 4 0 2 threatens 1 (0-1-2) and 6 (2-4-6); O (8, 5) has no win of its own.
    state = TicTacToe.from_moves([4, 8, 0, 5, 2])
    assert state.to_play == 1
    r = MCTS(RandomRollout(), selection="uct").search(state, Budget(simulations=5000), rng=rng())
    assert r.stop_reason == "solved"
    assert r.root_value == -1.0


def test_never_loses_to_random_tictactoe():
    gen = rng(7)
    mcts = MCTS(RandomRollout(), selection="uct")
    for game in range(50):
        state = TicTacToe()
        mcts_player = game % 2
        while not state.is_terminal():
            if state.to_play == mcts_player:
                action = mcts.search(state, Budget(simulations=1000), rng=gen).action
            else:
                legal = state.legal_actions()
                action = legal[int(gen.integers(len(legal)))]
            state = state.step(action)
        assert state.winner in (None, mcts_player), f"game {game} lost"


def test_connect_four_win_in_one():
    state = ConnectFour.from_moves([0, 6, 1, 6, 2, 5])  # X has 0 1 2 on the bottom row
    r = MCTS(RandomRollout(), selection="uct").search(state, Budget(simulations=300), rng=rng())
    assert r.action == 3
    assert r.root_value == 1.0


def test_connect_four_win_in_two_double_threat():
    # X bottom row 2 3, O elsewhere: X plays 1 or 4 to make an open three (two threats).
    state = ConnectFour.from_moves([2, 6, 3, 6])
    r = MCTS(RandomRollout(), selection="uct").search(state, Budget(simulations=20000), rng=rng())
    assert r.action in (1, 4)
    assert r.stop_reason == "solved" and r.root_value == 1.0


def test_connect_four_must_block():
    state = ConnectFour.from_moves([0, 6, 1, 6, 2])  # O must block at 3
    r = MCTS(RandomRollout(), selection="uct").search(state, Budget(simulations=2000), rng=rng())
    assert r.action == 3


# ---------------------------------------------------------------- value convention


@pytest.mark.parametrize("selection", ["uct", "puct"])
def test_two_player_value_converges_to_minimax(selection):
    spec = {"a": {"x": 1.0, "y": -0.6}, "b": {"x": 0.2, "y": 0.4}}
    root = ExplicitTree.from_nested(spec, two_player=True)
    exact = root.minimax_value()
    evaluator = RandomRollout() if selection == "uct" else UniformEvaluator()
    r = MCTS(evaluator, selection=selection, solver=False).search(
        root, Budget(simulations=3000), rng=rng()
    )
    # Leaf values are for the player to move at the leaf, who is the root's opponent's
    # opponent: root picks a or b, then the opponent picks the leaf that is worst for root.
    assert r.action == "b"
    assert r.root_value == pytest.approx(exact, abs=0.05)


def test_solver_proves_explicit_two_player_tree():
    spec = {"a": {"x": 1.0, "y": -1.0}, "b": {"x": 0.0, "y": 1.0}}
    root = ExplicitTree.from_nested(spec, two_player=True)
    r = MCTS(RandomRollout(), selection="uct").search(root, Budget(simulations=500), rng=rng())
    assert r.stop_reason == "solved"
    assert r.root_value == root.minimax_value()


def test_single_agent_values_never_negated():
    root = Bandit([0.1, 0.9, 0.5])
    r = MCTS(RandomRollout(), selection="uct", solver=False).search(
        root, Budget(simulations=300), rng=rng()
    )
    assert r.action == 1
    tree = r.tree
    for child in tree.children(0):
        assert tree.q(child) == pytest.approx(root.means[tree.actions[child]])


def test_chain_needle_found_with_policy_and_verifier():
    class Proposer:
        def propose(self, states, *, rng, max_tokens=None):
            return [[Candidate(a, 0.5) for a in s.legal_actions()] for s in states]

    def verifier(states):  # scores an unfinished path by its share of ones so far
        return [Score(float(s.terminal_value() or 0.0)) if s.is_terminal() else 0.5 for s in states]

    root = Chain(5)
    r = MCTS(policy=Proposer(), verifier=verifier, selection="uct").search(
        root, Budget(simulations=400), rng=rng()
    )
    assert r.action == 1
    assert r.traces[0].actions == (1, 1, 1, 1, 1)
    assert r.traces[0].outcome == 1.0


# ---------------------------------------------------------------- naive reference


def naive_puct(root, sims: int, c: float, evaluator) -> dict:
    """Dict-keyed PUCT with the same conventions, written the obvious way."""
    visits: dict[tuple, int] = {(): 0}
    value_sum: dict[tuple, float] = {(): 0.0}
    prior: dict[tuple, float] = {}
    children: dict[tuple, list] = {}
    players = {(): root.to_play}
    states = {(): root}
    for _ in range(sims):
        path = [()]
        node = ()
        while node in children and not states[node].is_terminal():
            best, best_score = None, -math.inf
            for a in children[node]:
                ch = (*node, a)
                n = visits.get(ch, 0)
                q = value_sum[ch] / n if n else 0.0
                u = q + c * prior[ch] * math.sqrt(visits[node]) / (1 + n)
                if u > best_score:
                    best, best_score = ch, u
            node = best
            if node not in states:
                states[node] = states[node[:-1]].step(node[-1])
                players[node] = states[node].to_play
                visits[node], value_sum[node] = 0, 0.0
            path.append(node)
        state = states[node]
        if state.is_terminal():
            value = state.terminal_value()
        else:
            ev = evaluator.evaluate([state], rng=None)[0]
            children[node] = list(state.legal_actions())
            for a, p in zip(children[node], ev.priors, strict=True):
                prior[(*node, a)] = p
            value = ev.value
        for nd in reversed(path):
            parent = nd[:-1] if nd else None
            if parent is not None and players[parent] != players[nd]:
                value = -value
            visits[nd] += 1
            value_sum[nd] += value
    return {a: visits.get((a,), 0) for a in children[()]}


@settings(deadline=None)
@given(moves=st.lists(st.integers(0, 8), max_size=4), sims=st.integers(1, 300))
def test_puct_equals_naive_reference(moves, sims):
    state = TicTacToe()
    for m in moves:
        if state.is_terminal() or m not in state.legal_actions():
            break
        state = state.step(m)
    if state.is_terminal():
        return
    r = MCTS(HashEvaluator(), c=1.5, solver=False).search(
        state, Budget(simulations=sims), rng=rng()
    )
    expected = naive_puct(state, sims, 1.5, HashEvaluator())
    got = {r.tree.actions[i]: int(r.tree.visits[i]) for i in r.tree.children(0)}
    assert got == expected


# ---------------------------------------------------------------- properties


def random_position(moves: list[int], game) -> object:
    state = game()
    for m in moves:
        legal = state.legal_actions()
        if state.is_terminal():
            break
        state = state.step(legal[m % len(legal)])
    return state


@settings(deadline=None)
@given(
    moves=st.lists(st.integers(0, 6), max_size=10),
    sims=st.integers(1, 120),
    selection=st.sampled_from(["uct", "puct"]),
    leaves=st.sampled_from([1, 4]),
    solver=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_search_invariants(moves, sims, selection, leaves, solver, seed):
    state = random_position(moves, ConnectFour)
    if state.is_terminal():
        return
    evaluator = RandomRollout() if selection == "uct" else HashEvaluator()
    mcts = MCTS(evaluator, selection=selection, leaves_per_round=leaves, solver=solver)
    budget = Budget(simulations=sims)
    r = mcts.search(state, budget, rng=rng(seed))
    tree = r.tree
    assert r.usage.within(budget)
    if r.stop_reason != "solved":
        assert tree.visits[0] == sims == r.usage.simulations
    else:
        assert tree.visits[0] == r.usage.simulations <= sims
    check_conservation(tree)
    n = tree.num_nodes
    visited = tree.visits[:n] > 0
    q = tree.value_sum[:n][visited] / tree.visits[:n][visited]
    assert np.all(q >= -1 - 1e-9) and np.all(q <= 1 + 1e-9)
    assert r.action in state.legal_actions()
    for node in range(1, n):
        parent_state = tree.states[int(tree.parent[node])]
        if parent_state is not None:
            assert tree.actions[node] in parent_state.legal_actions()
    # Same seed, same tree.
    again = mcts.search(state, budget, rng=rng(seed))
    assert again.tree.to_dict() == tree.to_dict()


@settings(deadline=None)
@given(
    sims=st.integers(1, 60),
    expansions=st.integers(1, 30),
    policy_calls=st.integers(1, 30),
    leaves=st.sampled_from([1, 3]),
)
def test_budget_never_exceeded(sims, expansions, policy_calls, leaves):
    budget = Budget(simulations=sims, expansions=expansions, policy_calls=policy_calls)
    r = MCTS(HashEvaluator(), leaves_per_round=leaves).search(ConnectFour(), budget, rng=rng())
    assert r.usage.within(budget)
    assert r.usage.simulations == r.tree.visits[0]
    assert r.usage.expansions == sum(1 for i in range(r.tree.num_nodes) if r.tree.is_expanded(i))
    assert r.stop_reason in ("simulations", "expansions", "policy_calls")


def test_wall_time_budget_stops():
    r = MCTS(RandomRollout(), selection="uct").search(
        ConnectFour(), Budget(wall_time=0.05), rng=rng()
    )
    assert r.stop_reason == "wall_time"
    assert r.usage.simulations > 0
    assert r.usage.wall_time < 1.0


# ---------------------------------------------------------------- features


def test_virtual_loss_batches_leaves():
    evaluator = HashEvaluator()
    r = MCTS(evaluator, leaves_per_round=8).search(
        ConnectFour(), Budget(simulations=200), rng=rng()
    )
    assert max(evaluator.calls) > 1  # leaves really were batched
    assert sum(evaluator.calls) == r.usage.policy_calls
    assert r.tree.visits[0] == 200
    check_conservation(r.tree)


def test_dirichlet_noise_changes_search_but_not_stored_priors():
    state = ConnectFour()
    plain = MCTS(HashEvaluator()).search(state, Budget(simulations=100), rng=rng(0))
    noisy = [
        MCTS(HashEvaluator(), dirichlet_alpha=0.3, dirichlet_epsilon=0.5).search(
            state, Budget(simulations=100), rng=rng(s)
        )
        for s in range(3)
    ]
    kids = plain.tree.children(0)
    for r in noisy:
        np.testing.assert_allclose(
            r.tree.prior[kids.start : kids.stop], plain.tree.prior[kids.start : kids.stop]
        )
    dists = {tuple(r.visit_distribution.round(6)) for r in noisy}
    assert len(dists) > 1
    zero = MCTS(HashEvaluator(), dirichlet_alpha=0.3, dirichlet_epsilon=0.0).search(
        state, Budget(simulations=100), rng=rng(5)
    )
    np.testing.assert_array_equal(zero.visit_distribution, plain.visit_distribution)


def test_fpu_changes_exploration():
    state = ConnectFour()
    low = MCTS(HashEvaluator(), fpu=-1.0).search(state, Budget(simulations=50), rng=rng())
    high = MCTS(HashEvaluator(), fpu=1.0).search(state, Budget(simulations=50), rng=rng())
    tried_low = int((low.visit_distribution > 0).sum())
    tried_high = int((high.visit_distribution > 0).sum())
    assert tried_high == 7  # optimistic urgency tries every move
    assert tried_low < tried_high


def test_final_choice_modes():
    root = Bandit([0.2, 0.8])
    by_q = MCTS(UniformEvaluator(), final="q", solver=False).search(
        root, Budget(simulations=3), rng=rng()
    )
    assert by_q.action == 1
    sampled = {
        MCTS(RandomRollout(), selection="uct", final="sample", solver=False)
        .search(root, Budget(simulations=10), rng=rng(s))
        .action
        for s in range(30)
    }
    assert sampled == {0, 1}


def test_tree_reuse_keeps_subtree_and_converts_root_value():
    state = TicTacToe.from_moves([4])
    mcts = MCTS(RandomRollout(), selection="uct", solver=False)
    first = mcts.search(state, Budget(simulations=500), rng=rng())
    child = next(i for i in first.tree.children(0) if first.tree.actions[i] == first.action)
    child_visits = int(first.tree.visits[child])
    child_q = first.tree.q(child)  # for the player at the old root
    sub = reuse_subtree(first.tree, first.action)
    assert sub.visits[0] == child_visits
    assert sub.value_sum[0] / sub.visits[0] == pytest.approx(-child_q)
    check_conservation(sub)
    second = mcts.search(sub, Budget(simulations=100), rng=rng())
    assert second.tree.visits[0] == child_visits + 100
    check_conservation(second.tree)


def test_transpositions_save_evaluations():
    state = TicTacToe()
    plain_eval, cached_eval = HashEvaluator(), HashEvaluator()
    a = MCTS(plain_eval, solver=False).search(state, Budget(simulations=2000), rng=rng())
    b = MCTS(cached_eval, solver=False, transpositions=True).search(
        state, Budget(simulations=2000), rng=rng()
    )
    assert sum(cached_eval.calls) < sum(plain_eval.calls)
    # Cached evaluations are identical, so the searches agree exactly.
    assert a.policy() == b.policy()


def test_max_nodes_cap():
    r = MCTS(HashEvaluator(), max_nodes=50).search(
        ConnectFour(), Budget(simulations=1000), rng=rng()
    )
    assert r.tree.num_nodes <= 50
    assert r.stop_reason == "max_nodes"
    check_conservation(r.tree)


# ---------------------------------------------------------------- bad input


def test_bad_arguments():
    with pytest.raises(ValueError, match="needs an evaluator"):
        MCTS()
    with pytest.raises(ValueError, match="not both"):
        MCTS(UniformEvaluator(), policy=object(), verifier=lambda s: [0.0] * len(s))
    with pytest.raises(ValueError, match="verifier"):
        MCTS(policy=type("P", (), {"propose": lambda self, s, *, rng, max_tokens=None: []})())
    with pytest.raises(ValueError, match="selection"):
        MCTS(UniformEvaluator(), selection="ucb")
    with pytest.raises(ValueError, match="c must"):
        MCTS(UniformEvaluator(), c=-1.0)
    with pytest.raises(TypeError, match="evaluator"):
        MCTS(object())
    with pytest.raises(ValueError, match="leaves_per_round"):
        MCTS(UniformEvaluator(), leaves_per_round=0)
    with pytest.raises(ValueError, match="dirichlet_epsilon"):
        MCTS(UniformEvaluator(), dirichlet_epsilon=2.0)
    mcts = MCTS(UniformEvaluator())
    with pytest.raises(TypeError, match="Generator"):
        mcts.search(TicTacToe(), Budget(simulations=5), rng=0)
    with pytest.raises(TypeError, match="Budget"):
        mcts.search(TicTacToe(), 5, rng=rng())
    with pytest.raises(ValueError, match="terminal"):
        mcts.search(TicTacToe.from_moves([0, 3, 1, 4, 2]), Budget(simulations=5), rng=rng())
    with pytest.raises(ValueError, match="at least one limit"):
        Budget()
    with pytest.raises(ValueError, match="positive"):
        Budget(simulations=0)


def test_bad_evaluator_output():
    class NaNValue:
        def evaluate(self, states, *, rng):
            return [Evaluation(np.full(len(s.legal_actions()), 0.1), math.nan) for s in states]

    class WrongShape:
        def evaluate(self, states, *, rng):
            return [Evaluation(np.ones(3), 0.0) for s in states]

    with pytest.raises(ValueError, match="non-finite value"):
        MCTS(NaNValue()).search(TicTacToe(), Budget(simulations=3), rng=rng())
    with pytest.raises(ValueError, match="shape"):
        MCTS(WrongShape()).search(TicTacToe(), Budget(simulations=3), rng=rng())


def test_empty_expansion_is_an_error():
    class Nothing:
        def propose(self, states, *, rng, max_tokens=None):
            return [[] for _ in states]

    with pytest.raises(ValueError, match="empty expansion"):
        MCTS(policy=Nothing(), verifier=lambda s: [0.0] * len(s)).search(
            Chain(3), Budget(simulations=3), rng=rng()
        )


def test_nan_verifier_score_is_an_error():
    class Proposer:
        def propose(self, states, *, rng, max_tokens=None):
            return [[Candidate(a) for a in s.legal_actions()] for s in states]

    with pytest.raises(ValueError, match="non-finite"):
        MCTS(policy=Proposer(), verifier=lambda s: [math.nan] * len(s)).search(
            Chain(3), Budget(simulations=3), rng=rng()
        )


def test_user_callback_errors_name_the_call_and_nodes():
    class Broken:
        def evaluate(self, states, *, rng):
            raise KeyError("model exploded")

    with pytest.raises(KeyError, match="model exploded") as info:
        MCTS(Broken()).search(TicTacToe(), Budget(simulations=3), rng=rng())
    notes = "\n".join(getattr(info.value, "__notes__", []))
    assert "Broken.evaluate (tree nodes [0])" in notes
    assert "TicTacToe" in notes

    def bad_verifier(states):
        raise RuntimeError("scorer down")

    with pytest.raises(RuntimeError, match="scorer down") as info:
        MCTS(verifier=bad_verifier).search(Chain(3), Budget(simulations=3), rng=rng())
    assert "the verifier" in "\n".join(info.value.__notes__)


class TokenPolicy:
    """Each candidate costs 3 tokens; stays within ``max_tokens`` by proposing fewer."""

    def propose(self, states, *, rng, max_tokens=None):
        left = math.inf if max_tokens is None else max_tokens
        out = []
        for s in states:
            cands = []
            for a in s.legal_actions():
                if left < 3:
                    break
                cands.append(Candidate(a, 1.0, num_tokens=3))
                left -= 3
            out.append(cands)
        return out


@pytest.mark.parametrize("leaves", [1, 4])
@pytest.mark.parametrize("tokens", [1, 7, 50, 301])
def test_token_budget_stops_policy_search(leaves, tokens):
    budget = Budget(tokens=tokens)
    r = MCTS(
        policy=TokenPolicy(), verifier=lambda s: [0.0] * len(s), leaves_per_round=leaves
    ).search(ConnectFour(), budget, rng=rng())
    assert r.stop_reason == "tokens"
    assert r.usage.within(budget)
    # Tokens of the abandoned last round were generated, so they count as spent.
    assert r.usage.tokens >= int(r.tree.tokens[: r.tree.num_nodes].sum())
    check_conservation(r.tree)
    assert r.tree.visits[0] == r.usage.simulations


def test_dirichlet_noise_needs_puct():
    with pytest.raises(ValueError, match="puct"):
        MCTS(RandomRollout(), selection="uct", dirichlet_alpha=0.3)


# ---------------------------------------------------------------- review regressions


def test_terminal_values_outside_bounds_are_rejected_not_proven():
    with pytest.raises(ValueError, match="value_bounds"):
        MCTS(RandomRollout(), selection="uct").search(
            Bandit([5.0, 10.0]), Budget(simulations=100), rng=rng()
        )
    r = MCTS(RandomRollout(), selection="uct", value_bounds=(0.0, 10.0)).search(
        Bandit([5.0, 10.0]), Budget(simulations=100), rng=rng()
    )
    assert r.action == 1 and r.root_value == 10.0 and r.stop_reason == "solved"


class Skewed:
    """Puts almost all prior on the first legal action."""

    def evaluate(self, states, *, rng):
        out = []
        for s in states:
            p = np.full(len(s.legal_actions()), 0.01)
            if len(p):
                p[0] = 0.99
            out.append(Evaluation(p, 0.0))
        return out


@pytest.mark.parametrize("final", ["visits", "q", "sample"])
def test_final_choice_never_plays_a_proven_loss_when_another_move_exists(final):
    # Single-agent: "a" ends at once with -1 (a proven loss); "b" is unexplored but open.
    root = ExplicitTree.from_nested({"a": -1.0, "b": {"x": 0.0, "y": 0.5}})
    for seed in range(5):
        r = MCTS(Skewed(), final=final).search(root, Budget(simulations=2), rng=rng(seed))
        assert r.action == "b"


def test_callback_error_leaves_tree_reusable():
    calls = {"n": 0}

    class Flaky:
        def evaluate(self, states, *, rng):
            calls["n"] += 1
            if calls["n"] == 5:
                raise RuntimeError("transient")
            return HashEvaluator().evaluate(states, rng=rng)

    mcts = MCTS(Flaky(), leaves_per_round=4)
    first = mcts.search(ConnectFour(), Budget(simulations=8), rng=rng())
    with pytest.raises(RuntimeError, match="transient"):
        mcts.search(first.tree, Budget(simulations=40), rng=rng())
    assert first.tree.virtual_loss[: first.tree.num_nodes].sum() == 0
    check_conservation(first.tree)
    again = mcts.search(first.tree, Budget(simulations=20), rng=rng())
    check_conservation(again.tree)


def test_budgets_this_search_never_spends_are_refused():
    for budget in (Budget(tokens=5), Budget(verifier_calls=5), Budget(tokens=5, verifier_calls=9)):
        with pytest.raises(ValueError, match="never spends"):
            MCTS(UniformEvaluator()).search(ConnectFour(), budget, rng=rng())
    # With a policy, tokens and verifier calls are spent on every new leaf.
    r = MCTS(policy=TokenPolicy(), verifier=lambda s: [0.0] * len(s)).search(
        ConnectFour(), Budget(verifier_calls=5), rng=rng()
    )
    assert r.usage.verifier_calls == 5 and r.stop_reason == "verifier_calls"


def test_finite_tree_without_a_simulation_limit_stops():
    r = MCTS(UniformEvaluator(), solver=False).search(
        TicTacToe.from_moves([0, 4, 8, 2, 6, 3]), Budget(expansions=10**6), rng=rng()
    )
    assert r.stop_reason == "exhausted"
    assert r.usage.expansions < 10**6


def test_illegal_policy_action_names_the_node():
    class Cheater:
        def propose(self, states, *, rng, max_tokens=None):
            return [[Candidate(99)] for _ in states]

    with pytest.raises(ValueError, match=r"illegal action 99 for tree node 0"):
        MCTS(policy=Cheater(), verifier=lambda s: [0.0] * len(s)).search(
            TicTacToe(), Budget(simulations=3), rng=rng()
        )


def test_step_errors_name_the_tree_node():
    from treesearch import Tree

    tree = Tree(TicTacToe())
    tree.add_children(0, [4, 4], [0.5, 0.5])
    tree.state(1)
    tree.add_children(1, [4], [1.0])  # occupied cell: the game refuses the step
    with pytest.raises(ValueError) as info:
        tree.state(3)
    assert "tree node 3" in "\n".join(info.value.__notes__)


def test_more_bad_input():
    with pytest.raises(TypeError, match="State"):
        MCTS(UniformEvaluator()).search("not a state", Budget(simulations=3), rng=rng())
    with pytest.raises(TypeError, match="max_nodes"):
        MCTS(UniformEvaluator(), max_nodes="x")
    with pytest.raises(ValueError, match="max_nodes"):
        MCTS(UniformEvaluator(), max_nodes=0)
    with pytest.raises(TypeError, match="solver"):
        MCTS(UniformEvaluator(), solver="yes")
    assert MCTS(UniformEvaluator(), leaves_per_round=np.int64(2)).leaves_per_round == 2

    class StringValue:
        def evaluate(self, states, *, rng):
            return [Evaluation(np.ones(len(s.legal_actions())), "0.5") for s in states]

    with pytest.raises(TypeError, match="value of type str"):
        MCTS(StringValue()).search(TicTacToe(), Budget(simulations=3), rng=rng())
    with pytest.raises(TypeError, match="sequence of scores"):
        MCTS(verifier=lambda s: {0: 1.0}).search(Chain(2), Budget(simulations=3), rng=rng())


@pytest.mark.parametrize("selection", ["uct", "puct"])
def test_win_in_one_gets_the_most_visits_without_solver(selection):
    """algorithms.md section 6: after 200 simulations the winning move has the most visits."""
    state = TicTacToe.from_moves([0, 3, 1, 4])  # X to move wins at 2
    evaluator = RandomRollout() if selection == "uct" else UniformEvaluator()
    r = MCTS(evaluator, selection=selection, solver=False).search(
        state, Budget(simulations=200), rng=rng()
    )
    visits = r.policy()
    assert max(visits, key=visits.get) == 2
    assert r.action == 2


@pytest.mark.parametrize("selection", ["uct", "puct"])
def test_forced_block_gets_the_most_visits_without_solver(selection):
    state = TicTacToe.from_moves([0, 4, 8, 2])  # O threatens 2-4-6: X must take 6
    evaluator = RandomRollout() if selection == "uct" else UniformEvaluator()
    r = MCTS(evaluator, selection=selection, solver=False).search(
        state, Budget(simulations=1000), rng=rng()
    )
    visits = r.policy()
    assert max(visits, key=visits.get) == 6


@pytest.mark.parametrize("bad", [math.inf, -math.inf, math.nan])
def test_non_finite_verifier_scores_are_errors(bad):
    with pytest.raises(ValueError, match="non-finite"):
        MCTS(verifier=lambda s: [bad] * len(s)).search(Chain(3), Budget(simulations=3), rng=rng())


def test_wrong_lengths_from_user_callbacks():
    class ShortPolicy:
        def propose(self, states, *, rng, max_tokens=None):
            return []  # one list per state expected

    class NotCandidates:
        def propose(self, states, *, rng, max_tokens=None):
            return [[0] for _ in states]

    verifier = lambda s: [0.0] * len(s)  # noqa: E731
    with pytest.raises(ValueError, match="returned 0 lists for 1 states"):
        MCTS(policy=ShortPolicy(), verifier=verifier).search(
            Chain(3), Budget(simulations=3), rng=rng()
        )
    with pytest.raises(TypeError, match=r"expected treesearch\.Candidate"):
        MCTS(policy=NotCandidates(), verifier=verifier).search(
            Chain(3), Budget(simulations=3), rng=rng()
        )
    with pytest.raises(ValueError, match="returned 2 scores for 1 states"):
        MCTS(verifier=lambda s: [0.0, 0.0]).search(Chain(3), Budget(simulations=3), rng=rng())

    class ShortEvaluator:
        def evaluate(self, states, *, rng):
            return []

    with pytest.raises(ValueError, match="returned 0 evaluations for 1 states"):
        MCTS(ShortEvaluator()).search(TicTacToe(), Budget(simulations=3), rng=rng())


def test_each_search_logs_its_stop_at_debug(caplog):
    import logging

    from treesearch import BFS, LegalActionsPolicy

    with caplog.at_level(logging.DEBUG, logger="treesearch.search"):
        MCTS(RandomRollout(), selection="uct").search(
            ConnectFour(), Budget(simulations=7), rng=rng()
        )
        BFS(LegalActionsPolicy(), lambda s: [0.5] * len(s), beam_size=2, max_depth=2).search(
            Chain(2), Budget(simulations=5), rng=rng()
        )
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("MCTS stopped (simulations): 7 simulations") for m in messages)
    assert any(m.startswith("BFS stopped") for m in messages)


def test_all_zero_priors_fall_back_to_uniform_with_a_warning(caplog):
    import logging

    class Masked:
        def evaluate(self, states, *, rng):
            return [Evaluation(np.zeros(len(s.legal_actions())), 0.0) for s in states]

    for budget in (Budget(simulations=30), Budget(simulations=30, wall_time=1e9)):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="treesearch.search"):
            r = MCTS(Masked(), solver=False).search(TicTacToe(), budget, rng=rng())
        np.testing.assert_allclose(r.tree.prior[1:10], 1 / 9)
        warnings = [rec.getMessage() for rec in caplog.records]
        assert len(warnings) == 1  # one line per search, not one per node
        assert "prior 0 at 30 tree node(s) (first: node 0)" in warnings[0]


@pytest.mark.parametrize(("winner_sign", "expected"), [(-1.0, 3), (1.0, 2)])
def test_the_readme_sign_check_tells_right_from_wrong(winner_sign, expected):
    """From Nim(3) the right sign takes all three stones; a backwards sign does not."""
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Nim:
        stones: int
        to_play: int = 0

        @property
        def key(self):
            return (self.stones, self.to_play)

        def legal_actions(self):
            return tuple(range(1, min(3, self.stones) + 1))

        def step(self, take):
            return Nim(self.stones - take, 1 - self.to_play)

        def is_terminal(self):
            return self.stones == 0

        def terminal_value(self):
            return winner_sign if self.stones == 0 else None

    r = MCTS(verifier=lambda s: [0.5 if x.stones % 4 else -0.5 for x in s]).search(
        Nim(3), Budget(simulations=300), rng=rng()
    )
    assert r.action == expected and r.root_value == 1.0
