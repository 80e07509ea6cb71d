"""The ``treesearch`` command.

Subcommands:

* ``treesearch demo``: MCTS on a connect-four position; prints the move and the root's visit
  distribution, and writes ``tree.json`` and ``tree.svg``. Then, when a trained Gomoku agent is
  shipped (or given), it plays a 9x9 game against UCT MCTS and draws the final position
  (``gomoku-final.svg``) and its first search tree (``gomoku-tree.svg``).
* ``treesearch viz TREE.json -o OUT.svg``: draw a saved tree (``.svg``, ``.png``, ``.pdf`` or
  ``.dot`` by the output suffix).
* ``treesearch arena`` and ``treesearch play``: a match between two game players, and a person
  against an agent (:mod:`treesearch.cli_games`).
* ``treesearch train gomoku``: AlphaZero self-play training with checkpoints and resume
  (:mod:`treesearch.cli_train`).
* ``treesearch search toymath``: PRM-guided test-time search on the toy arithmetic world, with
  accuracy, token usage and a picture of a search tree (:mod:`treesearch.cli_search`).

The command owns the terminal: it prints here, the library never does. Exit status: 0 on
success, 2 for usage errors, 1 (with a one-line ``treesearch: error: ...``) for bad input
files, missing tools and other expected failures.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ._cli_util import int_at_least
from .cli_games import add_game_commands
from .cli_search import add_search_command
from .cli_train import add_train_command

__all__ = ["main", "run_demo", "run_gomoku_demo", "run_toymath_demo"]

_PROG = "treesearch"

# Trees above this size are drawn pruned unless --all is given: depth and children per node.
_BIG_TREE = 500
_BIG_TREE_VIEW = (4, 3)
_BAR_WIDTH = 30


# ------------------------------------------------------------------------------------ demo
def run_demo(
    out_dir: str | os.PathLike[str],
    *,
    sims: int = 2000,
    seed: int | None = 0,
    opening: Sequence[int] = (),
    gomoku_agent: str | os.PathLike[str] | None = None,
    gomoku_sims: int = 200,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run UCT with random rollouts on a connect-four position and save the tree; then, given
    a Gomoku agent, play it against UCT MCTS (:func:`run_gomoku_demo`).

    Args:
        out_dir: folder for ``tree.json`` and ``tree.svg`` (created if missing).
        sims: MCTS simulations.
        seed: seed of the search's random generator (and of the Gomoku game).
        opening: columns played from the empty board before searching.
        gomoku_agent: a network saved by :func:`treesearch.games.nets.save_net` (the shipped
            one is :func:`treesearch.games.arena.shipped_agent_path`); ``None`` leaves the
            Gomoku game out.
        gomoku_sims: the agent's simulations per move.
        progress: receives the Gomoku game's lines as they happen.

    Returns:
        A summary: ``board`` (text), ``to_play``, ``action``, ``actions``, ``visits``,
        ``distribution``, ``q`` (per root child, for the player to move), ``root_value``,
        ``usage`` (dict), ``paths`` (``json`` and ``svg``, or ``dot`` when Graphviz is missing),
        ``warning`` (``None`` or why the SVG could not be drawn) and ``gomoku`` (the summary of
        :func:`run_gomoku_demo`, or ``None``).
    """
    import numpy as np

    from . import Budget
    from .evaluators import RandomRollout
    from .games.connect_four import ConnectFour
    from .search.mcts import MCTS
    from .viz import render, save_json

    if isinstance(sims, bool) or not isinstance(sims, int) or sims < 1:
        raise ValueError(f"sims must be a positive int, got {sims!r}")
    state = ConnectFour.from_moves(list(opening)) if opening else ConnectFour()
    if state.is_terminal():
        raise ValueError("the opening already ends the game; nothing to search")
    mcts = MCTS(RandomRollout(), selection="uct", c=1.4)
    result = mcts.search(state, Budget(simulations=sims), rng=np.random.default_rng(seed))
    tree = result.tree

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": save_json(tree, out / "tree.json")}
    view: dict[str, Any] = {"top_k": 3, "max_depth": 3}  # about 40 boxes: readable on a screen
    warning = None
    try:
        paths["svg"] = render(tree, out / "tree.svg", **view)
    except RuntimeError as exc:  # no Graphviz: keep the DOT source so the user can draw it
        warning = str(exc)
        paths["dot"] = render(tree, out / "tree.dot", **view)

    gomoku = None
    if gomoku_agent is not None:
        gomoku = run_gomoku_demo(
            out, gomoku_agent, agent_sims=gomoku_sims, seed=seed, progress=progress
        )
    kids = tree.children(tree.ROOT)
    return {
        "board": str(state),
        "to_play": int(state.to_play),
        "action": result.action,
        "actions": tuple(result.actions),
        "visits": [int(tree.visits[i]) for i in kids],
        "distribution": np.asarray(result.visit_distribution, dtype=float).tolist(),
        "q": [tree.q(i) for i in kids],
        "root_value": float(result.root_value),
        "usage": result.usage.to_dict(),
        "paths": paths,
        "warning": warning,
        "gomoku": gomoku,
    }


