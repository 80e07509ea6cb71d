"""Games and toy problems for treesearch, installed as ``treesearch.games``.

* :class:`TicTacToe`, :class:`ConnectFour`, :class:`Gomoku`: two-player board games as
  immutable states.
* :class:`Bandit`, :class:`Chain`, :class:`DeceptiveTrap`, :class:`ExplicitTree`: toy problems
  with known optimal values, for testing search.
"""

if __name__ != "treesearch.games":
    raise ImportError("import this package as treesearch.games, not 'games'")

from .connect_four import ConnectFour
from .gomoku import Gomoku
from .tictactoe import TicTacToe
from .toys import Bandit, Chain, DeceptiveTrap, ExplicitTree

__all__ = [
    "Bandit",
    "Chain",
    "ConnectFour",
    "DeceptiveTrap",
    "ExplicitTree",
    "Gomoku",
    "TicTacToe",
]
