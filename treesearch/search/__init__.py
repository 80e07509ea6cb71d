"""Search algorithms, one module each."""

from .mcts_star import MCTSStar

__all__ = ["MCTSStar"]
