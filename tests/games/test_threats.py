"""Threat-space defences (Allis, van den Herik & Huntjens 1993): ``Gomoku.double_threat_moves``
and ``Gomoku.threat_defences`` against a plain-Python reference on the board array, by hand on
known shapes (open three, broken three, counter-four), and the proof that every move outside
the set loses in three more moves."""

from __future__ import annotations

import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from treesearch.games.gomoku import Gomoku

DIRECTIONS = ((0, 1), (1, 0), (1, 1), (1, -1))


# ------------------------------------------------------------------------ the reference
def line_wins(board: list[list[int]], r: int, c: int, stone: int, k: int, exact: bool) -> bool:
    """Whether the stone at (r, c) is in a winning line, counted on the board."""
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


def has_double_threat(board: list[list[int]], stone: int, k: int, exact: bool) -> bool:
    """Whether ``stone`` has a move after which it has two or more winning cells."""
    size = len(board)
    for r in range(size):
        for c in range(size):
            if board[r][c] == 0:
                board[r][c] = stone
                found = len(winning_cells(board, stone, k, exact)) >= 2
                board[r][c] = 0
                if found:
                    return True
    return False


def reference_defences(state: Gomoku) -> tuple[int, ...]:
    """The definition, by brute force: every move of the player to move that makes a four or
    leaves the opponent no double-threat move, when the opponent has one and no side can win
    at once; else ``()``."""
    if state.is_terminal():
        return ()
    k, exact, size = state.k, state.exact, state.size
    board = state.board.astype(int).tolist()
    me, them = state.to_play + 1, 2 - state.to_play
    if winning_cells(board, me, k, exact) or winning_cells(board, them, k, exact):
        return ()
    if not has_double_threat(board, them, k, exact):
        return ()
    keep = []
    for r in range(size):
        for c in range(size):
            if board[r][c]:
                continue
            board[r][c] = me
            if winning_cells(board, me, k, exact) or not has_double_threat(board, them, k, exact):
                keep.append(r * size + c)
            board[r][c] = 0
    return tuple(keep)


def double_threat_cells(board: list[list[int]], stone: int, k: int, exact: bool) -> list[int]:
    size = len(board)
    out = []
    for r in range(size):
        for c in range(size):
            if board[r][c] == 0:
                board[r][c] = stone
                if len(winning_cells(board, stone, k, exact)) >= 2:
                    out.append(r * size + c)
                board[r][c] = 0
    return out


def reference_threat_space(state: Gomoku) -> tuple[int, ...] | None:
    """The documented order, by brute force: win, block, own double threat, defences, the
    opponent's threat cells when nothing defends, else ``None``."""
    if state.is_terminal():
        return None
    k, exact = state.k, state.exact
    board = state.board.astype(int).tolist()
    me, them = state.to_play + 1, 2 - state.to_play
    for stone in (me, them):
        cells = winning_cells(board, stone, k, exact)
        if cells:
            return tuple(cells)
    own = double_threat_cells(board, me, k, exact)
    if own:
        return tuple(own)
    defences = reference_defences(state)
    if defences:
        return defences
    return tuple(double_threat_cells(board, them, k, exact)) or None


def wins_in_three(state: Gomoku, action: int) -> bool:
    """After ``action``, every reply leaves the mover an immediate win."""
    after = state.step(action)
    if after.is_terminal():
        return after.winner is not None
    return all(after.step(reply).winning_moves(state.to_play) for reply in after.legal_actions())


def loses_in_three(state: Gomoku, action: int) -> bool:
    """After ``action``, the opponent has a move after which every reply lets it win at once."""
    after = state.step(action)
    for threat in after.legal_actions():
        then = after.step(threat)
        if then.is_terminal():
            return then.winner is not None
        if all(then.step(reply).winning_moves() for reply in then.legal_actions()):
            return True
    return False


