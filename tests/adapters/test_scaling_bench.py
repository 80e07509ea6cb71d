"""Test-time search on the toy world (treesearch.adapters.toymath_search) and the scripts
benchmarks/test_time_scaling.py and benchmarks/llm_search_reuse.py, on scripted policies with
known answers and tiny random models."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from treesearch import Budget, Candidate, Tree  # noqa: E402
from treesearch.adapters.state import ReasoningState, Step  # noqa: E402
from treesearch.adapters.toymath import (  # noqa: E402
    EOS,
    SEP,
    Operation,
    ToyProblem,
    build_tokenizer,
    format_prefix,
    heldout_split,
)
from treesearch.adapters.toymath_search import (  # noqa: E402
    METHODS,
    OracleVerifier,
    ScalingConfig,
    ToyMathSearcher,
    beam_width_for,
    duplicate_sample_tokens,
    final_answer,
    mcts_answer_node,
    reference_tokens,
    tiny_models,
    weighted_vote,
)

ROOT = Path(__file__).resolve().parents[2]
PROBLEM = ToyProblem(3, (Operation("+", 4), Operation("*", 2)))  # 3+4=7, 7*2=14


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer()


@pytest.fixture(scope="module")
def models(tok):
    return tiny_models(tok, seed=0)


def load_script(name: str):
    path = ROOT / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class ScriptedPolicy:
    """Proposes each problem's reference next step, then ``<eos>``; on the problems in
    ``wrong`` the answer step says ``answer + 1``."""

    def __init__(self, tokenizer, problems, wrong=()) -> None:
        self.tokenizer = tokenizer
        self.problems = {format_prefix(p.prompt): p for p in problems}
        self.wrong = {p.prompt for p in wrong}
        self.eos_id = tokenizer.convert_tokens_to_ids(EOS)

    def step_for(self, state) -> Step:
        problem = self.problems[state.question]
        steps = list(problem.steps)
        if problem.prompt in self.wrong:
            steps[-1] = f"The answer is {problem.answer + 1}"
        k = len(state.steps)
        if k == len(steps):
            return Step("", (self.eos_id,), "eos", content="")
        ids = self.tokenizer(steps[k] + SEP, add_special_tokens=False)["input_ids"]
        return Step(steps[k] + SEP, ids, "separator", content=steps[k])

    def propose(self, states, *, rng, max_tokens=None):
        out = []
        left = max_tokens
        for state in states:
            step = self.step_for(state)
            cost = len(step.token_ids)
            if left is not None and cost > left:
                out.append([])
                continue
            left = None if left is None else left - cost
            out.append([Candidate(step, prior=1.0, num_tokens=cost)])
        return out


class ScriptedSearcher(ToyMathSearcher):
    """Every method uses the scripted policy (the verifiers stay the tiny random models)."""

    def __init__(self, scripted, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.scripted = scripted

    def policy(self, *, temperature, num_candidates):
        return self.scripted


def scripted_searcher(tok, models, problems, wrong=()):
    policy_model, prm, orm = models
    return ScriptedSearcher(
        ScriptedPolicy(tok, problems, wrong), policy_model, prm, tok, orm_model=orm
    )


# ------------------------------------------------------------------------------ by hand


def test_reference_tokens_and_budget_by_hand(tok, models):
    # "3+4=7" 5 + "7*2=14" 6 + "The answer is 14" 16 characters, 3 separators, <eos>.
    assert reference_tokens(PROBLEM, tok) == 31
    searcher = ToyMathSearcher(models[0], models[1], tok)
    assert searcher.budget_tokens(PROBLEM, 1) == math.ceil(1.25 * 31) == 39
    assert searcher.budget_tokens(PROBLEM, 16) == 620
    assert searcher.max_steps(PROBLEM) == 2 + 2 + 1


def test_beam_width_is_the_largest_divisor_up_to_the_width():
    assert [beam_width_for(n, 4) for n in (1, 2, 3, 4, 6, 8, 64)] == [1, 2, 3, 4, 3, 4, 4]
    with pytest.raises(ValueError, match="n must be >= 1"):
        beam_width_for(0, 4)


def test_final_answer_reads_the_last_non_blank_step(tok):
    root = ReasoningState.from_prompt(format_prefix(PROBLEM.prompt), tok)
    state = root.step("3+4=7").step("7*2=14").step("The answer is 14")
    assert final_answer(state) == "14"
    assert final_answer(state.step(Step("", (2,), "eos", content=""))) == "14"
    assert final_answer(root.step("3+4=7")) is None
    assert final_answer(root.step("The answer is 014")) is None  # malformed: no leading zeros
    assert final_answer(root) is None


def scored_tree(tok, answers, scores):
    root = ReasoningState.from_prompt("Q" + SEP, tok)
    tree = Tree(root)
    tree.add_children(Tree.ROOT, answers, np.full(len(answers), 1.0 / len(answers)))
    for node, score in zip(tree.children(Tree.ROOT), scores, strict=True):
        tree.score[node] = score
    return tree


def test_weighted_vote_by_hand(tok):
    # Answers 7, 9, 9 scored 0.9, 0.5, 0.5: 9 wins (1.0 > 0.9), plain argmax would say 7.
    tree = scored_tree(
        tok, ["The answer is 7", "The answer is 9", "The answer is 9"], [0.9, 0.5, 0.5]
    )
    nodes = list(tree.children(Tree.ROOT))
    assert final_answer(tree.state(weighted_vote(tree, nodes))) == "9"
    assert weighted_vote(tree, nodes) == nodes[1]  # the first of the equally scored 9s
    # 7: 0.5; 9: 0.25 + 0.25 = 0.5; a tie goes to the answer seen first.
    tree = scored_tree(
        tok, ["The answer is 9", "The answer is 7", "The answer is 9"], [0.25, 0.5, 0.25]
    )
    assert final_answer(tree.state(weighted_vote(tree, list(tree.children(Tree.ROOT))))) == "9"
    # A state with no answer does not vote, however well scored.
    tree = scored_tree(tok, ["3+4=7", "The answer is 5", "The answer is 6"], [0.99, 0.2, 0.3])
    assert final_answer(tree.state(weighted_vote(tree, list(tree.children(Tree.ROOT))))) == "6"
    # Nobody answers: the best-scored node.
    tree = scored_tree(tok, ["3+4=7", "3+4=8"], [0.1, 0.7])
    assert weighted_vote(tree, list(tree.children(Tree.ROOT))) == 2
    assert weighted_vote(tree, []) is None


def test_oracle_verifier_gives_the_exact_labels(tok):
    oracle = OracleVerifier([PROBLEM])
    root = ReasoningState.from_prompt(format_prefix(PROBLEM.prompt), tok, max_steps=6)
    eos = Step("", (2,), "eos", content="")
    right = root.step("3+4=7").step("7*2=14").step("The answer is 14")
    slip = root.step("3+4=8").step("8*2=16")
    early = root.step("3+4=7").step(eos)
    scores = oracle.score([root, right, right.step(eos), slip, early])
    assert [s.step_scores for s in scores] == [
        (),
        (1.0, 1.0, 1.0),
        (1.0, 1.0, 1.0),
        (0.0, 0.0),
        (0.0,),  # all steps right, but it stopped before answering
    ]
    assert [s.value for s in scores] == [0.5, 1.0, 1.0, 0.0, 0.0]
    other = ReasoningState.from_prompt(format_prefix(heldout_split("easy", 1)[0].prompt), tok)
    with pytest.raises(ValueError, match="does not know the problem"):
        oracle.score([other])


def test_mcts_answer_follows_visits_then_falls_back_to_the_best_terminal(tok):
    tree = scored_tree(tok, ["3+4=7", "The answer is 5", "The answer is 6"], [0.4, 0.2, 0.9])
    tree.visits[:4] = [10, 6, 2, 2]
    tree.terminal[2:4] = True
    # The most visited child (node 1) is not terminal: the best-scored terminal state, node 3.
    assert mcts_answer_node(tree) == 3
    tree.visits[1], tree.visits[2] = 1, 7
    assert mcts_answer_node(tree) == 2  # the most visited path ends at a terminal state


def test_merged_duplicate_samples_are_charged_for_every_sample(tok, models):
    from treesearch.adapters.policies import HFStepPolicy

    searcher = ToyMathSearcher(models[0], models[1], tok)
    greedy = searcher.policy(temperature=0.0, num_candidates=4)
    assert type(greedy) is HFStepPolicy  # no wrapper: the policy charges every sample itself
    root = searcher.root(PROBLEM)
    ((candidate,),) = greedy.propose([root], rng=np.random.default_rng(0))
    # Four greedy samples are one step, charged for all four.
    assert candidate.payload["count"] == 4
    assert candidate.num_tokens == 4 * len(candidate.action.token_ids)
    # max_tokens caps every sample generated, so the charge fits it.
    limit = 4 * len(candidate.action.token_ids) - 1
    ((capped,),) = greedy.propose([root], rng=np.random.default_rng(0), max_tokens=limit)
    assert capped.num_tokens <= limit and capped.payload["count"] == 4


def test_searches_charge_what_the_policy_sampled_not_more(tok, models):
    """Beam search and MCTS through the searcher: the usage is exactly the tokens sampled."""
    searcher = ToyMathSearcher(
        models[0], models[1], tok, config=ScalingConfig(max_step_tokens=4, temperature=0.05)
    )
    # Both methods at n=4 use the policy sampling M=4 children; count every token it samples.
    policy = searcher.policy(temperature=0.05, num_candidates=beam_width_for(4, 4))
    sample = policy._sample
    sampled = {"tokens": 0}

    def counted(logits, uniforms):
        chosen, logprob = sample(logits, uniforms)
        sampled["tokens"] += int(chosen.numel())
        return chosen, logprob

    policy._sample = counted
    duplicates = 0
    for method in ("beam", "mcts"):
        before = sampled["tokens"]
        outcome = searcher.run(PROBLEM, method, 4, rng=np.random.default_rng(3))
        assert outcome.tokens == sampled["tokens"] - before <= outcome.budget
        duplicates += outcome.policy_duplicates
    assert duplicates > 0


# ------------------------------------------------------------------------------ searches


@pytest.mark.parametrize("verifier", ["prm", "oracle", "orm"])
def test_a_policy_that_is_always_right_scores_one_everywhere(tok, models, verifier):
    problems = heldout_split("medium", 2)
    searcher = scripted_searcher(tok, models, problems)
    for method in METHODS:
        for n in (1, 4):
            for problem in problems:
                outcome = searcher.run(
                    problem, method, n, rng=np.random.default_rng(0), verifier=verifier
                )
                assert outcome.correct, (method, n, outcome.answer, problem.answer)
                assert outcome.answer == str(problem.answer)
                if method != "greedy":
                    assert outcome.tokens <= outcome.budget


def test_benchmark_accuracy_of_a_half_right_policy_and_its_shape(tok, models):
    bench = load_script("test_time_scaling")
    levels = ("easy", "medium", "hard")
    problems = {level: heldout_split(level, 2) for level in levels}
    everything = [p for ps in problems.values() for p in ps]
    wrong = [ps[1] for ps in problems.values()]  # the second problem of each level
    searcher = scripted_searcher(tok, models, everything, wrong)
    report = bench.run_benchmark(
        searcher, levels=levels, ns=(1, 4), problems=2, seed=0, f1_problems=2
    )
    methods = ("greedy", "best_of_n", "weighted_best_of_n", "beam", "dvts", "mcts")
    assert list(report["accuracy"]) == list(levels)
    for level in levels:
        assert tuple(report["accuracy"][level]) == methods
        for method in methods:
            assert report["accuracy"][level][method] == {"1": 0.5, "4": 0.5}
        assert report["oracle"][level]["beam"] == {"1": 0.5, "4": 0.5}
        assert set(report["orm"][level]) == {"best_of_n", "weighted_best_of_n"}
        assert report["beam_vs_best_of_4n"][level] == [
            {"n": 1, "beam": 0.5, "best_of_n_at_4n": 0.5, "holds": True}
        ]
        for method in methods[1:]:  # a right solution costs unit tokens of the 1.25 N unit
            used = report["budget_used"][level][method]
            assert used["1"] == pytest.approx(1 / 1.25, abs=0.02)
    assert 0.0 <= report["prm_first_error_f1"] <= 1.0
    assert report["prm_processbench"]["num_correct"] == 6  # 2 reference solutions per level
    assert report["prm_processbench"]["num_erroneous"] == 6


def test_every_method_keeps_to_its_token_budget_with_tiny_models(tok, models):
    searcher = ToyMathSearcher(
        models[0], models[1], tok, config=ScalingConfig(max_step_tokens=5, extra_steps=0)
    )
    problem = heldout_split("hard", 1)[0]
    unit = reference_tokens(problem, tok)
    for method in METHODS[1:]:
        for n in (1, 2, 4):
            outcome = searcher.run(problem, method, n, rng=np.random.default_rng(n))
            assert outcome.budget == math.ceil(1.25 * n * unit)
            assert 0 < outcome.tokens <= outcome.budget, (method, n)
            assert outcome.result.usage.within(Budget(tokens=outcome.budget))
            if method in ("beam", "mcts"):  # KV reuse: each tree token about once
                assert outcome.policy_processed <= 1.1 * outcome.policy_tree
                assert outcome.verifier_processed <= 1.1 * outcome.verifier_tree


@pytest.mark.parametrize("how", ["min", "last"])
def test_the_aggregation_reaches_every_search_and_the_prm(tok, models, how):
    searcher = ToyMathSearcher(models[0], models[1], tok, config=ScalingConfig(aggregation=how))
    judge = searcher.verifier("prm", PROBLEM)
    for method in ("greedy", "best_of_n", "weighted_best_of_n", "beam", "dvts"):
        search, _ = searcher._search(method, 4, judge, PROBLEM)
        assert search.aggregation == how, method
    # MCTS values a leaf by the PRM's own Score.value: min or last of the step scores.
    scripted = ScriptedPolicy(tok, [PROBLEM])
    state = searcher.root(PROBLEM)
    for _ in range(3):
        state = state.step(scripted.step_for(state))
    score = searcher.prm.score([state])[0]
    assert len(score.step_scores) == 3
    expected = min(score.step_scores) if how == "min" else score.step_scores[-1]
    assert score.value == pytest.approx(expected)
    with pytest.raises(ValueError, match="aggregation"):
        ScalingConfig(aggregation="max")


def test_bad_settings_are_refused(tok, models):
    with pytest.raises(ValueError, match="beam_width"):
        ScalingConfig(beam_width=0)
    with pytest.raises(TypeError, match="temperature"):
        ScalingConfig(temperature=True)
    with pytest.raises(ValueError, match="budget_slack"):
        ScalingConfig(budget_slack=0.5)
    searcher = ToyMathSearcher(models[0], models[1], tok)
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="method must be one of"):
        searcher.run(PROBLEM, "sampling", 4, rng=rng)
    with pytest.raises(ValueError, match="no ORM"):
        searcher.run(PROBLEM, "beam", 4, rng=rng, verifier="orm")
    with pytest.raises(TypeError, match="rng"):
        searcher.run(PROBLEM, "beam", 4, rng=0)


# ------------------------------------------------------------------------------ scripts


def test_scaling_script_tiny_json_and_plot(tmp_path, capsys):
    bench = load_script("test_time_scaling")
    png = tmp_path / "scaling.png"
    argv = ["--tiny", "--problems", "1", "--ns", "1", "4", "--no-oracle", "--json"]
    assert bench.main([*argv, "--plot", str(png)]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(report["accuracy"]) == {"easy", "medium", "hard"}
    for table in report["accuracy"].values():
        assert set(table) == set(METHODS)
        for values in table.values():
            assert set(values) == {"1", "4"}
            assert all(0.0 <= v <= 1.0 for v in values.values())
    assert set(report["tokens_ratio"]) >= {"policy", "prm"}
    assert 0.5 < report["tokens_ratio"]["policy"] <= 1.1
    assert 0.0 < report["tokens_ratio"]["prm"] <= 1.1
    assert "prm_first_error_f1" in report and "orm" in report and "oracle" not in report
    assert report["config"]["ns"] == [1, 4] and report["config"]["problems"] == 1
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_reuse_script_measures_both_modes(capsys):
    bench = load_script("llm_search_reuse")
    argv = ["--problems", "1", "--beam-n", "4", "--mcts-sims", "12", "--max-steps", "4"]
    assert bench.main([*argv, "--step-tokens", "4", "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for search in ("beam", "mcts"):
        entry = report[search]
        assert entry["same_trees"] is True
        assert entry["reuse"]["nodes"] == entry["naive"]["nodes"]
        assert entry["reuse"]["policy_without_duplicates"] <= entry["reuse"]["policy"]
        for model in ("policy", "prm"):
            assert entry["reuse"][model] <= 1.1
            assert entry["naive"][model] > 1.5 * entry["reuse"][model]
    assert report["p5"]["holds"] is False  # depth 4 here, below the target's 8
    assert report["config"]["parameters"]["policy"] > 100_000


def test_duplicate_sample_tokens_by_hand(tok):
    tree = scored_tree(tok, ["1+1=2", "1+1=3", "1+1=4"], [0.5, 0.5, 0.5])
    tree.payloads[1:4] = [
        {"count": 3, "token_ids": (7, 8, 9)},  # two extra copies of a 3-token step
        {"count": 1, "token_ids": (7, 8)},
        None,
    ]
    assert duplicate_sample_tokens(tree) == 6


def test_half_billion_config_has_the_qwen2_half_billion_shape(tok):
    bench = load_script("llm_search_reuse")
    with torch.device("meta"):
        model = bench.qwen2_model(tok, "0.5b", seed=0)
    assert 480e6 < bench.parameter_count(model) < 500e6
    with pytest.raises(ValueError, match="unknown model size"):
        bench.qwen2_model(tok, "7b", seed=0)


def test_the_search_module_and_the_command_import_without_torch(tmp_path):
    code = (
        "import json, sys, treesearch.adapters.toymath_search, treesearch.cli_search\n"
        "heavy = ('torch', 'transformers', 'tokenizers', 'matplotlib')\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in heavy)))\n"
    )
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
