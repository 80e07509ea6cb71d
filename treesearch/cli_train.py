"""The ``treesearch train`` command: ``treesearch train gomoku`` runs AlphaZero training
(:func:`treesearch.train.alphazero.train`) with a progress bar on stderr and one summary line
per iteration on stdout.

``treesearch.cli`` wires the subcommand in; this module stays light (torch loads only when the
command runs). Without flags the run uses the default recipe of
:class:`~treesearch.train.alphazero.AlphaZeroConfig` (9x9 five in a row). Rerunning the same
command continues from the run directory's checkpoint, keeping the settings it was started
with; flags given on the rerun override them (``--iterations 40`` trains further).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .train.alphazero import AlphaZeroConfig, TrainProgress, TrainSummary

from ._cli_util import int_at_least
from .cli_train_llm import add_loop_commands

__all__ = ["add_train_command", "config_from_args", "format_iteration"]

_PROG = "treesearch"
_BAR_WIDTH = 30
_PHASE_UNITS = {"selfplay": "games", "train": "steps", "arena": "games", "checkpoint": ""}


_int_at_least = int_at_least


def _number(positive: bool) -> Any:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value) or value < 0 or (positive and value == 0):
            raise argparse.ArgumentTypeError(
                f"must be a {'positive' if positive else 'non-negative'} number, got {text!r}"
            )
        return value

    return parse


# (flag, config field or selfplay.field, type, metavar, help)
_OPTIONS: tuple[tuple[str, str, Any, str, str], ...] = (
    ("--size", "size", _int_at_least(3), "N", "board side"),
    ("--k", "k", _int_at_least(2), "K", "stones in a row that win"),
    ("--iterations", "iterations", _int_at_least(1), "N", "iterations in the run"),
    (
        "--games-per-iteration",
        "games_per_iteration",
        _int_at_least(1),
        "G",
        "self-play games per iteration",
    ),
    (
        "--parallel-games",
        "selfplay.num_parallel_games",
        _int_at_least(1),
        "P",
        "self-play games advanced together (one network batch)",
    ),
    ("--sims", "selfplay.simulations", _int_at_least(2), "S", "simulations per self-play move"),
    ("--blocks", "blocks", _int_at_least(1), "B", "residual blocks"),
    ("--channels", "channels", _int_at_least(1), "C", "convolution channels"),
    (
        "--train-steps",
        "train_steps_per_iteration",
        _int_at_least(0),
        "N",
        "gradient steps per iteration",
    ),
    ("--batch-size", "batch_size", _int_at_least(1), "N", "positions per gradient step"),
    ("--lr", "lr", _number(True), "LR", "Adam learning rate"),
    ("--l2", "l2", _number(False), "C", "L2 coefficient in the loss"),
    ("--replay", "replay_capacity", _int_at_least(1), "N", "replay buffer capacity (positions)"),
    (
        "--arena-games",
        "arena_games",
        _int_at_least(0),
        "N",
        "games against the previous best per iteration",
    ),
    (
        "--arena-sims",
        "arena_simulations",
        _int_at_least(2),
        "S",
        "simulations per move of the networks in arena games",
    ),
    ("--mcts-games", "mcts_games", _int_at_least(0), "N", "games against pure MCTS per iteration"),
    (
        "--mcts-sims",
        "mcts_simulations",
        _int_at_least(1),
        "N",
        "simulations per move of the pure MCTS opponent",
    ),
    (
        "--gating",
        "gating_threshold",
        _number(True),
        "RATE",
        "win rate against the previous best needed to replace it (no gating unless given)",
    ),
    (
        "--checkpoint-interval",
        "checkpoint_interval",
        _int_at_least(1),
        "N",
        "iterations between checkpoints",
    ),
    ("--seed", "seed", _int_at_least(0), "SEED", "random seed"),
)


def _field_default(config: AlphaZeroConfig, name: str) -> Any:
    target: Any = config
    for part in name.split("."):
        target = getattr(target, part)
    return target


def _recipe_text(value: Any) -> str:
    return "off" if value is None else str(value)


def add_train_command(commands: Any) -> None:
    """Add ``train`` (with its ``gomoku`` subcommand) to ``commands``, an argparse subparsers
    object."""
    from .train.alphazero import AlphaZeroConfig

    recipe = AlphaZeroConfig()
    train = commands.add_parser(
        "train",
        help="train a game agent by self-play, or an LLM policy from its search traces",
        description=(
            "Train a game agent by AlphaZero self-play (gomoku), or a language-model policy "
            "and value model from their own search traces (rest-mcts, mcts-dpo)."
        ),
    )
    games = train.add_subparsers(dest="game", required=True, metavar="WHAT")
    gomoku = games.add_parser(
        "gomoku",
        help="AlphaZero for Gomoku",
        description=(
            "AlphaZero self-play training for Gomoku. Without flags: the default recipe for 9x9 "
            "five in a row (about an hour on a 2-core CPU). The run directory gets checkpoint/, "
            "metrics.jsonl, curves.png and best.safetensors; rerunning the command continues "
            "from the checkpoint with the settings the run was started with (flags given again "
            "override them)."
        ),
    )
    for flag, name, kind, metavar, text in _OPTIONS:
        gomoku.add_argument(
            flag,
            dest=name.replace(".", "__"),
            type=kind,
            metavar=metavar,
            help=f"{text} (recipe: {_recipe_text(_field_default(recipe, name))})",
        )
    gomoku.add_argument(
        "--exact",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="only exactly k in a row wins (default: overlines win too)",
    )
    gomoku.add_argument(
        "--out",
        metavar="DIR",
        help="run directory (default: runs/gomoku<size>x<size>-k<k>)",
    )
    gomoku.add_argument(
        "--resume",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="continue from the run directory's checkpoint (default: on); --no-resume refuses a "
        "directory that holds one",
    )
    gomoku.add_argument(
        "--device",
        metavar="DEVICE",
        help="cpu or cuda (default: cpu, or the device the run was started on)",
    )
    gomoku.add_argument(
        "--threads",
        type=_int_at_least(1),
        default=1,
        metavar="N",
        help="torch CPU threads (default: %(default)s; on a shared 2-core machine a second "
        "thread that has to wait for a busy core makes every network call several times "
        "slower; try 2 on an idle machine)",
    )
    gomoku.set_defaults(handler=_cmd_train_gomoku)
    add_loop_commands(games)  # rest-mcts, mcts-dpo


def config_from_args(args: argparse.Namespace) -> tuple[AlphaZeroConfig, Path]:
    """The config and run directory a ``train gomoku`` command line asks for: the
    checkpoint's settings when resuming a run directory that has one, else the recipe; then
    every flag given on the command line."""
    from .selfplay import SelfPlayConfig
    from .train.alphazero import AlphaZeroConfig, saved_config

    given = {
        name: getattr(args, name.replace(".", "__"))
        for _, name, *_ in _OPTIONS
        if getattr(args, name.replace(".", "__")) is not None
    }
    if args.exact is not None:
        given["exact"] = args.exact
    if args.device is not None:
        given["device"] = args.device
    size = given.get("size", AlphaZeroConfig.size)
    k = given.get("k", AlphaZeroConfig.k)
    out = Path(args.out) if args.out else Path("runs") / f"gomoku{size}x{size}-k{k}"
    base = saved_config(out) if args.resume else None
    if base is None:
        base = AlphaZeroConfig()
    play_changes = {
        name.split(".", 1)[1]: value
        for name, value in given.items()
        if name.startswith("selfplay.")
    }
    changes: dict[str, Any] = {n: v for n, v in given.items() if not n.startswith("selfplay.")}
    if play_changes:
        play = dataclasses.replace(base.selfplay, **play_changes)
        if not isinstance(play, SelfPlayConfig):  # pragma: no cover - replace keeps the type
            raise TypeError("bad self-play settings")
        changes["selfplay"] = play
    return dataclasses.replace(base, **changes), out


def _percent(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.0%}"


def format_iteration(line: dict[str, Any], config: AlphaZeroConfig) -> str:
    """The one-line summary of an iteration's metrics."""
    parts = [
        f"iteration {line['iteration']}/{config.iterations}",
        f"loss {line['loss']:.3f} (value {line['value_loss']:.3f}, policy "
        f"{line['policy_loss']:.3f})",
    ]
    if line.get("win_rate_vs_best") is not None:
        verdict = (
            ""
            if config.gating_threshold is None
            else (" accepted" if line["accepted"] else " rejected")
        )
        parts.append(f"vs previous {_percent(line['win_rate_vs_best'])}{verdict}")
    if line.get("win_rate_vs_mcts") is not None:
        parts.append(f"vs mcts:{config.mcts_simulations} {_percent(line['win_rate_vs_mcts'])}")
    share = line.get("network_share")
    parts += [
        f"{line['games']} games ({line['mean_game_length']:.1f} moves)",
        f"{line['positions_per_second']:.0f} pos/s"
        + (f" (net {share:.0%})" if share is not None else ""),
        f"replay {line['replay_size']}",
        f"{line['seconds']:.0f} s",
    ]
    return "  ".join(parts)


