"""Text reasoning states: a prompt and a sequence of reasoning steps, as text and token ids.

The state that step-level LLM search works on (Snell et al., arXiv 2408.03314, section 5; the
step-level nodes of TS-LLM, arXiv 2309.17179): the prompt, then the steps generated so far.
Every step keeps the exact token ids the policy generated, so a child's token sequence is its
parent's plus the new step's tokens and KV caches keyed by ``state.key`` (the token ids) can be
reused from parent to child (``docs/design.md`` section 4).

* :class:`Step` is a ``str`` (the step's text, so it is the action a tree stores and a trace
  exports) that also carries its token ids, how it ended and its content without the separator.
* :class:`ReasoningState` is the immutable State: ``to_play`` 0, ``key`` the token-id tuple,
  no legal-action list (actions are open-ended: a :class:`~treesearch.interfaces.Policy`
  proposes them), terminal once a step ended with end-of-sequence or ``max_steps`` steps exist,
  and no exact terminal value (a verifier scores it).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any, Literal

__all__ = ["ReasoningState", "Step", "StepStop"]

StepStop = Literal["separator", "eos", "length", "text"]
_STOPS = ("separator", "eos", "length", "text")


class Step(str):
    """One reasoning step: a ``str`` holding its text, plus the tokens that produced it.

    Equality and hashing are those of the text, so a Step is an ordinary string action for the
    tree, for ``to_json`` and for traces (which store it as plain text).

    Attributes:
        token_ids: every token the policy generated for the step, its stop token included.
        stop: how the step ended: ``"separator"`` (the step separator token), ``"eos"``
            (end of sequence: the solution is complete), ``"length"`` (cut at the policy's
            ``max_step_tokens`` or at the token budget) or ``"text"`` (given as plain text and
            tokenized, see :meth:`ReasoningState.step`).
        content: the text without the step separator (what a verifier reads).

    The text is the decoded tokens without the end-of-sequence token (the separator is kept, so
    ``prompt + "".join(steps)`` is the generated text).
    """

    token_ids: tuple[int, ...]
    stop: StepStop
    content: str

    def __new__(
        cls,
        text: str,
        token_ids: Sequence[int] = (),
        stop: StepStop = "text",
        content: str | None = None,
    ) -> Step:
        if not isinstance(text, str):
            raise TypeError(f"a step's text must be a str, got {type(text).__name__}")
        if stop not in _STOPS:
            raise ValueError(f"Step.stop must be one of {_STOPS}, got {stop!r}")
        ids = _token_tuple(token_ids, "Step.token_ids")
        if not ids:
            raise ValueError(f"a step needs at least one token id (text {text!r})")
        obj = super().__new__(cls, text)
        obj.__dict__.update(
            token_ids=ids, stop=stop, content=text if content is None else str(content)
        )
        return obj

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Step is immutable")

    def __reduce__(self) -> tuple[Any, ...]:
        return (Step, (str(self), self.token_ids, self.stop, self.content))

    def __repr__(self) -> str:
        return f"Step({str.__repr__(self)}, {len(self.token_ids)} tokens, stop={self.stop!r})"


def _token_tuple(ids: object, what: str) -> tuple[int, ...]:
    if isinstance(ids, (str, bytes)) or not hasattr(ids, "__iter__"):
        raise TypeError(f"{what} must be a sequence of ints, got {type(ids).__name__}")
    out = []
    for i in ids:  # type: ignore[attr-defined]
        if isinstance(i, bool) or not hasattr(i, "__index__"):
            raise TypeError(f"{what} must hold ints, got {type(i).__name__} {i!r}")
        value = int(i)
        if value < 0:
            raise ValueError(f"{what} must hold non-negative token ids, got {value}")
        out.append(value)
    return tuple(out)


class ReasoningState:
    """A prompt plus the reasoning steps generated so far (immutable).

    Args:
        question: the problem as plain text (verifiers build their own input from it; it is
            often shorter than ``prompt_text``, which may carry a chat template).
        prompt_text: the text the policy continues.
        prompt_ids: ``prompt_text`` as the policy's token ids.
        steps: the steps so far.
        max_steps: the state is terminal once it has this many steps (``None``: no limit).
        tokenizer: optional; lets :meth:`step` accept plain-text steps (it tokenizes them).

    Prefer :meth:`from_prompt`. Two states are equal when their token ids (``key``) are equal.
    """

    __slots__ = ("_key", "max_steps", "prompt_ids", "prompt_text", "question", "steps", "tokenizer")

    question: str
    prompt_text: str
    prompt_ids: tuple[int, ...]
    steps: tuple[Step, ...]
    max_steps: int | None
    tokenizer: Any
    _key: tuple[int, ...]

    def __init__(
        self,
        question: str,
        prompt_text: str,
        prompt_ids: Sequence[int],
        steps: Sequence[Step] = (),
        *,
        max_steps: int | None = None,
        tokenizer: Any = None,
    ) -> None:
        for name, value in (("question", question), ("prompt_text", prompt_text)):
            if not isinstance(value, str):
                raise TypeError(f"{name} must be a str, got {type(value).__name__}")
        ids = _token_tuple(prompt_ids, "prompt_ids")
        if not ids:
            raise ValueError("prompt_ids must not be empty (the model needs a token to continue)")
        steps = tuple(steps)
        for k, s in enumerate(steps):
            if not isinstance(s, Step):
                raise TypeError(
                    f"step {k} must be a treesearch.adapters.state.Step, got {type(s).__name__}"
                )
        if max_steps is not None:
            if isinstance(max_steps, bool) or not isinstance(max_steps, int):
                raise TypeError(f"max_steps must be an int or None, got {max_steps!r}")
            if max_steps < 1:
                raise ValueError(f"max_steps must be >= 1, got {max_steps}")
            if len(steps) > max_steps:
                raise ValueError(f"{len(steps)} steps exceed max_steps={max_steps}")
        for k, s in enumerate(steps[:-1]):
            if s.stop == "eos":
                raise ValueError(f"step {k} ended with end-of-sequence but is not the last step")
        key = ids
        for s in steps:
            key += s.token_ids
        set_ = object.__setattr__
        set_(self, "question", question)
        set_(self, "prompt_text", prompt_text)
        set_(self, "prompt_ids", ids)
        set_(self, "steps", steps)
        set_(self, "max_steps", max_steps)
        set_(self, "tokenizer", tokenizer)
        set_(self, "_key", key)

    @classmethod
    def from_prompt(
        cls,
        prompt: str,
        tokenizer: Any,
        *,
        question: str | None = None,
        max_steps: int | None = None,
        add_special_tokens: bool = True,
    ) -> ReasoningState:
        """The root state for ``prompt``, tokenized with ``tokenizer``.

        Args:
            prompt: the text the policy continues (for chat models, the output of
                ``tokenizer.apply_chat_template(..., tokenize=False,
                add_generation_prompt=True)``; pass ``add_special_tokens=False`` then, since the
                template already holds the BOS token).
            tokenizer: the policy model's Hugging Face tokenizer.
            question: the plain problem text for verifiers (default: ``prompt``).
            max_steps: terminal after this many steps.
            add_special_tokens: let the tokenizer add its BOS token.
        """
        if not isinstance(prompt, str):
            raise TypeError(f"prompt must be a str, got {type(prompt).__name__}")
        if not prompt and not add_special_tokens:
            raise ValueError("an empty prompt needs add_special_tokens=True (a BOS token)")
        ids = tokenizer(prompt, add_special_tokens=add_special_tokens)["input_ids"]
        if not ids:
            raise ValueError(
                f"the tokenizer turned the prompt {prompt!r} into no tokens; give a non-empty "
                "prompt or a tokenizer that adds a BOS token"
            )
        return cls(
            prompt if question is None else question,
            prompt,
            ids,
            max_steps=max_steps,
            tokenizer=tokenizer,
        )

    # ------------------------------------------------------------------ State protocol
    @property
    def to_play(self) -> int:
        return 0

    @property
    def key(self) -> Hashable:
        """The token ids of the prompt and every step (the KV-cache key)."""
        return self._key

    @property
    def token_ids(self) -> tuple[int, ...]:
        return self._key

    def legal_actions(self) -> tuple[()]:
        return ()

    def is_terminal(self) -> bool:
        if self.steps and self.steps[-1].stop == "eos":
            return True
        return self.max_steps is not None and len(self.steps) >= self.max_steps

    def terminal_value(self) -> float | None:
        return None

    def step(self, action: object) -> ReasoningState:
        """The state with ``action`` appended.

        A :class:`Step` (what the policies propose) is appended with its own token ids. A plain
        ``str`` is tokenized with the state's tokenizer (``ValueError`` without one) and gets
        ``stop="text"``; re-tokenizing text can differ from the tokens a model generated, so
        searches should keep the policy's Step objects.
        """
        if self.is_terminal():
            raise ValueError(f"cannot step from a terminal state: {self!r}")
        if isinstance(action, Step):
            step = action
        elif isinstance(action, str):
            if self.tokenizer is None:
                raise ValueError(
                    "this state has no tokenizer, so a plain-text step cannot be tokenized; "
                    "pass a Step (text with token ids) or build the state with from_prompt"
                )
            if not action:
                raise ValueError("a step must not be empty")
            ids = self.tokenizer(action, add_special_tokens=False)["input_ids"]
            step = Step(action, ids, "text")
        else:
            raise TypeError(f"a step must be a str or Step, got {type(action).__name__}")
        return ReasoningState(
            self.question,
            self.prompt_text,
            self.prompt_ids,
            (*self.steps, step),
            max_steps=self.max_steps,
            tokenizer=self.tokenizer,
        )

    # ------------------------------------------------------------------ text
    @property
    def text(self) -> str:
        """The prompt followed by every step's text."""
        return self.prompt_text + "".join(self.steps)

    @property
    def solution_text(self) -> str:
        """Every step's text, without the prompt."""
        return "".join(self.steps)

    @property
    def step_texts(self) -> tuple[str, ...]:
        """Each step's content (its text without the separator): what verifiers read."""
        return tuple(s.content for s in self.steps)

    # ------------------------------------------------------------------ identity
    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("ReasoningState is immutable")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ReasoningState):
            return NotImplemented
        return self._key == other._key and self.max_steps == other.max_steps

    def __hash__(self) -> int:
        return hash(self._key)

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _rebuild,
            (self.question, self.prompt_text, self.prompt_ids, self.steps, self.max_steps),
        )

    def __repr__(self) -> str:
        text = self.text
        if len(text) > 80:
            text = "..." + text[-77:]
        return f"ReasoningState({len(self.steps)} steps, {len(self._key)} tokens: {text!r})"


def _rebuild(
    question: str,
    prompt_text: str,
    prompt_ids: tuple[int, ...],
    steps: tuple[Step, ...],
    max_steps: int | None,
) -> ReasoningState:
    """Unpickle a state (without its tokenizer)."""
    return ReasoningState(question, prompt_text, prompt_ids, steps, max_steps=max_steps)
