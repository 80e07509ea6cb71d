"""AlphaZero self-play: batched over games, with Dirichlet root noise, a temperature schedule,
tree reuse and resignation.

The procedure of Silver et al., "Mastering the game of Go without human knowledge" (Nature
2017) and "A general reinforcement learning algorithm that masters chess, shogi and Go through
self-play" (Science 2018):

* every move is chosen by a PUCT search (:class:`~treesearch.search.mcts.MCTS`) guided by an
  :class:`~treesearch.interfaces.Evaluator` (a policy-value network, or any evaluator), with
  root priors mixed with Dirichlet noise, (1 - eps) P + eps Dir(alpha), drawn afresh at every
  search, so also at a reused root;
* the move is sampled from the root visit counts with temperature 1 for the first
  ``temperature_moves`` moves of a game, then it is the most visited move;
* the chosen child's subtree is kept for the next search (tree reuse);
* a player resigns when the root value and the value of the most visited child are both below
  ``-resign_threshold``; in a random fraction of the games resignation is disabled, and those
  games record whether a player who would have resigned went on not to lose (a false
  resignation), so the threshold can be tuned (AlphaGo Zero kept false positives below 5%);
* each searched position yields a training target (state, actions, pi, z): pi the normalised
  root visit counts, z the final outcome from the point of view of the player to move.

Games run in lock-step, ``num_parallel_games`` at a time: one
:meth:`~treesearch.search.mcts.MCTS.search_many` call per move searches every running game, and
each of its simulation rounds evaluates the leaves of all trees in one evaluator call, the batch
a network wants (``docs/design.md`` section 4). A finished game's slot takes the next game.

Games are two-player zero-sum (``to_play`` 0 or 1, values negated between the players);
single-agent problems (``to_play`` always 0) work too, with the outcome as the target of every
position. This module needs numpy only; the network evaluator lives in
``treesearch.games.nets``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from .budget import Budget
from .interfaces import Action, Evaluator, State, describe_not_a_state
from .results import SearchResult
from .search._common import check_rng
from .search.mcts import MCTS, reuse_subtree, visit_policy
from .tree import Tree

__all__ = [
    "GameRecord",
    "Position",
    "SelfPlayConfig",
    "SelfPlayStats",
    "dense_policy",
    "play_games",
    "position_targets",
]

_log = logging.getLogger(__name__)


def _check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"SelfPlayConfig.{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"SelfPlayConfig.{name} must be >= {minimum}, got {value}")


def _plain_fields(config: Any) -> None:
    """Store numpy scalars that passed the checks as plain ``int``/``float``/``bool``, so the
    frozen config is plain data (``dataclasses.asdict`` of it is JSON, as checkpoints need)."""
    for item in fields(config):
        value = getattr(config, item.name)
        if isinstance(value, np.generic):
            object.__setattr__(config, item.name, value.item())


def _check_float(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"SelfPlayConfig.{name} must be a number, got {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"SelfPlayConfig.{name} must be finite, got {value}")
    return number


@dataclass(frozen=True, slots=True)
class SelfPlayConfig:
    """Self-play settings; every field is checked when the config is built.

    Attributes:
        simulations: new PUCT simulations per move, at least 2 (a reused subtree keeps its
            visits on top).
        num_parallel_games: games advanced in lock-step; their leaves share evaluator calls.
        c_puct: PUCT exploration constant (AlphaZero's c_init when ``c_base`` is set).
        c_base: when set, the exploration constant grows as log((1 + N + c_base) / c_base)
            + c_puct (AlphaZero: 19652).
        dirichlet_alpha: root noise concentration (about 10 / typical number of legal moves);
            ``None`` for no noise.
        dirichlet_epsilon: weight of the noise in the root priors.
        temperature_moves: moves of each game sampled from the visit counts with temperature 1;
            later moves are the most visited child.
        reuse_tree: continue each search from the subtree of the move played.
        leaves_per_round: leaves each tree gathers per round (virtual loss when > 1).
        virtual_loss: the pretend losses that spread those leaves.
        resign_threshold: ``None`` never resigns. Otherwise a number t in (0, 1): the player to
            move resigns when the search's root value and the Q of its most visited child are
            both below -t (values are in [-1, 1], for the player to move).
        resign_disabled_fraction: the share of games (drawn at random per game) in which
            resignation is disabled, to measure false resignations.
        resign_min_moves: no resignation before this many moves of the game were played.
        max_moves: a game reaching this many moves ends as a draw (``truncated``); ``None``
            plays to the end.
        solver: run MCTS-Solver: proven wins are played at once and the search stops when the
            root is proven (policy targets are then the visits spent until the proof).
    """

    simulations: int = 200
    num_parallel_games: int = 32
    c_puct: float = 1.25
    c_base: float | None = None
    dirichlet_alpha: float | None = 0.3
    dirichlet_epsilon: float = 0.25
    temperature_moves: int = 8
    reuse_tree: bool = True
    leaves_per_round: int = 1
    virtual_loss: int = 1
    resign_threshold: float | None = None
    resign_disabled_fraction: float = 0.1
    resign_min_moves: int = 0
    max_moves: int | None = None
    solver: bool = False

    def __post_init__(self) -> None:
        # The first simulation only expands the root; the policy target needs child visits.
        _check_int("simulations", self.simulations, 2)
        _check_int("num_parallel_games", self.num_parallel_games, 1)
        _check_int("temperature_moves", self.temperature_moves, 0)
        _check_int("leaves_per_round", self.leaves_per_round, 1)
        _check_int("virtual_loss", self.virtual_loss, 1)
        _check_int("resign_min_moves", self.resign_min_moves, 0)
        if self.max_moves is not None:
            _check_int("max_moves", self.max_moves, 1)
        for name in ("reuse_tree", "solver"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise TypeError(f"SelfPlayConfig.{name} must be True or False")
        if _check_float("c_puct", self.c_puct) < 0:
            raise ValueError(f"SelfPlayConfig.c_puct must be >= 0, got {self.c_puct}")
        if self.c_base is not None and _check_float("c_base", self.c_base) <= 0:
            raise ValueError(f"SelfPlayConfig.c_base must be > 0, got {self.c_base}")
        if (
            self.dirichlet_alpha is not None
            and _check_float("dirichlet_alpha", self.dirichlet_alpha) <= 0
        ):
            raise ValueError(
                f"SelfPlayConfig.dirichlet_alpha must be > 0 or None, got {self.dirichlet_alpha}"
            )
        if not 0 <= _check_float("dirichlet_epsilon", self.dirichlet_epsilon) <= 1:
            raise ValueError(
                f"SelfPlayConfig.dirichlet_epsilon must be in [0, 1], got {self.dirichlet_epsilon}"
            )
        if self.resign_threshold is not None and not (
            0 < _check_float("resign_threshold", self.resign_threshold) < 1
        ):
            raise ValueError(
                "SelfPlayConfig.resign_threshold must be in (0, 1) (resign below minus it) or "
                f"None, got {self.resign_threshold}"
            )
        if not 0 <= _check_float("resign_disabled_fraction", self.resign_disabled_fraction) <= 1:
            raise ValueError(
                "SelfPlayConfig.resign_disabled_fraction must be in [0, 1], got "
                f"{self.resign_disabled_fraction}"
            )
        _plain_fields(self)

    def make_mcts(self, evaluator: Evaluator) -> MCTS:
        """The PUCT search these settings describe."""
        return MCTS(
            evaluator,
            selection="puct",
            c=float(self.c_puct),
            c_base=None if self.c_base is None else float(self.c_base),
            dirichlet_alpha=None if self.dirichlet_alpha is None else float(self.dirichlet_alpha),
            dirichlet_epsilon=float(self.dirichlet_epsilon),
            solver=bool(self.solver),
            leaves_per_round=int(self.leaves_per_round),
            virtual_loss=int(self.virtual_loss),
        )


@dataclass(frozen=True, slots=True)
class Position:
    """One searched position of a self-play game.

    Attributes:
        state: the position.
        actions: the root's children (the legal moves), aligned with ``policy`` and ``visits``.
        policy: the root visit counts normalised to sum to 1 (the policy target pi).
        to_play: the player to move.
        visits: the raw root child visit counts (reused visits included).
        root_value: the search's value of the position for ``to_play``.
    """

    state: State
    actions: tuple[Action, ...]
    policy: np.ndarray
    to_play: int
    visits: np.ndarray
    root_value: float


@dataclass(frozen=True, slots=True)
class GameRecord:
    """A finished self-play game.

    Attributes:
        moves: the moves played, in order.
        positions: every searched position, in order. When a player resigned, the last one is
            the position where they resigned (no move was played there), so ``positions`` has
            one more entry than ``moves``; otherwise one entry per move.
        outcome: the result for player 0: +1 win, -1 loss, 0 draw (or the terminal value).
        resigned_by: the player who resigned, or ``None``.
        resign_disabled: whether resignation was disabled in this game.
        would_have_resigned: in a game with resignation disabled, the players whose search
            crossed the resignation threshold (in the order they first did).
        false_resignation: resignation was disabled, some player crossed the threshold, and
            that player did not lose.
        truncated: the game was stopped at ``max_moves`` and scored as a draw.
        final_state: the last position (terminal unless resigned or truncated).
    """

    moves: tuple[Action, ...]
    positions: tuple[Position, ...]
    outcome: float
    resigned_by: int | None
    resign_disabled: bool
    would_have_resigned: tuple[int, ...]
    false_resignation: bool
    truncated: bool
    final_state: State


@dataclass
class SelfPlayStats:
    """Counters that :func:`play_games` adds to when given one (mutable, unlike configs).

    ``evaluator_seconds`` is read from the evaluator's ``seconds`` counter when it has one
    (:class:`~treesearch.games.nets.NetEvaluator` does) and stays ``None`` otherwise.
    """

    games: int = 0
    moves: int = 0
    positions: int = 0
    searches: int = 0
    seconds: float = 0.0
    evaluator_seconds: float | None = None
    resignations: int = 0
    resign_disabled_games: int = 0
    would_resign_games: int = 0  # no-resign games in which some player crossed the threshold
    false_resignations: int = 0
    truncated_games: int = 0

    @property
    def positions_per_second(self) -> float:
        return self.positions / self.seconds if self.seconds > 0 else 0.0

    @property
    def network_share(self) -> float | None:
        """The fraction of the wall time spent inside the evaluator's network."""
        if self.evaluator_seconds is None or self.seconds <= 0:
            return None
        return self.evaluator_seconds / self.seconds

    @property
    def false_resignation_rate(self) -> float | None:
        """Of the no-resign games in which a player crossed the threshold, the share that player
        did not lose: the resignations that would have been wrong (AlphaGo Zero kept this below
        5%). ``None`` until such a game has been played."""
        if self.would_resign_games == 0:
            return None
        return self.false_resignations / self.would_resign_games

    def to_dict(self) -> dict[str, Any]:
        return {
            "games": self.games,
            "moves": self.moves,
            "positions": self.positions,
            "searches": self.searches,
            "seconds": self.seconds,
            "evaluator_seconds": self.evaluator_seconds,
            "positions_per_second": self.positions_per_second,
            "network_share": self.network_share,
            "resignations": self.resignations,
            "resign_disabled_games": self.resign_disabled_games,
            "would_resign_games": self.would_resign_games,
            "false_resignations": self.false_resignations,
            "false_resignation_rate": self.false_resignation_rate,
            "truncated_games": self.truncated_games,
        }


@dataclass
class _Game:
    """A game in progress."""

    state: State
    resign_disabled: bool
    tree: Tree | None = None
    moves: list[Action] = field(default_factory=list)
    positions: list[Position] = field(default_factory=list)
    would_have_resigned: list[int] = field(default_factory=list)


def _check_start(state: object) -> State:
    if not isinstance(state, State):
        raise TypeError(f"new_game() must return a State; {describe_not_a_state(state)}")
    if state.is_terminal():
        raise ValueError("new_game() returned a terminal state")
    _check_player(state)
    return state


def _check_player(state: State) -> int:
    player = state.to_play
    if player not in (0, 1):
        raise ValueError(
            "self-play needs to_play 0 or 1 (a two-player zero-sum game, or a single-agent "
            f"problem where it is always 0), got to_play={player!r}"
        )
    return int(player)


def _evaluator_seconds(evaluator: object) -> float | None:
    seconds = getattr(evaluator, "seconds", None)
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        return None
    return float(seconds)


def play_games(
    evaluator: Evaluator,
    new_game: Callable[[], State],
    num_games: int,
    *,
    config: SelfPlayConfig | None = None,
    rng: np.random.Generator,
    stats: SelfPlayStats | None = None,
    progress: Callable[[GameRecord], None] | None = None,
) -> list[GameRecord]:
    """Play ``num_games`` self-play games, ``config.num_parallel_games`` at a time.

    Args:
        evaluator: priors and values for leaves (e.g. ``NetEvaluator``); called once per
            simulation round with the leaves of every running game.
        new_game: returns the starting state of a game (``to_play`` 0 or 1).
        num_games: games to play.
        config: the settings (defaults: ``SelfPlayConfig()``).
        rng: the only source of randomness (searches, noise, move sampling, which games may
            not resign). The same seed gives the same games.
        stats: counters to add this call's totals to.
        progress: called with each game's record as it finishes.

    Returns:
        The games' records in the order the games were started.
    """
    rng = check_rng(rng)
    if config is None:
        config = SelfPlayConfig()
    if not isinstance(config, SelfPlayConfig):
        raise TypeError(f"config must be a SelfPlayConfig, got {type(config).__name__}")
    if isinstance(num_games, bool) or not isinstance(num_games, (int, np.integer)):
        raise TypeError(f"num_games must be an int, got {type(num_games).__name__}")
    if num_games < 0:
        raise ValueError(f"num_games must be >= 0, got {num_games}")
    if not callable(new_game):
        raise TypeError(f"new_game must be a callable returning a State, got {new_game!r}")
    if stats is not None and not isinstance(stats, SelfPlayStats):
        raise TypeError(f"stats must be a SelfPlayStats, got {type(stats).__name__}")
    mcts = config.make_mcts(evaluator)
    budget = Budget(simulations=int(config.simulations))
    start = time.perf_counter()
    net_start = _evaluator_seconds(evaluator)
    records: list[GameRecord | None] = [None] * int(num_games)
    slots: list[tuple[int, _Game]] = []
    started = 0
    searches = 0

    def start_game() -> None:
        nonlocal started
        state = _check_start(new_game())
        disabled = config.resign_threshold is not None and bool(
            rng.random() < config.resign_disabled_fraction
        )
        slots.append((started, _Game(state, disabled)))
        started += 1

    while started < num_games and len(slots) < config.num_parallel_games:
        start_game()
    while slots:
        roots: list[State | Tree] = [
            game.tree if game.tree is not None else game.state for _, game in slots
        ]
        results = mcts.search_many(roots, budget, rng=rng)
        searches += len(slots)
        still: list[tuple[int, _Game]] = []
        for (index, game), result in zip(slots, results, strict=True):
            record = _advance(game, result, config, rng)
            if record is None:
                still.append((index, game))
                continue
            records[index] = record
            if stats is not None:
                _count(stats, record)
            _log.debug(
                "self-play game %d: %d moves, outcome %+g%s",
                index,
                len(record.moves),
                record.outcome,
                f", resigned by player {record.resigned_by}"
                if record.resigned_by is not None
                else "",
            )
            if progress is not None:
                progress(record)
        slots = still
        while started < num_games and len(slots) < config.num_parallel_games:
            start_game()
    if stats is not None:
        stats.seconds += time.perf_counter() - start
        stats.searches += searches
        net_end = _evaluator_seconds(evaluator)
        if net_start is not None and net_end is not None:
            stats.evaluator_seconds = (stats.evaluator_seconds or 0.0) + (net_end - net_start)
    out = [r for r in records if r is not None]
    assert len(out) == num_games  # every started game ran to its end
    return out


def _count(stats: SelfPlayStats, record: GameRecord) -> None:
    stats.games += 1
    stats.moves += len(record.moves)
    stats.positions += len(record.positions)
    stats.resignations += record.resigned_by is not None
    stats.resign_disabled_games += record.resign_disabled
    stats.would_resign_games += bool(record.resign_disabled and record.would_have_resigned)
    stats.false_resignations += record.false_resignation
    stats.truncated_games += record.truncated


def _advance(
    game: _Game, result: SearchResult, config: SelfPlayConfig, rng: np.random.Generator
) -> GameRecord | None:
    """Record the searched position, then resign or play a move; the record if the game ended."""
    tree = result.tree
    state = game.state
    player = _check_player(state)
    kids = tree.children(Tree.ROOT)
    visits = tree.visits[kids.start : kids.stop].astype(np.int64)
    policy = visits / visits.sum()
    game.positions.append(
        Position(
            state=state,
            actions=result.actions,
            policy=policy,
            to_play=player,
            visits=visits,
            root_value=float(result.root_value),
        )
    )
    if config.resign_threshold is not None and len(game.moves) >= config.resign_min_moves:
        best = kids.start + int(np.argmax(visits))
        limit = -float(config.resign_threshold)
        if result.root_value < limit and tree.q(best) < limit:
            if not game.resign_disabled:
                return _finish(game, -1.0 if player == 0 else 1.0, resigned_by=player)
            if player not in game.would_have_resigned:
                game.would_have_resigned.append(player)
    proven = config.solver and not math.isnan(tree.proven[Tree.ROOT])
    if len(game.moves) < config.temperature_moves and not proven:
        choice = int(rng.choice(len(visits), p=visit_policy(visits, 1.0)))
    elif proven:
        choice = result.actions.index(result.action)
    else:
        choice = int(np.argmax(visits))
    action = result.actions[choice]
    next_state = state.step(action)
    game.moves.append(action)
    game.state = next_state
    if next_state.is_terminal():
        value = next_state.terminal_value()
        if value is None:
            raise ValueError(
                f"terminal state {next_state!r} has no terminal_value(); self-play needs one"
            )
        outcome = float(value) if next_state.to_play == 0 else -float(value)
        return _finish(game, outcome)
    if config.max_moves is not None and len(game.moves) >= config.max_moves:
        return _finish(game, 0.0, truncated=True)
    game.tree = reuse_subtree(tree, action) if config.reuse_tree else None
    return None


def _finish(
    game: _Game, outcome: float, *, resigned_by: int | None = None, truncated: bool = False
) -> GameRecord:
    outcome = outcome + 0.0  # no negative zero
    false_resignation = any(
        (outcome if player == 0 else -outcome) >= 0 for player in game.would_have_resigned
    )
    game.tree = None
    return GameRecord(
        moves=tuple(game.moves),
        positions=tuple(game.positions),
        outcome=outcome,
        resigned_by=resigned_by,
        resign_disabled=game.resign_disabled,
        would_have_resigned=tuple(game.would_have_resigned),
        false_resignation=false_resignation,
        truncated=truncated,
        final_state=game.state,
    )


def position_targets(
    record: GameRecord,
) -> list[tuple[State, tuple[Action, ...], np.ndarray, float]]:
    """Training targets ``(state, actions, pi, z)`` of a game: pi the normalised root visits
    over ``actions``, z the outcome for the player to move at ``state`` (+1 if they won)."""
    if not isinstance(record, GameRecord):
        raise TypeError(f"record must be a GameRecord, got {type(record).__name__}")
    return [
        (
            p.state,
            p.actions,
            p.policy,
            (record.outcome if p.to_play == 0 else -record.outcome) + 0.0,
        )
        for p in record.positions
    ]


def dense_policy(actions: Sequence[Action], policy: np.ndarray, num_actions: int) -> np.ndarray:
    """``policy`` over int ``actions`` in ``[0, num_actions)`` as a dense float32 vector of
    length ``num_actions`` (for games whose actions index the network's outputs)."""
    moves = np.asarray(actions)
    if len(moves) and moves.dtype.kind not in "iu":
        raise TypeError(f"dense_policy needs int actions, got {moves.dtype} values")
    moves = moves.astype(np.int64, copy=False)
    weights = np.asarray(policy, dtype=np.float32)
    if weights.shape != moves.shape:
        raise ValueError(f"{len(moves)} actions but a policy of shape {weights.shape}")
    if len(moves) and (moves.min() < 0 or moves.max() >= num_actions):
        raise ValueError(f"actions must lie in [0, {num_actions})")
    dense = np.zeros(num_actions, dtype=np.float32)
    dense[moves] = weights
    return dense