class _Progress:
    """The stderr bar (redrawn in place on a terminal) and the stdout summary line of each
    iteration."""

    _INTERVAL = 0.1

    def __init__(self, config: AlphaZeroConfig, *, bar: bool) -> None:
        self.config = config
        self.bar = bar
        self.drawn_at = 0.0
        self.stage: tuple[int, str] | None = None
        self.done = -1
        self.started = time.perf_counter()
        self.dirty = False

    def __call__(self, event: TrainProgress) -> None:
        if event.phase == "resume":
            print(
                f"resuming from the checkpoint of iteration {event.iteration}",
                file=sys.stderr,
                flush=True,
            )
            return
        if event.phase == "iteration":
            self._clear()
            if event.metrics is not None:
                print(format_iteration(dict(event.metrics), self.config), flush=True)
            return
        if not self.bar:
            return
        now = time.perf_counter()
        stage = (event.iteration, event.phase)
        if stage == self.stage and event.done != event.total:
            # Within a phase: redraw for a new count at most every 0.1 s, else every second
            # (arena games report every move, and the clock should keep moving).
            wait = self._INTERVAL if event.done != self.done else 1.0
            if now - self.drawn_at < wait:
                return
        self.drawn_at, self.stage, self.done = now, stage, event.done
        filled = round(_BAR_WIDTH * event.done / event.total) if event.total else _BAR_WIDTH
        unit = _PHASE_UNITS.get(event.phase, "")
        sys.stderr.write(
            f"\r[{'#' * filled}{'-' * (_BAR_WIDTH - filled)}] iteration "
            f"{event.iteration}/{event.iterations} {event.phase:<10} {event.done}/{event.total} "
            f"{unit:<5} {now - self.started:7.0f} s"
        )
        sys.stderr.flush()
        self.dirty = True

    def _clear(self) -> None:
        if self.dirty:
            sys.stderr.write("\r" + " " * (_BAR_WIDTH + 60) + "\r")
            sys.stderr.flush()
            self.dirty = False


