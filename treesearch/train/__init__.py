"""Training loops for treesearch, installed as ``treesearch.train``.

* :mod:`treesearch.train.alphazero`: AlphaZero self-play training for Gomoku, with atomic
  checkpoints that survive a kill (:func:`~treesearch.train.alphazero.train`).
* :mod:`treesearch.train.sft`, :mod:`treesearch.train.prm`,
  :mod:`treesearch.train.math_shepherd`: step-wise SFT of a policy, PRM/ORM training
  (label words at the step separators, or a value head) with the ProcessBench F1, and
  Math-Shepherd Monte-Carlo step labels; :mod:`treesearch.train.toymath_recipe` trains the
  shipped toy-math policy, PRM and ORM. Import them directly (they import torch).

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
