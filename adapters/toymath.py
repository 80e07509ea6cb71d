"""A toy reasoning world: chains of arithmetic with exact, step-wise checkable solutions.

A stand-in for GSM8K-style reasoning small enough for a character-level language model trained
in minutes on a CPU, with exact answers and an exact step checker in place of human step labels
(the roles PRM800K's raters play in "Let's Verify Step by Step", Lightman et al., arXiv
2305.20050, and Monte-Carlo labels in Math-Shepherd, arXiv 2312.08935).

A problem starts from a number and applies a few operations::

    Start with 17. Add 25. Multiply by 3. Subtract 8. What is the result?

Its solution has one step per operation and a final answer step, each followed by the step
separator ``<sep>``; a finished solution ends with ``<eos>``::

    ...What is the result?<sep>17+25=42<sep>42*3=126<sep>126-8=118<sep>The answer is 118<sep><eos>

Every intermediate value is a whole number from 0 to ``max_value`` (at most 9999), division
appears only when it is exact, and multipliers and divisors are small, so a small model can learn
the format and the short problems yet still makes arithmetic slips on long ones. The difficulty
knob is :class:`ToyMathConfig` (number of steps, operand sizes); :data:`DIFFICULTIES` names
three levels. Held-out problems are chosen by a hash of their text (:func:`is_heldout`), so no
training draw, whatever its seed, can produce a test problem; :func:`heldout_split` gives the
fixed test sets.

:func:`check_solution` judges each step exactly, by parsing ``a<op>b=c`` strictly and comparing
integers (the text is never evaluated). :func:`build_tokenizer` makes the matching
character-level Hugging Face tokenizer, with ``<sep>``, ``<eos>``, ``<pad>``, ``<bos>`` and the
PRM label words ``Positive`` / ``Negative`` as single tokens.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Literal

import numpy as np

from treesearch.adapters.data import PRMExample, SFTExample

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

__all__ = [
    "ANSWER_PREFIX",
    "BOS",
    "CHARACTERS",
    "DIFFICULTIES",
    "EOS",
    "NEGATIVE",
    "PAD",
    "POSITIVE",
    "SEP",
    "SPECIAL_TOKENS",
    "STEP_REASONS",
    "UNK",
    "Operation",
    "ParsedAnswer",
    "ParsedStep",
    "SolutionCheck",
    "StepCheck",
    "ToyMathConfig",
    "ToyProblem",
    "build_tokenizer",
    "check_characters",
    "check_solution",
    "flawed_steps",
    "format_prefix",
    "generate_problem",
    "generate_problems",
    "heldout_split",
    "is_heldout",
    "parse_step",
    "parse_text",
    "prm_example",
    "random_step",
    "slip_value",
    "slipped_steps",
]

SEP = "<sep>"
EOS = "<eos>"
BOS = "<bos>"
PAD = "<pad>"
UNK = "<unk>"
POSITIVE = "Positive"
NEGATIVE = "Negative"
# Token ids follow this order: <pad> is 0, <bos> 1, <eos> 2, <unk> 3, <sep> 4, Positive 5,
# Negative 6, then the characters.
SPECIAL_TOKENS = (PAD, BOS, EOS, UNK, SEP, POSITIVE, NEGATIVE)
# Printable ASCII: everything the toy text uses, and no more than a small embedding needs.
CHARACTERS = "".join(chr(code) for code in range(32, 127))
ANSWER_PREFIX = "The answer is "

_OPERATION_WORDS = {"+": "Add", "-": "Subtract", "*": "Multiply by", "/": "Divide by"}
_NUMBER = r"(?:0|[1-9][0-9]{0,8})"
_STEP = re.compile(rf"(-?{_NUMBER})([-+*/])({_NUMBER})=(-?{_NUMBER})")
_ANSWER = re.compile(rf"{ANSWER_PREFIX}(-?{_NUMBER})")
_SPECIAL_SPLIT = re.compile("(" + "|".join(re.escape(t) for t in SPECIAL_TOKENS) + ")")
_ALLOWED = frozenset(CHARACTERS)

# One problem in HELDOUT_MODULUS is held out, by a hash of its prompt.
HELDOUT_MODULUS = 8
_HELDOUT_SEEDS = {"easy": 1_000_001, "medium": 1_000_002, "hard": 1_000_003}

STEP_REASONS = (
    "ok",
    "malformed",  # not "a<op>b=c" / "The answer is N"
    "wrong_input",  # a is not the previous step's result
    "wrong_operation",  # op or b is not the problem's next instruction
    "wrong_result",  # c is not a <op> b
    "early_answer",  # an answer before every operation was done
    "expected_answer",  # another operation after the last one
    "wrong_answer",  # the answer is not the last step's result
    "extra_step",  # anything after the answer step
)


# ----------------------------------------------------------------------------------------------
# Problems


@dataclass(frozen=True)
class Operation:
    """One instruction: apply ``op`` (``+ - * /``) with ``operand``."""

    op: str
    operand: int

    def __post_init__(self) -> None:
        if self.op not in _OPERATION_WORDS:
            raise ValueError(f"unknown operation {self.op!r}; expected one of '+-*/'")
        if isinstance(self.operand, bool) or not isinstance(self.operand, int):
            raise TypeError(f"operand must be an int, not {type(self.operand).__name__}")
        if self.operand < 0:
            raise ValueError(f"operand must be non-negative, not {self.operand}")
        if self.op == "/" and self.operand == 0:
            raise ValueError("division by zero")

    def apply(self, value: int) -> int | None:
        """``value <op> operand``, or ``None`` for a division that is not exact."""
        if self.op == "+":
            return value + self.operand
        if self.op == "-":
            return value - self.operand
        if self.op == "*":
            return value * self.operand
        quotient, remainder = divmod(value, self.operand)
        return quotient if remainder == 0 else None

    @property
    def instruction(self) -> str:
        return f"{_OPERATION_WORDS[self.op]} {self.operand}."


@dataclass(frozen=True)
class ToyProblem:
    """A start value and a chain of operations whose every partial result is exact."""

    start: int
    operations: tuple[Operation, ...]

    def __post_init__(self) -> None:
        if isinstance(self.start, bool) or not isinstance(self.start, int):
            raise TypeError(f"start must be an int, not {type(self.start).__name__}")
        operations = tuple(self.operations)
        if not operations:
            raise ValueError("a problem needs at least one operation")
        value = self.start
        for i, operation in enumerate(operations):
            if not isinstance(operation, Operation):
                raise TypeError(f"operation {i} must be an Operation, not {operation!r}")
            result = operation.apply(value)
            if result is None:
                raise ValueError(f"operation {i} divides {value} by {operation.operand} unevenly")
            value = result
        object.__setattr__(self, "operations", operations)

    @property
    def num_steps(self) -> int:
        """Arithmetic steps in the solution; the answer step comes after them."""
        return len(self.operations)

    @property
    def values(self) -> tuple[int, ...]:
        """The start value and every partial result; the last one is the answer."""
        values = [self.start]
        for operation in self.operations:
            result = operation.apply(values[-1])
            values.append(values[-1] if result is None else result)  # exact: see __post_init__
        return tuple(values)

    @property
    def answer(self) -> int:
        return self.values[-1]

    @property
    def prompt(self) -> str:
        instructions = " ".join(op.instruction for op in self.operations)
        return f"Start with {self.start}. {instructions} What is the result?"

    @property
    def steps(self) -> tuple[str, ...]:
        """The gold solution: one ``a<op>b=c`` step per operation, then ``The answer is N``."""
        values = self.values
        arithmetic = tuple(
            f"{values[i]}{op.op}{op.operand}={values[i + 1]}"
            for i, op in enumerate(self.operations)
        )
        return (*arithmetic, f"{ANSWER_PREFIX}{self.answer}")

    def text(self, steps: Sequence[str] | None = None, *, finished: bool = True) -> str:
        """The prompt and ``steps`` (the gold solution by default) in the step-wise format."""
        chosen = self.steps if steps is None else tuple(steps)
        return format_prefix(self.prompt, chosen) + (EOS if finished else "")

    def sft_example(self) -> SFTExample:
        return SFTExample(self.prompt, self.steps, str(self.answer))

    def check(self, steps: Sequence[str]) -> SolutionCheck:
        return check_solution(self, steps)


@dataclass(frozen=True)
class ToyMathConfig:
    """The difficulty knob: how many operations, how large the numbers.

    Args:
        num_steps: operations per problem (the solution has one more step, the answer).
        max_start: the start value is drawn from ``1..max_start``.
        max_operand: largest operand of ``+`` and ``-``.
        max_multiplier: largest operand of ``*`` and ``/`` (at least 2).
        max_value: every partial result stays in ``0..max_value``.
        operations: which of ``+ - * /`` may appear.
    """

    num_steps: int = 4
    max_start: int = 99
    max_operand: int = 99
    max_multiplier: int = 9
    max_value: int = 9999
    operations: str = "+-*/"

    def __post_init__(self) -> None:
        for name in ("num_steps", "max_start", "max_operand", "max_multiplier", "max_value"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an int, not {type(value).__name__}")
        if not 1 <= self.num_steps <= 64:
            raise ValueError(f"num_steps must be in 1..64, not {self.num_steps}")
        if self.max_start < 1 or self.max_operand < 1:
            raise ValueError("max_start and max_operand must be at least 1")
        if self.max_multiplier < 2:
            raise ValueError(f"max_multiplier must be at least 2, not {self.max_multiplier}")
        if not self.max_start <= self.max_value <= 10**6:
            raise ValueError(
                f"max_value must be in max_start..1000000, not {self.max_value} "
                f"(max_start is {self.max_start})"
            )
        if not self.operations or set(self.operations) - set(_OPERATION_WORDS):
            raise ValueError(
                f"operations must be a non-empty subset of '+-*/', not {self.operations!r}"
            )
        if "+" not in self.operations:
            raise ValueError(
                "operations must include '+', so that almost every value has a next step"
            )


DIFFICULTIES: Mapping[str, ToyMathConfig] = MappingProxyType(
    {
        "easy": ToyMathConfig(
            num_steps=2, max_start=9, max_operand=9, max_multiplier=5, max_value=99
        ),
        "medium": ToyMathConfig(
            num_steps=4, max_start=99, max_operand=99, max_multiplier=9, max_value=999
        ),
        "hard": ToyMathConfig(
            num_steps=6, max_start=999, max_operand=999, max_multiplier=9, max_value=9999
        ),
    }
)

Split = Literal["train", "heldout", "any"]


def _operand_choices(value: int, config: ToyMathConfig) -> dict[str, range | list[int]]:
    """For each operation kind, every operand that keeps ``value`` exact and in range."""
    choices: dict[str, range | list[int]] = {}
    if "+" in config.operations and value < config.max_value:
        choices["+"] = range(1, min(config.max_operand, config.max_value - value) + 1)
    if "-" in config.operations and value > 0:
        choices["-"] = range(1, min(config.max_operand, value) + 1)
    if "*" in config.operations and 0 < value <= config.max_value // 2:
        choices["*"] = range(2, min(config.max_multiplier, config.max_value // value) + 1)
    if "/" in config.operations and value > 0:
        top = min(config.max_multiplier, value)
        divisors = [b for b in range(2, top + 1) if value % b == 0]
        if divisors:
            choices["/"] = divisors
    return choices


def _draw_operation(
    rng: np.random.Generator, value: int, config: ToyMathConfig
) -> Operation | None:
    """A random operation allowed from ``value``, or ``None`` when there is none."""
    choices = _operand_choices(value, config)
    if not choices:
        return None
    # The kind first, so that a kind with few operands (division) still turns up.
    kinds = sorted(choices)
    kind = kinds[int(rng.integers(len(kinds)))]
    operands = choices[kind]
    return Operation(kind, int(operands[int(rng.integers(len(operands)))]))


def _draw_problem(rng: np.random.Generator, config: ToyMathConfig) -> ToyProblem | None:
    """A random problem, or ``None`` when the chain reaches a value with no next operation."""
    start = int(rng.integers(1, config.max_start + 1))
    value = start
    operations = []
    for _ in range(config.num_steps):
        operation = _draw_operation(rng, value, config)
        if operation is None:  # only at value == max_value without "-"
            return None
        result = operation.apply(value)
        if result is None:  # unreachable: the operands above divide exactly
            raise RuntimeError(f"inexact operation {operation} drawn for {value}")
        operations.append(operation)
        value = result
    return ToyProblem(start, tuple(operations))


def is_heldout(problem: ToyProblem) -> bool:
    """Whether ``problem`` belongs to the held-out test pool (one problem in 8, by a hash).

    Training draws never produce these, whatever their seed.
    """
    digest = hashlib.blake2b(problem.prompt.encode("ascii"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % HELDOUT_MODULUS == 0


def generate_problem(
    rng: np.random.Generator, config: ToyMathConfig, *, split: Split = "train"
) -> ToyProblem:
    """A random problem of the given difficulty.

    Args:
        rng: the only source of randomness.
        config: the difficulty.
        split: ``"train"`` never returns a held-out problem, ``"heldout"`` only returns those,
            ``"any"`` does not care.
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, not {type(rng).__name__}")
    if not isinstance(config, ToyMathConfig):
        raise TypeError(f"config must be a ToyMathConfig, not {type(config).__name__}")
    if split not in ("train", "heldout", "any"):
        raise ValueError(f"split must be 'train', 'heldout' or 'any', not {split!r}")
    for _ in range(100_000):
        problem = _draw_problem(rng, config)
        if problem is not None and (split == "any" or is_heldout(problem) == (split == "heldout")):
            return problem
    raise RuntimeError(f"no {split} problem found in 100000 draws under {config}")


