"""Hugging Face process and outcome reward models as verifiers, with prefix (KV) reuse.

* :class:`HFPRM`: a process reward model (Lightman et al., "Let's Verify Step by Step", arXiv
  2305.20050; Math-Shepherd, arXiv 2312.08935; Qwen2.5-Math-PRM, arXiv 2501.07301). The
  question and all steps go through the model in one forward pass, each step followed by the
  checkpoint's step tag; step ``k``'s score is read at its tag position. Checkpoint conventions
  are :class:`PRMPreset` records (``PRM_PRESETS``; ``docs/algorithms.md`` sections 1-2):

  ===================  ==========================================================  ==========
  preset               input and score                                             head
  ===================  ==========================================================  ==========
  ``seed``             question, then each step + the tokenizer's ``sep_token``;   LM head
                       ``p(Positive) / (p(Positive) + p(Negative))`` at the tag
                       (MA-RLHF's recipe; the project's own PRM training)
  ``math-shepherd``    ``"{question} "``, steps joined by ``"\\n"``, each + ``ки``;   LM head
                       ``p(+) / (p(+) + p(-))`` at the tag (peiyi9979 checkpoint)
  ``qwen2.5-math-prm``  chat template (system, user = question, assistant = steps     2 classes
                       each + ``<extra_0>``); ``softmax(logits)[1]`` at each tag
  ``value-head``       question, then each step + ``sep_token``; one scalar per      1 output
                       tag, through a sigmoid (ReST-MCTS-style value model)
  ===================  ==========================================================  ==========

  ``qwen2.5-math-prm`` is tested on ``AutoModelForTokenClassification(num_labels=2)`` over a
  tiny Qwen2 config. The real Qwen2.5-Math-PRM checkpoints load with
  ``AutoModel.from_pretrained(path, trust_remote_code=True)``; their custom head returns the
  same ``(batch, length, 2)`` logits and passes ``past_key_values`` to the Qwen2 body, which is
  all this class uses.

* :class:`HFORM`: an outcome reward model: one score for the whole solution, read at its last
  token (a sequence-classification head, a token head, or label words from an LM head).

**Prefix reuse** (``docs/design.md`` section 4): scores and KV caches are kept per prefix
(question plus the first ``k`` steps) in a :class:`~treesearch.adapters.kvcache.KVCacheStore`.
A state whose parent was scored runs only its new step (and tag): the parent's cache is the
prefix and its step scores are kept. Prefixes shared by several states of one call are
computed once. ``kv_reuse=False`` is the naive baseline: every state's whole input, every call.
``tokens_processed`` counts the real tokens run through the model.

Steps are tokenized one at a time (``add_special_tokens=False``) and concatenated with the tag
id, as MA-RLHF builds its training data; where a checkpoint was trained on the joined string,
a token boundary at a step's edges can differ (``docs/algorithms.md`` section 1, pitfall c).
Blank steps the policy created while ending (``stop`` ``"eos"`` or ``"length"``: the model
stopped or was cut before writing anything) are skipped; any other blank step is an error.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import torch

from treesearch.interfaces import Score
from treesearch.search._common import check_aggregation

from .kvcache import (
    CacheEntry,
    KVCacheStore,
    check_tokenizer_and_reuse,
    forward_rows,
    prepare_model,
    row_entry,
)

__all__ = ["HFORM", "HFPRM", "PRM_PRESETS", "PRMPreset", "prm_preset"]

_log = logging.getLogger(__name__)

Aggregation = Literal["last", "min", "prod", "mean"]
_HEADS = ("lm", "classifier", "scalar")
_ACTIVATIONS = ("sigmoid", "identity", "clamp")
_SENTINEL = "\x00treesearch-assistant\x00"


@dataclass(frozen=True, slots=True)
class PRMPreset:
    """How a PRM checkpoint wants its input and where it puts its scores.

    Attributes:
        name: for messages.
        head: ``"lm"`` (label tokens read from the LM head), ``"classifier"`` (a token
            classification head; probability of ``positive_class``) or ``"scalar"`` (one
            output per token, through ``activation``).
        step_tag: the token written after every step, where scores are read; ``None`` means
            the tokenizer's ``sep_token``. It must be a single token.
        good_token, bad_token: the label words of an ``"lm"`` head, single tokens; the score
            is ``p(good) / (p(good) + p(bad))``, a softmax over the two logits.
        positive_class: the class read by a ``"classifier"`` head (softmax over all classes).
        activation: for a ``"scalar"`` head: ``"sigmoid"``, ``"identity"`` (raw value) or
            ``"clamp"`` (clipped to [0, 1], as ReST-MCTS's value model).
        prefix_template: the text before the first step; ``{question}`` is replaced by the
            question. Tokenized with the tokenizer's special tokens (BOS).
        step_joiner: text written before every step after the first (after the previous tag).
        system_prompt: when set, the prefix is the tokenizer's chat template with this system
            message, the question as the user turn, and the start of the assistant turn
            (``prefix_template`` is then ignored).
        strip_steps: strip whitespace around each step's content.
    """

    name: str
    head: Literal["lm", "classifier", "scalar"]
    step_tag: str | None = None
    good_token: str | None = None
    bad_token: str | None = None
    positive_class: int = 1
    activation: Literal["sigmoid", "identity", "clamp"] = "sigmoid"
    prefix_template: str = "{question}"
    step_joiner: str = ""
    system_prompt: str | None = None
    strip_steps: bool = True

    def __post_init__(self) -> None:
        if self.head not in _HEADS:
            raise ValueError(f"PRMPreset.head must be one of {_HEADS}, got {self.head!r}")
        if self.head == "lm" and (not self.good_token or not self.bad_token):
            raise ValueError(f"preset {self.name!r}: an 'lm' head needs good_token and bad_token")
        if self.activation not in _ACTIVATIONS:
            raise ValueError(f"PRMPreset.activation must be one of {_ACTIVATIONS}")
        if isinstance(self.positive_class, bool) or not isinstance(self.positive_class, int):
            raise TypeError("PRMPreset.positive_class must be an int")
        if self.positive_class < 0:
            raise ValueError("PRMPreset.positive_class must be >= 0")
        if "{question}" not in self.prefix_template and self.system_prompt is None:
            raise ValueError("PRMPreset.prefix_template must contain '{question}'")
        if self.step_tag is not None and not self.step_tag:
            raise ValueError("PRMPreset.step_tag must be a non-empty str or None")


PRM_PRESETS: dict[str, PRMPreset] = {
    "seed": PRMPreset("seed", "lm", good_token="Positive", bad_token="Negative"),
    "math-shepherd": PRMPreset(
        "math-shepherd",
        "lm",
        step_tag="ки",
        good_token="+",
        bad_token="-",
        prefix_template="{question} ",
        step_joiner="\n",
    ),
    "qwen2.5-math-prm": PRMPreset(
        "qwen2.5-math-prm",
        "classifier",
        step_tag="<extra_0>",
        positive_class=1,
        system_prompt="Please reason step by step, and put your final answer within \\boxed{}.",
    ),
    "value-head": PRMPreset("value-head", "scalar", activation="sigmoid"),
}


def prm_preset(preset: str | PRMPreset, **overrides: Any) -> PRMPreset:
    """A preset by name (or as given), with fields replaced: ``prm_preset("seed",
    step_tag="<|reserved_special_token_1|>")``."""
    if isinstance(preset, PRMPreset):
        base = preset
    elif isinstance(preset, str):
        if preset not in PRM_PRESETS:
            raise ValueError(f"unknown PRM preset {preset!r}; known: {sorted(PRM_PRESETS)}")
        base = PRM_PRESETS[preset]
    else:
        raise TypeError(f"preset must be a name or a PRMPreset, got {type(preset).__name__}")
    return replace(base, **overrides) if overrides else base


def single_token(tokenizer: Any, text: str, what: str) -> int:
    """The id of ``text`` if the tokenizer writes it as exactly one token (``ValueError``)."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if len(ids) == 1:
        return int(ids[0])
    vocab_id = tokenizer.convert_tokens_to_ids(text)
    unk = getattr(tokenizer, "unk_token_id", None)
    if isinstance(vocab_id, int) and vocab_id >= 0 and vocab_id != unk:
        return vocab_id
    raise ValueError(
        f"{what} {text!r} is not a single token of this tokenizer (it encodes to {len(ids)} "
        "tokens); use the tokenizer the checkpoint was trained with, or add the token "
        "(tokenizer.add_special_tokens / add_tokens, then model.resize_token_embeddings)"
    )


def _aggregate(scores: Sequence[float], how: str) -> float:
    if how == "last":
        return scores[-1]
    if how == "min":
        return min(scores)
    if how == "prod":
        return math.prod(scores)
    return sum(scores) / len(scores)


@dataclass(slots=True)
class _Item:
    """One state to score: its prefix keys and token segments."""

    key: tuple[Hashable, ...]  # (question, content_1, ..., content_n); level j is key[: j + 1]
    segments: list[tuple[int, ...]]  # the prefix (level 0), then one segment per step

    @property
    def level(self) -> int:
        return len(self.segments) - 1


# A row of a forward pass: the cached entry it continues, the item, the first and last level
# it runs, and whether it is a requested state (read its score) or a shared prefix.
_Row = tuple[CacheEntry | None, _Item, int, int, bool]


class _PrefixScorer:
    """Shared engine of :class:`HFPRM` and :class:`HFORM`: scores states from cached prefixes.

    A state at level ``n`` (``n`` steps) is ``n + 1`` token segments (the prefix, then each
    step). Each cached entry covers the segments up to some level and keeps, in ``extra``, the
    result known at that level (``None`` when none: an ORM's intermediate prefix).
    """

    prefix_template: str
    system_prompt: str | None
    step_joiner: str
    strip_steps: bool

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        device: object,
        dtype: object,
        kv_reuse: bool,
        batch_size: int,
        empty_value: float,
        cache_max_entries: int,
        cache_max_tokens: int,
    ) -> None:
        check_tokenizer_and_reuse(tokenizer, kv_reuse)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
        if isinstance(empty_value, bool) or not isinstance(empty_value, (int, float)):
            raise TypeError(f"empty_value must be a number, got {empty_value!r}")
        if not math.isfinite(empty_value):
            raise ValueError(f"empty_value must be finite, got {empty_value}")
        self.model, self.device = prepare_model(model, device, dtype)
        self.tokenizer = tokenizer
        self.kv_reuse = kv_reuse
        self.batch_size = batch_size
        self.empty_value = float(empty_value)
        self.cache = KVCacheStore(max_entries=cache_max_entries, max_tokens=cache_max_tokens)
        pad = getattr(tokenizer, "pad_token_id", None)
        if pad is None:
            pad = getattr(tokenizer, "eos_token_id", None)
        self.pad_id = int(pad) if pad is not None else 0
        self._prefix_cache: dict[str, tuple[int, ...]] = {}
        self._step_cache: dict[tuple[str, bool], tuple[int, ...]] = {}
        self.tokens_processed = 0
        self.padded_tokens = 0
        self.forward_passes = 0

    def reset_counters(self) -> None:
        """Zero ``tokens_processed``, ``padded_tokens`` and ``forward_passes``."""
        self.tokens_processed = 0
        self.padded_tokens = 0
        self.forward_passes = 0

    def _set_format(
        self, prefix_template: str, system_prompt: str | None, step_joiner: str, strip: bool
    ) -> None:
        for name, value in (("prefix_template", prefix_template), ("step_joiner", step_joiner)):
            if not isinstance(value, str):
                raise TypeError(f"{name} must be a str, got {type(value).__name__}")
        if system_prompt is None and "{question}" not in prefix_template:
            raise ValueError("prefix_template must contain '{question}'")
        if system_prompt is not None and not getattr(self.tokenizer, "chat_template", None):
            raise ValueError(
                "a system_prompt builds the input with the tokenizer's chat template, and this "
                "tokenizer has none (set tokenizer.chat_template)"
            )
        self.prefix_template = prefix_template
        self.system_prompt = system_prompt
        self.step_joiner = step_joiner
        self.strip_steps = strip

    # ------------------------------------------------------------------ to override
    def _step_segment(self, content_ids: tuple[int, ...]) -> tuple[int, ...]:
        return content_ids

    def _suffix(self) -> tuple[int, ...]:
        return ()

    def _reads(self, lengths: list[int], first_level: int, target: bool) -> list[int]:
        """Tail offsets to read in a row running segments of ``lengths`` from level
        ``first_level`` (plus the suffix when ``target``)."""
        raise NotImplementedError

    def _values(self, logits: torch.Tensor) -> list[float]:
        """Scores from the head's outputs at the read positions, ``(reads, outputs)``."""
        raise NotImplementedError

    def _combine(self, base: Any, values: list[float], target: bool) -> tuple[float, ...]:
        """The row's result from the continued entry's ``extra`` and the values read."""
        raise NotImplementedError

    def _extra_at(self, result: tuple[float, ...], level: int, last: int, target: bool) -> Any:
        """What the entry cached at ``level`` keeps (``None``: no result known there)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ inputs
    def _prefix_text(self, question: str) -> tuple[str, bool]:
        """The prefix text and whether the tokenizer adds its special tokens to it."""
        if self.system_prompt is None:
            return self.prefix_template.replace("{question}", question), True
        messages = [
            {"role": "system", "content": self.system_prompt},
            {"role": "user", "content": question},
            {"role": "assistant", "content": _SENTINEL},
        ]
        text = self.tokenizer.apply_chat_template(messages, tokenize=False)
        at = text.find(_SENTINEL)
        if at < 0:
            raise ValueError("the chat template dropped the assistant turn; cannot build a prefix")
        return text[:at], False

    def _clean(self, text: str) -> str:
        return text.strip() if self.strip_steps else text

    def _contents(self, state: object, index: int) -> tuple[str, list[str]]:
        question = getattr(state, "question", None)
        texts = getattr(state, "step_texts", None)
        if not isinstance(question, str) or texts is None:
            raise TypeError(
                f"{type(self).__name__} scores states with .question (str) and .step_texts "
                f"(the steps' text), such as ReasoningState; state {index} is a "
                f"{type(state).__name__}"
            )
        texts = tuple(texts)
        steps = getattr(state, "steps", None)
        stops = [getattr(s, "stop", "text") for s in steps] if steps is not None else []
        if len(stops) != len(texts):
            stops = ["text"] * len(texts)
        contents = []
        for k, (text, stop) in enumerate(zip(texts, stops, strict=True)):
            if not isinstance(text, str):
                raise TypeError(f"step {k} of state {index} is a {type(text).__name__}, not text")
            content = self._clean(text)
            if not content.strip():
                if stop in ("eos", "length"):
                    continue  # the model ended (or was cut) before writing anything
                raise ValueError(f"step {k} of state {index} is empty: {text!r}")
            contents.append(content)
        return question, contents

    def _prefix_ids(self, question: str) -> tuple[int, ...]:
        ids = self._prefix_cache.get(question)
        if ids is None:
            text, special = self._prefix_text(question)
            ids = tuple(self.tokenizer(text, add_special_tokens=special)["input_ids"])
            if not ids:
                raise ValueError(f"the verifier input for question {question!r} has no tokens")
            if len(self._prefix_cache) > 10_000:
                self._prefix_cache.clear()
            self._prefix_cache[question] = ids
        return ids

    def _content_ids(self, content: str, first: bool) -> tuple[int, ...]:
        ids = self._step_cache.get((content, first))
        if ids is None:
            text = content if first else self.step_joiner + content
            ids = tuple(self.tokenizer(text, add_special_tokens=False)["input_ids"])
            if len(self._step_cache) > 100_000:
                self._step_cache.clear()
            self._step_cache[(content, first)] = ids
        return ids

    def _item(self, state: object, index: int) -> _Item:
        question, contents = self._contents(state, index)
        segments = [self._prefix_ids(question)]
        for k, content in enumerate(contents):
            try:
                segments.append(self._step_segment(self._content_ids(content, k == 0)))
            except ValueError as exc:
                raise ValueError(f"state {index}, step {k}: {exc}") from None
        return _Item((question, *contents), segments)

    def _items(self, states: object) -> list[_Item]:
        if isinstance(states, (str, bytes)) or not hasattr(states, "__iter__"):
            raise TypeError(f"score takes a sequence of states, got {type(states).__name__}")
        return [self._item(s, i) for i, s in enumerate(states)]  # type: ignore[attr-defined]

    def node_tokens(self, state: object) -> int:
        """Tokens this verifier's input adds for the state's tree node: the prefix at a root,
        else the last step's segment (with its tag); 0 for a skipped blank step."""
        texts = tuple(getattr(state, "step_texts", ()))
        item = self._item(state, 0)
        if not texts:
            return len(item.segments[0])
        if not self._clean(texts[-1]).strip():
            return 0
        return len(item.segments[-1])

    # ------------------------------------------------------------------ scoring
    def _results(self, items: list[_Item]) -> dict[tuple[Hashable, ...], Any]:
        """Per distinct item key, its result (``()`` for a state without steps)."""
        results: dict[tuple[Hashable, ...], Any] = {}
        todo: list[_Item] = []
        for item in items:
            if item.key in results:
                continue
            if item.level == 0:
                results[item.key] = ()
                continue
            entry = self.cache.get(item.key) if self.kv_reuse else None
            if entry is not None and entry.extra is not None:
                results[item.key] = entry.extra
                continue
            results[item.key] = None
            todo.append(item)
        if not todo:
            return results
        if self.kv_reuse:
            waves = self._waves(todo)
        else:
            waves = [[(item, item.level, True) for item in todo]]
        for wave in waves:
            rows: list[_Row] = []
            for item, level, target in wave:
                entry, first = self._deepest(item, level) if self.kv_reuse else (None, 0)
                rows.append((entry, item, first, level, target))
            for start in range(0, len(rows), self.batch_size):
                chunk = rows[start : start + self.batch_size]
                for (_, item, _, _, target), result in zip(
                    chunk, self._run_chunk(chunk), strict=True
                ):
                    if target:
                        results[item.key] = result
        return results

    def _waves(self, todo: list[_Item]) -> list[list[tuple[_Item, int, bool]]]:
        """What to compute, in waves: the requested states, plus every uncached prefix that
        two or more of them share, computed once in an earlier wave."""
        uses: dict[tuple[Hashable, ...], int] = {}
        owner: dict[tuple[Hashable, ...], tuple[_Item, int]] = {}
        for item in todo:
            uses[item.key] = uses.get(item.key, 0) + 1
            owner.setdefault(item.key, (item, item.level))
            for level in range(item.level - 1, -1, -1):
                key = item.key[: level + 1]
                if key in self.cache:
                    break
                uses[key] = uses.get(key, 0) + 1
                owner.setdefault(key, (item, level))
        targets = {item.key for item in todo}
        wave_of: dict[tuple[Hashable, ...], int] = {}
        for key in sorted((k for k in uses if k in targets or uses[k] >= 2), key=len):
            below = [wave_of[key[:j]] for j in range(1, len(key)) if key[:j] in wave_of]
            wave_of[key] = 1 + max(below, default=-1)
        waves: list[list[tuple[_Item, int, bool]]] = [[] for _ in range(max(wave_of.values()) + 1)]
        for key, w in wave_of.items():
            item, level = owner[key]
            waves[w].append((item, level, key in targets))
        return waves

    def _deepest(self, item: _Item, level: int) -> tuple[CacheEntry | None, int]:
        """The deepest cached prefix up to ``level`` and the first level still to run."""
        for j in range(level, -1, -1):
            entry = self.cache.get(item.key[: j + 1])
            if entry is not None:
                return entry, j + 1
        return None, 0

    def _run_chunk(self, rows: list[_Row]) -> list[tuple[float, ...]]:
        """One forward pass over ``rows``; stores the entries; returns each row's result."""
        plan: list[tuple[CacheEntry | None, list[int]]] = []
        reads: list[list[int]] = []
        suffix = self._suffix()
        for entry, item, first, last, target in rows:
            lengths = [len(item.segments[j]) for j in range(first, last + 1)]
            tail = [t for j in range(first, last + 1) for t in item.segments[j]]
            if target:
                tail.extend(suffix)
            offsets = self._reads(lengths, first, target)
            if not tail:  # the entry covers the whole input: rerun its last token
                assert entry is not None  # an empty tail only continues a cached state
                tail = [item.segments[last][-1]]
                offsets = [0] if target else []
                entry = entry.shortened(entry.length - 1)
            plan.append((entry, tail))
            reads.append(offsets)
        width = max(len(tail) for _, tail in plan)
        columns = sorted(
            {
                width - len(tail) + off
                for (_, tail), offs in zip(plan, reads, strict=True)
                for off in offs
            }
        )
        keep = torch.tensor(columns or [width - 1], dtype=torch.long)
        output, batch = forward_rows(
            self.model, plan, device=self.device, pad_id=self.pad_id, logits_to_keep=keep
        )
        self.forward_passes += 1
        self.tokens_processed += sum(len(tail) for _, tail in plan)
        self.padded_tokens += len(plan) * width
        logits = output.logits.float()
        results = []
        for r, ((_, item, first, last, target), (entry, tail), offs) in enumerate(
            zip(rows, plan, reads, strict=True)
        ):
            values: list[float] = []
            if offs:
                cols = [width - len(tail) + off for off in offs]
                values = self._values(self._pick(logits, r, cols, columns))
            result = self._combine(entry.extra if entry is not None else (), values, target)
            if self.kv_reuse and first > last:  # re-read a cached state: keep its result
                self.cache.put(item.key, row_entry(batch, r, extra=result))
            elif self.kv_reuse:
                covered = entry.length if entry is not None else 0
                for j in range(first, last + 1):
                    covered += len(item.segments[j])
                    extra = self._extra_at(result, j, last, target)
                    self.cache.put(
                        item.key[: j + 1], row_entry(batch, r, upto=covered, extra=extra)
                    )
            results.append(result)
        return results

    @staticmethod
    def _pick(logits: torch.Tensor, row: int, cols: list[int], kept: list[int]) -> torch.Tensor:
        """The outputs at input columns ``cols`` of ``row``: ``(len(cols), outputs)``."""
        if logits.dim() == 2:  # a sequence head: one output per row, at its last token
            return logits[row : row + 1]
        if logits.shape[1] == len(kept):  # logits_to_keep was honoured
            return logits[row, [kept.index(c) for c in cols]]
        return logits[row, cols]


