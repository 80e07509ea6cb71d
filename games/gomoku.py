"""Gomoku (k in a row on a square board) as an immutable, fast
:class:`~treesearch.interfaces.State`, with the eight board symmetries for AlphaZero training.

Rules: two players place stones on empty cells of a ``size x size`` board, black (player 0)
first. The first player with ``k`` stones in an unbroken horizontal, vertical or diagonal line
wins. Under the default freestyle rule a line of ``k`` or more wins; with ``exact=True`` only a
line of exactly ``k`` does (an overline, ``k + 1`` or more, does not win, and play goes on).
A full board without a winning line is a draw. Actions are the cells ``row * size + col``,
numbered exactly as OpenSpiel's ``gomoku`` game numbers them (row 0 is the top row of
:meth:`Gomoku.__str__`, as in OpenSpiel's printout); freestyle with ``k=5`` is OpenSpiel's
``gomoku`` with ``connect=5``.

Representation (rotated bitboards, as in chess engines): each player's stones are one Python
int holding the board four times, once per line direction, laid out so that every line of the
board (each row, column, diagonal and anti-diagonal) is a run of consecutive bits followed by
one always-empty separator bit. A line of ``k`` stones in *any* direction is then ``k``
consecutive set bits, found with ``ceil(log2 k) + 1`` shift-and steps (three for ``k = 5``)
on the whole int; the result is masked to the windows that contain the last move, so the win
test looks only through the four lines of the last move. The exact rule also requires an empty
(or off-board) cell at both ends of the run. Legal actions are a sorted tuple, cached and
derived from the parent's by removing one cell.

:meth:`Gomoku.random_playout` plays a uniformly random game to the end on these ints and a list
of empty cells, without creating positions; :class:`~treesearch.evaluators.RandomRollout` uses
it. Values follow the project's sign rule: :meth:`Gomoku.terminal_value` is for the player to
move at the terminal state, so a win by the previous mover is ``-1.0`` and a draw ``0.0``.

Move filters for search: :meth:`Gomoku.forced_actions` gives the decisive and anti-decisive
moves one move deep (Teytaud & Teytaud, CIG 2010), and :meth:`Gomoku.threat_defences` the
answers to a threat two moves deep, an open or broken three about to become an open four
(threat-space search: Allis, van den Herik & Huntjens, "Go-Moku and Threat-Space Search", 1993).
Both are computed exactly, by brute force over candidate cells on the bitboards.

Module functions :func:`symmetries`, :func:`transform` and :func:`inverse_transform` map
``(C, H, W)`` input planes and a flat ``(H * W,)`` policy through the eight rotations and
reflections of the square (the dihedral group D4), for training-data augmentation (Silver et
al. 2017, "Mastering the game of Go without human knowledge").
"""

from __future__ import annotations

import operator
import os
import tempfile
from bisect import bisect_left
from collections.abc import Hashable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

import numpy as np

from treesearch.backup import value_for_player

if TYPE_CHECKING:
    from os import PathLike

__all__ = [
    "Gomoku",
    "format_move",
    "inverse_transform",
    "parse_move",
    "symmetries",
    "transform",
    "transform_action",
]

MIN_SIZE = 2
MAX_SIZE = 26  # one column letter per column, a..z
_COLUMN_LETTERS = "abcdefghijklmnopqrstuvwxyz"
_STONE_CHARS = ".XO"  # empty, black (player 0), white (player 1)

_new = object.__new__
_set = object.__setattr__


# --------------------------------------------------------------------------- coordinates
def _check_size(size: Any) -> int:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)):
        raise TypeError(f"Gomoku size must be an int, got {type(size).__name__} {size!r}")
    size = int(size)
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise ValueError(f"Gomoku size must be in {MIN_SIZE}..{MAX_SIZE}, got {size}")
    return size


def format_move(action: int, size: int) -> str:
    """The coordinate of cell ``action`` on a ``size x size`` board, like ``"e5"``.

    Columns are letters ``a, b, ...`` from the left (no letter skipped); rows are numbers
    ``1..size`` counted from the bottom, as in Gomoku diagrams. Action ``row * size + col``
    has row 0 at the top, so it is written ``letter(col)`` + ``str(size - row)``.

    Raises:
        TypeError: ``action`` or ``size`` is not an int.
        ValueError: ``size`` out of range, or ``action`` not a cell of the board.
    """
    size = _check_size(size)
    action = _as_action(action, size * size)
    if not 0 <= action < size * size:
        raise ValueError(f"Gomoku action must be in 0..{size * size - 1}, got {action}")
    row, col = divmod(action, size)
    return f"{_COLUMN_LETTERS[col]}{size - row}"


def parse_move(text: str, size: int) -> int:
    """The action of the coordinate ``text`` (``"e5"``, ``"E5"``, ``" h8 "``); see
    :func:`format_move`.

    Raises:
        TypeError: ``text`` is not a string.
        ValueError: ``text`` is not a column letter followed by a row number on this board.
    """
    size = _check_size(size)
    if not isinstance(text, str):
        raise TypeError(f"Gomoku move must be a string like 'e5', got {type(text).__name__}")
    cleaned = text.strip().lower()
    if len(cleaned) < 2 or cleaned[0] not in _COLUMN_LETTERS or not cleaned[1:].isdigit():
        raise ValueError(
            f"Gomoku move must be a column letter and a row number, like 'e5', got {text!r}"
        )
    col = _COLUMN_LETTERS.index(cleaned[0])
    number = int(cleaned[1:])
    last = _COLUMN_LETTERS[size - 1]
    if col >= size or not 1 <= number <= size:
        raise ValueError(
            f"Gomoku move {text!r} is off the {size}x{size} board (columns a..{last}, "
            f"rows 1..{size})"
        )
    return (size - number) * size + col


def _as_action(action: Any, num_cells: int) -> int:
    """``action`` as a plain int; ``TypeError`` for bools, floats, strings and other non-ints."""
    if isinstance(action, bool):
        raise TypeError(f"Gomoku action must be an int in 0..{num_cells - 1}, got bool {action!r}")
    try:
        return operator.index(action)
    except TypeError:
        hint = " (use parse_move for coordinates like 'e5')" if isinstance(action, str) else ""
        raise TypeError(
            f"Gomoku action must be an int in 0..{num_cells - 1}, got "
            f"{type(action).__name__} {action!r}{hint}"
        ) from None


