"""Connect four (6 rows, 7 columns, four in a row) as an immutable, fast
:class:`~treesearch.interfaces.State`.

Each player's stones are one int bitboard in the classic layout: column ``c`` uses bits
``7 * c .. 7 * c + 5`` (row 0 at the bottom) and bit ``7 * c + 6`` is an always-empty sentinel, so
shifting by 1 (vertical), 7 (horizontal), 6 and 8 (the two diagonals) never wraps from one column
into the next. A four is found with two shifts and two ands per direction, checking only the
player who just moved. Column heights are kept in a tuple.

:meth:`ConnectFour.random_playout` plays a uniformly random game to the end directly on the
bitboards, without creating positions; :class:`~treesearch.evaluators.RandomRollout` uses it.

Player 0 plays X and moves first; player 1 plays O. Actions are column indices ``0..6``. Values
follow the project's sign rule: :meth:`ConnectFour.terminal_value` is from the point of view of
the player to move at the terminal state, so a win by the previous mover is ``-1.0`` and a full
board without a four is ``0.0``.
"""

from __future__ import annotations

import operator
from collections.abc import Hashable, Iterable
from typing import TYPE_CHECKING, Any, NoReturn

from treesearch.backup import value_for_player

if TYPE_CHECKING:
    import numpy as np

__all__ = ["ConnectFour"]

ROWS = 6
COLUMNS = 7
_STRIDE = ROWS + 1  # bits per column, with the sentinel
_NUM_CELLS = ROWS * COLUMNS
# The bit of each column's top cell (row 5): a stone there fills the column.
_TOP_ROW = sum(1 << (c * _STRIDE + ROWS - 1) for c in range(COLUMNS))

_new = object.__new__
_set = object.__setattr__


def _has_four(bits: int) -> bool:
    """Whether ``bits`` (one player's stones) hold four in a row in any direction."""
    m = bits & (bits >> 1)  # vertical
    if m & (m >> 2):
        return True
    m = bits & (bits >> 7)  # horizontal
    if m & (m >> 14):
        return True
    m = bits & (bits >> 6)  # diagonal going down to the right
    if m & (m >> 12):
        return True
    m = bits & (bits >> 8)  # diagonal going up to the right
    return bool(m & (m >> 16))


def _as_action(action: Any) -> int:
    """``action`` as a plain int; ``TypeError`` for bools, floats, strings and other non-ints."""
    if isinstance(action, bool):
        raise TypeError(f"ConnectFour action must be an int in 0..6, got bool {action!r}")
    try:
        return operator.index(action)
    except TypeError:
        raise TypeError(
            f"ConnectFour action must be an int in 0..6, got {type(action).__name__} {action!r}"
        ) from None


