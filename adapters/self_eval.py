"""Self-evaluation as a verifier: the policy judges its own partial solution (MCTS-DPO).

MCTS-DPO (Xie et al., "Monte Carlo Tree Search Boosts Reasoning via Iterative Preference
Learning", arXiv 2405.00451; ``docs/algorithms.md`` section 4) scores every new node of its
step-level MCTS by asking the policy itself whether the partial solution heads the right way.
The judging prompt holds the question, a reference answer or solution as a hint, the steps so
far, and a multiple-choice question such as "(A) correct (B) incorrect"; the node's score is the
probability the model puts on the "correct" choice at the next token. ``MCTSDPOSearch``
(``treesearch.train.mcts_dpo``) then divides it by ``max(parent depth - 3, 1)``
(``depth_discount_offset``) and adds the outcome at terminal nodes.

:class:`SelfEvaluationVerifier` builds that prompt from a ``str.format`` template with the fields
``{question}`` (``state.question``), ``{solution}`` (the content of the steps so far, without
their separators, joined by newlines; blank steps skipped) and optionally ``{hint}``
(``hint_fn(state)``, e.g. the reference answer). It reads the model's next-token distribution
after the prompt and returns

    score = sum p(good) / (sum p(good) + sum p(bad))

over the label tokens ``good`` and ``bad`` (each must be a single token of the tokenizer), so the
score lies in [0, 1]. The released code (YuxiXie/MCTS-DPO, ``search_config.py``) instead takes
the unnormalised ``sum p(correct tokens)`` under the full softmax at the first generated choice
token; normalising over the two answers removes the mass the model puts elsewhere, which a
model that is not yet a good judge spreads widely.

:data:`DEFAULT_TEMPLATE` follows the released ``HINTED_EVAL_PROMPT`` (question, ``EXAMPLE
ANSWER`` hint, ``PROPOSED SOLUTION``, the question whether it is heading in the correct
direction), with the choices ordered "(A) correct (B) incorrect" to match the default labels.
Subword tokenizers rarely write ``"(A)"`` as one token: end the template with ``"The answer is
("`` and pass ``good=("A",), bad=("B",)``, or pass the tokens the tokenizer uses after the
template's last word (e.g. ``" A"``).

Each state is read whole (no KV reuse: the template's text after ``{solution}`` differs from
node to node, and in the online loop the model changes between searches, so nothing is cached
across calls). Batches are left-padded with an attention mask and explicit positions, so a
state's score does not depend on the batch it is in.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Sequence
from typing import Any

import torch

from .kvcache import check_tokenizer_and_reuse, forward_rows, prepare_model
from .verifiers import single_token

__all__ = ["DEFAULT_TEMPLATE", "SelfEvaluationVerifier"]

DEFAULT_TEMPLATE = (
    "QUESTION: {question}\n\n"
    "EXAMPLE ANSWER: {hint}\n\n"
    "PROPOSED SOLUTION:\n{solution}\n\n"
    "QUESTION: Evaluate if the proposed solution is logically heading in the correct direction "
    "based on the example answer.\n"
    "Answer Choices: (A) correct (B) incorrect\n\n"
    "ANSWER: The answer is "
)

_FIELDS = ("question", "solution", "hint")
_REQUIRED = ("question", "solution")


def _template_fields(template: str) -> set[str]:
    """The replacement fields of a ``str.format`` template (``ValueError`` for unknown or
    missing fields, positional fields, attribute/index access and malformed braces)."""
    if not isinstance(template, str):
        raise TypeError(f"template must be a str, got {type(template).__name__}")
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"template is not a valid str.format template: {exc}") from None
    fields: set[str] = set()
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if name not in _FIELDS:
            shown = "{" + name + "}" if name else "{} (a positional field)"
            raise ValueError(
                f"template has the unknown field {shown}; the fields are "
                + ", ".join("{" + f + "}" for f in _FIELDS)
            )
        if spec or conversion:
            raise ValueError(f"template field {{{name}}} must not carry a format spec or !r/!s")
        fields.add(name)
    missing = [f for f in _REQUIRED if f not in fields]
    if missing:
        raise ValueError("template must contain " + " and ".join("{" + f + "}" for f in missing))
    return fields


class SelfEvaluationVerifier:
    """The policy's own verdict on a partial solution, as a ``Verifier`` (module docstring).

    Args:
        model: a causal LM (usually the policy itself).
        tokenizer: its tokenizer; every entry of ``good`` and ``bad`` must encode to exactly
            one token (``ValueError`` naming the entry otherwise).
        template: a ``str.format`` template with ``{question}``, ``{solution}`` and optionally
            ``{hint}`` (:data:`DEFAULT_TEMPLATE` is the paper's judging prompt). It is
            tokenized with the tokenizer's special tokens (BOS); put any chat markup in the
            template itself.
        good, bad: the label tokens of the "correct" and "incorrect" answers; their
            probabilities are summed.
        hint_fn: ``f(state) -> str`` filling ``{hint}`` (e.g. the reference answer); required
            exactly when the template has ``{hint}``.
        batch_size: states per forward pass.
        device: where the model runs (``None``: where its parameters are; otherwise it is
            moved there).

    ``score(states)`` returns one float in [0, 1] per
    :class:`~treesearch.adapters.state.ReasoningState` (any state with ``.question`` and
    ``.step_texts`` works).
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        template: str,
        good: Sequence[str] = ("(A)",),
        bad: Sequence[str] = ("(B)",),
        hint_fn: Callable[[Any], str] | None = None,
        batch_size: int = 16,
        device: object = None,
    ) -> None:
        check_tokenizer_and_reuse(tokenizer, False)
        fields = _template_fields(template)
        if hint_fn is not None and not callable(hint_fn):
            raise TypeError(f"hint_fn must be callable or None, got {type(hint_fn).__name__}")
        if "hint" in fields and hint_fn is None:
            raise ValueError("the template has a {hint} field, so pass hint_fn(state) -> str")
        if "hint" not in fields and hint_fn is not None:
            raise ValueError("hint_fn is given but the template has no {hint} field to fill")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
        self.good_ids = _label_tokens(tokenizer, good, "good")
        self.bad_ids = _label_tokens(tokenizer, bad, "bad")
        shared = set(self.good_ids) & set(self.bad_ids)
        if shared:
            words = [w for w, i in zip(good, self.good_ids, strict=True) if i in shared]
            raise ValueError(f"the label tokens {words} are both good and bad")
        if device is None:
            first = next(iter(model.parameters()), None) if hasattr(model, "parameters") else None
            device = first.device if first is not None else "cpu"
        self.model, self.device = prepare_model(model, device, None)
        vocab = getattr(getattr(self.model, "config", None), "vocab_size", None)
        top = max((*self.good_ids, *self.bad_ids))
        if isinstance(vocab, int) and top >= vocab:
            raise ValueError(
                f"label token id {top} is outside the model's vocabulary of {vocab} "
                "(resize_token_embeddings after adding tokens)"
            )
        self.tokenizer = tokenizer
        self.template = template
        self.hint_fn = hint_fn
        self.batch_size = batch_size
        pad = getattr(tokenizer, "pad_token_id", None)
        if pad is None:
            pad = getattr(tokenizer, "eos_token_id", None)
        self.pad_id = int(pad) if pad is not None else 0
        self.forward_passes = 0
        self.tokens_processed = 0

    # ------------------------------------------------------------------ Verifier protocol
    def score(self, states: Sequence[Any]) -> list[float]:
        """``p(good) / (p(good) + p(bad))`` at the next token after each state's prompt."""
        if isinstance(states, (str, bytes)) or not hasattr(states, "__iter__"):
            raise TypeError(f"score takes a sequence of states, got {type(states).__name__}")
        prompts = [self.prompt(s, index=i) for i, s in enumerate(states)]
        unique = list(dict.fromkeys(prompts))
        ids = [self._encode(p) for p in unique]
        # Similar lengths share a batch, so little of each forward pass is padding.
        order = sorted(range(len(unique)), key=lambda k: len(ids[k]))
        scores: dict[str, float] = {}
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            values = self._score_ids([ids[k] for k in chunk])
            scores.update((unique[k], v) for k, v in zip(chunk, values, strict=True))
        return [scores[p] for p in prompts]

    def prompt(self, state: Any, *, index: int = 0) -> str:
        """The judging prompt of ``state`` (the template filled in)."""
        question = getattr(state, "question", None)
        texts = getattr(state, "step_texts", None)
        if not isinstance(question, str) or texts is None:
            raise TypeError(
                "SelfEvaluationVerifier scores states with .question (str) and .step_texts, "
                f"such as ReasoningState; state {index} is a {type(state).__name__}"
            )
        steps = []
        for k, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"step {k} of state {index} is a {type(text).__name__}, not text")
            if text.strip():
                steps.append(text)
        values = {"question": question, "solution": "\n".join(steps)}
        if self.hint_fn is not None:
            hint = self.hint_fn(state)
            if not isinstance(hint, str):
                raise TypeError(
                    f"hint_fn must return a str, got {type(hint).__name__} for state {index}"
                )
            values["hint"] = hint
        return self.template.format(**values)

    # ------------------------------------------------------------------ internals
    def _encode(self, prompt: str) -> tuple[int, ...]:
        ids = tuple(int(i) for i in self.tokenizer(prompt, add_special_tokens=True)["input_ids"])
        if not ids:
            raise ValueError(f"the judging prompt {prompt!r} encodes to no tokens")
        return ids

    def _score_ids(self, rows: list[tuple[int, ...]]) -> list[float]:
        output, _ = forward_rows(
            self.model,
            [(None, r) for r in rows],
            device=self.device,
            pad_id=self.pad_id,
            logits_to_keep=1,
        )
        self.forward_passes += 1
        self.tokens_processed += sum(len(r) for r in rows)
        # Left padding: every row's last real token sits in the last column.
        logits = output.logits[:, -1, :].float()
        good = torch.logsumexp(logits[:, list(self.good_ids)], dim=-1)
        both = torch.logsumexp(logits[:, [*self.good_ids, *self.bad_ids]], dim=-1)
        return torch.exp(good - both).clamp(0.0, 1.0).tolist()


def _label_tokens(tokenizer: Any, words: Sequence[str], what: str) -> tuple[int, ...]:
    if isinstance(words, str) or not isinstance(words, Sequence):
        raise TypeError(f"{what} must be a sequence of label strings, got {words!r}")
    if not words:
        raise ValueError(f"{what} needs at least one label token")
    ids = []
    for word in words:
        if not isinstance(word, str) or not word:
            raise TypeError(f"{what} label tokens must be non-empty str, got {word!r}")
        ids.append(single_token(tokenizer, word, f"the {what} label"))
    if len(set(ids)) != len(ids):
        raise ValueError(f"{what} lists the same token twice: {list(words)}")
    return tuple(ids)