# --------------------------------------------------------------------------- rules tables
class _Rules:
    """Tables shared by every position of one ``(size, k, exact)`` variant.

    ``cell_bits[a]`` has the four bits of cell ``a`` (one per direction section);
    ``window_starts[a]`` has the start bits of every ``k``-window that contains cell ``a`` in
    each section; ``run_shifts`` are the shift-and steps that leave bit ``s`` set exactly where
    bits ``s .. s + k - 1`` all are.
    """

    __slots__ = (
        "all_bits",
        "all_cells",
        "cell_bits",
        "exact",
        "five",
        "k",
        "near_cells",
        "near_mask",
        "num_bytes",
        "num_cells",
        "row_bits",
        "run_shifts",
        "size",
        "window_starts",
    )

    def __init__(self, size: int, k: int, exact: bool) -> None:
        self.size = size
        self.k = k
        self.exact = exact
        self.num_cells = size * size
        self.all_cells: tuple[int, ...] = tuple(range(size * size))
        cell_bits = [0] * (size * size)
        starts = [0] * (size * size)
        position = 0
        lines: list[list[tuple[int, int]]] = []
        lines += [[(r, c) for c in range(size)] for r in range(size)]  # rows: first section
        lines += [[(r, c) for r in range(size)] for c in range(size)]  # columns
        lines += [  # diagonals going down to the right, r - c constant
            [(r, r - d) for r in range(size) if 0 <= r - d < size] for d in range(-(size - 1), size)
        ]
        lines += [  # anti-diagonals going down to the left, r + c constant
            [(r, s - r) for r in range(size) if 0 <= s - r < size] for s in range(2 * size - 1)
        ]
        window = (1 << k) - 1
        for line in lines:
            for r, c in line:
                action = r * size + c
                cell_bits[action] |= 1 << position
                low = max(position - k + 1, 0)
                starts[action] |= (window >> (low - (position - k + 1))) << low
                position += 1
            position += 1  # the separator: a run of stones never crosses it
        self.cell_bits: tuple[int, ...] = tuple(cell_bits)
        self.all_bits = sum(cell_bits)  # every cell in every section, separators excluded
        self.window_starts: tuple[int, ...] = tuple(starts)
        # The row section comes first, cell (r, c) at bit r * (size + 1) + c: planes read it.
        self.row_bits = (1 << (size * (size + 1))) - 1
        self.num_bytes = (size * (size + 1) + 7) // 8
        shifts, length = [], 1
        while 2 * length <= k:
            shifts.append(length)
            length *= 2
        if length < k:
            shifts.append(k - length)  # two overlapping runs of `length` make one of k
        self.run_shifts: tuple[int, ...] = tuple(shifts)
        # Freestyle five in a row: the shift-and steps (1, 2, 1), unrolled in the hot loops.
        self.five = k == 5 and not exact
        # The cells a stone at `a` shares a k-window with: on its four lines, at most k - 1
        # away. Only they can change which lines through `a` a player may complete.
        near_cells: list[tuple[int, ...]] = []
        near_mask: list[int] = []
        for action in range(size * size):
            r, c = divmod(action, size)
            near = []
            for dr, dc in ((0, 1), (1, 0), (1, 1), (1, -1)):
                for step in range(-(k - 1), k):
                    rr, cc = r + step * dr, c + step * dc
                    if step and 0 <= rr < size and 0 <= cc < size:
                        near.append(rr * size + cc)
            near_cells.append(tuple(sorted(near)))
            near_mask.append(sum(1 << x for x in near) | 1 << action)
        self.near_cells: tuple[tuple[int, ...], ...] = tuple(near_cells)
        self.near_mask: tuple[int, ...] = tuple(near_mask)  # over actions, `a` itself included

    def runs(self, bits: int) -> int:
        """Start bits of every winning run in ``bits`` (k in a row; exactly k if ``exact``)."""
        m = bits
        for shift in self.run_shifts:
            m &= m >> shift
        if self.exact:
            # Exactly k: the cells just before and just after the run are not the player's.
            m &= ~((bits << 1) | (bits >> self.k))
        return m

    def completions(self, bits: int, empty: int) -> int:
        """Bits of the empty cells that would complete a winning run for the stones ``bits``:
        windows of ``k`` cells holding ``k - 1`` of them and one empty cell, in any section."""
        k = self.k
        found = 0
        for gap in range(k):
            m = empty >> gap
            for i in range(k):
                if i != gap:
                    m &= bits >> i
            found |= m << gap
        return found

    def four_makers(self, bits: int, empty: int) -> int:
        """Bits of the empty cells in a window of ``k`` cells that holds ``k - 2`` of the
        stones ``bits`` and two empty cells: every move that can give those stones a winning
        cell next (a "four") is among them (exactly them under freestyle rules)."""
        k = self.k
        found = 0
        for first in range(k - 1):
            for second in range(first + 1, k):
                m = (empty >> first) & (empty >> second)
                for i in range(k):
                    if i != first and i != second:
                        m &= bits >> i
                found |= (m << first) | (m << second)
        return found

    def winning_cells_after(self, bits: int, empty: int, action: int) -> int:
        """How many empty cells would win for the stones ``bits`` once ``action`` (already
        in ``bits``, no longer in ``empty``) is played, capped at 2.

        Assumes those stones had no winning cell before ``action``: every winning cell is then
        on a line through ``action``, in one direction only, so under freestyle rules the set
        bits of :meth:`completions` count distinct cells.
        """
        found = self.completions(bits, empty)
        if not found:
            return 0
        if not self.exact:
            return min(found.bit_count(), 2)
        cell_bits = self.cell_bits
        count = 0
        for cell in self.near_cells[action]:
            bit = cell_bits[cell]
            if found & bit and self.wins_through(bits | bit, cell):
                count += 1
                if count == 2:
                    break
        return count

    def wins_through(self, bits: int, action: int) -> bool:
        """Whether ``bits`` hold a winning run through cell ``action``."""
        return bool(self.runs(bits) & self.window_starts[action])

    def plane(self, bits: int) -> np.ndarray:
        """The stones in ``bits`` as a ``(size, size)`` uint8 array of 0/1."""
        size = self.size
        raw = np.frombuffer((bits & self.row_bits).to_bytes(self.num_bytes, "little"), np.uint8)
        flat = np.unpackbits(raw, count=size * (size + 1), bitorder="little")
        return flat.reshape(size, size + 1)[:, :size]