def generate_problems(
    rng: np.random.Generator, config: ToyMathConfig, count: int, *, split: Split = "train"
) -> list[ToyProblem]:
    """``count`` random problems (repeats possible) from :func:`generate_problem`."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise ValueError(f"count must be a non-negative int, not {count!r}")
    return [generate_problem(rng, config, split=split) for _ in range(count)]


def heldout_split(level: str, size: int = 200) -> list[ToyProblem]:
    """The fixed test set of a difficulty level: ``size`` distinct held-out problems.

    The same on every call and every machine (a fixed seed per level and a hash split).
    """
    if level not in DIFFICULTIES:
        raise ValueError(f"unknown level {level!r}; expected one of {sorted(DIFFICULTIES)}")
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= 1000:
        raise ValueError(f"size must be an int in 1..1000, not {size!r}")
    rng = np.random.default_rng(_HELDOUT_SEEDS[level])
    config = DIFFICULTIES[level]
    problems: dict[str, ToyProblem] = {}
    for _ in range(200 * size):
        problem = generate_problem(rng, config, split="heldout")
        problems.setdefault(problem.prompt, problem)
        if len(problems) == size:
            return list(problems.values())
    raise ValueError(f"level {level!r} has fewer than {size} distinct held-out problems")


# ----------------------------------------------------------------------------------------------
# Text format


def check_characters(text: str) -> None:
    """Raise ``ValueError`` naming the first character outside the tokenizer's vocabulary."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, not {type(text).__name__}")
    offset = 0
    for piece in _SPECIAL_SPLIT.split(text):
        if piece not in SPECIAL_TOKENS:
            for i, char in enumerate(piece):
                if char not in _ALLOWED:
                    raise ValueError(
                        f"unknown character {char!r} at position {offset + i}; the toy "
                        "vocabulary is printable ASCII and the special tokens"
                    )
        offset += len(piece)


