"""Test-time scaling on the toy arithmetic world: accuracy against token budget, per method.

Snell, Lee, Xu & Kumar, "Scaling LLM Test-Time Compute Optimally can be More Effective than
Scaling Model Parameters" (arXiv 2408.03314), and the Hugging Face search-and-learn recipes, on
held-out problems of :mod:`treesearch.adapters.toymath` at three levels (easy, medium, hard).
The policy and the PRM are the tiny toy-world checkpoints (``--tiny``: random tiny models, for
tests). Methods (:mod:`treesearch.adapters.toymath_search`): ``greedy``, ``best_of_n`` (the
sample with the highest last-step PRM score), ``weighted_best_of_n`` (the answer with the
largest sum of last-step PRM scores, on the same samples), ``beam`` (step-level beam search,
width 4, weighted vote), ``dvts`` and ``mcts`` (PUCT over steps, leaves valued by the PRM).
Each also runs with the exact checker as an oracle verifier, and best-of-N with the ORM.

Budget: a search at ``N`` may generate ``ceil(1.25 * N * unit)`` policy tokens, where ``unit``
is the token count of the problem's reference solution (each step, its ``<sep>``, and
``<eos>``): about the cost of ``N`` sampled solutions. Greedy is one unbudgeted solution,
reported at every ``N``.

    python benchmarks/test_time_scaling.py --quick --json --plot docs/img/test_time_scaling.png
    python benchmarks/test_time_scaling.py --levels medium --problems 50 --ns 1 4 16 64

``--json`` prints one object as the last stdout line: ``accuracy`` (level -> method -> N ->
accuracy, N as a string), ``tokens_ratio`` (policy and PRM tokens processed per unique tree
token over the PRM-guided beam and MCTS searches, with KV reuse), ``prm_first_error_f1``
(ProcessBench F1 of the PRM on held-out reference and one-slip solutions), ``oracle`` and
``orm`` accuracies, ``budget_used`` (tokens spent / budget), ``beam_vs_best_of_4n`` and
``timings``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from treesearch.search._common import AGGREGATIONS

LEVELS = ("easy", "medium", "hard")
GUIDED = ("best_of_n", "weighted_best_of_n", "beam", "dvts", "mcts")
FULL_NS = (1, 2, 4, 8, 16, 32, 64)
QUICK_NS = (1, 4, 16)
F1_PROBLEMS = 100  # held-out problems per level for the PRM's ProcessBench F1


def machine_info() -> dict[str, Any]:
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import torch

    return {
        "platform": platform.platform(),
        "processor": cpu,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }


def load_searcher(args: argparse.Namespace) -> tuple[Any, str]:
    """The :class:`ToyMathSearcher` for the run and a description of its models."""
    from treesearch.adapters.toymath_search import ScalingConfig, open_searcher

    config = (
        None
        if args.tiny
        else ScalingConfig(device=args.device, dtype=args.dtype, aggregation=args.aggregation)
    )
    return open_searcher(args.checkpoints, tiny=args.tiny, seed=args.seed, config=config)


def prm_processbench(
    searcher: Any, levels: Sequence[str], seed: int, problems: int = F1_PROBLEMS
) -> dict[str, Any]:
    """ProcessBench-style F1 of the PRM: per level, the first ``problems`` held-out problems'
    reference solutions (label -1) and one one-slip solution each (label: the slipped step,
    from :func:`~treesearch.adapters.toymath.flawed_steps`). The PRM predicts the first step
    scored below 0.5."""
    from treesearch.adapters.toymath import check_solution, flawed_steps, heldout_split
    from treesearch.train.prm import first_error_prediction, processbench_f1

    labels: list[int] = []
    predictions: list[int] = []
    per_level: dict[str, float] = {}
    for index, level in enumerate(levels):
        rng = np.random.default_rng([seed, 7919, index])
        states = []
        for problem in heldout_split(level, problems):
            for steps in (problem.steps, flawed_steps(problem, rng)[0]):
                state = searcher.root(problem)
                for step in steps:
                    state = state.step(step)
                states.append(state)
                first = check_solution(problem, steps).first_error
                labels.append(-1 if first is None else first)
        for scores in searcher.prm.step_scores(states):
            predictions.append(first_error_prediction(scores))
        level_labels, level_predictions = labels[-len(states) :], predictions[-len(states) :]
        per_level[level] = processbench_f1(level_labels, level_predictions).f1
    result = processbench_f1(labels, predictions)
    return {
        "solutions": f"per level, {problems} held-out reference solutions and one one-slip "
        "solution each (toymath.flawed_steps)",
        "f1": result.f1,
        "acc_erroneous": result.acc_erroneous,
        "acc_correct": result.acc_correct,
        "num_erroneous": result.num_erroneous,
        "num_correct": result.num_correct,
        "f1_per_level": per_level,
    }


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if len(values) else math.nan


def run_benchmark(
    searcher: Any,
    *,
    levels: Sequence[str],
    ns: Sequence[int],
    problems: int,
    seed: int,
    oracle: bool = True,
    orm: bool = True,
    f1_problems: int = F1_PROBLEMS,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Every method at every ``N`` on the first ``problems`` held-out problems of each level.

    Search ``(level, method, verifier, N, problem)`` draws from
    ``np.random.default_rng([seed, level, method, verifier, N, problem])`` (indices), so any
    subset of the grid reproduces the same searches.
    """
    from treesearch.adapters.toymath import heldout_split

    say = progress or (lambda _text: None)
    started = time.perf_counter()
    verifiers = ["prm"] + (["oracle"] if oracle else []) + (["orm"] if orm else [])
    accuracy: dict[str, dict[str, dict[str, float]]] = {}
    extra: dict[str, dict[str, dict[str, dict[str, float]]]] = {"oracle": {}, "orm": {}}
    used: dict[str, dict[str, dict[str, float]]] = {}
    seconds: dict[str, float] = {}
    processed = dict.fromkeys(
        ("policy_processed", "policy_tree", "policy_duplicates", "prm_processed", "prm_tree"), 0
    )
    method_index = {"greedy": 0, "best_of_n": 1, "beam": 2, "dvts": 3, "mcts": 4}

    def rng_for(level: int, method: str, verifier: str, n: int, problem: int) -> Any:
        keys = [seed, level, method_index[method], VERIFIER_INDEX[verifier], n, problem]
        return np.random.default_rng(keys)

    for li, level in enumerate(levels):
        tasks = heldout_split(level, problems)
        accuracy[level] = {}
        used[level] = {}
        greedy = [
            searcher.run(p, "greedy", 1, rng=rng_for(li, "greedy", "prm", 1, k))
            for k, p in enumerate(tasks)
        ]
        seconds["greedy"] = seconds.get("greedy", 0.0) + sum(o.seconds for o in greedy)
        greedy_acc = _mean([o.correct for o in greedy])
        accuracy[level]["greedy"] = {str(n): greedy_acc for n in ns}
        say(f"{level:<6} greedy              accuracy {greedy_acc:.3f}")
        for verifier in verifiers:
            methods = ("best_of_n", "beam", "dvts", "mcts") if verifier != "orm" else ("best_of_n",)
            table = accuracy[level] if verifier == "prm" else extra[verifier].setdefault(level, {})
            for method in methods:
                for n in ns:
                    outcomes: dict[str, list[Any]] = {}
                    for k, problem in enumerate(tasks):
                        rng = rng_for(li, method, verifier, n, k)
                        if method == "best_of_n":
                            plain, weighted = searcher.run_best_of_n(
                                problem, n, rng=rng, verifier=verifier
                            )
                            outcomes.setdefault("best_of_n", []).append(plain)
                            outcomes.setdefault("weighted_best_of_n", []).append(weighted)
                        else:
                            outcome = searcher.run(problem, method, n, rng=rng, verifier=verifier)
                            outcomes.setdefault(method, []).append(outcome)
                    for name, group in outcomes.items():
                        acc = _mean([o.correct for o in group])
                        table.setdefault(name, {})[str(n)] = acc
                        if verifier == "prm":
                            used[level].setdefault(name, {})[str(n)] = _mean(
                                [o.tokens / o.budget for o in group]
                            )
                        say(f"{level:<6} {name:<19} {verifier:<6} N={n:<3} accuracy {acc:.3f}")
                    group = next(iter(outcomes.values()))
                    key = f"{method}/{verifier}"
                    seconds[key] = seconds.get(key, 0.0) + sum(o.seconds for o in group)
                    if verifier == "prm" and method in ("beam", "mcts"):
                        for o in group:
                            processed["policy_processed"] += o.policy_processed
                            processed["policy_tree"] += o.policy_tree
                            processed["policy_duplicates"] += o.policy_duplicates
                            processed["prm_processed"] += o.verifier_processed
                            processed["prm_tree"] += o.verifier_tree
    report: dict[str, Any] = {
        "accuracy": accuracy,
        "tokens_ratio": {
            "policy": processed["policy_processed"] / max(processed["policy_tree"], 1),
            "prm": processed["prm_processed"] / max(processed["prm_tree"], 1),
            "policy_without_duplicates": (
                processed["policy_processed"] - processed["policy_duplicates"]
            )
            / max(processed["policy_tree"], 1),
            **processed,
        },
    }
    if f1_problems > 0:
        bench = prm_processbench(searcher, levels, seed, f1_problems)
        report["prm_first_error_f1"] = bench["f1"]
        report["prm_processbench"] = bench
    if oracle:
        report["oracle"] = extra["oracle"]
    if orm:
        report["orm"] = extra["orm"]
    report["budget_used"] = used
    report["beam_vs_best_of_4n"] = beam_vs_best_of_4n(accuracy, ns)
    report["timings"] = {
        "total_seconds": time.perf_counter() - started,
        "search_seconds": seconds,
    }
    return report


