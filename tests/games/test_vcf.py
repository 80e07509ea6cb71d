"""Victory by continuous fours (games/threats.py): hand positions with known answers (a
four-three, a chain of three fours, lines the defender's win aborts), an exhaustive plain-Python
reference over all forcing lines on small boards (hypothesis), the completeness of
``vcf_defences``, and ``AlphaZeroPlayer(vcf=...)``."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from treesearch.games.gomoku import Gomoku
from treesearch.games.threats import (
    VCFStats,
    find_vcf,
    refuted_by_threat,
    threat_safe_moves,
    vcf_defences,
)

DIRECTIONS = ((0, 1), (1, 0), (1, 1), (1, -1))

# Black (X, to move) has a four-three at e5: b5-e5 is a four (a5 is white's, so only f5
# completes it) and e2 e3 . e5 a broken three; after the forced f5, e4 makes the open four
# e2-e5 (e1 and e6 both win).
FOUR_THREE = """
O.......O
.........
.........
.........
OXXX.....
.........
....X....
....X....
O.......O
"""


# ------------------------------------------------------------------------ the reference
def line_wins(board: list[list[int]], r: int, c: int, stone: int, k: int, exact: bool) -> bool:
    size = len(board)
    for dr, dc in DIRECTIONS:
        n = 1
        for sign in (1, -1):
            rr, cc = r + sign * dr, c + sign * dc
            while 0 <= rr < size and 0 <= cc < size and board[rr][cc] == stone:
                n += 1
                rr, cc = rr + sign * dr, cc + sign * dc
        if (n == k) if exact else (n >= k):
            return True
    return False


def winning_cells(board: list[list[int]], stone: int, k: int, exact: bool) -> list[int]:
    size = len(board)
    out = []
    for r in range(size):
        for c in range(size):
            if board[r][c] == 0:
                board[r][c] = stone
                if line_wins(board, r, c, stone, k, exact):
                    out.append(r * size + c)
                board[r][c] = 0
    return out


def reference_vcf(board: list[list[int]], me: int, depth: int, k: int, exact: bool) -> bool:
    """Whether stone ``me`` (to move) wins by continuous fours within ``depth`` of its moves:
    every forcing line tried, by plain recursion on the board (a test may recurse)."""
    size = len(board)
    them = 3 - me
    if depth < 1:
        return False
    if winning_cells(board, me, k, exact):
        return True
    threats = winning_cells(board, them, k, exact)
    if len(threats) >= 2:
        return False
    moves = threats or [r * size + c for r in range(size) for c in range(size) if not board[r][c]]
    for move in moves:
        r, c = divmod(move, size)
        board[r][c] = me
        wins = winning_cells(board, me, k, exact)
        result = False
        if len(wins) >= 2:
            result = True
        elif len(wins) == 1 and depth >= 2:
            br, bc = divmod(wins[0], size)
            board[br][bc] = them
            if not line_wins(board, br, bc, them, k, exact):
                result = reference_vcf(board, me, depth - 1, k, exact)
            board[br][bc] = 0
        board[r][c] = 0
        if result:
            return True
    return False


def as_board(state: Gomoku) -> list[list[int]]:
    return [[int(x) for x in row] for row in state.board]


def check_line(state: Gomoku, line: tuple[int, ...], final: tuple[int, ...]) -> None:
    """Replays a VCF for the player to move: every attacker move but the last leaves exactly
    one winning cell, the next move in the line, and the defender none; the last wins or
    leaves two or more winning cells (``final``) while the defender has none."""
    attacker = state.to_play
    for i in range(0, len(line) - 1, 2):
        state = state.step(line[i])
        assert not state.is_terminal()
        assert state.winning_moves(attacker) == (line[i + 1],)
        assert state.winning_moves(1 - attacker) == ()
        state = state.step(line[i + 1])
        assert not state.is_terminal()
    state = state.step(line[-1])
    if state.winner != attacker:
        assert len(state.winning_moves(attacker)) >= 2
        assert tuple(sorted(final)) == state.winning_moves(attacker)
        assert state.winning_moves(1 - attacker) == ()


def random_position(size: int, k: int, exact: bool, seed: int, length: int) -> Gomoku:
    rng = np.random.default_rng(seed)
    state = Gomoku(size, k, exact=exact)
    for _ in range(length):
        if state.is_terminal():
            break
        state = state.step(int(rng.choice(state.legal_actions())))
    return state


# ------------------------------------------------------------------------ hand positions
def test_four_three_is_found_in_two_moves_not_one() -> None:
    state = Gomoku.from_string(FOUR_THREE)
    assert state.to_play == 0 and state.forced_actions() is None
    assert state.double_threat_moves(0) == ()  # no open four at once
    assert find_vcf(state, max_depth=1) is None
    result = find_vcf(state)
    assert result is not None and result.player == 0
    assert result.first_move == 40  # e5
    assert result.line[:2] == (40, 41)  # e5, then the forced f5
    assert result.line[2:] == (49,) and result.final_threats == (31, 76)  # e4: e2-e5, open
    check_line(state, result.line, result.final_threats)
    assert reference_vcf(as_board(state), 1, 2, 5, False)
    assert not reference_vcf(as_board(state), 1, 1, 5, False)


def test_chain_of_three_fours() -> None:
    # White (O) to move wins with three fours: f4 (forced d2), h6 (forced i7), then h5,
    # which leaves h8 and h3 open; nothing shorter works.
    board = """
    X.O...X..
    ..X..X...
    .X....XO.
    ...X.....
    ......O..
    .O.....O.
    ....OX..O
    O...X.X..
    ..O......
    """
    state = Gomoku.from_string(board)
    assert state.to_play == 1 and state.forced_actions() is None
    assert find_vcf(state, max_depth=2) is None
    result = find_vcf(state, max_depth=3)
    assert result is not None and result.player == 1
    assert result.line == (50, 66, 34, 26, 43) and result.final_threats == (16, 61)
    check_line(state, result.line, result.final_threats)
    assert reference_vcf(as_board(state), 2, 3, 5, False)
    assert not reference_vcf(as_board(state), 2, 2, 5, False)


def test_no_vcf_positions() -> None:
    assert find_vcf(Gomoku(size=9)) is None
    two = Gomoku.from_moves(["e5", "a1", "f5", "i9"], size=9)  # an open two only
    assert find_vcf(two) is None
    assert vcf_defences(two) is None
    over = Gomoku.from_moves(["e5", "e6", "f5", "f6", "g5", "g6", "h5"], size=9)
    assert over.is_terminal() is False
    assert find_vcf(over, player=1) is None  # white has only a three there


def test_a_win_at_once_and_the_threat_when_the_player_passes() -> None:
    state = Gomoku.from_string(FOUR_THREE)
    # Black passes: white (O in the corners, a5) has nothing.
    assert find_vcf(state, player=1) is None
    four = Gomoku.from_moves(["a1", "i9", "b1", "i8", "c1", "i7", "d1"], size=9)
    result = find_vcf(four, player=0)  # white to move; black would win at once at e1
    assert result is not None and result.line == (4 + 8 * 9,) and result.final_threats == ()


def test_the_defenders_win_aborts_a_line() -> None:
    # FOUR_THREE plus white f6 f7 f8: after e5 the forced block f5 gives white f5-f8, whose
    # f9 end is open (f4 is black): black must block at f9, which is no four, so the line
    # stops. White at d1 (not a1) keeps the stone counts legal.
    rows = FOUR_THREE.strip().splitlines()
    grid = [list(row) for row in rows]
    grid[8][0] = "."  # a1 -> moved
    grid[3][5], grid[2][5], grid[1][5] = "O", "O", "O"  # f6 f7 f8
    grid[5][5] = "X"  # f4
    grid[8][3] = "X"  # d1, far from everything
    state = Gomoku.from_string("\n".join("".join(r) for r in grid))
    assert state.to_play == 0 and state.forced_actions() is None
    assert find_vcf(state) is None
    assert not reference_vcf(as_board(state), 1, 4, 5, False)
    # White's existing four restricts black to its block: white g1? Give white a four with
    # its winning cell at e5, the start of black's four-three: black still wins (blocking
    # with a four), while a winning cell elsewhere stops black.
    on_line = Gomoku.from_string(
        """
        .........
        .........
        .........
        .........
        OXXX.....
        .....O...
        ....X.O..
        ....X..O.
        ........O
        """
    )
    assert on_line.to_play == 0 and on_line.winning_moves(1) == (40,)  # white's f4-i1 needs e5
    result = find_vcf(on_line)
    assert result is not None and result.line == (40, 41, 49)
    check_line(on_line, result.line, result.final_threats)
    elsewhere = Gomoku.from_string(
        """
        ........O
        .........
        .........
        .........
        OXXX.....
        .........
        ....X....
        ....X....
        ...XOOOO.
        """
    )
    assert elsewhere.to_play == 0 and elsewhere.winning_moves(1) == (80,)
    assert find_vcf(elsewhere) is None  # black must take i1, which makes no four
    assert not reference_vcf(as_board(elsewhere), 1, 4, 5, False)


def test_limits_and_bad_arguments() -> None:
    state = Gomoku.from_string(FOUR_THREE)
    stats = VCFStats()
    assert find_vcf(state, max_nodes=1, stats=stats) is None
    assert stats.limit_hits == 1 and stats.searches == 1
    with pytest.raises(ValueError, match="player must be 0 or 1"):
        find_vcf(state, player=2)
    with pytest.raises(ValueError, match="max_depth"):
        find_vcf(state, max_depth=0)
    with pytest.raises(TypeError, match="max_nodes"):
        find_vcf(state, max_nodes=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="time_limit"):
        find_vcf(state, time_limit=0)
    with pytest.raises(TypeError, match="Gomoku"):
        find_vcf("x")  # type: ignore[arg-type]


# ------------------------------------------------------------------------ the reference
VARIANTS = [(7, 4, False), (7, 5, False), (7, 4, True), (6, 4, False)]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    variant=st.sampled_from(VARIANTS),
    seed=st.integers(0, 10_000),
    length=st.integers(6, 22),
    depth=st.integers(1, 3),
)
def test_find_vcf_equals_the_exhaustive_reference(variant, seed, length, depth) -> None:
    size, k, exact = variant
    state = random_position(size, k, exact, seed, length)
    assume(not state.is_terminal())
    expected = reference_vcf(as_board(state), state.to_play + 1, depth, k, exact)
    result = find_vcf(state, max_depth=depth)
    assert (result is not None) == expected
    if result is not None:
        assert len(result.line) <= 2 * depth - 1
        check_line(state, result.line, result.final_threats)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(variant=st.sampled_from(VARIANTS), seed=st.integers(0, 10_000), length=st.integers(6, 20))
def test_vcf_defences_are_exactly_the_moves_that_stop_every_vcf(variant, seed, length) -> None:
    """Complete and sound on the moves that make no four: a move is listed iff the opponent,
    to move after it, has no VCF (checked for every legal move)."""
    size, k, exact = variant
    state = random_position(size, k, exact, seed, length)
    assume(not state.is_terminal() and state.forced_actions() is None)
    me = state.to_play
    defence = vcf_defences(state)
    if find_vcf(state, player=1 - me) is None:
        assert defence is None
        return
    assert defence is not None and defence.complete
    for move in state.legal_actions():
        after = state.step(move)
        if after.is_terminal() or after.winning_moves(me):
            continue  # wins, or a four: the strict test applies
        stops = find_vcf(after, player=1 - me) is None
        assert (move in defence.defences) == stops, move


# ------------------------------------------------------------------------ one threat deeper
# From a game the agent lost as white (arena seed 1, game 17), white to move: h3 lets black
# play c7, after which black has a VCF (d6 first) and white neither a VCF nor any defence.
LOST_GAME = [
    "e6",
    "g6",
    "d5",
    "e4",
    "f7",
    "c4",
    "h9",
    "g8",
    "f5",
    "d4",
    "f4",
    "f6",
    "e5",
    "g5",
    "b5",
    "c5",
    "g4",
]


def test_a_move_refuted_one_threat_deeper() -> None:
    from treesearch.games.gomoku import parse_move

    state = Gomoku.from_moves(LOST_GAME, size=9)
    assert state.to_play == 1 and state.forced_actions() is None
    h3, d7, c7 = (parse_move(x, 9) for x in ("h3", "d7", "c7"))
    assert refuted_by_threat(state, h3)
    assert not refuted_by_threat(state, d7)
    position = state.step(h3).step(c7)
    assert find_vcf(position) is None
    assert find_vcf(position, player=0) is not None
    # No white move stops black's VCF: every move, a four of white's too, checked directly.
    for move in position.legal_actions():
        after = position.step(move)
        if after.winning_moves(1):
            block = after.winning_moves(1)[0]
            after = after.step(block)
            assert after.is_terminal() or find_vcf(after, player=0) is not None
        else:
            assert find_vcf(after) is not None, format(move)
    assert threat_safe_moves(state, (h3, d7)) == (d7,)
    assert threat_safe_moves(state, (h3,)) == (h3,)  # nothing survives: all are kept
    with pytest.raises(ValueError):
        refuted_by_threat(state, parse_move("e6", 9))  # taken


# ------------------------------------------------------------------------ the player
@pytest.fixture(scope="module")
def tiny_net_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    torch = pytest.importorskip("torch")
    del torch
    from treesearch.games.nets import PolicyValueNet, save_net

    path = tmp_path_factory.mktemp("vcf") / "tiny.safetensors"
    save_net(path, PolicyValueNet(9, blocks=1, channels=8), metadata={"k": "5"})
    return str(path)


def test_player_plays_its_vcf_without_searching(tiny_net_path: str) -> None:
    from treesearch.games.arena import AlphaZeroPlayer

    state = Gomoku.from_string(FOUR_THREE)
    player = AlphaZeroPlayer(tiny_net_path, simulations=30)
    rng = np.random.default_rng(0)
    assert player.choose(state, rng=rng) == 40
    assert player.last_vcf == "win" and player.last_simulations == 0
    off = AlphaZeroPlayer(tiny_net_path, simulations=30, vcf=False)
    off.choose(state, rng=rng)
    assert off.last_vcf == "none" and off.last_simulations == 30


def test_player_answers_the_opponents_vcf(tiny_net_path: str) -> None:
    from treesearch.games.arena import AlphaZeroPlayer

    # FOUR_THREE with the colours swapped, black to move: white threatens the four-three.
    state = Gomoku.from_string(FOUR_THREE.replace("X", "x").replace("O", "X").replace("x", "O"))
    assert state.to_play == 0 and find_vcf(state) is None
    defence = vcf_defences(state)
    assert defence is not None and 40 in defence.defences
    assert set(defence.defences) < set(state.legal_actions())
    player = AlphaZeroPlayer(tiny_net_path, simulations=40)
    for seed in range(3):
        move = player.choose(state, rng=np.random.default_rng(seed))
        assert move in defence.defences and player.last_vcf in ("defend", "checked")
        assert find_vcf(state.step(move), player=1) is None or state.step(move).winning_moves(0)


def test_option_off_is_the_old_search(tiny_net_path: str) -> None:
    """vcf=False never consults the solver; with no VCF on the board the two players make
    the same search, visit for visit."""
    from treesearch.games.arena import AlphaZeroPlayer

    state = Gomoku.from_moves(["e5", "a1", "f6"], size=9)
    assert find_vcf(state) is None and vcf_defences(state) is None
    visits = []
    for flag in (True, False):
        player = AlphaZeroPlayer(tiny_net_path, simulations=50, vcf=flag)
        player.choose(state, rng=np.random.default_rng(7))
        assert player.last_result is not None
        visits.append(player.last_result.tree.visits.copy())
    assert np.array_equal(visits[0], visits[1])
    with pytest.raises(TypeError, match="vcf must be True or False"):
        AlphaZeroPlayer(tiny_net_path, simulations=5, vcf="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="vcf_time"):
        AlphaZeroPlayer(tiny_net_path, simulations=5, vcf_time=0.0)


def test_player_checks_its_move_one_threat_deeper(tiny_net_path: str) -> None:
    from treesearch.games.arena import AlphaZeroPlayer
    from treesearch.games.gomoku import parse_move

    state = Gomoku.from_moves(LOST_GAME, size=9)
    player = AlphaZeroPlayer(tiny_net_path, simulations=60, threat_check_time=60.0)
    unchecked = AlphaZeroPlayer(tiny_net_path, simulations=60, threat_check=False)
    rng = np.random.default_rng(0)
    for seed in range(2):
        move = player.choose(state, rng=np.random.default_rng(seed))
        assert not refuted_by_threat(state, move)
        assert player.last_result is not None
        if player.last_result.action != move:
            assert player.last_vcf == "checked"
            assert refuted_by_threat(state, player.last_result.action)  # type: ignore[arg-type]
    unchecked.choose(state, rng=rng)
    assert unchecked.last_vcf != "checked"
    assert parse_move("h3", 9) in state.legal_actions()
    with pytest.raises(ValueError, match="threat_check_time"):
        AlphaZeroPlayer(tiny_net_path, simulations=5, threat_check_time=-1.0)


def test_threat_check_keeps_the_search_move_when_it_is_not_refuted(tiny_net_path: str) -> None:
    """With few simulations many root moves tie on visits; the check must keep the move the
    search chose (its tie-break), not the first of the tied moves (a bug the demo caught)."""
    from treesearch.games.arena import AlphaZeroPlayer

    state = Gomoku(9)
    player = AlphaZeroPlayer(tiny_net_path, simulations=12)
    for seed in range(4):
        move = player.choose(state, rng=np.random.default_rng(seed))
        assert player.last_result is not None
        assert move == player.last_result.action and player.last_vcf == "none"
