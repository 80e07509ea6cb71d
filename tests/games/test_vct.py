"""Victory by continuous threats (games/threats.py ``find_vct``): hand positions (a three-three,
a threat that is answered), soundness against an exact solver of the whole game on small
boards (hypothesis), limits and bad input, and ``AlphaZeroPlayer(vct=...)``."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from treesearch.games.gomoku import Gomoku, parse_move
from treesearch.games.threats import VCFStats, find_vcf, find_vct


def position(black: list[str], white: list[str], size: int = 9) -> Gomoku:
    moves: list[int] = []
    for index in range(max(len(black), len(white))):
        if index < len(black):
            moves.append(parse_move(black[index], size))
        if index < len(white):
            moves.append(parse_move(white[index], size))
    return Gomoku.from_moves(moves, size=size)


def solve(state: Gomoku, memo: dict) -> int:
    """The exact value of ``state`` for the player to move: 1 win, 0 draw, -1 loss (plain
    negamax over every legal move, memoised; a test may recurse)."""
    if state.is_terminal():
        winner = state.winner
        return 0 if winner is None else (1 if winner == state.to_play else -1)
    key = state.key
    if key in memo:
        return memo[key]
    best = -1
    for action in state.legal_actions():
        value = -solve(state.step(action), memo)
        if value > best:
            best = value
            if best == 1:
                break
    memo[key] = best
    return best


def random_dense_position(size: int, k: int, empties: int, seed: int) -> Gomoku | None:
    """Random play until ``empties`` cells are left; ``None`` if the game ended first."""
    rng = np.random.default_rng(seed)
    state = Gomoku(size=size, k=k)
    while len(state.legal_actions()) > empties:
        state = state.step(int(rng.choice(state.legal_actions())))
        if state.is_terminal():
            return None
    return state


# ----------------------------------------------------------------------------- by hand
def test_three_three_is_a_vct_but_not_a_vcf() -> None:
    # Black: c3 d3 and e5 e6; e3 makes two open threes (c3-e3 and e3-e6 with e4 empty), and
    # one stone cannot answer both.
    state = position(["c3", "d3", "e5", "e6"], ["a9", "i9", "a1", "i1"])
    assert state.to_play == 0
    assert find_vcf(state) is None
    result = find_vct(state)
    assert result is not None
    assert result.first_move == parse_move("e3", 9)
    assert result.depth == 1
    after = state.step(result.first_move)
    assert after.threat_defences() == ()  # white has no answer: it is a proof


def test_a_single_open_three_is_not_a_vct() -> None:
    # Black can make one open three (c3 d3 + e3 or b3), which white blocks; nothing else.
    state = position(["c3", "d3"], ["a9", "i9"])
    assert find_vct(state, max_depth=4) is None


def test_vct_needs_the_depth() -> None:
    # A position from a fixed random sample whose shortest VCT takes two threat moves: the
    # depth limit is respected both ways.
    for seed in range(400):
        state = _clustered(9, seed, length=12)
        if state is None or find_vcf(state) is not None:
            continue
        result = find_vct(state, max_depth=3)
        if result is not None and result.depth >= 2:
            assert find_vct(state, max_depth=result.depth - 1) is None
            assert find_vct(state, max_depth=result.depth).first_move == result.first_move
            return
    pytest.fail("no position with a two-move VCT in the sample")


def _clustered(size: int, seed: int, length: int) -> Gomoku | None:
    rng = np.random.default_rng(seed)
    state = Gomoku(size=size)
    centre = size // 2
    for _ in range(length):
        near = [
            a
            for a in state.legal_actions()
            if abs(a // size - centre) <= 2 and abs(a % size - centre) <= 2
        ]
        state = state.step(int(rng.choice(near)))
        if state.is_terminal():
            return None
    return state


def test_vcf_at_the_root_is_played_through_find_vct() -> None:
    # test_vcf.py's four-three: b5-e5 a four (a5 is white's), then e2 e3 . e5 a broken three.
    board = "\n".join(
        ["O.......O", ".........", ".........", ".........", "OXXX.....", ".........",
         "....X....", "....X....", "O.......O"]
    )  # fmt: skip
    state = Gomoku.from_string(board)
    vcf = find_vcf(state)
    assert vcf is not None
    result = find_vct(state)
    assert result is not None and result.first_move == vcf.first_move


# -------------------------------------------------------------------------- soundness
@settings(deadline=None, max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(
    variant=st.sampled_from([(5, 4), (6, 4)]),
    empties=st.integers(8, 12),
    seed=st.integers(0, 1_000_000),
)
def test_every_vct_found_wins_against_every_defence(variant, empties, seed) -> None:
    size, k = variant
    state = random_dense_position(size, k, empties, seed)
    if state is None:
        return
    result = find_vct(state, max_depth=4)
    if result is None:
        return
    assert result.first_move in state.legal_actions()
    after = state.step(result.first_move)
    assert solve(after, {}) == -1 or (after.is_terminal() and after.winner == state.to_play)


def test_the_soundness_sample_is_not_vacuous() -> None:
    """The random dense positions of the property above do hold VCTs."""
    found = 0
    for seed in range(300):
        state = random_dense_position(6, 4, 12, seed)
        if state is None:
            continue
        result = find_vct(state, max_depth=4)
        if result is not None:
            found += 1
            assert solve(state.step(result.first_move), {}) == -1
    assert found >= 10


def holds_against_every_reply(after: Gomoku, attacker: int, depth: int) -> bool:
    """Whether the attacker, having moved into ``after``, wins against *every* defender reply
    (all legal moves, not only the threat defences): by an immediate win, a VCF, or again a
    VCT whose first move holds the same way (a test may recurse)."""
    if after.is_terminal():
        return after.winner == attacker
    for reply in after.legal_actions():
        position = after.step(reply)
        if position.is_terminal():
            return False  # the defender made k in a row
        if position.winning_moves(attacker) or find_vcf(position) is not None:
            continue
        blocks = position.winning_moves(1 - attacker)
        if len(blocks) == 1:  # a defender four: the attacker blocks, its threat stands
            if not holds_against_every_reply(position.step(blocks[0]), attacker, depth):
                return False
            continue
        follow = find_vct(position, max_depth=depth) if depth >= 1 else None
        if follow is None or not holds_against_every_reply(
            position.step(follow.first_move), attacker, depth - 1
        ):
            return False
    return True


def test_vcts_beyond_vcf_on_9x9_hold_against_every_reply() -> None:
    """On full-size boards the exact solver is out of reach: each VCT that is no VCF in a
    sample of clustered 9x9 positions is replayed against every legal defender reply."""
    checked = deeper = 0
    for seed in range(300):
        state = _clustered(9, seed, length=12)
        if state is None or find_vcf(state) is not None:
            continue
        result = find_vct(state, max_depth=2)
        if result is None:
            continue
        checked += 1
        deeper += result.depth == 2
        assert holds_against_every_reply(
            state.step(result.first_move), state.to_play, result.depth
        ), seed
    assert checked >= 5 and deeper >= 1


# ----------------------------------------------------------------------- limits, input
def test_limits_stop_the_search_and_are_recorded() -> None:
    state = position(["c3", "d3", "e5", "e6"], ["a9", "i9", "a1", "i1"])
    stats = VCFStats()
    assert find_vct(state, max_nodes=1, stats=stats) is None
    assert stats.limit_hits == 1 and stats.searches == 1


def test_bad_input() -> None:
    state = position(["c3"], [])
    with pytest.raises(TypeError, match="Gomoku"):
        find_vct("board")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="player to move"):
        find_vct(state, player=0)
    with pytest.raises(ValueError, match="player must be 0 or 1"):
        find_vct(state, player=2)
    with pytest.raises(ValueError, match="max_depth"):
        find_vct(state, max_depth=0)
    with pytest.raises(ValueError, match="time_limit"):
        find_vct(state, time_limit=0)
    assert find_vct(Gomoku.from_moves([0, 9, 1, 10, 2, 11, 3, 12, 4], size=9)) is None  # over


# ------------------------------------------------------------------------------ the player
@pytest.fixture(scope="module")
def tiny_net_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    pytest.importorskip("torch")
    from treesearch.games.nets import PolicyValueNet, save_net

    path = tmp_path_factory.mktemp("vct") / "tiny.safetensors"
    save_net(path, PolicyValueNet(9, blocks=1, channels=8), metadata={"k": "5"})
    return str(path)


def test_player_plays_its_vct_without_searching(tiny_net_path: str) -> None:
    from treesearch.games.arena import AlphaZeroPlayer

    state = position(["c3", "d3", "e5", "e6"], ["a9", "i9", "a1", "i1"])
    player = AlphaZeroPlayer(tiny_net_path, simulations=30)
    assert player.choose(state, rng=np.random.default_rng(0)) == parse_move("e3", 9)
    assert player.last_vcf == "vct" and player.last_simulations == 0
    off = AlphaZeroPlayer(tiny_net_path, simulations=30, vct=False)
    off.choose(state, rng=np.random.default_rng(0))
    assert off.last_vcf != "vct" and off.last_simulations == 30
    with pytest.raises(TypeError, match="vct must be True or False"):
        AlphaZeroPlayer(tiny_net_path, simulations=5, vct=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="vct_time"):
        AlphaZeroPlayer(tiny_net_path, simulations=5, vct_time=-1.0)


def test_player_defends_before_it_attacks_by_threes(tiny_net_path: str) -> None:
    """With a VCT of its own but facing the opponent's VCF, the player answers the VCF: a
    three is too slow against fours."""
    from treesearch.games.arena import AlphaZeroPlayer
    from treesearch.games.threats import vcf_defences

    # Black to move has the three-three at e3 as above, but white's open three f1-h1 becomes
    # an open four at once (a VCF of one move), which a three cannot outrun; no block of it
    # makes a black threat.
    state = position(["c3", "d3", "e5", "e6", "a9"], ["f1", "g1", "h1", "i9", "a7"])
    assert state.to_play == 0 and find_vct(state) is None
    assert find_vcf(state, player=1) is not None
    defence = vcf_defences(state)
    assert defence is not None and defence.defences
    player = AlphaZeroPlayer(tiny_net_path, simulations=30)
    move = player.choose(state, rng=np.random.default_rng(0))
    assert player.last_vcf != "vct"
    assert move in defence.defences
