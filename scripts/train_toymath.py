"""Train the shipped toy-math checkpoints (policy, PRM, ORM) from scratch and report.

    python scripts/train_toymath.py --out adapters/checkpoints/toymath

runs :func:`treesearch.train.toymath_recipe.run_recipe` with its default recipe (the policy's
SFT about 40 minutes of one shared CPU core, the reward models about an hour more), writes
``policy``, ``prm`` and ``orm`` under ``--out`` and prints the report (also stored in each
checkpoint's ``training.json``).

    python scripts/train_toymath.py --out DIR --policy-from adapters/checkpoints/toymath/policy

starts from a saved policy and retrains only the reward models (PRM and ORM); the shipped PRM
and ORM were made this way, from the shipped policy. ``--set FIELD=VALUE`` changes one
:class:`~treesearch.train.toymath_recipe.ToyMathRecipe` field (JSON values: ``--set
prm_lm_weight=0 --set prm_truncate_after_error=false``).

A killed run resumes: every model is saved under ``OUT/.progress`` as soon as it is trained,
and the same command loads it instead of training it again (``--restart`` starts over).
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
    parser.add_argument(
        "--policy-from", default=None, help="a saved policy folder to start from (skip its SFT)"
    )
    parser.add_argument(
        "--restart",
        action="store_true",
        help="discard the models a killed run left in OUT/.progress (by default it resumes)",
    )
    parser.add_argument(
        "--set",
        dest="settings",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="change one recipe field (repeatable)",
    )
    args = parser.parse_args(argv)

    import torch

    from treesearch.train.toymath_recipe import ToyMathRecipe, run_recipe

    torch.set_num_threads(args.threads)
    command = shlex.join(["python", "scripts/train_toymath.py", *sys.argv[1:]])
    start = time.perf_counter()

    def progress(message: str) -> None:
        print(f"[{time.perf_counter() - start:7.1f} s] {message}", flush=True)

    recipe = ToyMathRecipe(seed=args.seed, **recipe_settings(args.settings))
    report = run_recipe(
        args.out,
        recipe,
        command=command,
        progress=progress,
        policy_from=args.policy_from,
        resume=not args.restart,
    )
    print(json.dumps(report, indent=2, sort_keys=True))
    return 0


def recipe_settings(settings: list[str]) -> dict[str, object]:
    """``FIELD=VALUE`` strings as recipe overrides, with the value parsed as JSON."""
    import dataclasses

    from treesearch.train.toymath_recipe import ToyMathRecipe

    fields = {f.name for f in dataclasses.fields(ToyMathRecipe)} - {
        "seed",
        "policy_stages",
        "prm_stages",
    }
    overrides: dict[str, object] = {}
    for setting in settings:
        name, sep, text = setting.partition("=")
        if not sep or name not in fields:
            raise SystemExit(
                f"--set takes FIELD=VALUE with FIELD one of {', '.join(sorted(fields))}; "
                f"got {setting!r}"
            )
        try:
            overrides[name] = json.loads(text)
        except json.JSONDecodeError:
            overrides[name] = text
    return overrides


if __name__ == "__main__":
    raise SystemExit(main())
