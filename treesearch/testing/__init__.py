"""Conformance checks and test helpers for treesearch users.

* :func:`check_state`, :func:`check_policy`, :func:`check_verifier`, :func:`check_evaluator`:
  run a user's own State / Policy / Verifier / Evaluator through the contracts and raise
  :class:`ConformanceError` listing every problem, each naming what to fix.
* :func:`assert_tree_invariants`: structural and statistical invariants of a search tree.
* :class:`HashEvaluator`: a deterministic evaluator for tests and golden trees.
* :class:`TokenPolicy`: a policy whose candidates (the legal actions) cost tokens.
* ``treesearch.testing.strategies``: hypothesis strategies (random game trees, verifiers,
  budgets, seeds). It imports hypothesis, so it is loaded only when first used.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from .checks import (
    ConformanceError,
    assert_tree_invariants,
    check_evaluator,
    check_policy,
    check_state,
    check_verifier,
)
from .fakes import HashEvaluator, TokenPolicy

__all__ = [
    "ConformanceError",
    "HashEvaluator",
    "TokenPolicy",
    "assert_tree_invariants",
    "check_evaluator",
    "check_policy",
    "check_state",
    "check_verifier",
]


def __getattr__(name: str) -> ModuleType:
    # ``treesearch.testing.strategies`` needs hypothesis; import it only on first use.
    if name == "strategies":
        return importlib.import_module(f"{__name__}.strategies")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
