"""Victory by continuous fours (VCF) and threats (VCT) for Gomoku: threat-space solvers for the
root of a search.

A *four* is a move after which its player has a winning cell (one more stone would make k in a
row). A VCF (Allis, "Searching for Solutions in Games and Artificial Intelligence", PhD thesis,
1994, ch. 4; Allis, van den Herik & Huntjens, "Go-Moku and Threat-Space Search", 1993) is a
sequence of fours by the attacker, each answered by the defender's only reply, the block of the
single winning cell, that ends in a move giving the attacker two winning cells (an open four,
a four-four, the last four of a four-three) or five in a row. Since every defender reply is
forced, the search is an OR search over the attacker's fours only: depth-first, iterative (an
explicit stack), limited in attacker moves (``max_depth``), positions (``max_nodes``) and time,
with a transposition table of the positions already shown to hold no VCF within a depth.

The rules the search respects: a line is abandoned when the defender can win at once (it has
a winning cell the attacker's move does not block, or its forced block makes k in a row); when
the defender has a winning cell before the attacker moves, the attacker's only move is to block
it, and that block must itself be a four. A VCF found is a proof: the attacker wins against
every defence. No VCF within the limits proves nothing about slower wins (open threes: VCT).

:func:`find_vcf` searches for one (also for the player *not* to move, as if the player to move
passed: the threat that player must answer); :func:`vcf_defences` lists the moves after which
the opponent no longer has a VCF, for ``AlphaZeroPlayer(vcf=True)``
(:mod:`treesearch.games.arena`). Both work on the rotated bitboards of
:class:`~treesearch.games.gomoku.Gomoku` (the private ``_rules`` tables of the same package),
so each position costs a few dozen big-int operations, never a new ``Gomoku`` object.

:func:`find_vct` goes one kind of threat further: threes as well as fours, as an AND-OR search
over ``Gomoku`` states whose defender moves come from
:meth:`~treesearch.games.gomoku.Gomoku.threat_defences` (every other answer to a three is
proven lost), with VCF probes at the attacker's nodes.
"""

from __future__ import annotations

import time
from collections.abc import Hashable
from dataclasses import dataclass, field

from .gomoku import Gomoku, _Rules

__all__ = [
    "VCFDefence",
    "VCFResult",
    "VCFStats",
    "VCTResult",
    "find_vcf",
    "find_vct",
    "refuted_by_threat",
    "threat_safe_moves",
    "vcf_defences",
]

DEFAULT_MAX_DEPTH = 20  # attacker moves; a 9x9 board holds few longer chains of fours
DEFAULT_MAX_NODES = 20_000
_CLOCK_EVERY = 64  # positions between two looks at the clock


@dataclass(frozen=True)
class VCFResult:
    """A victory by continuous fours for ``player``.

    ``line`` alternates attacker and defender moves, attacker first and last: every attacker
    move but the last makes a four, the defender move after it is the forced block, and the
    last attacker move wins at once or leaves two winning cells (``final_threats``, empty when
    it wins at once). ``nodes``: positions the search generated.
    """

    player: int
    line: tuple[int, ...]
    final_threats: tuple[int, ...]
    nodes: int

    @property
    def first_move(self) -> int:
        return self.line[0]

    @property
    def attacker_moves(self) -> tuple[int, ...]:
        return self.line[0::2]


@dataclass
class VCFStats:
    """Counters a caller may pass to accumulate over searches: ``nodes`` generated,
    ``searches`` run, ``limit_hits`` (searches stopped by a node, time or depth limit before
    they were complete, so their "no VCF" is not a proof within the depth)."""

    nodes: int = 0
    searches: int = 0
    limit_hits: int = 0


@dataclass(frozen=True)
class VCFDefence:
    """The opponent's threat and the answers found: ``threat`` is the opponent's VCF as if the
    player to move passed; ``defences`` the moves checked after which the opponent has no VCF
    (within the limits), sorted; ``checked`` the candidate moves examined (all of them unless
    ``complete`` is false, when time ran out)."""

    threat: VCFResult
    defences: tuple[int, ...]
    checked: tuple[int, ...] = field(default=())
    complete: bool = True


# ------------------------------------------------------------------------------ bitboards
_CELL_OF_BIT: dict[int, list[int]] = {}


