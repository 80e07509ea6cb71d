"""The shipped 9x9 Gomoku agent (games/agents/gomoku9.safetensors): its metadata, its board-size
check, and two tactical positions it must solve with PUCT (AlphaZero search, Silver et al.
2017), as UCT with random rollouts (Kocsis & Szepesvari 2006) also does.

Skipped when the file is absent (a checkout before the agent was trained and copied there).
"""

from __future__ import annotations

import numpy as np
import pytest

from treesearch import MCTS, Budget, RandomRollout
from treesearch.games import Gomoku
from treesearch.games.arena import AlphaZeroPlayer, parse_player, shipped_agent_path
from treesearch.games.gomoku import format_move, parse_move, transform_action

AGENT = shipped_agent_path(9, 5)
pytestmark = pytest.mark.skipif(
    AGENT is None,
    reason="no shipped agent: games/agents/gomoku9.safetensors is absent (train one with "
    "'treesearch train gomoku --size 9' and copy its best.safetensors there)",
)

AGENT_SIMULATIONS = 400
UCT_SIMULATIONS = 5000  # measured: 3000 found the block for 12 of 12 seeds, 2000 for 10 of 12

# Black (X) to move with four in a row c5-f5, blocked at b5: g5 is the one winning move.
WIN_IN_ONE = """
. . . . . . . . .
. . . . . . . . .
. . . . . . . . .
. . . O . . . . .
. O X X X X . . .
. . . . O . . . .
. . . . . . . . .
. . . . . . . O .
. . . . . . . . .
"""

# Black (X) to move, no four of its own; white (O) has four c3-f3, blocked at b3, so g3 is
# white's only winning point and every other black move loses at once.
MUST_BLOCK = """
. . . . . . . . .
. . . . . . . X .
. . . . . . . . .
. . . . X . . . .
. . . X . . . . .
. . . . . . . . .
. X O O O O . . .
. . . . . . . . .
. . . . . . . . .
"""


def winning_moves(state: Gomoku) -> list[int]:
    return [a for a in state.legal_actions() if state.step(a).winner is not None]


def moves_that_survive(state: Gomoku) -> list[int]:
    """Moves after which the opponent has no win in one (a winning move survives too)."""
    safe = []
    for action in state.legal_actions():
        after = state.step(action)
        if after.is_terminal() or not winning_moves(after):
            safe.append(action)
    return safe


@pytest.fixture(scope="module")
def torch_one_thread():
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one position per network call: more threads only add overhead
    yield torch
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def agent(torch_one_thread):
    return AlphaZeroPlayer(AGENT, simulations=AGENT_SIMULATIONS)


def test_positions_are_what_they_claim():
    win = Gomoku.from_string(WIN_IN_ONE)
    assert (win.size, win.k, win.to_play) == (9, 5, 0)
    assert winning_moves(win) == [parse_move("g5", 9)]

    block = Gomoku.from_string(MUST_BLOCK)
    assert (block.size, block.k, block.to_play) == (9, 5, 0)
    assert winning_moves(block) == []
    assert moves_that_survive(block) == [parse_move("g3", 9)]
    # ...because of white's four: with black passing, g3 is white's only win.
    black_passes = MUST_BLOCK.replace(". . . . . . . . .", "X . . . . . . . .", 1)  # a9
    white_to_move = Gomoku.from_string(black_passes)
    assert white_to_move.to_play == 1
    assert winning_moves(white_to_move) == [parse_move("g3", 9)]


POSITIONS = pytest.mark.parametrize(
    ("board", "answer"),
    [(WIN_IN_ONE, "g5"), (MUST_BLOCK, "g3")],
    ids=["win-in-one", "must-block"],
)


@POSITIONS
def test_uct_with_random_rollouts_solves_the_positions(board, answer):
    state = Gomoku.from_string(board)
    mcts = MCTS(RandomRollout(), selection="uct")
    result = mcts.search(state, Budget(simulations=UCT_SIMULATIONS), rng=np.random.default_rng(0))
    assert format_move(result.action, 9) == answer
    if answer == "g5":
        assert result.stop_reason == "solved" and result.root_value == 1.0


@POSITIONS
def test_shipped_agent_solves_the_positions(agent, board, answer):
    state = Gomoku.from_string(board)
    agent.reset()
    action = agent.choose(state, rng=np.random.default_rng(0))
    assert format_move(action, 9) == answer
    result = agent.last_result
    assert result is not None and result.usage.simulations <= AGENT_SIMULATIONS
    if answer == "g5":  # the solver proves the win once the winning move is visited
        assert result.root_value == 1.0


def test_shipped_agent_metadata(torch_one_thread):
    from treesearch.games.nets import PolicyValueNet, load_net

    net = load_net(AGENT)
    assert isinstance(net, PolicyValueNet) and net.size == 9
    assert net.metadata["game"] == "gomoku"
    assert net.metadata["size"] == "9"
    assert net.metadata["k"] == "5"
    assert net.metadata["exact"] == "false"
    assert float(net.metadata["c_puct"]) > 0
    player = parse_player(f"az:{AGENT}", size=9, k=5)
    assert isinstance(player, AlphaZeroPlayer) and player.size == 9


def test_shipped_agent_refuses_another_board_size(torch_one_thread):
    from treesearch.games.nets import NetEvaluator, load_net

    with pytest.raises(ValueError, match=r"9x9 board, expected 15x15"):
        load_net(AGENT, expected_size=15)
    with pytest.raises(ValueError, match=r"network for 9x9 boards, not 15"):
        parse_player(f"az:{AGENT}", size=15, k=5)
    with pytest.raises(ValueError, match=r"trained for 5 in a row, not 4"):
        parse_player(f"az:{AGENT}", size=9, k=4)
    evaluator = NetEvaluator(load_net(AGENT))
    with pytest.raises(ValueError, match="size"):
        evaluator.evaluate([Gomoku(15)], rng=np.random.default_rng(0))


def transformed(board: str, index: int) -> Gomoku:
    """The position of ``board`` under board symmetry ``index`` (0..7)."""
    state = Gomoku.from_string(board)
    cells = state.board.ravel()
    rows = [["."] * 9 for _ in range(9)]
    for cell in np.flatnonzero(cells).tolist():
        r, c = divmod(transform_action(cell, 9, index), 9)
        rows[r][c] = ".XO"[cells[cell]]
    return Gomoku.from_string("\n".join("".join(row) for row in rows))


@pytest.mark.slow
@POSITIONS
def test_shipped_agent_solves_the_positions_in_every_orientation(agent, board, answer):
    for index in range(8):
        state = transformed(board, index)
        expected = transform_action(parse_move(answer, 9), 9, index)
        assert moves_that_survive(state) == [expected] or winning_moves(state) == [expected]
        agent.reset()
        action = agent.choose(state, rng=np.random.default_rng(index))
        assert (index, format_move(action, 9)) == (index, format_move(expected, 9))