def format_prefix(prompt: str, steps: Sequence[str] = ()) -> str:
    """``prompt<sep>step<sep>step<sep>...``: the text a policy continues from.

    Raises ``ValueError`` for an empty step, a step holding a special token, or an unknown
    character.
    """
    if isinstance(steps, str):
        raise TypeError("steps must be a sequence of strings, not one string")
    check_characters(prompt)
    if not prompt or _SPECIAL_SPLIT.search(prompt):
        raise ValueError("the prompt must be non-empty and hold no special token")
    for i, step in enumerate(steps):
        if not isinstance(step, str):
            raise TypeError(f"step {i} must be a str, not {type(step).__name__}")
        if not step:
            raise ValueError(f"step {i} is empty")
        check_characters(step)
        match = _SPECIAL_SPLIT.search(step)
        if match is not None:
            raise ValueError(f"step {i} holds the special token {match.group(0)!r}")
    return prompt + SEP + "".join(step + SEP for step in steps)


def parse_text(text: str) -> tuple[str, tuple[str, ...], bool]:
    """``(prompt, steps, finished)`` from text in the format of :func:`format_prefix`.

    A leading ``<bos>`` is ignored and a trailing ``<eos>`` sets ``finished``.

    Raises:
        ValueError: an unknown character, no separator after the prompt, a last step without
            its separator, an empty step, or a special token where it does not belong.
    """
    check_characters(text)
    body = text.removeprefix(BOS)
    finished = body.endswith(EOS)
    body = body.removesuffix(EOS)
    for token in (BOS, EOS, PAD, UNK, POSITIVE, NEGATIVE):
        if token in body:
            raise ValueError(f"{token!r} may only appear at the start or end, not inside the text")
    prompt, sep, rest = body.partition(SEP)
    if not sep:
        raise ValueError(f"missing separator {SEP!r} after the prompt")
    if not prompt:
        raise ValueError("the prompt is empty")
    if not rest:
        return prompt, (), finished
    pieces = rest.split(SEP)
    if pieces[-1]:
        raise ValueError(
            f"missing separator {SEP!r} after step {len(pieces) - 1}: {pieces[-1]!r:.40}"
        )
    steps = tuple(pieces[:-1])
    for i, step in enumerate(steps):
        if not step:
            raise ValueError(f"step {i} is empty (two separators in a row)")
    return prompt, steps, finished