def clustered_position(
    size: int, k: int, exact: bool, seed: int, length: int, radius: int
) -> Gomoku:
    """Random moves inside the central square of side ``2 * radius + 1``, so that lines form."""
    rng = np.random.default_rng(seed)
    state = Gomoku(size=size, k=k, exact=exact)
    centre = size // 2
    for _ in range(length):
        if state.is_terminal():
            break
        near = [
            a
            for a in state.legal_actions()
            if abs(a // size - centre) <= radius and abs(a % size - centre) <= radius
        ]
        state = state.step(int(rng.choice(near or list(state.legal_actions()))))
    return state


VARIANTS = [(6, 4, False), (7, 4, False), (7, 5, False), (7, 4, True), (8, 5, True), (9, 5, False)]


@settings(deadline=None, max_examples=80)
@given(
    variant=st.sampled_from(VARIANTS),
    seed=st.integers(0, 100_000),
    length=st.integers(2, 22),
    radius=st.integers(2, 3),
)
def test_threat_defences_equal_the_reference(variant, seed, length, radius) -> None:
    size, k, exact = variant
    state = clustered_position(size, k, exact, seed, length, radius)
    assert state.threat_defences() == reference_defences(state)


@settings(deadline=None, max_examples=60)
@given(
    variant=st.sampled_from(VARIANTS),
    seed=st.integers(0, 100_000),
    length=st.integers(2, 22),
    radius=st.integers(2, 3),
)
def test_threat_space_actions_equal_the_reference(variant, seed, length, radius) -> None:
    size, k, exact = variant
    state = clustered_position(size, k, exact, seed, length, radius)
    expected = reference_threat_space(state)
    assert state.threat_space_actions() == expected
    if expected and state.forced_actions() is None:
        if state.double_threat_moves(state.to_play):
            assert all(wins_in_three(state, a) for a in expected)
        elif not state.threat_defences():  # nothing defends: every move loses
            assert all(loses_in_three(state, a) for a in state.legal_actions())


def test_reference_comparison_is_not_vacuous() -> None:
    """The random positions above do hold threats: many give a non-empty set, some a set that
    is not just the blocks (fours included) and all agree with the reference."""
    non_empty = with_fours = 0
    for seed in range(60):
        state = clustered_position(7, 4, False, seed, 8 + seed % 10, 2)
        expected = reference_defences(state)
        assert state.threat_defences() == expected
        non_empty += bool(expected)
        if expected:
            empty = state.board.ravel() == 0
            fours = [
                a
                for a in np.flatnonzero(empty).tolist()
                if state.step(a).winning_moves(state.to_play)
            ]
            with_fours += bool(set(fours) & set(expected))
    assert non_empty >= 10
    assert with_fours >= 2


@settings(deadline=None, max_examples=40)
@given(
    variant=st.sampled_from(VARIANTS[:3]), seed=st.integers(0, 100_000), length=st.integers(4, 16)
)
def test_every_move_outside_the_set_loses_in_three(variant, seed, length) -> None:
    size, k, exact = variant
    state = clustered_position(size, k, exact, seed, length, 2)
    allowed = state.threat_defences()
    if not allowed:
        return
    outside = [a for a in state.legal_actions() if a not in allowed]
    for action in outside:
        assert loses_in_three(state, action), (state, action)


# ------------------------------------------------------------------------------- by hand
OPEN_THREE = """
.........
.........
.........
.........
...XXX...
.........
.......O.
.......O.
.........
"""

BROKEN_THREE = """
.........
.........
.........
.........
..X.XX...
.........
.......O.
.......O.
.........
"""

# Black (to move) faces two open threes of white; no one stone blocks both, so only black's
# fours (down column a, which white must answer) avoid a loss in three.
TWO_THREES = """
X.......X
X........
X........
.........
...OOO...
.........
.........
...OOO...
X.......X
"""


def test_open_three_must_be_blocked_at_an_end() -> None:
    state = Gomoku.from_string(OPEN_THREE)
    assert state.to_play == 1
    # c5 and g5 (row 4 from the top, columns 2 and 6) make an open four for black.
    assert state.double_threat_moves() == (38, 42)
    # The far ends (b5, h5) do not stop the open four on the other side.
    assert state.threat_defences() == (38, 42)
    assert reference_defences(state) == (38, 42)


def test_broken_three_is_blocked_at_either_end_or_in_the_gap() -> None:
    state = Gomoku.from_string(BROKEN_THREE)
    assert state.double_threat_moves() == (39,)  # filling the gap makes .XXXX.
    assert state.threat_defences() == (37, 39, 42)


def test_counter_four_when_no_block_covers_both_threats() -> None:
    state = Gomoku.from_string(TWO_THREES)
    assert state.to_play == 0
    assert state.double_threat_moves() == (38, 42, 65, 69)
    assert state.threat_defences() == (27, 36)  # a6 and a5: four in column a
    assert state.step(27).winning_moves(0) == (36,)


def test_no_threat_gives_the_empty_set() -> None:
    assert Gomoku(size=9).threat_defences() == ()
    two = Gomoku.from_moves(["e5", "a1", "f5"], size=9)  # a two: no open four next move
    assert two.double_threat_moves() == () and two.threat_defences() == ()
    # An immediate win or block is forced_actions()' business, not this.
    four = Gomoku.from_moves(["a5", "a1", "b5", "b1", "c5", "c1", "d5"], size=9)
    assert four.forced_actions() == (40,) and four.threat_defences() == ()
    finished = Gomoku.from_moves(["a5", "a1", "b5", "b1", "c5", "c1", "d5", "d1", "e5"], size=9)
    assert finished.is_terminal() and finished.threat_defences() == ()
    assert finished.double_threat_moves() == ()


def test_exact_rule_double_threats_ignore_overlines() -> None:
    # X..XXX.. in row 5: black at c5 makes b5 (an overline of six) and g5 winning cells under
    # freestyle, but only g5 under the exact rule; g5 makes an open four under both.
    board = """
........
........
........
X..XXX..
........
........
O.......
O......O
"""
    free = Gomoku.from_string(board, k=5)
    exact = Gomoku.from_string(board, k=5, exact=True)
    assert free.double_threat_moves() == (26, 30)
    assert exact.double_threat_moves() == (30,)
    assert free.threat_defences() == reference_defences(free) == (26, 30)
    # Exact: b5 no longer helps (g5 still makes c5-g5 and d5-h5), h5 now does.
    assert exact.threat_defences() == reference_defences(exact) == (26, 30, 31)


def test_threat_space_actions_by_hand() -> None:
    # White to move against black's open three: the two blocks.
    assert Gomoku.from_string(OPEN_THREE).threat_space_actions() == (38, 42)
    # Black to move with its own open three: the open four wins in three, before defending.
    own = Gomoku.from_moves(["d5", "h1", "e5", "h2", "f5", "a9"], size=9)
    assert own.to_play == 0 and own.threat_space_actions() == (38, 42)
    assert all(wins_in_three(own, a) for a in (38, 42))
    # Black without fours against two open threes: every move loses; the threat cells remain.
    lost = Gomoku.from_string(TWO_THREES.replace("X........\nX........", "X........\n.X......."))
    assert lost.threat_defences() == ()
    assert lost.threat_space_actions() == lost.double_threat_moves() == (38, 42, 65, 69)
    # Forced moves first; None where nothing is forced two moves deep.
    four = Gomoku.from_moves(["a5", "a1", "b5", "b1", "c5", "c1", "d5"], size=9)
    assert four.threat_space_actions() == four.forced_actions() == (40,)
    assert Gomoku(size=9).threat_space_actions() is None
    assert Gomoku.from_moves(["e5", "a1", "f5"], size=9).threat_space_actions() is None


def test_double_threat_moves_player_argument() -> None:
    state = Gomoku.from_string(OPEN_THREE)
    assert state.double_threat_moves(0) == (38, 42)
    assert state.double_threat_moves(1) == ()
    with pytest.raises(ValueError, match="player must be 0 or 1"):
        state.double_threat_moves(2)


def test_fast_enough_for_every_move() -> None:
    """Well under a millisecond per call on 15x15 positions with threats (timed loosely: the
    machine is shared)."""
    positions = [clustered_position(15, 5, False, seed, 20, 3) for seed in range(40)]
    start = time.perf_counter()
    answered = sum(bool(p.threat_defences()) for p in positions)
    per_call = (time.perf_counter() - start) / len(positions)
    assert answered >= 3
    assert per_call < 0.01


# ------------------------------------------------------------------ the AlphaZero player
@pytest.fixture
def tiny_net_path(tmp_path):
    """An untrained 9x9 net (its priors know nothing of threats) on one torch thread."""
    torch = pytest.importorskip("torch")
    from treesearch.games.nets import PolicyValueNet, save_net

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    path = tmp_path / "net.safetensors"
    save_net(path, PolicyValueNet(9, blocks=1, channels=8), metadata={"k": "5"})
    yield path
    torch.set_num_threads(threads)


def threatened_positions() -> list[Gomoku]:
    positions = [Gomoku.from_string(board) for board in (OPEN_THREE, BROKEN_THREE, TWO_THREES)]
    for seed in range(400):
        state = clustered_position(9, 5, False, seed, 6 + seed % 12, 2)
        if state.threat_defences():
            positions.append(state)
        if len(positions) == 10:
            break
    return positions


def test_player_searches_only_the_defences(tiny_net_path) -> None:
    from treesearch.games.arena import AlphaZeroPlayer

    # vcf=False: the VCF step (games/threats.py, tested in test_vcf.py) would answer these
    # threats first.
    player = AlphaZeroPlayer(tiny_net_path, simulations=40, vcf=False)
    unfiltered = AlphaZeroPlayer(tiny_net_path, simulations=40, threat_defence=False, vcf=False)
    rng = np.random.default_rng(0)
    escaped = 0
    positions = threatened_positions()
    assert len(positions) == 10
    for state in positions:
        allowed = state.threat_defences()
        only = state.threat_space_actions()
        assert only is not None and set(only) <= set(allowed)  # own open fours are fours
        action = player.choose(state, rng=rng)
        assert action in allowed
        result = player.last_result
        assert result is not None and set(result.actions) == set(only)
        assert result.usage.simulations == 40 or result.stop_reason == "solved"
        escaped += unfiltered.choose(state, rng=rng) not in allowed
    assert escaped >= 3  # the untrained net alone walks into the open four


def test_player_with_threats_in_the_tree(tiny_net_path) -> None:
    """threats_in_tree: every node the search expands has the children its position's
    threat_space_actions() names (all legal moves where it names none)."""
    from treesearch.games.arena import AlphaZeroPlayer

    player = AlphaZeroPlayer(tiny_net_path, simulations=120, threats_in_tree=True)
    rng = np.random.default_rng(2)
    for state in threatened_positions()[:4]:
        assert player.choose(state, rng=rng) in state.threat_defences()
        assert player.last_result is not None
        tree = player.last_result.tree
        checked = 0
        for node in range(tree.num_nodes):
            if not tree.is_expanded(node):
                continue
            position = tree.state(node)
            only = position.threat_space_actions()
            children = [tree.actions[child] for child in tree.children(node)]
            assert children == list(only if only else position.legal_actions())
            checked += 1
        assert checked >= 2


def test_player_filters_a_reused_tree_too(tiny_net_path) -> None:
    """The position after the opponent makes an open three is reached through the player's
    reused tree; the root is still restricted."""
    from treesearch.games.arena import AlphaZeroPlayer

    player = AlphaZeroPlayer(tiny_net_path, simulations=60)
    rng = np.random.default_rng(1)
    start = Gomoku.from_moves(["d5", "h3", "e5"], size=9)  # white to move, black has a two
    player.choose(start, rng=rng)
    assert player.last_result is not None
    first = player.last_result.action
    assert first is not None
    # Whatever white played, black makes an open three with f5 unless white took that cell.
    state = start.step(first)
    three = next(a for a in ("f5", "c5", "g5") if state.board.ravel()[parse(a)] == 0)
    state = state.step(parse(three))
    allowed = state.threat_defences()
    assert allowed  # (deterministic: the seeded search's first move leaves the three open)
    assert player._keeper.tree is not None  # the previous search is there to reuse
    assert player.choose(state, rng=rng) in allowed
    assert player.last_result is not None
    assert set(player.last_result.actions) == set(allowed)


def parse(text: str) -> int:
    from treesearch.games.gomoku import parse_move

    return parse_move(text, 9)


def test_option_off_is_the_old_player(tiny_net_path) -> None:
    """threat_defence=False is the plain decisive-moves PUCT search, visit for visit; at the
    root only, where no threat exists, the option changes nothing either."""
    from treesearch import MCTS, Budget
    from treesearch.games.arena import AlphaZeroPlayer
    from treesearch.games.nets import NetEvaluator, load_net

    net = load_net(tiny_net_path)
    reference = MCTS(
        NetEvaluator(net), selection="puct", c=1.25, final="visits", decisive_moves=True
    )
    threatened = Gomoku.from_string(OPEN_THREE)
    quiet = Gomoku.from_moves(["e5", "a1", "f5"], size=9)
    for state in (threatened, quiet):
        expected = reference.search(state, Budget(simulations=50), rng=np.random.default_rng(3))
        for flag in (False, True):
            if flag and state is threatened:
                continue
            player = AlphaZeroPlayer(
                tiny_net_path,
                simulations=50,
                threat_defence=flag,
                threats_in_tree=False,
                vcf=False,
            )
            action = player.choose(state, rng=np.random.default_rng(3))
            got = player.last_result
            assert got is not None
            assert action == expected.action
            assert got.actions == expected.actions
            np.testing.assert_array_equal(got.visit_distribution, expected.visit_distribution)
    with pytest.raises(TypeError, match="threat_defence must be True or False"):
        AlphaZeroPlayer(tiny_net_path, simulations=5, threat_defence="yes")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="threats_in_tree must be True or False"):
        AlphaZeroPlayer(tiny_net_path, simulations=5, threats_in_tree=1)  # type: ignore[arg-type]