def run_gomoku_demo(
    out_dir: str | os.PathLike[str],
    agent: str | os.PathLike[str],
    *,
    agent_sims: int = 200,
    opponent_sims: int = 400,
    seed: int | None = 0,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """One Gomoku game: an AlphaZero agent (PUCT with its network, black) against this
    library's UCT MCTS with random rollouts (white), on the agent's board (``k`` from its
    metadata, default 5).

    Writes ``gomoku-final.svg`` (the final position, moves numbered) and ``gomoku-tree.svg``
    (the agent's search tree for its first move, actions as coordinates; a tree over
    ``_BIG_TREE`` nodes is drawn to depth 4 with the 3 most visited children of each node, as
    ``treesearch viz`` does; ``gomoku-tree.dot`` when Graphviz is missing) into ``out_dir``.

    Args:
        out_dir: output folder (created if missing).
        agent: a network file written by :func:`treesearch.games.nets.save_net`.
        agent_sims: the agent's simulations per move.
        opponent_sims: UCT simulations per move.
        seed: seed of the game's random generator.
        progress: receives a heading line, then one line per move as it is played.

    Returns:
        ``size``, ``k``, ``moves`` (coordinates such as ``e5``), ``actions``, ``winner``
        (``"agent"``, ``"mcts"`` or ``None`` for a draw), ``winning_line`` (coordinates),
        ``agent_seconds`` and ``opponent_seconds`` (totals), ``tree_nodes`` and ``tree_pruned``
        (the first search tree), ``paths`` (``final`` and ``tree``, or ``tree_dot``) and
        ``warning`` (``None`` or why the tree SVG could not be drawn).

    Raises:
        FileNotFoundError: no file at ``agent``.
        ValueError: a file that is not a network, or bad simulation counts.
    """
    import time

    import numpy as np

    from .games.arena import AlphaZeroPlayer, MCTSPlayer
    from .games.gomoku import Gomoku, format_move
    from .games.nets import load_net
    from .tree import Tree
    from .viz import render

    net = load_net(agent)
    size = int(net.size)
    stored_k = net.metadata.get("k", "5")
    try:
        k = int(stored_k)
    except ValueError:
        raise ValueError(
            f"{os.fspath(agent)!r}: bad k in the network's metadata: {stored_k!r}"
        ) from None
    players = (
        AlphaZeroPlayer(net, simulations=agent_sims, name="AlphaZero"),
        MCTSPlayer(simulations=opponent_sims, name="UCT"),
    )
    emit = progress if progress is not None else (lambda line: None)
    emit(
        f"Gomoku {size}x{size}, {k} in a row: AlphaZero agent {Path(agent).name} (X, "
        f"{agent_sims} simulations per move) against UCT with random rollouts (O, "
        f"{opponent_sims} simulations per move), seed {seed}"
    )
    rng = np.random.default_rng(seed)
    state = Gomoku(size, k)
    seconds = [0.0, 0.0]
    first_tree: Tree | None = None
    while not state.is_terminal():
        mover = state.to_play
        start = time.perf_counter()
        choice = players[mover].choose(state, rng=rng)
        elapsed = time.perf_counter() - start
        if not isinstance(choice, (int, np.integer)):
            raise TypeError(f"{players[mover].name} chose {choice!r}, not a Gomoku cell (int)")
        action = int(choice)
        seconds[mover] += elapsed
        if first_tree is None and mover == 0:
            result = players[0].last_result
            assert result is not None  # set by every choose
            first_tree = result.tree.subtree(Tree.ROOT)  # a copy: the player reuses its tree
            first_tree.actions = [
                format_move(a, size) if isinstance(a, int) else a for a in first_tree.actions
            ]
        emit(
            f"{state.num_moves + 1:>4}. {'XO'[mover]} {format_move(action, size):<4} "
            f"{players[mover].name:<9} {players[mover].last_simulations} sims, {elapsed:.2f} s"
        )
        state = state.step(action)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {"final": out / "gomoku-final.svg"}
    state.save_image(paths["final"], numbers=True)
    assert first_tree is not None  # black (the agent) moves first
    pruned = first_tree.num_nodes > _BIG_TREE
    max_depth, top_k = _BIG_TREE_VIEW if pruned else (None, None)
    view: dict[str, Any] = {"max_depth": max_depth, "top_k": top_k}
    warning = None
    try:
        paths["tree"] = render(first_tree, out / "gomoku-tree.svg", **view)
    except RuntimeError as exc:  # no Graphviz: keep the DOT source
        warning = str(exc)
        paths["tree_dot"] = render(first_tree, out / "gomoku-tree.dot", **view)
    winner = state.winner
    return {
        "size": size,
        "k": k,
        "moves": [format_move(a, size) for a in state.moves],
        "actions": list(state.moves),
        "winner": None if winner is None else ("agent", "mcts")[winner],
        "winning_line": [format_move(a, size) for a in state.winning_line()],
        "agent_seconds": seconds[0],
        "opponent_seconds": seconds[1],
        "tree_nodes": int(first_tree.num_nodes),
        "tree_pruned": pruned,
        "paths": paths,
        "warning": warning,
    }


def _format_gomoku(summary: dict[str, Any]) -> str:
    moves = len(summary["moves"])
    if summary["winner"] is None:
        outcome = f"a draw after {moves} moves"
    else:
        who = "AlphaZero (X)" if summary["winner"] == "agent" else "UCT (O)"
        outcome = f"{who} wins in {moves} moves: {' '.join(summary['winning_line'])}"
    lines = [outcome]
    if summary["tree_pruned"]:
        depth, top_k = _BIG_TREE_VIEW
        lines.append(
            f"first search tree: {summary['tree_nodes']} nodes, drawn to depth {depth} with the "
            f"{top_k} most visited children of each node"
        )
    lines += [f"wrote {path}" for path in summary["paths"].values()]
    return "\n".join(lines)


def _format_demo(summary: dict[str, Any], *, sims: int, seed: int | None) -> str:
    player = "XO"[summary["to_play"]]
    lines = [
        f"Connect four, {player} to move; UCT with random rollouts, {sims} simulations "
        f"(seed {seed})",
        "",
        summary["board"],
        "0123456",
        "",
        f"{'column':>6}  {'visits':>7}  {'share':>6}  {'Q':>7}",
    ]
    rows = zip(
        summary["actions"], summary["visits"], summary["distribution"], summary["q"], strict=True
    )
    for action, visits, share, q in rows:
        q_text = f"{q:+.3f}" if visits > 0 else "-"
        bar = "#" * round(share * _BAR_WIDTH)
        lines.append(f"{action!s:>6}  {visits:>7}  {share:>6.1%}  {q_text:>7}  {bar}")
    lines += [
        "",
        f"chosen move: column {summary['action']}   (root value {summary['root_value']:+.3f}; "
        f"values are for {player}, from -1 loss to +1 win)",
    ]
    lines += [f"wrote {path}" for path in summary["paths"].values()]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------ parsing
_int_at_least = int_at_least


def _opening(text: str) -> tuple[int, ...]:
    digits = text.replace(",", " ").split()
    if len(digits) == 1 and len(digits[0]) > 1:
        digits = list(digits[0])
    if not all(d.isdigit() and int(d) < 7 for d in digits):
        raise argparse.ArgumentTypeError(
            f"expected columns 0..6 such as '332' or '3,3,2': {text!r}"
        )
    return tuple(int(d) for d in digits)


def _build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog=_PROG, description="Tree search with pluggable generators and verifiers."
    )
    parser.add_argument("--version", action="version", version=f"{_PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    viz = commands.add_parser(
        "viz", help="draw a saved tree", description="Draw a tree saved as JSON."
    )
    viz.add_argument("tree", metavar="TREE.json", help="a tree written by treesearch.viz.save_json")
    viz.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="OUT",
        help="output file; the suffix picks the format: .svg, .png, .pdf or .dot",
    )
    viz.add_argument(
        "--max-depth", type=_int_at_least(0), metavar="D", help="hide nodes deeper than D"
    )
    viz.add_argument(
        "--top-k", type=_int_at_least(1), metavar="K", help="keep the K most visited children"
    )
    viz.add_argument(
        "--min-visits",
        type=_int_at_least(0),
        default=0,
        metavar="N",
        help="hide children with fewer than N visits",
    )
    viz.add_argument(
        "--all",
        action="store_true",
        help=f"draw every node of a tree over {_BIG_TREE} nodes (otherwise pruned by default)",
    )
    viz.set_defaults(handler=_cmd_viz)

    demo = commands.add_parser(
        "demo",
        help="MCTS on connect four, then the shipped Gomoku agent against UCT",
        description="Run UCT with random rollouts on connect four and draw the search tree; "
        "then the shipped 9x9 Gomoku agent (when installed) plays a game against UCT, and the "
        "final position and the agent's first search tree are drawn.",
    )
    demo.add_argument(
        "--out",
        default="treesearch-demo",
        metavar="DIR",
        help="output folder (default: %(default)s)",
    )
    demo.add_argument(
        "--sims",
        type=_int_at_least(1),
        default=2000,
        metavar="N",
        help="simulations (default: %(default)s)",
    )
    demo.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    demo.add_argument(
        "--opening",
        type=_opening,
        default=(),
        metavar="MOVES",
        help="columns played before searching, e.g. '332' (default: the empty board)",
    )
    demo.add_argument(
        "--gomoku-agent",
        metavar="PATH",
        help="the network that plays the Gomoku game (default: the shipped 9x9 agent)",
    )
    demo.add_argument(
        "--gomoku-sims",
        type=_int_at_least(1),
        default=200,
        metavar="N",
        help="the Gomoku agent's simulations per move (default: %(default)s)",
    )
    demo.add_argument(
        "--no-gomoku", action="store_true", help="leave out the Gomoku game (connect four only)"
    )
    demo.add_argument(
        "--toymath-problems",
        type=_int_at_least(1),
        default=5,
        metavar="N",
        help="held-out toy-math problems for the PRM-guided search part (default: %(default)s)",
    )
    demo.add_argument(
        "--no-toymath", action="store_true", help="leave out the PRM-guided toy-math search"
    )
    demo.set_defaults(handler=_cmd_demo)
    add_game_commands(commands)  # arena, play
    add_train_command(commands)  # train gomoku
    add_search_command(commands)  # search toymath
    return parser


