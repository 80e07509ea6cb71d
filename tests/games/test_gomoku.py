"""Tests for treesearch.games.gomoku: rules against OpenSpiel and a naive reference, the fast
playout against the step loop, symmetries, planes, coordinates and pictures."""

from __future__ import annotations

import pickle
import random
import xml.etree.ElementTree as ET
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from treesearch import MCTS, Budget, RandomRollout
from treesearch.backup import value_for_player
from treesearch.games import Gomoku
from treesearch.games.gomoku import (
    format_move,
    inverse_transform,
    parse_move,
    symmetries,
    transform,
    transform_action,
)
from treesearch.testing import check_state

# A full 7x7 board without five in a row (found by random play, checked by the reference and
# by OpenSpiel below): 25 black and 24 white stones, in the order they were played.
DRAWN_7X7 = [19, 31, 30, 23, 25, 20, 5, 13, 0, 27, 32, 26, 9, 10, 2, 24, 7, 17, 4, 43, 21, 37]
DRAWN_7X7 += [48, 40, 42, 18, 39, 14, 3, 8, 41, 11, 34, 22, 45, 28, 15, 33, 29, 36, 38, 46, 16]
DRAWN_7X7 += [12, 44, 6, 47, 1, 35]


# --------------------------------------------------------------------------- reference
class ReferenceGomoku:
    """Naive mutable Gomoku on a numpy grid: after each move, count the stones in a row
    through it by walking each of the four directions cell by cell."""

    def __init__(self, size: int, k: int, exact: bool) -> None:
        self.size, self.k, self.exact = size, k, exact
        self.grid = np.zeros((size, size), dtype=np.int8)
        self.to_play = 0
        self.winner: int | None = None
        self.moves = 0

    def legal_actions(self) -> list[int]:
        if self.winner is not None:
            return []
        return [int(a) for a in np.flatnonzero(self.grid.ravel() == 0)]

    def is_terminal(self) -> bool:
        return self.winner is not None or self.moves == self.size**2

    def play(self, action: int) -> None:
        assert action in self.legal_actions()
        row, col = divmod(action, self.size)
        stone = self.to_play + 1
        self.grid[row, col] = stone
        for dr, dc in ((0, 1), (1, 0), (1, 1), (1, -1)):
            length = 1
            for sign in (1, -1):
                r, c = row + sign * dr, col + sign * dc
                while 0 <= r < self.size and 0 <= c < self.size and self.grid[r, c] == stone:
                    length += 1
                    r, c = r + sign * dr, c + sign * dc
            if length == self.k or (length > self.k and not self.exact):
                self.winner = self.to_play
        self.moves += 1
        self.to_play = 1 - self.to_play


def _play_black(cells: list[int], size: int, filler: list[int], **rules: Any) -> Gomoku:
    """Black plays ``cells`` in order, white answers with ``filler`` cells in order."""
    moves: list[int] = []
    for i, cell in enumerate(cells):
        moves.append(cell)
        if i < len(cells) - 1:
            moves.append(filler[i])
    return Gomoku.from_moves(moves, size=size, **rules)


def _cells(size: int, start: tuple[int, int], step: tuple[int, int], n: int) -> list[int]:
    (r, c), (dr, dc) = start, step
    return [(r + i * dr) * size + (c + i * dc) for i in range(n)]


