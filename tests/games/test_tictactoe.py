"""Tests for treesearch.games.tictactoe: rules, known counts, solved values, properties."""

from __future__ import annotations

import itertools
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from treesearch.games import TicTacToe
from treesearch.interfaces import State

LINES = [
    (0, 1, 2),
    (3, 4, 5),
    (6, 7, 8),
    (0, 3, 6),
    (1, 4, 7),
    (2, 5, 8),
    (0, 4, 8),
    (2, 4, 6),
]
DRAWN_BOARD = "XOX XOO OXX"
DRAWN_MOVES = [0, 1, 2, 4, 3, 5, 7, 6, 8]


def _is_line(cells: tuple[int, ...] | list[int]) -> bool:
    return any(set(line) <= set(cells) for line in LINES)


def _win_moves(line: tuple[int, int, int], winner: int) -> list[int]:
    """A move list in which ``winner`` completes ``line`` with its last move, nobody earlier."""
    others = [c for c in range(9) if c not in line]
    n_other = 2 if winner == 0 else 3
    for filler in itertools.combinations(others, n_other):
        if not _is_line(filler):
            break
    if winner == 0:
        return [line[0], filler[0], line[1], filler[1], line[2]]
    return [filler[0], line[0], filler[1], line[1], filler[2], line[2]]


def _solve(root: TicTacToe) -> float:
    """Exact negamax value of ``root`` for its player to move; iterative, memoised by key."""
    values: dict[object, float] = {}
    stack = [root]
    while stack:
        state = stack[-1]
        if state.key in values:
            stack.pop()
            continue
        if state.is_terminal():
            values[state.key] = state.terminal_value()
            stack.pop()
            continue
        children = [state.step(a) for a in state.legal_actions()]
        missing = [c for c in children if c.key not in values]
        if missing:
            stack.extend(missing)
            continue
        values[state.key] = max(-values[c.key] for c in children)
        stack.pop()
    return values[root.key]


def _play(choices: list[int]) -> list[TicTacToe]:
    """The states of a game whose moves are picked by ``choices`` (indices into legal moves)."""
    states = [TicTacToe()]
    for choice in choices:
        legal = states[-1].legal_actions()
        if not legal:
            break
        states.append(states[-1].step(legal[choice % len(legal)]))
    return states


def test_empty_board() -> None:
    s = TicTacToe()
    assert isinstance(TicTacToe(), State)
    assert s.to_play == 0
    assert s.legal_actions() == tuple(range(9))
    assert not s.is_terminal()
    assert s.terminal_value() is None
    assert s.winner is None
    assert str(s) == "...\n...\n..."
    assert s.board == ((-1, -1, -1),) * 3


@pytest.mark.parametrize("winner", [0, 1])
@pytest.mark.parametrize("line", LINES)
def test_every_line_wins_for_both_players(line: tuple[int, int, int], winner: int) -> None:
    moves = _win_moves(line, winner)
    before = TicTacToe.from_moves(moves[:-1])
    assert before.winner is None and not before.is_terminal()
    s = before.step(moves[-1])
    assert s.winner == winner
    assert s.is_terminal()
    assert s.to_play == 1 - winner
    assert s.terminal_value() == -1.0
    assert s.legal_actions() == ()
    # The same position parsed from its drawing is also a win.
    assert TicTacToe.from_string(str(s)).winner == winner


def test_x_win_is_minus_one_for_o_to_move() -> None:
    s = TicTacToe.from_moves([0, 3, 1, 4, 2])  # X takes the top row
    assert s.winner == 0
    assert s.to_play == 1
    assert s.terminal_value() == -1.0


def test_draw_on_a_full_board() -> None:
    s = TicTacToe.from_moves(DRAWN_MOVES)
    assert s == TicTacToe.from_string(DRAWN_BOARD)
    assert str(s) == "XOX\nXOO\nOXX"
    assert s.is_terminal()
    assert s.winner is None
    assert s.terminal_value() == 0.0
    assert s.legal_actions() == ()
    for prefix in range(len(DRAWN_MOVES)):
        assert not TicTacToe.from_moves(DRAWN_MOVES[:prefix]).is_terminal()


