"""Fixtures shared by the adapter tests."""

from __future__ import annotations

import importlib.util

import pytest


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    # Tiny models run much faster on one intra-op thread on the shared 2-core machine, and
    # float sums then do not depend on the thread count. Without torch there is nothing to set.
    if importlib.util.find_spec("torch") is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