VERIFIER_INDEX = {"prm": 0, "oracle": 1, "orm": 2}


def beam_vs_best_of_4n(
    accuracy: dict[str, dict[str, dict[str, float]]], ns: Sequence[int]
) -> dict[str, list[dict[str, Any]]]:
    """Per level, for every ``N`` with ``4N`` also measured: beam search at ``N`` against plain
    best-of-N at ``4N``, and whether beam is at least as accurate."""
    out: dict[str, list[dict[str, Any]]] = {}
    for level, table in accuracy.items():
        rows = []
        for n in ns:
            if 4 * n not in ns or "beam" not in table or "best_of_n" not in table:
                continue
            beam = table["beam"][str(n)]
            bon = table["best_of_n"][str(4 * n)]
            rows.append({"n": n, "beam": beam, "best_of_n_at_4n": bon, "holds": beam >= bon})
        out[level] = rows
    return out


def plot(report: dict[str, Any], ns: Sequence[int], path: Path, title: str) -> Path:
    """Accuracy against N (log scale), one panel per level, one line per method; the oracle
    beam search dotted and the ORM's weighted best-of-N dashed. Written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levels = list(report["accuracy"])
    width = max(5.5, 4.2 * len(levels))
    fig, axes = plt.subplots(1, len(levels), figsize=(width, 3.8), squeeze=False)
    for ax, level in zip(axes[0], levels, strict=True):
        table = report["accuracy"][level]
        for method, values in table.items():
            ax.plot(ns, [values[str(n)] for n in ns], marker="o", ms=3, label=method)
        oracles = report.get("oracle", {}).get(level, {})
        for method, style in (("beam", ":"), ("best_of_n", "-.")):
            if method in oracles:
                values = [oracles[method][str(n)] for n in ns]
                ax.plot(ns, values, style, color="black", label=f"{method} (oracle)")
        orm = report.get("orm", {}).get(level, {}).get("weighted_best_of_n")
        if orm:
            ax.plot(ns, [orm[str(n)] for n in ns], "--", color="grey", label="weighted BoN (ORM)")
        ax.set_xscale("log", base=2)
        ax.set_xticks(list(ns), [str(n) for n in ns])
        shown = [v for line in ax.get_lines() for v in line.get_ydata()]
        ax.set_ylim(-0.02, 1.02 if max(shown, default=0.0) > 0.45 else 0.52)
        ax.set_title(level)
        ax.set_xlabel("budget N (solutions' worth of tokens)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("accuracy")
    axes[0][-1].legend(fontsize=7, loc="best")
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}.png")
    try:
        fig.savefig(tmp, dpi=110)
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        if tmp.exists():
            tmp.unlink()
    return path


def format_table(report: dict[str, Any], ns: Sequence[int]) -> str:
    lines = []
    for level, table in report["accuracy"].items():
        lines.append(f"{level}: accuracy (PRM-guided)")
        lines.append(f"  {'method':<20}" + "".join(f"{'N=' + str(n):>8}" for n in ns))
        for method, values in table.items():
            lines.append(f"  {method:<20}" + "".join(f"{values[str(n)]:>8.3f}" for n in ns))
        for kind in ("oracle", "orm"):
            for method, values in report.get(kind, {}).get(level, {}).items():
                name = f"{method} ({kind})"
                lines.append(f"  {name:<20}" + "".join(f"{values[str(n)]:>8.3f}" for n in ns))
    ratio = report["tokens_ratio"]
    lines.append(
        f"tokens processed per unique tree token (beam + MCTS, KV reuse): policy "
        f"{ratio['policy']:.3f}, PRM {ratio['prm']:.3f}"
    )
    if "prm_first_error_f1" in report:
        lines.append(f"PRM first-error F1 (ProcessBench style): {report['prm_first_error_f1']:.3f}")
    for level, rows in report["beam_vs_best_of_4n"].items():
        for row in rows:
            lines.append(
                f"{level}: beam at N={row['n']} {row['beam']:.3f} vs best-of-N at "
                f"{4 * row['n']} {row['best_of_n_at_4n']:.3f}: "
                f"{'holds' if row['holds'] else 'does not hold'}"
            )
    return "\n".join(lines)


def json_safe(value: Any) -> Any:
    """``value`` with every NaN or infinite float replaced by ``None`` (strict JSON)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="one JSON object on the last line")
    parser.add_argument(
        "--quick", action="store_true", help=f"N in {QUICK_NS} and 20 problems per level"
    )
    parser.add_argument("--levels", nargs="+", choices=LEVELS, default=list(LEVELS))
    parser.add_argument(
        "--problems", type=int, help="problems per level (default 20 with --quick, else 50)"
    )
    parser.add_argument("--ns", type=int, nargs="+", help=f"budgets N (default {FULL_NS})")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", type=Path, metavar="PATH", help="write the PNG plot here")
    parser.add_argument("--no-oracle", action="store_true", help="skip the oracle verifier runs")
    parser.add_argument("--no-orm", action="store_true", help="skip the ORM runs")
    parser.add_argument(
        "--tiny", action="store_true", help="random tiny models (tests; accuracy is meaningless)"
    )
    parser.add_argument(
        "--checkpoints",
        metavar="DIR",
        help="folder of the toy-world checkpoints (default: shipped)",
    )
    parser.add_argument(
        "--aggregation",
        choices=AGGREGATIONS,
        default="min",
        help="how a path's step scores become one (default: min)",
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=("bf16", "fp16", "fp32"))
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = parser.parse_args(argv)
    if args.problems is not None and args.problems < 1:
        parser.error("--problems must be >= 1")
    ns = tuple(sorted(set(args.ns))) if args.ns else (QUICK_NS if args.quick else FULL_NS)
    if any(n < 1 for n in ns):
        parser.error("--ns must be positive")
    problems = args.problems or (20 if args.quick else 50)

    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    searcher, models = load_searcher(args)

    def progress(text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)

    progress(f"models: {models}; levels {args.levels}, N {list(ns)}, {problems} problems each")
    report = run_benchmark(
        searcher,
        levels=args.levels,
        ns=ns,
        problems=problems,
        seed=args.seed,
        oracle=not args.no_oracle,
        orm=not args.no_orm,
        f1_problems=4 if args.tiny else F1_PROBLEMS,
        progress=progress,
    )
    report["config"] = {
        "models": models,
        "levels": args.levels,
        "ns": list(ns),
        "problems": problems,
        "seed": args.seed,
        "search": {
            k: v
            for k, v in searcher.config.__dict__.items()
            if isinstance(v, (int, float, str, bool)) or v is None
        },
        "budget": "ceil(budget_slack * N * reference-solution tokens)",
        "aggregation": searcher.config.aggregation,
        "command": " ".join(["python", "benchmarks/test_time_scaling.py", *(argv or sys.argv[1:])]),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(),
    }
    if args.plot is not None:
        title = (
            f"toy math, {problems} held-out problems per level, seed {args.seed}; "
            f"{'random tiny models' if args.tiny else 'trained policy and PRM'}"
        )
        report["plot"] = str(plot(report, ns, args.plot, title))
    if args.json:
        print(json.dumps(json_safe(report), allow_nan=False))
    else:
        print(format_table(report, ns))
    return 0


if __name__ == "__main__":
    sys.exit(main())
