"""Tests for treesearch.games.connect_four: rules, perft counts, a naive reference, properties."""

from __future__ import annotations

import itertools
import pickle
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from treesearch.games import ConnectFour
from treesearch.interfaces import State

# A full board without a four, found by random play and checked against the reference below.
DRAWN_MOVES = [4, 3, 6, 0, 1, 4, 5, 5, 1, 1, 5, 0, 1, 6, 0, 1, 5, 5, 1, 0, 4]
DRAWN_MOVES += [6, 3, 2, 6, 6, 0, 4, 6, 5, 2, 0, 4, 2, 4, 2, 2, 2, 3, 3, 3, 3]


class ReferenceConnectFour:
    """Naive mutable connect four on a 2D list, rescanning every window for a four."""

    def __init__(self) -> None:
        self.grid = [[-1] * 7 for _ in range(6)]  # grid[row][col], row 0 at the bottom
        self.to_play = 0
        self.moves = 0
        self.winner: int | None = None

    def legal_actions(self) -> tuple[int, ...]:
        if self.winner is not None:
            return ()
        return tuple(c for c in range(7) if self.grid[5][c] == -1)

    def play(self, col: int) -> None:
        assert col in self.legal_actions()
        row = next(r for r in range(6) if self.grid[r][col] == -1)
        self.grid[row][col] = self.to_play
        self.moves += 1
        self.to_play = 1 - self.to_play
        self.winner = self._find_winner()

    def _find_winner(self) -> int | None:
        found = set()
        for r in range(6):
            for c in range(7):
                for dr, dc in ((0, 1), (1, 0), (1, 1), (1, -1)):
                    cells = [(r + i * dr, c + i * dc) for i in range(4)]
                    if all(0 <= rr < 6 and 0 <= cc < 7 for rr, cc in cells):
                        owners = {self.grid[rr][cc] for rr, cc in cells}
                        if len(owners) == 1 and -1 not in owners:
                            found |= owners
        assert len(found) <= 1
        return found.pop() if found else None

    def is_terminal(self) -> bool:
        return self.winner is not None or self.moves == 42

    def board(self) -> tuple[tuple[int, ...], ...]:
        return tuple(tuple(self.grid[r]) for r in range(5, -1, -1))


def _assert_matches(state: ConnectFour, ref: ReferenceConnectFour) -> None:
    assert state.legal_actions() == ref.legal_actions()
    assert state.is_terminal() == ref.is_terminal()
    assert state.winner == ref.winner
    assert state.to_play == ref.to_play
    assert state.board == ref.board()
    expected_value = None
    if ref.winner is not None:
        expected_value = -1.0
    elif ref.moves == 42:
        expected_value = 0.0
    assert state.terminal_value() == expected_value


def _win_then_check(moves: list[int], winner: int) -> ConnectFour:
    before = ConnectFour.from_moves(moves[:-1])
    assert before.winner is None and not before.is_terminal()
    s = before.step(moves[-1])
    assert s.winner == winner
    assert s.is_terminal()
    assert s.to_play == 1 - winner
    assert s.terminal_value() == -1.0
    assert s.legal_actions() == ()
    ref = ReferenceConnectFour()
    for m in moves:
        ref.play(m)
    _assert_matches(s, ref)
    return s


def _perft(depth: int) -> int:
    """Move sequences of length ``depth`` (stopping at finished games), counted iteratively."""
    if depth == 0:
        return 1
    total = 0
    stack = [(ConnectFour(), 0)]
    while stack:
        state, d = stack.pop()
        legal = state.legal_actions()
        if d == depth - 1:
            total += len(legal)
        else:
            stack.extend((state.step(a), d + 1) for a in legal)
    return total


def _play(choices: list[int]) -> list[ConnectFour]:
    states = [ConnectFour()]
    for choice in choices:
        legal = states[-1].legal_actions()
        if not legal:
            break
        states.append(states[-1].step(legal[choice % len(legal)]))
    return states


def test_empty_board() -> None:
    s = ConnectFour()
    assert isinstance(ConnectFour(), State)
    assert s.to_play == 0
    assert s.legal_actions() == tuple(range(7))
    assert s.heights == (0,) * 7
    assert not s.is_terminal()
    assert s.terminal_value() is None
    assert str(s) == "\n".join(["......."] * 6)


def test_horizontal_win() -> None:
    s = _win_then_check([0, 0, 1, 1, 2, 2, 3], winner=0)
    assert str(s).splitlines()[-2:] == ["OOO....", "XXXX..."]


def test_horizontal_win_at_the_right_edge() -> None:
    _win_then_check([4, 4, 5, 5, 6, 6, 3], winner=0)


def test_vertical_wins() -> None:
    _win_then_check([0, 1, 0, 1, 0, 1, 0], winner=0)
    _win_then_check([6, 0, 5, 0, 6, 0, 5, 0], winner=1)