def _cell_of_bit(rules: _Rules) -> list[int]:
    """Bit index -> cell, over the four direction sections of the rotated bitboard."""
    table = _CELL_OF_BIT.get(id(rules))
    if table is None:
        table = [-1] * (rules.all_bits.bit_length() + 1)
        for action, bits in enumerate(rules.cell_bits):
            while bits:
                low = bits & -bits
                bits ^= low
                table[low.bit_length() - 1] = action
        _CELL_OF_BIT[id(rules)] = table
    return table


def _cells(found: int, table: list[int]) -> list[int]:
    """The distinct cells of the set bits ``found``, in increasing order."""
    cells = set()
    while found:
        low = found & -found
        found ^= low
        cells.add(table[low.bit_length() - 1])
    return sorted(cells)


def _winning_cells(rules: _Rules, table: list[int], bits: int, empty: int) -> list[int]:
    """The empty cells where one more stone of ``bits`` wins (exact rule checked per cell)."""
    cells = _cells(rules.completions(bits, empty), table)
    if rules.exact:
        cell_bits = rules.cell_bits
        cells = [c for c in cells if rules.wins_through(bits | cell_bits[c], c)]
    return cells


def _check_limits(max_depth: object, max_nodes: object, time_limit: object) -> None:
    for name, value in (("max_depth", max_depth), ("max_nodes", max_nodes)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int, got {value!r}")
        if value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    if time_limit is not None:
        if isinstance(time_limit, bool) or not isinstance(time_limit, (int, float)):
            raise TypeError(f"time_limit must be a number of seconds or None, got {time_limit!r}")
        if not time_limit > 0:
            raise ValueError(f"time_limit must be positive, got {time_limit}")


def _sides(state: Gomoku, player: int) -> tuple[int, int]:
    black, white = state._black, state._white
    return (black, white) if player == 0 else (white, black)


class _Frame:
    """One attacker-to-move position on the search stack and its untried fours."""

    __slots__ = ("attacker", "defender", "depth_left", "empty", "fours", "index")

    def __init__(
        self,
        attacker: int,
        defender: int,
        empty: int,
        depth_left: int,
        fours: list[tuple[int, int]],
    ) -> None:
        self.attacker = attacker
        self.defender = defender
        self.empty = empty
        self.depth_left = depth_left
        self.fours = fours  # (attacker move, the defender's forced block)
        self.index = 0


def _fours(
    rules: _Rules, table: list[int], attacker: int, defender: int, empty: int
) -> tuple[list[tuple[int, int]], tuple[int, tuple[int, ...]] | None]:
    """The attacker's fours here as (move, block) pairs, and a move winning at once or by a
    double threat, ``(move, its winning cells)``, if there is one. The attacker has no winning
    cell (the caller checked); a defender winning cell restricts the move to its block."""
    cell_bits = rules.cell_bits
    threats = _winning_cells(rules, table, defender, empty)
    makers = rules.four_makers(attacker, empty)
    if len(threats) >= 2:
        return [], None
    if threats:
        makers &= cell_bits[threats[0]]
    fours: list[tuple[int, int]] = []
    for move in _cells(makers, table):
        bit = cell_bits[move]
        wins = _winning_cells(rules, table, attacker | bit, empty & ~bit)
        if len(wins) >= 2:
            return fours, (move, tuple(wins))
        if wins:
            fours.append((move, wins[0]))
    return fours, None


def _search(
    rules: _Rules,
    attacker: int,
    defender: int,
    *,
    max_depth: int,
    max_nodes: int,
    deadline: float | None,
    stats: VCFStats | None,
    player: int,
) -> VCFResult | None:
    table = _cell_of_bit(rules)
    cell_bits = rules.cell_bits
    empty = rules.all_bits & ~(attacker | defender)
    if stats is not None:
        stats.searches += 1
    now = _winning_cells(rules, table, attacker, empty)
    if now:
        if stats is not None:
            stats.nodes += 1
        return VCFResult(player, (now[0],), (), 1)
    fours, win = _fours(rules, table, attacker, defender, empty)
    nodes = 1
    if win is not None:
        if stats is not None:
            stats.nodes += nodes
        return VCFResult(player, (win[0],), win[1], nodes)
    failed: dict[tuple[int, int], int] = {}  # position -> depth it was searched to in vain
    stack = [_Frame(attacker, defender, empty, max_depth, fours)]
    path: list[int] = []
    limited = False
    result: VCFResult | None = None
    while stack:
        frame = stack[-1]
        if frame.index == len(frame.fours):
            key = (frame.attacker, frame.defender)
            if failed.get(key, 0) < frame.depth_left:
                failed[key] = frame.depth_left
            stack.pop()
            del path[-2:]
            continue
        move, block = frame.fours[frame.index]
        frame.index += 1
        if frame.depth_left <= 1:
            limited = True  # a four here could only win on a later move: beyond the depth
            continue
        move_bit, block_bit = cell_bits[move], cell_bits[block]
        defender = frame.defender | block_bit
        if rules.wins_through(defender, block):
            continue  # the forced block makes k in a row for the defender
        attacker = frame.attacker | move_bit
        depth_left = frame.depth_left - 1
        if failed.get((attacker, defender), 0) >= depth_left:
            continue
        nodes += 1
        if nodes > max_nodes or (
            deadline is not None and nodes % _CLOCK_EVERY == 0 and time.perf_counter() > deadline
        ):
            limited = True
            break
        empty = frame.empty & ~(move_bit | block_bit)
        fours, win = _fours(rules, table, attacker, defender, empty)
        if win is not None:
            line = (*path, move, block, win[0])
            result = VCFResult(player, line, win[1], nodes)
            break
        path += (move, block)
        stack.append(_Frame(attacker, defender, empty, depth_left, fours))
    if stats is not None:
        stats.nodes += nodes
        stats.limit_hits += result is None and limited
    return result


def find_vcf(
    state: Gomoku,
    *,
    player: int | None = None,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_nodes: int = DEFAULT_MAX_NODES,
    time_limit: float | None = None,
    stats: VCFStats | None = None,
) -> VCFResult | None:
    """A victory by continuous fours for ``player`` (default: the player to move), or ``None``.

    For the player not to move, the search starts as if the player to move passed: the threat
    that player has to answer. ``max_depth`` counts the attacker's moves (a win at once is depth
    1, an open four made now depth 1, a four then an open four depth 2). The search stops with
    ``None`` after ``max_nodes`` positions or ``time_limit`` seconds; ``stats`` records whether
    it did. ``None`` also for a finished game.

    Raises:
        TypeError: ``state`` is not a :class:`~treesearch.games.gomoku.Gomoku`, or a limit is
            not a number.
        ValueError: ``player`` is not 0 or 1, or a limit is not positive.
    """
    if not isinstance(state, Gomoku):
        raise TypeError(f"find_vcf needs a Gomoku state, got {type(state).__name__}")
    if player is None:
        player = state.to_play
    if player not in (0, 1) or isinstance(player, bool):
        raise ValueError(f"player must be 0 or 1, got {player!r}")
    _check_limits(max_depth, max_nodes, time_limit)
    if state.is_terminal():
        return None
    deadline = None if time_limit is None else time.perf_counter() + time_limit
    attacker, defender = _sides(state, player)
    return _search(
        state._rules,
        attacker,
        defender,
        max_depth=max_depth,
        max_nodes=max_nodes,
        deadline=deadline,
        stats=stats,
        player=player,
    )


def vcf_defences(
    state: Gomoku,
    *,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_nodes: int = DEFAULT_MAX_NODES,
    time_limit: float | None = None,
    stats: VCFStats | None = None,
) -> VCFDefence | None:
    """The moves that stop the opponent's victory by continuous fours, or ``None`` when the
    opponent has none (as if the player to move passed) or the game is over.

    Every move that stops all of the opponent's VCFs stops the one found, so it lies on that
    line (a cell the opponent needs), on its final winning cells, makes a four of the player's
    own, or shares a k-window with one of the player's forced blocks on the line (with them it
    can make a four mid-line, which the opponent must answer): only those candidates are
    checked. A candidate that makes no four defends
    when the opponent, to move after it, has no VCF. A four forces the opponent's block first;
    it defends when the opponent has no VCF after that block even if the player passed again
    (a strict test: a four that only delays the threat is not a defence). ``time_limit`` caps
    the whole call (the threat search included); candidates left unchecked when it runs out
    are left out (``complete=False``).

    Raises:
        TypeError, ValueError: as :func:`find_vcf`.
    """
    if not isinstance(state, Gomoku):
        raise TypeError(f"vcf_defences needs a Gomoku state, got {type(state).__name__}")
    _check_limits(max_depth, max_nodes, time_limit)
    if state.is_terminal():
        return None
    start = time.perf_counter()
    deadline = None if time_limit is None else start + time_limit
    rules = state._rules
    me = state.to_play
    opponent = 1 - me
    mine, theirs = _sides(state, me)

    def opponent_vcf(attacker: int, defender: int) -> VCFResult | None:
        return _search(
            rules,
            attacker,
            defender,
            max_depth=max_depth,
            max_nodes=max_nodes,
            deadline=deadline,
            stats=stats,
            player=opponent,
        )

    threat = opponent_vcf(theirs, mine)
    if threat is None:
        return None
    table = _cell_of_bit(rules)
    cell_bits = rules.cell_bits
    empty = rules.all_bits & ~(mine | theirs)
    candidates = list(dict.fromkeys((*threat.line, *threat.final_threats)))
    own_fours = _cells(rules.four_makers(mine, empty), table)
    candidates += [c for c in own_fours if c not in candidates]
    near_blocks = 0  # cells sharing a k-window with a forced block of the player's
    for block in threat.line[1::2]:
        near_blocks |= rules.near_mask[block]
    candidates += [
        c for c in range(rules.num_cells) if near_blocks >> c & 1 and c not in candidates
    ]
    defences: list[int] = []
    checked: list[int] = []
    complete = True
    for move in candidates:
        if deadline is not None and time.perf_counter() > deadline:
            complete = False
            break
        bit = cell_bits[move]
        if not empty & bit:
            continue
        checked.append(move)
        after_mine, after_empty = mine | bit, empty & ~bit
        if rules.wins_through(after_mine, move):
            defences.append(move)  # wins at once
            continue
        if _winning_cells(rules, table, theirs, after_empty):
            continue  # the opponent still wins at once
        wins = _winning_cells(rules, table, after_mine, after_empty)
        if len(wins) >= 2:
            defences.append(move)  # a double threat the opponent cannot answer
            continue
        after_theirs = theirs
        if wins:  # a four: the opponent's block comes first
            block = wins[0]
            after_theirs = theirs | cell_bits[block]
            if rules.wins_through(after_theirs, block):
                continue
        found = opponent_vcf(after_theirs, after_mine)
        if deadline is not None and time.perf_counter() > deadline and found is None:
            complete = False  # this check may have been cut short: not a proven defence
            break
        if found is None:
            defences.append(move)
    return VCFDefence(threat, tuple(sorted(defences)), tuple(checked), complete)


def threat_safe_moves(
    state: Gomoku,
    moves: tuple[int, ...],
    *,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_nodes: int = DEFAULT_MAX_NODES,
    time_limit: float | None = None,
    stats: VCFStats | None = None,
) -> tuple[int, ...]:
    """The ``moves`` that survive one more opponent threat, a step towards victory by
    continuous threats (VCT: threes as well as fours, Allis 1994), or all of ``moves`` when
    none does.

    A move is refuted when the opponent has a reply after which it has a VCF (as if the player
    passed), the player has no VCF of its own, and :func:`vcf_defences` finds no move against
    it: a three-three, or a three that makes a four-three unstoppable. The replies tried are
    all legal moves; most are dismissed by the opponent's VCF search alone, which fails at once
    when it has no four. Moves left unchecked when ``time_limit`` runs out are kept (unknown).

    Raises:
        TypeError, ValueError: as :func:`find_vcf`, or a move that is not legal here.
    """
    if not isinstance(state, Gomoku):
        raise TypeError(f"threat_safe_moves needs a Gomoku state, got {type(state).__name__}")
    _check_limits(max_depth, max_nodes, time_limit)
    deadline = None if time_limit is None else time.perf_counter() + time_limit

    def out_of_time() -> bool:
        return deadline is not None and time.perf_counter() > deadline

    safe: list[int] = []
    for index, move in enumerate(moves):
        if out_of_time():
            safe += moves[index:]
            break
        if not _refuted(state, move, max_depth, max_nodes, deadline, stats):
            safe.append(move)
    return tuple(safe) if safe else tuple(moves)


def refuted_by_threat(
    state: Gomoku,
    move: int,
    *,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_nodes: int = DEFAULT_MAX_NODES,
    time_limit: float | None = None,
    stats: VCFStats | None = None,
) -> bool:
    """Whether the opponent has a reply to ``move`` after which it has a VCF and the player
    neither a VCF nor a defence against it (the test of :func:`threat_safe_moves`); ``False``
    when ``time_limit`` ran out first (unknown).

    Raises:
        TypeError, ValueError: as :func:`find_vcf`, or an illegal ``move``.
    """
    if not isinstance(state, Gomoku):
        raise TypeError(f"refuted_by_threat needs a Gomoku state, got {type(state).__name__}")
    _check_limits(max_depth, max_nodes, time_limit)
    deadline = None if time_limit is None else time.perf_counter() + time_limit
    return _refuted(state, move, max_depth, max_nodes, deadline, stats)


def _refuted(
    state: Gomoku,
    move: int,
    max_depth: int,
    max_nodes: int,
    deadline: float | None,
    stats: VCFStats | None,
) -> bool:
    opponent = 1 - state.to_play
    after = state.step(move)
    for reply in after.legal_actions():
        if deadline is not None and time.perf_counter() > deadline:
            return False
        position = after.step(reply)
        if position.is_terminal():
            if position.winner == opponent:
                return True
            continue
        left = None if deadline is None else max(deadline - time.perf_counter(), 1e-6)
        if (
            find_vcf(
                position,
                player=opponent,
                max_depth=max_depth,
                max_nodes=max_nodes,
                time_limit=left,
                stats=stats,
            )
            is None
            or find_vcf(
                position, max_depth=max_depth, max_nodes=max_nodes, time_limit=left, stats=stats
            )
            is not None
        ):
            continue
        defence = vcf_defences(
            position, max_depth=max_depth, max_nodes=max_nodes, time_limit=left, stats=stats
        )
        in_time = deadline is None or time.perf_counter() <= deadline
        if defence is not None and not defence.defences and defence.complete and in_time:
            return True
    return False


# ------------------------------------------------------------------------------------- VCT
DEFAULT_VCT_DEPTH = 4  # attacker threat moves (fours and threes) before a VCF must take over
DEFAULT_VCT_NODES = 5_000
_VCF_NODES_IN_VCT = 400  # each VCF probe inside the VCT search is kept small


@dataclass(frozen=True)
class VCTResult:
    """A victory by continuous threats for ``player``: ``first_move`` wins against every
    defence within ``depth`` attacker threat moves (then a VCF or an immediate win).
    ``nodes``: positions the search expanded."""

    player: int
    first_move: int
    depth: int
    nodes: int


_VCTKey = tuple[Hashable, int]  # (the position's key, the threat moves left)


class _VCTNode:
    """One position on the VCT search stack: an OR node (attacker to move, ``attack``) needs
    one child proven, an AND node (defender to move) every child. ``child_depth``: the threat
    moves left after a child's move (one fewer after an attacker's threat; forced blocks, of
    either side, spend none)."""

    __slots__ = ("attack", "child_depth", "children", "index", "key", "state")

    def __init__(
        self, state: Gomoku, attack: bool, child_depth: int, children: list[int], key: _VCTKey
    ) -> None:
        self.state = state
        self.attack = attack
        self.child_depth = child_depth
        self.children = children
        self.index = 0
        self.key = key


class _OutOfBudget(Exception):
    pass


def find_vct(
    state: Gomoku,
    *,
    player: int | None = None,
    max_depth: int = DEFAULT_VCT_DEPTH,
    max_nodes: int = DEFAULT_VCT_NODES,
    time_limit: float | None = None,
    stats: VCFStats | None = None,
) -> VCTResult | None:
    """A victory by continuous threats (VCT; Allis, van den Herik & Huntjens 1993) for
    ``player`` (default: the player to move; only the player to move may attack), or ``None``.

    An AND-OR search over threats, iterative deepening on ``max_depth`` attacker threat moves:

    * the attacker (OR) wins where it has a VCF (:func:`find_vcf`); else it tries its *fours*
      (moves leaving one winning cell) and its *threes* (moves after which it has a move giving
      two winning cells, :meth:`~treesearch.games.gomoku.Gomoku.double_threat_moves`); when the
      defender has a winning cell the attacker's only move is to block it, and its standing
      threat carries on;
    * the defender (AND) must block the attacker's single winning cell; facing a three it loses
      when it has no answer at all, and otherwise every answer in
      :meth:`~treesearch.games.gomoku.Gomoku.threat_defences` (its own fours, the blocks) must
      lose; every other move is already proven lost by that method. A defender with a VCF of
      its own, or a three that no longer threatens anything, ends the line as a failure.

    So a result is a proof within the search's rules: the attacker wins against every defence.
    ``None`` proves nothing (the limits, or a slower win). Positions are ``Gomoku`` states,
    a few thousand per call; ``max_nodes`` and ``time_limit`` bound the call.

    Raises:
        TypeError: ``state`` is not a :class:`~treesearch.games.gomoku.Gomoku`, or a limit is
            not a number.
        ValueError: ``player`` is not the player to move, or a limit is not positive.
    """
    if not isinstance(state, Gomoku):
        raise TypeError(f"find_vct needs a Gomoku state, got {type(state).__name__}")
    if player is None:
        player = state.to_play
    if isinstance(player, bool) or player not in (0, 1):
        raise ValueError(f"player must be 0 or 1, got {player!r}")
    if player != state.to_play:
        raise ValueError(
            f"find_vct attacks with the player to move ({state.to_play}), not {player}"
        )
    _check_limits(max_depth, max_nodes, time_limit)
    if state.is_terminal():
        return None
    deadline = None if time_limit is None else time.perf_counter() + time_limit
    search = _VCTSearch(player, max_nodes, deadline)
    result: VCTResult | None = None
    try:
        for depth in range(1, max_depth + 1):
            move = search.run(state, depth)
            if move is not None:
                result = VCTResult(player, move, depth, search.nodes)
                break
    except _OutOfBudget:
        result = None
    if stats is not None:
        stats.searches += 1
        stats.nodes += search.nodes
        stats.limit_hits += result is None and search.limited
    return result


class _VCTSearch:
    """The state of one :func:`find_vct` call: the proven and failed positions, the budget."""

    def __init__(self, attacker: int, max_nodes: int, deadline: float | None) -> None:
        self.attacker = attacker
        self.max_nodes = max_nodes
        self.deadline = deadline
        self.nodes = 0
        self.limited = False
        self.proven: set[_VCTKey] = set()  # positions won within a depth, either side to move
        self.failed: dict[Hashable, int] = {}  # position -> the depth it was searched to in vain

    def _tick(self) -> None:
        self.nodes += 1
        if self.nodes > self.max_nodes or (
            self.deadline is not None
            and self.nodes % 16 == 0
            and time.perf_counter() > self.deadline
        ):
            self.limited = True
            raise _OutOfBudget

    def _vcf(self, state: Gomoku, player: int) -> bool:
        left = None
        if self.deadline is not None:
            left = self.deadline - time.perf_counter()
            if left <= 0:
                self.limited = True
                raise _OutOfBudget
        found = find_vcf(state, player=player, max_nodes=_VCF_NODES_IN_VCT, time_limit=left)
        return found is not None

    def _expand(self, state: Gomoku, attack: bool, depth: int) -> bool | _VCTNode:
        """A position's verdict if it is settled at once, else its node with the moves to try."""
        key = (state.key, depth)
        if key in self.proven:
            return True
        if self.failed.get(key[0], -1) >= depth:
            return False
        self._tick()
        attacker, defender = self.attacker, 1 - self.attacker
        if state.is_terminal():
            return state.winner == attacker
        if attack:
            if self._vcf(state, attacker):
                return True
            blocks = state.winning_moves(defender)
            if len(blocks) >= 2:
                return False
            if blocks:  # a defender four: block it; the attacker's threat still stands
                return _VCTNode(state, True, depth, [blocks[0]], key)
            if depth <= 0:
                return False
            return _VCTNode(state, True, depth - 1, self._threat_moves(state), key)
        if state.winning_moves(defender):
            return False
        wins = state.winning_moves(attacker)
        if len(wins) >= 2:
            return True
        if wins:
            return _VCTNode(state, False, depth, [wins[0]], key)
        if not state.double_threat_moves(attacker):
            return False  # the three was answered already: nothing forces the defender
        if self._vcf(state, defender):
            return False
        defences = state.threat_defences()
        if not defences:
            return True
        return _VCTNode(state, False, depth, list(defences), key)

    def _threat_moves(self, state: Gomoku) -> list[int]:
        """The attacker's fours, then its threes (moves that make a double-threat move)."""
        rules = state._rules
        table = _cell_of_bit(rules)
        cell_bits = rules.cell_bits
        mine, theirs = _sides(state, self.attacker)
        empty = rules.all_bits & ~(mine | theirs)
        fours: list[int] = []
        threes: list[int] = []
        # A three puts a (k-2)-th stone into a window holding k-3 of them and no other stone.
        for move in _cells(_three_makers(rules, mine, empty), table):
            bit = cell_bits[move]
            after, after_empty = mine | bit, empty & ~bit
            if _winning_cells(rules, table, after, after_empty):
                fours.append(move)
            elif _has_double_threat(rules, table, after, after_empty):
                threes.append(move)
        return fours + threes

    def run(self, root: Gomoku, depth: int) -> int | None:
        """The root move that wins within ``depth`` threat moves, or ``None``."""
        settled = self._expand(root, True, depth)
        if settled is True or not isinstance(settled, _VCTNode):
            if settled is True:  # a VCF (or a win at once) at the root: its first move
                found = find_vcf(root, max_nodes=DEFAULT_MAX_NODES)
                return None if found is None else found.first_move
            return None
        stack = [settled]
        child_result: bool | None = None
        while stack:
            node = stack[-1]
            if child_result is not None:
                done = child_result if node.attack else not child_result
                child_result = None
                if done:  # an OR node proven, or an AND node refuted
                    stack.pop()
                    verdict = node.attack
                    self._record(node, verdict)
                    if not stack:
                        return node.children[node.index - 1] if verdict else None
                    child_result = verdict
                    continue
            if node.index == len(node.children):
                stack.pop()
                verdict = not node.attack  # an OR node with no proof, an AND node all proven
                self._record(node, verdict)
                if not stack:
                    return None
                child_result = verdict
                continue
            move = node.children[node.index]
            node.index += 1
            child = node.state.step(move)
            settled = self._expand(child, not node.attack, node.child_depth)
            if isinstance(settled, _VCTNode):
                stack.append(settled)
            else:
                child_result = settled
        return None

    def _record(self, node: _VCTNode, verdict: bool) -> None:
        if verdict:
            self.proven.add(node.key)
        else:
            state_key, depth = node.key
            if self.failed.get(state_key, -1) < depth:
                self.failed[state_key] = depth


def _three_makers(rules: _Rules, bits: int, empty: int) -> int:
    """Bits of the empty cells in a window of ``k`` cells that holds ``k - 3`` of the stones
    ``bits`` and three empty cells: every move that can make a three, or a four, is among them
    (the four makers are in such windows too, but each four lies in a window with
    ``k - 2`` stones; they are added)."""
    k = rules.k
    found = rules.four_makers(bits, empty)
    if k < 3:
        return found
    for a in range(k - 2):
        for b in range(a + 1, k - 1):
            for c in range(b + 1, k):
                m = (empty >> a) & (empty >> b) & (empty >> c)
                for i in range(k):
                    if i not in (a, b, c):
                        m &= bits >> i
                found |= (m << a) | (m << b) | (m << c)
    return found


def _has_double_threat(rules: _Rules, table: list[int], bits: int, empty: int) -> bool:
    """Whether the stones ``bits`` (no winning cell yet) have a move giving two winning cells."""
    cell_bits = rules.cell_bits
    for move in _cells(rules.four_makers(bits, empty), table):
        bit = cell_bits[move]
        if rules.winning_cells_after(bits | bit, empty & ~bit, move) >= 2:
            return True
    return False