# --------------------------------------------------------------------------- construction
def test_presets_and_defaults() -> None:
    g = Gomoku()
    assert (g.size, g.k, g.exact) == (15, 5, False)
    assert g.num_actions == 225 and g.legal_actions() == tuple(range(225))
    assert g.to_play == 0 and g.num_moves == 0 and g.last_move is None and g.winner is None
    assert not g.is_terminal() and g.terminal_value() is None
    assert (Gomoku(size=9).size, Gomoku(size=9).k) == (9, 5)
    assert len(Gomoku(size=7).legal_actions()) == 49
    assert Gomoku(size=9, k=4, exact=True).exact


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"size": 1}, ValueError, "size must be in 2..26"),
        ({"size": 27}, ValueError, "size must be in 2..26"),
        ({"size": 9.0}, TypeError, "size must be an int"),
        ({"size": True}, TypeError, "size must be an int"),
        ({"size": 9, "k": 10}, ValueError, r"k \(stones in a row to win\) must be in 2..9"),
        ({"size": 9, "k": 1}, ValueError, "must be in 2..9"),
        ({"size": 9, "k": "5"}, TypeError, "k must be an int"),
        ({"size": 9, "exact": 1}, TypeError, "exact must be True or False"),
    ],
)
def test_bad_rules_are_refused(kwargs: dict[str, Any], error: type, match: str) -> None:
    exact = kwargs.pop("exact", False)
    with pytest.raises(error, match=match):
        Gomoku(**kwargs, exact=exact)


# --------------------------------------------------------------------------- wins
FAR_FILLER_15 = list(range(150, 225, 2))  # white stones in the bottom rows, never five in a row


@pytest.mark.parametrize(
    ("name", "start", "step"),
    [
        ("row at the top-left corner", (0, 0), (0, 1)),
        ("row at the top-right corner", (0, 10), (0, 1)),
        ("column along the left edge", (0, 0), (1, 0)),
        ("column along the right edge", (3, 14), (1, 0)),
        ("diagonal from the top-left corner", (0, 0), (1, 1)),
        ("diagonal to the right edge", (2, 10), (1, 1)),
        ("anti-diagonal from the top-right corner", (0, 14), (1, -1)),
        ("anti-diagonal from the left edge", (4, 4), (1, -1)),
        ("row in the middle", (7, 5), (0, 1)),
    ],
)
@pytest.mark.parametrize("last", [0, 2, 4])
def test_five_wins_in_every_direction_and_at_edges(
    name: str, start: tuple[int, int], step: tuple[int, int], last: int
) -> None:
    line = _cells(15, start, step, 5)
    # The stone that completes the five is the first, middle or last of the line: the test
    # through the last move must look both ways.
    order = [c for i, c in enumerate(line) if i != last] + [line[last]]
    before = _play_black(order[:-1], 15, FAR_FILLER_15)
    assert before.winner is None and not before.is_terminal(), name
    state = before.step(FAR_FILLER_15[3]).step(order[-1])
    assert state.winner == 0 and state.is_terminal(), name
    assert state.terminal_value() == -1.0  # for white, the player to move
    assert state.legal_actions() == ()
    assert state.winning_line() == tuple(sorted(line))
    assert state.last_move == order[-1]


@pytest.mark.parametrize(
    ("name", "cells"),
    [
        # Consecutive in row-major order but split over two rows: no wrap-around.
        ("row wraps to the next row", [12, 13, 14, 15, 16]),
        ("diagonal wraps past the right edge", [13, 29, 45, 61, 77]),  # step 16
        ("anti-diagonal wraps past the left edge", [2, 16, 30, 44, 58]),  # step 14
        ("column of four", _cells(15, (0, 0), (1, 0), 4)),
    ],
)
def test_no_false_wins(name: str, cells: list[int]) -> None:
    state = _play_black(cells, 15, FAR_FILLER_15)
    assert state.winner is None and not state.is_terminal(), name


def test_white_wins_with_white_to_move_after() -> None:
    black = [0, 2, 4, 6, 8, 100]  # scattered
    white = _cells(15, (5, 5), (1, 1), 5)
    moves = [m for pair in zip(black, white, strict=False) for m in pair]
    state = Gomoku.from_moves(moves)
    assert state.winner == 1 and state.to_play == 0 and state.terminal_value() == -1.0


