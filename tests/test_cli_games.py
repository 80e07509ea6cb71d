"""Tests for ``treesearch arena`` and ``treesearch play`` (treesearch.cli_games), in-process."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from treesearch.cli import main
from treesearch.cli_games import play_session, run_arena
from treesearch.games import TicTacToe
from treesearch.games.arena import MCTSPlayer, parse_player, play_match, winner_of
from treesearch.games.gomoku import Gomoku, format_move, parse_move

pytest.importorskip("pyspiel")

KEYS = {
    "game",
    "size",
    "k",
    "seed",
    "time_per_move",
    "sims",
    "a",
    "b",
    "games",
    "a_wins",
    "b_wins",
    "draws",
    "a_win_rate",
    "a_seconds_per_move",
    "b_seconds_per_move",
    "a_simulations_per_move",
    "b_simulations_per_move",
    "records",
}


def last_json(out):
    return json.loads(out.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------ arena
def test_arena_json_for_a_tiny_tictactoe_match(capsys):
    args = ["arena", "--game", "tictactoe", "--a", "mcts:50", "--b", "random", "--games", "4"]
    assert main([*args, "--seed", "3", "--json"]) == 0
    captured = capsys.readouterr()
    summary = last_json(captured.out)
    assert set(summary) == KEYS
    assert (summary["game"], summary["a"], summary["b"], summary["games"]) == (
        "tictactoe",
        "mcts:50",
        "random",
        4,
    )
    assert (summary["size"], summary["k"], summary["seed"]) == (None, None, 3)
    assert summary["a_wins"] + summary["b_wins"] + summary["draws"] == 4
    assert summary["a_win_rate"] == (summary["a_wins"] + summary["draws"] / 2) / 4
    assert summary["b_simulations_per_move"] is None
    assert 1 <= summary["a_simulations_per_move"] <= 50
    records = summary["records"]
    assert [r["first"] for r in records] == ["a", "b", "a", "b"]
    for record in records:
        final = TicTacToe.from_moves(record["moves"])
        assert final.is_terminal()
        player = winner_of(final)
        sides = {0: record["first"], 1: "b" if record["first"] == "a" else "a"}
        assert record["winner"] == (None if player is None else sides[player])
        assert record["a_moves"] + record["b_moves"] == len(record["moves"])
    # The table and the progress bar.
    assert "a mcts:50" in captured.out and "b random" in captured.out
    assert "4/4 games" in captured.err
    # The same match through the library gives the same games.
    result = play_match(
        parse_player("mcts:50"),
        parse_player("random"),
        games=4,
        new_game=TicTacToe,
        rng=np.random.default_rng(3),
    )
    assert [list(g.moves) for g in result.records] == [r["moves"] for r in records]


def test_arena_gomoku_against_openspiel(capsys):
    args = ["arena", "--size", "5", "--k", "4", "--a", "openspiel-mcts:20", "--b", "random"]
    assert main([*args, "--games", "2", "--json"]) == 0
    summary = last_json(capsys.readouterr().out)
    assert (summary["game"], summary["size"], summary["k"]) == ("gomoku", 5, 4)
    for record in summary["records"]:
        final = Gomoku.from_moves(record["moves"], size=5, k=4)
        assert final.is_terminal()
    assert summary["a_simulations_per_move"] <= 20


def test_arena_time_per_move_reaches_the_bare_specs():
    _, summary = run_arena(
        game="tictactoe", a="mcts", b="openspiel-mcts", games=2, time_per_move=0.01, seed=1
    )
    assert summary["time_per_move"] == 0.01
    # Loose bounds: each move is cut at 10 ms (plus one simulation and the call itself).
    assert summary["a_seconds_per_move"] < 0.2
    assert summary["b_seconds_per_move"] < 0.2


def test_arena_help_says_a_specs_own_n_is_its_whole_budget(capsys):
    assert main(["arena", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "also caps" not in text
    assert "is its whole budget" in text
    # ... and it is: a time per move far below one simulation does not cut mcts:N short.
    _, summary = run_arena(
        game="tictactoe", a="mcts:40", b="random", games=1, time_per_move=1e-9, seed=3
    )
    assert summary["a_simulations_per_move"] > 20


@pytest.mark.parametrize(
    ("args", "status", "message"),
    [
        (["--game", "tictactoe", "--size", "9", "--a", "random", "--b", "random"], 1, "only"),
        (["--a", "minimax", "--b", "random"], 1, "Valid forms"),
        (["--a", "mcts", "--b", "random"], 1, "needs a time per move"),
        (["--a", "random", "--b", "random", "--sims", "5", "--time-per-move", "1"], 2, "not"),
        (["--a", "random", "--b", "random", "--time-per-move", "-1"], 2, "positive"),
        (["--a", "random", "--b", "random", "--games", "0"], 2, ">= 1"),
        (["--size", "1", "--a", "random", "--b", "random"], 1, "size"),
    ],
)
def test_arena_errors(capsys, args, status, message):
    assert main(["arena", *args]) == status
    err = capsys.readouterr().err
    assert message in err
    if status == 1:
        assert err.strip().splitlines()[-1].startswith("treesearch: error:")


# ------------------------------------------------------------------------------------- play
class Scripted:
    """An agent that takes the first free point of a list (top row first by default)."""

    def __init__(self, order=range(49)):
        self.order, self.name, self.resets = list(order), "scripted", 0

    def reset(self):
        self.resets += 1

    def choose(self, state, *, rng):
        return next(a for a in self.order if a in state.legal_actions())


def session(lines, agent, *, human=0, size=7, k=4):
    script = iter(lines)
    out: list[str] = []

    def read(prompt):
        out.append(prompt)
        try:
            return next(script)
        except StopIteration:
            raise EOFError from None

    final = play_session(
        lambda: Gomoku(size=size, k=k),
        agent,
        human=human,
        parse_move=lambda text: parse_move(text, size),
        format_move=lambda action: format_move(action, size),
        read=read,
        write=out.append,
        rng=np.random.default_rng(0),
    )
    return final, "\n".join(out)


def test_play_moves_bad_input_undo_and_a_win():
    agent = Scripted()
    lines = ["help", "z9", "e", "d4", "d4", "a7", "undo", "undo", "d4", "d5", "d6", "d3"]
    final, text = session([*lines, "d2", "quit", "never read"], agent)
    assert "undo      take back" in text
    assert "'z9' is off the 7x7 board" in text and "Type a move like e5" in text
    assert "like 'e5', got 'e'" in text
    assert "d4 is occupied" in text and "a7 is occupied" in text
    assert "took back your last move and the agent's reply" in text
    assert "nothing to undo" in text
    # d3-d6 is four in a column before the agent's a7-b7-c7 reaches d7.
    assert "you win!" in text
    assert "the game is over" in text  # d2 after the end
    assert final.winner == 0
    assert sorted(np.flatnonzero(final.board.ravel() == 1)) == [
        parse_move(m, 7) for m in ("d6", "d5", "d4", "d3")
    ]
    assert sorted(np.flatnonzero(final.board.ravel() == 2)) == [0, 1, 2]
    assert text.count("agent plays") == 4  # a7 once before the undo, then a7, b7, c7
    assert "never read" not in text and text.endswith("bye")


def test_play_undo_after_a_win_takes_back_only_the_winning_move():
    final, text = session(["d4", "d5", "d6", "d3", "undo"], Scripted())
    assert "took back your last move\n" in text + "\n"
    assert final.winner is None and final.to_play == 0 and final.num_moves == 6


def test_play_agent_first_and_new_game():
    agent = Scripted(order=[24, 0, 1, 2, 3, 4])
    final, text = session(["undo", "d5", "undo", "new"], agent, human=1)
    assert "nothing to undo" in text
    assert "agent plays d4" in text
    # After undo the agent's first stone stays and it is the person's turn again; "new"
    # restarts and the agent opens again.
    assert text.count("agent plays d4") == 2
    assert agent.resets == 2
    assert final.num_moves == 1 and final.board.ravel()[24] == 1


def test_play_time_command_sets_the_agents_budget():
    agent = MCTSPlayer(simulations=10)
    final, text = session(["time", "time abc", "time 0.05", "d4"], agent)
    assert "usage: time S" in text and "time: expected seconds" in text
    assert "the agent now thinks 0.05 s per move" in text
    assert (agent.simulations, agent.time_per_move) == (None, 0.05)
    assert final.num_moves == 2
    _, text = session(["time 1"], Scripted())
    assert "has no thinking time" in text


def test_play_command_reads_stdin(monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("d4\nquit\n"))
    args = ["play", "gomoku", "--size", "7", "--k", "4", "--agent", "mcts:20", "--seed", "0"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "Gomoku 7x7, 4 in a row, against mcts:20. You play X" in out
    assert "agent plays" in out and "20 simulations" in out
    assert out.rstrip().endswith("bye")


def test_play_default_agent(monkeypatch, capsys, tmp_path):
    import treesearch.games.arena as arena

    monkeypatch.setattr(arena, "_AGENT_DIR", tmp_path)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert main(["play", "gomoku", "--first", "human"]) == 0
    assert "against mcts:2000." in capsys.readouterr().out
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert main(["play", "gomoku", "--time-per-move", "0.5"]) == 0
    assert "against mcts." in capsys.readouterr().out
    torch = pytest.importorskip("torch")
    from treesearch.games.nets import PolicyValueNet, save_net

    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        save_net(tmp_path / "gomoku7.safetensors", PolicyValueNet(7, blocks=0, channels=4))
        monkeypatch.setattr("sys.stdin", io.StringIO("quit\n"))
        assert main(["play", "gomoku", "--size", "7", "--first", "agent"]) == 0
        out = capsys.readouterr().out
    finally:
        torch.set_num_threads(threads)
    assert f"against az:{tmp_path / 'gomoku7.safetensors'}" in out
    assert "agent plays" in out


def test_play_errors(capsys):
    assert main(["play", "chess"]) == 2
    assert main(["play", "gomoku", "--agent", "nope"]) == 1
    assert "Valid forms" in capsys.readouterr().err
    with pytest.raises(ValueError, match="human must be player 0 or 1"):
        session([], Scripted(), human=2)
