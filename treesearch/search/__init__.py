"""Search algorithms, one module each."""

from .mcts_star import MCTSStar
from .ts_llm import MCTSAlpha, MCTSRollout

__all__ = ["MCTSAlpha", "MCTSRollout", "MCTSStar"]
