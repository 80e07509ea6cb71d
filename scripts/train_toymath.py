"""Train the shipped toy-math checkpoints (policy, PRM, ORM) from scratch and report.

    python scripts/train_toymath.py --out adapters/checkpoints/toymath

runs :func:`treesearch.train.toymath_recipe.run_recipe` with its default recipe (about 25
minutes of one CPU core), writes ``policy``, ``prm`` and ``orm`` under
``--out`` and prints the report (also stored in each checkpoint's ``training.json``).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="adapters/checkpoints/toymath", help="output folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch intra-op threads (1 on a shared machine)"
    )
    args = parser.parse_args(argv)

    import torch

    from treesearch.train.toymath_recipe import ToyMathRecipe, run_recipe

    torch.set_num_threads(args.threads)
    command = shlex.join(["python", "scripts/train_toymath.py", *sys.argv[1:]])
    start = time.perf_counter()

    def progress(message: str) -> None:
        print(f"[{time.perf_counter() - start:7.1f} s] {message}", flush=True)

    report = run_recipe(args.out, ToyMathRecipe(seed=args.seed), command=command, progress=progress)
    print(json.dumps(report, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
