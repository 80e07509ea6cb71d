"""Prefix (KV-cache) reuse for tree search with transformer models.

``docs/design.md`` section 4: every token of a search tree should run through the policy and the
verifier about once. A node's children share its whole token prefix, so the attention keys and
values (the KV cache) computed for the parent are kept and each child only runs its new tokens;
this is the idea behind prefix caching in LLM servers (RadixAttention, Zheng et al., SGLang,
arXiv 2312.07104), done here with the standard Hugging Face ``DynamicCache``.

* :class:`CacheEntry`: the keys and values of one token prefix, compacted (no padding), one
  ``(1, heads, length, head_dim)`` pair per layer, plus any extra record (a PRM's step
  scores).
* :class:`KVCacheStore`: a bounded least-recently-used store of entries keyed by a prefix key
  (token ids, or question and steps), limited by entries and by cached tokens.
* :func:`forward_rows`: one batched forward pass over rows that each continue their own cached
  prefix with their own new tokens. Rows are laid out as ``[cached prefix | new tokens]``, both
  parts left-padded to a common width; the attention mask hides the padding and explicit
  ``position_ids`` give every real token its true position, so results equal those of running
  each row alone (up to float rounding), whatever the padding and whatever the tokenizer's
  ``padding_side``.
* :func:`row_entry`: cut one row of a batched cache back into a compact entry.

Only the standard model API is used: ``model(input_ids, attention_mask, position_ids,
past_key_values=DynamicCache, use_cache=True)`` and the cache's ``layers[i].keys/values``. The
cache object is updated in place by the model, so heads that do not return it (token or
sequence classification) work too. Sliding-window layers are kept as full layers (the model's
mask applies the window); with left padding, the window counts pad slots, which only matters
for sequences longer than the window.
"""

from __future__ import annotations

import inspect
import logging
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers import DynamicCache

__all__ = [
    "CacheEntry",
    "KVCacheStore",
    "RowBatch",
    "check_tokenizer_and_reuse",
    "forward_rows",
    "prepare_model",
    "resolve_dtype",
    "row_entry",
]

_log = logging.getLogger(__name__)

_DTYPES = {
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
    "fp16": torch.float16,
    "float16": torch.float16,
    "fp32": torch.float32,
    "float32": torch.float32,
}


@dataclass(frozen=True, slots=True, eq=False)
class CacheEntry:
    """The cached keys and values of one token prefix.

    Attributes:
        layers: per layer, ``(keys, values)`` of shape ``(1, heads, length, head_dim)``.
        length: the number of tokens covered.
        extra: anything the owner keeps beside the cache (a PRM's step scores).
    """

    layers: tuple[tuple[torch.Tensor, torch.Tensor], ...]
    length: int
    extra: Any = None

    def shortened(self, length: int) -> CacheEntry:
        """The entry for the first ``length`` tokens (views, no copy)."""
        if not 0 < length <= self.length:
            raise ValueError(f"cannot shorten an entry of {self.length} tokens to {length}")
        layers = tuple((k[:, :, :length], v[:, :, :length]) for k, v in self.layers)
        return CacheEntry(layers, length)


