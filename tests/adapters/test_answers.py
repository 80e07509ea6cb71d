"""Answer extraction and equivalence: real GSM8K / MATH-500 answers, hand-written cases,
adversarial model output, and round trips of random fractions through several formats."""

from __future__ import annotations

import json
import time
import tracemalloc
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from treesearch.adapters.answers import (
    answers_match,
    extract_answer,
    extract_boxed,
    normalize_answer,
    parse_number,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "reasoning"


def _records(name: str) -> list[dict]:
    with open(DATA / name, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


# ----------------------------------------------------------------------------------------------
# Real data


def test_gsm8k_reference_answers_extract_to_their_integers():
    records = _records("gsm8k_test_subset.jsonl")
    assert len(records) == 31
    for record in records:
        raw = record["answer"].rsplit("####", 1)[1].strip()
        assert extract_answer(record["answer"], style="gsm8k") == raw
        assert extract_answer(record["answer"]) == raw  # auto finds "####" first
        assert normalize_answer(raw) == str(int(raw.replace(",", "")))
    # Known answers: line 1 (Janet's ducks) is 18, line 2 (the robe) is 3, line 147 is 2,125.
    assert extract_answer(records[0]["answer"]) == "18"
    assert extract_answer(records[1]["answer"]) == "3"
    assert extract_answer(records[-1]["answer"]) == "2,125"
    assert normalize_answer("2,125") == "2125"
    assert answers_match("2125", extract_answer(records[-1]["answer"]))
    assert not answers_match("2124", extract_answer(records[-1]["answer"]))


def test_math500_boxed_answers_equal_the_answer_field():
    records = _records("math500_subset.jsonl")
    assert len(records) == 62
    for record in records:
        extracted = extract_answer(record["solution"], style="boxed")
        assert extracted == record["answer"], record["unique_id"]
        assert extract_answer(record["solution"]) == record["answer"]
        assert answers_match(extracted, record["answer"])


@pytest.mark.parametrize(
    ("unique_id", "equivalent", "different"),
    [
        ("test/precalculus/807.json", r"(3, \frac{\pi}{2})", r"(3, \frac{\pi}{3})"),
        ("test/prealgebra/1622.json", "42.0", "41"),  # answer "42"
        ("test/precalculus/927.json", "90", "89"),  # answer "90^\circ"
        ("test/intermediate_algebra/1994.json", "p-q", "q-p"),  # answer "p - q"
    ],
)
def test_math500_answers_match_other_spellings(unique_id, equivalent, different):
    by_id = {r["unique_id"]: r for r in _records("math500_subset.jsonl")}
    answer = by_id[unique_id]["answer"]
    assert answers_match(equivalent, answer)
    assert not answers_match(different, answer)


def test_math500_answer_forms_normalise_to_known_values():
    answers = {r["answer"] for r in _records("math500_subset.jsonl")}
    expected = {
        "\\frac{14}{3}": "14/3",
        "1.25": "5/4",
        "0.15": "3/20",
        "\\frac43": "4/3",
        "\\frac65": "6/5",
        "\\frac 34": "3/4",
        ".0000672": "21/312500",
        "10,\\!080": "10080",
        "11,\\! 111,\\! 111,\\! 100": "11111111100",
        "\\$32,\\!348": "32348",
        "\\$18.90": "189/10",
        "\\$36": "36",
        "864 \\mbox{ inches}^2": "864",
        "15\\mbox{ cm}^2": "15",
        "5.4 \\text{ cents}": "27/5",
        "\\frac{270}7\\text{ degrees}": "270/7",
        "1\\frac{4}{5}": "9/5",
        "137 \\frac{1}{2}": "275/2",
        "\\dfrac{33}{100}": "33/100",
        "90^\\circ": "90",
        "x=5": "5",
        "1,-2": "1,-2",
        "-2,1": "-2,1",
        "3, 5, 7": "3,5,7",
        "\\text{Evelyn}": "Evelyn",
        "p - q": "p-q",
        "\\left( 3, \\frac{\\pi}{2} \\right)": "(3,\\frac{\\pi}{2})",
        "\\begin{pmatrix} -1/3 \\\\ 2/3 \\\\ 5/3 \\end{pmatrix}": (
            "\\begin{pmatrix}-1/3\\\\2/3\\\\5/3\\end{pmatrix}"
        ),
    }
    assert set(expected) <= answers  # every case is a real MATH-500 answer
    for answer, canonical in expected.items():
        assert normalize_answer(answer) == canonical, answer


# ----------------------------------------------------------------------------------------------
# Extraction by style


@pytest.mark.parametrize(
    ("text", "style", "expected"),
    [
        ("so 5+3=8\n#### 8", "gsm8k", "8"),
        ("#### 1\nthen again\n#### 2,000 ", "gsm8k", "2,000"),
        ("no marker here 12", "gsm8k", None),
        ("####   \n", "gsm8k", None),
        (r"so $\boxed{\frac{1}{2}}$.", "boxed", r"\frac{1}{2}"),
        (r"\boxed{1} then \boxed{ {2} + \{3\} }", "boxed", r"{2} + \{3\}"),
        (r"\boxed 5", "boxed", "5"),
        (r"$\boxed5$", "boxed", "5"),
        (r"\fbox{7}", "boxed", "7"),
        (r"\boxed{3} and finally \boxed{", "boxed", "3"),  # unclosed last box is skipped
        (r"\boxed{", "boxed", None),
        (r"\boxed{ }", "boxed", None),
        (r"\boxedx{3}", "boxed", None),
        ("# Answer\n\n7200", "answer_heading", "7200"),
        ("The answer is: 13520", "answer_is", "13520"),
        ("so the final answer is 5 apples.", "answer_is", "5"),
        ("The answer is 2 1/2.", "answer_is", "2 1/2"),
        ("The answer is $-3/4$.", "answer_is", "-3/4"),
        (r"The answer is \frac{3}{4}.", "answer_is", r"\frac{3}{4}"),
        (r"The answer is $\boxed{12}$ dollars", "answer_is", "12"),
        ("The answer is 2x+3.", "answer_is", "2x+3"),
        ("she has 3 cats and 12 dogs.", "last_number", "12"),
        ("costs $1,250.50 in total", "last_number", "1,250.50"),
        ("x = −5", "last_number", "−5"),
        ("pages 3–5", "last_number", "5"),  # an en dash is not a minus sign
        ("18-5=13", "last_number", "13"),
        ("no digits", "last_number", None),
    ],
)
def test_extract_answer_styles(text, style, expected):
    assert extract_answer(text, style=style) == expected


def test_auto_style_order():
    # "####" wins over a box, a box over "The answer is", which wins over the last number.
    assert extract_answer("\\boxed{1}\n#### 2") == "2"
    assert extract_answer("The answer is 3. \\boxed{4} and 5") == "4"
    assert extract_answer("The answer is 6. Checking: 7") == "6"
    assert extract_answer("Step 1: 8. Step 2: 9") == "9"
    assert extract_answer("# Answer\n\n\\frac{1}{9}") == "\\frac{1}{9}"
    assert extract_answer("nothing") is None
    assert extract_answer("") is None


def test_extract_answer_bad_arguments():
    with pytest.raises(ValueError, match="unknown answer style 'latex'"):
        extract_answer("1", style="latex")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="text must be a str"):
        extract_answer(b"#### 1")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        normalize_answer(5)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------------
# Numbers


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("42", Fraction(42)),
        ("-7", Fraction(-7)),
        ("+7", Fraction(7)),
        ("\u22127", Fraction(-7)),  # Unicode minus
        ("1,234,567", Fraction(1234567)),
        ("3.25", Fraction(13, 4)),
        (".5", Fraction(1, 2)),
        ("0.50", Fraction(1, 2)),
        ("1.5e3", Fraction(1500)),
        ("50%", Fraction(50)),
        ("12.5\\%", Fraction(25, 2)),
        ("$18", Fraction(18)),
        ("-$5", Fraction(-5)),
        ("\\$-5", Fraction(-5)),
        ("€3", Fraction(3)),
        ("3/4", Fraction(3, 4)),
        ("-3/4", Fraction(-3, 4)),
        ("\\frac{3}{4}", Fraction(3, 4)),
        ("\\dfrac34", Fraction(3, 4)),
        ("\\tfrac{1}{3}", Fraction(1, 3)),
        ("-\\frac{1}{2}", Fraction(-1, 2)),
        ("\\frac{-1}{2}", Fraction(-1, 2)),
        ("\\frac{1.5}{3}", Fraction(1, 2)),
        ("2 1/2", Fraction(5, 2)),
        ("-2 1/2", Fraction(-5, 2)),
        ("1\\frac{4}{5}", Fraction(9, 5)),
        ("$\\frac{1}{2}$", Fraction(1, 2)),
        ("\\boxed{7}", Fraction(7)),
        ("45^\\circ", Fraction(45)),
        ("45°", Fraction(45)),
        ("5 apples", Fraction(5)),
        ("12 square feet", Fraction(12)),
        ("10\\text{ cm}^2", Fraction(10)),
        ("7.", Fraction(7)),
        ("{8}", Fraction(8)),
    ],
)
def test_parse_number_values(text, value):
    assert parse_number(text) == value


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "abc",
        "1,2",  # not a thousands separator
        "12,34",
        "1/0",
        "\\frac{1}{0}",
        "\\frac{\\pi}{2}",
        "1e999999",
        "1e101",
        "9**9**9",
        "2^10",
        "__import__('os').system('x')",
        "1+1",
        "3 x",  # one-letter "units" are variables, not units
        "1" * 500,  # longer than MAX_NUMBER_CHARS
        "1\\frac{-1}{2}",
        "--5",
    ],
)
def test_parse_number_refuses(text):
    assert parse_number(text) is None


