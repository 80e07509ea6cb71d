"""Prefix (KV-cache) reuse in LLM tree search: tokens run through each model per unique tree
token, and wall time, with reuse and with naive re-encoding (targets P5 and P6).

Step-level beam search (Snell et al., arXiv 2408.03314) and PUCT MCTS over reasoning steps on
hard toy arithmetic problems (:mod:`treesearch.adapters.toymath`), with an
:class:`~treesearch.adapters.policies.HFStepPolicy` proposing steps and an
:class:`~treesearch.adapters.verifiers.HFPRM` (``"seed"`` preset) scoring them. Each search runs
twice in one process, on the same models and seeds: with ``kv_reuse=True`` (a child continues
from its parent's cached prefix) and ``kv_reuse=False`` (every call re-encodes every prefix).
The ratio is ``tokens_processed / unique tree tokens``
(:func:`treesearch.adapters.accounting.token_ratios`); target P5 is at most 1.1 for both models
with reuse, the naive mode several times higher, at tree depth 8 or more. Identical samples of
one state are merged into one node, so their generation is work without a tree token;
``policy_without_duplicates`` leaves those tokens out
(:func:`treesearch.adapters.toymath_search.duplicate_sample_tokens`).

Models (``--model-size``): ``small`` (default; a random Qwen2 of 1.0M parameters), ``0.5b`` (a
random Qwen2 with the shape of Qwen2-0.5B: 24 layers, hidden 896, 14 heads, 2 KV heads, MLP
4864, tied 151,936-token embeddings; about 494M parameters; P6 on a GPU), or ``toymath`` (the
trained toy-world checkpoints). Random models write random characters: their steps end at
``--step-tokens`` tokens and a search ends at ``--max-steps`` steps, so trees reach that depth.

    python benchmarks/llm_search_reuse.py --json
    python benchmarks/llm_search_reuse.py --device cuda --dtype bf16 --model-size 0.5b --json
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import time
from typing import Any

import numpy as np

SIZES = ("small", "0.5b", "toymath")


def qwen2_model(tokenizer: Any, size: str, *, seed: int) -> Any:
    """A randomly initialised Qwen2 causal LM of ``size`` (weights drawn under a forked torch
    RNG seeded with ``seed``)."""
    import torch
    from transformers import AutoModelForCausalLM, Qwen2Config

    ids = {
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
    }
    if size == "small":
        config = Qwen2Config(
            vocab_size=len(tokenizer),
            hidden_size=128,
            intermediate_size=512,
            num_hidden_layers=4,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=1024,
            tie_word_embeddings=False,
            **ids,
        )
    elif size == "0.5b":
        # Qwen2-0.5B's shape; the vocabulary is kept at its 151,936 rows (the policy masks the
        # logits the toy tokenizer cannot decode), so the parameter count matches too.
        config = Qwen2Config(
            vocab_size=151_936,
            hidden_size=896,
            intermediate_size=4864,
            num_hidden_layers=24,
            num_attention_heads=14,
            num_key_value_heads=2,
            max_position_embeddings=32_768,
            rope_parameters={"rope_theta": 1_000_000.0, "rope_type": "default"},
            tie_word_embeddings=True,
            **ids,
        )
    else:
        raise ValueError(f"unknown model size {size!r}")
    config._attn_implementation = "sdpa"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config)
    return model.eval()


def parameter_count(model: Any) -> int:
    return sum(p.numel() for p in model.parameters())


def _max_depth(tree: Any) -> int:
    return int(tree.depth[: tree.num_nodes].max())


def _keys(tree: Any) -> set[Any]:
    return {tree.state(i).key for i in range(tree.num_nodes)}


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from treesearch import MCTS, BeamSearch, Budget
    from treesearch.adapters.accounting import token_ratios
    from treesearch.adapters.policies import HFStepPolicy
    from treesearch.adapters.toymath import SEP, build_tokenizer, format_prefix, heldout_split
    from treesearch.adapters.toymath_search import duplicate_sample_tokens
    from treesearch.adapters.verifiers import HFPRM

    tokenizer = build_tokenizer()
    if args.model_size == "toymath":
        from treesearch.adapters.toymath_search import load_checkpoints

        policy_model, prm_model, _ = load_checkpoints(args.checkpoints or _shipped())
        step_tokens = 24
    else:
        policy_model = qwen2_model(tokenizer, args.model_size, seed=args.seed)
        prm_model = qwen2_model(tokenizer, args.model_size, seed=args.seed + 1)
        step_tokens = args.step_tokens
    problems = heldout_split(args.level, args.problems)

    def components(kv_reuse: bool, candidates: int) -> tuple[Any, Any]:
        policy = HFStepPolicy(
            policy_model,
            tokenizer,
            step_separator=SEP,
            num_candidates=candidates,
            max_step_tokens=step_tokens,
            temperature=args.temperature,
            device=args.device,
            dtype=args.dtype,
            kv_reuse=kv_reuse,
        )
        prm = HFPRM(
            prm_model,
            tokenizer,
            preset="seed",
            device=args.device,
            dtype=args.dtype,
            kv_reuse=kv_reuse,
        )
        return policy, prm

    def sync() -> None:
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()

    report: dict[str, Any] = {}
    trees: dict[tuple[str, str], list[set[Any]]] = {}
    for search_name in ("beam", "mcts"):
        entry: dict[str, Any] = {}
        for mode in ("reuse", "naive"):
            children = args.beam_width if search_name == "beam" else args.mcts_children
            policy, prm = components(mode == "reuse", children)
            totals = {"policy": 0, "policy_tree": 0, "prm": 0, "prm_tree": 0, "duplicate": 0}
            depths, nodes, seconds = [], 0, 0.0
            for k, problem in enumerate(problems):
                prefix = format_prefix(problem.prompt)
                steps = args.max_steps if args.model_size != "toymath" else problem.num_steps + 3
                root = policy.initial_state(prefix, question=prefix, max_steps=steps)
                rng = np.random.default_rng([args.seed, k])
                policy.reset_counters()
                prm.reset_counters()
                policy.cache.clear()
                prm.cache.clear()
                sync()
                started = time.perf_counter()
                if search_name == "beam":
                    search: Any = BeamSearch(
                        policy, prm, n=args.beam_n, beam_width=args.beam_width, max_iterations=steps
                    )
                    result = search.search(root, Budget(tokens=1_000_000), rng=rng)
                else:
                    search = MCTS(
                        policy=policy,
                        verifier=prm,
                        c=args.mcts_c,
                        fpu="parent",
                        value_bounds=(0.0, 1.0),
                    )
                    result = search.search(root, Budget(simulations=args.mcts_sims), rng=rng)
                sync()
                seconds += time.perf_counter() - started
                ratios = token_ratios(result, policy=policy, verifier=prm)
                totals["policy"] += int(ratios["policy_processed"])
                totals["policy_tree"] += int(ratios["policy_tree"])
                totals["prm"] += int(ratios["verifier_processed"])
                totals["prm_tree"] += int(ratios["verifier_tree"])
                totals["duplicate"] += duplicate_sample_tokens(result.tree)
                depths.append(_max_depth(result.tree))
                nodes += result.tree.num_nodes
                trees.setdefault((search_name, mode), []).append(_keys(result.tree))
            entry[mode] = {
                "policy": totals["policy"] / totals["policy_tree"],
                "prm": totals["prm"] / totals["prm_tree"],
                "policy_without_duplicates": (totals["policy"] - totals["duplicate"])
                / totals["policy_tree"],
                "seconds": seconds,
                "nodes": nodes,
                "max_depth": max(depths),
                "min_depth": min(depths),
                **{f"{name}_tokens": value for name, value in totals.items()},
            }
        entry["naive_over_reuse_seconds"] = entry["naive"]["seconds"] / entry["reuse"]["seconds"]
        entry["same_trees"] = trees[(search_name, "reuse")] == trees[(search_name, "naive")]
        report[search_name] = entry
    reuse = [report[s]["reuse"][m] for s in ("beam", "mcts") for m in ("policy", "prm")]
    report["p5"] = {
        "target": "<= 1.1 with reuse for the policy and the PRM, at depth >= 8",
        "holds": all(r <= 1.1 for r in reuse)
        and all(report[s]["reuse"]["max_depth"] >= 8 for s in ("beam", "mcts")),
    }
    report["config"] = {
        "model_size": args.model_size,
        "parameters": {"policy": parameter_count(policy_model), "prm": parameter_count(prm_model)},
        "device": args.device,
        "dtype": args.dtype,
        "level": args.level,
        "problems": args.problems,
        "beam": {"n": args.beam_n, "beam_width": args.beam_width},
        "mcts": {"simulations": args.mcts_sims, "children": args.mcts_children, "c": args.mcts_c},
        "step_tokens": step_tokens,
        "max_steps": args.max_steps,
        "seed": args.seed,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    return report


def _shipped() -> Any:
    from treesearch.adapters.toymath_search import SHIPPED_CHECKPOINTS

    return SHIPPED_CHECKPOINTS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="one JSON object on the last line")
    parser.add_argument("--model-size", choices=SIZES, default="small")
    parser.add_argument("--checkpoints", help="toy-world checkpoints (with --model-size toymath)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--dtype", choices=("bf16", "fp16", "fp32"))
    parser.add_argument("--level", choices=("easy", "medium", "hard"), default="hard")
    parser.add_argument("--problems", type=int, default=3, help="searches of each kind")
    parser.add_argument("--beam-n", type=int, default=8, help="beams (default 8)")
    parser.add_argument("--beam-width", type=int, default=4, help="M, and MCTS children")
    parser.add_argument("--mcts-sims", type=int, default=100, help="MCTS simulations")
    parser.add_argument("--mcts-children", type=int, default=2, help="children per MCTS leaf")
    parser.add_argument("--mcts-c", type=float, default=0.25, help="MCTS PUCT constant")
    parser.add_argument("--max-steps", type=int, default=10, help="depth cap (random models)")
    parser.add_argument("--step-tokens", type=int, default=12, help="step length (random models)")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = parser.parse_args(argv)
    names = ("problems", "beam_n", "beam_width", "mcts_sims", "mcts_children", "max_steps")
    for name in (*names, "step_tokens"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    report = run(args)
    if args.json:
        print(json.dumps(report))
        return 0
    for name in ("beam", "mcts"):
        entry = report[name]
        for mode in ("reuse", "naive"):
            e = entry[mode]
            print(
                f"{name:<5} {mode:<6} policy {e['policy']:6.3f} "
                f"({e['policy_without_duplicates']:6.3f} without duplicates)  PRM {e['prm']:6.3f}  "
                f"{e['seconds']:7.2f} s  {e['nodes']} nodes, "
                f"depth {e['min_depth']}-{e['max_depth']}"
            )
        print(
            f"{name:<5} naive / reuse time {entry['naive_over_reuse_seconds']:.2f}x, "
            f"same trees: {entry['same_trees']}"
        )
    print(f"P5 ({report['p5']['target']}): {'holds' if report['p5']['holds'] else 'fails'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