_RULES: dict[tuple[int, int, bool], _Rules] = {}


def _rules_for(size: Any, k: Any, exact: Any) -> _Rules:
    key = (size, k, exact)
    rules = _RULES.get(key) if type(size) is int and type(k) is int else None
    if rules is not None and type(exact) is bool:
        return rules
    size = _check_size(size)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"Gomoku k must be an int, got {type(k).__name__} {k!r}")
    k = int(k)
    if not 2 <= k <= size:
        raise ValueError(f"Gomoku k (stones in a row to win) must be in 2..{size}, got {k}")
    if not isinstance(exact, (bool, np.bool_)):
        raise TypeError(f"Gomoku exact must be True or False, got {exact!r}")
    exact = bool(exact)
    rules = _RULES.get((size, k, exact))
    if rules is None:
        rules = _RULES[(size, k, exact)] = _Rules(size, k, exact)
    return rules


# --------------------------------------------------------------------------- the state
class Gomoku:
    """A Gomoku position; ``Gomoku(size=15, k=5)`` is the empty board with black to move.

    ``Gomoku(size=9)`` and ``Gomoku(size=7)`` are the small presets (both five in a row);
    ``exact=True`` makes exactly ``k`` in a row win (overlines do not). Instances are immutable
    and hashable; :meth:`step` returns a new position. Build positions with :meth:`from_moves`
    (actions or coordinates like ``"h8"``) or :meth:`from_string`.

    Raises:
        TypeError, ValueError: for a size outside 2..26, ``k`` outside ``2..size``, or a
            non-bool ``exact``.
    """

    __slots__ = (
        "_black",
        "_history",
        "_last_move",
        "_legal",
        "_num_moves",
        "_rules",
        "_to_play",
        "_white",
        "_winner",
    )
    _rules: _Rules
    _black: int  # player 0's stones, in the rotated-bitboard layout of _Rules
    _white: int
    _num_moves: int
    _to_play: int
    _winner: int | None
    _last_move: int | None
    # The moves played since the setup position, newest first, as nested pairs
    # (move, (move, (... None))): O(1) per step and shared between positions.
    _history: tuple[int, Any] | None
    _legal: tuple[int, ...] | None

    def __init__(self, size: int = 15, k: int = 5, *, exact: bool = False) -> None:
        rules = _rules_for(size, k, exact)
        _set(self, "_rules", rules)
        _set(self, "_black", 0)
        _set(self, "_white", 0)
        _set(self, "_num_moves", 0)
        _set(self, "_to_play", 0)
        _set(self, "_winner", None)
        _set(self, "_last_move", None)
        _set(self, "_history", None)
        _set(self, "_legal", rules.all_cells)

    @classmethod
    def _make(
        cls,
        rules: _Rules,
        black: int,
        white: int,
        num_moves: int,
        to_play: int,
        winner: int | None,
        last_move: int | None,
        history: tuple[int, Any] | None,
        legal: tuple[int, ...] | None,
    ) -> Gomoku:
        state = _new(cls)
        _set(state, "_rules", rules)
        _set(state, "_black", black)
        _set(state, "_white", white)
        _set(state, "_num_moves", num_moves)
        _set(state, "_to_play", to_play)
        _set(state, "_winner", winner)
        _set(state, "_last_move", last_move)
        _set(state, "_history", history)
        _set(state, "_legal", legal)
        return state

    @classmethod
    def from_moves(
        cls, moves: Iterable[int | str], *, size: int = 15, k: int = 5, exact: bool = False
    ) -> Gomoku:
        """The position after playing ``moves`` from the empty board.

        A move is an action (int) or a coordinate string such as ``"h8"`` (:func:`parse_move`).

        Raises:
            ValueError, TypeError: as :meth:`step` and :func:`parse_move` do, for the first
                illegal move.
        """
        state = cls(size, k, exact=exact)
        for move in moves:
            state = state.step(parse_move(move, size) if isinstance(move, str) else move)
        return state

    @classmethod
    def from_string(cls, board: str, *, k: int = 5, exact: bool = False) -> Gomoku:
        """The position drawn by ``board``: ``size`` rows of ``size`` cells, top row first.

        Cells are ``X`` (black, player 0), ``O`` (white, player 1) or ``.``; rows are lines or
        separated by ``/``. Every other character (spaces, row numbers, the column-letter line,
        the ``( )`` around the last move) is ignored, so ``str(state)`` parses back. The board
        size is the number of rows. The player to move follows from the counts (black moves
        first). The result has no move history: ``last_move`` is ``None``.

        Raises:
            ValueError: rows of different lengths or not square, impossible counts, winning
                lines for both players, or a winner who did not move last. (Positions where
                the winner kept playing after winning are not detected.)
        """
        if not isinstance(board, str):
            raise TypeError(f"Gomoku.from_string needs a string, got {type(board).__name__}")
        rows = []
        for line in board.replace("/", "\n").splitlines():
            cells = "".join(ch for ch in line if ch in _STONE_CHARS)
            if cells:
                rows.append(cells)
        size = len(rows)
        if size < MIN_SIZE or any(len(row) != size for row in rows):
            raise ValueError(
                f"Gomoku board must be a square of {MIN_SIZE}..{MAX_SIZE} rows of 'X', 'O' or "
                f"'.' cells (top row first), got rows of lengths {[len(r) for r in rows]}: "
                f"{board!r}"
            )
        rules = _rules_for(size, k, exact)
        black = white = 0
        for r, row in enumerate(rows):
            for c, ch in enumerate(row):
                if ch == "X":
                    black |= rules.cell_bits[r * size + c]
                elif ch == "O":
                    white |= rules.cell_bits[r * size + c]
        n_black = sum(row.count("X") for row in rows)
        n_white = sum(row.count("O") for row in rows)
        return cls._from_setup(rules, black, white, n_black, n_white, board)

    @classmethod
    def _from_setup(
        cls, rules: _Rules, black: int, white: int, n_black: int, n_white: int, text: str
    ) -> Gomoku:
        if n_black - n_white not in (0, 1):
            raise ValueError(
                f"Gomoku board has {n_black} X and {n_white} O; X (black) moves first, so X "
                f"must have as many stones as O or one more: {text!r}"
            )
        black_wins, white_wins = bool(rules.runs(black)), bool(rules.runs(white))
        if black_wins and white_wins:
            raise ValueError(f"Gomoku board has a winning line for both players: {text!r}")
        if (black_wins and n_black != n_white + 1) or (white_wins and n_black != n_white):
            raise ValueError(f"Gomoku board has a winner who did not move last: {text!r}")
        winner = 0 if black_wins else 1 if white_wins else None
        state = cls._make(
            rules, black, white, n_black + n_white, n_black - n_white, winner, None, None, None
        )
        return state

    # -- State protocol ---------------------------------------------------------------------

    @property
    def to_play(self) -> int:
        """Player to move: 0 (black) or 1 (white). At a terminal state, who would move."""
        return self._to_play

    @property
    def key(self) -> Hashable:
        """``(black_bits, white_bits, to_play)``: equal for equal positions of one variant."""
        return (self._black, self._white, self._to_play)

    def legal_actions(self) -> tuple[int, ...]:
        """Empty cells in increasing order; empty when the game is over."""
        legal = self._legal
        if legal is None:
            if self._winner is not None:
                legal = ()
            else:
                occupied = self._black | self._white
                legal = tuple(
                    [a for a, bit in enumerate(self._rules.cell_bits) if not occupied & bit]
                )
            _set(self, "_legal", legal)
        return legal

    def step(self, action: int) -> Gomoku:
        """The position after the player to move puts a stone on cell ``action``.

        Raises:
            TypeError: ``action`` is not an int (bools, floats and strings included).
            ValueError: the game is over, ``action`` is off the board, or the cell is taken.
        """
        rules = self._rules
        if type(action) is not int:
            action = _as_action(action, rules.num_cells)
        legal = self._legal
        if legal is None:
            legal = self.legal_actions()
        i = bisect_left(legal, action)
        if i == len(legal) or legal[i] != action:  # over (no legal moves), off board or taken
            raise self._illegal(action)
        bit = rules.cell_bits[action]
        player = self._to_play
        black, white = self._black, self._white
        if player == 0:
            black |= bit
            mine = black
        else:
            white |= bit
            mine = white
        if rules.five:  # the usual rule unrolled: runs of 2, 4, then 5 stones
            runs = mine & (mine >> 1)
            runs &= runs >> 2
            runs &= runs >> 1
        else:
            runs = rules.runs(mine)
        won = runs & rules.window_starts[action]
        state = _new(Gomoku)
        _set(state, "_rules", rules)
        _set(state, "_black", black)
        _set(state, "_white", white)
        _set(state, "_num_moves", self._num_moves + 1)
        _set(state, "_to_play", 1 - player)
        _set(state, "_winner", player if won else None)
        _set(state, "_last_move", action)
        _set(state, "_history", (action, self._history))
        _set(state, "_legal", () if won else legal[:i] + legal[i + 1 :])
        return state

    def winning_moves(self, player: int | None = None) -> tuple[int, ...]:
        """The empty cells where ``player`` (default: the player to move) would complete a
        winning line at once; empty when the game is over."""
        if self._winner is not None:
            return ()
        if player is None:
            player = self._to_play
        if player not in (0, 1):
            raise ValueError(f"Gomoku player must be 0 or 1, got {player!r}")
        rules = self._rules
        mine = self._black if player == 0 else self._white
        legal = self.legal_actions()
        cell_bits = rules.cell_bits
        if rules.exact:  # an overline does not win: test each candidate move exactly
            return tuple(a for a in legal if rules.wins_through(mine | cell_bits[a], a))
        empty = rules.all_bits & ~(self._black | self._white)
        found = rules.completions(mine, empty)
        if not found:
            return ()
        return tuple(a for a in legal if cell_bits[a] & found)

    def forced_actions(self) -> tuple[int, ...] | None:
        """Decisive and anti-decisive moves (Teytaud & Teytaud, "On the huge benefit of
        decisive moves in Monte-Carlo tree search algorithms", CIG 2010): the moves that win at
        once, if any; else the cells where the opponent would win at once, which must be
        blocked; ``None`` when neither exists (or the game is over). Every other move loses to
        or fails to take an immediate win, so a search may consider only these
        (``MCTS(decisive_moves=True)``)."""
        if self.is_terminal():
            return None
        wins = self.winning_moves(self._to_play)
        if wins:
            return wins
        blocks = self.winning_moves(1 - self._to_play)
        return blocks or None

    def double_threat_moves(self, player: int | None = None) -> tuple[int, ...]:
        """The empty cells where ``player`` (default: the opponent of the player to move)
        would get two or more distinct winning cells at once (an open four, or two fours),
        which one stone cannot both block. Meaningful when ``player`` has no winning cell
        yet; ``()`` when the game is over or ``player`` can already win at once."""
        if self._winner is not None:
            return ()
        if player is None:
            player = 1 - self._to_play
        if player not in (0, 1):
            raise ValueError(f"Gomoku player must be 0 or 1, got {player!r}")
        if self.winning_moves(player):
            return ()
        rules = self._rules
        bits = self._black if player == 0 else self._white
        empty = rules.all_bits & ~(self._black | self._white)
        return self._double_threats(bits, empty)

    def _double_threats(self, bits: int, empty: int) -> tuple[int, ...]:
        """Empty cells (of ``empty``) where the stones ``bits``, which have no winning cell,
        would get two; candidates are the cells that can make a four at all."""
        rules = self._rules
        makers = rules.four_makers(bits, empty)
        if not makers:
            return ()
        cell_bits = rules.cell_bits
        out = []
        for action in self.legal_actions():
            bit = cell_bits[action]
            if makers & bit and rules.winning_cells_after(bits | bit, empty & ~bit, action) >= 2:
                out.append(action)
        return tuple(out)

    def threat_defences(self) -> tuple[int, ...]:
        """Defences against a threat two moves deep, from threat-space search (Allis, van den
        Herik & Huntjens, "Go-Moku and Threat-Space Search", 1993).

        When neither player can win at once (:meth:`forced_actions` is ``None``) but the
        opponent has a move that would give it two winning cells (an open three or a broken
        three ``X.XX`` becoming an open four, or two fours at once;
        :meth:`double_threat_moves`), every move outside this set loses by force: the
        opponent makes the double threat, one stone blocks one of its winning cells, and it
        wins with the other. The set holds (a) the moves that make a four (after them the
        player to move has a winning cell, so the opponent must answer it) and (b) the moves
        after which the opponent has no such double-threat move any more (blocks at the ends
        or in the gap of the three). Sorted actions.

        Returns ``()`` when there is no such threat (or the game is over, or a win or block
        one move deep exists: :meth:`forced_actions` covers those), and also when no move
        answers the threat (every move loses; nothing to choose between). Moves in the set
        are not proven safe: only the others are proven lost.
        """
        if self.is_terminal() or self.forced_actions() is not None:
            return ()
        rules = self._rules
        cell_bits = rules.cell_bits
        mine, theirs = (
            (self._black, self._white) if self._to_play == 0 else (self._white, self._black)
        )
        empty = rules.all_bits & ~(self._black | self._white)
        threats = self._double_threats(theirs, empty)
        if not threats:
            return ()
        # (b): a stone of the player to move only takes cells from the opponent, so its double
        # threats afterwards are among `threats`, and it spoils one only from a cell sharing a
        # window with it (or on it): a defence lies near every threat cell. Each candidate is
        # then checked exactly.
        candidates = rules.near_mask[threats[0]]
        for cell in threats[1:]:
            candidates &= rules.near_mask[cell]
        keep: set[int] = set()
        while candidates:
            low = candidates & -candidates
            candidates ^= low
            action = low.bit_length() - 1
            bit = cell_bits[action]
            if not empty & bit:
                continue
            after = empty & ~bit
            if not any(
                cell != action
                and rules.winning_cells_after(
                    theirs | cell_bits[cell], after & ~cell_bits[cell], cell
                )
                >= 2
                for cell in threats
            ):
                keep.add(action)
        # (a): the player's own fours, which the opponent must answer first.
        makers = rules.four_makers(mine, empty)
        if makers:
            for action in self.legal_actions():
                bit = cell_bits[action]
                if makers & bit and rules.winning_cells_after(mine | bit, empty & ~bit, action):
                    keep.add(action)
        return tuple(sorted(keep))

    def threat_space_actions(self) -> tuple[int, ...] | None:
        """:meth:`forced_actions` one move deeper, for ``MCTS(move_filter=...)``: the only
        moves worth searching, or ``None`` for all of them. In order:

        1. :meth:`forced_actions`, when it names moves (win now, else block);
        2. the moves that give the player to move two winning cells
           (``double_threat_moves(to_play)``): each wins in three, since the opponent can
           neither win at once nor block both;
        3. :meth:`threat_defences`, when the opponent threatens such a move;
        4. when it does and nothing answers it, the opponent's threat cells (every move loses
           in three; a search proves that fastest through one of them);
        5. else ``None``.
        """
        forced = self.forced_actions()
        if forced is not None:
            return forced
        wins = self.double_threat_moves(self._to_play)
        if wins:
            return wins
        defences = self.threat_defences()
        if defences:
            return defences
        return self.double_threat_moves(1 - self._to_play) or None

    def _illegal(self, action: int) -> ValueError:
        rules = self._rules
        if self._winner is not None or self._num_moves == rules.num_cells:
            return ValueError(
                f"Gomoku: cannot play {self._describe(action)}, the game is over "
                f"({self._outcome_text()})\n{self}"
            )
        if not 0 <= action < rules.num_cells:
            return ValueError(
                f"Gomoku action must be a cell in 0..{rules.num_cells - 1} of the "
                f"{rules.size}x{rules.size} board, got {action}"
            )
        return ValueError(
            f"Gomoku: cell {format_move(action, rules.size)} (action {action}) is already "
            f"taken\n{self}"
        )

    def is_terminal(self) -> bool:
        """True once a player has a winning line or the board is full."""
        return self._winner is not None or self._num_moves == self._rules.num_cells

    def terminal_value(self) -> float | None:
        """``-1.0`` if the previous mover won, ``0.0`` for a draw, ``None`` if not terminal."""
        if self._winner is not None:
            return -1.0
        return 0.0 if self._num_moves == self._rules.num_cells else None

    # -- Rollouts ---------------------------------------------------------------------------

    def random_playout(
        self, rng: np.random.Generator, *, block: int = 64, max_depth: int = 10_000
    ) -> float:
        """Play uniformly random moves to the end; the outcome for the player to move here.

        The fast path of :class:`~treesearch.evaluators.RandomRollout`: one list of empty cells
        and the two bitboards, no positions created, and after each move the win test through
        that move alone. It consumes ``rng`` exactly as the generic playout does:
        ``rng.random(block)`` before moves ``0, block, 2 * block, ...``, and move ``d`` plays
        ``legal_actions()[int(u[d % block] * len(legal_actions()))]`` (the empty cells in
        increasing order), so for the same generator state both return the same value. At most
        ``max_depth`` moves are played; a playout that has not reached a terminal position
        after ``max_depth - 1`` moves is worth ``0.0``, as is a draw.
        """
        player = self._to_play
        if self._winner is not None or self._num_moves == self._rules.num_cells:
            if max_depth < 1:
                return 0.0
            return value_for_player(-1.0 if self._winner is not None else 0.0, player, player)
        rules = self._rules
        mine, theirs = (self._black, self._white) if player == 0 else (self._white, self._black)
        legal = list(self.legal_actions())
        num_legal = start_legal = len(legal)
        pop = legal.pop
        cell_bits = rules.cell_bits
        starts = rules.window_starts
        five = rules.five
        shifts, exact, k = rules.run_shifts, rules.exact, rules.k
        draw = rng.random
        depth = 0  # moves played before the current block
        while depth < max_depth:
            uniforms = draw(block).tolist()
            if max_depth - depth < block:
                uniforms = uniforms[: max_depth - depth]
            for u in uniforms:
                action = pop(int(u * num_legal))
                num_legal -= 1
                mine |= cell_bits[action]
                if five:  # the common case unrolled: five or more in a row
                    m = mine & (mine >> 1)
                    m &= m >> 2
                    m &= m >> 1
                else:
                    m = mine
                    for shift in shifts:
                        m &= m >> shift
                    if exact:
                        m &= ~((mine << 1) | (mine >> k))
                if m & starts[action]:
                    return _playout_end(start_legal - num_legal, player, -1.0, max_depth)
                if not num_legal:  # the board is full: a draw
                    return _playout_end(start_legal, player, 0.0, max_depth)
                mine, theirs = theirs, mine
            depth += block
        return 0.0

    # -- Extras -----------------------------------------------------------------------------

    @property
    def size(self) -> int:
        """Board side length."""
        return self._rules.size

    @property
    def k(self) -> int:
        """Stones in a row needed to win."""
        return self._rules.k

    @property
    def exact(self) -> bool:
        """Whether only exactly ``k`` in a row wins (overlines do not)."""
        return self._rules.exact

    @property
    def num_actions(self) -> int:
        """Size of the fixed action space, ``size * size``, for policy-value networks."""
        return self._rules.num_cells

    @property
    def num_moves(self) -> int:
        """Stones on the board."""
        return self._num_moves

    @property
    def last_move(self) -> int | None:
        """The action played last, or ``None`` (the empty board, or a position from a string)."""
        return self._last_move

    @property
    def winner(self) -> int | None:
        """The player (0 black, 1 white) with a winning line, or ``None``."""
        return self._winner

    @property
    def moves(self) -> tuple[int, ...]:
        """The actions played since the setup position (the empty board, unless the position
        was built by :meth:`from_string`), oldest first."""
        out = []
        node = self._history
        while node is not None:
            out.append(node[0])
            node = node[1]
        out.reverse()
        return tuple(out)

    @property
    def board(self) -> np.ndarray:
        """``(size, size)`` int8 array, row 0 at the top: 0 empty, 1 black, 2 white."""
        rules = self._rules
        board = rules.plane(self._black).astype(np.int8)
        board += 2 * rules.plane(self._white).astype(np.int8)
        return board

    def planes(self) -> np.ndarray:
        """Network input: float32 ``(4, size, size)``.

        Planes: the stones of the player to move, the opponent's stones, the last move (one-hot,
        all zero when there is none), and the side to move (all ones when black, player 0, is
        to move, zeros otherwise).
        """
        rules = self._rules
        size = rules.size
        out = np.zeros((4, size, size), dtype=np.float32)
        mine, theirs = (
            (self._black, self._white)
            if self._to_play == 0
            else (
                self._white,
                self._black,
            )
        )
        out[0] = rules.plane(mine)
        out[1] = rules.plane(theirs)
        if self._last_move is not None:
            out[2].flat[self._last_move] = 1.0
        if self._to_play == 0:
            out[3] = 1.0
        return out

    def winning_line(self) -> tuple[int, ...]:
        """The cells of the winning line through the last move (all of it, an overline
        included under freestyle), in board order; ``()`` if the game was not won by a move."""
        action = self._last_move
        if self._winner is None or action is None:
            return ()
        rules = self._rules
        size, k = rules.size, rules.k
        board = self.board
        stone = board.flat[action]
        row, col = divmod(action, size)
        for dr, dc in ((0, 1), (1, 0), (1, 1), (1, -1)):
            cells = [(row, col)]
            for sign in (1, -1):
                r, c = row + sign * dr, col + sign * dc
                while 0 <= r < size and 0 <= c < size and board[r, c] == stone:
                    cells.append((r, c))
                    r, c = r + sign * dr, c + sign * dc
            if len(cells) == k or (len(cells) > k and not rules.exact):
                return tuple(sorted(r * size + c for r, c in cells))
        return ()  # pragma: no cover - a won position always has its line

    def _describe(self, action: int) -> str:
        size = self._rules.size
        if 0 <= action < size * size:
            return f"{format_move(action, size)} (action {action})"
        return str(action)

    def _outcome_text(self) -> str:
        if self._winner is not None:
            return f"{'black' if self._winner == 0 else 'white'} (player {self._winner}) won"
        return "the board is full, a draw"

    def __str__(self) -> str:
        """The board with coordinates: ``X`` black, ``O`` white, ``.`` empty, the last move in
        parentheses, row numbers on the left, column letters below."""
        size = self._rules.size
        board = self.board
        last = self._last_move
        width = len(str(size))
        lines = []
        for r in range(size):
            row = [" "] * (2 * size + 1)
            for c in range(size):
                row[2 * c + 1] = _STONE_CHARS[board[r, c]]
            if last is not None and last // size == r:
                c = last % size
                row[2 * c], row[2 * c + 2] = "(", ")"
            lines.append(f"{size - r:>{width}}" + "".join(row).rstrip())
        lines.append(" " * width + " " + " ".join(_COLUMN_LETTERS[:size]))
        return "\n".join(lines)

    def __repr__(self) -> str:
        rules = self._rules
        options = f"size={rules.size}, k={rules.k}" + (", exact=True" if rules.exact else "")
        moves = self.moves
        if len(moves) == self._num_moves:
            return f"Gomoku.from_moves({list(moves)!r}, {options})"
        rows = ["".join(_STONE_CHARS[v] for v in row) for row in self.board]
        extra = f", k={rules.k}" + (", exact=True" if rules.exact else "")
        return f"Gomoku.from_string({'/'.join(rows)!r}{extra})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Gomoku):
            return NotImplemented
        return (
            self._rules is other._rules
            and self._black == other._black
            and self._white == other._white
        )

    def __hash__(self) -> int:
        return hash(self.key)

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError(f"Gomoku is immutable; cannot set {name!r}")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError(f"Gomoku is immutable; cannot delete {name!r}")

    def __reduce__(self) -> tuple[Any, ...]:
        rules = self._rules
        moves = self.moves
        setup_black, setup_white = self._black, self._white
        for i, action in enumerate(reversed(moves)):
            # Undo the recorded moves: the newest was played by the side not to move now.
            mover = 1 - self._to_play if i % 2 == 0 else self._to_play
            if mover == 0:
                setup_black &= ~rules.cell_bits[action]
            else:
                setup_white &= ~rules.cell_bits[action]
        return (
            _rebuild,
            (rules.size, rules.k, rules.exact, setup_black, setup_white, moves),
        )

    # -- Pictures ---------------------------------------------------------------------------

    def to_svg(
        self,
        *,
        numbers: bool = False,
        highlight_last: bool = True,
        highlight: Iterable[int] | None = None,
        cell: int = 32,
        coordinates: bool = True,
    ) -> str:
        """The position as a standalone SVG document (a string).

        Args:
            numbers: write the move number on every stone played since the setup position.
            highlight_last: mark the last move with a red dot.
            highlight: cells to ring in red; by default the winning line, if any.
            cell: pixels between grid lines.
            coordinates: draw the column letters and row numbers.

        Raises:
            ValueError: ``cell`` not positive or a highlighted cell off the board.
        """
        if isinstance(cell, bool) or not isinstance(cell, int) or cell < 4:
            raise ValueError(f"cell must be an int >= 4 (pixels), got {cell!r}")
        size = self._rules.size
        marked = self.winning_line() if highlight is None else _checked_cells(highlight, size)
        margin = cell if coordinates else cell // 2 + 2
        extent = 2 * margin + (size - 1) * cell
        radius = cell * 0.46

        def xy(action: int) -> tuple[float, float]:
            r, c = divmod(action, size)
            return margin + c * cell, margin + r * cell

        parts = [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{extent}" height="{extent}" '
            f'viewBox="0 0 {extent} {extent}" font-family="sans-serif">',
            f'<rect width="{extent}" height="{extent}" fill="#dcb35c"/>',
        ]
        low, high = margin, margin + (size - 1) * cell
        for i in range(size):
            pos = margin + i * cell
            parts.append(
                f'<line x1="{low}" y1="{pos}" x2="{high}" y2="{pos}" stroke="#000" '
                f'stroke-width="1"/>'
            )
            parts.append(
                f'<line x1="{pos}" y1="{low}" x2="{pos}" y2="{high}" stroke="#000" '
                f'stroke-width="1"/>'
            )
        for action in _star_points(size):
            x, y = xy(action)
            parts.append(f'<circle cx="{x}" cy="{y}" r="{cell * 0.1:.1f}" fill="#000"/>')
        if coordinates:
            font = max(8, int(cell * 0.4))
            for i in range(size):
                pos = margin + i * cell
                parts.append(
                    f'<text x="{pos}" y="{extent - margin * 0.35:.1f}" font-size="{font}" '
                    f'text-anchor="middle">{_COLUMN_LETTERS[i]}</text>'
                )
                parts.append(
                    f'<text x="{margin * 0.45:.1f}" y="{pos}" font-size="{font}" '
                    f'text-anchor="middle" dominant-baseline="central">{size - i}</text>'
                )
        numbering: dict[int, int] = {}
        if numbers:
            first = self._num_moves - len(self.moves) + 1
            numbering = {a: first + i for i, a in enumerate(self.moves)}
        board = self.board.ravel()
        for action in np.flatnonzero(board).tolist():
            x, y = xy(action)
            black = board[action] == 1
            fill, ink = ("#000", "#fff") if black else ("#fff", "#000")
            parts.append(
                f'<circle cx="{x}" cy="{y}" r="{radius:.1f}" fill="{fill}" stroke="#000" '
                f'stroke-width="1"/>'
            )
            if action in numbering:
                label = numbering[action]
                number_font = cell * (0.45 if label < 100 else 0.36)
                parts.append(
                    f'<text x="{x}" y="{y}" font-size="{number_font:.1f}" fill="{ink}" '
                    f'text-anchor="middle" dominant-baseline="central">{label}</text>'
                )
        for action in marked:
            x, y = xy(action)
            parts.append(
                f'<circle cx="{x}" cy="{y}" r="{radius + 1.5:.1f}" fill="none" stroke="#d00" '
                f'stroke-width="2.5"/>'
            )
        if highlight_last and self._last_move is not None and not numbers:
            x, y = xy(self._last_move)
            parts.append(f'<circle cx="{x}" cy="{y}" r="{cell * 0.13:.1f}" fill="#d00"/>')
        parts.append("</svg>")
        return "\n".join(parts) + "\n"

    def save_image(self, path: str | PathLike[str], **svg_options: Any) -> None:
        """Write the position to ``path``: ``.svg`` (from :meth:`to_svg`, options passed on)
        or ``.png`` (drawn with matplotlib, imported here). Written atomically.

        Raises:
            ValueError: another file extension.
        """
        target = os.fspath(path)
        suffix = os.path.splitext(target)[1].lower()
        if suffix not in (".svg", ".png"):
            raise ValueError(f"save_image writes .svg or .png files, got {target!r}")
        folder = os.path.dirname(os.path.abspath(target))
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".gomoku-", suffix=suffix)
        try:
            if suffix == ".svg":
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    f.write(self.to_svg(**svg_options))
            else:
                os.close(fd)
                self._save_png(tmp, **svg_options)
            os.replace(tmp, target)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    def _save_png(
        self,
        path: str,
        *,
        numbers: bool = False,
        highlight_last: bool = True,
        highlight: Iterable[int] | None = None,
        cell: int = 32,
        coordinates: bool = True,
    ) -> None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        size = self._rules.size
        marked = self.winning_line() if highlight is None else _checked_cells(highlight, size)
        dpi = 100
        inches = (size + 1) * cell / dpi
        fig = Figure(figsize=(inches, inches), dpi=dpi)
        FigureCanvasAgg(fig)
        ax = fig.add_axes((0, 0, 1, 1))
        ax.set_xlim(-1, size)
        ax.set_ylim(size, -1)  # row 0 at the top
        ax.set_aspect("equal")
        ax.axis("off")
        fig.patch.set_facecolor("#dcb35c")
        for i in range(size):
            ax.plot([0, size - 1], [i, i], color="black", linewidth=0.8, zorder=1)
            ax.plot([i, i], [0, size - 1], color="black", linewidth=0.8, zorder=1)
        for action in _star_points(size):
            r, c = divmod(action, size)
            ax.scatter([c], [r], s=(cell * 0.2) ** 2, color="black", zorder=2)
        fontsize = cell * 0.3
        if coordinates:
            for i in range(size):
                ax.text(
                    i, size - 0.4, _COLUMN_LETTERS[i], ha="center", va="center", fontsize=fontsize
                )
                ax.text(-0.6, i, str(size - i), ha="center", va="center", fontsize=fontsize)
        numbering: dict[int, int] = {}
        if numbers:
            first = self._num_moves - len(self.moves) + 1
            numbering = {a: first + i for i, a in enumerate(self.moves)}
        from matplotlib.patches import Circle

        board = self.board.ravel()
        for action in np.flatnonzero(board).tolist():
            r, c = divmod(action, size)
            black = board[action] == 1
            ax.add_patch(
                Circle(
                    (c, r),
                    0.46,
                    facecolor="black" if black else "white",
                    edgecolor="black",
                    zorder=3,
                )
            )
            if action in numbering:
                ax.text(
                    c,
                    r,
                    str(numbering[action]),
                    ha="center",
                    va="center",
                    fontsize=fontsize,
                    color="white" if black else "black",
                    zorder=4,
                )
        for action in marked:
            r, c = divmod(action, size)
            ax.add_patch(
                Circle((c, r), 0.5, facecolor="none", edgecolor="#d00", linewidth=2, zorder=5)
            )
        if highlight_last and self._last_move is not None and not numbers:
            r, c = divmod(self._last_move, size)
            ax.add_patch(Circle((c, r), 0.13, color="#d00", zorder=5))
        fig.savefig(path, format="png", dpi=dpi, facecolor=fig.get_facecolor())