def test_no_four_across_the_sentinel_row() -> None:
    # X holds the top three cells of column 0 and the bottom cell of column 1: consecutive
    # bits but for the sentinel between columns, so not a four.
    s = ConnectFour.from_string("X....../X....../X....../O....../O....../OX.....")
    assert s.winner is None and not s.is_terminal()
    # The same across every pair of neighbouring columns, for both diagonal shifts too.
    for col in range(6):
        rows = [["."] * 7 for _ in range(6)]  # top row first
        for r in range(6):
            rows[r][col] = "X" if r < 3 else "O"
        rows[5][col + 1] = "X"
        board = "/".join("".join(row) for row in rows)
        assert ConnectFour.from_string(board).winner is None, board


def test_diagonal_wins() -> None:
    _win_then_check([0, 1, 1, 2, 2, 3, 2, 3, 3, 5, 3], winner=0)  # rising to the right
    _win_then_check([6, 5, 5, 4, 4, 3, 4, 3, 3, 1, 3], winner=0)  # falling to the right


def test_diagonal_win_for_o() -> None:
    _win_then_check([6, 0, 1, 1, 2, 2, 3, 2, 3, 3, 6, 3], winner=1)


def test_full_column_rejects_a_move() -> None:
    s = ConnectFour.from_moves([0] * 6)
    assert s.heights[0] == 6
    assert s.legal_actions() == (1, 2, 3, 4, 5, 6)
    with pytest.raises(ValueError, match="full"):
        s.step(0)


def test_illegal_moves_raise() -> None:
    s = ConnectFour()
    for bad in (7, -1, 42):
        with pytest.raises(ValueError, match=r"0\.\.6"):
            s.step(bad)
    for bad_type in ("3", 3.0, None, False):
        with pytest.raises(TypeError):
            s.step(bad_type)  # type: ignore[arg-type]
    won = ConnectFour.from_moves([0, 1, 0, 1, 0, 1, 0])
    with pytest.raises(ValueError, match="over"):
        won.step(3)
    assert s.step(np.int32(3)) == s.step(3)


def test_draw_on_a_full_board() -> None:
    assert len(DRAWN_MOVES) == 42
    s = ConnectFour()
    ref = ReferenceConnectFour()
    for move in DRAWN_MOVES:
        assert not s.is_terminal()
        s = s.step(move)
        ref.play(move)
        _assert_matches(s, ref)
    assert s.is_terminal()
    assert s.winner is None
    assert s.terminal_value() == 0.0
    assert s.legal_actions() == ()
    with pytest.raises(ValueError, match="over"):
        s.step(0)


def test_from_string_round_trip_and_errors() -> None:
    s = ConnectFour.from_moves([3, 3, 4, 2, 0])
    assert ConnectFour.from_string(str(s)) == s
    assert eval(repr(s), {"ConnectFour": ConnectFour}) == s
    floating = "......./......./......./......./X....../......."
    two_o = "." * 35 + "OO....."
    two_more_x = "." * 35 + "XXX...."
    for bad in ("X", "Z" * 42, floating, "X" + "." * 41, two_o, two_more_x):
        with pytest.raises(ValueError):
            ConnectFour.from_string(bad)
    x_won_but_o_moved = "......./......./......./......./OOO..../XXXXO.."
    with pytest.raises(ValueError, match="did not move last"):
        ConnectFour.from_string(x_won_but_o_moved)


def test_immutability_and_pickle() -> None:
    s = ConnectFour.from_moves([3, 3, 4])
    before = (s.key, str(s), s.heights, s.legal_actions())
    s.step(4)
    assert (s.key, str(s), s.heights, s.legal_actions()) == before
    with pytest.raises(AttributeError):
        s._heights = (0,) * 7  # type: ignore[misc]
    t = pickle.loads(pickle.dumps(s))
    assert t == s and t.heights == s.heights and t.num_moves == 3


def test_transpositions_share_a_key() -> None:
    a = ConnectFour.from_moves([3, 2, 4, 5])
    b = ConnectFour.from_moves([4, 5, 3, 2])
    assert a == b and hash(a) == hash(b)
    assert a != ConnectFour.from_moves([3, 2, 4, 6])


@pytest.mark.parametrize(
    ("depth", "count"),
    [(1, 7), (2, 49), (3, 343), (4, 2401), (5, 16807), (6, 117649), (7, 823536)],
)
def test_perft(depth: int, count: int) -> None:
    assert _perft(depth) == count


def test_matches_reference_on_500_random_games() -> None:
    rng = random.Random(20240607)
    outcomes = {0: 0, 1: 0, None: 0}
    for _ in range(500):
        s, ref = ConnectFour(), ReferenceConnectFour()
        _assert_matches(s, ref)
        while not ref.is_terminal():
            move = rng.choice(ref.legal_actions())
            s = s.step(move)
            ref.play(move)
            _assert_matches(s, ref)
        outcomes[s.winner] += 1
    assert outcomes[0] > 0 and outcomes[1] > 0  # both kinds of win were exercised


CHOICES = st.lists(st.integers(min_value=0, max_value=1000), max_size=45)