def test_illegal_moves_raise() -> None:
    s = TicTacToe.from_moves([4])
    with pytest.raises(ValueError, match="taken"):
        s.step(4)
    for bad in (9, -1, 100):
        with pytest.raises(ValueError, match=r"0\.\.8"):
            s.step(bad)
    for bad_type in ("4", 4.0, None, True, (4,)):
        with pytest.raises(TypeError):
            s.step(bad_type)  # type: ignore[arg-type]
    won = TicTacToe.from_moves([0, 3, 1, 4, 2])
    with pytest.raises(ValueError, match="over"):
        won.step(8)
    with pytest.raises(ValueError, match="over"):
        TicTacToe.from_moves(DRAWN_MOVES).step(0)


def test_numpy_integer_actions_are_accepted() -> None:
    s = TicTacToe().step(np.int64(4))
    assert s == TicTacToe().step(4)
    assert type(s.key[0]) is int


def test_from_string_rejects_impossible_boards() -> None:
    for bad in ("XO", "XOX......Z", "XX.......", "OO.......", "XXX.OO.OO", "XXXOOO..."):
        with pytest.raises(ValueError):
            TicTacToe.from_string(bad)
    with pytest.raises(ValueError, match="did not move last"):
        TicTacToe.from_string("XXXOO.O..")  # X has a line, but O moved last


def test_immutability() -> None:
    s = TicTacToe.from_moves([4, 0])
    before = (s.key, str(s), s.legal_actions())
    child = s.step(8)
    assert (s.key, str(s), s.legal_actions()) == before
    assert child != s
    with pytest.raises(AttributeError):
        s._bits = (0, 0)  # type: ignore[misc]
    with pytest.raises(AttributeError):
        s.to_play = 1  # type: ignore[misc]


def test_transpositions_share_a_key() -> None:
    a = TicTacToe.from_moves([0, 4, 8])
    b = TicTacToe.from_moves([8, 4, 0])
    assert a == b and a.key == b.key and hash(a) == hash(b)
    assert a != TicTacToe.from_moves([0, 4, 7])
    assert len({a, b}) == 1


def test_repr_and_pickle_round_trip() -> None:
    s = TicTacToe.from_moves([4, 0, 8])
    assert eval(repr(s), {"TicTacToe": TicTacToe}) == s
    t = pickle.loads(pickle.dumps(s))
    assert t == s and t.winner == s.winner and t.to_play == s.to_play


def test_5478_reachable_positions() -> None:
    root = TicTacToe()
    seen = {root.key}
    frontier = [root]
    while frontier:
        state = frontier.pop()
        for a in state.legal_actions():
            child = state.step(a)
            if child.key not in seen:
                seen.add(child.key)
                frontier.append(child)
    assert len(seen) == 5478


def test_255168_complete_games() -> None:
    """Games counted by outcome, memoised by position (the count below a position is fixed)."""
    counts: dict[object, tuple[int, int, int]] = {}  # key -> (X wins, O wins, draws)
    root = TicTacToe()
    stack = [root]
    while stack:
        state = stack[-1]
        if state.key in counts:
            stack.pop()
            continue
        if state.is_terminal():
            counts[state.key] = (
                int(state.winner == 0),
                int(state.winner == 1),
                int(state.winner is None),
            )
            stack.pop()
            continue
        children = [state.step(a) for a in state.legal_actions()]
        missing = [c for c in children if c.key not in counts]
        if missing:
            stack.extend(missing)
            continue
        parts = [counts[c.key] for c in children]
        counts[state.key] = (
            sum(p[0] for p in parts),
            sum(p[1] for p in parts),
            sum(p[2] for p in parts),
        )
        stack.pop()
    x_wins, o_wins, draws = counts[root.key]
    assert (x_wins, o_wins, draws) == (131184, 77904, 46080)
    assert x_wins + o_wins + draws == 255168


def test_solved_values() -> None:
    assert _solve(TicTacToe()) == 0.0  # tic-tac-toe is a draw
    # Against a corner opening only the centre holds the draw.
    for reply in range(1, 9):
        expected = 0.0 if reply == 4 else 1.0  # for X, who is to move
        assert _solve(TicTacToe.from_moves([0, reply])) == expected, reply
    # Against a centre opening corners draw and edges lose.
    for reply in (0, 2, 6, 8):
        assert _solve(TicTacToe.from_moves([4, reply])) == 0.0
    for reply in (1, 3, 5, 7):
        assert _solve(TicTacToe.from_moves([4, reply])) == 1.0


CHOICES = st.lists(st.integers(min_value=0, max_value=1000), max_size=12)


