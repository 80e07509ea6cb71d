"""P7: memory per node of a large MCTS tree (target <= 200 bytes per node at 1,000,000 nodes).

Grows a PUCT tree on connect four with a free evaluator until it holds ``--nodes`` nodes and
measures every allocation the search made with tracemalloc: the node arrays, the side lists of
actions, states and payloads, and the game states created along the way.

    python benchmarks/tree_memory.py --nodes 1000000 --json
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import time
import tracemalloc

import numpy as np

from treesearch import MCTS, Budget, UniformEvaluator
from treesearch.games import ConnectFour


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1_000_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    # Each simulation expands one leaf into at most 7 children.
    sims = args.nodes // 7 + 1
    mcts = MCTS(UniformEvaluator(), max_nodes=args.nodes)
    tracemalloc.start()
    start = time.perf_counter()
    result = mcts.search(ConnectFour(), Budget(simulations=sims * 2), rng=np.random.default_rng(0))
    seconds = time.perf_counter() - start
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    tree = result.tree
    array_bytes = sum(
        getattr(tree, name).nbytes
        for name in vars(tree)
        if isinstance(getattr(tree, name), np.ndarray)
    )
    out = {
        "nodes": tree.num_nodes,
        "states_materialised": sum(s is not None for s in tree.states),
        "bytes_per_node": round(current / tree.num_nodes, 1),
        "array_bytes_per_node": round(array_bytes / tree.num_nodes, 1),
        "peak_bytes_per_node": round(peak / tree.num_nodes, 1),
        "target_bytes_per_node": 200,
        "seconds_with_tracemalloc": round(seconds, 1),
        "stop_reason": result.stop_reason,
        "machine": {"platform": platform.platform(), "python": platform.python_version()},
        "date": datetime.date.today().isoformat(),
    }
    if not args.json:
        for key, value in out.items():
            print(f"{key:>26}: {value}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