@dataclass(frozen=True)
class ParsedStep:
    """``left op right = result`` as written."""

    left: int
    op: str
    right: int
    result: int


@dataclass(frozen=True)
class ParsedAnswer:
    """``The answer is value`` as written."""

    value: int


def parse_step(step: str) -> ParsedStep | ParsedAnswer:
    """Parse one step strictly: ``a<op>b=c`` (no spaces, no leading zeros, ``a`` and ``c``
    may be negative) or ``The answer is N``. Never evaluates the text.

    Raises:
        ValueError: an empty step, a step holding the separator, an unknown character, or any
            other text.
    """
    if not isinstance(step, str):
        raise TypeError(f"step must be a str, not {type(step).__name__}")
    if not step:
        raise ValueError("empty step")
    check_characters(step)
    if SEP in step:
        raise ValueError(f"the step holds the separator {SEP!r}: missing a step boundary?")
    match = _STEP.fullmatch(step)
    if match is not None:
        return ParsedStep(int(match.group(1)), match.group(2), int(match.group(3)), int(match[4]))
    match = _ANSWER.fullmatch(step)
    if match is not None:
        return ParsedAnswer(int(match.group(1)))
    raise ValueError(f"not a step of the form 'a<op>b=c' or '{ANSWER_PREFIX}N': {step!r:.60}")