def test_overline_wins_under_freestyle_but_not_exact() -> None:
    # Black: a4 b4 c4 e4 f4 on a 9x9 board, then d4 makes six in a row.
    row = [parse_move(m, 9) for m in ("a4", "b4", "c4", "e4", "f4", "d4")]
    filler = [parse_move(m, 9) for m in ("a9", "c9", "e9", "g9", "i9", "b7")]
    free = _play_black(row, 9, filler)
    assert free.winner == 0 and len(free.winning_line()) == 6
    exact = _play_black(row, 9, filler, exact=True)
    assert exact.winner is None and not exact.is_terminal()
    # Play goes on; an exact five elsewhere still wins for black.
    column = [parse_move(m, 9) for m in ("h1", "h2", "h3", "h5")]
    state = exact
    for i, cell in enumerate(column):
        state = state.step(filler[5] - 1 - i).step(cell)  # white a7.., black the column
    assert state.winner is None
    state = state.step(parse_move("i1", 9)).step(parse_move("h4", 9))
    assert state.winner == 0  # h1..h5 is exactly five (h6 is empty)
    assert state.winning_line() == tuple(sorted(parse_move(f"h{i}", 9) for i in range(1, 6)))


def test_exact_five_beside_an_overline_of_the_same_move_wins() -> None:
    # The last stone d5 makes six in the row and exactly five in the column.
    row = [parse_move(m, 9) for m in ("a5", "b5", "c5", "e5", "f5")]
    column = [parse_move(m, 9) for m in ("d1", "d2", "d3", "d4")]
    filler = [parse_move(m, 9) for m in ("a9", "c9", "e9", "g9", "i9", "a7", "c7", "e7", "g7")]
    state = _play_black([*row, *column, parse_move("d5", 9)], 9, filler, exact=True)
    assert state.winner == 0
    assert state.winning_line() == tuple(sorted([*column, parse_move("d5", 9)]))


def test_exact_five_ending_at_the_edge_wins() -> None:
    line = _cells(9, (0, 4), (0, 1), 5)  # e9..i9: ends at the right edge
    state = _play_black(line, 9, [72, 74, 76, 78], exact=True)
    assert state.winner == 0


def test_full_board_is_a_draw_and_agrees_with_openspiel() -> None:
    state = Gomoku.from_moves(DRAWN_7X7, size=7)
    assert state.is_terminal() and state.winner is None and state.terminal_value() == 0.0
    assert state.legal_actions() == ()
    assert state.to_play == 1  # 49 stones: white would move
    with pytest.raises(ValueError, match=r"game is over .*draw"):
        state.step(0)
    reference = ReferenceGomoku(7, 5, False)
    for move in DRAWN_7X7:
        reference.play(move)
    assert reference.is_terminal() and reference.winner is None
    pyspiel = pytest.importorskip("pyspiel")
    os_state = pyspiel.load_game("gomoku", {"size": 7, "connect": 5}).new_initial_state()
    for move in DRAWN_7X7:
        os_state.apply_action(move)
    assert os_state.is_terminal() and os_state.returns() == [0.0, 0.0]


def test_small_board_draw_k3() -> None:
    # X X O O / O O X X / X X O O / O O X X has no three in a row in any direction.
    black = [0, 1, 6, 7, 8, 9, 14, 15]
    white = [2, 3, 4, 5, 10, 11, 12, 13]
    moves = [m for pair in zip(black, white, strict=True) for m in pair]
    state = Gomoku.from_moves(moves, size=4, k=3)
    assert state.is_terminal() and state.winner is None and state.terminal_value() == 0.0
    assert str(state).splitlines()[0] == "4 X X O O"


