"""Token accounting for LLM tree search: tokens processed per unique token of the tree.

``docs/design.md`` section 4 and target P5: with prefix (KV) reuse, every token of a search
tree runs through the policy and through the verifier about once, so

    ratio = tokens the component ran through its model during the search
            / unique tokens of the search tree in that component's input

is close to 1 (a little below when leaves were never expanded or scored; above when caches
were evicted or duplicate samples were discarded). A naive loop that re-encodes every prefix
on every call is several times higher, growing with depth.

Unique tokens are counted per component, in its own tokenization: the prompt (or the
verifier's question prefix) once, plus every distinct node's own step once (the policy's
generated tokens; the verifier's step tokens with its step tag). Each component says what a
node adds through ``node_tokens(state)``; ``tokens_processed`` counts real (non-padding) tokens.

Usage::

    policy.reset_counters(); prm.reset_counters()
    result = BeamSearch(policy, prm, n=8, beam_width=4).search(root, Budget(tokens=4096), rng=rng)
    token_ratios(result, policy=policy, verifier=prm)   # {"policy": 0.97, "verifier": 0.99, ...}
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any, Protocol, runtime_checkable

from treesearch.results import SearchResult
from treesearch.tree import Tree

__all__ = ["TokenCounting", "token_ratios", "tree_tokens"]


@runtime_checkable
class TokenCounting(Protocol):
    """A model component that counts its work: the adapters' policies and verifiers."""

    tokens_processed: int

    def node_tokens(self, state: Any) -> int: ...


def _tree_of(result_or_tree: object) -> Tree:
    if isinstance(result_or_tree, SearchResult):
        return result_or_tree.tree
    if isinstance(result_or_tree, Tree):
        return result_or_tree
    raise TypeError(f"expected a SearchResult or a Tree, got {type(result_or_tree).__name__}")


def tree_tokens(result_or_tree: SearchResult | Tree, component: TokenCounting) -> int:
    """Unique tokens of the tree in ``component``'s input: the root's prompt once plus each
    distinct node state's own step once."""
    if not isinstance(component, TokenCounting):
        raise TypeError(
            f"{type(component).__name__} does not count tokens (needs tokens_processed and "
            "node_tokens(state))"
        )
    tree = _tree_of(result_or_tree)
    seen: set[Hashable] = set()
    total = 0
    for node in range(tree.num_nodes):
        state = tree.state(node)
        key = state.key
        if key in seen:
            continue
        seen.add(key)
        total += component.node_tokens(state)
    return total


def token_ratios(
    result_or_tree: SearchResult | Tree,
    *,
    policy: TokenCounting | None = None,
    verifier: TokenCounting | None = None,
) -> dict[str, float]:
    """``tokens_processed / tree_tokens`` for the policy and the verifier.

    Call ``reset_counters()`` on both before the search, so ``tokens_processed`` covers the
    search alone. Returns ``{"policy": ratio, "policy_processed": n, "policy_tree": u, ...}``
    with the same three keys for ``"verifier"``, for the components given.
    """
    if policy is None and verifier is None:
        raise ValueError("token_ratios needs policy= or verifier= (or both)")
    out: dict[str, float] = {}
    for name, component in (("policy", policy), ("verifier", verifier)):
        if component is None:
            continue
        unique = tree_tokens(result_or_tree, component)
        processed = component.tokens_processed
        out[name] = processed / unique if unique else float("nan")
        out[f"{name}_processed"] = float(processed)
        out[f"{name}_tree"] = float(unique)
    return out
