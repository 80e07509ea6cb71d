"""Tests for treesearch.games.arena: players, the OpenSpiel bridge, spec parsing, matches."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from treesearch import Budget
from treesearch.evaluators import RandomRollout
from treesearch.games import ConnectFour, TicTacToe
from treesearch.games.arena import (
    AlphaZeroPlayer,
    IllegalMoveError,
    MatchGame,
    MatchResult,
    MCTSPlayer,
    OpenSpielMCTSPlayer,
    Player,
    RandomPlayer,
    parse_player,
    play_match,
    winner_of,
)
from treesearch.games.gomoku import Gomoku

pyspiel = pytest.importorskip("pyspiel")


class PreferencePlayer:
    """Plays the first free cell of its preference list (deterministic, ignores rng)."""

    def __init__(self, preference, name):
        self.preference = preference
        self.name = name
        self.seen_to_play: list[int] = []
        self.resets = 0

    def reset(self):
        self.resets += 1

    def choose(self, state, *, rng):
        self.seen_to_play.append(state.to_play)
        legal = state.legal_actions()
        return next(a for a in self.preference if a in legal)


def winner_and_loser():
    # Winner takes the top row; the loser's cells 3, 5, 7 never make a line nor block it.
    winner = PreferencePlayer([0, 1, 2, 3, 4, 5, 6, 7, 8], "winner")
    loser = PreferencePlayer([3, 5, 7, 6, 8, 4, 0, 1, 2], "loser")
    return winner, loser


# ---------------------------------------------------------------------------- bookkeeping
def test_match_counts_wins_and_alternates_colours():
    winner, loser = winner_and_loser()
    result = play_match(winner, loser, games=4, new_game=TicTacToe, rng=np.random.default_rng(0))
    assert (result.a_wins, result.b_wins, result.draws, result.games) == (4, 0, 0, 4)
    assert result.a_win_rate == 1.0
    assert [g.first for g in result.records] == ["a", "b", "a", "b"]
    assert [g.winner for g in result.records] == ["a"] * 4
    # Hand-played: a first: X0 O3 X1 O5 X2 (row 0); b first: X3 O0 X5 O1 X7 O2.
    assert result.records[0].moves == (0, 3, 1, 5, 2)
    assert result.records[1].moves == (3, 0, 5, 1, 7, 2)
    assert (result.records[0].a_moves, result.records[0].b_moves) == (3, 2)
    assert (result.records[1].a_moves, result.records[1].b_moves) == (3, 3)
    # a is player 0 in even games and player 1 in odd ones: 3 + 3 + 3 + 3 turns seen.
    assert winner.seen_to_play == [0, 0, 0, 1, 1, 1, 0, 0, 0, 1, 1, 1]
    assert winner.resets == loser.resets == 4


def test_match_from_the_losers_side():
    winner, loser = winner_and_loser()
    result = play_match(loser, winner, games=3, new_game=TicTacToe, rng=np.random.default_rng(0))
    assert (result.a_wins, result.b_wins, result.draws) == (0, 3, 0)
    assert result.a_win_rate == 0.0
    assert result.to_dict()["b_wins"] == 3


def test_first_mover_wins_in_self_play_of_the_lowest_cell_player():
    # Both take the lowest free cell: X 0, 2, 4, 6 makes the 2-4-6 diagonal on move 7.
    a = PreferencePlayer(range(9), "low-a")
    b = PreferencePlayer(range(9), "low-b")
    result = play_match(a, b, games=5, new_game=TicTacToe, rng=np.random.default_rng(0))
    assert [g.winner for g in result.records] == ["a", "b", "a", "b", "a"]
    assert all(g.moves == (0, 1, 2, 3, 4, 5, 6) for g in result.records)
    assert result.a_win_rate == pytest.approx(3 / 5)


def test_drawn_games_count_half():
    draw = [0, 4, 8, 2, 6, 3, 5, 7, 1]  # a known drawn game
    assert TicTacToe.from_moves(draw).terminal_value() == 0.0

    class Script:
        name = "script"

        def choose(self, state, *, rng):
            return draw[9 - len(state.legal_actions())]

    result = play_match(
        Script(), Script(), games=2, new_game=TicTacToe, rng=np.random.default_rng(1)
    )
    assert (result.a_wins, result.b_wins, result.draws) == (0, 0, 2)
    assert result.a_win_rate == 0.5
    mixed = MatchResult(
        a_name="a",
        b_name="b",
        records=tuple(
            MatchGame(i, "a", (), w, 0.0, 0.0, 1, 1, None, None)
            for i, w in enumerate(["a", "a", "a", None, None, "b", "b", "b", "b", "b"])
        ),
    )
    assert mixed.a_win_rate == pytest.approx((3 + 2 / 2) / 10)
    assert math.isnan(MatchResult("a", "b").a_win_rate)


def test_seconds_per_move_are_charged_to_the_side_that_thought():
    class Slow(PreferencePlayer):
        def choose(self, state, *, rng):
            time.sleep(0.02)
            return super().choose(state, rng=rng)

    winner, loser = winner_and_loser()
    slow = Slow(winner.preference, "slow")
    result = play_match(slow, loser, games=2, new_game=TicTacToe, rng=np.random.default_rng(0))
    assert result.a_seconds_per_move >= 0.02
    assert result.b_seconds_per_move < 0.01
    moves_a = sum(g.a_moves for g in result.records)
    assert moves_a == 6
    assert sum(g.a_seconds for g in result.records) == pytest.approx(
        result.a_seconds_per_move * moves_a
    )


def test_winner_of_reads_the_final_state():
    assert winner_of(TicTacToe.from_moves([0, 3, 1, 4, 2])) == 0
    assert winner_of(TicTacToe.from_moves([8, 0, 7, 1, 3, 2])) == 1
    assert winner_of(TicTacToe.from_moves([0, 4, 8, 2, 6, 3, 5, 7, 1])) is None
    with pytest.raises(ValueError, match="without a value"):
        winner_of(TicTacToe())


def test_illegal_move_names_the_player():
    class Cheater:
        name = "cheater"

        def choose(self, state, *, rng):
            return 0  # cell 0, taken after the first move

    winner, _ = winner_and_loser()
    with pytest.raises(IllegalMoveError, match=r"player b \(cheater\) chose the illegal move 0"):
        play_match(winner, Cheater(), games=1, new_game=TicTacToe, rng=np.random.default_rng(0))


def test_match_validates_its_arguments():
    a, b = winner_and_loser()
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="games must be a positive int"):
        play_match(a, b, games=0, new_game=TicTacToe, rng=rng)
    with pytest.raises(TypeError, match=r"numpy\.random\.Generator"):
        play_match(a, b, games=1, new_game=TicTacToe, rng=0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="player b has no choose"):
        play_match(a, object(), games=1, new_game=TicTacToe, rng=rng)  # type: ignore[arg-type]


def test_match_is_reproducible_and_games_are_independent():
    def match(games, seed):
        return play_match(
            MCTSPlayer(simulations=30),
            RandomPlayer(),
            games=games,
            new_game=lambda: Gomoku(size=5, k=4),
            rng=np.random.default_rng(seed),
        )

    first, again, longer = match(2, 7), match(2, 7), match(3, 7)
    assert [g.moves for g in first.records] == [g.moves for g in again.records]
    # Each game has its own generator seeded up front: a longer match starts the same way.
    assert [g.moves for g in longer.records[:2]] == [g.moves for g in first.records]
    other = match(2, 8)
    assert [g.moves for g in other.records] != [g.moves for g in first.records]


# -------------------------------------------------------------------------------- strength
def test_mcts_beats_random_at_tictactoe():
    result = play_match(
        MCTSPlayer(simulations=200),
        RandomPlayer(),
        games=10,
        new_game=TicTacToe,
        rng=np.random.default_rng(2024),
    )
    assert result.a_wins >= 8, result.to_dict()
    assert result.b_wins == 0
    assert result.a_simulations_per_move is not None and result.a_simulations_per_move <= 200
    assert result.b_simulations_per_move is None


def test_mcts_player_takes_the_win_and_blocks():
    rng = np.random.default_rng(0)
    player = MCTSPlayer(simulations=300)
    # X to move with 0, 1 taken: 2 wins at once.
    assert player.choose(TicTacToe.from_moves([0, 3, 1, 4]), rng=rng) == 2
    # O to move; X threatens 0-1-2 and O has no win: O must block at 2.
    assert player.choose(TicTacToe.from_moves([0, 4, 1]), rng=rng) == 2


def test_mcts_player_reuses_its_tree_between_its_moves():
    rng = np.random.default_rng(3)
    player = MCTSPlayer(simulations=200, reuse_tree=True)
    state = ConnectFour()
    action = player.choose(state, rng=rng)
    first = player.last_result
    assert first is not None
    kids = first.tree.children(0)
    child = next(c for c in kids if first.tree.actions[c] == action)
    grandkids = first.tree.children(child)
    reply = max(grandkids, key=lambda g: first.tree.visits[g])
    earlier = int(first.tree.visits[reply])
    assert earlier > 0
    state = state.step(action).step(first.tree.actions[reply])
    player.choose(state, rng=rng)
    second = player.last_result
    assert second is not None
    assert second.tree.state(0).key == state.key
    assert int(second.tree.visits[0]) == earlier + 200
    # Without reuse the same position is searched from scratch.
    fresh = MCTSPlayer(simulations=200)
    fresh.choose(state, rng=rng)
    assert fresh.last_result is not None and int(fresh.last_result.tree.visits[0]) == 200


def test_random_player_plays_uniformly_legal_moves():
    rng = np.random.default_rng(0)
    state = TicTacToe.from_moves([4])
    counts = {a: 0 for a in state.legal_actions()}
    for _ in range(800):
        counts[RandomPlayer().choose(state, rng=rng)] += 1
    assert set(counts) == {0, 1, 2, 3, 5, 6, 7, 8}
    assert min(counts.values()) > 60  # 100 expected each


# --------------------------------------------------------------------------- time budgets
class SlowRollout(RandomRollout):
    """A random rollout that takes at least 5 ms per leaf."""

    def evaluate(self, states, *, rng):
        time.sleep(0.005)
        return super().evaluate(states, rng=rng)


def test_time_per_move_limits_our_search():
    player = parse_player("mcts", time_per_move=0.05)
    assert isinstance(player, MCTSPlayer)
    assert (player.simulations, player.time_per_move) == (None, 0.05)
    player.mcts.evaluator = SlowRollout()
    player.choose(Gomoku(size=9), rng=np.random.default_rng(0))
    # The clock is checked before each simulation and each one sleeps 5 ms: at most
    # 0.05 / 0.005 + 1 simulations, however busy the machine is.
    assert player.last_simulations is not None
    assert 1 <= player.last_simulations <= 11
    assert player.last_result is not None and player.last_result.stop_reason == "wall_time"


def test_time_and_simulations_together_stop_at_the_first():
    player = parse_player("mcts", simulations=40, time_per_move=30.0)
    assert (player.simulations, player.time_per_move) == (40, 30.0)
    player.choose(Gomoku(size=9), rng=np.random.default_rng(0))
    assert player.last_simulations == 40
    # A spec's own N is its whole budget: the shared time does not apply to it.
    explicit = parse_player("mcts:40", time_per_move=0.001)
    assert (explicit.simulations, explicit.time_per_move) == (40, None)


def test_openspiel_time_per_move_is_its_own_wall_clock_limit():
    player = OpenSpielMCTSPlayer(time_per_move=0.1)
    started = time.perf_counter()
    player.choose(Gomoku(size=9), rng=np.random.default_rng(0))
    elapsed = time.perf_counter() - started
    assert elapsed < 0.1 + 0.25  # loose: the bot checks the clock between simulations
    assert player.last_simulations is not None and player.last_simulations > 50
    # open_spiel 2.0's bot ignores max_simulations under a wall-clock limit: both are refused.
    with pytest.raises(ValueError, match="not both"):
        OpenSpielMCTSPlayer(simulations=30, time_per_move=10.0)
    with pytest.raises(ValueError, match="not both"):
        player.set_budget(simulations=30, time_per_move=1.0)
    assert (player.simulations, player.time_per_move) == (None, 0.1)
    assert parse_player("openspiel-mcts", simulations=30, time_per_move=0.5).simulations is None
    player.set_budget(simulations=30)
    player.choose(Gomoku(size=9), rng=np.random.default_rng(0))
    assert player.last_simulations == 30


def test_openspiel_without_a_wall_clock_argument_refuses_timed_play():
    class OldMCTSBot:
        def __init__(self, *args):
            if len(args) > 8:  # open_spiel releases before max_wall_clock_time
                raise TypeError("__init__(): incompatible constructor arguments")

    class OldPyspiel:
        RandomRolloutEvaluator = staticmethod(lambda n, seed: None)
        MCTSBot = OldMCTSBot
        ChildSelectionPolicy = pyspiel.ChildSelectionPolicy
        load_game = staticmethod(pyspiel.load_game)

    timed = OpenSpielMCTSPlayer(time_per_move=0.1)
    timed._pyspiel = OldPyspiel()
    with pytest.raises(RuntimeError, match="takes no max_wall_clock_time"):
        timed.choose(TicTacToe(), rng=np.random.default_rng(0))
    counted = OpenSpielMCTSPlayer(simulations=10)
    counted._pyspiel = OldPyspiel()
    assert isinstance(counted._make_bot(np.random.default_rng(0)), OldMCTSBot)


# -------------------------------------------------------------------------- openspiel bridge
def spiel_board(spiel_state, size):
    """OpenSpiel's gomoku ToString: the player to move, then the rows from row 0."""
    text = "".join(str(spiel_state).split())
    mover, cells = text[0], text[1:]
    assert len(cells) == size * size
    board = np.array([".bw".index(c) for c in cells], dtype=np.int8).reshape(size, size)
    return "BW".index(mover), board


