"""Players and matches between them: the arena that measures playing strength.

A :class:`Player` picks a move for a position. The players here:

* :class:`RandomPlayer`: a uniformly random legal move.
* :class:`MCTSPlayer`: this library's UCT with one random rollout per leaf and MCTS-Solver
  (Kocsis & Szepesvari, "Bandit based Monte-Carlo Planning", ECML 2006; Winands et al.,
  "Monte-Carlo Tree Search Solver", CG 2008).
* :class:`OpenSpielMCTSPlayer`: OpenSpiel's C++ ``MCTSBot`` with its ``RandomRolloutEvaluator``
  (Lanctot et al., "OpenSpiel: A Framework for Reinforcement Learning in Games", 2019), the
  reference baseline. It follows the game on a pyspiel state of its own, replaying each move.
* :class:`AlphaZeroPlayer`: PUCT guided by a policy-value network, no root noise, the most
  visited move (Silver et al., "Mastering the game of Go without human knowledge", Nature
  2017), reusing its search tree between its own moves.

:func:`play_match` plays a series of independent games with alternating colours and reports
wins, draws and the time each side spent per move. :func:`parse_player` builds a player from a
short spec such as ``mcts:1000`` or ``az:best.safetensors``.

Time limits. ``time_per_move`` is a wall-clock limit per move. Our searches check it before
each simulation (:class:`~treesearch.Budget` ``wall_time``). OpenSpiel's C++ ``MCTSBot`` (open_spiel
2.0) takes a ``max_wall_clock_time`` argument in seconds, checked inside its simulation loop, so
the baseline gets the same rule natively: no calibration of a simulation count is needed. An
open_spiel whose ``MCTSBot`` lacks that argument is refused for time-limited play with a clear
error (simulation-limited play still works).
"""

from __future__ import annotations

import logging
import math
import operator
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from treesearch.budget import Budget
from treesearch.evaluators import RandomRollout
from treesearch.interfaces import Action, State
from treesearch.results import SearchResult
from treesearch.search.mcts import MCTS, reuse_subtree
from treesearch.tree import Tree

if TYPE_CHECKING:
    from .gomoku import Gomoku
    from .nets import PolicyValueNet

__all__ = [
    "PLAYER_SPECS",
    "AlphaZeroPlayer",
    "IllegalMoveError",
    "MCTSPlayer",
    "MatchGame",
    "MatchProgress",
    "MatchResult",
    "OpenSpielMCTSPlayer",
    "Player",
    "RandomPlayer",
    "parse_player",
    "play_match",
    "shipped_agent_path",
    "winner_of",
]

_log = logging.getLogger(__name__)

PLAYER_SPECS = (
    "random",
    "mcts:N (N simulations per move)",
    "mcts (limited by the time per move or simulations given separately)",
    "openspiel-mcts:N",
    "openspiel-mcts (limited by the time per move or simulations given separately)",
    "az:PATH (a network saved with treesearch.games.nets.save_net)",
)

# Shipped agents live beside this module: agents/gomoku{size}.safetensors (five in a row).
_AGENT_DIR = Path(__file__).resolve().parent / "agents"

# The AlphaZero player's simulations per move when no budget is given.
DEFAULT_AZ_SIMULATIONS = 400
DEFAULT_VCF_TIME = 0.25  # seconds of a move the AlphaZero player's VCF step may use
DEFAULT_THREAT_CHECK_TIME = 0.15  # seconds for checking the chosen move against threats
DEFAULT_VCT_TIME = 0.15  # seconds for looking for the player's own victory by continuous threats


# ---------------------------------------------------------------------------------- players
@runtime_checkable
class Player(Protocol):
    """Chooses moves. ``choose`` gets a non-terminal state and returns one of its legal actions.

    Optional members the arena uses when present: ``reset()`` (called before every game) and
    ``last_simulations`` (the simulations the last ``choose`` ran, for reports).
    """

    name: str

    def choose(self, state: State, *, rng: np.random.Generator) -> Action: ...


class RandomPlayer:
    """A uniformly random legal move."""

    def __init__(self, *, name: str = "random") -> None:
        self.name = name
        self.last_simulations: int | None = None

    def choose(self, state: State, *, rng: np.random.Generator) -> Action:
        actions = state.legal_actions()
        if not actions:
            raise ValueError(f"{self.name}: no legal move (is the game over?)")
        return actions[int(rng.integers(len(actions)))]

    def __repr__(self) -> str:
        return f"RandomPlayer(name={self.name!r})"


def _check_budget(
    simulations: int | None, time_per_move: float | None
) -> tuple[int | None, float | None]:
    if simulations is not None:
        if isinstance(simulations, bool) or not isinstance(simulations, (int, np.integer)):
            raise TypeError(f"simulations must be an int or None, got {simulations!r}")
        if simulations < 1:
            raise ValueError(f"simulations must be positive, got {simulations}")
        simulations = int(simulations)
    if time_per_move is not None:
        if isinstance(time_per_move, bool) or not isinstance(
            time_per_move, (int, float, np.integer, np.floating)
        ):
            raise TypeError(f"time_per_move must be a number of seconds, got {time_per_move!r}")
        if not math.isfinite(time_per_move) or time_per_move <= 0:
            raise ValueError(f"time_per_move must be positive seconds, got {time_per_move}")
        time_per_move = float(time_per_move)
    return simulations, time_per_move


def _budget_text(simulations: int | None, time_per_move: float | None) -> str:
    parts = []
    if simulations is not None:
        parts.append(f"{simulations} sims")
    if time_per_move is not None:
        parts.append(f"{time_per_move:g} s")
    return ", ".join(parts)


