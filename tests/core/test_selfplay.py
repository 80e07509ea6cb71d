"""AlphaZero self-play (treesearch.selfplay): batching across games, targets, temperature,
tree reuse, resignation, determinism and validation."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from functools import partial

import numpy as np
import pytest

from treesearch import Evaluation, RandomRollout, State, UniformEvaluator
from treesearch.games import ConnectFour, Gomoku, TicTacToe
from treesearch.selfplay import (
    GameRecord,
    SelfPlayConfig,
    SelfPlayStats,
    dense_policy,
    play_games,
    position_targets,
)


class Counting:
    """Wraps an evaluator and records the batch size of every call."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.sizes: list[int] = []

    def evaluate(self, states: Sequence[State], *, rng: np.random.Generator) -> list[Evaluation]:
        self.sizes.append(len(states))
        return self.inner.evaluate(states, rng=rng)  # type: ignore[attr-defined, no-any-return]


class Biased:
    """Uniform priors; player 1 always believes it is losing (-0.95), player 0 winning."""

    def evaluate(self, states: Sequence[State], *, rng: np.random.Generator) -> list[Evaluation]:
        out = []
        for state in states:
            n = len(state.legal_actions())
            out.append(Evaluation(np.full(n, 1.0 / n), -0.95 if state.to_play == 1 else 0.95))
        return out