class Checked:
    """Wraps the OpenSpiel player and checks its pyspiel state against ours at every turn."""

    def __init__(self, inner, size):
        self.inner, self.size, self.name, self.checks = inner, size, inner.name, 0

    def reset(self):
        self.inner.reset()

    def choose(self, state, *, rng):
        action = self.inner.choose(state, rng=rng)
        assert action in state.legal_actions()
        after = state.step(action)
        mover, board = spiel_board(self.inner.spiel_state, self.size)
        np.testing.assert_array_equal(board, after.board)
        if not after.is_terminal():
            assert mover == after.to_play
        self.checks += 1
        return action


@pytest.mark.parametrize("first", [True, False])
def test_openspiel_bot_follows_gomoku_games(first):
    bot = Checked(OpenSpielMCTSPlayer(simulations=40), 7)
    other = RandomPlayer()
    a, b = (bot, other) if first else (other, bot)
    result = play_match(
        a, b, games=2, new_game=lambda: Gomoku(size=7, k=4), rng=np.random.default_rng(5)
    )
    assert bot.checks == sum(g.a_moves if first else g.b_moves for g in result.records)
    assert bot.checks > 4


def test_openspiel_bot_follows_an_undo_and_a_new_game_without_reset():
    rng = np.random.default_rng(0)
    player = OpenSpielMCTSPlayer(simulations=20)

    def turn(state):
        action = player.choose(state, rng=rng)
        after = state.step(action)
        np.testing.assert_array_equal(spiel_board(player.spiel_state, 7)[1], after.board)
        return after

    def reply(state):  # the opponent takes the first free point
        return state.step(state.legal_actions()[0])

    start = Gomoku(size=7, k=4)
    second = reply(turn(start))
    third = reply(turn(second))
    turn(third)
    turn(second)  # back two moves, as after an undo in `treesearch play`
    turn(start)  # a new game without reset(): the start is on its path
    # A position far from its path: rebuilt from the moves Gomoku lists.
    turn(Gomoku.from_moves([3, 4, 5, 6, 10, 11], size=7, k=4))
    # A position set up from a picture has no move list: rebuilt from its stones.
    drawn = Gomoku.from_string(str(Gomoku.from_moves([40, 41, 42, 43, 30], size=7, k=4)), k=4)
    assert drawn.moves == ()
    turn(drawn)
    # Connect four positions cannot be rebuilt from a picture (gravity fixes the order).
    picture = ConnectFour.from_string(str(ConnectFour.from_moves([3, 3, 2, 4])))
    with pytest.raises(ValueError, match="cannot follow the game"):
        player.choose(picture, rng=rng)


