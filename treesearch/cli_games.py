"""The game commands of ``treesearch``: ``arena`` (a match between two players) and ``play``
(a person against an agent in the terminal).

``treesearch.cli`` wires these subcommands in; the command owns the terminal (the library never
prints). :func:`play_session` runs the interactive loop with injected ``read``/``write``
functions so tests can drive it with scripted input.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from .games.arena import MatchProgress, MatchResult, Player
    from .interfaces import State

from ._cli_util import int_at_least

__all__ = ["add_game_commands", "play_session", "run_arena"]

_PROG = "treesearch"
_BAR_WIDTH = 30
GAMES = ("tictactoe", "connect_four", "gomoku")
_DEFAULT_SIZE = 9
_DEFAULT_K = 5


# ------------------------------------------------------------------------------------ parsing
_positive_int = int_at_least(1)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive seconds, got {text!r}")
    return value


def add_game_commands(commands: Any) -> None:
    """Add the ``arena`` and ``play`` subcommands to ``commands`` (an argparse subparsers
    object)."""
    arena = commands.add_parser(
        "arena",
        help="a match between two players",
        description=(
            "Play a match between two players with alternating colours and report wins, draws "
            "and the time per move. Player specs: random, mcts:N, mcts, openspiel-mcts:N, "
            "openspiel-mcts, az:PATH (a bare mcts / openspiel-mcts / az uses --time-per-move or "
            "--sims; the N of mcts:N and openspiel-mcts:N is its whole budget, which "
            "--time-per-move and --sims do not change)."
        ),
    )
    arena.add_argument("--game", choices=GAMES, default="gomoku", help="(default: %(default)s)")
    arena.add_argument(
        "--size",
        type=_positive_int,
        metavar="N",
        help=f"Gomoku board side (default: {_DEFAULT_SIZE})",
    )
    arena.add_argument(
        "--k",
        type=_positive_int,
        metavar="K",
        help=f"Gomoku stones in a row (default: {_DEFAULT_K})",
    )
    arena.add_argument("--a", required=True, metavar="SPEC", help="player a (first in game 0)")
    arena.add_argument("--b", required=True, metavar="SPEC", help="player b")
    arena.add_argument(
        "--games", type=_positive_int, default=40, metavar="N", help="(default: %(default)s)"
    )
    budget = arena.add_mutually_exclusive_group()
    budget.add_argument(
        "--time-per-move", type=_seconds, metavar="S", help="seconds per move for every searcher"
    )
    budget.add_argument(
        "--sims", type=_positive_int, metavar="N", help="simulations per move for bare specs"
    )
    arena.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    arena.add_argument("--device", default="cpu", help="device of az players (default: cpu)")
    arena.add_argument(
        "--threads",
        type=_positive_int,
        default=1,
        help="torch CPU threads of az players (default: %(default)s; a second thread waiting for "
        "a busy core makes every network call many times slower)",
    )
    arena.add_argument(
        "--json", action="store_true", help="print the result as one JSON object, last line"
    )
    arena.set_defaults(handler=_cmd_arena)

    play = commands.add_parser(
        "play",
        help="play Gomoku against an agent in the terminal",
        description=(
            "Play Gomoku against an agent. Type moves like e5 (column letter, row number from "
            "the bottom); 'help' lists the commands (undo, time, new, quit)."
        ),
    )
    play.add_argument("game", choices=("gomoku",), help="the game")
    play.add_argument(
        "--size",
        type=_positive_int,
        default=_DEFAULT_SIZE,
        metavar="N",
        help="board side (default: %(default)s)",
    )
    play.add_argument(
        "--k",
        type=_positive_int,
        default=_DEFAULT_K,
        metavar="K",
        help="stones in a row (default: %(default)s)",
    )
    play.add_argument(
        "--agent",
        metavar="SPEC",
        help="the opponent (default: the shipped agent for this board if present, else mcts:2000)",
    )
    play.add_argument(
        "--first", choices=("human", "agent"), default="human", help="(default: %(default)s)"
    )
    play.add_argument(
        "--time-per-move", type=_seconds, metavar="S", help="agent's seconds per move"
    )
    play.add_argument("--seed", type=int, help="random seed of the agent (default: fresh)")
    play.add_argument("--device", default="cpu", help="device of an az agent (default: cpu)")
    play.add_argument(
        "--threads",
        type=_positive_int,
        default=1,
        help="torch CPU threads of az players (default: %(default)s; a second thread waiting for "
        "a busy core makes every network call many times slower)",
    )
    play.set_defaults(handler=_cmd_play)


# -------------------------------------------------------------------------------------- arena
def _new_game_factory(game: str, size: int | None, k: int | None) -> Callable[[], State]:
    if game != "gomoku":
        if size is not None or k is not None:
            raise ValueError(f"--size and --k apply to gomoku only, not {game}")
        if game == "tictactoe":
            from .games.tictactoe import TicTacToe

            return TicTacToe
        from .games.connect_four import ConnectFour

        return ConnectFour
    from .games.gomoku import Gomoku

    board, row = size or _DEFAULT_SIZE, k or _DEFAULT_K
    Gomoku(size=board, k=row)  # validate now, before any player loads

    def new_game() -> State:
        return Gomoku(size=board, k=row)

    return new_game


def run_arena(
    *,
    game: str,
    a: str,
    b: str,
    games: int,
    size: int | None = None,
    k: int | None = None,
    time_per_move: float | None = None,
    sims: int | None = None,
    seed: int | None = 0,
    device: str = "cpu",
    progress: Callable[[MatchProgress], None] | None = None,
) -> tuple[MatchResult, dict[str, Any]]:
    """Build the players from their specs and play the match; returns the result and its JSON
    summary (``MatchResult.to_dict()`` plus the match settings)."""
    import numpy as np

    from .games.arena import parse_player, play_match

    new_game = _new_game_factory(game, size, k)
    if game == "gomoku":
        size, k = size or _DEFAULT_SIZE, k or _DEFAULT_K
    options: dict[str, Any] = {
        "size": size,
        "k": k,
        "simulations": sims,
        "time_per_move": time_per_move,
        "device": device,
    }
    player_a, player_b = parse_player(a, **options), parse_player(b, **options)
    player_a.name, player_b.name = a, b
    result = play_match(
        player_a,
        player_b,
        games=games,
        new_game=new_game,
        rng=np.random.default_rng(seed),
        progress=progress,
    )
    summary = {
        "game": game,
        "size": size,
        "k": k,
        "seed": seed,
        "time_per_move": time_per_move,
        "sims": sims,
        **result.to_dict(),
    }
    return result, summary


def _bar(done: float, total: int) -> str:
    filled = round(_BAR_WIDTH * done / total) if total else _BAR_WIDTH
    return "#" * filled + "-" * (_BAR_WIDTH - filled)


class _ProgressBar:
    """A one-line text bar on stderr, redrawn in place (at most every 0.1 s within a game)."""

    _INTERVAL = 0.1

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.started = time.perf_counter()
        self.drawn_at: float | None = None
        self.games_done = 0

    def __call__(self, p: MatchProgress) -> None:
        now = time.perf_counter()
        game_over = p.games_done != self.games_done
        if not game_over and self.drawn_at is not None and now - self.drawn_at < self._INTERVAL:
            return
        self.games_done = p.games_done
        self.drawn_at = now
        line = (
            f"\r[{_bar(p.games_done, p.games)}] {p.games_done}/{p.games} games  "
            f"a {p.a_wins}  b {p.b_wins}  draws {p.draws}  move {p.moves:<3}  "
            f"{now - self.started:6.1f} s"
        )
        self.stream.write(line)
        self.stream.flush()

    def close(self) -> None:
        if self.drawn_at is not None:
            self.stream.write("\n")
            self.stream.flush()


def _format_number(value: float | None, spec: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, spec)


def format_arena(result: MatchResult, summary: dict[str, Any]) -> str:
    """The results table."""
    game = summary["game"]
    if game == "gomoku":
        title = f"gomoku {summary['size']}x{summary['size']}, {summary['k']} in a row"
    else:
        title = game
    budget = []
    if summary["time_per_move"] is not None:
        budget.append(f"{summary['time_per_move']:g} s per move")
    if summary["sims"] is not None:
        budget.append(f"{summary['sims']} simulations per move")
    lines = [
        f"{title}: {result.games} games, colours alternate (a first in even games), seed "
        f"{summary['seed']}" + (f", {', '.join(budget)}" if budget else ""),
        "",
        f"{'player':<28} {'wins':>5} {'draws':>5} {'losses':>6} {'score':>7} "
        f"{'s/move':>8} {'sims/move':>10}",
    ]
    rows = (
        ("a", result.a_name, result.a_wins, result.b_wins, result.a_win_rate),
        ("b", result.b_name, result.b_wins, result.a_wins, 1.0 - result.a_win_rate),
    )
    for side, name, wins, losses, score in rows:
        per_move = result.a_seconds_per_move if side == "a" else result.b_seconds_per_move
        sims = result.a_simulations_per_move if side == "a" else result.b_simulations_per_move
        label = f"{side} {name}"
        lines.append(
            f"{label:<28} {wins:>5} {result.draws:>5} {losses:>6} {score:>7.1%} "
            f"{_format_number(per_move, '.3f'):>8} {_format_number(sims, '.0f'):>10}"
        )
    lines.append("")
    lines.append("score = (wins + draws / 2) / games")
    return "\n".join(lines)


def _set_torch_threads(specs: list[str], threads: int) -> None:
    """Pin torch's CPU threads when a network plays; torch stays unimported otherwise."""
    if any(spec.startswith("az") for spec in specs):
        import torch

        torch.set_num_threads(threads)