# --------------------------------------------------------------------------- illegal moves
def test_illegal_moves_give_clear_errors() -> None:
    state = Gomoku.from_moves(["h8"])
    with pytest.raises(ValueError, match=r"h8 \(action 112\) is already taken"):
        state.step(112)
    for off in (-1, 225, 10**9):
        with pytest.raises(ValueError, match=r"cell in 0..224 of the 15x15 board"):
            state.step(off)
    with pytest.raises(TypeError, match="use parse_move"):
        state.step("h9")  # type: ignore[arg-type]
    for bad in (3.0, True, None, (1, 2)):
        with pytest.raises(TypeError, match=r"must be an int in 0\.\.224"):
            state.step(bad)  # type: ignore[arg-type]
    assert state.step(np.int64(113)).last_move == 113  # numpy ints are ints
    won = _play_black(_cells(15, (0, 0), (0, 1), 5), 15, FAR_FILLER_15)
    with pytest.raises(ValueError, match=r"game is over \(black \(player 0\) won\)"):
        won.step(100)
    with pytest.raises(ValueError, match="already taken"):
        Gomoku.from_moves([3, 3], size=9)


# --------------------------------------------------------------------------- OpenSpiel
def _compare_with_openspiel(size: int, games: int, seed: int) -> dict[int | None, int]:
    pyspiel = pytest.importorskip("pyspiel")
    game = pyspiel.load_game("gomoku", {"size": size, "connect": 5})
    rng = random.Random(seed)
    outcomes: dict[int | None, int] = {}
    for _ in range(games):
        theirs, ours = game.new_initial_state(), Gomoku(size)
        while True:
            assert list(ours.legal_actions()) == theirs.legal_actions(), repr(ours)
            assert ours.is_terminal() == theirs.is_terminal(), repr(ours)
            assert ours.to_play == theirs.current_player() or theirs.is_terminal()
            if theirs.is_terminal():
                black_return = theirs.returns()[0]
                winner = None if black_return == 0 else 0 if black_return > 0 else 1
                assert ours.winner == winner, repr(ours)
                assert ours.terminal_value() == (-1.0 if winner is not None else 0.0)
                outcomes[winner] = outcomes.get(winner, 0) + 1
                break
            action = rng.choice(theirs.legal_actions())
            theirs.apply_action(action)
            ours = ours.step(action)
    return outcomes


@pytest.mark.parametrize(("size", "games"), [(15, 100), (9, 100)])
def test_random_games_agree_with_openspiel(size: int, games: int) -> None:
    """200 random games in all, move by move: legal moves, terminal flags and winners.

    (OpenSpiel's gomoku has no overline option, only freestyle; the exact rule is checked
    against the naive reference below.)
    """
    outcomes = _compare_with_openspiel(size, games, seed=size)
    assert outcomes.get(0, 0) > 10 and outcomes.get(1, 0) > 10


def test_openspiel_action_strings_match_our_numbering() -> None:
    pyspiel = pytest.importorskip("pyspiel")
    state = pyspiel.load_game("gomoku", {"size": 9}).new_initial_state()
    for action in (0, 8, 40, 72, 80):
        row, col = divmod(action, 9)
        assert state.action_to_string(0, action) == f"{row},{col}"
        assert format_move(action, 9) == "abcdefghi"[col] + str(9 - row)


@settings(deadline=None)
@given(
    st.sampled_from([(4, 3), (5, 4), (6, 4), (7, 5), (9, 5), (6, 2)]),
    st.booleans(),
    st.lists(st.integers(0, 10_000), max_size=81),
)
def test_matches_naive_reference_property(
    rules: tuple[int, int], exact: bool, choices: list[int]
) -> None:
    size, k = rules
    ours, reference = Gomoku(size, k, exact=exact), ReferenceGomoku(size, k, exact)
    for choice in choices:
        assert list(ours.legal_actions()) == reference.legal_actions()
        assert ours.is_terminal() == reference.is_terminal()
        assert ours.winner == reference.winner
        if ours.is_terminal():
            break
        action = ours.legal_actions()[choice % len(ours.legal_actions())]
        ours = ours.step(action)
        reference.play(action)
        assert (ours.board == reference.grid).all()
        assert ours.to_play == reference.to_play


