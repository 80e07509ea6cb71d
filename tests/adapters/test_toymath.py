"""The toy reasoning world: problems, the text format, the exact step checker, the difficulty
knob and the held-out splits."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from treesearch.adapters.answers import answers_match, extract_answer
from treesearch.adapters.data import PRMExample, SFTExample
from treesearch.adapters.toymath import (
    DIFFICULTIES,
    EOS,
    SEP,
    Operation,
    ParsedAnswer,
    ParsedStep,
    ToyMathConfig,
    ToyProblem,
    check_characters,
    check_solution,
    flawed_steps,
    format_prefix,
    generate_problem,
    generate_problems,
    heldout_split,
    is_heldout,
    parse_step,
    parse_text,
    prm_example,
    random_step,
    slip_value,
    slipped_steps,
)

EXAMPLE = ToyProblem(17, (Operation("+", 25), Operation("*", 3), Operation("-", 8)))
EXAMPLE_TEXT = (
    "Start with 17. Add 25. Multiply by 3. Subtract 8. What is the result?"
    "<sep>17+25=42<sep>42*3=126<sep>126-8=118<sep>The answer is 118<sep><eos>"
)


def test_example_problem_text_and_solution():
    assert EXAMPLE.prompt == "Start with 17. Add 25. Multiply by 3. Subtract 8. What is the result?"
    assert EXAMPLE.values == (17, 42, 126, 118)
    assert EXAMPLE.answer == 118
    assert EXAMPLE.steps == ("17+25=42", "42*3=126", "126-8=118", "The answer is 118")
    assert EXAMPLE.text() == EXAMPLE_TEXT
    assert EXAMPLE.text(EXAMPLE.steps[:2], finished=False) == (
        EXAMPLE.prompt + "<sep>17+25=42<sep>42*3=126<sep>"
    )
    assert EXAMPLE.sft_example() == SFTExample(EXAMPLE.prompt, EXAMPLE.steps, "118")
    assert extract_answer(EXAMPLE.steps[-1]) == "118"
    division = ToyProblem(12, (Operation("/", 4), Operation("-", 3)))
    assert division.prompt == "Start with 12. Divide by 4. Subtract 3. What is the result?"
    assert division.steps == ("12/4=3", "3-3=0", "The answer is 0")


def test_problem_validation():
    with pytest.raises(ValueError, match="operation 0 divides 10 by 3 unevenly"):
        ToyProblem(10, (Operation("/", 3),))
    with pytest.raises(ValueError, match="at least one operation"):
        ToyProblem(1, ())
    with pytest.raises(ValueError, match="unknown operation '\\^'"):
        Operation("^", 2)
    with pytest.raises(ValueError, match="division by zero"):
        Operation("/", 0)
    with pytest.raises(TypeError, match="operand must be an int"):
        Operation("+", 2.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="operation 0 must be an Operation"):
        ToyProblem(1, (("+", 2),))  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------------
# Text format


def test_parse_text_round_trip():
    assert parse_text(EXAMPLE_TEXT) == (EXAMPLE.prompt, EXAMPLE.steps, True)
    assert parse_text("<bos>" + EXAMPLE_TEXT) == (EXAMPLE.prompt, EXAMPLE.steps, True)
    partial = format_prefix(EXAMPLE.prompt, EXAMPLE.steps[:1])
    assert parse_text(partial) == (EXAMPLE.prompt, ("17+25=42",), False)
    assert parse_text(EXAMPLE.prompt + SEP) == (EXAMPLE.prompt, (), False)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Start with 1. Add 2. What is the result?", "missing separator '<sep>' after the prompt"),
        ("Q?<sep>1+2=3", "missing separator '<sep>' after step 0: '1\\+2=3'"),
        ("Q?<sep>1+2=3<sep>3+1=4", "missing separator '<sep>' after step 1"),
        ("Q?<sep>1+2=3<sep><sep>", "step 1 is empty"),
        ("Q?<sep><sep>", "step 0 is empty"),
        ("<sep>1+2=3<sep>", "the prompt is empty"),
        ("Q?<sep>1+2=3\u00e9<sep>", "unknown character 'é' at position 12"),
        ("Q?<sep>1+2=3\n<sep>", "unknown character '\\\\n'"),
        ("Q?<sep>1<eos>+2=3<sep>", "'<eos>' may only appear at the start or end"),
        ("Q?<sep>Positive<sep>", "'Positive' may only appear"),
    ],
)
def test_parse_text_errors(text, message):
    with pytest.raises(ValueError, match=message):
        parse_text(text)


def test_format_prefix_errors():
    with pytest.raises(ValueError, match="step 1 is empty"):
        format_prefix("Q?", ["1+1=2", ""])
    with pytest.raises(ValueError, match="step 0 holds the special token '<sep>'"):
        format_prefix("Q?", ["1+1=2<sep>2+1=3"])
    with pytest.raises(ValueError, match="unknown character '→'"):
        format_prefix("Q?", ["1+1→2"])
    with pytest.raises(TypeError, match="not one string"):
        format_prefix("Q?", "1+1=2")
    with pytest.raises(ValueError, match="prompt must be non-empty"):
        format_prefix("", [])
    check_characters("Any printable ASCII ~!@#$%^&*()<sep><eos>")
    with pytest.raises(ValueError, match="unknown character '\\\\t' at position 3"):
        check_characters("abc\tdef")


# ----------------------------------------------------------------------------------------------
# Steps and the checker


def test_parse_step_strict():
    assert parse_step("17+25=42") == ParsedStep(17, "+", 25, 42)
    assert parse_step("126-8=118") == ParsedStep(126, "-", 8, 118)
    assert parse_step("3-5=-2") == ParsedStep(3, "-", 5, -2)
    assert parse_step("-2*3=-6") == ParsedStep(-2, "*", 3, -6)
    assert parse_step("0/7=0") == ParsedStep(0, "/", 7, 0)
    assert parse_step("The answer is 118") == ParsedAnswer(118)


@pytest.mark.parametrize(
    ("step", "message"),
    [
        ("", "empty step"),
        ("17 + 25 = 42", "not a step of the form"),
        ("017+25=42", "not a step of the form"),
        ("17+25=42.", "not a step of the form"),
        ("17+25=4242*3=126", "not a step of the form"),  # a missing separator
        ("17+25=42<sep>42*3=126", "holds the separator '<sep>': missing a step boundary"),
        ("17+25=42\u00e9", "unknown character 'é'"),
        ("17+2\u0665=42", "unknown character"),  # an Arabic-Indic digit
        ("9**9=1", "not a step of the form"),
        ("__import__('os').system('x')", "not a step of the form"),
        ("17+25=1234567890", "not a step of the form"),  # more than 9 digits
        ("The answer is  118", "not a step of the form"),
        ("the answer is 118", "not a step of the form"),
        ("5--3=8", "not a step of the form"),
    ],
)
def test_parse_step_rejects(step, message):
    with pytest.raises(ValueError, match=message):
        parse_step(step)


def test_check_gold_solution_and_prefixes():
    check = check_solution(EXAMPLE, EXAMPLE.steps)
    assert check.solved and check.answer == 118 and check.first_error is None
    assert check.labels == (1, 1, 1, 1)
    assert [c.reason for c in check.steps] == ["ok"] * 4
    partial = check_solution(EXAMPLE, EXAMPLE.steps[:2])
    assert not partial.solved and partial.labels == (1, 1) and partial.answer is None
    assert check_solution(EXAMPLE, []).labels == ()


@pytest.mark.parametrize(
    ("steps", "reasons", "labels"),
    [
        # An arithmetic slip, then correct arithmetic from the wrong value.
        (
            ["17+25=43", "43*3=129", "129-8=121", "The answer is 121"],
            ["wrong_result", "ok", "ok", "ok"],
            (0, 0, 0, 0),
        ),
        # Right value but the wrong instruction.
        (["17+25=42", "42+3=45"], ["ok", "wrong_operation"], (1, 0)),
        (["17+25=42", "42*4=168"], ["ok", "wrong_operation"], (1, 0)),
        # Not chaining from the previous result.
        (["17+25=42", "40*3=120"], ["ok", "wrong_input"], (1, 0)),
        # A "recovery" after a slip is right locally but the prefix stays wrong.
        (["17+25=43", "42*3=126"], ["wrong_result", "wrong_input"], (0, 0)),
        # Malformed steps are judged, not raised; the next step is compared with the truth.
        (["17 + 25 = 42", "42*3=126"], ["malformed", "ok"], (0, 0)),
        (["", "42*3=126"], ["malformed", "ok"], (0, 0)),
        (["17+25=42<sep>42*3=126"], ["malformed"], (0,)),
        # Answer-step errors.
        (["17+25=42", "The answer is 42"], ["ok", "early_answer"], (1, 0)),
        (
            ["17+25=42", "42*3=126", "126-8=118", "The answer is 117"],
            ["ok", "ok", "ok", "wrong_answer"],
            (1, 1, 1, 0),
        ),
        (
            ["17+25=42", "42*3=126", "126-8=118", "118+1=119"],
            ["ok", "ok", "ok", "expected_answer"],
            (1, 1, 1, 0),
        ),
        (
            ["17+25=42", "42*3=126", "126-8=118", "The answer is 118", "The answer is 118"],
            ["ok", "ok", "ok", "ok", "extra_step"],
            (1, 1, 1, 1, 0),
        ),
    ],
)
def test_checker_verdicts(steps, reasons, labels):
    check = check_solution(EXAMPLE, steps)
    assert [c.reason for c in check.steps] == reasons
    assert [c.correct for c in check.steps] == [r == "ok" for r in reasons]
    assert check.labels == labels
    assert not check.solved
    assert check.first_error == (labels.index(0) if 0 in labels else None)


def test_checker_details_and_division():
    problem = ToyProblem(12, (Operation("/", 4),))
    check = check_solution(problem, ["12/4=4", "The answer is 4"])
    assert check.steps[0].detail == "12/4 is not 4"
    assert check.steps[1].correct  # locally right: 4 was the last written result
    assert check.labels == (0, 0) and check.answer == 4
    inexact = check_solution(ToyProblem(13, (Operation("+", 1),)), ["13/2=6"])
    assert inexact.steps[0].reason == "wrong_operation"
    assert "the instruction is 'Add 1.'" in inexact.steps[0].detail
    with pytest.raises(TypeError, match="not one string"):
        check_solution(EXAMPLE, "17+25=42")
    with pytest.raises(TypeError, match="problem must be a ToyProblem"):
        check_solution("problem", [])  # type: ignore[arg-type]


def test_prm_example_uses_the_checker_labels():
    example = prm_example(EXAMPLE, ["17+25=42", "42*3=127"])
    assert example == PRMExample(EXAMPLE.prompt, ("17+25=42", "42*3=127"), (1, 0))


@given(st.integers(0, 2**32 - 1), st.sampled_from(sorted(DIFFICULTIES)))
def test_generated_problems_are_exact_and_their_gold_solutions_check(seed, level):
    rng = np.random.default_rng(seed)
    config = DIFFICULTIES[level]
    problem = generate_problem(rng, config, split="any")
    values = problem.values
    assert all(0 <= v <= config.max_value for v in values)
    assert 1 <= problem.start <= config.max_start
    for value, op, after in zip(values[:-1], problem.operations, values[1:], strict=True):
        assert op.op in config.operations
        if op.op in "+-":
            assert 1 <= op.operand <= config.max_operand
        else:
            assert 2 <= op.operand <= config.max_multiplier
        exact = {"+": value + op.operand, "-": value - op.operand, "*": value * op.operand}
        assert after == exact.get(op.op, value // op.operand)
        if op.op == "/":
            assert value % op.operand == 0
    check = check_solution(problem, problem.steps)
    assert check.solved and check.labels == (1,) * (config.num_steps + 1)
    assert parse_text(problem.text()) == (problem.prompt, problem.steps, True)
    assert answers_match(extract_answer(problem.steps[-1]), str(problem.answer))
    steps, slip = flawed_steps(problem, rng)
    flawed = check_solution(problem, steps)
    assert len(steps) == config.num_steps + 1
    assert flawed.labels == (1,) * slip + (0,) * (len(steps) - slip)
    assert flawed.first_error == slip and not flawed.solved
    assert parse_text(problem.text(steps))[1] == steps  # flawed text is still well formed


# ----------------------------------------------------------------------------------------------
# Difficulty knob and splits


def test_difficulty_knob_sets_step_count_and_digits():
    rng = np.random.default_rng(0)
    for num_steps in (1, 3, 7):
        config = ToyMathConfig(num_steps=num_steps, max_start=9, max_operand=9, max_value=99)
        for problem in generate_problems(rng, config, 20):
            assert problem.num_steps == num_steps and len(problem.steps) == num_steps + 1
            assert max(problem.values) <= 99
    levels = {name: DIFFICULTIES[name] for name in ("easy", "medium", "hard")}
    assert [c.num_steps for c in levels.values()] == [2, 4, 6]
    assert [c.max_operand for c in levels.values()] == [9, 99, 999]
    largest = {
        name: max(max(p.values) for p in generate_problems(rng, config, 200))
        for name, config in levels.items()
    }
    assert largest["easy"] <= 99 < largest["medium"] <= 999 < largest["hard"] <= 9999
    only_addition = ToyMathConfig(num_steps=3, operations="+")
    problem = generate_problem(rng, only_addition)
    assert {op.op for op in problem.operations} == {"+"}


def test_config_validation():
    with pytest.raises(ValueError, match=r"num_steps must be in 1\.\.64"):
        ToyMathConfig(num_steps=0)
    with pytest.raises(TypeError, match="max_operand must be an int"):
        ToyMathConfig(max_operand=9.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_multiplier must be at least 2"):
        ToyMathConfig(max_multiplier=1)
    with pytest.raises(ValueError, match=r"max_value must be in max_start\.\.1000000"):
        ToyMathConfig(max_start=100, max_value=50)
    with pytest.raises(ValueError, match="subset of"):
        ToyMathConfig(operations="+%")
    with pytest.raises(ValueError, match="must include '\\+'"):
        ToyMathConfig(operations="-*")
    with pytest.raises(TypeError, match=r"numpy\.random\.Generator"):
        generate_problem(np.random.RandomState(0), ToyMathConfig())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="split must be"):
        generate_problem(np.random.default_rng(0), ToyMathConfig(), split="test")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="count must be a non-negative int"):
        generate_problems(np.random.default_rng(0), ToyMathConfig(), -1)


def test_generation_is_seeded():
    config = DIFFICULTIES["medium"]
    first = generate_problems(np.random.default_rng(7), config, 30)
    again = generate_problems(np.random.default_rng(7), config, 30)
    other = generate_problems(np.random.default_rng(8), config, 30)
    assert first == again and first != other


def test_heldout_splits_are_fixed_distinct_and_disjoint_from_training():
    splits = {level: heldout_split(level) for level in ("easy", "medium", "hard")}
    for level, problems in splits.items():
        assert len(problems) == 200
        assert len({p.prompt for p in problems}) == 200
        assert all(is_heldout(p) for p in problems)
        assert {p.num_steps for p in problems} == {DIFFICULTIES[level].num_steps}
        assert heldout_split(level) == problems  # deterministic
    assert heldout_split("easy", 10) == splits["easy"][:10]
    # Pinned so that a change to the generator or the hash cannot pass unnoticed.
    assert splits["easy"][0].text() == (
        "Start with 4. Divide by 4. Add 6. What is the result?"
        "<sep>4/4=1<sep>1+6=7<sep>The answer is 7<sep><eos>"
    )
    # Training draws, whatever the seed, never produce a held-out problem.
    heldout_prompts = {p.prompt for problems in splits.values() for p in problems}
    for seed in range(5):
        rng = np.random.default_rng(seed)
        for config in DIFFICULTIES.values():
            for problem in generate_problems(rng, config, 200):
                assert not is_heldout(problem)
                assert problem.prompt not in heldout_prompts
    # About one problem in eight is held out.
    rng = np.random.default_rng(123)
    drawn = generate_problems(rng, DIFFICULTIES["hard"], 4000, split="any")
    share = np.mean([is_heldout(p) for p in drawn])
    assert 0.10 < share < 0.15
    with pytest.raises(ValueError, match="unknown level 'expert'"):
        heldout_split("expert")
    with pytest.raises(ValueError, match=r"size must be an int in 1\.\.1000"):
        heldout_split("easy", 0)


def test_eos_and_sep_are_the_documented_strings():
    assert (SEP, EOS) == ("<sep>", "<eos>")


# ------------------------------------------------------------------------------------ slips
@given(st.integers(-20_000, 20_000), st.integers(0, 2**32 - 1))
def test_a_slipped_value_is_always_wrong_and_keeps_its_sign(value, seed):
    wrong = slip_value(value, np.random.default_rng(seed))
    assert isinstance(wrong, int) and wrong != value
    assert (wrong < 0) == (value < 0) or wrong == 0 or value == 0
    assert not str(abs(wrong)).startswith("0") or wrong == 0


def test_slips_land_mostly_on_one_digit_most_often_the_tens():
    """Like the shipped policy's greedy slips on medium problems (docs/adapters.md)."""
    rng = np.random.default_rng(0)
    places = Counter()
    for _ in range(4000):
        value = int(rng.integers(100, 1000))
        wrong = slip_value(value, rng)
        a, b = str(value), str(wrong)
        if len(a) == len(b):
            changed = [len(a) - 1 - i for i in range(len(a)) if a[i] != b[i]]
            places[tuple(changed)] += 1
    one_digit = places[(0,)] + places[(1,)] + places[(2,)]
    assert one_digit > 0.6 * 4000
    assert places[(1,)] > places[(0,)] > places[(2,)]


