"""treesearch MCTS vs OpenSpiel's Python ``MCTSBot``, side by side in one process.

Two workloads, both from the game's initial position (targets P1 and P2 of the design):

* **p1** (throughput): UCT with ``c = 2``, one uniformly random rollout per leaf, MCTS-Solver on.
  OpenSpiel: ``MCTSBot(game, uct_c=2, max_simulations=N,
  evaluator=RandomRolloutEvaluator(n_rollouts=1), solve=True).mcts_search(state)``.
  Ours: ``MCTS(RandomRollout(), selection="uct", c=2.0).search(state, Budget(simulations=N))``.
  Reported as simulations per second (``ours_sims_per_s``, ``openspiel_py_sims_per_s``) and
  ``ratio = ours / openspiel``.
* **p2** (tree overhead): PUCT with a free evaluator (zero value, uniform priors), so almost all
  the time is selection, expansion and backup. OpenSpiel: ``MCTSBot`` with
  ``child_selection_fn=SearchNode.puct_value`` and a zero/uniform ``Evaluator`` subclass. Ours:
  ``MCTS(UniformEvaluator(), selection="puct", c=...)``. Reported as microseconds per simulation
  and ``overhead_ratio = openspiel_time / ours_time`` (above 1: ours is cheaper).

Each workload runs ``--searches`` searches per side, alternating which side goes first, after one
untimed warm-up search per side; the median is reported. Rates use the simulations each search
actually ran (both stop early when the solver proves the root).

Usage::

    python benchmarks/mcts_vs_openspiel.py --game connect_four --sims 1000
    python benchmarks/mcts_vs_openspiel.py --game tic_tac_toe --json      # JSON as the last line
    python benchmarks/mcts_vs_openspiel.py --game connect_four --profile  # cProfile our side
    python benchmarks/mcts_vs_openspiel.py --game gomoku --size 9 --sims 1000 --json   # P1
    python benchmarks/mcts_vs_openspiel.py --game gomoku --size 15 --sims 1000 --json  # P2

Gomoku is five in a row (freestyle) on a ``--size`` board (default 9), OpenSpiel's
``gomoku(size=..., connect=5)``.

Adding a game is one entry in :data:`GAMES`.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as _dt
import functools
import gc
import io
import json
import os
import pstats
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from treesearch.budget import Budget
from treesearch.evaluators import RandomRollout, UniformEvaluator
from treesearch.games import ConnectFour, Gomoku, TicTacToe
from treesearch.search.mcts import MCTS

try:
    import pyspiel
    from open_spiel.python.algorithms import mcts as os_mcts
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise SystemExit(
        "this benchmark needs OpenSpiel: pip install -e '.[bench]' (open-spiel)"
    ) from exc


@dataclass(frozen=True)
class GameSpec:
    """One benchmarked game: our initial-state factory and the matching OpenSpiel game."""

    ours: Callable[[], Any]
    openspiel_name: str
    openspiel_params: dict[str, Any] = field(default_factory=dict)


def gomoku_spec(size: int = 9) -> GameSpec:
    """Gomoku five in a row (freestyle) on a ``size x size`` board, both sides."""
    return GameSpec(functools.partial(Gomoku, size, 5), "gomoku", {"size": size, "connect": 5})


# name -> (our State factory, OpenSpiel game name + params); "gomoku" is resized by --size.
GAMES: dict[str, GameSpec] = {
    "connect_four": GameSpec(ConnectFour, "connect_four"),
    "gomoku": gomoku_spec(9),
    "tic_tac_toe": GameSpec(TicTacToe, "tic_tac_toe"),
}
SIZED_GAMES = {"gomoku": gomoku_spec}

UCT_C = 2.0  # p1, both sides (OpenSpiel's examples use uct_c=2)


# --------------------------------------------------------------------------- OpenSpiel side
class _FreeEvaluator(os_mcts.Evaluator):
    """Zero value for every player and a uniform prior: OpenSpiel's tree overhead alone."""

    def __init__(self, num_players: int) -> None:
        self._zeros = [0.0] * num_players

    def evaluate(self, state):  # OpenSpiel's interface
        return self._zeros

    def prior(self, state):
        legal = state.legal_actions(state.current_player())
        p = 1.0 / len(legal)
        return [(a, p) for a in legal]