# --------------------------------------------------------------------------- random playout
def _reference_playout(state: Gomoku, rng: np.random.Generator, max_depth: int = 10_000) -> float:
    """The generic rollout written out with step(): the contract random_playout must match."""
    player = state.to_play
    uniforms: list[float] = []
    for depth in range(max_depth):
        if state.is_terminal():
            value = state.terminal_value()
            assert value is not None
            return value_for_player(value, state.to_play, player)
        if depth % 64 == 0:
            uniforms = rng.random(64).tolist()
        actions = state.legal_actions()
        state = state.step(actions[int(uniforms[depth % 64] * len(actions))])
    return 0.0


def _random_position(rng: random.Random, size: int, k: int, exact: bool) -> Gomoku:
    state = Gomoku(size, k, exact=exact)
    for _ in range(rng.randrange(size * size)):
        if state.is_terminal():
            break
        state = state.step(rng.choice(state.legal_actions()))
    return state


def test_random_playout_equals_step_loop() -> None:
    rng = random.Random(3)
    seen = set()
    for seed in range(150):
        size = rng.choice([4, 5, 7, 9, 15])
        k = rng.choice([k for k in (3, 4, 5) if k <= size])
        state = _random_position(rng, size, k, rng.random() < 0.5)
        max_depth = rng.choice([10_000, 10_000, rng.randrange(1, 40)])
        fast_rng, slow_rng = np.random.default_rng(seed), np.random.default_rng(seed)
        fast = state.random_playout(fast_rng, block=64, max_depth=max_depth)
        slow = _reference_playout(state, slow_rng, max_depth)
        assert fast == slow, (repr(state), seed, max_depth)
        assert fast_rng.random() == slow_rng.random()  # the same draws were consumed
        seen.add(fast)
    assert seen == {-1.0, 0.0, 1.0}


@settings(deadline=None)
@given(
    st.sampled_from([(5, 4, False), (7, 5, True), (9, 5, False), (6, 3, True)]),
    st.lists(st.integers(0, 10_000), max_size=30),
    st.integers(0, 2**32 - 1),
    st.integers(1, 60),
)
def test_random_playout_property(
    rules: tuple[int, int, bool], choices: list[int], seed: int, max_depth: int
) -> None:
    state = Gomoku(rules[0], rules[1], exact=rules[2])
    for choice in choices:
        if state.is_terminal():
            break
        state = state.step(state.legal_actions()[choice % len(state.legal_actions())])
    fast_rng, slow_rng = np.random.default_rng(seed), np.random.default_rng(seed)
    assert state.random_playout(fast_rng, max_depth=max_depth) == _reference_playout(
        state, slow_rng, max_depth
    )
    assert fast_rng.random() == slow_rng.random()


def test_random_playout_from_terminal_positions() -> None:
    won = _play_black(_cells(9, (0, 0), (1, 1), 5), 9, [8, 17, 26, 35])
    assert won.random_playout(np.random.default_rng(0)) == -1.0
    drawn = Gomoku.from_moves(DRAWN_7X7, size=7)
    assert drawn.random_playout(np.random.default_rng(0)) == 0.0


def test_random_rollout_evaluator_uses_the_fast_path_with_the_same_values() -> None:
    state = Gomoku.from_moves(["e5", "e6", "d4"], size=9)
    values = [
        RandomRollout().evaluate([state], rng=np.random.default_rng(s))[0].value for s in range(20)
    ]
    expected = [_reference_playout(state, np.random.default_rng(s)) for s in range(20)]
    assert values == expected