def test_openspiel_bot_plays_tictactoe_and_connect_four():
    for new_game in (TicTacToe, ConnectFour):
        bot = OpenSpielMCTSPlayer(simulations=300)
        result = play_match(
            bot, RandomPlayer(), games=2, new_game=new_game, rng=np.random.default_rng(1)
        )
        assert result.b_wins == 0, (new_game, result.to_dict())
    blocker = OpenSpielMCTSPlayer(simulations=2000)
    assert blocker.choose(TicTacToe.from_moves([0, 3, 1, 4]), rng=np.random.default_rng(0)) == 2


def test_openspiel_bot_refuses_what_it_cannot_play():
    bot = OpenSpielMCTSPlayer(simulations=10)
    with pytest.raises(ValueError, match="overline"):
        bot.choose(Gomoku(size=7, k=4, exact=True), rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="plays TicTacToe, ConnectFour and Gomoku"):
        from treesearch.games import Chain

        bot.choose(Chain(3), rng=np.random.default_rng(0))


# ------------------------------------------------------------------------------ alphazero
@pytest.fixture
def one_torch_thread():
    # A tiny net's forward pass takes 0.3 ms on one thread but ~100 ms with two intra-op threads
    # when the two cores are busy (measured on the shared CI-sized machine).
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_alphazero_player_plays_legal_moves_and_reuses_its_tree(tmp_path, one_torch_thread):
    from treesearch.games.nets import PolicyValueNet, save_net

    path = tmp_path / "net.safetensors"
    save_net(path, PolicyValueNet(5, blocks=1, channels=8), metadata={"k": "4", "c_puct": "2.0"})
    player = parse_player(f"az:{path}", size=5, k=4, simulations=24)
    assert isinstance(player, AlphaZeroPlayer)
    assert player.mcts.c == 2.0 and player.mcts.dirichlet_alpha is None
    assert player.name == "az:net.safetensors"
    rng = np.random.default_rng(0)
    state = Gomoku(size=5, k=4)
    action = player.choose(state, rng=rng)
    first = player.last_result
    assert first is not None and action in state.legal_actions()
    child = next(c for c in first.tree.children(0) if first.tree.actions[c] == action)
    reply = max(first.tree.children(child), key=lambda g: first.tree.visits[g])
    earlier = int(first.tree.visits[reply])
    state = state.step(action).step(first.tree.actions[reply])
    player.choose(state, rng=rng)
    assert player.last_result is not None
    assert int(player.last_result.tree.visits[0]) == earlier + 24
    result = play_match(
        player, RandomPlayer(), games=2, new_game=lambda: Gomoku(size=5, k=4), rng=rng
    )
    assert result.games == 2
    with pytest.raises(ValueError, match="network for 5x5 boards, not 7"):
        parse_player(f"az:{path}", size=7)
    with pytest.raises(ValueError, match="trained for 4 in a row, not 5"):
        parse_player(f"az:{path}", size=5, k=5)