def _openspiel_bot(game, workload: str, sims: int, seed: int, puct_c: float):
    if workload == "p1":
        return os_mcts.MCTSBot(
            game,
            uct_c=UCT_C,
            max_simulations=sims,
            evaluator=os_mcts.RandomRolloutEvaluator(
                n_rollouts=1, random_state=np.random.RandomState(seed)
            ),
            solve=True,
            random_state=np.random.RandomState(seed + 1),
        )
    return os_mcts.MCTSBot(
        game,
        uct_c=puct_c,
        max_simulations=sims,
        evaluator=_FreeEvaluator(game.num_players()),
        solve=True,
        random_state=np.random.RandomState(seed + 1),
        child_selection_fn=os_mcts.SearchNode.puct_value,
    )


def _count_openspiel_nodes(root) -> int:
    count, stack = 0, [root]
    while stack:
        node = stack.pop()
        count += 1
        stack.extend(node.children)
    return count


def run_openspiel(spec: GameSpec, workload: str, sims: int, seed: int, puct_c: float):
    """One timed OpenSpiel search: (seconds, simulations run, tree nodes)."""
    game = pyspiel.load_game(spec.openspiel_name, spec.openspiel_params)
    bot = _openspiel_bot(game, workload, sims, seed, puct_c)
    state = game.new_initial_state()
    gc.collect()
    t0 = time.perf_counter()
    root = bot.mcts_search(state)
    elapsed = time.perf_counter() - t0
    return elapsed, int(root.explore_count), _count_openspiel_nodes(root)


# --------------------------------------------------------------------------- our side
def _our_mcts(workload: str, puct_c: float) -> MCTS:
    if workload == "p1":
        return MCTS(RandomRollout(), selection="uct", c=UCT_C)
    return MCTS(UniformEvaluator(), selection="puct", c=puct_c)


def run_ours(spec: GameSpec, workload: str, sims: int, seed: int, puct_c: float):
    """One timed treesearch search: (seconds, simulations run, tree nodes)."""
    mcts = _our_mcts(workload, puct_c)
    state = spec.ours()
    rng = np.random.default_rng(seed)
    budget = Budget(simulations=sims)
    gc.collect()
    t0 = time.perf_counter()
    result = mcts.search(state, budget, rng=rng)
    elapsed = time.perf_counter() - t0
    return elapsed, int(result.usage.simulations), len(result.tree)


# --------------------------------------------------------------------------- driver
def _median_runs(spec, workload, sims, searches, seed, puct_c):
    """Alternate the sides (after one untimed warm-up each); per-side lists of runs."""
    warm = min(sims, 100)
    run_ours(spec, workload, warm, seed, puct_c)
    run_openspiel(spec, workload, warm, seed, puct_c)
    ours, theirs = [], []
    for i in range(searches):
        s = seed + i
        if i % 2 == 0:
            ours.append(run_ours(spec, workload, sims, s, puct_c))
            theirs.append(run_openspiel(spec, workload, sims, s, puct_c))
        else:
            theirs.append(run_openspiel(spec, workload, sims, s, puct_c))
            ours.append(run_ours(spec, workload, sims, s, puct_c))
    return ours, theirs


def _med(values) -> float:
    return float(statistics.median(values))


def measure(spec: GameSpec, sims: int, searches: int, seed: int, puct_c: float) -> dict:
    ours1, theirs1 = _median_runs(spec, "p1", sims, searches, seed, puct_c)
    ours_rate = _med(n / t for t, n, _ in ours1)
    their_rate = _med(n / t for t, n, _ in theirs1)
    p1 = {
        "ours_sims_per_s": round(ours_rate, 1),
        "openspiel_py_sims_per_s": round(their_rate, 1),
        "ratio": round(ours_rate / their_rate, 3),
        "ours_sims_run": _med(n for _, n, _ in ours1),
        "openspiel_sims_run": _med(n for _, n, _ in theirs1),
        "ours_nodes": _med(k for _, _, k in ours1),
        "openspiel_nodes": _med(k for _, _, k in theirs1),
    }
    ours2, theirs2 = _median_runs(spec, "p2", sims, searches, seed, puct_c)
    ours_us = _med(1e6 * t / n for t, n, _ in ours2)
    their_us = _med(1e6 * t / n for t, n, _ in theirs2)
    p2 = {
        "ours_us_per_sim": round(ours_us, 2),
        "openspiel_us_per_sim": round(their_us, 2),
        "overhead_ratio": round(their_us / ours_us, 3),
        "puct_c": puct_c,
        "ours_sims_run": _med(n for _, n, _ in ours2),
        "openspiel_sims_run": _med(n for _, n, _ in theirs2),
        "ours_nodes": _med(k for _, _, k in ours2),
        "openspiel_nodes": _med(k for _, _, k in theirs2),
    }
    return {
        # The keys of issue 2, item 12, at the top level; the detail stays under p1 and p2.
        "ours_sims_per_s": p1["ours_sims_per_s"],
        "openspiel_py_sims_per_s": p1["openspiel_py_sims_per_s"],
        "ratio": p1["ratio"],
        "overhead_ratio": p2["overhead_ratio"],
        "p1": p1,
        "p2": p2,
    }