# --------------------------------------------------------------------------- search
def test_mcts_takes_an_open_four_win_and_blocks_one() -> None:
    # Black has b5 c5 d5 e5 (open at both ends); black to move wins at a5 or f5.
    moves = ["b5", "b9", "c5", "d9", "d5", "f9", "e5"]
    mcts = MCTS(RandomRollout(), selection="uct")
    white_to_move = Gomoku.from_moves(moves, size=9)
    black_to_move = Gomoku.from_moves([*moves, "h9"], size=9)
    win = mcts.search(black_to_move, Budget(simulations=300), rng=np.random.default_rng(0))
    assert format_move(win.action, 9) in ("a5", "f5")
    assert win.root_value == 1.0 and win.stop_reason == "solved"
    # White cannot stop an open four: every move loses, and the search proves it.
    lost = mcts.search(white_to_move, Budget(simulations=5000), rng=np.random.default_rng(0))
    assert lost.root_value == -1.0 and lost.stop_reason == "solved", lost.usage


def test_conformance_checks() -> None:
    check_state(Gomoku(size=7), rng=np.random.default_rng(0), require_outcomes=True)
    check_state(Gomoku(size=5, k=4, exact=True), rng=np.random.default_rng(1), num_games=10)


# --------------------------------------------------------------------------- planes, board
def test_planes_and_board_content() -> None:
    empty = Gomoku(size=5, k=4).planes()
    assert empty.shape == (4, 5, 5) and empty.dtype == np.float32
    assert not empty[:3].any() and (empty[3] == 1).all()
    state = Gomoku.from_moves(["a5", "e1", "c3"], size=5, k=4)  # black a5 c3, white e1
    board = state.board
    assert board.dtype == np.int8 and board.shape == (5, 5)
    expected = np.zeros((5, 5), dtype=np.int8)
    expected[0, 0] = expected[2, 2] = 1  # a5 is the top-left cell, c3 the centre
    expected[4, 4] = 2  # e1 is the bottom-right cell
    assert (board == expected).all()
    planes = state.planes()  # white to move
    assert (planes[0] == (expected == 2)).all()  # the mover's stones: white
    assert (planes[1] == (expected == 1)).all()
    assert planes[2].sum() == 1 and planes[2, 2, 2] == 1  # last move c3
    assert not planes[3].any()  # white to move
    after = state.step(parse_move("b2", 5)).planes()  # black to move
    assert (after[0] == (expected == 1)).all() and after[1].sum() == 2 and after[1, 3, 1] == 1
    assert after[2, 3, 1] == 1 and (after[3] == 1).all()


def test_planes_of_a_string_position_have_no_last_move() -> None:
    state = Gomoku.from_string("X../.O./...", k=2)
    assert state.last_move is None and not state.planes()[2].any()
    assert state.to_play == 0


# --------------------------------------------------------------------------- symmetries
def _asymmetric() -> Gomoku:
    return Gomoku.from_moves(["a1", "b1", "a2", "c4", "e7"], size=7)


def test_symmetries_are_distinct_and_invert() -> None:
    state = _asymmetric()
    planes = state.planes()
    policy = np.arange(49, dtype=np.float64) / 49.0**2
    pairs = symmetries(planes, policy)
    assert len(pairs) == 8
    assert (pairs[0][0] == planes).all() and (pairs[0][1] == policy).all()
    boards = {p[:2].tobytes() for p, _ in pairs}
    policies = {pol.tobytes() for _, pol in pairs}
    assert len(boards) == 8 and len(policies) == 8
    for index, (new_planes, new_policy) in enumerate(pairs):
        assert new_planes.shape == planes.shape and new_policy.shape == policy.shape
        back_planes, back_policy = inverse_transform(new_planes, new_policy, index)
        assert (back_planes == planes).all() and (back_policy == policy).all()
        assert sorted(new_policy.tolist()) == sorted(policy.tolist())  # a permutation