@settings(deadline=None)
@given(CHOICES)
def test_random_play_invariants(choices: list[int]) -> None:
    states = _play(choices)
    for parent, child in itertools.pairwise(states):
        assert child.to_play == 1 - parent.to_play
        assert child.num_moves == parent.num_moves + 1
    for s in states:
        legal = s.legal_actions()
        assert list(legal) == sorted(set(legal))
        assert sum(s.heights) == s.num_moves
        if s.is_terminal():
            assert legal == ()
            assert s.terminal_value() in (-1.0, 0.0)
        else:
            assert legal
            assert s.terminal_value() is None
        assert ConnectFour.from_string(str(s)) == s


@settings(deadline=None)
@given(CHOICES, st.integers(min_value=0, max_value=6))
def test_step_never_mutates(choices: list[int], action: int) -> None:
    s = _play(choices)[-1]
    before = (s.key, str(s), s.legal_actions(), s.heights, s.winner, s.to_play)
    try:
        s.step(action)
    except ValueError:
        assert action not in s.legal_actions()
    else:
        assert action in s.legal_actions()
    assert (s.key, str(s), s.legal_actions(), s.heights, s.winner, s.to_play) == before


@settings(deadline=None)
@given(CHOICES, CHOICES)
def test_key_equality_matches_equality(a: list[int], b: list[int]) -> None:
    s, t = _play(a)[-1], _play(b)[-1]
    assert (s == t) == (s.key == t.key) == (str(s) == str(t))
    if s == t:
        assert hash(s) == hash(t)


# -- random_playout: the fast rollout on the bitboards ---------------------------------------


def _reference_playout(moves: list[int], seed: int, max_depth: int) -> tuple[float, float]:
    """The generic rollout rule replayed on the naive reference: (value for the player to move
    after ``moves``, the generator's next draw after the playout)."""
    ref = ReferenceConnectFour()
    for m in moves:
        ref.play(m)
    player = ref.to_play
    gen = np.random.default_rng(seed)
    uniforms: list[float] = []
    for depth in range(max_depth):
        if ref.is_terminal():
            value = -1.0 if ref.winner is not None else 0.0
            return (value if ref.to_play == player else -value), gen.random()
        if depth % 64 == 0:
            uniforms = gen.random(64).tolist()
        legal = ref.legal_actions()
        ref.play(legal[int(uniforms[depth % 64] * len(legal))])
    return 0.0, gen.random()


def _random_moves(rng: random.Random) -> list[int]:
    s, moves = ConnectFour(), []
    for _ in range(rng.randrange(43)):
        if s.is_terminal():
            break
        moves.append(rng.choice(s.legal_actions()))
        s = s.step(moves[-1])
    return moves


def test_random_playout_matches_the_reference_rule() -> None:
    rng = random.Random(7)
    values = set()
    for seed in range(300):
        moves = _random_moves(rng)
        s = ConnectFour.from_moves(moves)
        for max_depth in (10_000, rng.randrange(1, 30)):
            gen = np.random.default_rng(seed)
            got = s.random_playout(gen, max_depth=max_depth)
            assert (got, gen.random()) == _reference_playout(moves, seed, max_depth)
            values.add(got)
    assert values == {-1.0, 0.0, 1.0}


def test_random_playout_draw_and_terminal_positions() -> None:
    one_left = ConnectFour.from_moves(DRAWN_MOVES[:-1])
    assert one_left.legal_actions() == (DRAWN_MOVES[-1],)
    assert one_left.random_playout(np.random.default_rng(0)) == 0.0
    won = ConnectFour.from_moves([0, 1, 0, 1, 0, 1, 0])
    gen = np.random.default_rng(0)
    assert won.random_playout(gen) == -1.0  # the player to move has lost
    assert won.random_playout(gen, max_depth=0) == 0.0
    assert gen.random() == np.random.default_rng(0).random()  # no draws at a terminal state


def test_random_playout_only_winning_move() -> None:
    # X to move; column 3 is the only open column and completes X's four on the bottom row.
    s = ConnectFour.from_string("OXO.XOX/OXO.XOX/XOX.OXO/XOX.OXO/OXO.XOX/XXX.OOO")
    assert not s.is_terminal() and s.to_play == 0
    assert s.legal_actions() == (3,)
    assert s.step(3).winner == 0
    assert s.random_playout(np.random.default_rng(1)) == 1.0
    assert s.random_playout(np.random.default_rng(1), max_depth=1) == 0.0  # end not seen
    assert s.random_playout(np.random.default_rng(1), max_depth=2) == 1.0


@settings(deadline=None)
@given(CHOICES, st.integers(min_value=0, max_value=2**32 - 1))
def test_random_playout_matches_reference_property(choices: list[int], seed: int) -> None:
    moves = []
    s = ConnectFour()
    for c in choices:
        if s.is_terminal():
            break
        legal = s.legal_actions()
        moves.append(legal[c % len(legal)])
        s = s.step(moves[-1])
    gen = np.random.default_rng(seed)
    assert (s.random_playout(gen), gen.random()) == _reference_playout(moves, seed, 10_000)