class Timed(UniformEvaluator):
    """A uniform evaluator with a `seconds` counter that advances 0.25 per call."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds = 0.0
        self.calls = 0

    def evaluate(self, states: Sequence[State], *, rng: np.random.Generator) -> list[Evaluation]:
        self.seconds += 0.25
        self.calls += 1
        return super().evaluate(states, rng=rng)


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


# --------------------------------------------------------------------------- batching


def test_one_evaluator_call_per_round_for_all_games():
    evaluator = Counting(UniformEvaluator())
    config = SelfPlayConfig(
        simulations=8, num_parallel_games=4, max_moves=3, reuse_tree=False, temperature_moves=1
    )
    records = play_games(evaluator, ConnectFour, 6, config=config, rng=rng())
    assert [len(r.moves) for r in records] == [3] * 6
    assert all(r.truncated and r.outcome == 0.0 for r in records)
    # Games 0-3 run together for 3 moves of 8 rounds, each round one call with one leaf per
    # game; then games 4-5 take the freed slots. No terminal leaf is within reach.
    assert evaluator.sizes == [4] * 24 + [2] * 24


def test_virtual_loss_gathers_several_leaves_per_tree_in_the_same_call():
    evaluator = Counting(UniformEvaluator())
    config = SelfPlayConfig(
        simulations=8, num_parallel_games=4, max_moves=3, reuse_tree=False, leaves_per_round=4
    )
    play_games(evaluator, ConnectFour, 4, config=config, rng=rng())
    # Per move and tree: round 1 expands the root (the second pick would be the same leaf,
    # which ends the round), round 2 gathers 4 children, round 3 the 3 simulations left.
    assert evaluator.sizes == [4, 16, 12] * 3


def test_slots_refill_as_games_finish():
    evaluator = Counting(UniformEvaluator())
    config = SelfPlayConfig(simulations=4, num_parallel_games=3)
    records = play_games(evaluator, TicTacToe, 7, config=config, rng=rng(5))
    assert len(records) == 7
    assert evaluator.sizes[0] == 3  # the three empty boards, in one call
    assert max(evaluator.sizes) == 3
    # One leaf per tree and round (terminal leaves need no call): at most 4 per search.
    positions = sum(len(r.positions) for r in records)
    assert sum(evaluator.sizes) <= 4 * positions


# --------------------------------------------------------------------------- targets


def winner_of(state: State) -> int | None:
    return state.winner  # type: ignore[attr-defined, no-any-return]


@pytest.mark.parametrize(
    ("new_game", "sims"),
    [(TicTacToe, 24), (partial(Gomoku, 5, 4), 16)],
    ids=["tictactoe", "gomoku5"],
)
def test_outcomes_and_z_signs(new_game, sims):
    config = SelfPlayConfig(simulations=sims, num_parallel_games=4, temperature_moves=2)
    records = play_games(RandomRollout(), new_game, 10, config=config, rng=rng(1))
    outcomes = set()
    for record in records:
        final = record.final_state
        assert final.is_terminal()
        winner = winner_of(final)
        expected = {0: 1.0, 1: -1.0, None: 0.0}[winner]
        assert record.outcome == expected
        outcomes.add(record.outcome)
        targets = position_targets(record)
        assert len(targets) == len(record.moves) == len(record.positions)
        for i, (state, actions, pi, z) in enumerate(targets):
            assert state.to_play == i % 2
            if winner is None:
                assert z == 0.0
                assert str(z) == "0.0"  # not -0.0
            else:
                assert z == (1.0 if state.to_play == winner else -1.0)
            assert actions == record.positions[i].actions
            assert pi is record.positions[i].policy
    assert len(outcomes) >= 2  # the check saw more than one kind of result


def test_positions_replay_the_moves_and_policies_are_distributions_over_legal_moves():
    config = SelfPlayConfig(simulations=20, num_parallel_games=3)
    records = play_games(UniformEvaluator(), TicTacToe, 3, config=config, rng=rng(2))
    for record in records:
        for i, position in enumerate(record.positions):
            assert position.state == TicTacToe.from_moves(record.moves[:i])
            assert position.to_play == position.state.to_play
            assert sorted(position.actions) == sorted(position.state.legal_actions())
            assert np.all(position.policy >= 0)
            assert position.policy.sum() == pytest.approx(1.0)
            np.testing.assert_allclose(position.policy, position.visits / position.visits.sum())
            assert record.moves[i] in position.actions
        assert TicTacToe.from_moves(record.moves) == record.final_state


# --------------------------------------------------------------------------- move choice


def test_temperature_schedule():
    config = SelfPlayConfig(simulations=24, num_parallel_games=6, temperature_moves=3)
    records = play_games(UniformEvaluator(), ConnectFour, 6, config=config, rng=rng(3))
    sampled_not_best = 0
    for record in records:
        for i, (move, position) in enumerate(zip(record.moves, record.positions, strict=True)):
            played = position.visits[position.actions.index(move)]
            if i >= 3:
                assert position.actions[int(np.argmax(position.visits))] == move
            else:
                assert played > 0  # sampled in proportion to visits: never an unvisited move
                sampled_not_best += played < position.visits.max()
    assert sampled_not_best > 0  # temperature 1 really sampled


def test_temperature_zero_plays_the_most_visited_move_from_the_start():
    config = SelfPlayConfig(simulations=16, num_parallel_games=2, temperature_moves=0)
    records = play_games(UniformEvaluator(), TicTacToe, 2, config=config, rng=rng(4))
    for record in records:
        for move, position in zip(record.moves, record.positions, strict=True):
            assert position.actions[int(np.argmax(position.visits))] == move


def test_solver_plays_a_proven_win_at_once():
    # X to move with 0 and 1 taken: 2 wins. Temperature sampling would often miss it.
    config = SelfPlayConfig(simulations=40, num_parallel_games=4, solver=True)
    records = play_games(
        UniformEvaluator(), lambda: TicTacToe.from_moves([0, 3, 1, 4]), 8, config=config, rng=rng()
    )
    assert all(r.moves == (2,) and r.outcome == 1.0 for r in records)


@pytest.mark.parametrize("reuse", [True, False])
def test_tree_reuse_keeps_the_chosen_childs_visits(reuse):
    sims = 30
    config = SelfPlayConfig(
        simulations=sims, num_parallel_games=2, max_moves=6, reuse_tree=reuse, temperature_moves=3
    )
    records = play_games(RandomRollout(), ConnectFour, 2, config=config, rng=rng(6))
    checked = deep = 0
    for record in records:
        for t in range(len(record.positions) - 1):
            before, after = record.positions[t], record.positions[t + 1]
            kept = int(before.visits[before.actions.index(record.moves[t])])
            # The new root brings its visits; the first visit of a node expands it, so its
            # children hold one visit fewer, plus one per new simulation.
            expected = (kept - 1 + sims) if reuse and kept > 0 else sims - 1
            assert int(after.visits.sum()) == expected
            checked += 1
            deep += kept > 1
    assert checked == 10
    assert deep >= 5  # most moves went to subtrees with visits below their root


# --------------------------------------------------------------------------- resignation


def test_resignation_ends_the_game_for_the_resigning_player():
    config = SelfPlayConfig(
        simulations=8,
        num_parallel_games=3,
        resign_threshold=0.9,
        resign_disabled_fraction=0.0,
        resign_min_moves=3,
    )
    stats = SelfPlayStats()
    records = play_games(Biased(), ConnectFour, 3, config=config, rng=rng(), stats=stats)
    for record in records:
        # Player 1 is to move after 1 and 3 moves; the minimum is 3 moves.
        assert record.resigned_by == 1
        assert len(record.moves) == 3
        assert len(record.positions) == 4
        assert record.outcome == 1.0
        assert not record.resign_disabled and not record.false_resignation
        assert not record.final_state.is_terminal()
        zs = [z for *_, z in position_targets(record)]
        assert zs == [1.0, -1.0, 1.0, -1.0]
    assert stats.resignations == 3
    assert stats.positions == 12 and stats.moves == 9


def test_resign_disabled_games_record_false_resignations():
    config = SelfPlayConfig(
        simulations=8,
        num_parallel_games=4,
        resign_threshold=0.9,
        resign_disabled_fraction=1.0,
        temperature_moves=9,
    )
    stats = SelfPlayStats()
    records = play_games(Biased(), TicTacToe, 12, config=config, rng=rng(8), stats=stats)
    flags = []
    for record in records:
        assert record.resign_disabled and record.resigned_by is None
        assert record.final_state.is_terminal()
        assert record.would_have_resigned == (1,)  # player 1 always believes it is lost
        # A false resignation: player 1 would have resigned but did not lose.
        assert record.false_resignation == (record.outcome <= 0)
        flags.append(record.false_resignation)
    assert True in flags and False in flags
    assert stats.resign_disabled_games == stats.would_resign_games == 12
    assert stats.false_resignations == sum(flags)
    assert stats.false_resignation_rate == sum(flags) / 12


def test_false_resignation_rate_counts_only_games_that_crossed_the_threshold():
    """No-resign games in which nobody crossed the threshold do not dilute the rate."""
    from treesearch.selfplay import GameRecord, _count

    def record(would: tuple[int, ...], false: bool) -> GameRecord:
        return GameRecord(
            moves=(),
            positions=(),
            outcome=1.0,
            resigned_by=None,
            resign_disabled=True,
            would_have_resigned=would,
            false_resignation=false,
            truncated=False,
            final_state=TicTacToe(),
        )

    stats = SelfPlayStats()
    for rec in (record((1,), True), record((0,), False), record((), False), record((), False)):
        _count(stats, rec)
    assert stats.resign_disabled_games == 4
    assert stats.would_resign_games == 2
    assert stats.false_resignation_rate == 0.5


def test_resign_disabled_fraction_is_drawn_per_game():
    config = SelfPlayConfig(
        simulations=4,
        num_parallel_games=8,
        resign_threshold=0.9,
        resign_disabled_fraction=0.5,
        resign_min_moves=1,
    )
    records = play_games(Biased(), ConnectFour, 40, config=config, rng=rng(9))
    disabled = [r.resign_disabled for r in records]
    assert 8 <= sum(disabled) <= 32
    for record in records:
        if record.resign_disabled:
            assert record.resigned_by is None and record.final_state.is_terminal()
        else:
            assert record.resigned_by == 1 and len(record.moves) == 1


def test_no_threshold_never_resigns_and_disables_nothing():
    config = SelfPlayConfig(simulations=4, num_parallel_games=4, resign_disabled_fraction=1.0)
    records = play_games(Biased(), TicTacToe, 4, config=config, rng=rng())
    assert all(r.resigned_by is None and not r.resign_disabled for r in records)
    assert all(r.would_have_resigned == () for r in records)


# --------------------------------------------------------------------------- runs


def test_same_seed_same_games_and_different_seed_different_games():
    config = SelfPlayConfig(simulations=12, num_parallel_games=3, leaves_per_round=2)

    def run(seed: int) -> list[GameRecord]:
        return play_games(RandomRollout(), ConnectFour, 4, config=config, rng=rng(seed))

    a, b, c = run(11), run(11), run(12)
    for ra, rb in zip(a, b, strict=True):
        assert ra.moves == rb.moves
        assert ra.outcome == rb.outcome
        for pa, pb in zip(ra.positions, rb.positions, strict=True):
            np.testing.assert_array_equal(pa.visits, pb.visits)
            assert pa.root_value == pb.root_value
    assert [r.moves for r in a] != [r.moves for r in c]


def test_stats_progress_and_network_share():
    evaluator = Timed()
    stats = SelfPlayStats()
    seen: list[GameRecord] = []
    config = SelfPlayConfig(simulations=6, num_parallel_games=2)
    records = play_games(
        evaluator, TicTacToe, 3, config=config, rng=rng(), stats=stats, progress=seen.append
    )
    assert sorted(map(id, seen)) == sorted(map(id, records))
    assert stats.games == 3
    assert stats.moves == sum(len(r.moves) for r in records)
    assert stats.positions == sum(len(r.positions) for r in records) == stats.searches
    assert stats.evaluator_seconds == 0.25 * evaluator.calls
    assert stats.seconds > 0
    assert stats.positions_per_second == stats.positions / stats.seconds
    assert stats.network_share == stats.evaluator_seconds / stats.seconds
    # A second call adds to the same counters.
    play_games(evaluator, TicTacToe, 1, config=config, rng=rng(), stats=stats)
    assert stats.games == 4
    assert stats.evaluator_seconds == 0.25 * evaluator.calls
    assert set(stats.to_dict()) >= {"positions_per_second", "network_share", "games"}
    plain = SelfPlayStats()
    play_games(UniformEvaluator(), TicTacToe, 1, config=config, rng=rng(), stats=plain)
    assert plain.evaluator_seconds is None and plain.network_share is None


def test_zero_games():
    assert play_games(UniformEvaluator(), TicTacToe, 0, rng=rng()) == []


def test_dense_policy():
    dense = dense_policy((4, 0, 7), np.array([0.5, 0.25, 0.25]), 9)
    assert dense.dtype == np.float32
    np.testing.assert_array_equal(dense, [0.25, 0, 0, 0, 0.5, 0, 0, 0.25, 0])
    with pytest.raises(ValueError, match="shape"):
        dense_policy((1, 2), np.array([1.0]), 9)
    with pytest.raises(ValueError, match=r"\[0, 9\)"):
        dense_policy((1, 9), np.array([0.5, 0.5]), 9)
    with pytest.raises(TypeError, match="int actions"):
        dense_policy(("a", "b"), np.array([0.5, 0.5]), 9)


def test_selfplay_with_a_network_on_gomoku():
    torch = pytest.importorskip("torch")
    from treesearch.games.nets import NetEvaluator, PolicyValueNet

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        evaluator = NetEvaluator(PolicyValueNet(5, blocks=1, channels=8, value_hidden=8))
        stats = SelfPlayStats()
        config = SelfPlayConfig(simulations=8, num_parallel_games=3, max_moves=4)
        records = play_games(
            evaluator, partial(Gomoku, 5, 4), 3, config=config, rng=rng(), stats=stats
        )
    finally:
        torch.set_num_threads(threads)
    assert [len(r.moves) for r in records] == [4, 4, 4]
    # 4 moves of 8 rounds, each one call for the 3 games.
    assert evaluator.calls == 32
    assert evaluator.positions == 96
    assert stats.evaluator_seconds == pytest.approx(evaluator.seconds)
    assert stats.network_share is not None and 0 < stats.network_share < 1


def test_core_module_does_not_import_torch():
    code = "import sys, treesearch.selfplay; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"simulations": 1}, ValueError, "simulations"),
        ({"simulations": 10.0}, TypeError, "simulations"),
        ({"num_parallel_games": 0}, ValueError, "num_parallel_games"),
        ({"c_puct": -1.0}, ValueError, "c_puct"),
        ({"c_puct": "1"}, TypeError, "c_puct"),
        ({"c_base": 0.0}, ValueError, "c_base"),
        ({"dirichlet_alpha": 0.0}, ValueError, "dirichlet_alpha"),
        ({"dirichlet_epsilon": 1.5}, ValueError, "dirichlet_epsilon"),
        ({"temperature_moves": -1}, ValueError, "temperature_moves"),
        ({"reuse_tree": 1}, TypeError, "reuse_tree"),
        ({"leaves_per_round": 0}, ValueError, "leaves_per_round"),
        ({"virtual_loss": True}, TypeError, "virtual_loss"),
        ({"resign_threshold": 1.0}, ValueError, "resign_threshold"),
        ({"resign_threshold": -0.5}, ValueError, "resign_threshold"),
        ({"resign_threshold": float("nan")}, ValueError, "resign_threshold"),
        ({"resign_disabled_fraction": 1.1}, ValueError, "resign_disabled_fraction"),
        ({"resign_min_moves": -1}, ValueError, "resign_min_moves"),
        ({"max_moves": 0}, ValueError, "max_moves"),
    ],
)
def test_config_validation(kwargs, error, match):
    with pytest.raises(error, match=match):
        SelfPlayConfig(**kwargs)


def test_config_is_frozen():
    config = SelfPlayConfig()
    with pytest.raises(AttributeError):
        config.simulations = 5  # type: ignore[misc]


def test_numpy_scalars_are_stored_as_plain_python_values():
    """numpy scalars pass the checks; the config keeps plain values, so asdict() is JSON."""
    import dataclasses
    import json

    config = SelfPlayConfig(
        simulations=np.int64(8),
        c_puct=np.float32(1.5),
        reuse_tree=np.bool_(False),
        max_moves=np.int32(20),
    )
    data = json.loads(json.dumps(dataclasses.asdict(config)))
    assert data["simulations"] == 8 and data["c_puct"] == 1.5 and data["reuse_tree"] is False
    assert type(config.simulations) is int and type(config.c_puct) is float
    assert type(config.reuse_tree) is bool and type(config.max_moves) is int


def test_play_games_validation():
    ev = UniformEvaluator()
    config = SelfPlayConfig(simulations=2, num_parallel_games=1)
    with pytest.raises(TypeError, match="rng"):
        play_games(ev, TicTacToe, 1, config=config, rng=0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="num_games"):
        play_games(ev, TicTacToe, -1, config=config, rng=rng())
    with pytest.raises(TypeError, match="num_games"):
        play_games(ev, TicTacToe, 1.0, config=config, rng=rng())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="config"):
        play_games(ev, TicTacToe, 1, config={"simulations": 2}, rng=rng())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="new_game"):
        play_games(ev, TicTacToe(), 1, config=config, rng=rng())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="State"):
        play_games(ev, lambda: "board", 1, config=config, rng=rng())  # type: ignore[arg-type, return-value]
    finished = TicTacToe.from_moves([0, 3, 1, 4, 2])
    with pytest.raises(ValueError, match="terminal"):
        play_games(ev, lambda: finished, 1, config=config, rng=rng())
    with pytest.raises(TypeError, match="evaluator"):
        play_games(object(), TicTacToe, 1, config=config, rng=rng())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="stats"):
        play_games(ev, TicTacToe, 1, config=config, rng=rng(), stats={})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="GameRecord"):
        position_targets("record")  # type: ignore[arg-type]


def test_single_agent_problems_use_the_reward_as_every_target():
    from treesearch.games import Chain

    config = SelfPlayConfig(simulations=16, num_parallel_games=4, temperature_moves=0)
    records = play_games(UniformEvaluator(), partial(Chain, 3), 4, config=config, rng=rng())
    for record in records:
        # With zero values and uniform priors the search finds the reward only by luck, so
        # check the bookkeeping: outcome = the terminal reward, every z equals it.
        assert record.outcome == record.final_state.terminal_value()
        assert [z for *_, z in position_targets(record)] == [record.outcome] * 3


class ThreePlayers:
    to_play = 2
    key = 0

    def legal_actions(self) -> tuple[int, ...]:
        return (0,)

    def step(self, action: int) -> ThreePlayers:
        return self

    def is_terminal(self) -> bool:
        return False

    def terminal_value(self) -> float | None:
        return None


def test_more_than_two_players_are_refused():
    with pytest.raises(ValueError, match="to_play 0 or 1"):
        play_games(UniformEvaluator(), ThreePlayers, 1, rng=rng())
