"""Tic-tac-toe as an immutable :class:`~treesearch.interfaces.State`.

The board is two 9-bit bitboards, one per player; bit ``i`` is cell ``i`` in row-major order
(``i = 3 * row + col``). Player 0 plays X and moves first; player 1 plays O. Actions are the cell
indices ``0..8``.

Values follow the project's sign rule: :meth:`TicTacToe.terminal_value` is from the point of view
of :attr:`TicTacToe.to_play`, the player to move at the terminal state. Only the previous mover
can have just won, so a won position is worth ``-1.0`` to the player to move, a draw ``0.0``.

:meth:`TicTacToe.random_playout` plays a uniformly random game to the end on the bitboards,
without creating positions; :class:`~treesearch.evaluators.RandomRollout` uses it.
"""

from __future__ import annotations

import operator
from collections.abc import Hashable, Iterable
from typing import TYPE_CHECKING, Any, NoReturn

from treesearch.backup import value_for_player

if TYPE_CHECKING:
    import numpy as np

__all__ = ["TicTacToe"]

_FULL = 0b111_111_111
_LINES: tuple[int, ...] = (
    0b000_000_111,  # row 0
    0b000_111_000,  # row 1
    0b111_000_000,  # row 2
    0b001_001_001,  # column 0
    0b010_010_010,  # column 1
    0b100_100_100,  # column 2
    0b100_010_001,  # main diagonal: cells 0, 4, 8
    0b001_010_100,  # anti-diagonal: cells 2, 4, 6
)
# Legal actions for every occupancy mask, so legal_actions() is one table look-up.
_LEGAL: tuple[tuple[int, ...], ...] = tuple(
    tuple(i for i in range(9) if not (occupied >> i) & 1) for occupied in range(1 << 9)
)

_new = object.__new__
_set = object.__setattr__


def _has_line(bits: int) -> bool:
    return any(bits & line == line for line in _LINES)


# Whether each 9-bit mask of one player's marks holds a line, so step() is one look-up.
_HAS_LINE: tuple[bool, ...] = tuple(_has_line(bits) for bits in range(1 << 9))


def _as_action(action: Any) -> int:
    """``action`` as a plain int; ``TypeError`` for bools, floats, strings and other non-ints."""
    if isinstance(action, bool):
        raise TypeError(f"TicTacToe action must be an int in 0..8, got bool {action!r}")
    try:
        return operator.index(action)
    except TypeError:
        raise TypeError(
            f"TicTacToe action must be an int in 0..8, got {type(action).__name__} {action!r}"
        ) from None