def _rebuild(
    size: int, k: int, exact: bool, black: int, white: int, moves: Sequence[int]
) -> Gomoku:
    """Unpickle: the setup stones, then the recorded moves."""
    rules = _rules_for(size, k, exact)
    n_black = sum(1 for bits in rules.cell_bits if black & bits)
    n_white = sum(1 for bits in rules.cell_bits if white & bits)
    if n_black == n_white == 0:
        state = Gomoku(size, k, exact=exact)
    else:
        state = Gomoku._from_setup(rules, black, white, n_black, n_white, "(pickled position)")
    for move in moves:
        state = state.step(move)
    return state


def _star_points(size: int) -> list[int]:
    """Cells marked with a dot on the board picture: the centre, and on 13x13 or larger the
    four points three cells in from the corners (as on the 15x15 Renju board)."""
    if size % 2 == 0:
        return []
    centre = size // 2
    points = [(centre, centre)]
    if size >= 13:
        far = size - 4
        points += [(3, 3), (3, far), (far, 3), (far, far)]
    return [r * size + c for r, c in points]


def _checked_cells(cells: Iterable[int], size: int) -> list[int]:
    out = []
    for cell in cells:
        action = _as_action(cell, size * size)
        if not 0 <= action < size * size:
            raise ValueError(f"highlighted cell {action} is off the {size}x{size} board")
        out.append(action)
    return out


