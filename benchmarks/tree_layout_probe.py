"""What the node-statistics layout costs on narrow trees: our MCTS against a plain-list loop.

Runs, side by side in one process, the P2 workload (PUCT, uniform priors, zero value, no solver,
connect four from the empty board) through ``treesearch.MCTS`` (numpy-array tree) and through a
minimal loop over the same ``ConnectFour`` states that keeps every node statistic in Python
lists. Both expand every evaluated leaf and select with the same PUCT formula, so the gap is
the price of the array layout (plus MCTS's checks and bookkeeping) on 7-wide nodes.

    python benchmarks/tree_layout_probe.py --sims 1000 --json
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import platform
import time

import numpy as np

from treesearch import MCTS, Budget, UniformEvaluator
from treesearch.games import ConnectFour


def list_puct(root: ConnectFour, sims: int, c: float) -> list[int]:
    """PUCT with uniform priors and zero values over Python lists; returns root child visits."""
    parent, visits, value_sum, prior = [-1], [0], [0.0], [0.0]
    first, count, actions = [-1], [0], [None]
    states: list[ConnectFour | None] = [root]
    player, terminal = [root.to_play], [False]
    for _ in range(sims):
        node, path = 0, [0]
        while first[node] >= 0 and not terminal[node]:
            start, scale = first[node], c * math.sqrt(visits[node])
            best, best_score = start, -math.inf
            for child in range(start, start + count[node]):
                n = visits[child]
                score = (value_sum[child] / n if n else 0.0) + scale * prior[child] / (1 + n)
                if score > best_score:
                    best, best_score = child, score
            node = best
            if states[node] is None:
                state = states[parent[node]].step(actions[node])  # type: ignore[union-attr]
                states[node], player[node], terminal[node] = (
                    state,
                    state.to_play,
                    state.is_terminal(),
                )
            path.append(node)
        state = states[node]
        assert state is not None
        if terminal[node]:
            value = state.terminal_value() or 0.0
        else:
            legal = state.legal_actions()
            first[node], count[node], value = len(parent), len(legal), 0.0
            for action in legal:
                parent.append(node)
                visits.append(0)
                value_sum.append(0.0)
                prior.append(1.0 / len(legal))
                first.append(-1)
                count.append(0)
                actions.append(action)
                states.append(None)
                player.append(-1)
                terminal.append(False)
        mover = player[node]
        for i in range(len(path) - 1, 0, -1):
            if player[path[i - 1]] != mover:
                value, mover = -value, player[path[i - 1]]
            visits[path[i]] += 1
            value_sum[path[i]] += value
        visits[0] += 1
        value_sum[0] += value
    return visits[first[0] : first[0] + count[0]]


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sims", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    c = 2.0
    mcts = MCTS(UniformEvaluator(), c=c, solver=False)
    ours = best_of(
        lambda: mcts.search(
            ConnectFour(), Budget(simulations=args.sims), rng=np.random.default_rng(0)
        ),
        args.repeats,
    )
    lists = best_of(lambda: list_puct(ConnectFour(), args.sims, c), args.repeats)
    # Same search: the same root visit counts.
    result = mcts.search(ConnectFour(), Budget(simulations=args.sims), rng=np.random.default_rng(0))
    same = [int(v) for v in result.tree.visits[1:8]] == list_puct(ConnectFour(), args.sims, c)
    out = {
        "sims": args.sims,
        "ours_us_per_sim": round(ours / args.sims * 1e6, 2),
        "lists_us_per_sim": round(lists / args.sims * 1e6, 2),
        "layout_ratio": round(ours / lists, 2),
        "same_root_visits": same,
        "machine": {"platform": platform.platform(), "python": platform.python_version()},
        "date": datetime.date.today().isoformat(),
    }
    if not args.json:
        for key, value in out.items():
            print(f"{key:>18}: {value}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