# ----------------------------------------------------------------------------------------------
# Checking


@dataclass(frozen=True)
class StepCheck:
    """The verdict on one step: ``correct`` and the reason (one of :data:`STEP_REASONS`)."""

    correct: bool
    reason: str
    detail: str = ""


@dataclass(frozen=True)
class SolutionCheck:
    """Verdicts on a (possibly partial) solution.

    Attributes:
        steps: each step judged on its own: parses, starts from the previous step's written
            result (the start value for the first), follows the problem's instruction, and
            computes right.
        labels: process labels, 1 while every step so far is correct and 0 from the first
            wrong step on (the prefix can no longer reach the answer).
        solved: every step correct and the answer given.
        answer: the value of the answer step, if the last step is one.
        first_error: index of the first wrong step, or ``None``.
    """

    steps: tuple[StepCheck, ...]
    labels: tuple[int, ...]
    solved: bool
    answer: int | None
    first_error: int | None


def check_solution(problem: ToyProblem, steps: Sequence[str]) -> SolutionCheck:
    """Judge every step of a solution (finished or not) against ``problem``.

    A malformed step is judged wrong, not raised. If a step cannot be parsed, the next step is
    expected to start from the correct value.
    """
    if not isinstance(problem, ToyProblem):
        raise TypeError(f"problem must be a ToyProblem, not {type(problem).__name__}")
    if isinstance(steps, str):
        raise TypeError("steps must be a sequence of step strings, not one string")
    values = problem.values
    checks: list[StepCheck] = []
    previous: int = problem.start
    answer: int | None = None
    for index, step in enumerate(steps):
        answer = None
        try:
            parsed = parse_step(step)
        except (TypeError, ValueError) as exc:
            checks.append(StepCheck(False, "malformed", str(exc)))
            previous = values[index + 1] if index + 1 < len(values) else previous
            continue
        check, written = _check_parsed(problem, index, parsed, previous)
        checks.append(check)
        if isinstance(parsed, ParsedAnswer):
            answer = parsed.value
        if written is not None:
            previous = written
    labels: list[int] = []
    good = True
    for check in checks:
        good = good and check.correct
        labels.append(int(good))
    first_error = labels.index(0) if 0 in labels else None
    solved = good and len(checks) == problem.num_steps + 1
    return SolutionCheck(tuple(checks), tuple(labels), solved, answer, first_error)