class HFPRM(_PrefixScorer):
    """A process reward model: one score per step, read at the step tags.

    Args:
        model: the PRM (``AutoModelForCausalLM`` for ``"lm"`` heads,
            ``AutoModelForTokenClassification`` or a remote-code model for the others).
        tokenizer: its tokenizer; must write the preset's step tag and label words as single
            tokens (``ValueError`` otherwise).
        preset: a name from ``PRM_PRESETS`` or a :class:`PRMPreset`.
        aggregation: how ``Score.value`` combines the step scores: ``"last"`` (default, as
            search-and-learn), ``"min"`` (Math-Shepherd), ``"prod"`` (Lightman) or ``"mean"``.
            Searches given ``Score.step_scores`` may aggregate on their own.
        device, dtype: as :class:`~treesearch.adapters.policies.HFStepPolicy`.
        kv_reuse: score new steps from the cached parent prefix; ``False`` re-reads every
            state whole (the naive baseline).
        batch_size: rows per forward pass.
        empty_value: the value of a state without steps (no forward pass).
        cache_max_entries, cache_max_tokens: bounds of the LRU cache store.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        preset: str | PRMPreset = "seed",
        aggregation: Aggregation = "last",
        device: object = "cpu",
        dtype: object = None,
        kv_reuse: bool = True,
        batch_size: int = 16,
        empty_value: float = 0.5,
        cache_max_entries: int = 4096,
        cache_max_tokens: int = 1 << 18,
    ) -> None:
        super().__init__(
            model,
            tokenizer,
            device=device,
            dtype=dtype,
            kv_reuse=kv_reuse,
            batch_size=batch_size,
            empty_value=empty_value,
            cache_max_entries=cache_max_entries,
            cache_max_tokens=cache_max_tokens,
        )
        p = self.preset = prm_preset(preset)
        check_aggregation(aggregation)
        self.aggregation = aggregation
        self._set_format(p.prefix_template, p.system_prompt, p.step_joiner, p.strip_steps)
        tag = p.step_tag if p.step_tag is not None else getattr(tokenizer, "sep_token", None)
        if not tag:
            raise ValueError(
                f"preset {p.name!r} reads scores at the tokenizer's sep_token, which this "
                "tokenizer lacks; pass preset=prm_preset(..., step_tag='<your tag>')"
            )
        self.step_tag: str = tag
        self.tag_id = single_token(tokenizer, tag, f"preset {p.name!r}: the step tag")
        self.label_ids: tuple[int, int] | None = None
        if p.head == "lm":
            assert p.good_token is not None and p.bad_token is not None  # checked by PRMPreset
            self.label_ids = _label_ids(tokenizer, p.good_token, p.bad_token, f"preset {p.name!r}")

    # ------------------------------------------------------------------ Verifier protocol
    def score(self, states: Sequence[object]) -> list[Score]:
        """``Score(value, step_scores)`` per state; ``value`` aggregates the step scores
        (``empty_value`` for a state without steps)."""
        out = []
        for steps in self.step_scores(states):
            value = _aggregate(steps, self.aggregation) if steps else self.empty_value
            out.append(Score(value, steps))
        return out

    def step_scores(self, states: Sequence[object]) -> list[tuple[float, ...]]:
        """Each state's per-step scores (oldest step first), from one batched computation."""
        items = self._items(states)
        results = self._results(items)
        return [tuple(results[item.key]) for item in items]

    # ------------------------------------------------------------------ layout
    def _step_segment(self, content_ids: tuple[int, ...]) -> tuple[int, ...]:
        if self.tag_id in content_ids:
            raise ValueError(
                f"the step text contains the step tag {self.step_tag!r}, so the PRM would read "
                "more scores than there are steps"
            )
        return (*content_ids, self.tag_id)

    def _reads(self, lengths: list[int], first_level: int, target: bool) -> list[int]:
        reads = []
        offset = 0
        for level, n in enumerate(lengths, start=first_level):
            offset += n
            if level > 0:
                reads.append(offset - 1)  # the tag ends the step's segment
        return reads

    def _values(self, logits: torch.Tensor) -> list[float]:
        p = self.preset
        width = logits.shape[-1]
        if p.head == "lm":
            assert self.label_ids is not None  # set for lm heads
            if width <= max(self.label_ids):
                raise ValueError(
                    f"preset {p.name!r} reads label words from an LM head, but the model "
                    f"returns {width} outputs per token (a classification head?)"
                )
            return _two_way(logits, self.label_ids)
        if p.head == "classifier":
            if width < 2 or p.positive_class >= width or width > _MAX_CLASSES:
                raise ValueError(
                    f"preset {p.name!r} expects a classification head with class "
                    f"{p.positive_class}, but the model returns {width} outputs per token"
                )
            return torch.softmax(logits, dim=-1)[:, p.positive_class].tolist()
        if width != 1:
            raise ValueError(
                f"preset {p.name!r} expects one scalar output per token, but the model "
                f"returns {width} (a token-classification model with num_labels=1)"
            )
        return _activate(logits[:, 0], p.activation)

    def _combine(self, base: Any, values: list[float], target: bool) -> tuple[float, ...]:
        return tuple(base) + tuple(values)

    def _extra_at(self, result: tuple[float, ...], level: int, last: int, target: bool) -> Any:
        return result[:level]