class ConnectFour:
    """A connect-four position; ``ConnectFour()`` is the empty board with X (player 0) to move.

    Instances are immutable and hashable; :meth:`step` returns a new position. Build test
    positions with :meth:`from_moves` or :meth:`from_string`.
    """

    __slots__ = ("_bits", "_heights", "_legal", "_num_moves", "_to_play", "_winner")
    _bits: tuple[int, int]  # (X stones, O stones)
    _heights: tuple[int, ...]
    _num_moves: int
    _to_play: int
    _winner: int | None
    _legal: tuple[int, ...] | None  # computed on first use; searches ask for it repeatedly

    rows: int = ROWS
    columns: int = COLUMNS
    num_actions: int = COLUMNS
    """Size of the fixed action space (columns ``0..6``), for policy-value networks."""

    def __init__(self) -> None:
        _set(self, "_bits", (0, 0))
        _set(self, "_heights", (0,) * COLUMNS)
        _set(self, "_num_moves", 0)
        _set(self, "_to_play", 0)
        _set(self, "_winner", None)
        _set(self, "_legal", None)

    @classmethod
    def _make(
        cls,
        bits: tuple[int, int],
        heights: tuple[int, ...],
        num_moves: int,
        to_play: int,
        winner: int | None,
    ) -> ConnectFour:
        state = _new(cls)
        _set(state, "_bits", bits)
        _set(state, "_heights", heights)
        _set(state, "_num_moves", num_moves)
        _set(state, "_to_play", to_play)
        _set(state, "_winner", winner)
        _set(state, "_legal", None)
        return state

    @classmethod
    def from_moves(cls, moves: Iterable[int]) -> ConnectFour:
        """The position after dropping stones in the columns ``moves`` from the empty board.

        Raises:
            ValueError, TypeError: as :meth:`step` does, for the first illegal move.
        """
        state = cls()
        for move in moves:
            state = state.step(move)
        return state

    @classmethod
    def from_string(cls, board: str) -> ConnectFour:
        """The position drawn by ``board``: 6 rows of 7 cells (``X``, ``O``, ``.``), top row first.

        Whitespace and ``/`` are ignored, so both ``str(state)`` and the one-line form in
        ``repr(state)`` parse back. The player to move follows from the counts.

        Raises:
            ValueError: wrong size or characters, a stone above an empty cell, impossible counts,
                both players with a four, or a winner who did not make the last move.
                (Positions where the winner kept playing after winning are not detected.)
        """
        cells = "".join(board.replace("/", " ").split())
        if len(cells) != _NUM_CELLS or any(c not in "XO." for c in cells):
            raise ValueError(
                f"ConnectFour board must be {ROWS} rows of {COLUMNS} cells of 'X', 'O' or '.', "
                f"got {board!r}"
            )
        bits = [0, 0]
        heights = [0] * COLUMNS
        for col in range(COLUMNS):
            # cells[r * COLUMNS + col] is row r from the top; walk the column bottom-up.
            column = [cells[r * COLUMNS + col] for r in range(ROWS - 1, -1, -1)]
            height = 0
            while height < ROWS and column[height] != ".":
                bits[0 if column[height] == "X" else 1] |= 1 << (col * _STRIDE + height)
                height += 1
            if any(c != "." for c in column[height:]):
                raise ValueError(
                    f"ConnectFour board has a stone above an empty cell in column {col}: {board!r}"
                )
            heights[col] = height
        n_x, n_o = cells.count("X"), cells.count("O")
        if n_x - n_o not in (0, 1):
            raise ValueError(
                f"ConnectFour board has {n_x} X and {n_o} O; X moves first, so X must have as "
                f"many stones as O or one more: {board!r}"
            )
        x_wins, o_wins = _has_four(bits[0]), _has_four(bits[1])
        if x_wins and o_wins:
            raise ValueError(f"ConnectFour board has a four for both players: {board!r}")
        if (x_wins and n_x != n_o + 1) or (o_wins and n_x != n_o):
            raise ValueError(f"ConnectFour board has a winner who did not move last: {board!r}")
        winner = 0 if x_wins else 1 if o_wins else None
        return cls._make((bits[0], bits[1]), tuple(heights), n_x + n_o, n_x - n_o, winner)

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
        """Columns that are not full, in increasing order; empty when the game is over."""
        legal = self._legal
        if legal is None:
            h = self._heights
            legal = (
                ()
                if self._winner is not None
                else tuple([c for c in range(COLUMNS) if h[c] < ROWS])
            )
            _set(self, "_legal", legal)
        return legal

    def step(self, action: int) -> ConnectFour:
        """The position after the player to move drops a stone in column ``action``.

        Raises:
            TypeError: ``action`` is not an int (bools and floats included).
            ValueError: the game is over, ``action`` is outside ``0..6``, or the column is full.
        """
        if type(action) is not int:
            action = _as_action(action)
        if self._winner is not None or self._num_moves == _NUM_CELLS:
            raise ValueError(f"ConnectFour: cannot play {action}, the game is over\n{self}")
        if not 0 <= action < COLUMNS:
            raise ValueError(f"ConnectFour action must be a column in 0..6, got {action}")
        heights = self._heights
        height = heights[action]
        if height >= ROWS:
            raise ValueError(f"ConnectFour: column {action} is full\n{self}")
        bit = 1 << (action * _STRIDE + height)
        player = self._to_play
        x_bits, o_bits = self._bits
        if player == 0:
            x_bits |= bit
            winner = 0 if _has_four(x_bits) else None
        else:
            o_bits |= bit
            winner = 1 if _has_four(o_bits) else None
        new_heights = (*heights[:action], height + 1, *heights[action + 1 :])
        return self._make((x_bits, o_bits), new_heights, self._num_moves + 1, 1 - player, winner)

    def is_terminal(self) -> bool:
        """True once a player has four in a row or the board is full."""
        return self._winner is not None or self._num_moves == _NUM_CELLS

    def terminal_value(self) -> float | None:
        """``-1.0`` if the previous mover won, ``0.0`` for a draw, ``None`` if not terminal."""
        if self._winner is not None:
            return -1.0
        return 0.0 if self._num_moves == _NUM_CELLS else None

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
        if self._winner is not None or self._num_moves == _NUM_CELLS:
            if max_depth < 1:
                return 0.0
            return value_for_player(-1.0 if self._winner is not None else 0.0, player, player)
        x_bits, o_bits = self._bits
        mine, theirs = (x_bits, o_bits) if player == 0 else (o_bits, x_bits)
        start_stones = self._num_moves
        heights = self._heights
        # The next free cell of each column, as a bit; legal columns in increasing order.
        free = [1 << (c * _STRIDE + heights[c]) for c in range(COLUMNS)]
        legal = [c for c in range(COLUMNS) if heights[c] < ROWS]
        num_legal = len(legal)
        draw = rng.random
        top_row = _TOP_ROW
        depth = 0  # moves played before the current block
        while depth < max_depth:
            uniforms = draw(block).tolist()
            if max_depth - depth < block:
                uniforms = uniforms[: max_depth - depth]
            for u in uniforms:
                col = legal[int(u * num_legal)]
                bit = free[col]
                free[col] = bit << 1
                mine |= bit
                # A four for the mover: two shifts and two ands per direction.
                m = mine & (mine >> 7)
                if m & (m >> 14):
                    return self._playout_end(mine | theirs, start_stones, player, -1.0, max_depth)
                m = mine & (mine >> 1)
                if m & (m >> 2):
                    return self._playout_end(mine | theirs, start_stones, player, -1.0, max_depth)
                m = mine & (mine >> 8)
                if m & (m >> 16):
                    return self._playout_end(mine | theirs, start_stones, player, -1.0, max_depth)
                m = mine & (mine >> 6)
                if m & (m >> 12):
                    return self._playout_end(mine | theirs, start_stones, player, -1.0, max_depth)
                if bit & top_row:  # the column is now full
                    legal.remove(col)
                    num_legal -= 1
                    if not num_legal:  # the board is full: a draw
                        return self._playout_end(
                            mine | theirs, start_stones, player, 0.0, max_depth
                        )
                mine, theirs = theirs, mine
            depth += block
        return 0.0

    @staticmethod
    def _playout_end(
        stones: int, start_stones: int, player: int, value: float, max_depth: int
    ) -> float:
        """The value of a playout that reached a terminal position holding ``stones``.

        ``value`` is for the player to move there. The generic loop only sees that position if
        it has a round left for it, after ``moves`` moves, so one reached on the last allowed
        move counts as a cut-off playout, ``0.0``.
        """
        moves = stones.bit_count() - start_stones
        if moves >= max_depth:
            return 0.0
        return value_for_player(value, player ^ (moves & 1), player)

    # -- Extras -----------------------------------------------------------------------------

    @property
    def winner(self) -> int | None:
        """The player (0 or 1) with four in a row, or ``None``."""
        return self._winner

    @property
    def num_moves(self) -> int:
        """Stones on the board."""
        return self._num_moves

    @property
    def heights(self) -> tuple[int, ...]:
        """Stones in each column, column 0 first."""
        return self._heights

    @property
    def board(self) -> tuple[tuple[int, ...], ...]:
        """Six rows of seven cells, top row first: ``0`` X, ``1`` O, ``-1`` empty."""
        x_bits, o_bits = self._bits
        rows = []
        for row in range(ROWS - 1, -1, -1):
            cells = []
            for col in range(COLUMNS):
                shift = col * _STRIDE + row
                cells.append(0 if (x_bits >> shift) & 1 else 1 if (o_bits >> shift) & 1 else -1)
            rows.append(tuple(cells))
        return tuple(rows)

    def _rows(self) -> list[str]:
        return ["".join(".XO"[cell + 1] for cell in row) for row in self.board]

    def __str__(self) -> str:
        """The board, six lines of ``X``/``O``/``.``, top row first."""
        return "\n".join(self._rows())

    def __repr__(self) -> str:
        return f"ConnectFour.from_string({'/'.join(self._rows())!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ConnectFour):
            return NotImplemented
        return self._bits == other._bits and self._to_play == other._to_play

    def __hash__(self) -> int:
        return hash(self.key)

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError(f"ConnectFour is immutable; cannot set {name!r}")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError(f"ConnectFour is immutable; cannot delete {name!r}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            type(self)._make,
            (self._bits, self._heights, self._num_moves, self._to_play, self._winner),
        )