def _check_parsed(
    problem: ToyProblem, index: int, parsed: ParsedStep | ParsedAnswer, previous: int
) -> tuple[StepCheck, int | None]:
    """The verdict on a parsed step at ``index`` and the result it writes, if any."""
    n = problem.num_steps
    if index > n:
        return StepCheck(False, "extra_step", f"the solution ended at step {n}"), None
    if isinstance(parsed, ParsedAnswer):
        if index < n:
            detail = f"{n - index} operation(s) left"
            return StepCheck(False, "early_answer", detail), None
        if parsed.value != previous:
            detail = f"answered {parsed.value}, the last result was {previous}"
            return StepCheck(False, "wrong_answer", detail), None
        return StepCheck(True, "ok"), None
    if index == n:
        return StepCheck(False, "expected_answer", "every operation is done"), parsed.result
    if parsed.left != previous:
        detail = f"starts from {parsed.left}, the previous result was {previous}"
        return StepCheck(False, "wrong_input", detail), parsed.result
    operation = problem.operations[index]
    if (parsed.op, parsed.right) != (operation.op, operation.operand):
        detail = f"the instruction is {operation.instruction!r}"
        return StepCheck(False, "wrong_operation", detail), parsed.result
    expected = Operation(parsed.op, parsed.right).apply(parsed.left)
    if expected != parsed.result:
        detail = f"{parsed.left}{parsed.op}{parsed.right} is not {parsed.result}"
        return StepCheck(False, "wrong_result", detail), parsed.result
    return StepCheck(True, "ok"), parsed.result


def prm_example(problem: ToyProblem, steps: Sequence[str]) -> PRMExample:
    """``steps`` with the exact process labels of :func:`check_solution`."""
    return PRMExample(problem.prompt, tuple(steps), check_solution(problem, steps).labels)


def flawed_steps(problem: ToyProblem, rng: np.random.Generator) -> tuple[tuple[str, ...], int]:
    """A full solution with one slip, and the index of the slipped step.

    The slip is a wrong result (off by a small amount) in a random arithmetic step, or a wrong
    final answer; the later steps compute correctly from the wrong value, as a model that slipped
    once would. Gives negative process labels without a trained policy.
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, not {type(rng).__name__}")
    slip = int(rng.integers(problem.num_steps + 1))
    delta = int(rng.choice([-10, -2, -1, 1, 2, 10]))
    steps: list[str] = []
    value = problem.start
    for index, operation in enumerate(problem.operations):
        exact = operation.apply(value)
        result = exact if exact is not None else value // operation.operand
        if index == slip:
            result += delta
        steps.append(f"{value}{operation.op}{operation.operand}={result}")
        value = result
    steps.append(f"{ANSWER_PREFIX}{value + delta if slip == problem.num_steps else value}")
    return tuple(steps), slip


# Where a slipped digit lands, counted from the units: the shipped policy's greedy slips on
# medium problems are mostly in the tens (133 of 200), then the units (29) and hundreds (8).
_SLIP_DIGIT_WEIGHTS = (0.3, 0.5, 0.2, 0.1)


def slip_value(value: int, rng: np.random.Generator) -> int:
    """A wrong value that a model might write for ``value``: usually one digit changed (most
    often the tens, then the units and the hundreds), sometimes a digit dropped or added, or
    off by 1 or 10. Never ``value`` itself; the sign is kept."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"value must be an int, not {type(value).__name__}")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, not {type(rng).__name__}")
    sign, digits = (-1, str(-value)) if value < 0 else (1, str(value))
    kind = rng.random()
    if kind < 0.1 or (len(digits) == 1 and kind < 0.3):
        wrong = abs(value + int(rng.choice([-10, -1, 1, 10])))
    elif kind < 0.2:
        if len(digits) > 1 and rng.random() < 0.5:
            wrong = int(digits[:-1])
        else:
            wrong = int(digits + str(int(rng.integers(10))))
    else:
        weights = np.array((_SLIP_DIGIT_WEIGHTS + (0.05,) * 8)[: len(digits)])
        place = int(rng.choice(len(digits), p=weights / weights.sum()))
        index = len(digits) - 1 - place
        choices = [d for d in "0123456789" if d != digits[index]]
        if index == 0 and len(digits) > 1:
            choices.remove("0")  # no leading zero
        wrong = int(digits[:index] + str(rng.choice(choices)) + digits[index + 1 :])
    wrong = sign * wrong if wrong != 0 else wrong
    return wrong if wrong != value else value + 1


