"""The ``treesearch search`` command: ``treesearch search toymath`` runs a verifier-guided
test-time search (greedy, best-of-N, beam search, DVTS or MCTS; Snell et al., arXiv
2408.03314) on held-out problems of the toy arithmetic world and reports the accuracy, the
tokens spent and the tokens each model processed per unique tree token; ``--viz`` draws the
first problem's search tree with every step's PRM score.

``treesearch.cli`` wires the subcommand in; this module stays light (torch loads only when the
command runs). The searches are those of :mod:`treesearch.adapters.toymath_search`: a search at
``--n N`` may generate ``ceil(1.25 * N * unit)`` policy tokens, ``unit`` being the token count
of the problem's reference solution.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

from ._cli_util import int_at_least
from .search._common import AGGREGATIONS

__all__ = ["add_search_command", "run_toymath", "tree_label"]

_PROG = "treesearch"
_BAR_WIDTH = 30
_ALGOS = {
    "greedy": "greedy",
    "best-of-n": "best_of_n",
    "weighted-best-of-n": "weighted_best_of_n",
    "beam": "beam",
    "dvts": "dvts",
    "mcts": "mcts",
}
_BIG_TREE = 200  # trees with more nodes are drawn with the 3 most visited children per node
_LABEL_CHARS = 32


_int_at_least = int_at_least


def add_search_command(commands: Any) -> None:
    """Add ``search`` (with its ``toymath`` subcommand) to ``commands``, an argparse
    subparsers object."""
    search = commands.add_parser(
        "search",
        help="test-time search with a process reward model",
        description="Verifier-guided test-time search on a reasoning task.",
    )
    tasks = search.add_subparsers(dest="task", required=True, metavar="TASK")
    toy = tasks.add_parser(
        "toymath",
        help="the toy arithmetic world with its trained policy and PRM",
        description=(
            "Search held-out toy arithmetic problems with the trained policy, guided by the "
            "trained PRM (or the ORM, or the exact checker). Prints the accuracy, the tokens "
            "generated and the tokens each model processed per unique tree token. A search at "
            "--n N may generate ceil(1.25 N unit) tokens, unit being the reference solution's "
            "token count."
        ),
    )
    toy.add_argument(
        "--algo", choices=sorted(_ALGOS), default="beam", help="search (default: %(default)s)"
    )
    toy.add_argument(
        "--n", type=_int_at_least(1), default=16, metavar="N", help="budget N (default: 16)"
    )
    toy.add_argument(
        "--problems",
        type=_int_at_least(1),
        default=100,
        metavar="P",
        help="held-out problems (default: %(default)s; at most 1000)",
    )
    toy.add_argument(
        "--level",
        choices=("easy", "medium", "hard"),
        default="medium",
        help="difficulty (default: %(default)s)",
    )
    toy.add_argument(
        "--verifier",
        choices=("prm", "orm", "oracle"),
        default="prm",
        help="what guides the search: the trained PRM, the ORM or the exact checker "
        "(default: %(default)s)",
    )
    toy.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    toy.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    toy.add_argument(
        "--viz", metavar="PATH", help="draw the first problem's search tree (.svg, .png, .dot)"
    )
    toy.add_argument(
        "--checkpoints", metavar="DIR", help="folder with policy/, prm/, orm/ (default: shipped)"
    )
    toy.add_argument(
        "--tiny", action="store_true", help="random tiny models instead (for trying the command)"
    )
    toy.add_argument(
        "--aggregation",
        choices=AGGREGATIONS,
        default="min",
        help="how a path's step scores become one (default: %(default)s)",
    )
    toy.add_argument("--device", default="cpu", help="cpu or cuda (default: %(default)s)")
    toy.add_argument(
        "--threads", type=_int_at_least(1), default=1, help="torch CPU threads (default: 1)"
    )
    toy.set_defaults(handler=_cmd_search_toymath)


def tree_label(node: Any, step_scores: list[float], prompt: str) -> str:
    """A node's picture label: its step text (``<eos>`` for the end step) and the PRM's score
    of it; the root shows the problem; MCTS nodes add their visits."""
    if node.index == 0:
        return _cut(prompt, 2 * _LABEL_CHARS)
    text = getattr(node.action, "content", str(node.action)).strip() or "<eos>"
    score = step_scores[node.index]
    lines = [_cut(text, _LABEL_CHARS), f"PRM {score:.3f}" if math.isfinite(score) else "PRM -"]
    if node.visits > 1:
        lines.append(f"N={node.visits}")
    return "\n".join(lines)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


class _Bar:
    """The stderr progress bar: redrawn in place on a terminal, else one line per tenth."""

    def __init__(self, total: int, *, tty: bool) -> None:
        self.total = total
        self.tty = tty
        self.started = time.perf_counter()
        self.shown = -1

    def update(self, done: int, correct: int) -> None:
        tenth = 10 * done // self.total
        if not self.tty and tenth == self.shown:
            return
        self.shown = tenth
        filled = round(_BAR_WIDTH * done / self.total)
        line = (
            f"[{'#' * filled}{'-' * (_BAR_WIDTH - filled)}] {done}/{self.total} problems  "
            f"accuracy {correct / max(done, 1):.3f}  {time.perf_counter() - self.started:5.0f} s"
        )
        sys.stderr.write(f"\r{line}" if self.tty else f"{line}\n")
        if self.tty and done == self.total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def run_toymath(
    searcher: Any,
    *,
    algo: str,
    n: int,
    problems: int,
    level: str,
    seed: int,
    verifier: str = "prm",
    viz: str | None = None,
    progress: Any = None,
) -> dict[str, Any]:
    """Run one method on the first ``problems`` held-out problems of ``level``; the summary
    that ``--json`` prints. ``progress(done, correct)`` is called after each problem. Problem
    ``k`` searches with ``np.random.default_rng([seed, k])``."""
    import numpy as np

    from .adapters.toymath import heldout_split

    method = _ALGOS.get(algo, algo)
    tasks = heldout_split(level, problems)
    correct = tokens = budget = units = 0
    processed = {"policy": 0, "policy_tree": 0, "duplicates": 0, "verifier": 0, "verifier_tree": 0}
    first = None
    started = time.perf_counter()
    for k, problem in enumerate(tasks):
        rng = np.random.default_rng([seed, k])
        if method in ("best_of_n", "weighted_best_of_n"):
            plain, weighted = searcher.run_best_of_n(problem, n, rng=rng, verifier=verifier)
            outcome = plain if method == "best_of_n" else weighted
        else:
            outcome = searcher.run(problem, method, n, rng=rng, verifier=verifier)
        first = first or outcome
        correct += int(outcome.correct)
        tokens += outcome.tokens
        budget += outcome.budget
        units += outcome.unit
        processed["policy"] += outcome.policy_processed
        processed["policy_tree"] += outcome.policy_tree
        processed["duplicates"] += outcome.policy_duplicates
        processed["verifier"] += outcome.verifier_processed
        processed["verifier_tree"] += outcome.verifier_tree
        if progress is not None:
            progress(k + 1, correct)
    seconds = time.perf_counter() - started
    count = len(tasks)
    summary: dict[str, Any] = {
        "task": "toymath",
        "algo": algo,
        "method": method,
        "level": level,
        "n": n,
        "verifier": verifier,
        "problems": count,
        "seed": seed,
        "accuracy": correct / count,
        "correct": correct,
        "usage": {
            "tokens": tokens,
            "tokens_per_problem": tokens / count,
            "budget_tokens": budget,
            "budget_used": tokens / budget if budget else math.nan,
            "reference_tokens_per_problem": units / count,
            "policy_tokens_processed": processed["policy"],
            "policy_tree_tokens": processed["policy_tree"],
            "policy_duplicate_sample_tokens": processed["duplicates"],
            "verifier_tokens_processed": processed["verifier"],
            "verifier_tree_tokens": processed["verifier_tree"],
        },
        "tokens_ratio": {
            "policy": _ratio(processed["policy"], processed["policy_tree"]),
            "policy_without_duplicates": _ratio(
                processed["policy"] - processed["duplicates"], processed["policy_tree"]
            ),
            verifier: _ratio(processed["verifier"], processed["verifier_tree"]),
        },
        "seconds": seconds,
        "viz": None,
    }
    if viz is not None and first is not None:
        summary["viz"] = str(_draw(searcher, first.result.tree, tasks[0].prompt, viz))
    return summary


def _ratio(processed: int, unique: int) -> float | None:
    return processed / unique if unique else None


def _draw(searcher: Any, tree: Any, prompt: str, path: str) -> Path:
    from .viz import render

    scores = searcher.node_step_scores(tree)
    view: dict[str, Any] = {"top_k": 3} if tree.num_nodes > _BIG_TREE else {}
    return render(
        tree,
        path,
        label_fn=lambda node: tree_label(node, scores, prompt),
        value_range=(0.0, 1.0),
        **view,
    )


def _format(summary: dict[str, Any], models: str) -> str:
    usage = summary["usage"]
    ratio = summary["tokens_ratio"]
    ratios = ", ".join(
        f"{name} {value:.3f}"
        for name, value in ratio.items()
        if value is not None and name != "policy_without_duplicates"
    )
    plain, unique = ratio["policy"], ratio["policy_without_duplicates"]
    if plain is not None and unique is not None and plain > unique:
        ratios += f" (policy {unique:.3f} without the samples merged into an identical one)"
    lines = [
        f"toymath {summary['level']}: {summary['algo']} at N={summary['n']} guided by the "
        f"{summary['verifier'].upper()}, {summary['problems']} held-out problems, seed "
        f"{summary['seed']} ({models})",
        f"accuracy: {summary['accuracy']:.3f} ({summary['correct']}/{summary['problems']})",
        f"tokens generated: {usage['tokens']} ({usage['tokens_per_problem']:.1f} per problem, "
        f"{usage['budget_used']:.0%} of the budget; reference solutions "
        f"{usage['reference_tokens_per_problem']:.1f} tokens)",
        f"tokens processed per unique tree token: {ratios or '-'}",
        f"time: {summary['seconds']:.1f} s",
    ]
    if summary["viz"]:
        lines.append(f"wrote {summary['viz']} (the search tree of problem 0)")
    return "\n".join(lines)


def _cmd_search_toymath(args: argparse.Namespace) -> int:
    if args.problems > 1000:
        raise ValueError(
            f"--problems must be at most 1000 (held-out split size), got {args.problems}"
        )
    import torch

    torch.set_num_threads(args.threads)
    from .adapters.toymath_search import ScalingConfig, open_searcher

    config = None if args.tiny else ScalingConfig(device=args.device, aggregation=args.aggregation)
    searcher, models = open_searcher(
        args.checkpoints, tiny=args.tiny, seed=args.seed, config=config
    )
    print(
        f"searching {args.problems} {args.level} problems: {args.algo} at N={args.n} ({models})",
        file=sys.stderr,
        flush=True,
    )
    bar = _Bar(args.problems, tty=sys.stderr.isatty())
    summary = run_toymath(
        searcher,
        algo=args.algo,
        n=args.n,
        problems=args.problems,
        level=args.level,
        seed=args.seed,
        verifier=args.verifier,
        viz=args.viz,
        progress=bar.update,
    )
    summary["models"] = models
    print(_format(summary, models))
    if args.json:
        print(json.dumps(summary))
    return 0