class _SearchPlayer:
    """Budget handling shared by the searching players."""

    kind = "search"
    simulations: int | None
    time_per_move: float | None

    def __init__(
        self,
        *,
        simulations: int | None,
        time_per_move: float | None,
        name: str | None,
        required: bool = True,
    ) -> None:
        self.set_budget(simulations=simulations, time_per_move=time_per_move, required=required)
        self._name = name
        self.last_simulations: int | None = None

    @property
    def name(self) -> str:
        if self._name is not None:
            return self._name
        return f"{self.kind}({_budget_text(self.simulations, self.time_per_move)})"

    @name.setter
    def name(self, value: str) -> None:
        self._name = value

    def set_budget(
        self,
        *,
        simulations: int | None = None,
        time_per_move: float | None = None,
        required: bool = True,
    ) -> None:
        """Replace the per-move budget: a simulation count, a time limit in seconds, or both
        (the search stops at whichever comes first)."""
        simulations, time_per_move = _check_budget(simulations, time_per_move)
        if required and simulations is None and time_per_move is None:
            raise ValueError(f"{type(self).__name__} needs simulations= or time_per_move=")
        previous = getattr(self, "simulations", None), getattr(self, "time_per_move", None)
        self.simulations, self.time_per_move = simulations, time_per_move
        try:
            self._budget_changed()
        except ValueError:
            self.simulations, self.time_per_move = previous
            raise

    def _budget_changed(self) -> None:
        pass

    def _budget(self) -> Budget:
        return Budget(simulations=self.simulations, wall_time=self.time_per_move)


class _TreeKeeper:
    """Keeps a player's last search tree and finds the part of it that is still useful: the
    subtree under its own move and then the opponent's reply."""

    def __init__(self) -> None:
        self.tree: Tree | None = None
        self.action: Action | None = None

    def clear(self) -> None:
        self.tree = None
        self.action = None

    def keep(self, tree: Tree, action: Action) -> None:
        self.tree, self.action = tree, action

    def root_for(self, state: State) -> State | Tree:
        tree, action = self.tree, self.action
        self.clear()
        if tree is None:
            return state
        try:
            sub = reuse_subtree(tree, action)
        except ValueError:
            return state
        key = state.key
        if sub.state(Tree.ROOT).key == key:
            return sub
        kids = sub.children(Tree.ROOT)
        hint = getattr(state, "last_move", None)
        order = sorted(kids, key=lambda child: sub.actions[child] != hint)
        for child in order:
            if sub.state(child).key == key:
                grand = reuse_subtree(sub, sub.actions[child])
                if not grand.terminal[Tree.ROOT]:
                    return grand
        return state


class MCTSPlayer(_SearchPlayer):
    """This library's MCTS: UCT (``c = sqrt(2)``) with one uniformly random rollout per leaf and
    MCTS-Solver, the most visited move.

    Args:
        simulations: simulations per move.
        time_per_move: seconds per move (checked before each simulation). With both, the
            search stops at whichever limit comes first.
        c: the UCT exploration constant.
        reuse_tree: keep the subtree of the position reached between own moves. Off by default
            so that ``simulations`` is the whole search per move, as for OpenSpiel's bot.
        name: the name in reports (default from the budget).
    """

    kind = "mcts"

    def __init__(
        self,
        *,
        simulations: int | None = None,
        time_per_move: float | None = None,
        c: float = math.sqrt(2.0),
        reuse_tree: bool = False,
        name: str | None = None,
    ) -> None:
        super().__init__(simulations=simulations, time_per_move=time_per_move, name=name)
        self.mcts = MCTS(RandomRollout(), selection="uct", c=c, solver=True)
        self.reuse_tree = bool(reuse_tree)
        self.last_result: SearchResult | None = None
        self._keeper = _TreeKeeper()

    def reset(self) -> None:
        self._keeper.clear()

    def choose(self, state: State, *, rng: np.random.Generator) -> Action:
        root = self._keeper.root_for(state) if self.reuse_tree else state
        result = self.mcts.search(root, self._budget(), rng=rng)
        self.last_result = result
        self.last_simulations = result.usage.simulations
        if result.action is None:
            raise ValueError(f"{self.name}: the search found no move (is the game over?)")
        if self.reuse_tree:
            self._keeper.keep(result.tree, result.action)
        return result.action


# ------------------------------------------------------------------------------- openspiel
def _our_game(state: State) -> tuple[Hashable, Callable[[], State], str, dict[str, Any]]:
    """(identity, initial-state factory, OpenSpiel game name, its parameters) for ``state``."""
    from .connect_four import ConnectFour
    from .gomoku import Gomoku
    from .tictactoe import TicTacToe

    if isinstance(state, TicTacToe):
        return "tictactoe", TicTacToe, "tic_tac_toe", {}
    if isinstance(state, ConnectFour):
        return "connect_four", ConnectFour, "connect_four", {}
    if isinstance(state, Gomoku):
        size, k, exact = int(state.size), int(state.k), bool(state.exact)
        if exact:
            raise ValueError(
                "OpenSpiel's gomoku counts an overline (more than k in a row) as a win; it "
                "cannot play exact=True Gomoku"
            )

        def initial() -> State:
            return Gomoku(size=size, k=k)

        return ("gomoku", size, k), initial, "gomoku", {"size": size, "connect": k}
    raise ValueError(
        f"OpenSpielMCTSPlayer plays TicTacToe, ConnectFour and Gomoku, not {type(state).__name__}"
    )


