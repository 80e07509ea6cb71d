"""Final-answer extraction and equivalence for math reasoning output.

The grading half of test-time search with a verifier (Snell et al., arXiv 2408.03314; the
canonicalisation that huggingface/search-and-learn does in ``src/sal/utils/math.py``): weighted
best-of-N and majority voting group solutions by their final answer, so answers written
differently (``0.5``, ``\\frac{1}{2}``, ``\\dfrac12``, ``1/2``) must compare equal.

Formats understood by :func:`extract_answer`:

* GSM8K (Cobbe et al., arXiv 2110.14168): the last ``#### N`` line;
* MATH (Hendrycks et al., arXiv 2103.03874): the last complete ``\\boxed{...}`` or ``\\fbox{...}``
  (nested braces), or ``\\boxed 5``;
* PRM800K solutions (Lightman et al., arXiv 2305.20050): the line after ``# Answer``;
* "The answer is N" (Math-Shepherd, chain-of-thought prompts);
* the last number in the text.

Numbers are compared exactly with :class:`fractions.Fraction`: integers, decimals, thousands
separators, signs (ASCII and the Unicode minus), ``%``, currency signs, a few trailing unit words,
``a/b``, ``\\frac{a}{b}`` / ``\\dfrac34`` / ``\\tfrac``, and mixed numbers (``2 1/2``,
``1\\frac{4}{5}``). Anything else is compared as a lightly normalised LaTeX string.

Model text is never evaluated: no ``eval``, ``exec`` or computer-algebra parsing. Every function
runs in time linear in its input (no nested quantifiers, no repeated rescans), so adversarial
output such as a million-character string or a million nested braces returns quickly.
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Literal

__all__ = [
    "AnswerStyle",
    "answers_match",
    "extract_answer",
    "extract_boxed",
    "normalize_answer",
    "parse_number",
]

AnswerStyle = Literal["auto", "gsm8k", "boxed", "answer_heading", "answer_is", "last_number"]
_STYLES = ("auto", "gsm8k", "boxed", "answer_heading", "answer_is", "last_number")

# Strings longer than this are not parsed as numbers: Fraction arithmetic on huge integers is
# slow, and Python refuses int() on more than 4300 digits anyway.
MAX_NUMBER_CHARS = 400
# Exponents in 1.5e3 style are accepted up to this size, so "1e999999" is not a number.
MAX_EXPONENT = 100
# How many layers of wrappers (\boxed{\text{...}}, $...$) normalisation peels at most.
_MAX_UNWRAP = 8
# Lists of numbers longer than this are compared as strings, not element by element.
_MAX_SEQUENCE_CHARS = 4000

# The Unicode minus and its small and full-width forms; dashes are left alone ("pages 3–5").
_MINUS_SIGNS = "\u2212\ufe63\uff0d"

_GSM8K_MARK = re.compile(r"####[ \t]*([^\n]*)")
_ANSWER_HEADING = re.compile(r"^#[ \t]*Answer[ \t]*$", re.MULTILINE)
_ANSWER_IS = re.compile(r"\b(?:the\s+)?(?:final\s+)?answer\s+is\b\s*:?[ \t]*", re.IGNORECASE)
_BOX_COMMAND = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")
_DIGITS = r"(?:\d{1,3}(?:,\d{3})+|\d+)"
_NUMBER_TOKEN = re.compile(
    rf"(?<![\w.])[-+{_MINUS_SIGNS}]?(?:{_DIGITS}(?:\.\d+)?|\.\d+)(?:/\d+)?(?![\w])"
)
_LEADING_NUMBER = re.compile(
    rf"[-+{_MINUS_SIGNS}]?[ \t]*(?:\\\$|\$|£|€)?[ \t]*"
    rf"(?:\d+[ \t]+\d+/\d+(?!\d|[.,]\d)|{_DIGITS}(?:\.\d+)?(?:/\d+)?|\.\d+)(?:[ \t]*(?:\\%|%))?"
)
_BARE_BOX_ARGUMENT = re.compile(r"[^\s$]+")
_BRACE = re.compile(r"(?<!\\)[{}]")

_DECIMAL = re.compile(rf"({_DIGITS})?(?:\.(\d+))?(?:[eE]([-+]?\d{{1,4}}))?")
_SIMPLE_FRACTION = re.compile(r"(\d+)\s*/\s*(\d+)")
_MIXED_FRACTION = re.compile(r"(\d+)\s+(\d+)/(\d+)")
_LATEX_FRACTION = re.compile(r"(\d+)?\\[dt]?frac(?:\{([^{}]*)\}|(\d))(?:\{([^{}]*)\}|(\d))")

# Not after another backslash: "\\\\ " is a matrix row break followed by a space.
_LATEX_SPACING = re.compile(r"(?<!\\)\\(?:!\s*|[,;: ]|q?quad(?![A-Za-z]))")
# Whitespace goes, except one space between a command and a letter ("\\cot x", not "\\cotx").
_WHITESPACE = re.compile(r"(\\[A-Za-z]+)?\s+(?=([A-Za-z])?)")
_CURRENCY = ("\\$", "$", "£", "€")
_LEFT_RIGHT = re.compile(r"\\(?:left|right)(?![A-Za-z])")
_DEGREES = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|°")
_TEXT_COMMAND = re.compile(r"\\(?:text|textbf|textrm|mbox|mathrm|mathbf)\{([^{}]*)\}")
_UNIT_SUFFIX = re.compile(
    r"(?:\s*\\(?:text|mbox|mathrm)\{\s*[A-Za-z][A-Za-z ]*\}|\s+[A-Za-z]{2,}(?:\s+[A-Za-z]{2,})?)"
    r"(?:\^\{?[23]\}?)?$"
)
_VARIABLE_PREFIX = re.compile(r"^[A-Za-z]\s*=\s*(?=\S)")
_FRAC_SHORTHAND = re.compile(r"\\[dt]?frac\s*(\d)\s*(\d)")
_FRAC_NAME = re.compile(r"\\[dt]frac(?![A-Za-z])")


def extract_answer(text: str, *, style: AnswerStyle = "auto") -> str | None:
    """The final answer written in ``text``, as a stripped substring, or ``None``.

    Args:
        text: a model's (or a reference) solution.
        style: ``"gsm8k"`` reads the last ``#### N`` line; ``"boxed"`` the last complete
            ``\\boxed{...}`` / ``\\fbox{...}`` (or ``\\boxed 5``); ``"answer_heading"`` the
            first line after the last PRM800K ``# Answer`` heading; ``"answer_is"`` the text
            after the last "The answer is"; ``"last_number"`` the last number in the text.
            ``"auto"`` tries ``####``, then ``\\boxed``, then a PRM800K ``# Answer`` heading,
            then "The answer is", then the last number.

    Returns:
        The answer as written (compare answers with :func:`answers_match`), or ``None`` when the
        text holds no answer of that style. Never evaluates the text.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, not {type(text).__name__}")
    if style not in _STYLES:
        raise ValueError(f"unknown answer style {style!r}; expected one of {_STYLES}")
    if style == "gsm8k":
        return _extract_gsm8k(text)
    if style == "boxed":
        return extract_boxed(text)
    if style == "answer_heading":
        return _extract_answer_heading(text)
    if style == "answer_is":
        return _extract_answer_is(text)
    if style == "last_number":
        return _extract_last_number(text)
    for extractor in (
        _extract_gsm8k,
        extract_boxed,
        _extract_answer_heading,
        _extract_answer_is,
        _extract_last_number,
    ):
        found = extractor(text)
        if found is not None:
            return found
    return None


