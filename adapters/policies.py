"""Hugging Face causal language models as tree-search policies, with prefix (KV) reuse.

* :class:`HFStepPolicy`: step-level nodes, as in step-level beam search and MCTS over reasoning
  steps (Snell et al., arXiv 2408.03314, section 5; huggingface/search-and-learn
  ``src/sal/search/beam_search.py``; TS-LLM, arXiv 2309.17179, "sentence-level" nodes): for
  every state, ``num_candidates`` sampled continuations, each up to the step separator or
  end-of-sequence.
* :class:`HFTokenPolicy`: token-level nodes (TS-LLM's token-level action space): the ``top_k``
  next tokens with their probabilities as priors.

Both run all states of a call together: one forward pass per generated token for all states
and samples. A state's prefix is looked up in a :class:`~treesearch.adapters.kvcache.KVCacheStore`
keyed by token ids: a child created by this policy continues from the cache its own
generation left behind, so expanding it runs one token (its last) instead of the whole prefix
(``docs/design.md`` section 4). ``kv_reuse=False`` is the naive baseline that re-encodes every
state's whole prefix on every call. ``tokens_processed`` counts the real (non-padding) tokens
run through the model; :func:`treesearch.adapters.accounting.token_ratios` divides it by the
unique tokens of a search tree.

**Priors** (:class:`HFStepPolicy`): a step of ``n`` tokens with model log-probability
``logprob = sum_t log p(token_t | prefix)`` (the model's own distribution at temperature 1,
whatever temperature and top-p were used to sample it) gets ``prior = exp(logprob / n)``, the
geometric mean of its token probabilities, in (0, 1]; length normalisation keeps long steps from
being penalised for their length alone. Searches normalise priors over siblings. **Duplicates**:
samples with the same token ids become one candidate; identical samples have the same log-prob,
so the prior is that of any of them (not a sum, which would double-count), and
``payload["count"]`` says how many samples produced it.

**Token accounting** (:class:`HFStepPolicy`): every generated token is charged exactly once. A
candidate's ``num_tokens`` is every token sampled for it, ``payload["count"] * len(step)``
(a confident policy that draws one step four times has generated four steps), so the
``num_tokens`` of one call sum to the tokens that call generated, which ``max_tokens`` bounds,
and a search's ``Budget(tokens=...)`` sees duplicates too. The step itself, the tokens the
child adds to the tree, is ``payload["token_ids"]`` (``Step.token_ids``): unique tree tokens
(:meth:`node_tokens`, :func:`~treesearch.adapters.accounting.tree_tokens`) count it once, so
merged copies are work in ``tokens_processed`` without tree tokens.

**Randomness**: one integer seed per input state is drawn from the numpy generator and seeds a
``torch.Generator`` that draws that state's uniforms (inverse-CDF sampling). A state's samples
therefore depend only on its seed, not on the other states in the batch or on padding.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from treesearch.interfaces import Candidate

from .kvcache import (
    CacheEntry,
    KVCacheStore,
    RowBatch,
    check_tokenizer_and_reuse,
    extend,
    forward_rows,
    prepare_model,
    row_entry,
)
from .state import ReasoningState, Step, StepStop

__all__ = ["HFStepPolicy", "HFTokenPolicy"]

_log = logging.getLogger(__name__)


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _check_real(name: str, value: object, low: float, high: float, *, low_open: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    x = float(value)
    if not math.isfinite(x) or x > high or x < low or (low_open and x == low):
        bounds = f"{'(' if low_open else '['}{low}, {high}]"
        raise ValueError(f"{name} must be in {bounds}, got {value!r}")
    return x


def _check_states(states: object, owner: str) -> list[ReasoningState]:
    if isinstance(states, (str, bytes)) or not hasattr(states, "__iter__"):
        raise TypeError(f"{owner}.propose takes a sequence of states, got {type(states).__name__}")
    out = list(states)  # type: ignore[call-overload]
    for i, s in enumerate(out):
        if not isinstance(s, ReasoningState):
            raise TypeError(
                f"{owner} works on treesearch.adapters.state.ReasoningState, got "
                f"{type(s).__name__} for state {i}"
            )
        if s.is_terminal():
            raise ValueError(f"{owner}.propose got a terminal state (index {i}): {s!r}")
    return out


def _eos_ids(model: Any, tokenizer: Any) -> frozenset[int]:
    ids: set[int] = set()
    for source in (
        getattr(tokenizer, "eos_token_id", None),
        getattr(getattr(model, "generation_config", None), "eos_token_id", None),
    ):
        if source is None:
            continue
        ids.update([source] if isinstance(source, int) else list(source))
    return frozenset(int(i) for i in ids)


class _CausalLM:
    """Shared machinery: the model, its cache store, counters, and the prefill of a batch."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        device: object,
        dtype: object,
        kv_reuse: bool,
        cache_max_entries: int,
        cache_max_tokens: int,
    ) -> None:
        check_tokenizer_and_reuse(tokenizer, kv_reuse)
        self.model, self.device = prepare_model(model, device, dtype)
        self.tokenizer = tokenizer
        self.kv_reuse = kv_reuse
        self.cache = KVCacheStore(max_entries=cache_max_entries, max_tokens=cache_max_tokens)
        self.eos_ids = _eos_ids(self.model, tokenizer)
        pad = getattr(tokenizer, "pad_token_id", None)
        self.pad_id = int(pad if pad is not None else next(iter(self.eos_ids), 0))
        self.vocab_size = len(tokenizer)
        self.tokens_processed = 0
        self.padded_tokens = 0
        self.forward_passes = 0

    def reset_counters(self) -> None:
        """Zero ``tokens_processed``, ``padded_tokens`` and ``forward_passes``."""
        self.tokens_processed = 0
        self.padded_tokens = 0
        self.forward_passes = 0

    def node_tokens(self, state: ReasoningState) -> int:
        """Tokens this policy's tree node adds: the prompt at a root, else the last step."""
        return len(state.steps[-1].token_ids) if state.steps else len(state.prompt_ids)

    def initial_state(
        self,
        prompt: str,
        *,
        question: str | None = None,
        max_steps: int | None = None,
        add_special_tokens: bool = True,
    ) -> ReasoningState:
        """The root state for ``prompt`` with this policy's tokenizer (see
        :meth:`ReasoningState.from_prompt`)."""
        return ReasoningState.from_prompt(
            prompt,
            self.tokenizer,
            question=question,
            max_steps=max_steps,
            add_special_tokens=add_special_tokens,
        )

    def _lookup(self, state: ReasoningState) -> tuple[CacheEntry | None, tuple[int, ...]]:
        """The deepest cached prefix of ``state`` (at a step boundary) and the tokens after it."""
        ids = state.token_ids
        if not self.kv_reuse:
            return None, ids
        end = len(ids)
        for step in (*reversed(state.steps), None):
            entry = self.cache.get(ids[:end])
            if entry is not None:
                if entry.length >= len(ids):  # the state itself: rerun its last token
                    if len(ids) == 1:
                        return None, ids
                    entry = entry.shortened(len(ids) - 1)
                return entry, ids[entry.length :]
            if step is not None:
                end -= len(step.token_ids)
        return None, ids

    def _prefill(
        self, states: Sequence[ReasoningState]
    ) -> tuple[RowBatch, torch.Tensor, list[int]]:
        """Run each distinct state's uncached tokens; returns the batch (one row per distinct
        state), its next-token logits (float32) and each input state's row."""
        rows: dict[tuple[int, ...], int] = {}
        distinct: list[ReasoningState] = []
        where = []
        for s in states:
            if s.token_ids not in rows:
                rows[s.token_ids] = len(distinct)
                distinct.append(s)
            where.append(rows[s.token_ids])
        plan = [self._lookup(s) for s in distinct]
        out, batch = forward_rows(
            self.model, plan, device=self.device, pad_id=self.pad_id, logits_to_keep=1
        )
        self.forward_passes += 1
        self.tokens_processed += sum(len(tail) for _, tail in plan)
        self.padded_tokens += len(plan) * max(len(tail) for _, tail in plan)
        logits = self._mask_logits(out.logits[:, -1, :].float())
        if self.kv_reuse:
            for r, s in enumerate(distinct):
                self.cache.put(s.token_ids, row_entry(batch, r))
        return batch, logits, where

    def _mask_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """Never produce ids the tokenizer cannot decode (a model's vocabulary is often padded
        beyond the tokenizer's)."""
        if logits.shape[-1] > self.vocab_size:
            logits[:, self.vocab_size :] = -math.inf
        return logits

    def _decode(self, ids: Sequence[int]) -> str:
        return str(
            self.tokenizer.decode(
                list(ids), skip_special_tokens=False, clean_up_tokenization_spaces=False
            )
        )