# ----------------------------------------------------------------------------------- commands
def _cmd_viz(args: argparse.Namespace) -> int:
    from .viz import load_json, render

    tree = load_json(args.tree)
    max_depth, top_k = args.max_depth, args.top_k
    unpruned = max_depth is None and top_k is None and args.min_visits == 0
    if unpruned and not args.all and tree.num_nodes > _BIG_TREE:
        # A picture of thousands of nodes is unreadable (and slow to lay out).
        max_depth, top_k = _BIG_TREE_VIEW
        print(
            f"{_PROG}: large tree ({tree.num_nodes} nodes): drawing the {top_k} most visited "
            f"children of each node to depth {max_depth}; pass --all to draw every node",
            file=sys.stderr,
        )
    path = render(tree, args.output, max_depth=max_depth, top_k=top_k, min_visits=args.min_visits)
    print(f"wrote {path} ({tree.num_nodes} nodes in the tree)")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    print(f"searching ({args.sims} simulations)...", file=sys.stderr, flush=True)
    summary = run_demo(args.out, sims=args.sims, seed=args.seed, opening=args.opening)
    print(_format_demo(summary, sims=args.sims, seed=args.seed))
    if summary["warning"]:
        print(f"{_PROG}: warning: {summary['warning']}", file=sys.stderr)
    if not args.no_gomoku:
        print()
        _demo_gomoku(args)
    if not args.no_toymath:
        print()
        _demo_toymath(args)
    return 0


