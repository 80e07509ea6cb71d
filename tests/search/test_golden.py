"""Golden trees: searches with fixed seeds must reproduce stored JSON trees exactly.

A change that alters any visit count, value or prior of these trees fails here. When a change
is meant to alter search behaviour, regenerate and review the diff:

    python tests/search/test_golden.py --regenerate
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from treesearch import MCTS, Budget, RandomRollout
from treesearch.games.connect_four import ConnectFour
from treesearch.games.tictactoe import TicTacToe
from treesearch.testing import HashEvaluator

GOLDEN = Path(__file__).resolve().parent.parent / "data" / "golden"


def _puct_tictactoe():
    mcts = MCTS(HashEvaluator(), selection="puct", c=1.25, solver=False)
    return mcts.search(
        TicTacToe.from_moves([4]), Budget(simulations=60), rng=np.random.default_rng(0)
    )


def _puct_batched_noise_connect_four():
    mcts = MCTS(HashEvaluator(salt=3), c_base=19652, dirichlet_alpha=0.3, leaves_per_round=4)
    return mcts.search(ConnectFour(), Budget(simulations=48), rng=np.random.default_rng(1))


def _uct_solver_tictactoe():
    mcts = MCTS(RandomRollout(), selection="uct")
    state = TicTacToe.from_moves([0, 4, 8])
    return mcts.search(state, Budget(simulations=80), rng=np.random.default_rng(2))


CASES = {
    "mcts_puct_tictactoe": _puct_tictactoe,
    "mcts_puct_batched_noise_connect_four": _puct_batched_noise_connect_four,
    "mcts_uct_solver_tictactoe": _uct_solver_tictactoe,
}


def _record(name: str) -> dict:
    result = CASES[name]()
    return {"action": result.action, "root_value": result.root_value, "tree": result.tree.to_dict()}


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_tree(name):
    expected = json.loads((GOLDEN / f"{name}.json").read_text())
    got = json.loads(json.dumps(_record(name)))
    assert got["action"] == expected["action"]
    assert got["root_value"] == pytest.approx(expected["root_value"], abs=1e-12)
    for key, values in expected["tree"]["arrays"].items():
        np.testing.assert_allclose(
            np.asarray(got["tree"]["arrays"][key], dtype=float),
            np.asarray(values, dtype=float),
            rtol=0,
            atol=1e-12,
            err_msg=key,
        )
    assert got["tree"]["actions"] == expected["tree"]["actions"]


if __name__ == "__main__" and "--regenerate" in sys.argv:
    GOLDEN.mkdir(parents=True, exist_ok=True)
    for case in CASES:
        (GOLDEN / f"{case}.json").write_text(json.dumps(_record(case), indent=None) + "\n")
        print("wrote", GOLDEN / f"{case}.json")