_MAX_CLASSES = 16  # more outputs than this per token means an LM head, not a classifier


def _label_ids(tokenizer: Any, good: str, bad: str, what: str) -> tuple[int, int]:
    ids = (
        single_token(tokenizer, good, f"{what}: the label word"),
        single_token(tokenizer, bad, f"{what}: the label word"),
    )
    if ids[0] == ids[1]:
        raise ValueError(f"{what}: the good and bad label words are the same token")
    return ids


def _two_way(logits: torch.Tensor, label_ids: tuple[int, int]) -> list[float]:
    """``p(good) / (p(good) + p(bad))``: a softmax over the two label logits."""
    return torch.softmax(logits[:, list(label_ids)], dim=-1)[:, 0].tolist()


def _activate(values: torch.Tensor, activation: str) -> list[float]:
    if activation == "sigmoid":
        return torch.sigmoid(values).tolist()
    if activation == "clamp":
        return values.clamp(0.0, 1.0).tolist()
    return values.tolist()


class HFORM(_PrefixScorer):
    """An outcome reward model: one score for the whole solution, read at its last token.

    The input is ``prefix_template`` (or a chat prefix with ``system_prompt``), the steps'
    content joined by ``step_joiner``, then ``suffix``. The suffix is not cached, so a child
    continues from its parent's cache without it.

    Args:
        model, tokenizer, device, dtype, kv_reuse, batch_size, empty_value,
            cache_max_entries, cache_max_tokens: as :class:`HFPRM`.
        head: ``"sequence"`` (``AutoModelForSequenceClassification``: its pooled output at
            the last token), ``"token"`` (a token-classification head read at the last token)
            or ``"lm"`` (label words ``good_token`` / ``bad_token`` read from an LM head at
            the last token, usually after a ``suffix`` that asks for a verdict). A head with
            one output goes through ``activation`` (``"sigmoid"``, ``"identity"``,
            ``"clamp"``); with several, the score is the softmax probability of
            ``positive_class``.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        head: Literal["sequence", "token", "lm"] = "sequence",
        good_token: str | None = None,
        bad_token: str | None = None,
        positive_class: int = 1,
        activation: Literal["sigmoid", "identity", "clamp"] = "sigmoid",
        prefix_template: str = "{question}",
        step_joiner: str = "\n\n",
        suffix: str = "",
        system_prompt: str | None = None,
        device: object = "cpu",
        dtype: object = None,
        kv_reuse: bool = True,
        batch_size: int = 16,
        empty_value: float = 0.5,
        cache_max_entries: int = 4096,
        cache_max_tokens: int = 1 << 18,
    ) -> None:
        if head not in ("sequence", "token", "lm"):
            raise ValueError(f"head must be 'sequence', 'token' or 'lm', got {head!r}")
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {_ACTIVATIONS}, got {activation!r}")
        if isinstance(positive_class, bool) or not isinstance(positive_class, int):
            raise TypeError(f"positive_class must be an int, got {positive_class!r}")
        if positive_class < 0:
            raise ValueError(f"positive_class must be >= 0, got {positive_class}")
        config_pad = getattr(getattr(model, "config", None), "pad_token_id", None)
        if head == "sequence" and config_pad is None:
            _log.warning(
                "HFORM: model.config.pad_token_id is None, so a sequence head cannot find the "
                "last token of a padded batch; scoring one state per forward pass"
            )
            batch_size = 1
        super().__init__(
            model,
            tokenizer,
            device=device,
            dtype=dtype,
            kv_reuse=kv_reuse,
            batch_size=batch_size,
            empty_value=empty_value,
            cache_max_entries=cache_max_entries,
            cache_max_tokens=cache_max_tokens,
        )
        self._set_format(prefix_template, system_prompt, step_joiner, True)
        if head == "sequence" and config_pad is not None:
            self.pad_id = int(config_pad)  # the head pools at the last token that is not this
        self.head = head
        self.positive_class = positive_class
        self.activation = activation
        if not isinstance(suffix, str):
            raise TypeError(f"suffix must be a str, got {type(suffix).__name__}")
        self.suffix_ids = tuple(tokenizer(suffix, add_special_tokens=False)["input_ids"])
        if head == "sequence" and self.suffix_ids and self.suffix_ids[-1] == self.pad_id:
            raise ValueError("the suffix ends with the pad token, which a sequence head skips")
        self.label_ids: tuple[int, int] | None = None
        if head == "lm":
            if not good_token or not bad_token:
                raise ValueError("HFORM(head='lm') needs good_token and bad_token")
            self.label_ids = _label_ids(tokenizer, good_token, bad_token, "HFORM")

    def score(self, states: Sequence[object]) -> list[Score]:
        """One ``Score(value)`` per state (``empty_value`` for a state without steps)."""
        items = self._items(states)
        results = self._results(items)
        return [Score(results[i.key][0] if results[i.key] else self.empty_value) for i in items]

    def _suffix(self) -> tuple[int, ...]:
        return self.suffix_ids

    def _reads(self, lengths: list[int], first_level: int, target: bool) -> list[int]:
        return [sum(lengths) + len(self.suffix_ids) - 1] if target else []

    def _values(self, logits: torch.Tensor) -> list[float]:
        width = logits.shape[-1]
        if self.head == "lm":
            assert self.label_ids is not None  # set for lm heads
            if width <= max(self.label_ids):
                raise ValueError(
                    f"HFORM(head='lm') reads label words from an LM head, but the model "
                    f"returns {width} outputs per token"
                )
            return _two_way(logits, self.label_ids)
        if width == 1:
            return _activate(logits[:, 0], self.activation)
        if self.positive_class >= width or width > _MAX_CLASSES:
            raise ValueError(
                f"HFORM(head={self.head!r}) expects 1 or a few class outputs, got {width} "
                "(an LM head? use head='lm')"
            )
        return torch.softmax(logits, dim=-1)[:, self.positive_class].tolist()

    def _combine(self, base: Any, values: list[float], target: bool) -> tuple[float, ...]:
        return tuple(values[-1:]) if target else ()

    def _extra_at(self, result: tuple[float, ...], level: int, last: int, target: bool) -> Any:
        # The score is known only at the requested level (the suffix is not in the cache).
        return result if target and level == last else None