@settings(deadline=None)
@given(CHOICES)
def test_random_play_invariants(choices: list[int]) -> None:
    states = _play(choices)
    for parent, child in itertools.pairwise(states):
        assert child.to_play == 1 - parent.to_play
    for s in states:
        legal = s.legal_actions()
        assert list(legal) == sorted(set(legal))
        if s.is_terminal():
            assert legal == ()
            assert s.terminal_value() in (-1.0, 0.0)
            assert (s.terminal_value() == -1.0) == (s.winner == 1 - s.to_play)
        else:
            assert legal
            assert s.terminal_value() is None
        assert TicTacToe.from_string(str(s)) == s


@settings(deadline=None)
@given(CHOICES, st.integers(min_value=0, max_value=8))
def test_step_never_mutates(choices: list[int], action: int) -> None:
    s = _play(choices)[-1]
    before = (s.key, str(s), s.legal_actions(), s.winner, s.to_play)
    try:
        s.step(action)
    except ValueError:
        assert action not in s.legal_actions()
    else:
        assert action in s.legal_actions()
    assert (s.key, str(s), s.legal_actions(), s.winner, s.to_play) == before


@settings(deadline=None)
@given(CHOICES, CHOICES)
def test_key_equality_matches_equality(a: list[int], b: list[int]) -> None:
    s, t = _play(a)[-1], _play(b)[-1]
    assert (s == t) == (s.key == t.key) == (str(s) == str(t))
    if s == t:
        assert hash(s) == hash(t)


# -- random_playout: the fast rollout on the bitboards ---------------------------------------


def _reference_playout(state: TicTacToe, seed: int, max_depth: int) -> tuple[float, float]:
    """The generic rollout rule on a plain cell list: (value for the player to move at
    ``state``, the generator's next draw after the playout)."""
    cells = [-1 if c == "." else "XO".index(c) for c in state._cells()]
    to_play = player = state.to_play
    gen = np.random.default_rng(seed)
    uniforms: list[float] = []
    for depth in range(max_depth):
        won = _is_line([i for i in range(9) if cells[i] == 1 - to_play])
        full = -1 not in cells
        if won or full:
            value = -1.0 if won else 0.0
            return (value if to_play == player else -value), gen.random()
        if depth % 64 == 0:
            uniforms = gen.random(64).tolist()
        legal = [i for i in range(9) if cells[i] == -1]
        cells[legal[int(uniforms[depth % 64] * len(legal))]] = to_play
        to_play = 1 - to_play
    return 0.0, gen.random()


def test_random_playout_matches_the_reference_rule() -> None:
    values = set()
    for seed in range(400):
        s = _play(np.random.default_rng(seed + 10_000).integers(0, 9, size=seed % 10).tolist())[-1]
        for max_depth in (10_000, 1 + seed % 11):
            gen = np.random.default_rng(seed)
            got = s.random_playout(gen, max_depth=max_depth)
            assert (got, gen.random()) == _reference_playout(s, seed, max_depth)
            values.add(got)
    assert values == {-1.0, 0.0, 1.0}


def test_random_playout_known_results() -> None:
    # X to move with one empty cell, 8, which completes X's diagonal 0-4-8.
    win = TicTacToe.from_string("XOX OXO OX.")
    assert win.to_play == 0 and win.legal_actions() == (8,) and win.step(8).winner == 0
    assert win.random_playout(np.random.default_rng(0)) == 1.0
    assert win.random_playout(np.random.default_rng(0), max_depth=1) == 0.0  # end not seen
    assert win.random_playout(np.random.default_rng(0), max_depth=2) == 1.0
    draw = TicTacToe.from_moves(DRAWN_MOVES[:-1])
    assert draw.random_playout(np.random.default_rng(0)) == 0.0
    lost = TicTacToe.from_moves([0, 3, 1, 4, 2])
    gen = np.random.default_rng(0)
    assert lost.random_playout(gen) == -1.0
    assert gen.random() == np.random.default_rng(0).random()  # no draws at a terminal state


@settings(deadline=None)
@given(CHOICES, st.integers(min_value=0, max_value=2**32 - 1), st.integers(1, 12))
def test_random_playout_matches_reference_property(
    choices: list[int], seed: int, max_depth: int
) -> None:
    s = _play(choices)[-1]
    for depth in (max_depth, 10_000):
        gen = np.random.default_rng(seed)
        assert (s.random_playout(gen, max_depth=depth), gen.random()) == _reference_playout(
            s, seed, depth
        )