def test_alphazero_player_blocks_and_batches_leaves(tmp_path, one_torch_thread):
    """Decisive moves (on by default) make even an untrained net block an open four; with
    ``leaves_per_round`` the net sees several leaves per call."""
    from treesearch.games.nets import PolicyValueNet, save_net

    path = tmp_path / "net.safetensors"
    save_net(path, PolicyValueNet(9, blocks=1, channels=8), metadata={"k": "5"})
    must_block = Gomoku.from_moves([36, 0, 37, 1, 38, 2, 39], size=9)
    rng = np.random.default_rng(0)
    batched = AlphaZeroPlayer(path, simulations=32, leaves_per_round=4)
    assert batched.choose(must_block, rng=rng) == 40
    calls = batched.evaluator.calls
    assert calls < 32  # several leaves per network call
    assert batched.last_simulations == 32
    plain = AlphaZeroPlayer(path, simulations=32, decisive_moves=False)
    assert len(plain.mcts.search(must_block, Budget(simulations=32), rng=rng).actions) > 1


# ------------------------------------------------------------------------------------ specs
def test_parse_player_forms():
    assert isinstance(parse_player("random"), RandomPlayer)
    mcts = parse_player("mcts:123")
    assert isinstance(mcts, MCTSPlayer) and (mcts.simulations, mcts.time_per_move) == (123, None)
    assert mcts.name == "mcts:123"
    spiel = parse_player("openspiel-mcts:50")
    assert isinstance(spiel, OpenSpielMCTSPlayer) and spiel.simulations == 50
    timed = parse_player("openspiel-mcts", time_per_move=0.5)
    assert (timed.simulations, timed.time_per_move) == (None, 0.5)
    by_sims = parse_player(" MCTS ", simulations=7)
    assert isinstance(by_sims, MCTSPlayer) and by_sims.simulations == 7
    assert parse_player("mcts:9", simulations=7).simulations == 9  # the spec's N wins
    for player in (mcts, spiel, timed, RandomPlayer()):
        assert isinstance(player, Player)