class HFStepPolicy(_CausalLM):
    """Step-level policy: ``num_candidates`` sampled next steps per state.

    Args:
        model: a causal LM (``AutoModelForCausalLM.from_pretrained(path)`` or any decoder-only
            model with an LM head).
        tokenizer: its tokenizer.
        step_separator: text that ends a step (``"\\n\\n"`` in search-and-learn; a special
            token such as ``"<sep>"``); a step ends at the first generated token whose text
            contains it, once the step has some non-blank content (a separator before any
            content is kept as part of the step, so no step is empty). ``None``: steps end only
            at end-of-sequence or ``max_step_tokens``.
        num_candidates: samples per state (K); duplicates are merged into one candidate whose
            ``num_tokens`` counts all of them (module docstring, "Token accounting").
        max_step_tokens: a step is cut after this many tokens (``stop="length"``, not
            terminal).
        temperature: sampling temperature; 0 is greedy decoding.
        top_p: nucleus sampling: sample from the smallest set of tokens whose probability
            reaches ``top_p`` (1.0 keeps all).
        device: where the model runs (``"cpu"``, ``"cuda"``, ``"cuda:1"``); the model is moved.
        dtype: ``None`` (keep the model's), ``"bf16"``, ``"fp16"``, ``"fp32"`` or a
            ``torch.dtype``; the model is cast. Logits are read in float32.
        kv_reuse: keep KV caches keyed by state token ids so children continue from their
            parent's prefix; ``False`` re-encodes every prefix (the naive baseline).
        cache_max_entries, cache_max_tokens: bounds of the LRU cache store.

    End-of-sequence ids are the tokenizer's ``eos_token_id`` and the model's
    ``generation_config.eos_token_id`` (one id or a list). The model is put in eval mode.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        step_separator: str | None = "\n\n",
        num_candidates: int = 4,
        max_step_tokens: int = 256,
        temperature: float = 0.8,
        top_p: float = 1.0,
        device: object = "cpu",
        dtype: object = None,
        kv_reuse: bool = True,
        cache_max_entries: int = 4096,
        cache_max_tokens: int = 1 << 18,
    ) -> None:
        super().__init__(
            model,
            tokenizer,
            device=device,
            dtype=dtype,
            kv_reuse=kv_reuse,
            cache_max_entries=cache_max_entries,
            cache_max_tokens=cache_max_tokens,
        )
        if step_separator is not None and (
            not isinstance(step_separator, str) or not step_separator
        ):
            raise ValueError(
                f"step_separator must be a non-empty str or None, got {step_separator!r}"
            )
        self.step_separator = step_separator
        self.num_candidates = _check_int("num_candidates", num_candidates, 1)
        self.max_step_tokens = _check_int("max_step_tokens", max_step_tokens, 1)
        self.temperature = _check_real("temperature", temperature, 0.0, math.inf, low_open=False)
        self.top_p = _check_real("top_p", top_p, 0.0, 1.0, low_open=True)
        self.separator_ids, self._content_ids = self._scan_vocabulary()
        if step_separator is not None and not self.separator_ids:
            raise ValueError(
                f"no token of this tokenizer contains the step separator {step_separator!r}; "
                "the model could never end a step (add it as a token or choose another)"
            )

    def _scan_vocabulary(self) -> tuple[frozenset[int], frozenset[int]]:
        """Token ids whose text contains the separator, and ids that carry step content (text
        that is not blank once the separator is removed)."""
        texts = self.tokenizer.batch_decode(
            [[i] for i in range(self.vocab_size)],
            skip_special_tokens=False,
            clean_up_tokenization_spaces=False,
        )
        sep = self.step_separator
        separators = set()
        content = set()
        for i, text in enumerate(texts):
            if sep is not None and sep in text:
                separators.add(i)
                text = text.replace(sep, "")
            if text.strip() and i not in self.eos_ids:
                content.add(i)
        return frozenset(separators), frozenset(content)

    # ------------------------------------------------------------------ Policy protocol
    def propose(
        self,
        states: Sequence[ReasoningState],
        *,
        rng: np.random.Generator,
        max_tokens: int | None = None,
    ) -> list[list[Candidate]]:
        """Up to ``num_candidates`` distinct next steps per state.

        A candidate's ``num_tokens`` is ``payload["count"] * len(payload["token_ids"])``: the
        tokens of all its samples, so the call's ``num_tokens`` sum to the tokens it generated.
        ``max_tokens``: the whole call generates (and so charges) at most this many tokens;
        rows that would pass it end early with ``stop="length"``, and states left without a
        sample get no candidates (earlier states are served first)."""
        batch_states = _check_states(states, type(self).__name__)
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
        if max_tokens is not None:
            max_tokens = _check_int("max_tokens", max_tokens, 0)
        if not batch_states:
            return []
        seeds = rng.integers(0, 2**63 - 1, size=len(batch_states))
        samples = [self.num_candidates] * len(batch_states)
        if max_tokens is not None:  # the first round gives every row one token
            room = max_tokens
            for i in range(len(samples)):
                samples[i] = min(samples[i], room)
                room -= samples[i]
        if sum(samples) == 0:
            return [[] for _ in batch_states]
        generated = self._generate(batch_states, samples, seeds, max_tokens)
        return [
            self._candidates(state, rows)
            for state, rows in zip(batch_states, generated, strict=True)
        ]

    def _generate(
        self,
        states: list[ReasoningState],
        samples: list[int],
        seeds: np.ndarray,
        max_tokens: int | None,
    ) -> list[list[tuple[list[int], float, StepStop]]]:
        """Sample the steps: per state, ``samples[i]`` rows of (token ids, log-prob, stop)."""
        batch, first_logits, where = self._prefill(states)
        owner = [i for i, k in enumerate(samples) for _ in range(k)]
        batch.select(torch.tensor([where[i] for i in owner], device=self.device))
        logits = first_logits[[where[i] for i in owner]]
        generators = []
        for seed in seeds:
            g = torch.Generator(device=self.device)
            g.manual_seed(int(seed))
            generators.append(g)
        tokens: list[list[int]] = [[] for _ in owner]
        logprob = [0.0] * len(owner)
        stop: list[StepStop | None] = [None] * len(owner)
        has_content = [False] * len(owner)
        active = list(range(len(owner)))
        total = 0
        for t in range(self.max_step_tokens):
            uniforms = self._uniforms(generators, samples, active)
            chosen, chosen_lp = self._sample(logits, uniforms)
            total += len(active)
            keep = []
            for j, (r, tok, lp) in enumerate(
                zip(active, chosen.tolist(), chosen_lp.tolist(), strict=True)
            ):
                tokens[r].append(tok)
                logprob[r] += lp
                if tok in self.eos_ids:
                    stop[r] = "eos"
                elif tok in self.separator_ids and (has_content[r] or tok in self._content_ids):
                    stop[r] = "separator"
                else:
                    has_content[r] = has_content[r] or tok in self._content_ids
                    if t + 1 == self.max_step_tokens:
                        stop[r] = "length"
                    else:
                        keep.append(j)
            if keep and max_tokens is not None and total + len(keep) > max_tokens:
                for j in keep:  # the budget cannot pay for another round
                    stop[active[j]] = "length"
                keep = []
            if self.kv_reuse:
                kept = set(keep)
                for j, r in enumerate(active):
                    if j not in kept:  # the cache holds the prefix and all but the last token
                        key = states[owner[r]].token_ids + tuple(tokens[r])
                        self.cache.put(key, row_entry(batch, j))
            if not keep:
                break
            index = torch.tensor(keep, device=self.device)
            if len(keep) < len(active):
                batch.select(index)
            out = extend(self.model, batch, chosen[index])
            self.forward_passes += 1
            self.tokens_processed += len(keep)
            self.padded_tokens += len(keep)
            logits = self._mask_logits(out.logits[:, -1, :].float())
            active = [active[j] for j in keep]
        result: list[list[tuple[list[int], float, StepStop]]] = [[] for _ in states]
        for r, i in enumerate(owner):
            final = stop[r]
            assert final is not None  # every row stops by the last round
            result[i].append((tokens[r], logprob[r], final))
        return result

    def _uniforms(
        self,
        generators: list[torch.Generator],
        samples: list[int],
        active: list[int],
    ) -> torch.Tensor:
        """One uniform per active row. Every state draws one per sample each round, finished
        or not, so its stream does not depend on the other states. Rows are laid out state by
        state, so the concatenated draws are indexed by row."""
        if self.temperature == 0:
            return torch.zeros(len(active), device=self.device)
        draws = [
            torch.rand(k, generator=g, device=self.device)
            for g, k in zip(generators, samples, strict=True)
            if k
        ]
        return torch.cat(draws)[torch.tensor(active, device=self.device)]

    def _sample(
        self, logits: torch.Tensor, uniforms: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Token and its model log-probability (temperature 1) per row."""
        logp = torch.log_softmax(logits, dim=-1)
        if self.temperature == 0:
            chosen = torch.argmax(logits, dim=-1)
        else:
            probs = torch.softmax(logits / self.temperature, dim=-1)
            if self.top_p < 1.0:
                ordered, order = torch.sort(probs, dim=-1, descending=True, stable=True)
                before = torch.cumsum(ordered, dim=-1) - ordered
                ordered = torch.where(before < self.top_p, ordered, torch.zeros_like(ordered))
            else:
                ordered, order = probs, None
            cdf = torch.cumsum(ordered, dim=-1)
            target = (uniforms * cdf[:, -1]).unsqueeze(1)
            pick = torch.searchsorted(cdf, target, right=True).clamp(max=cdf.shape[-1] - 1)
            chosen = (order.gather(1, pick) if order is not None else pick).squeeze(1)
        return chosen, logp.gather(1, chosen.unsqueeze(1)).squeeze(1)

    def _candidates(
        self, state: ReasoningState, rows: list[tuple[list[int], float, StepStop]]
    ) -> list[Candidate]:
        merged: dict[tuple[int, ...], list[Any]] = {}
        for generated, lp, stop in rows:
            key = tuple(generated)
            if key in merged:
                merged[key][2] += 1
            else:
                merged[key] = [lp, stop, 1]
        out = []
        for ids, (lp, stop, count) in merged.items():
            text = self._decode(ids[:-1] if stop == "eos" else ids)
            content = text
            if self.step_separator is not None:  # separators can only lead or end a step
                content = text.replace(self.step_separator, "")
            step = Step(text, ids, stop, content)
            out.append(
                Candidate(
                    action=step,
                    prior=math.exp(lp / len(ids)),
                    logprob=lp,
                    num_tokens=count * len(ids),  # every sample's tokens, charged once
                    payload={"token_ids": ids, "stop": stop, "count": count},
                )
            )
        return out