def _demo_gomoku(args: argparse.Namespace) -> None:
    agent, why_not = _demo_gomoku_agent(args.gomoku_agent)
    if agent is None:
        print(f"Gomoku: skipped ({why_not})")
        return
    import torch

    torch.set_num_threads(1)  # one position per network call: extra threads only add overhead
    gomoku = run_gomoku_demo(
        args.out, agent, agent_sims=args.gomoku_sims, seed=args.seed, progress=print
    )
    print(_format_gomoku(gomoku))
    if gomoku["warning"]:
        print(f"{_PROG}: warning: {gomoku['warning']}", file=sys.stderr)


def _demo_toymath(args: argparse.Namespace) -> None:
    try:
        import torch

        from .adapters.toymath_search import SHIPPED_CHECKPOINTS
    except ImportError as exc:
        print(f"Toy math: skipped ({exc.name} is missing: pip install 'treesearch[hf]')")
        return
    if not (SHIPPED_CHECKPOINTS / "policy" / "config.json").exists():
        print(f"Toy math: skipped (no shipped checkpoints in {SHIPPED_CHECKPOINTS})")
        return
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # the loading bars of three tiny models are noise here
    torch.set_num_threads(1)
    print(
        f"Toy math: greedy, best-of-4 and PRM-guided beam search (4 beams) on "
        f"{args.toymath_problems} held-out medium problems...",
        file=sys.stderr,
        flush=True,
    )
    summary = run_toymath_demo(args.out, problems=args.toymath_problems, seed=args.seed)
    print(_format_toymath(summary))


