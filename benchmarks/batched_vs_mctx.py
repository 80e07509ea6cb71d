"""treesearch BatchedMCTS vs DeepMind's mctx ``muzero_policy`` on CPU, same shapes, one process.

Target P3 of the design: batched PUCT over 256 trees with 225 actions (a 15x15 board) and 64
simulations per tree, with a trivial evaluator, at least twice as fast as mctx on CPU.

Both sides run AlphaZero/MuZero PUCT (``c_init = 1.25``, ``c_base = 19652``) with Dirichlet root
noise (``alpha = 0.3``, fraction 0.25, mctx's defaults) in two-player zero-sum mode (mctx:
reward 0, discount -1 at every step; ours: ``two_player=True``), and the same evaluator:

* ``uniform`` (the P3 workload): uniform priors (ours: probabilities ``1/A``; mctx: zero logits)
  and value 0 for every node. Answered from constant arrays on both sides.
* ``table``: priors that depend on the action taken, ``softmax(logits[action])`` from a random
  ``[A, A]`` table drawn once (ours gathers the softmaxed rows; mctx gathers the logit rows and
  softmaxes them itself), value 0. Non-uniform priors make the trees deeper than in
  ``uniform``.

With every value 0 both selection rules reduce to the same ``c(s) P sqrt(N) / (1 + n)``: mctx's
Q normalisation (``qtransform_by_parent_and_siblings``) maps all-zero Q to 0 and our first-play
urgency is 0. The trees still differ in detail (mctx breaks ties with 1e-7 noise, computes in
float32 and draws its own Dirichlet noise), so each side's tree depth is reported.

mctx's compiled function returns only what a self-play step uses (the sampled action and the
visit distribution ``action_weights``), which lets XLA skip materialising the search tree as an
output; ours returns its whole tree (no copy is involved). The tree depths come from a
separate, untimed mctx call that returns the tree.

mctx is compiled once with ``jax.jit(...).lower(...).compile()``; that time is reported as
``mctx_compile_seconds`` and excluded from ``mctx_seconds``. After one untimed warm-up search per
side (ours keeps its scratch arrays between searches, as a self-play loop would), ``--runs``
searches per side alternate which side goes first, each with a fresh seed; the medians are
reported with their spread. ``ratio = mctx_seconds / ours_seconds`` (above 1: ours faster).

Usage::

    pip install -e ".[mctx]"        # mctx and jax (CPU); not part of the test install
    python benchmarks/batched_vs_mctx.py                 # readable table
    python benchmarks/batched_vs_mctx.py --json          # one JSON object on the last line
    python benchmarks/batched_vs_mctx.py --profile       # + cProfile of our side
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as _dt
import gc
import io
import json
import os
import pstats
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from treesearch.search.batched import BatchedMCTS, BatchedSearchResult, RecurrentOutput

PB_C_INIT = 1.25
PB_C_BASE = 19652.0
DIRICHLET_ALPHA = 0.3
DIRICHLET_FRACTION = 0.25
WORKLOADS = ("uniform", "table")


def _logit_table(num_actions: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, 1.5, size=(num_actions, num_actions))


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


# ------------------------------------------------------------------------------- ours


def make_ours(
    workload: str, batch: int, num_actions: int, sims: int, seed: int
) -> Callable[[int], BatchedSearchResult]:
    search = BatchedMCTS(
        c_puct=PB_C_INIT,
        c_base=PB_C_BASE,
        dirichlet_alpha=DIRICHLET_ALPHA,
        dirichlet_epsilon=DIRICHLET_FRACTION,
        two_player=True,
    )
    root_values = np.zeros(batch)
    if workload == "uniform":
        uniform = RecurrentOutput(np.full((batch, num_actions), 1.0 / num_actions), root_values)
        root_priors = uniform.priors

        def recurrent_fn(parents: np.ndarray, actions: np.ndarray, node: int) -> RecurrentOutput:
            return uniform

    else:
        probs = _softmax(_logit_table(num_actions, seed))
        root_priors = np.broadcast_to(probs[0], (batch, num_actions))

        def recurrent_fn(parents: np.ndarray, actions: np.ndarray, node: int) -> RecurrentOutput:
            return RecurrentOutput(probs[actions], root_values)

    def run(run_seed: int) -> BatchedSearchResult:
        return search.search(
            root_priors, root_values, recurrent_fn, sims, rng=np.random.default_rng(run_seed)
        )

    return run


# ------------------------------------------------------------------------------- mctx


def make_mctx(
    workload: str, batch: int, num_actions: int, sims: int, seed: int
) -> tuple[Callable[[int], Any], float, Callable[[int], Any]]:
    """The compiled mctx search (``seed -> (action, action_weights)``), its compile time in
    seconds, and an untimed variant that returns the search tree too."""
    import jax
    import jax.numpy as jnp
    import mctx

    zeros = jnp.zeros(batch)
    if workload == "uniform":
        root_logits = jnp.zeros((batch, num_actions))

        def recurrent_fn(params, rng_key, action, embedding):
            out = mctx.RecurrentFnOutput(
                reward=zeros,
                discount=-jnp.ones(batch),
                prior_logits=jnp.zeros((batch, num_actions)),
                value=zeros,
            )
            return out, embedding

    else:
        logits = jnp.asarray(_logit_table(num_actions, seed), jnp.float32)
        root_logits = jnp.broadcast_to(logits[0], (batch, num_actions))

        def recurrent_fn(params, rng_key, action, embedding):
            out = mctx.RecurrentFnOutput(
                reward=zeros,
                discount=-jnp.ones(batch),
                prior_logits=logits[action],
                value=zeros,
            )
            return out, embedding

    root = mctx.RootFnOutput(prior_logits=root_logits, value=zeros, embedding=zeros)

    def policy(rng_key):
        return mctx.muzero_policy(
            params=(),
            rng_key=rng_key,
            root=root,
            recurrent_fn=recurrent_fn,
            num_simulations=sims,
            dirichlet_fraction=DIRICHLET_FRACTION,
            dirichlet_alpha=DIRICHLET_ALPHA,
            pb_c_init=PB_C_INIT,
            pb_c_base=PB_C_BASE,
        )

    def act(rng_key):
        out = policy(rng_key)
        return out.action, out.action_weights

    start = time.perf_counter()
    compiled = jax.jit(act).lower(jax.random.PRNGKey(0)).compile()
    compile_seconds = time.perf_counter() - start
    with_tree = jax.jit(lambda rng_key: policy(rng_key).search_tree)

    def run(run_seed: int) -> Any:
        return jax.block_until_ready(compiled(jax.random.PRNGKey(run_seed)))

    def tree(run_seed: int) -> Any:
        return jax.block_until_ready(with_tree(jax.random.PRNGKey(run_seed)))

    return run, compile_seconds, tree


# ------------------------------------------------------------------------------- measuring


def _depths(parents: np.ndarray) -> np.ndarray:
    """Depth of every node slot of ``[B, N]`` parent pointers (-1: root or unused -> 0)."""
    depth = np.zeros(parents.shape, dtype=np.int64)
    rows = np.arange(parents.shape[0])
    for n in range(1, parents.shape[1]):
        p = parents[:, n]
        depth[:, n] = np.where(p >= 0, depth[rows, np.maximum(p, 0)] + 1, 0)
    return depth


def _tree_shape(parents: np.ndarray, visits: np.ndarray) -> dict[str, float]:
    depth = _depths(parents)
    made = parents >= 0
    return {
        "max_depth": int(depth.max()),
        "mean_node_depth": float(depth[made].mean()) if made.any() else 0.0,
        "root_visits_per_tree": float(visits.sum(axis=1).mean()),
    }


def measure(workload: str, batch: int, num_actions: int, sims: int, runs: int, seed: int) -> dict:
    ours = make_ours(workload, batch, num_actions, sims, seed)
    start = time.perf_counter()
    ours(seed)  # warm-up, and the first (cold) search's time
    ours_cold = time.perf_counter() - start
    theirs, compile_seconds, theirs_tree = make_mctx(workload, batch, num_actions, sims, seed)
    theirs(seed)
    ours_times: list[float] = []
    mctx_times: list[float] = []
    last_ours: BatchedSearchResult | None = None
    for i in range(runs):
        order = ("ours", "mctx") if i % 2 == 0 else ("mctx", "ours")
        for side in order:
            gc.collect()
            start = time.perf_counter()
            if side == "ours":
                last_ours = ours(seed + 1 + i)
                ours_times.append(time.perf_counter() - start)
            else:
                theirs(seed + 1 + i)
                mctx_times.append(time.perf_counter() - start)
    assert last_ours is not None
    tree = theirs_tree(seed + runs)
    ours_s, mctx_s = statistics.median(ours_times), statistics.median(mctx_times)
    return {
        "workload": workload,
        "ours_seconds": ours_s,
        "mctx_seconds": mctx_s,
        "ratio": mctx_s / ours_s,
        "mctx_compile_seconds": compile_seconds,
        "ours_first_search_seconds": ours_cold,
        "ours_all_seconds": ours_times,
        "mctx_all_seconds": mctx_times,
        "ratio_min_max": [min(mctx_times) / max(ours_times), max(mctx_times) / min(ours_times)],
        "ours_tree": _tree_shape(last_ours.tree.parents, last_ours.visit_counts),
        "mctx_tree": _tree_shape(np.asarray(tree.parents), np.asarray(tree.children_visits[:, 0])),
    }


def machine_info() -> dict:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # benchmarks/_machine.py
    from importlib.metadata import version

    import jax
    from _machine import base_info

    return {
        **base_info(),
        "jax": jax.__version__,
        "jaxlib": version("jaxlib"),
        "mctx": version("mctx"),
        "jax_devices": [str(d) for d in jax.devices()],
    }


def profile_ours(batch: int, num_actions: int, sims: int, runs: int, seed: int) -> None:
    for workload in WORKLOADS:
        run = make_ours(workload, batch, num_actions, sims, seed)
        run(seed)
        profiler = cProfile.Profile()
        profiler.enable()
        for i in range(runs):
            run(seed + 1 + i)
        profiler.disable()
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).strip_dirs().sort_stats("tottime").print_stats(20)
        print(f"\n=== profile: ours, {workload}, sorted by tottime ===")
        print(out.getvalue().strip())


def _table(report: dict) -> str:
    m = report["machine"]
    lines = [
        f"B={report['batch']} trees, A={report['actions']} actions, {report['sims']} simulations,"
        f" median of {report['runs']} runs per side; {report['date']}",
        f"machine: {m['processor']} ({m['cpus_usable']} usable of {m['cpu_count']} CPUs), "
        f"{m['platform']}, Python {m['python']}, numpy {m['numpy']}, jax {m['jax']}, "
        f"mctx {m['mctx']}",
        "",
        f"{'workload':<10}{'ours (s)':>10}{'mctx (s)':>10}{'ratio':>8}{'spread':>16}"
        f"{'compile (s)':>13}{'depth ours/mctx':>18}",
    ]
    for w in report["workloads"].values():
        lo, hi = w["ratio_min_max"]
        lines.append(
            f"{w['workload']:<10}{w['ours_seconds']:>10.4f}{w['mctx_seconds']:>10.4f}"
            f"{w['ratio']:>7.2f}x{f'{lo:.2f}x..{hi:.2f}x':>16}{w['mctx_compile_seconds']:>13.2f}"
            f"{w['ours_tree']['max_depth']:>12}/{w['mctx_tree']['max_depth']}"
        )
    lines += ["", "ratio = mctx time / our time (above 1: ours faster); target P3: >= 2."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=256, help="trees per search (B)")
    parser.add_argument("--actions", type=int, default=225, help="actions per node (A)")
    parser.add_argument("--sims", type=int, default=64, help="simulations per tree")
    parser.add_argument("--runs", type=int, default=7, help="timed searches per side (median)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workload", choices=(*WORKLOADS, "all"), default="all")
    parser.add_argument("--json", action="store_true", help="print one JSON object, last line")
    parser.add_argument("--profile", action="store_true", help="cProfile our side")
    args = parser.parse_args(argv)
    if min(args.batch, args.actions, args.sims, args.runs) < 1:
        parser.error("--batch, --actions, --sims and --runs must be positive")
    # mctx on CPU, whatever accelerators the machine has.
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    try:
        import jax  # noqa: F401
        import mctx  # noqa: F401
    except ImportError as exc:
        print(
            f"batched_vs_mctx.py needs mctx and jax ({exc}). Install them with\n"
            '    pip install -e ".[mctx]"     (or: pip install mctx "jax[cpu]")\n'
            "They are an optional extra, not part of the test install.",
            file=sys.stderr,
        )
        return 2
    workloads = WORKLOADS if args.workload == "all" else (args.workload,)
    report: dict[str, Any] = {
        "batch": args.batch,
        "actions": args.actions,
        "sims": args.sims,
        "runs": args.runs,
        "seed": args.seed,
        "machine": machine_info(),
        "date": _dt.date.today().isoformat(),
        "workloads": {
            w: measure(w, args.batch, args.actions, args.sims, args.runs, args.seed)
            for w in workloads
        },
    }
    headline = report["workloads"][workloads[0]]
    for key in ("ours_seconds", "mctx_seconds", "mctx_compile_seconds", "ratio"):
        report[key] = headline[key]
    report["headline_workload"] = workloads[0]
    if args.profile:
        profile_ours(args.batch, args.actions, args.sims, args.runs, args.seed)
    if args.json:
        sys.stdout.flush()
        print(json.dumps(report))
    else:
        print(_table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