def test_symmetry_moves_policy_with_the_stones() -> None:
    state = _asymmetric()
    for index in range(8):
        mapped = [transform_action(a, 7, index) for a in state.moves]
        # The transformed game is the same game played on the transformed cells.
        image = Gomoku.from_moves(mapped, size=7)
        planes, _ = transform(state.planes(), np.zeros(49), index)
        assert (planes == image.planes()).all(), index
        # A policy's mass moves with the cell it sits on.
        for action in (0, 6, 10, 48):
            one_hot = np.zeros(49)
            one_hot[action] = 1.0
            stone = np.zeros((1, 7, 7))
            stone.flat[action] = 1.0
            new_stone, new_policy = transform(stone, one_hot, index)
            assert np.flatnonzero(new_stone.ravel()).tolist() == [int(np.argmax(new_policy))]
            assert int(np.argmax(new_policy)) == transform_action(action, 7, index)


def test_symmetry_index_meanings() -> None:
    # On a 3x3 board: index 1 turns a quarter anticlockwise (top-left to bottom-left), index 4
    # mirrors left-right (top-left to top-right), 5..7 mirror and then turn.
    assert [transform_action(0, 3, i) for i in range(8)] == [0, 6, 8, 2, 2, 0, 6, 8]
    assert [transform_action(5, 3, i) for i in range(8)] == [5, 1, 3, 7, 3, 7, 5, 1]


def test_symmetry_bad_input() -> None:
    planes, policy = np.zeros((4, 5, 5)), np.zeros(25)
    with pytest.raises(ValueError, match=r"index must be in 0\.\.7"):
        transform(planes, policy, 8)
    with pytest.raises(TypeError, match="index must be an int"):
        transform(planes, policy, 1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"planes must be \(C, H, W\) with H == W"):
        transform(np.zeros((4, 5, 6)), np.zeros(30), 0)
    with pytest.raises(ValueError, match="policy must be flat with H \\* W = 25"):
        transform(planes, np.zeros((5, 5)), 0)


# --------------------------------------------------------------------------- coordinates
@pytest.mark.parametrize("size", [2, 7, 9, 15, 26])
def test_coordinates_round_trip(size: int) -> None:
    texts = [format_move(a, size) for a in range(size * size)]
    assert len(set(texts)) == size * size
    assert [parse_move(t, size) for t in texts] == list(range(size * size))
    assert [parse_move(t.upper(), size) for t in texts] == list(range(size * size))


def test_coordinates_known_values() -> None:
    assert parse_move("h8", 15) == 112  # the centre of 15x15
    assert parse_move("a1", 15) == 210  # bottom-left
    assert parse_move("o15", 15) == 14  # top-right
    assert parse_move(" e5 ", 9) == 40  # the centre of 9x9
    assert format_move(0, 9) == "a9" and format_move(80, 9) == "i1"


@pytest.mark.parametrize("text", ["", "e", "5e", "e0", "e10", "j1", "ee5", "e-1", "e 5", "5"])
def test_bad_coordinates(text: str) -> None:
    with pytest.raises(ValueError, match="Gomoku move"):
        parse_move(text, 9)


def test_bad_coordinate_types() -> None:
    with pytest.raises(TypeError):
        parse_move(40, 9)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"0..80"):
        format_move(81, 9)
    with pytest.raises(TypeError):
        format_move("e5", 9)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- text, identity
def test_str_shows_coordinates_and_last_move_and_parses_back() -> None:
    state = Gomoku.from_moves(["a5", "e1", "c3"], size=5, k=4)
    assert str(state) == "\n".join(
        [
            "5 X . . . .",
            "4 . . . . .",
            "3 . .(X). .",
            "2 . . . . .",
            "1 . . . . O",
            "  a b c d e",
        ]
    )
    again = Gomoku.from_string(str(state), k=4)
    assert again == state and again.key == state.key and hash(again) == hash(state)
    assert again.to_play == 1 and again.num_moves == 3


def test_str_two_digit_rows() -> None:
    lines = str(Gomoku(size=11)).splitlines()
    assert lines[0].startswith("11 .") and lines[10].startswith(" 1 .")
    assert lines[11] == "   a b c d e f g h i j k"