def extract_boxed(text: str) -> str | None:
    """The content of the last complete ``\\boxed{...}`` or ``\\fbox{...}`` in ``text``.

    Braces nest (``\\boxed{\\frac{1}{2}}`` gives ``\\frac{1}{2}``); ``\\boxed 5`` gives ``5``. A box
    whose braces never close is skipped in favour of an earlier complete one. One pass over the
    braces, so the time is linear in ``len(text)`` however deep the nesting.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, not {type(text).__name__}")
    commands = list(_BOX_COMMAND.finditer(text))
    if not commands:
        return None
    # Where each box's argument opens: index of its "{", or the start of a bare token.
    box_open: dict[int, int] = {}
    bare: list[tuple[int, str]] = []
    for match in commands:
        i = match.end()
        while i < len(text) and text[i] in " \t":
            i += 1
        if i < len(text) and text[i] == "{":
            box_open[i] = match.start()
        elif i > match.end() or (i < len(text) and text[i].isdigit()):
            token = _BARE_BOX_ARGUMENT.match(text, i)  # \boxed 5, \boxed5$
            if token is not None:
                bare.append((match.start(), token.group(0).rstrip(".,")))
    best_start = -1
    best: str | None = None
    if box_open:
        stack: list[int] = []
        for brace in _BRACE.finditer(text, min(box_open)):
            position = brace.start()
            if brace.group(0) == "{":
                stack.append(position)
            elif stack:
                opened = stack.pop()
                box_start = box_open.get(opened)
                if box_start is not None and box_start > best_start:
                    best_start, best = box_start, text[opened + 1 : position]
    for box_start, argument in bare:
        if box_start > best_start and argument:
            best_start, best = box_start, argument
    if best is None:
        return None
    return best.strip() or None  # an empty \boxed{} holds no answer


def _extract_gsm8k(text: str) -> str | None:
    found = None
    for match in _GSM8K_MARK.finditer(text):
        found = match.group(1)
    if found is None:
        return None
    found = found.strip()
    return found or None


def _extract_answer_heading(text: str) -> str | None:
    last = None
    for match in _ANSWER_HEADING.finditer(text):
        last = match
    if last is None:
        return None
    for line in text[last.end() :].split("\n", 64)[:64]:
        if line.strip():
            return line.strip()
    return None


def _extract_answer_is(text: str) -> str | None:
    last = None
    for match in _ANSWER_IS.finditer(text):
        last = match
    if last is None:
        return None
    rest = text[last.end() :].split("\n", 1)[0]
    boxed = extract_boxed(rest)
    if boxed is not None:
        return boxed
    rest = rest.strip()
    number = _LEADING_NUMBER.match(rest)
    if number is not None and number.group(0).strip():
        candidate = number.group(0).strip()
        after = rest[number.end() :]
        if not after or not (after[0].isalnum() or after[0] in "\\^_{"):
            return candidate
    rest = rest.strip().rstrip(".").strip().strip("$").strip().rstrip(".").strip()
    return rest or None


def _extract_last_number(text: str) -> str | None:
    last = None
    for match in _NUMBER_TOKEN.finditer(text):
        last = match
    return last.group(0) if last is not None else None


def parse_number(text: str) -> Fraction | None:
    """The exact value of ``text`` if it is a plain number, else ``None``.

    Accepts an optional sign (``-``, ``+``, ``\u2212``), a currency sign (``$``, ``\\$``, ``£``,
    ``€``), integers with or without correct thousands separators, decimals, ``1.5e3`` (exponent
    at most 100), a trailing ``%`` or ``\\%`` (dropped: ``50%`` is 50), a degree sign, a trailing
    unit (``\\text{ cm}^2``, ``5 apples``), ``a/b``, ``\\frac{a}{b}`` with decimal parts,
    ``\\dfrac34`` and mixed numbers ``2 1/2`` and ``1\\frac{4}{5}``. A zero denominator, anything
    longer than ``MAX_NUMBER_CHARS`` characters and anything else give ``None``.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, not {type(text).__name__}")
    if len(text) > MAX_NUMBER_CHARS:
        return None
    negative, body = _split_number_decorations(text)
    if not body:
        return None
    value = _parse_unsigned(body)
    if value is None:
        return None
    return -value if negative else value