class TicTacToe:
    """A tic-tac-toe position; ``TicTacToe()`` is the empty board with X (player 0) to move.

    Instances are immutable and hashable; :meth:`step` returns a new position. Build test
    positions with :meth:`from_moves` or :meth:`from_string`.
    """

    __slots__ = ("_bits", "_to_play", "_winner")
    _bits: tuple[int, int]  # (X marks, O marks)
    _to_play: int
    _winner: int | None

    num_actions: int = 9
    """Size of the fixed action space (cells ``0..8``), for policy-value networks."""

    def __init__(self) -> None:
        _set(self, "_bits", (0, 0))
        _set(self, "_to_play", 0)
        _set(self, "_winner", None)

    @classmethod
    def _make(cls, x_bits: int, o_bits: int, to_play: int, winner: int | None) -> TicTacToe:
        state = _new(cls)
        _set(state, "_bits", (x_bits, o_bits))
        _set(state, "_to_play", to_play)
        _set(state, "_winner", winner)
        return state

    @classmethod
    def from_moves(cls, moves: Iterable[int]) -> TicTacToe:
        """The position after playing ``moves`` (cell indices) from the empty board.

        Raises:
            ValueError, TypeError: as :meth:`step` does, for the first illegal move.
        """
        state = cls()
        for move in moves:
            state = state.step(move)
        return state

    @classmethod
    def from_string(cls, board: str) -> TicTacToe:
        """The position drawn by ``board``: 9 cells of ``X``, ``O`` or ``.`` in row-major order.

        Whitespace is ignored, so the output of ``str(state)`` parses back. The player to move
        follows from the counts (X moves first).

        Raises:
            ValueError: wrong length or characters, impossible counts, both players with a
                line, or a winner who did not make the last move. (Positions where the winner
                kept playing after winning are not detected.)
        """
        cells = "".join(board.split())
        if len(cells) != 9 or any(c not in "XO." for c in cells):
            raise ValueError(f"TicTacToe board must be 9 cells of 'X', 'O' or '.', got {board!r}")
        x_bits = sum(1 << i for i, c in enumerate(cells) if c == "X")
        o_bits = sum(1 << i for i, c in enumerate(cells) if c == "O")
        n_x, n_o = cells.count("X"), cells.count("O")
        if n_x - n_o not in (0, 1):
            raise ValueError(
                f"TicTacToe board has {n_x} X and {n_o} O; X moves first, so X must have as "
                f"many stones as O or one more: {board!r}"
            )
        x_wins, o_wins = _has_line(x_bits), _has_line(o_bits)
        if x_wins and o_wins:
            raise ValueError(f"TicTacToe board has a line for both players: {board!r}")
        if (x_wins and n_x != n_o + 1) or (o_wins and n_x != n_o):
            raise ValueError(f"TicTacToe board has a winner who did not move last: {board!r}")
        winner = 0 if x_wins else 1 if o_wins else None
        return cls._make(x_bits, o_bits, n_x - n_o, winner)

    # -- State protocol ---------------------------------------------------------------------

    @property
    def to_play(self) -> int:
        """Player to move: 0 (X) or 1 (O). At a terminal state, the player who would move."""
        return self._to_play

    @property
    def key(self) -> Hashable:
        """``(x_bits, o_bits, to_play)``: equal for equal positions."""
        x_bits, o_bits = self._bits
        return (x_bits, o_bits, self._to_play)

    def legal_actions(self) -> tuple[int, ...]:
        """Empty cells in increasing order; empty when the game is over."""
        if self._winner is not None:
            return ()
        x_bits, o_bits = self._bits
        return _LEGAL[x_bits | o_bits]

    def step(self, action: int) -> TicTacToe:
        """The position after the player to move marks cell ``action``.

        Raises:
            TypeError: ``action`` is not an int (bools and floats included).
            ValueError: the game is over, ``action`` is outside ``0..8``, or the cell is taken.
        """
        if type(action) is not int:
            action = _as_action(action)
        x_bits, o_bits = self._bits
        occupied = x_bits | o_bits
        if self._winner is not None or occupied == _FULL:
            raise ValueError(f"TicTacToe: cannot play {action}, the game is over\n{self}")
        if not 0 <= action < 9:
            raise ValueError(f"TicTacToe action must be in 0..8, got {action}")
        bit = 1 << action
        if occupied & bit:
            raise ValueError(f"TicTacToe: cell {action} is already taken\n{self}")
        player = self._to_play
        if player == 0:
            x_bits |= bit
            mover_bits = x_bits
        else:
            o_bits |= bit
            mover_bits = o_bits
        winner = player if _HAS_LINE[mover_bits] else None
        return self._make(x_bits, o_bits, 1 - player, winner)

    def is_terminal(self) -> bool:
        """True once a player has three in a line or the board is full."""
        x_bits, o_bits = self._bits
        return self._winner is not None or (x_bits | o_bits) == _FULL

    def terminal_value(self) -> float | None:
        """``-1.0`` if the previous mover won, ``0.0`` for a draw, ``None`` if not terminal."""
        if self._winner is not None:
            return -1.0
        x_bits, o_bits = self._bits
        return 0.0 if (x_bits | o_bits) == _FULL else None

    # -- Rollouts ---------------------------------------------------------------------------

    def random_playout(
        self, rng: np.random.Generator, *, block: int = 64, max_depth: int = 10_000
    ) -> float:
        """Play uniformly random moves to the end; the outcome for the player to move here.

        The fast path of :class:`~treesearch.evaluators.RandomRollout`, on the bitboards alone.
        It consumes ``rng`` exactly as the generic playout does: ``rng.random(block)`` before
        moves ``0, block, 2 * block, ...``, and move ``d`` plays
        ``legal_actions()[int(u[d % block] * len(legal_actions()))]``, so for the same
        generator state both return the same value. At most ``max_depth`` moves are played; a
        playout that has not reached a terminal position after ``max_depth - 1`` moves (the
        generic loop checks for the end before each move) is worth ``0.0``, as is a draw.
        """
        player = self._to_play
        x_bits, o_bits = self._bits
        occupied = x_bits | o_bits
        if self._winner is not None or occupied == _FULL:
            if max_depth < 1:
                return 0.0
            return value_for_player(-1.0 if self._winner is not None else 0.0, player, player)
        mine, theirs = (x_bits, o_bits) if player == 0 else (o_bits, x_bits)
        legal_table = _LEGAL
        has_line = _HAS_LINE
        moves = 0
        while moves < max_depth:  # at most 9 moves, so one block is enough unless block < 9
            uniforms = rng.random(block).tolist()
            if max_depth - moves < block:
                uniforms = uniforms[: max_depth - moves]
            for u in uniforms:
                legal = legal_table[occupied]
                bit = 1 << legal[int(u * len(legal))]
                mine |= bit
                occupied |= bit
                moves += 1
                if has_line[mine]:
                    value = -1.0
                elif occupied == _FULL:
                    value = 0.0
                else:
                    mine, theirs = theirs, mine
                    continue
                # The generic loop sees the end only with a round left after ``moves`` moves.
                if moves >= max_depth:
                    return 0.0
                return value_for_player(value, player ^ (moves & 1), player)
        return 0.0

    # -- Extras -----------------------------------------------------------------------------

    @property
    def winner(self) -> int | None:
        """The player (0 or 1) with three in a line, or ``None``."""
        return self._winner

    @property
    def board(self) -> tuple[tuple[int, ...], ...]:
        """Three rows of three cells, top row first: ``0`` X, ``1`` O, ``-1`` empty."""
        x_bits, o_bits = self._bits
        cells = [0 if (x_bits >> i) & 1 else 1 if (o_bits >> i) & 1 else -1 for i in range(9)]
        return tuple(tuple(cells[3 * r : 3 * r + 3]) for r in range(3))

    def _cells(self) -> str:
        x_bits, o_bits = self._bits
        return "".join(
            "X" if (x_bits >> i) & 1 else "O" if (o_bits >> i) & 1 else "." for i in range(9)
        )

    def __str__(self) -> str:
        cells = self._cells()
        return "\n".join(cells[3 * r : 3 * r + 3] for r in range(3))

    def __repr__(self) -> str:
        return f"TicTacToe.from_string({self._cells()!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TicTacToe):
            return NotImplemented
        return self._bits == other._bits and self._to_play == other._to_play

    def __hash__(self) -> int:
        return hash(self.key)

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError(f"TicTacToe is immutable; cannot set {name!r}")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError(f"TicTacToe is immutable; cannot delete {name!r}")

    def __reduce__(self) -> tuple[Any, ...]:
        x_bits, o_bits = self._bits
        return (type(self)._make, (x_bits, o_bits, self._to_play, self._winner))