@pytest.mark.parametrize(
    ("left", "right"),
    [
        ("0.5", "\\frac{1}{2}"),
        ("1/2", "\\dfrac12"),
        ("2.5", "2 1/2"),
        ("2.5", "2\\frac{1}{2}"),
        ("-0.25", "-\\frac{1}{4}"),
        ("\u22120.25", "-1/4"),
        ("1,000", "1000"),
        ("1000.0", "1000"),
        ("$5", "5"),
        ("5%", "5"),
        ("(0.5, 2)", "(\\frac{1}{2},2)"),
        ("\\text{(C)}", "(C)"),
        ("x = 3", "3"),
        ("\\left[ 1, 2 \\right)", "[1,2)"),
        ("\\cot x", "\\cot  x"),
    ],
)
def test_equivalent_answers_match(left, right):
    assert answers_match(left, right)
    assert answers_match(right, left)


@pytest.mark.parametrize(
    ("left", "right"),
    [
        ("0.333", "1/3"),  # exact comparison, no tolerance
        ("0.5", "5"),
        ("(1, 2)", "(2, 1)"),
        ("1,-2", "-2,1"),
        ("\\cot x", "\\cotx"),
        ("3R^2", "3r^2"),  # case is kept
        ("12", None),
        (None, None),
        ("", ""),
        ("1", "-1"),
    ],
)
def test_different_answers_do_not_match(left, right):
    assert not answers_match(left, right)