def run_toymath_demo(
    out_dir: str | os.PathLike[str],
    *,
    checkpoints: str | os.PathLike[str] | None = None,
    problems: int = 5,
    n: int = 4,
    level: str = "medium",
    seed: int = 0,
) -> dict[str, Any]:
    """Greedy decoding, best-of-``n`` and PRM-guided beam search with the shipped toy-math
    policy and PRM (or the ``policy``/``prm``/``orm`` folders in ``checkpoints``) on the first
    ``problems`` held-out problems of ``level``. Draws the first beam search's tree, with each
    step's PRM score, to ``toymath-tree.svg`` (``.dot`` without Graphviz).

    Returns:
        ``models``, ``level``, ``n``, ``problems``, ``results`` (per method: the summary of
        :func:`treesearch.cli_search.run_toymath`) and ``warning``.
    """
    from .adapters.toymath_search import open_searcher
    from .cli_search import run_toymath

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    searcher, models = open_searcher(checkpoints, seed=seed)
    results: dict[str, dict[str, Any]] = {}
    warning = None
    for algo in ("greedy", "best-of-n", "beam"):
        options: dict[str, Any] = {"n": n, "problems": problems, "level": level, "seed": seed}
        if algo == "beam":
            try:
                results[algo] = run_toymath(
                    searcher, algo=algo, viz=str(out / "toymath-tree.svg"), **options
                )
                continue
            except RuntimeError as exc:  # no Graphviz: search again and keep the DOT source
                warning = str(exc)
                results[algo] = run_toymath(
                    searcher, algo=algo, viz=str(out / "toymath-tree.dot"), **options
                )
                continue
        results[algo] = run_toymath(searcher, algo=algo, **options)
    return {
        "models": models,
        "level": level,
        "n": n,
        "problems": problems,
        "results": results,
        "warning": warning,
    }


def _format_toymath(summary: dict[str, Any]) -> str:
    lines = [
        f"Toy math, {summary['problems']} held-out {summary['level']} problems, "
        f"{summary['models']}:",
        f"  {'method':<16} {'accuracy':>8} {'tokens/problem':>15} {'policy reuse':>13}",
    ]
    for algo, result in summary["results"].items():
        usage, ratio = result["usage"], result["tokens_ratio"].get("policy")
        name = algo if algo == "greedy" else f"{algo} (n={summary['n']})"
        lines.append(
            f"  {name:<16} {result['accuracy']:>8.0%} {usage['tokens_per_problem']:>15.0f} "
            f"{'-' if ratio is None else f'{ratio:.2f}':>13}"
        )
    beam = summary["results"].get("beam", {})
    if beam.get("viz"):
        lines.append(f"  wrote {beam['viz']} (one beam search, each step with its PRM score)")
    lines.append(
        "  policy reuse: tokens the policy ran / unique tokens in the tree (KV-cache reuse; "
        "a naive loop re-reads every prefix)"
    )
    return "\n".join(lines)


def _demo_gomoku_agent(given: str | None) -> tuple[Path | None, str]:
    """The demo's Gomoku agent, or ``None`` and why there is none. A path the user gives must
    exist (a missing one is an error later); a missing shipped agent only skips the game."""
    import importlib.util

    if given is not None:
        return Path(given).expanduser(), ""
    if importlib.util.find_spec("torch") is None:
        return None, "the agent's network needs torch: pip install 'treesearch[hf]'"
    from .games.arena import shipped_agent_path

    path = shipped_agent_path(9, 5)
    if path is None:
        return None, (
            "no shipped agent games/agents/gomoku9.safetensors in this installation; train one "
            "with 'treesearch train gomoku --size 9' and pass --gomoku-agent RUN/best.safetensors"
        )
    return path, ""


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, FileNotFoundError) and exc.filename is not None:
        return f"no such file or directory: {exc.filename}"
    return " ".join(str(exc).split()) or type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``treesearch`` command with ``argv`` (default ``sys.argv[1:]``); returns the
    exit status instead of exiting, so it can be called in-process."""
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version (0) and usage errors (2)
        return exc.code if isinstance(exc.code, int) else 2
    try:
        return args.handler(args)
    except (ValueError, OSError, RuntimeError, ImportError) as exc:
        print(f"{_PROG}: error: {_one_line(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{_PROG}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