def _cmd_arena(args: argparse.Namespace) -> int:
    _set_torch_threads([args.a, args.b], args.threads)
    bar = _ProgressBar(sys.stderr)
    try:
        result, summary = run_arena(
            game=args.game,
            a=args.a,
            b=args.b,
            games=args.games,
            size=args.size,
            k=args.k,
            time_per_move=args.time_per_move,
            sims=args.sims,
            seed=args.seed,
            device=args.device,
            progress=bar,
        )
    finally:
        bar.close()
    print(format_arena(result, summary))
    if args.json:
        print(json.dumps(summary))
    return 0


# --------------------------------------------------------------------------------------- play
_HELP = """\
commands:
  e5        put a stone on e5 (column letter, then row number counted from the bottom)
  undo      take back your last move and the agent's reply
  time S    give the agent S seconds per move (e.g. time 2.5)
  new       start a new game
  help      show this list
  quit      leave (also Ctrl-D)"""


def _default_agent(size: int, k: int, time_per_move: float | None) -> str:
    from .games.arena import shipped_agent_path

    path = shipped_agent_path(size, k)
    if path is not None:
        return f"az:{path}"
    return "mcts" if time_per_move is not None else "mcts:2000"


def play_session(
    new_game: Callable[[], State],
    agent: Player,
    *,
    human: int,
    parse_move: Callable[[str], Any],
    format_move: Callable[[Any], str],
    read: Callable[[str], str],
    write: Callable[[str], None],
    rng: np.random.Generator,
) -> State:
    """A person (player ``human``: 0 moves first) against ``agent``, one line of input per turn.

    ``read(prompt)`` returns a line (``EOFError`` ends the session like ``quit``); ``write``
    prints one message. Bad coordinates, occupied points and unknown commands are reported and
    asked again. Returns the position when the person quits.
    """
    if human not in (0, 1):
        raise ValueError(f"human must be player 0 or 1, got {human!r}")
    history: list[State] = [new_game()]
    reset = getattr(agent, "reset", None)
    if callable(reset):
        reset()
    write(str(history[-1]))
    names = {human: "you", 1 - human: "agent"}
    while True:
        state = history[-1]
        if not state.is_terminal() and state.to_play != human:
            started = time.perf_counter()
            action = agent.choose(state, rng=rng)
            seconds = time.perf_counter() - started
            if action not in state.legal_actions():
                raise ValueError(f"agent {agent.name} chose the illegal move {action!r}")
            history.append(state.step(action))
            sims = getattr(agent, "last_simulations", None)
            detail = f"{seconds:.2f} s" + (f", {sims} simulations" if sims is not None else "")
            write(str(history[-1]))
            write(f"agent plays {format_move(action)}  ({detail})")
            if history[-1].is_terminal():
                write(_game_over_text(history[-1], names))
            continue
        prompt = "game over (new, undo, quit) > " if state.is_terminal() else "your move > "
        try:
            line = read(prompt)
        except EOFError:
            write("bye")
            return state
        command = line.strip().lower()
        if not command:
            continue
        if command in ("quit", "exit", "q"):
            write("bye")
            return state
        if command in ("help", "h", "?"):
            write(_HELP)
            continue
        if command == "undo":
            moves_by_human = [i for i in range(len(history) - 1) if history[i].to_play == human]
            if not moves_by_human:
                write("nothing to undo")
                continue
            undone = len(history) - 1 - moves_by_human[-1]
            del history[moves_by_human[-1] + 1 :]
            write(str(history[-1]))
            write("took back your last move" + (" and the agent's reply" if undone > 1 else ""))
            continue
        if command == "new":
            history[:] = [new_game()]
            if callable(reset):
                reset()
            write(str(history[-1]))
            continue
        if command.split()[0] == "time":
            _set_time(agent, command, write)
            continue
        if state.is_terminal():
            write("the game is over: type new for another game, undo, or quit")
            continue
        try:
            action = parse_move(command)
        except ValueError as exc:
            write(f"{exc}. Type a move like e5, or help.")
            continue
        if action not in state.legal_actions():
            write(f"{format_move(action)} is occupied; choose an empty point")
            continue
        history.append(state.step(action))
        write(str(history[-1]))
        if history[-1].is_terminal():
            write(_game_over_text(history[-1], names))