def _split_number_decorations(text: str) -> tuple[bool, str]:
    """``(negative, body)``: ``text`` without its sign, wrappers, currency, percent and unit."""
    s = text.strip()
    for minus in _MINUS_SIGNS:
        s = s.replace(minus, "-")
    s = _LATEX_SPACING.sub("", s)
    s = _unwrap(s)
    s = _DEGREES.sub("", s).strip()
    if s.endswith("\\%"):
        s = s[:-2].rstrip()
    elif s.endswith("%"):
        s = s[:-1].rstrip()
    s = _UNIT_SUFFIX.sub("", s).strip()
    if s.endswith(".") and not s.endswith(".."):
        s = s[:-1].rstrip()
    negative = False
    seen_sign = seen_currency = False
    while s:
        if not seen_sign and s.startswith(("-", "+")):
            negative, seen_sign, s = s[0] == "-", True, s[1:].lstrip()
        elif not seen_currency and s.startswith(_CURRENCY):
            prefix = next(c for c in _CURRENCY if s.startswith(c))
            seen_currency, s = True, s[len(prefix) :].lstrip()
        else:
            break
    if s.startswith("{") and s.endswith("}") and "{" not in s[1:-1]:
        s = s[1:-1].strip()
    return negative, s


def _parse_unsigned(s: str) -> Fraction | None:
    if _DECIMAL.fullmatch(s):
        return _parse_decimal(s)
    match = _MIXED_FRACTION.fullmatch(s)
    if match is not None:
        part = _ratio(Fraction(int(match.group(2))), Fraction(int(match.group(3))))
        return None if part is None else int(match.group(1)) + part
    match = _SIMPLE_FRACTION.fullmatch(s)
    if match is not None:
        return _ratio(Fraction(int(match.group(1))), Fraction(int(match.group(2))))
    match = _LATEX_FRACTION.fullmatch(s.replace(" ", ""))
    if match is not None:
        whole, numerator = match.group(1), match.group(2) or match.group(3)
        denominator = match.group(4) or match.group(5)
        num = _parse_signed_plain(numerator)
        den = _parse_signed_plain(denominator)
        if num is None or den is None:
            return None
        part = _ratio(num, den)
        if part is None:
            return None
        if whole is None:
            return part
        if part < 0:  # 1\frac{-1}{2} is not a mixed number
            return None
        return int(whole) + part
    return None