@pytest.mark.parametrize(
    ("board", "match"),
    [
        ("XX./.../..", "square"),
        ("XXX/.../...", "3 X and 0 O"),
        ("XXX/OO./...", None),  # fine: black won with the last move
        ("XXX/OOO/X..", "both players"),
        ("XXX/OO./O..", "did not move last"),
    ],
)
def test_from_string_checks(board: str, match: str | None) -> None:
    if match is None:
        state = Gomoku.from_string(board, k=3)
        assert state.winner == 0 and state.is_terminal() and state.to_play == 1
        return
    with pytest.raises(ValueError, match=match):
        Gomoku.from_string(board, k=3)


def test_repr_round_trips() -> None:
    state = Gomoku.from_moves([40, 41, 50], size=9)
    assert repr(state) == "Gomoku.from_moves([40, 41, 50], size=9, k=5)"
    assert eval(repr(state), {"Gomoku": Gomoku}) == state
    setup = Gomoku.from_string("X../.O./...", k=2).step(8)
    assert eval(repr(setup), {"Gomoku": Gomoku}) == setup


def test_immutable_hashable_and_pickles() -> None:
    state = Gomoku.from_moves(["e5", "d4"], size=9, exact=True)
    with pytest.raises(AttributeError, match="immutable"):
        state._num_moves = 3  # type: ignore[misc]
    with pytest.raises(AttributeError, match="immutable"):
        del state._winner
    assert (
        state.step(0) != state
        and len({state, Gomoku.from_moves([40, 48], size=9, exact=True)}) == 1
    )
    assert Gomoku(size=9) != Gomoku(size=9, exact=True)  # different rules
    setup = Gomoku.from_string(".X./O../..X", k=3).step(1 * 3 + 1)
    for original in (state, setup, Gomoku(size=7)):
        copy = pickle.loads(pickle.dumps(original))
        assert copy == original and copy.key == original.key
        assert copy.moves == original.moves and copy.last_move == original.last_move
        assert (copy.size, copy.k, copy.exact) == (original.size, original.k, original.exact)


def test_moves_history() -> None:
    state = Gomoku.from_moves([40, 41, 42], size=9)
    assert state.moves == (40, 41, 42)
    assert state.step(0).moves == (40, 41, 42, 0) and state.moves == (40, 41, 42)


# --------------------------------------------------------------------------- pictures
def test_svg_is_well_formed_with_stones_numbers_and_highlights() -> None:
    state = _play_black(_cells(9, (4, 0), (0, 1), 5), 9, [0, 1, 2, 3])
    svg = state.to_svg(numbers=True)
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    circles = root.findall(f"{ns}circle")
    stones = [c for c in circles if c.get("fill") in ("#000", "#fff") and float(c.get("r", 0)) > 10]
    assert len(stones) == 9
    labels = {t.text for t in root.findall(f"{ns}text")}
    assert {str(i) for i in range(1, 10)} <= labels  # move numbers 1..9
    assert {"a", "i", "1", "9"} <= labels  # coordinates
    rings = [c for c in circles if c.get("stroke") == "#d00"]
    assert len(rings) == 5  # the winning line
    plain = ET.fromstring(state.to_svg(highlight=[], coordinates=False))
    assert not [c for c in plain.findall(f"{ns}circle") if c.get("stroke") == "#d00"]
    assert [c for c in plain.findall(f"{ns}circle") if c.get("fill") == "#d00"]  # last move dot
    with pytest.raises(ValueError, match="off the 9x9 board"):
        state.to_svg(highlight=[81])


def test_save_image_svg_and_png(tmp_path: Any) -> None:
    state = Gomoku.from_moves(["e5", "d4"], size=9)
    state.save_image(tmp_path / "board.svg", numbers=True)
    assert (tmp_path / "board.svg").read_text().startswith("<svg")
    state.save_image(tmp_path / "board.png")
    assert (tmp_path / "board.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match=r"\.svg or \.png"):
        state.save_image(tmp_path / "board.jpg")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["board.png", "board.svg"]