def _set_time(agent: Player, command: str, write: Callable[[str], None]) -> None:
    parts = command.split()
    set_budget = getattr(agent, "set_budget", None)
    if not callable(set_budget):
        write(f"the agent {agent.name} does not search, so it has no thinking time")
        return
    if len(parts) != 2:
        write("usage: time S (seconds per move, e.g. time 2.5)")
        return
    try:
        seconds = _seconds(parts[1])
    except argparse.ArgumentTypeError as exc:
        write(f"time: {exc}")
        return
    set_budget(time_per_move=seconds)
    write(f"the agent now thinks {seconds:g} s per move")


def _game_over_text(state: State, names: dict[int, str]) -> str:
    from .games.arena import winner_of

    winner = winner_of(state)
    if winner is None:
        return "draw: the board is full. Type new for another game, undo, or quit."
    if names[winner] == "you":
        return "you win! Type new for another game, undo, or quit."
    return "the agent wins. Type new for another game, undo, or quit."


def _cmd_play(args: argparse.Namespace) -> int:
    import numpy as np

    from .games.arena import parse_player
    from .games.gomoku import Gomoku, format_move, parse_move

    size, k = args.size, args.k
    Gomoku(size=size, k=k)  # bad sizes fail before an agent loads
    spec = args.agent or _default_agent(size, k, args.time_per_move)
    _set_torch_threads([spec], args.threads)
    agent = parse_player(spec, size=size, k=k, time_per_move=args.time_per_move, device=args.device)
    agent.name = spec
    human = 0 if args.first == "human" else 1
    stone = "X (black, first)" if human == 0 else "O (white, second)"
    print(f"Gomoku {size}x{size}, {k} in a row, against {spec}. You play {stone}; type help.")

    def read(prompt: str) -> str:
        return input(prompt)

    def write(text: str) -> None:
        print(text, flush=True)

    play_session(
        lambda: Gomoku(size=size, k=k),
        agent,
        human=human,
        parse_move=lambda text: parse_move(text, size),
        format_move=lambda action: format_move(action, size),
        read=read,
        write=write,
        rng=np.random.default_rng(args.seed),
    )
    return 0