def _playout_end(moves: int, player: int, value: float, max_depth: int) -> float:
    """The value of a playout that reached a terminal position after ``moves`` moves.

    ``value`` is for the player to move there. The generic loop only sees that position if it
    has a round left for it, so one reached on the last allowed move counts as cut off, 0.0.
    """
    if moves >= max_depth:
        return 0.0
    return value_for_player(value, player ^ (moves & 1), player)


# --------------------------------------------------------------------------- symmetries
NUM_SYMMETRIES = 8


def _check_pair(planes: np.ndarray, policy: np.ndarray, index: int) -> tuple[int, int]:
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
        raise TypeError(f"symmetry index must be an int in 0..7, got {index!r}")
    if not 0 <= index < NUM_SYMMETRIES:
        raise ValueError(f"symmetry index must be in 0..7, got {index}")
    planes = np.asarray(planes)
    policy = np.asarray(policy)
    if planes.ndim != 3 or planes.shape[1] != planes.shape[2]:
        raise ValueError(f"planes must be (C, H, W) with H == W, got shape {planes.shape}")
    height = planes.shape[1]
    if policy.shape != (height * height,):
        raise ValueError(
            f"policy must be flat with H * W = {height * height} entries for planes of shape "
            f"{planes.shape}, got shape {policy.shape}"
        )
    return height, int(index)