def _stones_in_turn(state: State) -> list[int] | None:
    """The cells of a tic-tac-toe or Gomoku position, black and white alternately (black
    first), or ``None`` for other games or impossible stone counts."""
    from .gomoku import Gomoku
    from .tictactoe import TicTacToe

    if isinstance(state, TicTacToe):
        cells = np.asarray(state.board).ravel()
        black, white = np.flatnonzero(cells == 0), np.flatnonzero(cells == 1)
    elif isinstance(state, Gomoku):
        cells = state.board.ravel()
        black, white = np.flatnonzero(cells == 1), np.flatnonzero(cells == 2)
    else:
        return None
    if len(black) - len(white) not in (0, 1):
        return None
    order = [int(c) for pair in zip(black, white, strict=False) for c in pair]
    if len(black) > len(white):
        order.append(int(black[-1]))
    return order


def _import_pyspiel() -> Any:
    try:
        import pyspiel
    except ImportError as exc:
        raise ImportError(
            "OpenSpielMCTSPlayer needs OpenSpiel: pip install 'treesearch[bench]' (open-spiel)"
        ) from exc
    return pyspiel


class OpenSpielMCTSPlayer(_SearchPlayer):
    """OpenSpiel's C++ ``pyspiel.MCTSBot`` (UCT, ``RandomRolloutEvaluator``, solver on).

    The bot searches a pyspiel state that this player keeps in step with the game: every move
    between two of its turns is found (one ply forward, or back to an earlier position after
    an undo) and applied with ``apply_action``; action ints are the same in both libraries for
    tic-tac-toe (cells), connect four (columns) and Gomoku (``row * size + col``).

    Args:
        simulations: OpenSpiel's ``max_simulations`` per move.
        time_per_move: OpenSpiel's ``max_wall_clock_time`` (seconds) per move. The C++ loop
            checks the clock itself, so no simulation count is calibrated here. Give one of the
            two: with a wall-clock limit set, open_spiel 2.0's bot ignores ``max_simulations``
            (measured: 30 simulations asked, 324,233 run in 10 s).
        uct_c: the exploration constant (2.0, OpenSpiel's example default; values are in
            [-1, 1] as ours).
        rollouts: random rollouts per leaf.
        max_memory_mb: the bot's tree memory cap (it garbage-collects rarely visited nodes).
        name: the name in reports.

    The bot and its rollout evaluator are seeded from the ``rng`` given to the first
    :meth:`choose` of each game, so simulation-limited games are reproducible.
    """

    kind = "openspiel-mcts"
    _UNLIMITED = 2**31 - 1

    def __init__(
        self,
        *,
        simulations: int | None = None,
        time_per_move: float | None = None,
        uct_c: float = 2.0,
        rollouts: int = 1,
        max_memory_mb: int = 1000,
        name: str | None = None,
    ) -> None:
        super().__init__(simulations=simulations, time_per_move=time_per_move, name=name)
        if isinstance(uct_c, bool) or not isinstance(uct_c, (int, float)) or not uct_c >= 0:
            raise ValueError(f"uct_c must be a number >= 0, got {uct_c!r}")
        for label, value in (("rollouts", rollouts), ("max_memory_mb", max_memory_mb)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{label} must be a positive int, got {value!r}")
        self.uct_c = float(uct_c)
        self.rollouts = rollouts
        self.max_memory_mb = max_memory_mb
        self._pyspiel = _import_pyspiel()
        self._game_id: Hashable = None
        self._spiel_game: Any = None
        self._bot: Any = None
        self._path: list[State] = []  # our positions from the start of the game
        self._actions: list[int] = []  # the moves between them
        self._spiel_state: Any = None

    def reset(self) -> None:
        self._bot = None
        self._path = []
        self._actions = []
        self._spiel_state = None

    def _budget_changed(self) -> None:
        if self.simulations is not None and self.time_per_move is not None:
            raise ValueError(
                "OpenSpielMCTSPlayer takes simulations= or time_per_move=, not both: OpenSpiel's "
                "MCTSBot ignores its simulation limit when it has a wall-clock limit"
            )
        self._bot = None

    @property
    def spiel_state(self) -> Any:
        """The pyspiel state the bot searched last (for checks that it follows the game)."""
        return self._spiel_state

    def choose(self, state: State, *, rng: np.random.Generator) -> Action:
        self._follow(state)
        if self._bot is None:
            self._bot = self._make_bot(rng)
        root = self._bot.mcts_search(self._spiel_state)
        self.last_simulations = int(root.explore_count)
        action = int(root.best_child().action)
        _log.debug("%s: %d simulations, move %d", self.name, self.last_simulations, action)
        # Expect the game to go on from this move (a caller that plays another one is still
        # followed: its position is one move past the position before this one).
        self._path.append(state.step(action))
        self._actions.append(action)
        self._spiel_state.apply_action(action)
        return action

    def _make_bot(self, rng: np.random.Generator) -> Any:
        pyspiel = self._pyspiel
        bot_seed, rollout_seed = (int(s) for s in rng.integers(0, 2**31 - 1, size=2))
        evaluator = pyspiel.RandomRolloutEvaluator(self.rollouts, rollout_seed)
        max_simulations = self.simulations if self.simulations is not None else self._UNLIMITED
        args = (self._spiel_game, evaluator, self.uct_c, max_simulations, self.max_memory_mb)
        if self.time_per_move is None:
            return pyspiel.MCTSBot(*args, True, bot_seed, False)
        try:
            return pyspiel.MCTSBot(
                *args,
                True,
                bot_seed,
                False,
                pyspiel.ChildSelectionPolicy.UCT,
                self.time_per_move,
            )
        except TypeError as exc:
            raise RuntimeError(
                "this open_spiel's MCTSBot takes no max_wall_clock_time (open_spiel 2.0 does), "
                "so it cannot play with a time per move; give it a simulation count "
                "(openspiel-mcts:N) or upgrade open-spiel"
            ) from exc

    # -- following the game ---------------------------------------------------------------
    def _follow(self, state: State) -> None:
        game_id, initial, spiel_name, params = _our_game(state)
        if game_id != self._game_id:
            self._spiel_game = self._pyspiel.load_game(spiel_name, params)
            self._game_id = game_id
            self.reset()
        if not self._path:
            self._path = [initial()]
            self._actions = []
        if not self._locate(state) and not self._replay(state, initial):
            raise ValueError(
                f"{self.name} cannot follow the game: this position is not one move from a "
                "position of the game it saw so far, and its moves cannot be rebuilt"
            )
        spiel = self._spiel_state
        if spiel.is_terminal() or spiel.current_player() != state.to_play:
            raise RuntimeError(
                f"{self.name}: the OpenSpiel state is out of step with the game "
                f"(OpenSpiel: player {spiel.current_player()} to move; ours: {state.to_play})"
            )

    def _locate(self, state: State) -> bool:
        """Bring the path (and the pyspiel state) to ``state``: a position on the path (after
        an undo, or the start of a new game), or one move past one (the usual case: one move
        past the end). Moves ahead of it are dropped. False when ``state`` is neither."""
        key = state.key
        path = self._path
        found = next((i for i in range(len(path) - 1, -1, -1) if path[i].key == key), None)
        move: int | None = None
        if found is None:
            for index in range(len(path) - 1, -1, -1):
                move = self._move_between(path[index], state)
                if move is not None:
                    found = index
                    break
            else:
                return False
        rebuild = found < len(path) - 1 or self._spiel_state is None
        del path[found + 1 :]
        del self._actions[found:]
        if rebuild:
            self._spiel_state = self._spiel_game.new_initial_state()
            for action in self._actions:
                self._spiel_state.apply_action(action)
        if move is not None:
            path.append(state)
            self._actions.append(move)
            self._spiel_state.apply_action(move)
        return True

    def _replay(self, state: State, initial: Callable[[], State]) -> bool:
        """Rebuild the path to a position reached some other way: from ``state.moves`` (Gomoku
        lists its moves), else, for a position set up from a picture (no history), from its
        stones placed alternately. Placement games have no captures, so any order of the same
        stones reaches the same position without passing a finished one."""
        for moves in (getattr(state, "moves", None), _stones_in_turn(state)):
            if not isinstance(moves, (tuple, list)):
                continue
            path = [initial()]
            try:
                for move in moves:
                    path.append(path[-1].step(move))
            except (TypeError, ValueError):
                continue
            if path[-1].key != state.key:
                continue
            self._path = path
            self._actions = [operator.index(m) for m in moves]
            self._spiel_state = self._spiel_game.new_initial_state()
            for action in self._actions:
                self._spiel_state.apply_action(action)
            return True
        return False

    @staticmethod
    def _move_between(before: State, after: State) -> int | None:
        """The move that turns ``before`` into ``after``, or ``None``."""
        if before.is_terminal():
            return None
        key = after.key
        actions = list(before.legal_actions())
        hint = getattr(after, "last_move", None)
        if hint in actions:  # Gomoku names the last move: try it first
            actions.remove(hint)
            actions.insert(0, hint)
        for action in actions:
            if before.step(action).key == key:
                return operator.index(action)  # type: ignore[arg-type]
        return None


# ------------------------------------------------------------------------------- alphazero
class AlphaZeroPlayer(_SearchPlayer):
    """PUCT guided by a :class:`~treesearch.games.nets.PolicyValueNet`: no root noise, the most
    visited move, the tree reused between its own moves.

    Args:
        path_or_net: a file written by :func:`~treesearch.games.nets.save_net`, or a net.
        simulations: simulations per move (default 400 when no ``time_per_move`` is given).
        time_per_move: seconds per move; with ``simulations`` too, whichever comes first.
        device: where the net runs (``"cpu"``, ``"cuda"``).
        c_puct: the PUCT constant; default: the ``c_puct`` in the file's metadata, else 1.25.
        reuse_tree: continue from the subtree of the position reached (default on).
        decisive_moves: search only the forced moves where a position has some (an immediate
            win, else the blocks of the opponent's immediate win; ``MCTS(decisive_moves=True)``,
            Teytaud & Teytaud 2010). On by default for games whose states have
            ``forced_actions()`` (Gomoku); the network alone still picks among the rest.
        leaves_per_round: leaves evaluated together per network call, with virtual loss
            (more simulations per second under a time limit, each a little less informed).
        threat_defence: threat-space moves at the root (Allis et al. 1993): where the
            position has ``threat_space_actions()`` naming moves and no forced move (Gomoku:
            a move that wins in three by an open four, else the answers to the opponent's
            threat of one, :meth:`~treesearch.games.gomoku.Gomoku.threat_defences`), search
            only those; every other move loses in three or does not win in three. The root is
            then a fresh tree with the network's priors renormalised over them (a reused
            subtree is kept only if its root already has exactly those children). On by
            default; off (which also turns ``threats_in_tree`` off) reproduces the player
            without it.
        threats_in_tree: with ``threat_defence``, apply ``threat_space_actions()`` at every
            node the search expands too (``MCTS(move_filter=...)``; it includes the decisive
            moves), so the search sees threats coming; ``False``: at the root only. On by
            default (measured in docs/benchmarks.md, P4).
        vcf: victory by continuous fours at the root (Allis 1994; :mod:`treesearch.games.threats`),
            for states that are Gomoku positions with no forced move: if the player has a VCF,
            play its first move without searching; else, if the opponent would have one were it
            to move, search only the moves after which it has none (:func:`vcf_defences`; the
            network and search pick among them), falling back to the other options when none is
            found in time. On by default; ``False`` reproduces the player without it.
        vcf_time: seconds per move the VCF work may take at most (taken from
            ``time_per_move`` when that is set).
        threat_check: with ``vcf``, after the search check its move one threat deeper (a step
            towards VCT): the most visited root move that no opponent reply turns into a VCF
            the player can neither answer nor outrun
            (:func:`~treesearch.games.threats.refuted_by_threat`) is played; the search's own
            move when every move checked in time is refuted.
        threat_check_time: seconds reserved for that check (taken from ``time_per_move``).
        vct: with ``vcf``, when neither player has a VCF, look for the player's own victory by
            continuous threats (fours and threes, :func:`~treesearch.games.threats.find_vct`)
            and play its first move without searching. On by default.
        vct_time: seconds the VCT search may take at most (taken from ``time_per_move``).
        name: the name in reports.
    """

    kind = "az"

    def __init__(
        self,
        path_or_net: str | Path | PolicyValueNet,
        *,
        simulations: int | None = None,
        time_per_move: float | None = None,
        device: str = "cpu",
        c_puct: float | None = None,
        reuse_tree: bool = True,
        decisive_moves: bool = True,
        leaves_per_round: int = 1,
        threat_defence: bool = True,
        threats_in_tree: bool = True,
        vcf: bool = True,
        vcf_time: float = DEFAULT_VCF_TIME,
        threat_check: bool = True,
        threat_check_time: float = DEFAULT_THREAT_CHECK_TIME,
        vct: bool = True,
        vct_time: float = DEFAULT_VCT_TIME,
        name: str | None = None,
    ) -> None:
        if simulations is None and time_per_move is None:
            simulations = DEFAULT_AZ_SIMULATIONS
        super().__init__(simulations=simulations, time_per_move=time_per_move, name=name)
        from .nets import NetEvaluator, PolicyValueNet, load_net

        if isinstance(path_or_net, (str, Path)):
            net = load_net(path_or_net, device=device)
            if name is None:
                self._name = f"az:{Path(path_or_net).name}"
        elif isinstance(path_or_net, PolicyValueNet):
            net = path_or_net
        else:
            raise TypeError(
                f"path_or_net must be a path or a PolicyValueNet, got {type(path_or_net).__name__}"
            )
        if c_puct is None:
            stored = getattr(net, "metadata", {}).get("c_puct")
            try:
                c_puct = float(stored) if stored is not None else 1.25
            except ValueError:
                raise ValueError(f"the net's metadata holds a bad c_puct: {stored!r}") from None
        self.net = net
        self.evaluator = NetEvaluator(net, device=device)
        options: dict[str, Any] = {"selection": "puct", "c": c_puct, "final": "visits"}
        options["leaves_per_round"] = leaves_per_round
        self.mcts = MCTS(self.evaluator, **options)
        self.decisive_moves = bool(decisive_moves)
        self._decisive_mcts = MCTS(self.evaluator, decisive_moves=True, **options)
        self.reuse_tree = bool(reuse_tree)
        for flag_name, flag in (
            ("threat_defence", threat_defence),
            ("threats_in_tree", threats_in_tree),
            ("vcf", vcf),
            ("vct", vct),
        ):
            if not isinstance(flag, (bool, np.bool_)):
                raise TypeError(f"{flag_name} must be True or False, got {flag!r}")
        self.threat_defence = bool(threat_defence)
        self.threats_in_tree = bool(threats_in_tree)
        self.vcf = bool(vcf)
        if isinstance(vcf_time, bool) or not isinstance(vcf_time, (int, float)):
            raise TypeError(f"vcf_time must be a number of seconds, got {vcf_time!r}")
        if not (math.isfinite(vcf_time) and vcf_time > 0):
            raise ValueError(f"vcf_time must be positive, got {vcf_time}")
        self.vcf_time = float(vcf_time)
        self.vct = bool(vct)
        if isinstance(vct_time, bool) or not isinstance(vct_time, (int, float)):
            raise TypeError(f"vct_time must be a number of seconds, got {vct_time!r}")
        if not (math.isfinite(vct_time) and vct_time > 0):
            raise ValueError(f"vct_time must be positive, got {vct_time}")
        self.vct_time = float(vct_time)
        if not isinstance(threat_check, (bool, np.bool_)):
            raise TypeError(f"threat_check must be True or False, got {threat_check!r}")
        self.threat_check = bool(threat_check)
        if isinstance(threat_check_time, bool) or not isinstance(threat_check_time, (int, float)):
            raise TypeError(f"threat_check_time must be seconds, got {threat_check_time!r}")
        if not (math.isfinite(threat_check_time) and threat_check_time > 0):
            raise ValueError(f"threat_check_time must be positive, got {threat_check_time}")
        self.threat_check_time = float(threat_check_time)
        # What the VCF step did at the last move: "win" (played a VCF's first move), "vct"
        # (played a VCT's first move), "defend" (the root was restricted to defences),
        # "checked" (the threat check replaced the search's move), "none"; and the seconds
        # the VCF and VCT steps took.
        self.last_vcf: str = "none"
        self.last_vcf_seconds = 0.0
        self._threat_mcts = MCTS(self.evaluator, move_filter=_threat_space_actions, **options)
        self.last_result: SearchResult | None = None
        self._keeper = _TreeKeeper()

    @property
    def size(self) -> int:
        return int(self.net.size)

    def reset(self) -> None:
        self._keeper.clear()

    def choose(self, state: State, *, rng: np.random.Generator) -> Action:
        start = time.perf_counter()
        self.last_vcf, self.last_vcf_seconds = "none", 0.0
        vcf_only: tuple[Action, ...] = ()
        vcf_checked = False
        if self.vcf:
            from .gomoku import Gomoku

            if isinstance(state, Gomoku) and state.forced_actions() is None:
                vcf_checked = True
                win, vcf_only = self._vcf_step(state)
                kind = "win"
                if win is None and not vcf_only and self.vct:
                    from .threats import find_vct

                    found = find_vct(state, time_limit=self.vct_time)
                    if found is not None:
                        win, kind = found.first_move, "vct"
                self.last_vcf_seconds = time.perf_counter() - start
                if win is not None:
                    self.last_vcf = kind
                    self.last_result = None
                    self.last_simulations = 0
                    self._keeper.clear()
                    return win
        root = self._keeper.root_for(state) if self.reuse_tree else state
        decisive = self.decisive_moves and callable(getattr(state, "forced_actions", None))
        mcts = self._decisive_mcts if decisive else self.mcts
        threats = callable(getattr(state, "threat_space_actions", None))
        if threats and self.threat_defence and self.threats_in_tree:
            mcts = self._threat_mcts
        if vcf_only:
            self.last_vcf = "defend"
            root = self._root_among(root, state, vcf_only, rng)
        elif threats and self.threat_defence:
            only = state.threat_space_actions()  # type: ignore[attr-defined]
            if only and state.forced_actions() is None:  # type: ignore[attr-defined]
                root = self._root_among(root, state, only, rng)
        check = self.threat_check and vcf_checked
        budget = self._budget()
        if self.time_per_move is not None:  # the VCF work came out of the move's time
            reserve = self.threat_check_time if check else 0.0
            left = max(self.time_per_move - (time.perf_counter() - start) - reserve, 0.01)
            budget = Budget(simulations=self.simulations, wall_time=left)
        result = mcts.search(root, budget, rng=rng)
        self.last_result = result
        self.last_simulations = result.usage.simulations
        if result.action is None:
            raise ValueError(f"{self.name}: the search found no move (is the game over?)")
        action = result.action
        if check and result.stop_reason != "solved":
            action = self._threat_checked(state, result)  # type: ignore[arg-type]
        if self.reuse_tree:
            self._keeper.keep(result.tree, action)
        return action

    def _threat_checked(self, state: Gomoku, result: SearchResult) -> Action:
        """The most visited root move that no opponent reply turns into an unstoppable VCF
        (:func:`~treesearch.games.threats.refuted_by_threat`), checked in order of visits
        within ``threat_check_time``; the search's own move when none passes in time."""
        from .threats import refuted_by_threat

        deadline = time.perf_counter() + self.threat_check_time
        order = np.argsort(-np.asarray(result.visit_distribution), kind="stable")
        # The search's own choice first: among equally visited moves it broke the tie (by Q),
        # and it stands unless refuted.
        candidates = [result.action] + [
            result.actions[int(i)] for i in order if result.actions[int(i)] != result.action
        ]
        for move in candidates:
            left = deadline - time.perf_counter()
            if left <= 0:
                break
            refuted = refuted_by_threat(state, move, time_limit=left)  # type: ignore[arg-type]
            if time.perf_counter() > deadline:
                break  # the check may have been cut short
            if not refuted:
                if move != result.action:
                    self.last_vcf = "checked"
                return move
        return result.action  # type: ignore[return-value]

    def _vcf_step(self, state: Gomoku) -> tuple[Action | None, tuple[Action, ...]]:
        """The first move of the player's VCF, else the defences against the opponent's
        (empty when it has none or none was found in time), within ``vcf_time``."""
        from .threats import find_vcf, vcf_defences

        deadline = time.perf_counter() + self.vcf_time
        own = find_vcf(state, time_limit=self.vcf_time / 2)
        if own is not None:
            return own.first_move, ()
        left = deadline - time.perf_counter()
        if left <= 0:
            return None, ()
        defence = vcf_defences(state, time_limit=left)
        if defence is None or not defence.defences:
            return None, ()
        return None, defence.defences

    def _root_among(
        self,
        root: State | Tree,
        state: State,
        actions: tuple[Action, ...],
        rng: np.random.Generator,
    ) -> Tree:
        """A tree whose root, ``state``, is expanded into ``actions`` only: ``root`` itself if
        it is a tree expanded into exactly those, else a fresh one with the network's priors
        renormalised over them and its value as the root's first visit (as the search's own
        expansion would count it)."""
        if isinstance(root, Tree) and root.is_expanded(Tree.ROOT):
            children = {root.actions[child] for child in root.children(Tree.ROOT)}
            if children == set(actions):
                return root
        evaluation = self.evaluator.evaluate([state], rng=rng)[0]
        index = {action: i for i, action in enumerate(state.legal_actions())}
        priors = np.asarray(evaluation.priors, dtype=np.float64)[[index[a] for a in actions]]
        total = priors.sum()
        priors = priors / total if total > 0 else np.full(len(actions), 1.0 / len(actions))
        tree = Tree(state)
        tree.add_children(Tree.ROOT, actions, priors)
        tree.visits[Tree.ROOT] = 1
        tree.value_sum[Tree.ROOT] = float(evaluation.value)
        return tree


def _threat_space_actions(state: State) -> tuple[Action, ...] | None:
    """``state.threat_space_actions()`` where the state has one (Gomoku), else ``None``."""
    named = getattr(state, "threat_space_actions", None)
    return named() if callable(named) else None


def shipped_agent_path(size: int = 9, k: int = 5) -> Path | None:
    """The trained Gomoku agent shipped with the package for this board, or ``None``:
    ``agents/gomoku{size}.safetensors`` beside this module, five in a row only."""
    if k != 5:
        return None
    path = _AGENT_DIR / f"gomoku{size}.safetensors"
    return path if path.is_file() else None


# ----------------------------------------------------------------------------------- specs
def _bad_spec(spec: object, why: str) -> ValueError:
    forms = "; ".join(PLAYER_SPECS)
    return ValueError(f"bad player spec {spec!r}: {why}. Valid forms: {forms}")


def parse_player(
    spec: str,
    *,
    size: int | None = None,
    k: int | None = None,
    simulations: int | None = None,
    time_per_move: float | None = None,
    device: str = "cpu",
) -> Player:
    """Build a player from a spec.

    * ``random``
    * ``mcts:N`` / ``openspiel-mcts:N``: exactly N simulations per move (``simulations`` and
      ``time_per_move`` do not apply).
    * ``mcts`` / ``openspiel-mcts``: limited by ``time_per_move`` and/or ``simulations`` (at
      least one is required; ``mcts`` stops at whichever comes first, ``openspiel-mcts`` uses
      the time alone when both are given, see :class:`OpenSpielMCTSPlayer`).
    * ``az:PATH``: :class:`AlphaZeroPlayer` from a saved net, with ``simulations`` /
      ``time_per_move`` (default 400 simulations). ``size`` and ``k``, when given, must match
      the board size and k recorded in the file.

    Raises:
        ValueError: an unknown or malformed spec (the message lists the valid forms), a search
            player with no budget, or a network for another board.
    """
    if not isinstance(spec, str):
        raise TypeError(f"player spec must be a str, got {type(spec).__name__}")
    text = spec.strip()
    kind, sep, arg = text.partition(":")
    kind = kind.lower()
    if kind == "random":
        if sep:
            raise _bad_spec(spec, "'random' takes no argument")
        return RandomPlayer()
    if kind in ("mcts", "openspiel-mcts"):
        sims, seconds = simulations, time_per_move
        if sep:
            if not arg.isdigit() or int(arg) < 1:
                raise _bad_spec(spec, f"N must be a positive integer, got {arg!r}")
            sims, seconds = int(arg), None
        if sims is None and seconds is None:
            raise _bad_spec(
                spec,
                f"'{kind}' without N needs a time per move (--time-per-move) or simulations "
                "(--sims)",
            )
        if kind == "openspiel-mcts" and sims is not None and seconds is not None:
            sims = None  # OpenSpiel's bot takes one limit; the time is the fair one to share
        name = text if sep else None
        if kind == "mcts":
            return MCTSPlayer(simulations=sims, time_per_move=seconds, name=name)
        return OpenSpielMCTSPlayer(simulations=sims, time_per_move=seconds, name=name)
    if kind == "az":
        if not arg:
            raise _bad_spec(spec, "'az' needs a path: az:PATH")
        path = Path(arg).expanduser()
        if not path.is_file():
            raise ValueError(f"player {spec!r}: no such network file: {path}")
        player = AlphaZeroPlayer(
            path, simulations=simulations, time_per_move=time_per_move, device=device
        )
        _check_net_board(player, spec, size=size, k=k)
        return player
    raise _bad_spec(spec, f"unknown player kind {kind!r}")


def _check_net_board(
    player: AlphaZeroPlayer, spec: str, *, size: int | None, k: int | None
) -> None:
    if size is not None and player.size != size:
        raise ValueError(
            f"player {spec!r} is a network for {player.size}x{player.size} boards, not {size}"
        )
    stored_k = getattr(player.net, "metadata", {}).get("k")
    if k is not None and stored_k is not None and str(k) != str(stored_k):
        raise ValueError(f"player {spec!r} was trained for {stored_k} in a row, not {k}")


# ----------------------------------------------------------------------------------- match
class IllegalMoveError(ValueError):
    """A player chose a move that is not legal in the position it was given."""


@dataclass(frozen=True, slots=True)
class MatchGame:
    """One game of a match.

    ``first`` is ``"a"`` or ``"b"`` (who played player 0), ``winner`` ``"a"``, ``"b"`` or
    ``None`` for a draw; seconds and simulations are totals per side over the game
    (simulations ``None`` when a player does not report them).
    """

    index: int
    first: str
    moves: tuple[Action, ...]
    winner: str | None
    a_seconds: float
    b_seconds: float
    a_moves: int
    b_moves: int
    a_simulations: int | None
    b_simulations: int | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "first": self.first,
            "winner": self.winner,
            "moves": list(self.moves),
            "a_seconds": self.a_seconds,
            "b_seconds": self.b_seconds,
            "a_moves": self.a_moves,
            "b_moves": self.b_moves,
            "a_simulations": self.a_simulations,
            "b_simulations": self.b_simulations,
        }


