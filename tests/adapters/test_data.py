"""Readers for GSM8K, MATH-500, PRM800K and Math-Shepherd: exact steps and labels of known
records in the fixtures, and errors that name the line of a malformed record."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from treesearch.adapters.answers import answers_match
from treesearch.adapters.data import (
    DataFormatError,
    GSM8KRecord,
    MathRecord,
    MathShepherdRecord,
    PRM800KRecord,
    PRMExample,
    SFTExample,
    load_gsm8k,
    load_math,
    load_math_shepherd,
    load_prm800k,
    read_jsonl,
    strip_calculator_annotations,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "reasoning"


def _write_jsonl(path: Path, objects: list[object]) -> Path:
    path.write_text("".join(json.dumps(o) + "\n" for o in objects), encoding="utf-8")
    return path


# ----------------------------------------------------------------------------------------------
# Examples


def test_examples_validate_their_fields():
    example = PRMExample("q", ["a", "b"], [1, 0.25])
    assert example.steps == ("a", "b") and example.labels == (1, 0.25)
    with pytest.raises(ValueError, match="2 steps but 1 labels"):
        PRMExample("q", ("a", "b"), (1,))
    with pytest.raises(ValueError, match=r"label 0 is 2; labels lie in \[0, 1\]"):
        PRMExample("q", ("a",), (2,))
    with pytest.raises(ValueError, match="label 0 is nan"):
        PRMExample("q", ("a",), (float("nan"),))
    with pytest.raises(TypeError, match="label 0 must be a number"):
        PRMExample("q", ("a",), (True,))
    with pytest.raises(ValueError, match="steps is empty"):
        SFTExample("q", (), "1")
    with pytest.raises(TypeError, match="steps must be a sequence of strings"):
        SFTExample("q", "one step", "1")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="step 1 must be a str"):
        SFTExample("q", ("a", 2), "1")  # type: ignore[arg-type]


def test_strip_calculator_annotations():
    assert strip_calculator_annotations("2/2=<<2/2=1>>1 bolt") == "2/2=1 bolt"
    assert strip_calculator_annotations("a <<1+1=2>>2 and <<2*3=6>>6") == "a 2 and 6"
    assert strip_calculator_annotations("3 << 4") == "3 << 4"


# ----------------------------------------------------------------------------------------------
# GSM8K


def test_gsm8k_known_records():
    records = list(load_gsm8k(DATA / "gsm8k_test_subset.jsonl"))
    assert len(records) == 31
    robe = records[1]
    assert robe.line == 2
    assert robe.question.startswith("A robe takes 2 bolts of blue fiber")
    assert robe.steps == (
        "It takes 2/2=1 bolt of white fiber",
        "So the total amount of fabric is 2+1=3 bolts of fabric",
    )
    assert robe.answer == "3"
    assert robe.sft_example() == SFTExample(robe.question, robe.steps, "3")
    assert robe.prm_example().labels == (1, 1)
    lego = records[-1]  # line 147 of the GSM8K test set
    assert lego.answer_text == "2,125" and lego.answer == "2125"
    assert lego.steps[-1] == "In total, that means Johnny picked up 500 + 1500+ 125= 2125 blocks"
    assert len(lego.steps) == 3
    for record in records:
        assert all("<<" not in step and "####" not in step for step in record.steps)
        assert int(record.answer) >= 0


def test_gsm8k_malformed_records_name_the_line(tmp_path):
    good = {"question": "q", "answer": "1+1=2\n#### 2"}
    path = _write_jsonl(tmp_path / "g.jsonl", [good, {"question": "q"}])
    records = load_gsm8k(path)
    assert next(records).answer == "2"
    with pytest.raises(DataFormatError, match=r"g\.jsonl:2: missing field 'answer'"):
        next(records)
    path = _write_jsonl(tmp_path / "h.jsonl", [good, good, {"question": "q", "answer": "no mark"}])
    with pytest.raises(DataFormatError, match=r"h\.jsonl:3: the solution has no '#### <answer>'"):
        list(load_gsm8k(path))
    with pytest.raises(DataFormatError, match="field 'question' must be str, not int"):
        GSM8KRecord.from_json({"question": 5, "answer": "#### 1"}, line=7)
    with pytest.raises(DataFormatError, match="line 7: the solution has no steps"):
        GSM8KRecord.from_json({"question": "q", "answer": "#### 1"}, line=7)


def test_read_jsonl_reports_bad_lines(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"a": 1}\n\n{"a": 2\n', encoding="utf-8")
    rows = read_jsonl(path)
    assert next(rows) == (1, {"a": 1})
    with pytest.raises(DataFormatError, match=r"bad\.jsonl:3: invalid JSON"):
        next(rows)
    path.write_text("[1, 2]\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"bad\.jsonl:1: expected a JSON object, got list"):
        list(read_jsonl(path))


# ----------------------------------------------------------------------------------------------
# MATH


def test_math500_known_records():
    records = list(load_math(DATA / "math500_subset.jsonl"))
    assert len(records) == 62
    divisors = records[3]
    assert divisors.problem == "How many positive whole-number divisors does 196 have?"
    assert divisors.answer == "9" and divisors.level == 3 and divisors.subject == "Number Theory"
    assert divisors.unique_id == "test/number_theory/572.json"
    assert divisors.steps == (divisors.solution,)  # one paragraph
    first = records[0]
    assert len(first.steps) == 5
    assert first.steps[0] == (
        "We have that $r = \\sqrt{0^2 + 3^2} = 3.$  Also, if we draw the line connecting the "
        "origin and $(0,3),$ this line makes an angle of $\\frac{\\pi}{2}$ with the positive "
        "$x$-axis."
    )
    assert first.sft_example().answer == "\\left( 3, \\frac{\\pi}{2} \\right)"
    for record in records:
        assert "\n\n" not in "".join(record.steps)
        assert answers_match(record.answer, record.answer)


def test_math_record_without_answer_uses_the_box_and_reads_level_strings():
    record = MathRecord.from_json(
        {"problem": "p", "solution": "So $x=\\boxed{\\frac12}$.", "level": "Level 4"}
    )
    assert record.answer == "\\frac12" and record.level == 4
    with pytest.raises(DataFormatError, match=r"record: missing field 'answer' and .* no \\boxed"):
        MathRecord.from_json({"problem": "p", "solution": "x"})
    with pytest.raises(DataFormatError, match="line 3: field 'level' is 'hard'"):
        MathRecord.from_json(
            {"problem": "p", "solution": "s", "answer": "1", "level": "hard"}, line=3
        )


# ----------------------------------------------------------------------------------------------
# PRM800K


def test_prm800k_phase2_record_is_truncated_at_its_first_error():
    records = list(load_prm800k(DATA / "prm800k_phase2_test_first9.jsonl"))
    assert len(records) == 9 and all(r.phase == 2 for r in records)
    senate = records[0]
    assert senate.ground_truth_answer == "28800" and senate.pre_generated_answer == "7200"
    assert senate.finish_reason == "found_error" and senate.generation == 6
    example = senate.prm_example()
    assert example is not None
    # Ratings 1, 0, 1, 1, 1, 1, then -1 on step 7 (the pre-generated solution has 13 steps).
    assert example.labels == (1, 0, 1, 1, 1, 1, 0)
    assert senate.prm_example(neutral_as_positive=True).labels == (1, 1, 1, 1, 1, 1, 0)
    assert senate.pre_generated_steps is not None
    assert example.steps == senate.pre_generated_steps[:7]
    assert example.steps[-1] == (
        "For the Democrats, there are 5! ways to order them in a line, but only half of them are "
        "distinct around a circle, since reversing the order gives the same seating."
    )
    assert senate.sft_example() is None  # found an error
    # The three alternatives the labeller rated at the wrong step were all good.
    alternatives = senate.alternative_prm_examples()
    assert [a.labels for a in alternatives] == [(1, 0, 1, 1, 1, 1, 1)] * 3
    assert alternatives[0].steps[:6] == example.steps[:6]
    assert alternatives[0].steps[6] == (
        "For the Democrats, there are 5! ways to arrange them in a line, and the same for the "
        "Republicans."
    )
    # Every phase-2 record: the path is a prefix of the pre-generated solution ending on a -1.
    for record in records:
        path = record.prm_example()
        assert path is not None and path.labels[-1] == 0
        assert record.pre_generated_steps is not None
        assert path.steps == record.pre_generated_steps[: len(path.steps)]
        assert len(path.steps) == len(record.steps)
    assert [len(r.prm_example().steps) for r in records] == [7, 19, 3, 2, 3, 11, 2, 26, 3]


def test_prm800k_phase1_record_follows_the_chosen_and_human_steps():
    records = list(load_prm800k(DATA / "prm800k_raw_examples.jsonl"))
    assert [r.phase for r in records] == [1, 1, 1, 1, 2, 1, 1]
    assert [r.finish_reason for r in records] == [
        "solution", "solution", "solution", "give_up", "solution", "give_up", "solution"
    ]  # fmt: skip
    pencils = records[0]
    example = pencils.prm_example()
    assert example is not None
    assert example.steps == (
        "Let's call the price of a pencil p and the price of a jumbo eraser e. Then we can write "
        "two equations.",
        "We have $3p+e=1.24$ and $5p+e=1.82$.",  # written by the labeller: all five were -1
        "To solve this system, let's subtract the first equation from the second equation. "
        "This will eliminate e.",
        "$5p+e-3p-e=1.82-1.24$.",
        "This simplifies to $2p=0.58$. So $p=0.29$.",
        "That means a pencil costs 29 cents.\n\n# Answer\n\n29",
    )
    assert example.labels == (1,) * 6
    sft = pencils.sft_example()
    assert sft is not None and sft.answer == "29" and sft.steps == example.steps
    assert answers_match(sft.answer, pencils.ground_truth_answer)
    # Five rejected completions at step 2, four not chosen at step 6 (ratings 0, 1, 1, 1).
    alternatives = pencils.alternative_prm_examples()
    assert [a.labels[-1] for a in alternatives] == [0, 0, 0, 0, 0, 0, 1, 1, 1]
    assert [len(a.steps) for a in alternatives] == [2] * 5 + [6] * 4
    assert pencils.alternative_prm_examples(neutral_as_positive=True)[5].labels[-1] == 1
    # The screening question (phase 2 format, all steps rated 1) is a finished solution.
    screening = records[4]
    assert screening.generation == -1 and screening.ground_truth_answer is None
    assert screening.sft_example().answer == "8, 3, 1"
    assert screening.alternative_prm_examples() == []
    # Given up after the labeller wrote step 8; step 9 has no completions at all.
    tetrahedron = records[3]
    example = tetrahedron.prm_example()
    assert example is not None and example.labels == (1,) * 8
    assert example.steps[7].startswith("By symmetry, we have that the intersection of the plane")
    assert tetrahedron.sft_example() is None
    assert [a.labels for a in tetrahedron.alternative_prm_examples()] == [(1,) * 7 + (0,)] * 6
    # Every finished phase-1 solution agrees with its ground truth.
    for record in records:
        sft = record.sft_example()
        if sft is not None and record.ground_truth_answer is not None:
            assert answers_match(sft.answer, record.ground_truth_answer)


def _prm800k(steps: list[dict], finish_reason: str = "solution") -> dict:
    return {
        "generation": None,
        "question": {"problem": "What is 1+1?", "ground_truth_answer": "2"},
        "label": {"steps": steps, "finish_reason": finish_reason},
    }


def _step(ratings: list[int | None], chosen: int | None, human: str | None = None) -> dict:
    return {
        "completions": [
            {"text": f"c{i}", "rating": r, "flagged": False} for i, r in enumerate(ratings)
        ],
        "human_completion": None if human is None else {"text": human, "rating": None},
        "chosen_completion": chosen,
    }


def test_prm800k_rules_on_small_records():
    record = PRM800KRecord.from_json(
        _prm800k([_step([1], 0), _step([0, 1], 0), _step([-1, 1], 1), _step([1], 0)])
    )
    example = record.prm_example()
    assert example.steps == ("c0", "c0", "c1", "c0") and example.labels == (1, 0, 1, 1)
    assert record.sft_example() is None  # a neutral step, and no "# Answer"
    # All candidates bad and the labeller wrote the step: the path goes on with theirs.
    record = PRM800KRecord.from_json(_prm800k([_step([-1, -1], None, human="mine"), _step([1], 0)]))
    assert record.prm_example().steps == ("mine", "c0")
    assert record.prm_example().labels == (1, 1)
    assert [a.steps for a in record.alternative_prm_examples()] == [("c0",), ("c1",)]
    # A chosen step rated -1 ends the path.
    record = PRM800KRecord.from_json(_prm800k([_step([1], 0), _step([-1], 0), _step([1], 0)]))
    assert record.prm_example().labels == (1, 0)
    # The first step unrated: nothing labelled.
    record = PRM800KRecord.from_json(_prm800k([_step([None], None)], "give_up"))
    assert record.prm_example() is None and record.alternative_prm_examples() == []
    # Stopped without an error: alternatives at the stopping step are still examples.
    record = PRM800KRecord.from_json(_prm800k([_step([1], 0), _step([0, 1], None)], "give_up"))
    assert record.prm_example().labels == (1,)
    assert [a.labels for a in record.alternative_prm_examples()] == [(1, 0), (1, 1)]


def test_prm800k_malformed_records_name_the_line(tmp_path):
    bad_chosen = _prm800k([_step([1], 3)])
    bad_rating = _prm800k([_step([2], 0)])
    no_label = {"question": {"problem": "p"}}
    path = _write_jsonl(tmp_path / "p.jsonl", [_prm800k([_step([1], 0)]), bad_chosen])
    with pytest.raises(
        DataFormatError,
        match=r"p\.jsonl:2: label step 0: chosen_completion 3 is out of range for 1 completions",
    ):
        list(load_prm800k(path))
    path = _write_jsonl(tmp_path / "q.jsonl", [bad_rating])
    with pytest.raises(DataFormatError, match=r"q\.jsonl:1: label step 0: completion 0: rating 2"):
        list(load_prm800k(path))
    path = _write_jsonl(tmp_path / "r.jsonl", [no_label])
    with pytest.raises(DataFormatError, match=r"r\.jsonl:1: missing field 'label'"):
        list(load_prm800k(path))
    no_text = _prm800k([{"completions": [{"rating": 1}], "chosen_completion": 0}])
    with pytest.raises(
        DataFormatError, match="line 4: label step 0: completion 0: missing field 'text'"
    ):
        PRM800KRecord.from_json(no_text, line=4)


# ----------------------------------------------------------------------------------------------
# Math-Shepherd


def test_math_shepherd_known_records():
    records = list(load_math_shepherd(DATA / "math_shepherd_sample7.jsonl"))
    assert len(records) == 7 and all(r.task == "GSM8K" for r in records)
    assert [r.labels for r in records] == [
        (1, 1, 1, 1, 0),
        (0, 0, 0),
        (0, 0),
        (0, 0, 0, 0, 0),
        (1, 0, 0, 0, 0),
        (0, 0),
        (0, 0, 0),
    ]
    janet = records[0]
    assert janet.prompt == (
        "Janet pays $40/hour for 3 hours per week of clarinet lessons and $28/hour for 5 hours a "
        "week of piano lessons. How much more does she spend on piano lessons than clarinet "
        "lessons in a year?"
    )
    assert janet.steps[0] == (
        "Janet spends 3 hours + 5 hours = <<3+5=8>>8 hours per week on music lessons."
    )
    assert janet.steps[4] == (
        "She spends 260 * 52 = <<260*52=13520>>13520 on music lessons in a year. "
        "The answer is: 13520"
    )
    assert janet.prm_example() == PRMExample(janet.prompt, janet.steps, (1, 1, 1, 1, 0))
    assert janet.sft_example() is None  # its last step is labelled "-"
    seeds = records[1]
    assert seeds.steps == (
        "There are 20 x 40 = <<20*40=8000>>8000 black seeds.",
        "There are 20 x 40 = <<20*40=8000>>8000 white seeds.",
        "So, the total number of seeds is 8000 + 8000 = <<8000+8000=16000>>16000. "
        "The answer is: 16000",
    )
    for record in records:
        assert all("ки" not in step and not step.startswith("Step") for step in record.steps)


def _shepherd(steps: list[str], marks: str) -> dict:
    text = "What is 2+3+4? " + "\n".join(f"Step {i}: {s} ки" for i, s in enumerate(steps, 1))
    label = text
    for mark in marks:
        label = label.replace("ки", mark, 1)
    return {"input": text, "label": label, "task": "GSM8K"}


def test_math_shepherd_all_positive_record_gives_an_sft_example():
    record = MathShepherdRecord.from_json(_shepherd(["2+3=5", "5+4=9. The answer is: 9"], "++"))
    assert record.prompt == "What is 2+3+4?"
    assert record.steps == ("2+3=5", "5+4=9. The answer is: 9")
    assert record.labels == (1, 1)
    assert record.sft_example() == SFTExample("What is 2+3+4?", record.steps, "9")
    # A question holding '+' and '-' is not mistaken for labels.
    tricky = _shepherd(["1-1=0 +", "0+1=1 -"], "-+")
    tricky["input"] = "Is 1-1+1 odd? " + tricky["input"].split("? ", 1)[1]
    tricky["label"] = "Is 1-1+1 odd? " + tricky["label"].split("? ", 1)[1]
    record = MathShepherdRecord.from_json(tricky)
    assert record.labels == (0, 1) and record.steps == ("1-1=0 +", "0+1=1 -")


def test_math_shepherd_malformed_records_name_the_line(tmp_path):
    good = _shepherd(["a", "b"], "+-")
    fewer = dict(good, label=good["label"][:-1])  # the last label dropped
    wrong_mark = dict(good, label=good["label"][:-1] + "?")
    changed = dict(good, label=good["label"].replace("What", "Whaz"))
    no_tags = {"input": "q Step 1: a", "label": "q Step 1: a", "task": "GSM8K"}
    trailing = dict(good, input=good["input"] + " more", label=good["label"] + " more")
    no_first_step = {"input": "q a ки", "label": "q a +"}
    path = _write_jsonl(tmp_path / "m.jsonl", [good, good, fewer])
    with pytest.raises(
        DataFormatError,
        match=r"m\.jsonl:3: mismatched step tags and labels: input has 2 'ки' tags but the label "
        "text implies 3 labels",
    ):
        list(load_math_shepherd(path))
    cases = [
        (wrong_mark, "step 2 is labelled '\\?', not '\\+' or '-'"),
        (changed, "label text differs from input before step tag 1"),
        (no_tags, "input has no step tag 'ки'"),
        (trailing, "input has text after the last step tag"),
        (no_first_step, "cannot find 'Step 1:' after the question"),
        ({"input": "x"}, "missing field 'label'"),
    ]
    for obj, message in cases:
        with pytest.raises(DataFormatError, match=f"line 9: {message}"):
            MathShepherdRecord.from_json(obj, line=9)
