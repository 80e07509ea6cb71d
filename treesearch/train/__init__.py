"""Training loops for treesearch, installed as ``treesearch.train``.

* :mod:`treesearch.train.alphazero`: AlphaZero self-play training for Gomoku, with atomic
  checkpoints that survive a kill (:func:`~treesearch.train.alphazero.train`).
* :mod:`treesearch.train.sft`, :mod:`treesearch.train.prm`,
  :mod:`treesearch.train.math_shepherd`: step-wise SFT of a policy, PRM/ORM training
  (label words at the step separators, or a value head) with the ProcessBench F1, and
  Math-Shepherd Monte-Carlo step labels; :mod:`treesearch.train.toymath_recipe` trains the
  shipped toy-math policy, PRM and ORM. Import them directly (they import torch).
* Learning from search traces (issue 5): :mod:`treesearch.train.traces` (the
  :class:`~treesearch.results.Trace` data path: traces from a tree, outcomes, the per-problem
  prefix tree), :mod:`treesearch.train.rest_mcts` (ReST-MCTS*, arXiv 2406.03816: value
  targets, policy and value data, the self-training loop), :mod:`treesearch.train.mcts_dpo`
  (MCTS-DPO, arXiv 2405.00451: step-level MCTS, preference pairs, DPO, the online loop),
  :mod:`treesearch.train.ts_llm` (TS-LLM critic training, arXiv 2309.17179; its searches are
  in :mod:`treesearch.search.ts_llm`), :mod:`treesearch.train.advantages` (GRPO and PRL
  advantages, step-level PPO rewards), and what the loops share: :mod:`treesearch.train.loop`
  (resume state, per-phase generators, progress events) and :mod:`treesearch.train.atomic`
  (atomic file writes). Import them directly.

``import treesearch`` never imports this package, and importing it loads no torch: torch and
matplotlib load only when a loop runs.
"""

from .alphazero import (
    AlphaZeroConfig,
    Checkpoint,
    ReplayBuffer,
    TrainProgress,
    TrainSummary,
    alphazero_loss,
    load_checkpoint,
    plot_curves,
    saved_config,
    train,
)

__all__ = [
    "AlphaZeroConfig",
    "Checkpoint",
    "ReplayBuffer",
    "TrainProgress",
    "TrainSummary",
    "alphazero_loss",
    "load_checkpoint",
    "plot_curves",
    "saved_config",
    "train",
]