def slipped_steps(
    problem: ToyProblem, rng: np.random.Generator, *, rate: float | None = None
) -> tuple[str, ...]:
    """A full solution with slipped results (:func:`slip_value`): exactly one slip in a random
    step when ``rate`` is ``None``, else every step (the answer included) slips with probability
    ``rate`` on its own. Later steps start from the value written before them, as a model that
    slipped would (a division that is no longer exact is rounded down, and so wrong)."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, not {type(rng).__name__}")
    if rate is not None and (
        isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 1
    ):
        raise ValueError(f"rate must be a probability in [0, 1] or None, not {rate!r}")
    steps = problem.num_steps + 1
    if rate is None:
        slips = {int(rng.integers(steps))}
    else:
        slips = {i for i in range(steps) if rng.random() < rate}
    out: list[str] = []
    value = problem.start
    for index, operation in enumerate(problem.operations):
        exact = operation.apply(value)
        result = exact if exact is not None else value // operation.operand
        if index in slips:
            result = slip_value(result, rng)
        out.append(f"{value}{operation.op}{operation.operand}={result}")
        value = result
    answer = slip_value(value, rng) if problem.num_steps in slips else value
    out.append(f"{ANSWER_PREFIX}{answer}")
    return tuple(out)


def random_step(rng: np.random.Generator, config: ToyMathConfig) -> tuple[int, Operation]:
    """One arithmetic step as it could appear inside a problem of ``config``: a value from
    ``1..max_value`` and an operation allowed from it (operands, exact division and the value
    range as in :func:`generate_problem`). For training a step checker on isolated steps."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, not {type(rng).__name__}")
    if not isinstance(config, ToyMathConfig):
        raise TypeError(f"config must be a ToyMathConfig, not {type(config).__name__}")
    while True:
        value = int(rng.integers(1, config.max_value + 1))
        operation = _draw_operation(rng, value, config)
        if operation is not None:
            return value, operation


# ----------------------------------------------------------------------------------------------
# Tokenizer


def build_tokenizer() -> PreTrainedTokenizerFast:
    """The character-level tokenizer of the toy world (needs ``tokenizers`` and ``transformers``).

    One id per printable ASCII character and one per special token: ``<pad>`` 0, ``<bos>`` 1,
    ``<eos>`` 2, ``<unk>`` 3, ``<sep>`` 4, ``Positive`` 5, ``Negative`` 6. Encoding prepends
    ``<bos>`` (pass ``add_special_tokens=False`` to leave it out); ``<eos>`` is written in the
    text, as :meth:`ToyProblem.text` does. Characters outside the vocabulary become ``<unk>``;
    :func:`check_characters` rejects them instead. Built from the fixed vocabulary, nothing is
    downloaded; save and reload it with ``save_pretrained`` / ``from_pretrained``.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate((*SPECIAL_TOKENS, *CHARACTERS))}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    backend.decoder = decoders.Fuse()
    backend.add_special_tokens(list(SPECIAL_TOKENS))
    backend.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A $B", special_tokens=[(BOS, vocab[BOS])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        sep_token=SEP,
        additional_special_tokens=[POSITIVE, NEGATIVE],
        clean_up_tokenization_spaces=False,
    )
