"""Training loops for treesearch, installed as ``treesearch.train``.

* :mod:`treesearch.train.alphazero`: AlphaZero self-play training for Gomoku, with atomic
  checkpoints that survive a kill (:func:`~treesearch.train.alphazero.train`).

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
