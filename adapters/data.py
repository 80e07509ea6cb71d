"""Readers for step-wise math reasoning data: GSM8K, MATH, PRM800K and Math-Shepherd.

Each loader reads a JSON Lines file and yields typed, frozen records. Every record can make a
step-wise supervised example (:class:`SFTExample`: ``prompt``, ``steps``, ``answer``) and a
process-reward example (:class:`PRMExample`: ``prompt``, ``steps``, ``labels`` with 1 for a good
step and 0 for a bad one), the inputs of PRM training as in "Let's Verify Step by Step"
(Lightman et al., arXiv 2305.20050) and Math-Shepherd (Wang et al., arXiv 2312.08935).

* **GSM8K** (Cobbe et al., arXiv 2110.14168; openai/grade-school-math): ``{"question",
  "answer"}``. The steps are the solution's lines with the calculator annotations ``<<...>>``
  removed; the answer is the ``#### N`` line without thousands separators. The reference
  solutions are correct, so their PRM labels are all 1.
* **MATH / MATH-500** (Hendrycks et al., arXiv 2103.03874; openai/prm800k ``math_splits``):
  ``{"problem", "solution", "answer", "subject", "level", "unique_id"}``. The steps are the
  solution's paragraphs; a record without ``answer`` takes the last ``\\boxed{}`` of its solution.
* **PRM800K** (openai/prm800k): raw labeller records, phase 1 (several completions per step, a
  chosen one or a human-written step) and phase 2 (``pre_generated_steps`` rated in order). The
  labelled path follows the chosen completion of each step, or the labeller's own step where
  they wrote one, and stops after the first step rated -1 (labelling stops there).
  Rating 1 is label 1, -1 is label 0, and 0 (neutral) is 0 unless ``neutral_as_positive``.
* **Math-Shepherd** (peiyi9979/Math-Shepherd): ``{"input", "label", "task"}``; ``input`` is the
  question followed by ``Step k: ...`` steps, each ending with the tag ``ки``, and ``label`` is
  the same text with each tag replaced by ``+`` (label 1) or ``-`` (label 0).

A malformed record raises :class:`DataFormatError` (a ``ValueError``) naming the file, the line
and the problem.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from treesearch.adapters.answers import extract_answer, extract_boxed, normalize_answer

__all__ = [
    "MATH_SHEPHERD_TAG",
    "DataFormatError",
    "GSM8KRecord",
    "MathRecord",
    "MathShepherdRecord",
    "PRM800KCompletion",
    "PRM800KRecord",
    "PRM800KStep",
    "PRMExample",
    "SFTExample",
    "load_gsm8k",
    "load_math",
    "load_math_shepherd",
    "load_prm800k",
    "read_jsonl",
    "strip_calculator_annotations",
]

MATH_SHEPHERD_TAG = "ки"
_CALCULATOR_ANNOTATION = re.compile(r"<<[^\n]*?>>")
_STEP_PREFIX = re.compile(r"Step\s+\d+\s*:\s*")
_FIRST_STEP = re.compile(r"Step\s+1\s*:")
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")


class DataFormatError(ValueError):
    """A record that does not have the expected format; the message names the line."""


@dataclass(frozen=True)
class SFTExample:
    """A worked solution for supervised fine-tuning, one reasoning step per entry of ``steps``."""

    prompt: str
    steps: tuple[str, ...]
    answer: str

    def __post_init__(self) -> None:
        _check_text("prompt", self.prompt)
        object.__setattr__(self, "steps", _as_steps(self.steps))
        _check_text("answer", self.answer)


@dataclass(frozen=True)
class PRMExample:
    """Steps with one process-reward label each: 1 for a good step, 0 for a bad one.

    Soft labels in ``[0, 1]`` (Math-Shepherd's soft estimates) are allowed.
    """

    prompt: str
    steps: tuple[str, ...]
    labels: tuple[float, ...]

    def __post_init__(self) -> None:
        _check_text("prompt", self.prompt)
        steps = _as_steps(self.steps)
        if isinstance(self.labels, str | bytes) or not isinstance(self.labels, Sequence):
            raise TypeError(f"labels must be a sequence of numbers, not {self.labels!r}")
        labels = tuple(self.labels)
        if len(labels) != len(steps):
            raise ValueError(f"{len(steps)} steps but {len(labels)} labels")
        for i, label in enumerate(labels):
            if isinstance(label, bool) or not isinstance(label, int | float):
                raise TypeError(f"label {i} must be a number, not {label!r}")
            if not (math.isfinite(label) and 0 <= label <= 1):
                raise ValueError(f"label {i} is {label!r}; labels lie in [0, 1]")
        object.__setattr__(self, "steps", steps)
        object.__setattr__(self, "labels", labels)


def _check_text(name: str, value: object) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")


def _as_steps(steps: object) -> tuple[str, ...]:
    if isinstance(steps, str | bytes) or not isinstance(steps, Sequence):
        raise TypeError(f"steps must be a sequence of strings, not {steps!r:.80}")
    result = tuple(steps)
    if not result:
        raise ValueError("steps is empty; an example needs at least one step")
    for i, step in enumerate(result):
        if not isinstance(step, str):
            raise TypeError(f"step {i} must be a str, not {type(step).__name__}")
    return result


def strip_calculator_annotations(text: str) -> str:
    """``text`` without GSM8K calculator annotations: ``2/2=<<2/2=1>>1`` becomes ``2/2=1``."""
    return _CALCULATOR_ANNOTATION.sub("", text)


# ----------------------------------------------------------------------------------------------
# Reading JSON Lines


def read_jsonl(path: str | os.PathLike[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` for each non-blank line of a UTF-8 JSON Lines file.

    Raises:
        DataFormatError: a line that is not JSON or not a JSON object.
    """
    name = os.fspath(path)
    with open(name, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataFormatError(f"{name}:{number}: invalid JSON: {exc.msg}") from None
            if not isinstance(obj, dict):
                raise DataFormatError(
                    f"{name}:{number}: expected a JSON object, got {type(obj).__name__}"
                )
            yield number, obj


def _where(source: str | None, line: int | None) -> str:
    if source is not None and line is not None:
        return f"{source}:{line}"
    if line is not None:
        return f"line {line}"
    return source if source is not None else "record"


def _require(obj: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in obj:
        raise DataFormatError(f"{where}: missing field {key!r}")
    value = obj[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        expected = (
            kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        )
        raise DataFormatError(
            f"{where}: field {key!r} must be {expected}, not {type(value).__name__}"
        )
    return value


def _optional(obj: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if obj.get(key) is None:
        return None
    return _require(obj, key, kind, where)


# ----------------------------------------------------------------------------------------------
# GSM8K


@dataclass(frozen=True)
class GSM8KRecord:
    """One GSM8K problem with its reference solution.

    ``steps`` are the solution lines before ``####`` without calculator annotations; ``answer``
    is the final answer normalised by :func:`~treesearch.adapters.answers.normalize_answer`
    (``"2,125"`` becomes ``"2125"``); ``answer_text`` is it as written.
    """

    question: str
    solution: str
    steps: tuple[str, ...]
    answer: str
    answer_text: str
    line: int | None = None

    @classmethod
    def from_json(
        cls, obj: Mapping[str, Any], *, line: int | None = None, source: str | None = None
    ) -> GSM8KRecord:
        where = _where(source, line)
        question = _require(obj, "question", str, where)
        solution = _require(obj, "answer", str, where)
        head, mark, tail = solution.rpartition("####")
        if not mark:
            raise DataFormatError(f"{where}: the solution has no '#### <answer>' line")
        answer_text = tail.strip().split("\n", 1)[0].strip()
        answer = normalize_answer(answer_text)
        if answer is None:
            raise DataFormatError(f"{where}: the '####' line holds no answer")
        steps = tuple(
            stripped
            for raw in head.split("\n")
            if (stripped := strip_calculator_annotations(raw).strip())
        )
        if not steps:
            raise DataFormatError(f"{where}: the solution has no steps before '####'")
        return cls(question, solution, steps, answer, answer_text, line)

    def sft_example(self) -> SFTExample:
        return SFTExample(self.question, self.steps, self.answer)

    def prm_example(self) -> PRMExample:
        """The reference solution with every step labelled 1 (it is correct)."""
        return PRMExample(self.question, self.steps, (1,) * len(self.steps))


def load_gsm8k(path: str | os.PathLike[str]) -> Iterator[GSM8KRecord]:
    """GSM8K records from a JSON Lines file (``{"question", "answer"}`` per line)."""
    for line, obj in read_jsonl(path):
        yield GSM8KRecord.from_json(obj, line=line, source=os.fspath(path))


# ----------------------------------------------------------------------------------------------
# MATH


@dataclass(frozen=True)
class MathRecord:
    """One MATH problem; ``steps`` are the solution's paragraphs (split at blank lines)."""

    problem: str
    solution: str
    steps: tuple[str, ...]
    answer: str
    subject: str | None = None
    level: int | None = None
    unique_id: str | None = None
    line: int | None = None

    @classmethod
    def from_json(
        cls, obj: Mapping[str, Any], *, line: int | None = None, source: str | None = None
    ) -> MathRecord:
        where = _where(source, line)
        problem = _require(obj, "problem", str, where)
        solution = _require(obj, "solution", str, where)
        answer = _optional(obj, "answer", str, where)
        if answer is None:
            answer = extract_boxed(solution)
            if answer is None:
                raise DataFormatError(
                    f"{where}: missing field 'answer' and the solution has no \\boxed{{}} answer"
                )
        level = _optional(obj, "level", (int, str), where)
        if isinstance(level, str):  # "Level 3" in the original MATH release
            match = re.fullmatch(r"(?:Level\s*)?([1-5])", level.strip())
            if match is None:
                raise DataFormatError(f"{where}: field 'level' is {level!r}, not a level 1-5")
            level = int(match.group(1))
        steps = tuple(p.strip() for p in _PARAGRAPH_BREAK.split(solution) if p.strip())
        if not steps:
            raise DataFormatError(f"{where}: the solution is empty")
        return cls(
            problem,
            solution,
            steps,
            answer.strip(),
            _optional(obj, "subject", str, where),
            level,
            _optional(obj, "unique_id", str, where),
            line,
        )

    def sft_example(self) -> SFTExample:
        return SFTExample(self.problem, self.steps, self.answer)

    def prm_example(self) -> PRMExample:
        """The reference solution with every step labelled 1 (it is correct)."""
        return PRMExample(self.problem, self.steps, (1,) * len(self.steps))


def load_math(path: str | os.PathLike[str]) -> Iterator[MathRecord]:
    """MATH / MATH-500 records from a JSON Lines file."""
    for line, obj in read_jsonl(path):
        yield MathRecord.from_json(obj, line=line, source=os.fspath(path))


# ----------------------------------------------------------------------------------------------
# PRM800K


@dataclass(frozen=True)
class PRM800KCompletion:
    """One candidate step and its human rating: 1 good, 0 neutral, -1 bad, ``None`` unrated."""

    text: str
    rating: int | None
    flagged: bool | None = None


@dataclass(frozen=True)
class PRM800KStep:
    """The candidates a labeller saw at one step, which one they continued with, if any, and
    the step they wrote themselves, if any."""

    completions: tuple[PRM800KCompletion, ...]
    chosen_completion: int | None
    human_completion: str | None


@dataclass(frozen=True)
class _PathStep:
    step_index: int
    completion_index: int | None  # None: the labeller's own step
    text: str
    rating: int  # 1 for the labeller's own step


@dataclass(frozen=True)
class PRM800KRecord:
    """One labelled PRM800K solution (raw format, phase 1 or phase 2)."""

    problem: str
    ground_truth_answer: str | None
    steps: tuple[PRM800KStep, ...]
    finish_reason: str
    generation: int | None = None
    ground_truth_solution: str | None = None
    pre_generated_steps: tuple[str, ...] | None = None
    pre_generated_answer: str | None = None
    line: int | None = None

    @property
    def phase(self) -> int:
        """2 when the labeller rated a pre-generated solution, 1 when they steered it."""
        return 1 if self.pre_generated_steps is None else 2

    @classmethod
    def from_json(
        cls, obj: Mapping[str, Any], *, line: int | None = None, source: str | None = None
    ) -> PRM800KRecord:
        where = _where(source, line)
        question = _require(obj, "question", dict, where)
        label = _require(obj, "label", dict, where)
        problem = _require(question, "problem", str, f"{where}: question")
        raw_steps = _require(label, "steps", list, f"{where}: label")
        finish_reason = _require(label, "finish_reason", str, f"{where}: label")
        steps = tuple(
            _parse_prm800k_step(raw, f"{where}: label step {i}") for i, raw in enumerate(raw_steps)
        )
        pre_steps = _optional(question, "pre_generated_steps", list, f"{where}: question")
        if pre_steps is not None:
            for i, text in enumerate(pre_steps):
                if not isinstance(text, str):
                    raise DataFormatError(
                        f"{where}: question: pre_generated_steps[{i}] must be str, "
                        f"not {type(text).__name__}"
                    )
            pre_steps = tuple(pre_steps)
        return cls(
            problem=problem,
            ground_truth_answer=_optional(question, "ground_truth_answer", str, where),
            steps=steps,
            finish_reason=finish_reason,
            generation=_optional(obj, "generation", int, where),
            ground_truth_solution=_optional(question, "ground_truth_solution", str, where),
            pre_generated_steps=pre_steps,
            pre_generated_answer=_optional(question, "pre_generated_answer", str, where),
            line=line,
        )

    def _labelled_path(self) -> tuple[list[_PathStep], bool]:
        """The steps the labeller accepted, in order, and whether it ends on a -1 step."""
        path: list[_PathStep] = []
        for i, step in enumerate(self.steps):
            if step.chosen_completion is not None:
                chosen = step.completions[step.chosen_completion]
                if chosen.rating is None:
                    break
                path.append(_PathStep(i, step.chosen_completion, chosen.text, chosen.rating))
                if chosen.rating == -1:
                    return path, True
            elif step.human_completion is not None:
                path.append(_PathStep(i, None, step.human_completion, 1))
            else:
                # Labelling stopped here: in phase 2 completion 0 (the pre-generated step) is
                # the first error; in phase 1 the first completion rated -1 is.
                for j, completion in enumerate(step.completions):
                    if completion.rating == -1:
                        path.append(_PathStep(i, j, completion.text, -1))
                        return path, True
                break
        return path, False

    def prm_example(self, *, neutral_as_positive: bool = False) -> PRMExample | None:
        """The labelled solution, up to and including its first bad step.

        ``None`` when not even the first step was rated.
        """
        path, _ = self._labelled_path()
        if not path:
            return None
        return PRMExample(
            self.problem,
            tuple(p.text for p in path),
            tuple(_rating_label(p.rating, neutral_as_positive) for p in path),
        )

    def alternative_prm_examples(self, *, neutral_as_positive: bool = False) -> list[PRMExample]:
        """One example per rated completion the labelled path did not take.

        Each is the path's prefix before that step followed by the alternative, labelled by its
        rating. Phase 1 records give most of their bad steps this way.
        """
        path, ended_on_error = self._labelled_path()
        examples: list[PRMExample] = []
        # The path takes one entry from each step in order, so path[i] comes from steps[i]; the
        # step where an unfinished path stopped still has rated alternatives to offer.
        last = len(path) if ended_on_error else len(path) + 1
        for i in range(min(last, len(self.steps))):
            taken = path[i] if i < len(path) else None
            prefix = path[:i]
            for j, completion in enumerate(self.steps[i].completions):
                if completion.rating is None:
                    continue
                if taken is not None and taken.completion_index == j:
                    continue
                examples.append(
                    PRMExample(
                        self.problem,
                        (*(p.text for p in prefix), completion.text),
                        (
                            *(_rating_label(p.rating, neutral_as_positive) for p in prefix),
                            _rating_label(completion.rating, neutral_as_positive),
                        ),
                    )
                )
        return examples

    def sft_example(self, *, neutral_as_positive: bool = False) -> SFTExample | None:
        """The labelled solution as a worked example, when it is finished and wholly good.

        ``None`` unless the labeller finished it (``finish_reason == "solution"``), every step on
        the path is rated 1 (or 0, with ``neutral_as_positive``) and the last step states the
        answer under a ``# Answer`` heading.
        """
        if self.finish_reason != "solution":
            return None
        path, ended_on_error = self._labelled_path()
        if not path or ended_on_error:
            return None
        if any(_rating_label(p.rating, neutral_as_positive) != 1 for p in path):
            return None
        answer = extract_answer(path[-1].text, style="answer_heading")
        if answer is None:
            return None
        return SFTExample(self.problem, tuple(p.text for p in path), answer)


def _rating_label(rating: int, neutral_as_positive: bool) -> int:
    if rating == 0:
        return 1 if neutral_as_positive else 0
    return 1 if rating == 1 else 0


def _parse_prm800k_step(raw: object, where: str) -> PRM800KStep:
    if not isinstance(raw, dict):
        raise DataFormatError(f"{where}: expected an object, got {type(raw).__name__}")
    completions_raw = raw.get("completions")
    if completions_raw is None:
        completions_raw = []
    if not isinstance(completions_raw, list):
        raise DataFormatError(f"{where}: field 'completions' must be a list")
    completions = []
    for j, item in enumerate(completions_raw):
        here = f"{where}: completion {j}"
        if not isinstance(item, dict):
            raise DataFormatError(f"{here}: expected an object, got {type(item).__name__}")
        text = _require(item, "text", str, here)
        rating = item.get("rating")
        if rating is not None and (isinstance(rating, bool) or rating not in (-1, 0, 1)):
            raise DataFormatError(f"{here}: rating {rating!r} is not -1, 0, 1 or null")
        flagged = item.get("flagged")
        completions.append(PRM800KCompletion(text, rating, flagged))
    chosen = raw.get("chosen_completion")
    if chosen is not None:
        if isinstance(chosen, bool) or not isinstance(chosen, int):
            raise DataFormatError(f"{where}: chosen_completion {chosen!r} is not an index")
        if not 0 <= chosen < len(completions):
            raise DataFormatError(
                f"{where}: chosen_completion {chosen} is out of range for "
                f"{len(completions)} completions"
            )
    human = raw.get("human_completion")
    human_text = None
    if human is not None:
        if not isinstance(human, dict):
            raise DataFormatError(f"{where}: human_completion must be an object or null")
        human_text = _require(human, "text", str, f"{where}: human_completion")
    return PRM800KStep(tuple(completions), chosen, human_text)


def load_prm800k(path: str | os.PathLike[str]) -> Iterator[PRM800KRecord]:
    """Raw PRM800K records (phase 1 or phase 2, one labelled solution per line)."""
    for line, obj in read_jsonl(path):
        yield PRM800KRecord.from_json(obj, line=line, source=os.fspath(path))


# ----------------------------------------------------------------------------------------------
# Math-Shepherd


@dataclass(frozen=True)
class MathShepherdRecord:
    """One Math-Shepherd solution with a ``+`` / ``-`` label per step.

    ``steps`` lose their ``Step k:`` prefix and the ``ки`` tag; calculator annotations are kept
    as they are in the data.
    """

    prompt: str
    steps: tuple[str, ...]
    labels: tuple[int, ...]
    task: str | None = None
    line: int | None = None

    @classmethod
    def from_json(
        cls, obj: Mapping[str, Any], *, line: int | None = None, source: str | None = None
    ) -> MathShepherdRecord:
        where = _where(source, line)
        text = _require(obj, "input", str, where)
        labelled = _require(obj, "label", str, where)
        segments = text.split(MATH_SHEPHERD_TAG)
        num_tags = len(segments) - 1
        if num_tags == 0:
            raise DataFormatError(f"{where}: input has no step tag {MATH_SHEPHERD_TAG!r}")
        if segments[-1].strip():
            raise DataFormatError(
                f"{where}: input has text after the last step tag: {segments[-1].strip()!r:.60}"
            )
        if MATH_SHEPHERD_TAG in labelled:
            raise DataFormatError(f"{where}: label still holds a step tag {MATH_SHEPHERD_TAG!r}")
        implied = len(text) - len(labelled)  # each two-character tag became one label character
        if implied != num_tags:
            raise DataFormatError(
                f"{where}: mismatched step tags and labels: input has {num_tags} "
                f"{MATH_SHEPHERD_TAG!r} tags but the label text implies {implied} labels"
            )
        labels = []
        position = 0
        for k, segment in enumerate(segments[:-1], start=1):
            if labelled[position : position + len(segment)] != segment:
                raise DataFormatError(f"{where}: label text differs from input before step tag {k}")
            position += len(segment)
            mark = labelled[position]
            if mark not in "+-":
                raise DataFormatError(f"{where}: step {k} is labelled {mark!r}, not '+' or '-'")
            labels.append(1 if mark == "+" else 0)
            position += 1
        if labelled[position:] != segments[-1]:
            raise DataFormatError(f"{where}: label text differs from input after the last tag")
        first = segments[0]
        start = _FIRST_STEP.search(first)
        if start is None:
            raise DataFormatError(f"{where}: cannot find 'Step 1:' after the question")
        prompt = first[: start.start()].strip()
        raw_steps = [first[start.start() :], *segments[1:-1]]
        steps = []
        for k, raw in enumerate(raw_steps, start=1):
            step = raw.strip()
            prefix = _STEP_PREFIX.match(step)
            if prefix is not None:
                step = step[prefix.end() :].strip()
            if not step:
                raise DataFormatError(f"{where}: step {k} is empty")
            steps.append(step)
        if not prompt:
            raise DataFormatError(f"{where}: the question before 'Step 1:' is empty")
        return cls(prompt, tuple(steps), tuple(labels), _optional(obj, "task", str, where), line)

    def prm_example(self) -> PRMExample:
        return PRMExample(self.prompt, self.steps, self.labels)

    def sft_example(self) -> SFTExample | None:
        """The solution as a worked example when every step is labelled ``+`` and the last one
        states "The answer is ..."; else ``None``."""
        if not all(self.labels):
            return None
        answer = extract_answer(self.steps[-1], style="answer_is")
        if answer is None:
            return None
        return SFTExample(self.prompt, self.steps, answer)


def load_math_shepherd(path: str | os.PathLike[str]) -> Iterator[MathShepherdRecord]:
    """Math-Shepherd records from a JSON Lines file (``{"input", "label", "task"}``)."""
    for line, obj in read_jsonl(path):
        yield MathShepherdRecord.from_json(obj, line=line, source=os.fspath(path))