class KVCacheStore:
    """A bounded LRU store of :class:`CacheEntry` records.

    Args:
        max_entries: at most this many entries.
        max_tokens: at most this many cached tokens over all entries (an entry of ``length``
            tokens costs ``length``; entries share nothing, so this bounds memory:
            ``max_tokens x layers x 2 x kv_heads x head_dim x bytes`` in all).

    The least recently used entries are evicted first. A lookup touches the entry, so while a
    search walks down the tree the entries it still needs stay recent. An evicted entry only
    costs recomputation: a state whose prefix is missing is re-encoded from its deepest cached
    ancestor.
    """

    def __init__(self, *, max_entries: int = 4096, max_tokens: int = 1 << 18) -> None:
        for name, value in (("max_entries", max_entries), ("max_tokens", max_tokens)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an int, got {value!r}")
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        self.max_entries = max_entries
        self.max_tokens = max_tokens
        self._entries: OrderedDict[Hashable, CacheEntry] = OrderedDict()
        self._tokens = 0
        self.hits = 0
        self.misses = 0
        self.evictions = 0

    def get(self, key: Hashable) -> CacheEntry | None:
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        self.hits += 1
        self._entries.move_to_end(key)
        return entry

    def __contains__(self, key: Hashable) -> bool:
        return key in self._entries

    def put(self, key: Hashable, entry: CacheEntry) -> None:
        """Add or replace ``key``; evicts the oldest entries beyond the limits."""
        old = self._entries.pop(key, None)
        if old is not None:
            self._tokens -= old.length
        if entry.length > self.max_tokens:
            return  # would evict everything and still not fit
        self._entries[key] = entry
        self._tokens += entry.length
        while len(self._entries) > self.max_entries or self._tokens > self.max_tokens:
            _, dropped = self._entries.popitem(last=False)
            self._tokens -= dropped.length
            self.evictions += 1

    def clear(self) -> None:
        self._entries.clear()
        self._tokens = 0

    @property
    def tokens(self) -> int:
        """Cached tokens over all entries."""
        return self._tokens

    def __len__(self) -> int:
        return len(self._entries)


def resolve_dtype(dtype: object) -> torch.dtype | None:
    """``None``, a ``torch.dtype``, or one of ``"bf16"``, ``"fp16"``, ``"fp32"``."""
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    if isinstance(dtype, str) and dtype.lower() in _DTYPES:
        return _DTYPES[dtype.lower()]
    raise ValueError(
        f"dtype must be None, a torch.dtype or one of {sorted(_DTYPES)}, got {dtype!r}"
    )


def check_tokenizer_and_reuse(tokenizer: Any, kv_reuse: object) -> None:
    """The checks every model wrapper (policy or verifier) makes on its tokenizer and flag."""
    if not callable(tokenizer) or not hasattr(tokenizer, "decode"):
        raise TypeError(
            f"tokenizer must be a transformers tokenizer, got {type(tokenizer).__name__}"
        )
    if not isinstance(kv_reuse, bool):
        raise TypeError(f"kv_reuse must be True or False, got {kv_reuse!r}")


def prepare_model(model: Any, device: object, dtype: object) -> tuple[Any, torch.device]:
    """Check ``model`` is a decoder-only torch module, put it in eval mode on ``device`` (and
    ``dtype`` when given); returns the model and the device."""
    if not isinstance(model, torch.nn.Module) or not callable(getattr(model, "forward", None)):
        raise TypeError(f"model must be a transformers PreTrainedModel, got {type(model).__name__}")
    config = getattr(model, "config", None)
    if config is None:
        raise TypeError(f"model {type(model).__name__} has no .config; pass a transformers model")
    if getattr(config, "is_encoder_decoder", False):
        raise TypeError(
            f"{type(model).__name__} is an encoder-decoder model; tree search adapters need a "
            "decoder-only model (AutoModelForCausalLM and friends)"
        )
    try:
        dev = torch.device(device)  # type: ignore[call-overload]
    except (TypeError, RuntimeError) as exc:
        raise ValueError(
            f"device must be a torch device such as 'cpu' or 'cuda', got {device!r}"
        ) from exc
    torch_dtype = resolve_dtype(dtype)
    model = model.to(device=dev, dtype=torch_dtype) if torch_dtype is not None else model.to(dev)
    model.eval()
    return model, dev


def accepts_logits_to_keep(model: Any) -> bool:
    """Whether ``model.forward`` takes ``logits_to_keep`` (causal LMs compute the LM head only
    where asked, which matters for large vocabularies)."""
    model_type = type(model)
    known = _LOGITS_TO_KEEP.get(model_type)
    if known is None:
        try:
            known = "logits_to_keep" in inspect.signature(model.forward).parameters
        except (TypeError, ValueError):
            known = False
        _LOGITS_TO_KEEP[model_type] = known
    return known


_LOGITS_TO_KEEP: dict[type, bool] = {}


@dataclass(slots=True)
class RowBatch:
    """A batched cache after :func:`forward_rows`.

    Attributes:
        cache: the model's cache for all rows (updated in place by further forward passes).
        mask: ``(rows, width)`` attention mask, 1 for real tokens, 0 for padding.
        lengths: real tokens per row (the position of the row's next token).
        tail_start: column where the new-token part starts.
    """

    cache: DynamicCache
    mask: torch.Tensor
    lengths: torch.Tensor
    tail_start: int

    def select(self, index: torch.Tensor) -> None:
        """Keep (and repeat) rows ``index`` in that order."""
        self.cache.batch_select_indices(index)
        self.mask = self.mask[index]
        self.lengths = self.lengths[index]


def _padded_cache(
    entries: Sequence[CacheEntry | None], width: int, device: torch.device
) -> DynamicCache:
    """A cache holding each entry left-padded (with zeros) to ``width`` tokens."""
    template = next(e for e in entries if e is not None and e.length > 0)
    layers = []
    for index, (tk, tv) in enumerate(template.layers):
        keys, values = [], []
        for entry in entries:
            if entry is None or entry.length == 0:
                k = tk.new_zeros((1, tk.shape[1], width, tk.shape[3]))
                v = tv.new_zeros((1, tv.shape[1], width, tv.shape[3]))
            else:
                k, v = entry.layers[index]
                pad = width - entry.length
                if pad:
                    k = torch.cat([k.new_zeros((1, k.shape[1], pad, k.shape[3])), k], dim=2)
                    v = torch.cat([v.new_zeros((1, v.shape[1], pad, v.shape[3])), v], dim=2)
            keys.append(k.to(device))
            values.append(v.to(device))
        layers.append((torch.cat(keys, dim=0), torch.cat(values, dim=0)))
    return DynamicCache(layers)


def forward_rows(
    model: Any,
    rows: Sequence[tuple[CacheEntry | None, Sequence[int]]],
    *,
    device: torch.device,
    pad_id: int,
    logits_to_keep: int | torch.Tensor | None = None,
) -> tuple[Any, RowBatch]:
    """Run every row's new tokens after its cached prefix, in one batched forward pass.

    Args:
        model: a decoder-only transformers model.
        rows: ``(entry or None, new token ids)`` per row; every row needs at least one new
            token.
        device: the model's device.
        pad_id: the id written at padded slots (masked out; any valid id).
        logits_to_keep: passed to models whose ``forward`` accepts it (an int keeps the last
            columns, a 1-D tensor the listed columns).

    Returns:
        The model output and the :class:`RowBatch`; new token ``j`` of row ``i`` (of ``n_i``)
        sits at column ``tail_start + tail_width - n_i + j``.
    """
    if not rows:
        raise ValueError("forward_rows needs at least one row")
    prefix_width = max((e.length if e is not None else 0) for e, _ in rows)
    tail_width = max(len(t) for _, t in rows)
    if min(len(t) for _, t in rows) < 1:
        raise ValueError("every row needs at least one new token")
    count = len(rows)
    ids = torch.full((count, tail_width), pad_id, dtype=torch.long)
    mask = torch.zeros((count, prefix_width + tail_width), dtype=torch.long)
    positions = torch.zeros((count, tail_width), dtype=torch.long)
    lengths = torch.zeros(count, dtype=torch.long)
    for i, (entry, tail) in enumerate(rows):
        cached = entry.length if entry is not None else 0
        start = tail_width - len(tail)
        ids[i, start:] = torch.tensor(list(tail), dtype=torch.long)
        mask[i, prefix_width - cached : prefix_width] = 1
        mask[i, prefix_width + start :] = 1
        positions[i, start:] = torch.arange(cached, cached + len(tail))
        lengths[i] = cached + len(tail)
    if prefix_width:
        cache = _padded_cache([e for e, _ in rows], prefix_width, device)
    else:
        cache = DynamicCache()
    kwargs: dict[str, Any] = {
        "input_ids": ids.to(device),
        "attention_mask": mask.to(device),
        "position_ids": positions.to(device),
        "past_key_values": cache,
        "use_cache": True,
    }
    if logits_to_keep is not None and accepts_logits_to_keep(model):
        kwargs["logits_to_keep"] = (
            logits_to_keep.to(device)
            if isinstance(logits_to_keep, torch.Tensor)
            else logits_to_keep
        )
    with torch.inference_mode():
        out = model(**kwargs)
    return out, RowBatch(cache, mask.to(device), lengths.to(device), prefix_width)


def extend(model: Any, batch: RowBatch, tokens: torch.Tensor) -> Any:
    """Feed one new token per row (``tokens`` of shape ``(rows,)``) after the batch's cache."""
    batch.mask = torch.cat([batch.mask, batch.mask.new_ones((batch.mask.shape[0], 1))], dim=1)
    kwargs: dict[str, Any] = {
        "input_ids": tokens.view(-1, 1),
        "attention_mask": batch.mask,
        "position_ids": batch.lengths.view(-1, 1),
        "past_key_values": batch.cache,
        "use_cache": True,
    }
    if accepts_logits_to_keep(model):
        kwargs["logits_to_keep"] = 1
    with torch.inference_mode():
        out = model(**kwargs)
    batch.lengths = batch.lengths + 1
    return out


def row_entry(
    batch: RowBatch,
    row: int,
    *,
    upto: int | None = None,
    extra: Any = None,
) -> CacheEntry:
    """Row ``row`` of ``batch``'s cache as a compact entry (its first ``upto`` real tokens)."""
    real = torch.nonzero(batch.mask[row], as_tuple=True)[0]
    if upto is not None:
        real = real[:upto]
    layers = []
    for layer in batch.cache.layers:
        keys = getattr(layer, "keys", None)
        values = getattr(layer, "values", None)
        if keys is None or values is None:
            raise TypeError(
                "this model's cache has layers without keys/values; KV reuse needs "
                "a full-attention DynamicCache (pass kv_reuse=False)"
            )
        keys = keys[row : row + 1]
        values = values[row : row + 1]
        idx = real.to(keys.device)
        layers.append((keys.index_select(2, idx), values.index_select(2, idx)))
    return CacheEntry(tuple(layers), int(real.numel()), extra)
