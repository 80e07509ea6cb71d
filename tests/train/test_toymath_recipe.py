"""Tests for treesearch.train.toymath_recipe: a tiny end-to-end run, and the shipped checkpoints."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from treesearch.adapters import toymath as tm  # noqa: E402
from treesearch.train.toymath_recipe import (  # noqa: E402
    CHECKPOINT_NAMES,
    PolicyStage,
    PRMStage,
    ToyMathRecipe,
    best_of_n,
    run_recipe,
    sample_solutions,
    shipped_checkpoint,
)


def tiny_recipe() -> ToyMathRecipe:
    return ToyMathRecipe(
        hidden_size=32,
        num_layers=2,
        num_heads=4,
        intermediate_size=64,
        policy_stages=(
            PolicyStage(mix=(("easy", 2),), num_steps=4, batch_size=8, learning_rate=3e-3),
        ),
        reward_mix=(("easy", 2, 3, 2), ("medium", 2, 2, 1)),
        prm_hidden_size=32,
        prm_num_layers=2,
        prm_num_heads=4,
        prm_intermediate_size=64,
        prm_stages=(
            PRMStage(
                kind="steps", mix=(("medium", 1),), num_steps=2, batch_size=4, learning_rate=1e-3
            ),
            PRMStage(
                kind="steps", mix=(("easy", 3),), num_steps=2, batch_size=4, learning_rate=1e-3
            ),
            PRMStage(
                kind="problems",
                mix=(("easy", 2),),
                num_steps=2,
                batch_size=4,
                learning_rate=1e-3,
                slip_rate=0.3,
            ),
            PRMStage(kind="reward", num_steps=2, batch_size=4, learning_rate=1e-3),
        ),
        orm_steps=2,
        eval_size=3,
        best_of_n=2,
        best_of_problems=2,
        shepherd_solutions=2,
        shepherd_completions=2,
    )


def test_recipe_validation():
    with pytest.raises(ValueError, match="unknown level"):
        PolicyStage(mix=(("tricky", 2),), num_steps=1, batch_size=1, learning_rate=1e-3)
    with pytest.raises(ValueError, match="at least one"):
        PolicyStage(mix=(), num_steps=1, batch_size=1, learning_rate=1e-3)
    with pytest.raises(ValueError, match="orm_steps"):
        ToyMathRecipe(orm_steps=-1)
    with pytest.raises(ValueError, match="kind"):
        PRMStage(kind="tokens", num_steps=1, batch_size=1, learning_rate=1e-3)
    with pytest.raises(ValueError, match="needs a mix"):
        PRMStage(kind="steps", num_steps=1, batch_size=1, learning_rate=1e-3)
    with pytest.raises(ValueError, match="slip_rate"):
        PRMStage(kind="reward", num_steps=1, batch_size=1, learning_rate=1e-3, slip_rate=1.5)
    with pytest.raises(ValueError, match="unknown level"):
        ToyMathRecipe(reward_mix=(("tricky", 2, 1, 1),))
    with pytest.raises(ValueError, match="samples"):
        ToyMathRecipe(reward_mix=(("easy", 2, 1, -1),))
    with pytest.raises(ValueError, match="reward_temperatures"):
        ToyMathRecipe(reward_temperatures=(0.8, 0.0))
    with pytest.raises(ValueError, match="prm_stages"):
        ToyMathRecipe(prm_stages=())
    with pytest.raises(ValueError, match="gold_fraction"):
        ToyMathRecipe(gold_fraction=-0.5)
    with pytest.raises(ValueError, match="precision"):
        ToyMathRecipe(precision="fp8")
    with pytest.raises(ValueError, match="unknown checkpoint"):
        shipped_checkpoint("value")


@pytest.mark.slow
def test_tiny_recipe_writes_loadable_checkpoints(tmp_path, one_torch_thread):
    from transformers import AutoModelForCausalLM

    report = run_recipe(tmp_path, tiny_recipe(), command="test")
    for name in CHECKPOINT_NAMES:
        folder = tmp_path / name
        info = json.loads((folder / "training.json").read_text())
        assert info["model"] == name and info["command"] == "test"
        assert info["policy_greedy"] == report["policy_greedy"]
        AutoModelForCausalLM.from_pretrained(folder)
    assert set(report["policy_greedy"]) == {"easy", "medium", "hard"}
    assert set(report["seconds"]) >= {"policy_training", "prm_training", "orm_training"}


def test_best_of_n_counts_by_hand(toy_tokenizer, tiny_llama, one_torch_thread):
    """With a scripted group the picks are known: the oracle and the vote see the right answer."""
    from treesearch.train.toymath_recipe import Solution

    problem = tm.ToyProblem(2, (tm.Operation("+", 3),))
    good = ("2+3=5", "The answer is 5")
    bad = ("2+3=6", "The answer is 6")

    def solution(steps):
        return Solution(problem, steps, True, tm.check_solution(problem, steps))

    group = [solution(bad), solution(good), solution(good)]
    model = tiny_llama(toy_tokenizer)
    picks = best_of_n(model, model, toy_tokenizer, [group])
    assert picks["first_sample"] == 0.0
    assert picks["majority_vote"] == 1.0
    assert picks["oracle"] == 1.0
    assert set(picks) == {"first_sample", "majority_vote", "orm", "prm_min", "prm_last", "oracle"}


def test_sampled_solutions_are_checked(toy_tokenizer, tiny_llama, one_torch_thread):
    problems = tm.heldout_split("easy", 3)
    model = tiny_llama(toy_tokenizer)
    groups = sample_solutions(
        model,
        toy_tokenizer,
        problems,
        samples=2,
        temperature=1.0,
        rng=np.random.default_rng(0),
        max_new_tokens=30,
    )
    assert [len(g) for g in groups] == [2, 2, 2]
    for problem, group in zip(problems, groups, strict=True):
        for s in group:
            assert s.problem == problem
            assert s.check == tm.check_solution(problem, s.steps)
            assert not s.solved  # a random model does not solve anything


def test_step_sequences_label_each_step_on_its_own(toy_tokenizer):
    """The "steps" stage: chains of isolated steps, each labelled by recomputing it, the
    language-model term on the result digits and separator of the right ones only."""
    from treesearch.train.prm import collate_reward
    from treesearch.train.toymath_recipe import _step_examples

    stage = PRMStage(
        kind="steps", mix=(("medium", 3),), num_steps=10, batch_size=20, learning_rate=1e-3
    )
    examples = _step_examples(stage, toy_tokenizer, np.random.default_rng(0))
    assert len(examples) == 200
    sep = toy_tokenizer.convert_tokens_to_ids("<sep>")
    targets = []
    for e in examples:
        assert e.input_ids[0] == toy_tokenizer.bos_token_id and len(e.positions) == 3
        assert [e.input_ids[p] for p in e.positions] == [sep] * 3
        starts = (1, *(p + 1 for p in e.positions[:-1]))
        row = collate_reward([e], toy_tokenizer.pad_token_id)["lm_labels"][0].tolist()
        for begin, result_start, end, target in zip(
            starts, e.step_starts, e.positions, e.targets, strict=True
        ):
            text = toy_tokenizer.decode(e.input_ids[begin:end])
            parsed = tm.parse_step(text)
            right = tm.Operation(parsed.op, parsed.right).apply(parsed.left) == parsed.result
            assert target == float(right)
            assert toy_tokenizer.decode(e.input_ids[begin:result_start]).endswith("=")
            trained = [i for i in range(begin, end + 1) if row[i] != -100]
            assert trained == (list(range(result_start, end + 1)) if right else [])
            targets.append(target)
    assert 0.35 < np.mean(targets) < 0.65  # slip_rate 0.5


def test_problem_stage_labels_are_the_local_verdicts():
    from treesearch.train.toymath_recipe import _problem_examples

    stage = PRMStage(
        kind="problems",
        mix=(("medium", 4), ("easy", 2)),
        num_steps=5,
        batch_size=20,
        learning_rate=1e-3,
        slip_rate=0.3,
    )
    examples = _problem_examples(stage, np.random.default_rng(0))
    wrong_after_a_slip = 0
    for e in examples:
        steps = e.steps
        assert len(e.labels) == len(steps)
        previous = None
        for k, (step, label) in enumerate(zip(steps, e.labels, strict=True)):
            parsed = tm.parse_step(step)
            if isinstance(parsed, tm.ParsedAnswer):
                assert label == float(parsed.value == previous)
                continue
            exact = tm.Operation(parsed.op, parsed.right).apply(parsed.left)
            assert label == float(exact == parsed.result and (k == 0 or parsed.left == previous))
            previous = parsed.result
        # The first step starts from the problem's start and no operation is ever slipped, so
        # the steps name the problem itself.
        first = tm.parse_step(steps[0])
        operations = tuple(
            tm.Operation(tm.parse_step(s).op, tm.parse_step(s).right) for s in steps[:-1]
        )
        process = tm.check_solution(tm.ToyProblem(first.left, operations), steps).labels
        wrong_after_a_slip += any(a == 1 and b == 0 for a, b in zip(e.labels, process, strict=True))
    # Local labels differ from the process labels: a right step after a slip is 1 here.
    assert wrong_after_a_slip > 10


def test_truncation_keeps_the_labelled_path_up_to_the_first_error():
    from treesearch.adapters.data import PRMExample
    from treesearch.train.toymath_recipe import truncate_after_error

    steps = ("a", "b", "c", "d")
    cut = truncate_after_error(PRMExample("q", steps, (1, 1, 0, 0)))
    assert cut.steps == ("a", "b", "c") and cut.labels == (1, 1, 0)
    assert truncate_after_error(PRMExample("q", steps, (0, 1, 1, 1))).steps == ("a",)
    whole = PRMExample("q", steps, (1, 1, 1, 1))
    assert truncate_after_error(whole) == whole
    soft = truncate_after_error(PRMExample("q", steps, (1, 0.75, 0.25, 0.0)))
    assert soft.labels == (1, 0.75, 0.25)
    with pytest.raises(ValueError, match="prm_truncate_after_error"):
        ToyMathRecipe(prm_truncate_after_error=1)


# ------------------------------------------------------------------------------- shipped
def _shipped():
    try:
        return {name: shipped_checkpoint(name) for name in CHECKPOINT_NAMES}
    except FileNotFoundError as exc:
        pytest.skip(str(exc))


def test_shipped_checkpoints_load_and_behave(one_torch_thread):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from treesearch.train.prm import score_steps

    folders = _shipped()
    tokenizer = AutoTokenizer.from_pretrained(folders["policy"])
    assert tokenizer("1+1=2<sep>")["input_ids"] == tm.build_tokenizer()("1+1=2<sep>")["input_ids"]
    for folder in folders.values():
        assert (folder / "model.safetensors").stat().st_size < 8_000_000
    policy = AutoModelForCausalLM.from_pretrained(folders["policy"]).eval()
    recorded = json.loads((folders["policy"] / "training.json").read_text())["policy_greedy"]

    # Greedy decoding of the 200 held-out easy problems gives the recorded accuracy (up to a
    # few flipped decisions where another CPU rounds differently).
    problems = tm.heldout_split("easy", recorded["easy"]["problems"])
    groups = sample_solutions(
        policy, tokenizer, problems, samples=1, temperature=0, rng=np.random.default_rng(0)
    )
    accuracy = sum(g[0].solved for g in groups) / len(groups)
    assert abs(accuracy - recorded["easy"]["accuracy"]) <= 0.03
    assert accuracy > 0.5
    # Imperfect, as intended: it slips on many medium problems and fails the hard ones.
    assert 0.2 < recorded["medium"]["accuracy"] < 0.9 and recorded["hard"]["accuracy"] < 0.5

    # The PRM checks the arithmetic: it ranks a gold solution above the same problem with one
    # slipped result by its weakest step (measured: 99 of 100 easy, 97 of 100 medium; on hard
    # problems it is near chance, see docs/adapters.md).
    prm = AutoModelForCausalLM.from_pretrained(folders["prm"]).eval()
    for level in ("easy", "medium"):
        rng = np.random.default_rng(0)
        problems = tm.heldout_split(level, 100)
        gold = score_steps(prm, tokenizer, [(p.prompt, p.steps) for p in problems])
        slipped = score_steps(
            prm, tokenizer, [(p.prompt, tm.flawed_steps(p, rng)[0]) for p in problems]
        )
        wins = sum(min(g) > min(f) for g, f in zip(gold, slipped, strict=True))
        assert wins >= 90, (level, wins)
        assert sum(min(g) > 0.5 for g in gold) >= 85, level  # measured: 100 and 95


def test_load_policy_refuses_what_is_not_a_toy_policy(tmp_path):
    from treesearch.train.toymath_recipe import load_policy

    tokenizer = tm.build_tokenizer()
    with pytest.raises(FileNotFoundError, match=r"no config\.json"):
        load_policy(tmp_path, tokenizer)
    from transformers import LlamaConfig, LlamaForCausalLM

    other = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=len(tokenizer) + 5,
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
        )
    )
    other.save_pretrained(tmp_path / "other")
    with pytest.raises(ValueError, match="not a toy-math policy"):
        load_policy(tmp_path / "other", tokenizer)


@pytest.mark.slow
def test_recipe_from_a_saved_policy_keeps_it_and_retrains_the_rewards(tmp_path, one_torch_thread):
    first = run_recipe(tmp_path / "full", tiny_recipe(), command="test")
    saved = tmp_path / "full" / "policy"
    again = run_recipe(tmp_path / "rewards", tiny_recipe(), command="test", policy_from=saved)
    assert again["policy_from"] == str(saved)
    assert again["policy_stages"] == first["policy_stages"]  # carried from training.json
    assert again["policy_greedy"] == first["policy_greedy"]  # greedy: the same policy
    from safetensors.torch import load_file

    before = load_file(tmp_path / "full" / "policy" / "model.safetensors")
    after = load_file(tmp_path / "rewards" / "policy" / "model.safetensors")
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert (tmp_path / "rewards" / "prm" / "model.safetensors").exists()


class _Killed(Exception):
    pass


def test_a_killed_recipe_resumes_from_its_finished_models(tmp_path, one_torch_thread):
    whole = run_recipe(tmp_path / "whole", tiny_recipe(), command="test")

    def kill_at_the_orm(message: str) -> None:
        if message.startswith("orm: step"):
            raise _Killed

    with pytest.raises(_Killed):
        run_recipe(tmp_path / "killed", tiny_recipe(), command="test", progress=kill_at_the_orm)
    progress = tmp_path / "killed" / ".progress"
    assert sorted(p.name for p in progress.iterdir()) == ["policy", "prm"]
    assert not (tmp_path / "killed" / "prm").exists()  # only whole runs are published

    reseeded = dataclasses.replace(tiny_recipe(), seed=1)
    with pytest.raises(ValueError, match="another recipe"):
        run_recipe(tmp_path / "killed", reseeded, command="test")
    again = run_recipe(tmp_path / "killed", tiny_recipe(), command="test")
    assert again["resumed"] == ["policy", "prm"]
    assert not progress.exists()
    for key in ("policy_greedy", "prm_stages", "reward_data", "orm_final_loss", "best_of_n"):
        assert again[key] == whole[key], key
    from safetensors.torch import load_file

    for name in CHECKPOINT_NAMES:
        before = load_file(tmp_path / "whole" / name / "model.safetensors")
        after = load_file(tmp_path / "killed" / name / "model.safetensors")
        assert all(torch.equal(before[k], after[k]) for k in before), name

    shutil.copytree(tmp_path / "whole" / "prm", progress / "prm")

    def kill_at_once(message: str) -> None:
        raise _Killed

    with pytest.raises(_Killed):
        run_recipe(tmp_path / "killed", tiny_recipe(), progress=kill_at_once, resume=False)
    assert not progress.exists()


def test_script_refuses_an_unknown_setting():
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "scripts" / "train_toymath.py"
    done = subprocess.run(
        [sys.executable, str(script), "--out", "unused", "--set", "prm_stepz=3"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert "prm_stepz=3" in done.stderr and "prm_lm_weight" in done.stderr