@dataclass(frozen=True, slots=True)
class MatchProgress:
    """Passed to ``play_match``'s ``progress`` callback after every move and every game."""

    games_done: int
    games: int
    moves: int  # moves played in the current game (the finished one when a game just ended)
    a_wins: int
    b_wins: int
    draws: int


@dataclass(frozen=True, slots=True)
class MatchResult:
    """The games of a match between ``a`` and ``b`` and their tallies."""

    a_name: str
    b_name: str
    records: tuple[MatchGame, ...] = field(default_factory=tuple)

    @property
    def games(self) -> int:
        return len(self.records)

    @property
    def a_wins(self) -> int:
        return sum(g.winner == "a" for g in self.records)

    @property
    def b_wins(self) -> int:
        return sum(g.winner == "b" for g in self.records)

    @property
    def draws(self) -> int:
        return sum(g.winner is None for g in self.records)

    @property
    def a_win_rate(self) -> float:
        """(wins + draws / 2) / games for ``a``; NaN for an empty match."""
        if not self.records:
            return math.nan
        return (self.a_wins + 0.5 * self.draws) / self.games

    @property
    def a_seconds_per_move(self) -> float:
        return _per_move(sum(g.a_seconds for g in self.records), self._moves("a"))

    @property
    def b_seconds_per_move(self) -> float:
        return _per_move(sum(g.b_seconds for g in self.records), self._moves("b"))

    @property
    def a_simulations_per_move(self) -> float | None:
        return self._sims_per_move("a")

    @property
    def b_simulations_per_move(self) -> float | None:
        return self._sims_per_move("b")

    def _moves(self, side: str) -> int:
        return sum(g.a_moves if side == "a" else g.b_moves for g in self.records)

    def _sims_per_move(self, side: str) -> float | None:
        sims = [g.a_simulations if side == "a" else g.b_simulations for g in self.records]
        if not sims or any(s is None for s in sims):
            return None
        return _per_move(float(sum(s for s in sims if s is not None)), self._moves(side))

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": self.a_name,
            "b": self.b_name,
            "games": self.games,
            "a_wins": self.a_wins,
            "b_wins": self.b_wins,
            "draws": self.draws,
            "a_win_rate": self.a_win_rate,
            "a_seconds_per_move": self.a_seconds_per_move,
            "b_seconds_per_move": self.b_seconds_per_move,
            "a_simulations_per_move": self.a_simulations_per_move,
            "b_simulations_per_move": self.b_simulations_per_move,
            "records": [g.to_dict() for g in self.records],
        }