def test_slipped_steps_one_slip_or_a_rate():
    rng = np.random.default_rng(1)
    for problem in generate_problems(rng, DIFFICULTIES["medium"], 200):
        steps = slipped_steps(problem, rng)
        check = check_solution(problem, steps)
        first = check.first_error
        assert first is not None and check.steps[first].reason in ("wrong_result", "wrong_answer")
        # Later steps start from the written (slipped) value, as a slipping model would.
        for k in range(first + 1, problem.num_steps):
            assert check.steps[k].reason != "wrong_input"
        assert slipped_steps(problem, rng, rate=0.0) == problem.steps
        for step in check_solution(problem, slipped_steps(problem, rng, rate=1.0)).steps:
            assert step.reason in ("wrong_result", "wrong_answer")
    with pytest.raises(ValueError, match="rate"):
        slipped_steps(problem, rng, rate=1.5)
    with pytest.raises(TypeError, match="Generator"):
        slipped_steps(problem, 0)


@given(st.integers(0, 2**32 - 1), st.sampled_from(sorted(DIFFICULTIES)))
def test_random_steps_are_exact_steps_of_the_level(seed, level):
    config = DIFFICULTIES[level]
    value, operation = random_step(np.random.default_rng(seed), config)
    result = operation.apply(value)
    assert 1 <= value <= config.max_value
    assert result is not None and 0 <= result <= config.max_value
    assert operation.op in config.operations
    limit = config.max_operand if operation.op in "+-" else config.max_multiplier
    assert operation.operand <= limit


def test_random_steps_cover_every_operation():
    rng = np.random.default_rng(2)
    kinds = Counter(random_step(rng, DIFFICULTIES["medium"])[1].op for _ in range(400))
    assert set(kinds) == set("+-*/") and min(kinds.values()) > 40
    with pytest.raises(TypeError, match="ToyMathConfig"):
        random_step(rng, "medium")