def _parse_signed_plain(s: str) -> Fraction | None:
    s = s.strip()
    negative = s.startswith("-")
    if s.startswith(("-", "+")):
        s = s[1:]
    if not s or not _DECIMAL.fullmatch(s):
        return None
    value = _parse_decimal(s)
    if value is None:
        return None
    return -value if negative else value


def _parse_decimal(s: str) -> Fraction | None:
    match = _DECIMAL.fullmatch(s)
    if match is None:
        return None
    whole, frac, exponent = match.group(1), match.group(2), match.group(3)
    if whole is None and frac is None:
        return None
    value = Fraction(int(whole.replace(",", "")) if whole else 0)
    if frac:
        value += Fraction(int(frac), 10 ** len(frac))
    if exponent is not None:
        power = int(exponent)
        if abs(power) > MAX_EXPONENT:
            return None
        value *= Fraction(10) ** power
    return value


def _ratio(numerator: Fraction, denominator: Fraction) -> Fraction | None:
    if denominator == 0:
        return None
    return numerator / denominator


def _unwrap(s: str) -> str:
    """Peel ``$...$``, ``\\(...\\)``, ``\\boxed{}`` and ``\\text{}``, a bounded number of times."""
    for _ in range(_MAX_UNWRAP):
        before = s
        s = s.strip()
        if len(s) >= 2 and s.startswith("$") and s.endswith("$"):
            s = s.strip("$").strip()
        if s.startswith("\\(") and s.endswith("\\)"):
            s = s[2:-2].strip()
        if s.startswith("\\[") and s.endswith("\\]"):
            s = s[2:-2].strip()
        if _BOX_COMMAND.match(s):
            inner = extract_boxed(s)
            if inner is not None:
                s = inner
        match = _TEXT_COMMAND.fullmatch(s)
        if match is not None:
            s = match.group(1).strip()
        if s == before:
            break
    return s


