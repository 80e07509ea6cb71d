"""ReST-MCTS*: value targets by hand (algorithms.md section 3's test ideas, the m convention,
inheritance on failed branches, clamping), no value data without a correct leaf, the data
builders, bad input, the config checks, and a small run of the loop (losses fall, weights
change, a half-finished folder resumes to the same report)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from treesearch.results import Trace, TraceStep
from treesearch.train.rest_mcts import (
    ReSTMCTSConfig,
    drop_blank_steps,
    policy_sft_examples,
    value_examples,
    value_targets,
)
from treesearch.train.traces import TraceTree


def trace(actions, outcome, *, problem="p", prompt="Q", score=None, answer=None):
    steps = tuple(TraceStep(a, score=score) for a in actions)
    return Trace(
        steps=steps,
        outcome=outcome,
        answer=answer,
        metadata={"problem_id": problem, "prompt": prompt},
    )


def node_of(tree, *actions):
    for i in range(tree.num_nodes):
        if tree.prefix(i) == tuple(actions):
            return i
    raise KeyError(actions)


CHAIN = ("s1", "s2", "s3", "s4")


# ---------------------------------------------------------------------- value targets
def test_correct_chain_of_four_steps():
    tree = TraceTree.from_traces([trace(CHAIN, 1.0)])
    targets = value_targets(tree)
    assert targets.solvable
    path = tree.path(node_of(tree, *CHAIN))
    assert [targets.values[i] for i in path[1:]] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    # The code's m counts the node's own step; the paper's m_k (steps left after k) is m - 1.
    assert [targets.distance[i] for i in path] == [5, 4, 3, 2, 1]
    assert [targets.paper_distance(i) for i in path[1:]] == [3, 2, 1, 0]
    assert targets.values[0] is None and all(targets.reaches_correct)


def test_paper_convention_gives_the_same_values():
    # The paper: v_k = max(v_{k-1} + w_k, 0), w_k = (1 - v_{k-1}) / (m_k + 1) * r_k.
    tree = TraceTree.from_traces(
        [trace(CHAIN, 1.0), trace(("s1", "w"), 0.0), trace(("s1", "s2", "x", "y"), 0.0)]
    )
    targets = value_targets(tree)
    for node in range(1, tree.num_nodes):
        parent = tree.parent[node]
        v_parent = 0.0 if parent == 0 else targets.values[parent]
        r = 1.0 if targets.reaches_correct[node] else -1.0
        w = (1 - v_parent) / (targets.paper_distance(node) + 1) * r
        assert targets.values[node] == pytest.approx(max(v_parent + w, 0.0))


def test_wrong_sibling_at_depth_two():
    # Its parent s1 has v = 0.25 and m = 4: max(0, 0.25 - 0.75 / 4) = 0.0625.
    tree = TraceTree.from_traces([trace(CHAIN, 1.0), trace(("s1", "w"), 0.0)])
    targets = value_targets(tree)
    s1, w = node_of(tree, "s1"), node_of(tree, "s1", "w")
    assert (targets.values[s1], targets.distance[s1]) == (pytest.approx(0.25), 4)
    assert targets.values[w] == pytest.approx(0.0625)
    assert targets.distance[w] == 4 and not targets.reaches_correct[w]
    assert len(targets.samples()) == 5


def test_failed_branches_inherit_the_nearest_known_distance():
    tree = TraceTree.from_traces(
        [trace(CHAIN, 1.0), trace(("s1", "s2", "x", "y"), 0.0), trace(("s1", "w", "z"), 0.0)]
    )
    targets = value_targets(tree)
    x, y = node_of(tree, "s1", "s2", "x"), node_of(tree, "s1", "s2", "x", "y")
    # x and y inherit m(s2) = 3; v(s2) = 0.5: x = 0.5 - 0.5 / 3, y = x - (1 - x) / 3.
    assert targets.distance[x] == targets.distance[y] == 3
    assert targets.values[x] == pytest.approx(1 / 3)
    assert targets.values[y] == pytest.approx(1 / 3 - (2 / 3) / 3)
    z = node_of(tree, "s1", "w", "z")
    assert targets.distance[z] == 4
    assert targets.values[z] == pytest.approx(max(0.0, 0.0625 - 0.9375 / 4)) == 0.0


def test_distance_is_one_plus_the_nearest_correct_leaf():
    # Under a, a correct leaf two steps down (m(a) = 3) and one four steps down.
    tree = TraceTree.from_traces(
        [trace(("a", "b", "c", "d", "e"), 1.0), trace(("a", "f", "g"), 1.0)]
    )
    targets = value_targets(tree)
    a = node_of(tree, "a")
    assert targets.distance[a] == 3 and targets.values[a] == pytest.approx(1 / 3)
    b = node_of(tree, "a", "b")
    # b's own subtree is 4 steps long: v(b) = 1/3 + (2/3) / 4.
    assert targets.distance[b] == 4 and targets.values[b] == pytest.approx(1 / 3 + 2 / 12)
    assert targets.values[node_of(tree, "a", "b", "c", "d", "e")] == pytest.approx(1.0)


def test_correct_end_with_children_has_distance_one():
    tree = TraceTree.from_traces([trace(("a", "b"), 1.0), trace(("a", "b", "c"), 0.0)])
    targets = value_targets(tree)
    b, c = node_of(tree, "a", "b"), node_of(tree, "a", "b", "c")
    assert targets.distance[b] == 1 and targets.values[b] == pytest.approx(1.0)
    # c inherits m = 1 from b; v(b) = 1 leaves nothing to lose: 1 + (1 - 1) * (-1) / 1 = 1.
    # (MCTS* never expands an end leaf, so this only arises in hand-made trees.)
    assert targets.distance[c] == 1 and not targets.reaches_correct[c]
    assert targets.values[c] == pytest.approx(1.0)


def test_no_correct_leaf_no_value_data():
    tree = TraceTree.from_traces([trace(CHAIN, 0.0), trace(("s1", "w"), 0.0)])
    targets = value_targets(tree)
    assert not targets.solvable and targets.samples() == []
    assert all(v is None for v in targets.values)
    assert value_examples([tree]) == []
    assert value_examples([tree], target="he") == []
    # A solvable problem next to it still gives its data.
    solved = TraceTree.from_traces([trace(CHAIN, 1.0, problem="q")])
    assert len(value_examples([tree, solved])) == 1


def test_clamping():
    tree = TraceTree.from_traces([trace(CHAIN, 1.0), trace(("s1", "w"), 0.0)])
    targets = value_targets(tree, low=0.1, high=0.9)
    chain = [targets.values[i] for i in tree.path(node_of(tree, *CHAIN))[1:]]
    assert chain == pytest.approx([0.25, 0.5, 0.75, 0.9])
    assert targets.values[node_of(tree, "s1", "w")] == pytest.approx(0.1)  # 0.0625 clamped
    with pytest.raises(ValueError, match="low"):
        value_targets(tree, low=1.0, high=0.5)


def test_traces_without_outcomes_are_refused():
    tree = TraceTree.from_traces([trace(CHAIN, None), trace(("s1", "w"), 0.0)])
    with pytest.raises(ValueError, match="outcome"):
        value_targets(tree)
    with pytest.raises(ValueError, match="outcome"):
        value_examples([trace(CHAIN, 1.0), trace(("x",), None)])
    with pytest.raises(ValueError, match="outcome"):
        policy_sft_examples([trace(CHAIN, None)])


def test_value_targets_is_iterative_on_deep_trees():
    deep = tuple(f"s{k}" for k in range(5000))
    targets = value_targets(TraceTree.from_traces([trace(deep, 1.0)]))
    assert targets.values[-1] == pytest.approx(1.0)
    assert targets.values[1] == pytest.approx(1 / 5000)


# ---------------------------------------------------------------------- data builders
def test_value_examples_label_every_step_of_every_end_path():
    traces = [
        trace(("s1<sep>", "s2<sep>", "s3<sep>", "s4<sep>", ""), 1.0),
        trace(("s1<sep>", "w<sep>"), 0.0),
    ]
    clean = drop_blank_steps(traces, separator="<sep>")
    examples = value_examples(clean, separator="<sep>")
    assert [(e.prompt, e.steps) for e in examples] == [
        ("Q", ("s1", "s2", "s3", "s4")),
        ("Q", ("s1", "w")),
    ]
    assert examples[0].labels == pytest.approx((0.25, 0.5, 0.75, 1.0))
    assert examples[1].labels == pytest.approx((0.25, 0.0625))
    he = value_examples(clean, separator="<sep>", target="he")
    assert [e.labels for e in he] == [(1.0, 1.0, 1.0, 1.0), (1.0, 0.0)]
    # Without dropping the blank end-of-sequence step it counts as a step (m = 5), but it
    # gets no label of its own.
    raw = value_examples(traces, separator="<sep>")
    assert raw[0].labels == pytest.approx((0.2, 0.4, 0.6, 0.8))
    with pytest.raises(ValueError, match="target"):
        value_examples(clean, target="soft")


def test_value_examples_train_with_train_prm(toy_tokenizer, tiny_llama, one_torch_thread):
    from treesearch.train.prm import PRMConfig, score_steps, train_prm

    traces = [
        trace(
            ("1+1=2", "2+1=3", "The answer is 3"),
            1.0,
            prompt="Start with 1. Add 1. Add 1. What is the result?",
        ),
        trace(("1+1=2", "2+1=4"), 0.0, prompt=("Start with 1. Add 1. Add 1. What is the result?")),
    ]
    examples = value_examples(traces)
    model = tiny_llama(toy_tokenizer, seed=3)
    log = train_prm(
        model,
        toy_tokenizer,
        examples,
        config=PRMConfig(num_steps=40, batch_size=2, learning_rate=3e-3, warmup_steps=0),
        rng=np.random.default_rng(0),
    )
    assert log.losses[-1] < log.losses[0]
    scores = score_steps(model, toy_tokenizer, [(e.prompt, e.steps) for e in examples])
    # The soft targets 1/3, 2/3, 1 and 1/3, 1/3 - 2/9: the scores order the same way.
    assert scores[0][0] < scores[0][1] < scores[0][2]
    assert scores[1][1] < scores[1][0]


def test_policy_sft_examples_keep_correct_unique_solutions():
    traces = [
        trace(("a<sep>", "b<sep>", ""), 1.0, answer="7", score=0.9),
        trace(("a<sep>", "b<sep>"), 1.0, answer="7", score=0.9, problem="p2"),  # same text
        trace(("a<sep>", "c<sep>"), 0.0, answer="8", score=0.9),
        trace(("d<sep>",), 1.0, answer="7", score=0.1),
    ]
    examples = policy_sft_examples(traces, separator="<sep>")
    assert [(e.prompt, e.steps, e.answer) for e in examples] == [
        ("Q", ("a", "b"), "7"),
        ("Q", ("d",), "7"),
    ]
    filtered = policy_sft_examples(traces, separator="<sep>", min_score=0.2)
    assert [e.steps for e in filtered] == [("a", "b")]
    tree = TraceTree.from_traces([traces[0], traces[2]])
    assert [e.steps for e in policy_sft_examples([tree], separator="<sep>")] == [("a", "b")]
    no_prompt = Trace(steps=(TraceStep("a"),), outcome=1.0, metadata={"problem_id": "p"})
    with pytest.raises(ValueError, match="prompt"):
        policy_sft_examples([no_prompt])
    with pytest.raises(ValueError, match="prompt"):
        value_examples([no_prompt])
    with pytest.raises(TypeError, match="Trace"):
        policy_sft_examples(["a"])


def test_drop_blank_steps():
    traces = [trace(("a<sep>", ""), 1.0), trace(("a<sep>",), 1.0)]
    out = drop_blank_steps(traces, separator="<sep>")
    assert [t.actions for t in out] == [("a<sep>",), ("a<sep>",)]
    assert out[1] is traces[1]
    # "<sep>" alone is blank once the separator is stripped.
    assert drop_blank_steps([trace(("a<sep>", "<sep>"), 0.0)], separator="<sep>")[0].actions == (
        "a<sep>",
    )


def test_outcome_checks():
    from treesearch.adapters import toymath
    from treesearch.train.rest_mcts import _outcome_check

    problem = toymath.ToyProblem(3, (toymath.Operation("+", 4), toymath.Operation("*", 2)))
    right = trace(("3+4=7<sep>", "7*2=14<sep>", "The answer is 14<sep>", ""), None, answer="14")
    # A slip (3+4=8) that still lands on 14: the answer matches, the solution is not solved.
    lucky = trace(("3+4=8<sep>", "7*2=14<sep>", "The answer is 14<sep>"), None, answer="14")
    wrong = trace(("3+4=7<sep>", "7*2=15<sep>", "The answer is 15<sep>"), None, answer="15")
    solved = _outcome_check(problem, "solved", "<sep>")
    answer = _outcome_check(problem, "answer", "<sep>")
    assert [solved(t) for t in (right, lucky, wrong)] == [1.0, 0.0, 0.0]
    assert [answer(t) for t in (right, lucky, wrong)] == [1.0, 1.0, 0.0]


# ---------------------------------------------------------------------- config
@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"iterations": 0}, ValueError, "iterations"),
        ({"levels": ()}, TypeError, "levels"),
        ({"levels": ("easy", "expert")}, ValueError, "expert"),
        ({"levels": ("easy", "easy")}, ValueError, "repeat"),
        ({"levels": "easy"}, TypeError, "levels"),
        ({"levels": ("medium:x",)}, ValueError, "operations"),
        ({"levels": ("medium:0",)}, ValueError, "operations"),
        ({"levels": (2,)}, TypeError, "level"),
        ({"value_target": "soft"}, ValueError, "value_target"),
        ({"outcome_check": "gold"}, ValueError, "outcome_check"),
        ({"alpha": 2.0}, ValueError, "alpha"),
        ({"end_gate": 1.5}, ValueError, "end_gate"),
        ({"temperature": 0}, ValueError, "temperature"),
        ({"sft_learning_rate": 0.0}, ValueError, "sft_learning_rate"),
        ({"roll_policy": "best"}, ValueError, "roll_policy"),
        ({"value_low": 1.0}, ValueError, "low"),
        ({"eval_size": 5000}, ValueError, "eval_size"),
        ({"problems_per_level": 2.5}, TypeError, "problems_per_level"),
        ({"policy_start": 3}, TypeError, "policy_start"),
    ],
)
def test_config_checks(kwargs, error, match):
    with pytest.raises(error, match=match):
        ReSTMCTSConfig(**kwargs)


def test_config_is_frozen_and_json_ready():
    config = ReSTMCTSConfig()
    with pytest.raises(AttributeError):
        config.seed = 1  # type: ignore[misc]
    assert json.loads(json.dumps(config.to_dict()))["levels"] == ["easy", "medium"]
    assert ReSTMCTSConfig(levels=("hard:1", "easy")).levels == ("hard:1", "easy")


# ---------------------------------------------------------------------- the loop
SMALL = {
    "iterations": 1,
    "levels": ("easy",),
    "problems_per_level": 3,
    "search_iterations": 6,
    "eval_size": 2,
    "prm_eval_size": 2,
    "sft_epochs": 10.0,
    "sft_max_steps": 8,
    "sft_batch_size": 4,
    "sft_learning_rate": 1e-3,
    "value_epochs": 10.0,
    "value_max_steps": 8,
    "value_batch_size": 4,
    "value_learning_rate": 3e-3,
}


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """One iteration from a random tiny value model and the shipped policy (which solves easy
    problems, so the search finds correct leaves to learn from)."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from treesearch.adapters.toymath import build_tokenizer
    from treesearch.adapters.toymath_search import tiny_models
    from treesearch.train.lm_common import save_pretrained_atomic
    from treesearch.train.rest_mcts import run_rest_mcts

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        root = tmp_path_factory.mktemp("rest")
        tokenizer = build_tokenizer()
        _, value, _ = tiny_models(tokenizer, seed=5)
        save_pretrained_atomic(root / "tiny-value", value, tokenizer)
        config = ReSTMCTSConfig(**SMALL, value_start=str(root / "tiny-value"))
        events = []
        report = run_rest_mcts(root / "run", config, progress=events.append)
    finally:
        torch.set_num_threads(threads)
    return root, config, report, events