def _cmd_train_gomoku(args: argparse.Namespace) -> int:
    config, out = config_from_args(args)
    import torch

    torch.set_num_threads(args.threads)
    from .train.alphazero import train

    print(
        f"training {config.size}x{config.size} Gomoku, {config.k} in a row"
        f"{' (exactly)' if config.exact else ''}: {config.blocks} blocks x {config.channels} "
        f"channels, {config.games_per_iteration} games x {config.selfplay.simulations} "
        f"simulations per iteration, {config.iterations} iterations, run directory {out}",
        file=sys.stderr,
        flush=True,
    )
    progress = _Progress(config, bar=sys.stderr.isatty())
    try:
        summary = train(config, out, resume=args.resume, progress=progress)
    finally:
        progress._clear()
    print(_format_summary(summary))
    return 0


def _format_summary(summary: TrainSummary) -> str:
    lines = [
        f"done: {summary.iteration} iterations, {summary.total_games} games, "
        f"{summary.total_positions} positions, {summary.step} gradient steps "
        f"({summary.seconds:.0f} s in this run)",
        f"best network: {summary.best_path} (iteration {summary.best_iteration})",
        f"metrics: {summary.metrics_path}",
    ]
    if summary.curves_path is not None:
        lines.append(f"curves: {summary.curves_path}")
    lines.append(f"checkpoint: {summary.checkpoint_path}")
    return "\n".join(lines)