# ----------------------------------------------------------------------------------------------
# Adversarial model output

MILLION = 10**6
ADVERSARIAL = {
    "code": "__import__('os').system('x')",
    "huge exponent": "#### 1e999999",
    "power tower": "\\boxed{9**9**9}",
    "deep braces": "\\boxed{" + "{" * 200_000 + "5" + "}" * 200_000 + "}",
    "deep braces unclosed": "\\boxed{" + "{" * 300_000,
    "many unclosed boxes": "\\boxed{" * 140_000,
    "many bare boxes": "\\boxed 1 " * 110_000,
    "million digits": "1" * MILLION,
    "million digits then letter": "1" * MILLION + "x",
    "million commas": "1," * (MILLION // 2),
    "million spaces": "The answer is" + " " * MILLION,
    "repeated phrase": "the answer is " * 70_000,
    "backslashes": "\\" * MILLION,
    "carets": "^ " * (MILLION // 2),
    "hashes": "####" * (MILLION // 4),
    "nested text": "\\text{" * 150_000,
    "nested frac": "\\frac{" * 150_000 + "1",
    "unicode minus": "\u2212" * MILLION,
}


@pytest.mark.parametrize("name", sorted(ADVERSARIAL))
def test_adversarial_text_returns_quickly(name):
    text = ADVERSARIAL[name]
    start = time.perf_counter()
    for style in ("auto", "gsm8k", "boxed", "answer_heading", "answer_is", "last_number"):
        found = extract_answer(text, style=style)
        assert found is None or found in text
        normalize_answer(found)
    normalize_answer(text)
    parse_number(text)
    # Linear-time code takes well under a second per call here; a quadratic scan of a
    # million characters would take minutes. Generous bound for a shared, busy machine.
    assert time.perf_counter() - start < 20.0


def test_adversarial_values():
    assert extract_answer(ADVERSARIAL["huge exponent"]) == "1e999999"
    assert normalize_answer("1e999999") == "1e999999"  # a string, never a number
    assert extract_answer(ADVERSARIAL["power tower"]) == "9**9**9"
    assert normalize_answer("9**9**9") == "9**9**9"
    assert extract_answer(ADVERSARIAL["code"]) is None
    assert normalize_answer(ADVERSARIAL["code"]) == "__import__('os').system('x')"
    assert extract_answer(ADVERSARIAL["deep braces unclosed"], style="boxed") is None
    assert extract_answer(ADVERSARIAL["many unclosed boxes"], style="boxed") is None
    assert extract_answer(ADVERSARIAL["many bare boxes"], style="boxed") == "1"
    deep = extract_boxed(ADVERSARIAL["deep braces"])
    assert deep is not None and len(deep) == 400_001 and deep[200_000] == "5"
    assert extract_answer(ADVERSARIAL["million spaces"]) is None
    assert extract_answer(ADVERSARIAL["million digits"], style="last_number") == "1" * MILLION
    assert parse_number("1" * MILLION) is None  # too long to be an answer worth parsing
    assert answers_match("\u22125", "-5")


def test_adversarial_memory_stays_small():
    # Smaller than the timing cases: tracemalloc slows every allocation down.
    text = "\\boxed{" + "{" * 20_000 + "5" + "}" * 20_000 + "}"
    tracemalloc.start()
    try:
        extract_answer(text)
        normalize_answer(text)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # A few copies of the input and a stack of brace positions are fine, a blow-up is not.
    assert peak < 40 * len(text)


# ----------------------------------------------------------------------------------------------
# Round trips of random fractions

fractions = st.builds(
    Fraction,
    st.integers(min_value=-(10**9), max_value=10**9),
    st.integers(min_value=1, max_value=10**6),
)


def _formats(value: Fraction) -> list[str]:
    p, q = value.numerator, value.denominator
    sign = "-" if value < 0 else ""
    forms = [
        f"{p}/{q}" if q != 1 else f"{p}",
        f"\\frac{{{p}}}{{{q}}}",
        f"{sign}\\frac{{{abs(p)}}}{{{q}}}",
        f"{sign}\\dfrac{{{abs(p)}}}{{{q}}}",
        f"\u2212{abs(p)}/{q}" if value < 0 else f"+{p}/{q}",
    ]
    if q != 1 and abs(p) > q:
        whole, rest = divmod(abs(p), q)
        forms.append(f"{sign}{whole} {rest}/{q}" if rest else f"{sign}{whole}")
        forms.append(f"{sign}{whole}\\frac{{{rest}}}{{{q}}}" if rest else f"{sign}{whole}")
    # Terminating decimals, written out exactly.
    twos_fives = q
    for factor in (2, 5):
        while twos_fives % factor == 0:
            twos_fives //= factor
    if twos_fives == 1:
        digits = 0
        while (value * 10**digits).denominator != 1:
            digits += 1
        scaled = abs(value.numerator * 10**digits // value.denominator)
        text = str(scaled).rjust(digits + 1, "0")
        decimal = f"{text[:-digits]}.{text[-digits:]}" if digits else text
        forms.append(sign + decimal)
        if value.denominator == 1:
            forms.append(f"{sign}{abs(value.numerator):,}")
    return forms


@given(fractions)
def test_formatted_fractions_parse_back(value):
    for form in _formats(value):
        assert parse_number(form) == value, form


@given(fractions, st.sampled_from(["gsm8k", "boxed", "answer_is", "heading"]))
def test_formatted_fractions_extract_and_match(value, wrapper):
    canonical = f"{value.numerator}/{value.denominator}" if value.denominator != 1 else None
    reference = canonical or str(value.numerator)
    for form in _formats(value):
        if wrapper == "gsm8k":
            text = f"Some work 1+1=2\n#### {form}"
        elif wrapper == "boxed":
            text = f"So the result is $\\boxed{{{form}}}$."
        elif wrapper == "answer_is":
            text = f"Step 1: add 3 and 4 to get 7.\nThe answer is {form}."
        else:
            text = f"Thus 5 works.\n\n# Answer\n\n{form}"
        extracted = extract_answer(text)
        assert extracted is not None, text
        assert answers_match(extracted, reference), (text, extracted)
        assert not answers_match(extracted, f"{value.numerator + 1}/{value.denominator}")