def test_small_run_learns(small_run):
    from safetensors.numpy import load_file

    root, _, report, events = small_run
    run = root / "run"
    assert report["complete"] and json.loads((run / "report.json").read_text()) == report
    first = report["iterations"][1]
    search = first["search"]["levels"]["easy"]
    assert search["problems"] == 3 and search["solved"] >= 1
    targets = first["targets"]
    assert targets["policy_examples"] >= 1 and targets["value_examples"] >= 1
    for phase in ("train-value", "train-policy"):
        assert first[phase]["steps"] == 8
        assert first[phase]["final_loss"] < first[phase]["first_loss"], phase
    for start, trained in (
        (root / "tiny-value", run / "iteration-1" / "value"),
        (None, run / "iteration-1" / "policy"),
    ):
        if start is None:
            from treesearch.train.toymath_recipe import shipped_checkpoint

            start = shipped_checkpoint("policy")
        before = load_file(start / "model.safetensors")
        after = load_file(trained / "model.safetensors")
        assert any(not np.array_equal(before[k], after[k]) for k in before)
    assert len(report["greedy_accuracy"]["easy"]) == 2  # iteration 0 and 1
    assert all(v is not None for v in report["prm_f1"]["all"])
    phases = [(e.iteration, e.phase) for e in events if e.message == "done"]
    assert phases == [
        (0, "eval-data"),
        (0, "evaluate"),
        (1, "search"),
        (1, "targets"),
        (1, "train-value"),
        (1, "train-policy"),
        (1, "evaluate"),
    ]
    # The traces are the one data path: every end leaf with its exact outcome.
    from treesearch.results import read_traces

    traces = read_traces(run / "iteration-1" / "traces.jsonl")
    assert traces and all(t.outcome in (0.0, 1.0) for t in traces)
    assert any(t.outcome == 1.0 for t in traces)
    assert all(t.answer == t.metadata["gold"] for t in traces if t.outcome == 1.0)


def test_half_finished_folder_resumes_to_the_same_report(small_run):
    import torch

    from treesearch.train.rest_mcts import run_rest_mcts

    root, config, report, _ = small_run
    copy = root / "resumed"
    shutil.copytree(root / "run", copy)
    state = json.loads((copy / "state.json").read_text())
    for key in ("1/train-policy", "1/evaluate"):
        del state["done"][key]
    (copy / "state.json").write_text(json.dumps(state))
    shutil.rmtree(copy / "iteration-1" / "policy")  # as if killed while training the policy
    events = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        resumed = run_rest_mcts(copy, config, progress=events.append)
    finally:
        torch.set_num_threads(threads)
    started = [(e.iteration, e.phase) for e in events if e.message == "start"]
    assert started == [(1, "train-policy"), (1, "evaluate")]

    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if "seconds" not in k}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    assert strip(resumed) == strip(report)
    with pytest.raises(ValueError, match="different config"):
        run_rest_mcts(copy, ReSTMCTSConfig(**{**SMALL, "seed": 1}))