def _per_move(total: float, moves: int) -> float:
    return total / moves if moves else math.nan


def _plain(action: Action) -> Action:
    """numpy ints as Python ints (JSON-friendly move lists); other actions unchanged."""
    if isinstance(action, (int, np.integer)) and not isinstance(action, bool):
        return operator.index(action)
    return action


def winner_of(state: State) -> int | None:
    """The winning player (0 or 1) at a terminal state, or ``None`` for a draw."""
    value = state.terminal_value()
    if value is None:
        raise ValueError(f"terminal state without a value: {state!r}")
    if value == 0:
        return None
    # The value is for the player to move; a positive value means that player won.
    return state.to_play if value > 0 else 1 - state.to_play


def _counts(tally: dict[str | None, int]) -> tuple[int, int, int]:
    return tally["a"], tally["b"], tally[None]


def play_match(
    a: Player,
    b: Player,
    *,
    games: int,
    new_game: Callable[[], State],
    rng: np.random.Generator,
    progress: Callable[[MatchProgress], None] | None = None,
) -> MatchResult:
    """Play ``games`` independent games between ``a`` and ``b``; ``a`` moves first in the even
    games (0, 2, ...), ``b`` in the odd ones.

    Each game starts from ``new_game()`` with both players ``reset()`` (when they have it) and
    its own generator seeded from ``rng`` up front, so a game's moves do not depend on how much
    randomness earlier games used, and deterministic players give the same match for the same
    seed. The time of every ``choose`` call is charged to the side that made it. The result is
    read from the final state's ``terminal_value()``.

    Raises:
        IllegalMoveError: a player returned a move not in ``state.legal_actions()``; the
            message names the player, the game and the move number.
        ValueError: ``games`` not a positive int, or ``new_game()`` returned a terminal state.
    """
    if isinstance(games, bool) or not isinstance(games, (int, np.integer)) or games < 1:
        raise ValueError(f"games must be a positive int, got {games!r}")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    for label, player in (("a", a), ("b", b)):
        if not callable(getattr(player, "choose", None)):
            raise TypeError(f"player {label} has no choose(state, rng=...): {player!r}")
    seeds = rng.integers(0, 2**63 - 1, size=int(games))
    records: list[MatchGame] = []
    tally: dict[str | None, int] = {"a": 0, "b": 0, None: 0}
    for index in range(int(games)):
        game_rng = np.random.default_rng(int(seeds[index]))
        first = "a" if index % 2 == 0 else "b"
        sides = {0: first, 1: "b" if first == "a" else "a"}
        players = {"a": a, "b": b}
        for player in (a, b):
            reset = getattr(player, "reset", None)
            if callable(reset):
                reset()
        state = new_game()
        if state.is_terminal():
            raise ValueError("new_game() returned a finished game")
        seconds = {"a": 0.0, "b": 0.0}
        moves_by = {"a": 0, "b": 0}
        sims: dict[str, int | None] = {"a": 0, "b": 0}
        moves: list[Action] = []
        while not state.is_terminal():
            side = sides[state.to_play]
            player = players[side]
            started = time.perf_counter()
            action = player.choose(state, rng=game_rng)
            seconds[side] += time.perf_counter() - started
            moves_by[side] += 1
            used = getattr(player, "last_simulations", None)
            so_far = sims[side]
            sims[side] = None if used is None or so_far is None else so_far + int(used)
            legal = state.legal_actions()
            if action not in legal:
                raise IllegalMoveError(
                    f"player {side} ({player.name}) chose the illegal move {action!r} in game "
                    f"{index} at move {len(moves)} (it plays player {state.to_play}); legal "
                    f"moves: {list(legal)}"
                )
            state = state.step(action)
            moves.append(_plain(action))
            if progress is not None:
                progress(MatchProgress(index, int(games), len(moves), *_counts(tally)))
        winner_player = winner_of(state)
        winner = None if winner_player is None else sides[winner_player]
        tally[winner] += 1
        records.append(
            MatchGame(
                index=index,
                first=first,
                moves=tuple(moves),
                winner=winner,
                a_seconds=seconds["a"],
                b_seconds=seconds["b"],
                a_moves=moves_by["a"],
                b_moves=moves_by["b"],
                a_simulations=sims["a"],
                b_simulations=sims["b"],
            )
        )
        _log.info("game %d: %s first, winner %s, %d moves", index, first, winner, len(moves))
        if progress is not None:
            progress(MatchProgress(index + 1, int(games), len(moves), *_counts(tally)))
    return MatchResult(a_name=a.name, b_name=b.name, records=tuple(records))
