"""``treesearch train rest-mcts|mcts-dpo --task toymath``: the self-improvement loops of
:mod:`treesearch.train.rest_mcts` (ReST-MCTS*) and :mod:`treesearch.train.mcts_dpo` (MCTS-DPO)
from the command line, with a progress bar on stderr, a table of held-out accuracy per
iteration on stdout, ``report.json`` and ``curves.png`` in the run folder.

Rerunning the same command resumes: every phase of every iteration is written atomically and
recorded in ``state.json``, so a killed run continues from the first phase it had not finished
(``--iterations`` may be raised on a rerun to train further; other settings must match).
torch and transformers load only when a command runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._cli_util import int_at_least

__all__ = ["LOOPS", "add_loop_commands", "format_history"]

_BAR_WIDTH = 30
TASKS = ("toymath",)


@dataclass(frozen=True)
class _Loop:
    name: str
    module: str
    config: str
    run: str
    title: str
    paper: str


LOOPS: dict[str, _Loop] = {
    "rest-mcts": _Loop(
        name="rest-mcts",
        module="treesearch.train.rest_mcts",
        config="ReSTMCTSConfig",
        run="run_rest_mcts",
        title="ReST-MCTS*",
        paper="Zhang et al., arXiv 2406.03816",
    ),
    "mcts-dpo": _Loop(
        name="mcts-dpo",
        module="treesearch.train.mcts_dpo",
        config="MCTSDPOConfig",
        run="run_mcts_dpo",
        title="MCTS-DPO",
        paper="Xie et al., arXiv 2405.00451",
    ),
}

# flag -> (config fields, argparse type, metavar, help); a flag sets the first of its fields the
# loop's config has (the two loops name some settings differently).
_OPTIONS: tuple[tuple[str, tuple[str, ...], Any, str, str], ...] = (
    ("--iterations", ("iterations",), int_at_least(1), "N", "self-improvement iterations"),
    (
        "--problems",
        ("problems_per_iteration", "problems_per_level"),
        int_at_least(1),
        "N",
        "training problems searched per iteration (rest-mcts: per level)",
    ),
    ("--eval-size", ("eval_size",), int_at_least(1), "N", "held-out problems per level"),
    ("--seed", ("seed",), int_at_least(0), "S", "the run's one seed"),
    (
        "--policy",
        ("policy_start", "policy_path"),
        str,
        "DIR",
        "starting policy checkpoint (Hugging Face folder)",
    ),
    (
        "--prm",
        ("value_start", "prm_path"),
        str,
        "DIR",
        "starting PRM / value model checkpoint (Hugging Face folder)",
    ),
    ("--device", ("device",), str, "DEVICE", "cpu or cuda"),
)


def add_loop_commands(loops: Any) -> None:
    """Add ``rest-mcts`` and ``mcts-dpo`` to ``loops``, the subparsers of ``treesearch train``."""
    for loop in LOOPS.values():
        parser = loops.add_parser(
            loop.name,
            help=f"{loop.title}: train an LLM policy from its own search traces",
            description=(
                f"{loop.title} ({loop.paper}): search training problems with the current "
                "policy, keep what the exact answer check verifies, train, repeat. Reports "
                "held-out greedy accuracy before and after each iteration. The run folder "
                "gets state.json, per-iteration traces and models, report.json and "
                "curves.png; rerunning the command resumes."
            ),
        )
        parser.add_argument(
            "--task", choices=TASKS, default="toymath", help="the reasoning task (default: toymath)"
        )
        for flag, _names, kind, metavar, text in _OPTIONS:
            parser.add_argument(
                flag,
                dest=flag[2:].replace("-", "_"),
                type=kind,
                metavar=metavar,
                help=f"{text} (default: the loop config's)",
            )
        parser.add_argument(
            "--set",
            dest="settings",
            action="append",
            default=[],
            metavar="FIELD=VALUE",
            help=f"any other {loop.config} setting (repeatable; VALUE is read as JSON, else "
            "as text), e.g. --set sft_max_steps=100",
        )
        parser.add_argument(
            "--out", metavar="DIR", help=f"run folder (default: runs/{loop.name}-<task>)"
        )
        parser.add_argument(
            "--threads",
            type=int_at_least(1),
            default=1,
            metavar="N",
            help="torch CPU threads (default: %(default)s)",
        )
        parser.add_argument(
            "--json", action="store_true", help="print the report as one JSON object last"
        )
        parser.set_defaults(handler=_cmd_loop, loop=loop.name)


def config_from_args(args: argparse.Namespace) -> tuple[Any, Path]:
    """The loop's config (its defaults with the flags given) and the run folder."""
    loop = LOOPS[args.loop]
    module = importlib.import_module(loop.module)
    config_cls = getattr(module, loop.config)
    fields = {f.name for f in dataclasses.fields(config_cls)}
    overrides = {}
    for flag, names, _, _, _ in _OPTIONS:
        value = getattr(args, flag[2:].replace("-", "_"), None)
        if value is None:
            continue
        field = next((name for name in names if name in fields), None)
        if field is None:
            raise ValueError(f"{loop.name} has no setting for {flag}")
        overrides[field] = value
    for setting in args.settings:
        name, sep, text = setting.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or not name:
            raise ValueError(f"--set takes FIELD=VALUE, not {setting!r}")
        if name not in fields:
            raise ValueError(
                f"{loop.config} has no setting {name!r}; it has: {', '.join(sorted(fields))}"
            )
        overrides[name] = _setting_value(text)
    config = config_cls(**overrides)
    out = Path(args.out) if args.out else Path("runs") / f"{loop.name}-{args.task}"
    return config, out


