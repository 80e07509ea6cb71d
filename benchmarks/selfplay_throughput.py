"""Self-play throughput: AlphaZero self-play positions per second on Gomoku, and the share of
the time spent in the policy-value network.

Plays ``--games`` games of Gomoku (``--size`` x ``--size``, ``--k`` in a row) with
``treesearch.selfplay.play_games``: ``--batch`` games in lock-step, ``--sims`` PUCT simulations
per move, leaves of all games evaluated in one ``NetEvaluator`` call per round by a freshly
initialised ``PolicyValueNet`` (``--blocks`` x ``--channels``; the weights do not change the
cost). Reports positions/s (searched positions, one per move), the network's share of the
wall time, and the mean batch the network saw.

    python benchmarks/selfplay_throughput.py --size 9 --games 8 --sims 64 --batch 8 --json
    python benchmarks/selfplay_throughput.py --size 9 --games 8 --sims 64 --batch 8 --device cuda
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from functools import partial

import numpy as np


def machine_info() -> dict:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # benchmarks/_machine.py
    import torch
    from _machine import base_info

    info = {
        **base_info(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=9)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--games", type=int, default=8)
    parser.add_argument("--sims", type=int, default=64)
    parser.add_argument("--batch", type=int, default=8, help="games in lock-step")
    parser.add_argument("--leaves-per-round", type=int, default=1)
    parser.add_argument("--blocks", type=int, default=4)
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (default 1: small batches run fastest on one thread, and extra "
        "threads spin against other processes on a shared machine); 0 keeps torch's default",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="one JSON object on the last line")
    args = parser.parse_args(argv)

    import torch

    from treesearch.games import Gomoku
    from treesearch.games.nets import NetEvaluator, PolicyValueNet
    from treesearch.selfplay import SelfPlayConfig, SelfPlayStats, play_games

    if args.threads:
        torch.set_num_threads(args.threads)
    net = PolicyValueNet(
        args.size,
        blocks=args.blocks,
        channels=args.channels,
        generator=torch.Generator().manual_seed(args.seed),
    )
    evaluator = NetEvaluator(net, device=args.device)
    new_game = partial(Gomoku, args.size, args.k)
    config = SelfPlayConfig(
        simulations=args.sims,
        num_parallel_games=args.batch,
        leaves_per_round=args.leaves_per_round,
    )
    # Warm-up: one forward pass of a full batch (allocator, kernels), not timed.
    evaluator.evaluate(
        [new_game()] * args.batch * args.leaves_per_round, rng=np.random.default_rng()
    )
    evaluator.reset_counters()
    stats = SelfPlayStats()
    start = time.perf_counter()
    records = play_games(
        evaluator,
        new_game,
        args.games,
        config=config,
        rng=np.random.default_rng(args.seed),
        stats=stats,
    )
    wall = time.perf_counter() - start
    report = {
        "benchmark": "selfplay_throughput",
        "game": f"gomoku size={args.size} k={args.k}",
        "device": str(evaluator.device),
        "net": net.config,
        "parameters": sum(p.numel() for p in net.parameters()),
        "games": args.games,
        "batch": args.batch,
        "sims": args.sims,
        "leaves_per_round": args.leaves_per_round,
        "seed": args.seed,
        "positions": stats.positions,
        "mean_game_length": stats.moves / max(stats.games, 1),
        "wins_black_white_draws": [
            sum(r.outcome > 0 for r in records),
            sum(r.outcome < 0 for r in records),
            sum(r.outcome == 0 for r in records),
        ],
        "seconds": round(wall, 3),
        "positions_per_s": round(stats.positions / wall, 3),
        "simulations_per_s": round(stats.searches * args.sims / wall, 1),
        "network_seconds": round(evaluator.seconds, 3),
        "network_share": round(evaluator.seconds / wall, 4),
        "network_calls": evaluator.calls,
        "network_positions": evaluator.positions,
        "mean_network_batch": round(evaluator.positions / max(evaluator.calls, 1), 2),
        "network_positions_per_s": round(evaluator.positions / max(evaluator.seconds, 1e-9), 1),
        "machine": machine_info(),
        "date": datetime.date.today().isoformat(),
    }
    if not args.json:
        for key, value in report.items():
            print(f"{key:>24}: {value}")
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
