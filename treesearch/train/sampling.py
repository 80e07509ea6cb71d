"""Batched sampling from a causal language model with an explicit ``torch.Generator``.

Plain ancestral sampling (temperature, optional top-p) or greedy decoding over many prompts at
once, with the model's KV cache: prompts are left-padded, ``position_ids`` give every real token
its true position, and rows that have finished are dropped from the batch (and its cache). Used
to evaluate a policy (greedy accuracy), to sample solutions for reward-model data, and as the
completer of Math-Shepherd's Monte-Carlo step labels (Wang et al., arXiv 2312.08935).

``model.generate`` draws from torch's global random state; here every draw comes from the
generator passed in, so a fixed seed repeats the samples on a given device.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from typing import Any

import torch

__all__ = ["sample_continuations"]


def _check_prompts(prompts: Sequence[Sequence[int]]) -> list[list[int]]:
    if isinstance(prompts, str | bytes) or not isinstance(prompts, Sequence):
        raise TypeError("prompts must be a sequence of token-id sequences")
    out = []
    for i, prompt in enumerate(prompts):
        row = [int(t) for t in prompt]
        if not row:
            raise ValueError(f"prompt {i} has no tokens")
        out.append(row)
    return out


@torch.no_grad()
def sample_continuations(
    model: Any,
    prompts: Sequence[Sequence[int]],
    *,
    max_new_tokens: int,
    stop_ids: Collection[int],
    pad_id: int,
    temperature: float = 1.0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
    batch_size: int = 64,
) -> list[tuple[int, ...]]:
    """One continuation per prompt, each up to and including the first stop token.

    Args:
        model: a causal LM (eval mode is the caller's choice; dropout would add noise).
        prompts: token ids per prompt (with BOS if the model expects it).
        max_new_tokens: a continuation without a stop token is cut after this many tokens.
        stop_ids: tokens that end a continuation (EOS).
        pad_id: the id written into the padding slots (they are masked out).
        temperature: 0 is greedy decoding (no generator needed).
        top_p: nucleus sampling: keep the smallest set of tokens whose probability reaches it.
        generator: the source of randomness when ``temperature > 0``; rows are sampled in
            order, so the same generator state and prompts give the same continuations.
        batch_size: prompts per batch.
    """
    rows = _check_prompts(prompts)
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int):
        raise TypeError(f"max_new_tokens must be an int, not {max_new_tokens!r}")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be at least 1, not {max_new_tokens}")
    if isinstance(temperature, bool) or not isinstance(temperature, int | float):
        raise TypeError(f"temperature must be a number, not {temperature!r}")
    if not math.isfinite(temperature) or temperature < 0:
        raise ValueError(f"temperature must be finite and >= 0, not {temperature}")
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], not {top_p}")
    if temperature > 0 and not isinstance(generator, torch.Generator):
        raise TypeError("sampling with temperature > 0 needs a torch.Generator")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, not {batch_size!r}")
    stops = torch.tensor(sorted({int(s) for s in stop_ids}), dtype=torch.long)
    if stops.numel() == 0:
        raise ValueError("stop_ids is empty: continuations could never end")
    out: list[tuple[int, ...]] = []
    for start in range(0, len(rows), batch_size):
        out.extend(
            _sample_batch(
                model,
                rows[start : start + batch_size],
                max_new_tokens,
                stops,
                pad_id,
                float(temperature),
                float(top_p),
                generator,
            )
        )
    return out


def _pick(
    logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator | None
) -> torch.Tensor:
    if temperature == 0:
        return torch.argmax(logits, dim=-1)
    probs = torch.softmax(logits / temperature, dim=-1)
    if top_p < 1:
        ordered, order = torch.sort(probs, dim=-1, descending=True, stable=True)
        before = torch.cumsum(ordered, dim=-1) - ordered
        ordered = torch.where(before < top_p, ordered, torch.zeros_like(ordered))
        pick = torch.multinomial(ordered, 1, generator=generator)
        return order.gather(1, pick).squeeze(1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(1)


def _sample_batch(
    model: Any,
    rows: list[list[int]],
    max_new_tokens: int,
    stops: torch.Tensor,
    pad_id: int,
    temperature: float,
    top_p: float,
    generator: torch.Generator | None,
) -> list[tuple[int, ...]]:
    from transformers import DynamicCache

    device = next(model.parameters()).device
    width = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        input_ids[i, width - len(row) :] = torch.tensor(row)
        mask[i, width - len(row) :] = 1
    positions = (mask.cumsum(1) - 1).clamp(min=0)
    input_ids, mask, positions = input_ids.to(device), mask.to(device), positions.to(device)
    cache = DynamicCache()
    logits = (
        model(
            input_ids=input_ids,
            attention_mask=mask,
            position_ids=positions,
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        .logits[:, -1, :]
        .float()
    )
    next_position = positions[:, -1] + 1
    generated: list[list[int]] = [[] for _ in rows]
    active = list(range(len(rows)))
    stops = stops.to(device)
    for step in range(max_new_tokens):
        chosen = _pick(logits, temperature, top_p, generator)
        finished = torch.isin(chosen, stops)
        keep = []
        for j, (index, token) in enumerate(zip(active, chosen.tolist(), strict=True)):
            generated[index].append(token)
            if not bool(finished[j]):
                keep.append(j)
        if not keep or step + 1 == max_new_tokens:
            break
        if len(keep) < len(active):
            rows_kept = torch.tensor(keep, device=device)
            cache.batch_select_indices(rows_kept)
            mask = mask[rows_kept]
            next_position = next_position[rows_kept]
            chosen = chosen[rows_kept]
            active = [active[j] for j in keep]
        mask = torch.cat([mask, torch.ones((len(active), 1), dtype=mask.dtype, device=device)], 1)
        logits = (
            model(
                input_ids=chosen.unsqueeze(1),
                attention_mask=mask,
                position_ids=next_position.unsqueeze(1),
                past_key_values=cache,
                use_cache=True,
            )
            .logits[:, -1, :]
            .float()
        )
        next_position = next_position + 1
    return [tuple(g) for g in generated]