def normalize_answer(answer: str | None) -> str | None:
    """A canonical string for ``answer``: equal strings mean equivalent answers.

    Numbers become their exact value, ``"n"`` or ``"n/d"`` in lowest terms (``"0.50"``,
    ``"\\frac{1}{2}"`` and ``"1/2"`` all give ``"1/2"``). Other answers lose whitespace,
    ``$`` delimiters, ``\\left`` / ``\\right``, spacing macros, degree signs and ``\\text{}`` /
    ``\\mbox{}`` wrappers; ``\\dfrac`` and ``\\tfrac`` become ``\\frac`` and ``\\frac34`` becomes
    ``\\frac{3}{4}``; a leading single-letter assignment (``x = 5``) is dropped; tuples and lists of
    numbers are normalised element by element. Case is kept. ``None`` or an empty answer gives
    ``None``.
    """
    if answer is None:
        return None
    if not isinstance(answer, str):
        raise TypeError(f"answer must be a str or None, not {type(answer).__name__}")
    s = answer.strip()
    if not s:
        return None
    s = _VARIABLE_PREFIX.sub("", _unwrap(s))
    value = parse_number(s)
    if value is not None:
        return _format_fraction(value)
    s = _LATEX_SPACING.sub("", s)
    s = _LEFT_RIGHT.sub("", s)
    s = _DEGREES.sub("", s)
    s = _TEXT_COMMAND.sub(lambda m: m.group(1), s)
    s = _FRAC_NAME.sub(r"\\frac", s)
    s = _FRAC_SHORTHAND.sub(r"\\frac{\1}{\2}", s)
    s = s.replace("\\$", "").replace("$", "")
    s = _WHITESPACE.sub(_keep_command_space, s)
    s = s.rstrip(".")
    if not s:
        return None
    return _normalize_sequence(s) or s


def _keep_command_space(match: re.Match[str]) -> str:
    command = match.group(1) or ""
    return command + " " if command and match.group(2) else command


def _normalize_sequence(s: str) -> str | None:
    """``(0.5,2)`` and ``(\\frac{1}{2},2)`` alike: a bracketed or bare list of plain numbers."""
    opener, closer = "", ""
    if len(s) >= 2 and s[0] in "([{" and s[-1] in ")]}":
        opener, closer, s = s[0], s[-1], s[1:-1]
    if "," not in s or len(s) > _MAX_SEQUENCE_CHARS:
        return None
    parts = _split_top_level_commas(s)
    if parts is None or len(parts) < 2:
        return None
    canonical = []
    for part in parts:
        value = parse_number(part)
        if value is None:
            return None
        canonical.append(_format_fraction(value))
    return opener + ",".join(canonical) + closer


def _split_top_level_commas(s: str) -> list[str] | None:
    parts: list[str] = []
    depth = 0
    start = 0
    for i, ch in enumerate(s):
        if ch in "{([":
            depth += 1
        elif ch in "})]":
            depth -= 1
            if depth < 0:
                return None
        elif ch == "," and depth == 0:
            parts.append(s[start:i])
            start = i + 1
    parts.append(s[start:])
    return parts


def _format_fraction(value: Fraction) -> str:
    if value.denominator == 1:
        return str(value.numerator)
    return f"{value.numerator}/{value.denominator}"


def answers_match(predicted: str | None, reference: str | None) -> bool:
    """Whether two extracted answers are equivalent (exactly; ``0.333`` is not ``1/3``).

    Both are put through :func:`normalize_answer`; numbers compare by exact value, everything
    else by the normalised string. A missing answer (``None`` or empty) matches nothing.
    """
    left = normalize_answer(predicted)
    right = normalize_answer(reference)
    return left is not None and right is not None and left == right