def _apply(grid: np.ndarray, index: int) -> np.ndarray:
    """Symmetry ``index`` of the last two axes: ``index % 4`` quarter turns anticlockwise,
    after a left-right mirror when ``index >= 4``."""
    if index >= 4:
        grid = grid[..., ::-1]
    return np.rot90(grid, index % 4, axes=(-2, -1))


def _apply_inverse(grid: np.ndarray, index: int) -> np.ndarray:
    grid = np.rot90(grid, -(index % 4), axes=(-2, -1))
    if index >= 4:
        grid = grid[..., ::-1]
    return grid


def transform(planes: np.ndarray, policy: np.ndarray, index: int) -> tuple[np.ndarray, np.ndarray]:
    """Symmetry ``index`` (0..7) of ``(C, H, W)`` planes and their flat ``(H * W,)`` policy.

    Index 0 is the identity, 1..3 rotate by 90, 180, 270 degrees anticlockwise, 4..7 mirror
    left-right and then rotate likewise. The policy moves with the board: the probability of
    cell ``a`` lands on the cell where ``a``'s stone lands (:func:`transform_action`). Returns
    new arrays.

    Raises:
        ValueError, TypeError: an index outside 0..7, planes not ``(C, H, H)``, or a policy of
            the wrong shape.
    """
    height, index = _check_pair(planes, policy, index)
    new_planes = np.ascontiguousarray(_apply(np.asarray(planes), index))
    new_policy = np.ascontiguousarray(
        _apply(np.asarray(policy).reshape(height, height), index)
    ).reshape(-1)
    return new_planes, new_policy