def _setting_value(text: str) -> Any:
    """``--set`` values: JSON (numbers, true/false, null, lists as tuples), else the text."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return text
    return tuple(value) if isinstance(value, list) else value


class _Bar:
    """Draws :class:`~treesearch.train.loop.LoopProgress` events: a bar redrawn in place on a
    terminal, one line per phase otherwise."""

    def __init__(self, *, tty: bool) -> None:
        self.tty = tty
        self.started = time.perf_counter()
        self.phase: tuple[int, str] | None = None
        self.drawn_at = 0.0
        self.dirty = False

    def __call__(self, event: Any) -> None:
        now = time.perf_counter()
        stage = (event.iteration, event.phase)
        elapsed = now - self.started
        if not self.tty:
            if stage != self.phase:
                self.phase = stage
                print(
                    f"[{elapsed:7.0f} s] iteration {event.iteration}/{event.iterations} "
                    f"{event.phase} {event.message}".rstrip(),
                    file=sys.stderr,
                    flush=True,
                )
            return
        if stage == self.phase and event.done != event.total and now - self.drawn_at < 0.1:
            return
        self.phase, self.drawn_at = stage, now
        total = max(event.total, 0)
        filled = round(_BAR_WIDTH * event.done / total) if total else 0
        count = f"{event.done}/{total}" if total else ""
        sys.stderr.write(
            f"\r[{'#' * filled}{'-' * (_BAR_WIDTH - filled)}] iteration "
            f"{event.iteration}/{event.iterations} {event.phase:<14} {count:>9} "
            f"{elapsed:7.0f} s \x1b[K"
        )
        sys.stderr.flush()
        self.dirty = True

    def clear(self) -> None:
        if self.dirty:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()
            self.dirty = False


def _percent(value: Any) -> str:
    return "-" if value is None else f"{100 * float(value):5.1f}%"


def format_history(history: list[dict[str, Any]]) -> str:
    """The per-iteration table: greedy held-out accuracy per level, and the value model's
    first-error F1 when the loop trains one."""
    levels: list[str] = []
    for row in history:
        for level in row.get("greedy", {}):
            if level not in levels:
                levels.append(level)
    with_f1 = any(row.get("prm_f1") is not None for row in history)
    header = ["iteration", *(f"greedy {level}" for level in levels)]
    if with_f1:
        header.append("PRM F1")
    rows = []
    for row in history:
        cells = [str(row["iteration"]) + (" (start)" if row["iteration"] == 0 else "")]
        cells += [_percent(row.get("greedy", {}).get(level)) for level in levels]
        if with_f1:
            f1 = row.get("prm_f1")
            cells.append("-" if f1 is None else f"{float(f1):.3f}")
        rows.append(cells)
    widths = [max(len(header[i]), *(len(r[i]) for r in rows)) for i in range(len(header))]
    lines = ["  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def plot_history(history: list[dict[str, Any]], path: Path, title: str) -> Path | None:
    """Held-out greedy accuracy per level (and PRM F1) against the iteration, as a PNG; ``None``
    without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    iterations = [row["iteration"] for row in history]
    fig, ax = plt.subplots(figsize=(6, 4))
    levels = sorted({level for row in history for level in row.get("greedy", {})})
    for level in levels:
        accuracy = [row.get("greedy", {}).get(level, float("nan")) for row in history]
        ax.plot(
            iterations,
            accuracy,
            marker="o",
            label=f"greedy accuracy, {level}",
        )
    if any(row.get("prm_f1") is not None for row in history):
        f1 = [float("nan") if row.get("prm_f1") is None else row["prm_f1"] for row in history]
        ax.plot(
            iterations,
            f1,
            marker="s",
            linestyle="--",
            color="black",
            label="PRM first-error F1",
        )
    ax.set_xlabel("iteration (0 = start)")
    ax.set_xticks(iterations)
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _cmd_loop(args: argparse.Namespace) -> int:
    loop = LOOPS[args.loop]
    config, out = config_from_args(args)
    import torch

    torch.set_num_threads(args.threads)
    module = importlib.import_module(loop.module)
    run = getattr(module, loop.run)
    print(f"{loop.title} on {args.task}, run folder {out}", file=sys.stderr, flush=True)
    bar = _Bar(tty=sys.stderr.isatty())
    try:
        report = run(out, config, progress=bar)
    finally:
        bar.clear()
    history = list(report.get("history", []))
    print(format_history(history))
    curves = plot_history(history, out / "curves.png", f"{loop.title} on {args.task}")
    print(f"report: {out / 'report.json'}")
    if curves is not None:
        print(f"curves: {curves}")
    if args.json:
        print(json.dumps(report, sort_keys=True, default=str))
    return 0