def machine_info() -> dict:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # benchmarks/_machine.py
    from _machine import base_info

    try:
        from importlib.metadata import version

        os_version = version("open_spiel")
    except Exception:  # informational only
        os_version = "unknown"
    return {**base_info(), "open_spiel": os_version}


def profile_ours(spec: GameSpec, sims: int, searches: int, seed: int, puct_c: float) -> None:
    """cProfile our side of each workload over ``searches`` searches; print the top 25 twice."""
    for workload in ("p1", "p2"):
        profiler = cProfile.Profile()
        profiler.enable()
        for i in range(searches):
            _our_mcts(workload, puct_c).search(
                spec.ours(), Budget(simulations=sims), rng=np.random.default_rng(seed + i)
            )
        profiler.disable()
        for key in ("cumulative", "tottime"):
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).strip_dirs().sort_stats(key).print_stats(25)
            print(f"\n=== profile: ours, {workload}, sorted by {key} ===")
            print(out.getvalue().strip())


def _table(report: dict) -> str:
    p1, p2 = report["p1"], report["p2"]
    m = report["machine"]
    game = report["game"] + (f" {report['size']}x{report['size']}" if "size" in report else "")
    lines = [
        f"game {game}, {report['sims']} simulations, median of "
        f"{report['searches']} searches, seed {report['seed']}",
        f"machine: {m['processor']} ({m['cpus_usable']} usable of {m['cpu_count']} CPUs), "
        f"{m['platform']}, Python {m['python']}, OpenSpiel {m['open_spiel']}; {report['date']}",
        "",
        f"{'workload':<34}{'ours':>12}{'OpenSpiel':>12}{'ratio':>9}",
        f"{'p1 UCT + random rollout (sims/s)':<34}{p1['ours_sims_per_s']:>12.0f}"
        f"{p1['openspiel_py_sims_per_s']:>12.0f}{p1['ratio']:>8.2f}x",
        f"{'p2 PUCT, free evaluator (us/sim)':<34}{p2['ours_us_per_sim']:>12.1f}"
        f"{p2['openspiel_us_per_sim']:>12.1f}{p2['overhead_ratio']:>8.2f}x",
        "",
        "p1 ratio = ours / OpenSpiel sims/s; p2 ratio = OpenSpiel / ours time per sim "
        "(above 1: ours faster).",
        f"nodes in tree (median): p1 ours {p1['ours_nodes']:.0f} / OpenSpiel "
        f"{p1['openspiel_nodes']:.0f}; p2 ours {p2['ours_nodes']:.0f} / OpenSpiel "
        f"{p2['openspiel_nodes']:.0f}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--game", choices=sorted(GAMES), default="connect_four")
    parser.add_argument(
        "--size", type=int, default=None, help="board size for gomoku (default 9; 15 for P2)"
    )
    parser.add_argument("--sims", type=int, default=1000, help="simulations per search")
    parser.add_argument("--searches", type=int, default=5, help="searches per side (median)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--puct-c", type=float, default=UCT_C, help="p2 PUCT constant, both sides")
    parser.add_argument("--json", action="store_true", help="print one JSON object, last line")
    parser.add_argument("--profile", action="store_true", help="cProfile our side of each run")
    args = parser.parse_args(argv)
    if args.sims < 1 or args.searches < 1:
        parser.error("--sims and --searches must be positive")

    if args.size is not None and args.game not in SIZED_GAMES:
        parser.error(f"--size applies to {sorted(SIZED_GAMES)}, not {args.game}")
    report: dict[str, Any] = {"game": args.game}
    if args.game in SIZED_GAMES:
        size = 9 if args.size is None else args.size
        if not 5 <= size <= 26:
            parser.error("--size must be in 5..26 (five in a row)")
        spec = SIZED_GAMES[args.game](size)
        report["size"] = size
    else:
        spec = GAMES[args.game]
    report.update(
        {
            "sims": args.sims,
            "searches": args.searches,
            "seed": args.seed,
            "machine": machine_info(),
            "date": _dt.date.today().isoformat(),
        }
    )
    report.update(measure(spec, args.sims, args.searches, args.seed, args.puct_c))
    if args.profile:
        profile_ours(spec, args.sims, args.searches, args.seed, args.puct_c)
    if args.json:
        sys.stdout.flush()
        print(json.dumps(report, sort_keys=False))
    else:
        print(_table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