class HFTokenPolicy(_CausalLM):
    """Token-level policy: the ``top_k`` most likely next tokens, one action each.

    Each action is a one-token :class:`~treesearch.adapters.state.Step` (``stop="eos"`` for an
    end-of-sequence token, which makes the child terminal; ``"length"`` otherwise). Priors are
    the tokens' probabilities under ``softmax(logits / temperature)`` (not renormalised over the
    top k; searches normalise). Deterministic: ``rng`` is not used. A child is expanded from its
    parent's cached prefix by running its one token. ``max_tokens`` caps the number of
    candidates of the call (each carries one token); earlier states are served first.

    Args: as :class:`HFStepPolicy`, with ``top_k`` candidates per state.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        top_k: int = 5,
        temperature: float = 1.0,
        device: object = "cpu",
        dtype: object = None,
        kv_reuse: bool = True,
        cache_max_entries: int = 4096,
        cache_max_tokens: int = 1 << 18,
    ) -> None:
        super().__init__(
            model,
            tokenizer,
            device=device,
            dtype=dtype,
            kv_reuse=kv_reuse,
            cache_max_entries=cache_max_entries,
            cache_max_tokens=cache_max_tokens,
        )
        self.top_k = _check_int("top_k", top_k, 1)
        self.temperature = _check_real("temperature", temperature, 0.0, math.inf, low_open=True)

    def propose(
        self,
        states: Sequence[ReasoningState],
        *,
        rng: np.random.Generator,
        max_tokens: int | None = None,
    ) -> list[list[Candidate]]:
        batch_states = _check_states(states, type(self).__name__)
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
        if max_tokens is not None:
            max_tokens = _check_int("max_tokens", max_tokens, 0)
        if not batch_states:
            return []
        if max_tokens == 0:
            return [[] for _ in batch_states]
        _, logits, where = self._prefill(batch_states)
        logp = torch.log_softmax(logits, dim=-1)
        probs = torch.softmax(logits / self.temperature, dim=-1)
        k = min(self.top_k, probs.shape[-1])
        top_p, top_ids = torch.topk(probs, k, dim=-1)
        top_lp = logp.gather(1, top_ids)
        room = max_tokens
        out = []
        for u in where:
            cands = []
            for p, tok, lp in zip(
                top_p[u].tolist(), top_ids[u].tolist(), top_lp[u].tolist(), strict=True
            ):
                if room is not None:
                    if room == 0:
                        break
                    room -= 1
                eos = tok in self.eos_ids
                text = "" if eos else self._decode([tok])
                step = Step(text, (tok,), "eos" if eos else "length")
                cands.append(
                    Candidate(
                        action=step,
                        prior=p,
                        logprob=lp,
                        num_tokens=1,
                        payload={"token_ids": (tok,), "stop": step.stop, "count": 1},
                    )
                )
            out.append(cands)
        return out