def inverse_transform(
    planes: np.ndarray, policy: np.ndarray, index: int
) -> tuple[np.ndarray, np.ndarray]:
    """Undo :func:`transform` with the same ``index`` (for example, map a network's policy
    for a transformed board back to the original board)."""
    height, index = _check_pair(planes, policy, index)
    new_planes = np.ascontiguousarray(_apply_inverse(np.asarray(planes), index))
    new_policy = np.ascontiguousarray(
        _apply_inverse(np.asarray(policy).reshape(height, height), index)
    ).reshape(-1)
    return new_planes, new_policy


def symmetries(planes: np.ndarray, policy: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """All eight :func:`transform` results of ``(planes, policy)``, identity first."""
    return [transform(planes, policy, index) for index in range(NUM_SYMMETRIES)]


def transform_action(action: int, size: int, index: int) -> int:
    """Where cell ``action`` goes under symmetry ``index`` on a ``size x size`` board."""
    size = _check_size(size)
    action = _as_action(action, size * size)
    if not 0 <= action < size * size:
        raise ValueError(f"Gomoku action must be in 0..{size * size - 1}, got {action}")
    one_hot = np.zeros((1, size, size), dtype=np.int8)
    one_hot.flat[action] = 1
    return int(np.flatnonzero(transform(one_hot, one_hot.reshape(-1), index)[0])[0])