@pytest.mark.parametrize(
    ("spec", "why"),
    [
        ("alphabeta", "unknown player kind"),
        ("mcts:0", "positive integer"),
        ("mcts:-3", "positive integer"),
        ("mcts:1.5", "positive integer"),
        ("openspiel-mcts:abc", "positive integer"),
        ("mcts", "needs a time per move"),
        ("openspiel-mcts", "needs a time per move"),
        ("random:1", "takes no argument"),
        ("az:", "needs a path"),
        ("", "unknown player kind"),
    ],
)
def test_parse_player_errors_list_the_valid_forms(spec, why):
    with pytest.raises(ValueError, match=why) as info:
        parse_player(spec)
    message = str(info.value)
    for form in ("random", "mcts:N", "openspiel-mcts:N", "az:PATH"):
        assert form in message


def test_parse_player_rejects_bad_types_and_files(tmp_path):
    with pytest.raises(TypeError, match="must be a str"):
        parse_player(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no such network file"):
        parse_player(f"az:{tmp_path / 'missing.safetensors'}")
    with pytest.raises(ValueError, match="time_per_move must be positive"):
        parse_player("mcts", time_per_move=-1.0)
    with pytest.raises(TypeError, match="simulations must be an int"):
        MCTSPlayer(simulations=2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs simulations= or time_per_move="):
        MCTSPlayer()
