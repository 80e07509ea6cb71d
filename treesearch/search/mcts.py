"""Monte Carlo tree search: UCT and PUCT, with MCTS-Solver, root noise and virtual loss.

* UCT: Kocsis & Szepesvari, "Bandit based Monte-Carlo Planning" (ECML 2006), with random
  rollouts as the leaf evaluator (Coulom, "Efficient Selectivity and Backup Operators in
  Monte-Carlo Tree Search", 2006).
* PUCT with evaluator priors, Dirichlet root noise and the growing exploration constant
  c(s) = log((1 + N + c_base) / c_base) + c_init: Silver et al., "Mastering the game of Go
  without human knowledge" (Nature 2017) and "A general reinforcement learning algorithm that
  masters chess, shogi and Go through self-play" (Science 2018).
* MCTS-Solver: Winands, Bjornsson & Saito, "Monte-Carlo Tree Search Solver" (CG 2008):
  exact values of terminal states are propagated up as proofs.
* Virtual loss: Chaslot, Winands & van den Herik, "Parallel Monte-Carlo Tree Search" (CG 2008);
  here it lets one search gather several leaves per round for one batched evaluator call.

Leaves are evaluated either by an :class:`~treesearch.interfaces.Evaluator` (priors over legal
actions + value: games) or by a :class:`~treesearch.interfaces.Policy` that proposes children
plus a :class:`~treesearch.interfaces.Verifier` that scores the leaf (LLM reasoning). Values
follow the sign rule in ``docs/concepts.md``; :mod:`treesearch.backup` applies it.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import numpy as np

from ..backup import apply_virtual_loss, backup_path, value_for_parent
from ..budget import Budget, BudgetMeter
from ..evaluators import LegalActionsPolicy
from ..interfaces import (
    Action,
    Candidate,
    Evaluation,
    Evaluator,
    Policy,
    State,
    Verifier,
    VerifierFn,
    check_batch,
    check_evaluation,
    check_value,
)
from ..results import SearchResult, root_distribution, trace_from_path
from ..selection import alphazero_c, uct_scores
from ..tree import Tree, TreeFull
from ._common import (
    check_choice,
    check_int,
    check_legal,
    check_max_nodes,
    check_rng,
    check_root,
    expand_node,
    log_stop,
    note_user_error,
    propose,
    resolve_verifier,
    score_states,
)

__all__ = ["MCTS", "reuse_subtree", "visit_policy"]

_log = logging.getLogger("treesearch.search")

Selection = Literal["uct", "puct"]

# Nodes with at most this many children are scored in plain Python (numpy's per-call overhead
# dominates below it); wider nodes use one vectorised expression.
_NARROW = 32
_RESERVE_CAP = 1 << 20  # nodes the plain loop reserves up front at most (~66 MB)

# Without a simulation or time limit, a search whose rounds stop spending every limit that is
# set ends after this many such rounds instead of running forever.
_MAX_IDLE_ROUNDS = 1000

_EMPTY_HINT = (
    "if it should have moves, check that step() returns a new state and leaves the one it was "
    "called on unchanged (treesearch.testing.check_state finds that)"
)
FinalChoice = Literal["visits", "q", "sample"]
_T = TypeVar("_T")


def visit_policy(visits: np.ndarray, temperature: float) -> np.ndarray:
    """pi(a) proportional to N(a)^(1/temperature); ``temperature == 0`` is the argmax one-hot.

    Computed in log space so small temperatures do not overflow.
    """
    visits = np.asarray(visits, dtype=np.float64)
    if visits.ndim != 1 or len(visits) == 0:
        raise ValueError("visits must be a non-empty 1-D array")
    if np.any(visits < 0) or not np.all(np.isfinite(visits)):
        raise ValueError("visits must be finite and non-negative")
    if not math.isfinite(temperature) or temperature < 0:
        raise ValueError(f"temperature must be finite and >= 0, got {temperature}")
    if temperature == 0 or visits.sum() == 0:
        out = np.zeros_like(visits)
        out[int(np.argmax(visits))] = 1.0
        return out
    with np.errstate(divide="ignore"):
        logits = np.log(visits) / temperature
    logits -= logits.max()
    weights = np.exp(logits)
    return weights / weights.sum()


# A leaf's evaluation: its children (None for a terminal leaf), and its value for the player to
# move. Children are (actions, normalised priors) from an evaluator, or a policy's Candidates.
_Evaluated = tuple["tuple[Sequence[Action], np.ndarray] | list[Candidate] | None", float]


class _OutOfBudget(Exception):
    """A budgeted call found its allowance spent mid-round (the policy's tokens)."""


class _Abandoned(Exception):
    """Thrown into a search's rounds when a sibling search in ``search_many`` failed."""


@dataclass
class _Run:
    """One search in progress: its tree, budget meter and bookkeeping."""

    tree: Tree
    meter: BudgetMeter
    root_priors: np.ndarray | None
    cache: dict[object, _Evaluated] | None
    zero_priors: list[int] = field(default_factory=list)  # nodes whose priors were all 0
    stop_reason: str = "exhausted"


# A search in progress yields (states, their tree nodes) for the evaluator and is sent back
# the evaluations (search_many batches the requests of many trees into one call).
_Request = tuple[list[State], list[int]]
_Rounds = Generator[_Request, Sequence[object], None]


@dataclass(frozen=True, slots=True)
class _Pending:
    """A leaf selected this round, waiting for its value."""

    path: list[int]
    value: float | None  # known already (terminal / cached), else None


class MCTS:
    """Monte Carlo tree search over any :class:`~treesearch.interfaces.State`.

    Args:
        evaluator: priors over legal actions and a value per leaf (games). Mutually exclusive
            with ``policy``.
        policy: proposes a leaf's children (open-ended actions, e.g. LLM steps); needs
            ``verifier`` for leaf values. Defaults to every legal action with a uniform prior
            when only a ``verifier`` is given.
        verifier: scores leaf states (value for the player to move); used with ``policy``, and
            for terminal states whose ``terminal_value()`` is ``None``.
        selection: ``"uct"`` (Q + c sqrt(ln N / n)) or ``"puct"`` (Q + c P sqrt(N) / (1 + n)).
        c: exploration constant (default sqrt(2) for UCT, 1.25 for PUCT). With ``c_base``
            it is AlphaZero's ``c_init``.
        c_base: when set, PUCT uses c(s) = log((1 + N + c_base) / c_base) + c (AlphaZero:
            19652).
        fpu: first-play urgency, the value an unvisited child is scored with: a number, or
            ``"parent"`` for the parent's current mean value. Defaults: UCT ``inf`` (try every
            child once), PUCT 0.
        dirichlet_alpha: when set, root priors become (1 - eps) P + eps Dir(alpha) for each
            search (not stored in the tree, so reused trees are not noised twice).
        dirichlet_epsilon: the mixing weight eps.
        final: how the move is chosen: most ``"visits"``, best ``"q"``, or ``"sample"`` from
            N^(1/temperature).
        temperature: for ``final="sample"``.
        solver: propagate exact terminal values as proofs (MCTS-Solver); proven wins are
            played, proven losses avoided, and the search stops once the root is solved.
        leaves_per_round: leaves gathered per round (with virtual loss) for one batched call.
        virtual_loss: pretend losses added along a pending path when ``leaves_per_round > 1``.
        max_nodes: node cap; the search stops when an expansion would pass it.
        transpositions: cache leaf evaluations by ``state.key`` so a position reached by
            another path is not evaluated again.
        value_bounds: (lowest, highest) value; the highest is a proven win for the solver.
        decisive_moves: decisive and anti-decisive moves (Teytaud & Teytaud, CIG 2010): when
            a leaf's state has ``forced_actions()`` returning moves (those that win at once,
            else those that block the opponent's immediate win), only they become children,
            their priors renormalised. States need a ``forced_actions()`` method.
        move_filter: a function of a state naming the only actions its node may expand into
            (their priors renormalised), or ``None`` / ``()`` for all of them; for exact game
            knowledge such as ``Gomoku.threat_space_actions`` (moves outside lose by force).
            With ``decisive_moves`` too, it is asked where ``forced_actions()`` names none.
    """

    def __init__(
        self,
        evaluator: Evaluator | None = None,
        *,
        policy: Policy | None = None,
        verifier: Verifier | VerifierFn | None = None,
        selection: Selection = "puct",
        c: float | None = None,
        c_base: float | None = None,
        fpu: float | Literal["parent"] | None = None,
        dirichlet_alpha: float | None = None,
        dirichlet_epsilon: float = 0.25,
        final: FinalChoice = "visits",
        temperature: float = 1.0,
        solver: bool = True,
        leaves_per_round: int = 1,
        virtual_loss: int = 1,
        max_nodes: int | None = None,
        transpositions: bool = False,
        value_bounds: tuple[float, float] = (-1.0, 1.0),
        decisive_moves: bool = False,
        move_filter: Callable[[State], Sequence[Action] | None] | None = None,
    ) -> None:
        if evaluator is not None and policy is not None:
            raise ValueError("MCTS takes evaluator= or policy= (with verifier=), not both")
        if evaluator is None and policy is None:
            if verifier is None:
                raise ValueError(
                    "MCTS needs an evaluator=, or a verifier= (optionally with a policy=)"
                )
            policy = LegalActionsPolicy()
        if evaluator is not None and not isinstance(evaluator, Evaluator):
            raise TypeError(
                f"evaluator must have .evaluate(states, rng=...), got {type(evaluator).__name__}"
            )
        if policy is not None:
            if not isinstance(policy, Policy):
                raise TypeError(
                    f"policy must have .propose(states, rng=..., max_tokens=...), got "
                    f"{type(policy).__name__}"
                )
            if verifier is None:
                raise ValueError("MCTS with a policy needs a verifier to value its leaves")
        check_choice("selection", selection, ("uct", "puct"))
        check_choice("final", final, ("visits", "q", "sample"))
        if c is None:
            c = math.sqrt(2.0) if selection == "uct" else 1.25
        _check_number("c", c, minimum=0.0)
        if c_base is not None:
            _check_number("c_base", c_base, minimum=0.0, strict=True)
            if selection != "puct":
                raise ValueError("c_base (the AlphaZero schedule) applies to selection='puct'")
        if fpu is None:
            fpu = math.inf if selection == "uct" else 0.0
        if fpu != "parent":
            if isinstance(fpu, (str, bool)):
                raise ValueError(f"fpu must be a number or 'parent', got {fpu!r}")
            if math.isnan(fpu):
                raise ValueError("fpu must not be NaN")
        if dirichlet_alpha is not None:
            _check_number("dirichlet_alpha", dirichlet_alpha, minimum=0.0, strict=True)
            if selection != "puct":
                raise ValueError("dirichlet_alpha (root prior noise) applies to selection='puct'")
        _check_number("dirichlet_epsilon", dirichlet_epsilon, minimum=0.0)
        if dirichlet_epsilon > 1:
            raise ValueError(f"dirichlet_epsilon must be in [0, 1], got {dirichlet_epsilon}")
        _check_number("temperature", temperature, minimum=0.0)
        leaves_per_round = check_int("leaves_per_round", leaves_per_round)
        virtual_loss = check_int("virtual_loss", virtual_loss)
        max_nodes = check_max_nodes(max_nodes)
        for name, flag in (
            ("solver", solver),
            ("transpositions", transpositions),
            ("decisive_moves", decisive_moves),
        ):
            if not isinstance(flag, (bool, np.bool_)):
                raise TypeError(f"{name} must be True or False, got {flag!r}")
        lo, hi = value_bounds
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise ValueError(
                f"value_bounds must be finite (low, high) with low < high: {value_bounds}"
            )
        self.evaluator = evaluator
        self.policy = policy
        self.verify = resolve_verifier(verifier)
        self.selection = selection
        self.c = float(c)
        self.c_base = c_base
        self.fpu = fpu
        self.dirichlet_alpha = dirichlet_alpha
        self.dirichlet_epsilon = float(dirichlet_epsilon)
        self.final = final
        self.temperature = float(temperature)
        self.solver = bool(solver)
        self.leaves_per_round = leaves_per_round
        self.virtual_loss = virtual_loss
        self.max_nodes = max_nodes
        self.transpositions = bool(transpositions)
        self.value_bounds = (float(lo), float(hi))
        self.decisive_moves = bool(decisive_moves)
        if self.decisive_moves and self.evaluator is None:
            raise ValueError("decisive_moves applies to evaluator searches (games)")
        if move_filter is not None and not callable(move_filter):
            raise TypeError(f"move_filter must be a function of a state, got {move_filter!r}")
        if move_filter is not None and self.evaluator is None:
            raise ValueError("move_filter applies to evaluator searches (games)")
        self.move_filter = move_filter
        self._only = _children_filter(self.decisive_moves, move_filter)

    # ------------------------------------------------------------------ public
    def search(
        self, root: State | Tree, budget: Budget, *, rng: np.random.Generator
    ) -> SearchResult:
        """Run simulations from ``root`` (a state, or a tree to continue) within ``budget``."""
        rng = check_rng(rng)
        run = self._start(root, budget, rng)
        rounds = self._rounds(run, rng)
        try:
            request = next(rounds)
            evaluate = self.evaluator.evaluate  # type: ignore[union-attr] # only evaluators yield
            while True:
                states, nodes = request
                try:
                    raw = evaluate(states, rng=rng)
                except BaseException as exc:
                    if isinstance(exc, Exception):
                        note_user_error(exc, self._describe_call(nodes), states)
                    rounds.throw(exc)  # takes the round's virtual loss back, then re-raises
                    raise  # pragma: no cover (throw always re-raises)
                request = rounds.send(raw)
        except StopIteration:
            pass
        finally:
            self._warn_zero_priors(run)
        return self._result(run.tree, run.meter, rng, run.stop_reason)

    def search_many(
        self, roots: Sequence[State | Tree], budget: Budget, *, rng: np.random.Generator
    ) -> list[SearchResult]:
        """Run one search per root in lock-step, evaluating the leaves of all trees together.

        Each round gathers every live tree's leaves (``leaves_per_round`` each, with virtual
        loss) and makes **one** ``evaluator.evaluate`` call for all of them: the batching that
        self-play across games needs (design.md section 4). Every search gets its own copy of
        ``budget`` and stops on its own; the rest go on. Each root may be a state or a tree to
        continue (tree reuse). Results come back in the order of ``roots``.

        Searches guided by a policy and verifier make their calls per tree, so they run one
        after the other, each to its end; each one's ``wall_time`` clock starts when it does.
        """
        rng = check_rng(rng)
        if isinstance(roots, (State, Tree)) or not isinstance(roots, Sequence):
            raise TypeError(
                f"roots must be a sequence of states or trees, got {type(roots).__name__}"
            )
        if not roots:
            raise ValueError("search_many needs at least one root")
        runs = [self._start(root, budget, rng) for root in roots]
        ids = {id(run.tree) for run in runs}
        if len(ids) != len(runs):
            raise ValueError("search_many got the same tree twice; pass distinct trees")
        rounds = [self._rounds(run, rng) for run in runs]
        requests: dict[int, _Request] = {}
        try:
            for i, gen in enumerate(rounds):
                # The clock of each search starts with it: a search that never yields (policy
                # and verifier) runs to its end here, and the next one must not find its
                # wall time already spent.
                runs[i].meter = BudgetMeter(budget)
                self._advance(i, gen, None, runs, requests)
            while requests:
                order = sorted(requests)
                states = [state for i in order for state in requests[i][0]]
                try:
                    raw = self.evaluator.evaluate(states, rng=rng)  # type: ignore[union-attr]
                except Exception as exc:
                    nodes = {i: requests[i][1][:4] for i in order[:4]}
                    where = self._describe_call(
                        [], f"{len(states)} leaves of {len(order)} trees; tree: nodes {nodes}"
                    )
                    note_user_error(exc, where, states)
                    raise
                check_batch(raw, len(states), what="evaluations", source=self.evaluator)
                offset = 0
                for i in order:
                    n = len(requests.pop(i)[0])
                    self._advance(i, rounds[i], list(raw[offset : offset + n]), runs, requests)
                    offset += n
        except BaseException:
            # Every search waiting on an evaluation takes its round's virtual loss back.
            for i in requests:
                with contextlib.suppress(_Abandoned):
                    rounds[i].throw(_Abandoned())
            raise
        finally:
            for run in runs:
                self._warn_zero_priors(run)
        return [self._result(run.tree, run.meter, rng, run.stop_reason) for run in runs]

    def _advance(
        self,
        index: int,
        gen: _Rounds,
        raw: list[object] | None,
        runs: list[_Run],
        requests: dict[int, _Request],
    ) -> None:
        """Resume one search's rounds with its evaluations; record its next request, if any."""
        try:
            request = next(gen) if raw is None else gen.send(raw)
        except StopIteration:
            return
        requests[index] = request

    def _rounds(self, run: _Run, rng: np.random.Generator) -> _Rounds:
        """The search loop for this configuration: the fused loop for the common case."""
        fused = (
            self.evaluator is not None
            and self.leaves_per_round == 1
            and run.cache is None
            and run.meter.only_simulations
        )
        return self._run_plain(run, rng) if fused else self._run_general(run, rng)

    def _describe_call(self, nodes: list[int], detail: str | None = None) -> str:
        """How an error note names an evaluator call."""
        what = detail if detail is not None else f"tree nodes {nodes[:8]}"
        return f"{type(self.evaluator).__name__}.evaluate ({what})"

    def _start(self, root: State | Tree, budget: Budget, rng: np.random.Generator) -> _Run:
        """Validate a root and budget; the tree, meter and root noise of one search."""
        meter = BudgetMeter(budget)
        if isinstance(root, Tree):
            tree = root
            if tree.states[Tree.ROOT] is None:
                raise ValueError("cannot continue a tree without a root state (loaded from JSON?)")
            if int(tree.virtual_loss[: tree.num_nodes].sum()) != 0:
                raise ValueError("tree has leftover virtual loss; was a search interrupted?")
        else:
            check_root(root)
            tree = Tree(root, max_nodes=self.max_nodes)
        if tree.terminal[Tree.ROOT]:
            raise ValueError("cannot search from a terminal state")
        if self.decisive_moves and not callable(
            getattr(tree.state(Tree.ROOT), "forced_actions", None)
        ):
            raise TypeError(
                f"decisive_moves=True needs states with a forced_actions() method; "
                f"{type(tree.state(Tree.ROOT)).__name__} has none"
            )
        self._check_budget_binds(budget)
        cache: dict[object, _Evaluated] | None = {} if self.transpositions else None
        return _Run(tree, meter, self._noised_root_priors(tree, rng), cache)

    def _warn_zero_priors(self, run: _Run) -> None:
        if run.zero_priors:
            _log.warning(
                "evaluator gave every legal action prior 0 at %d tree node(s) (first: node "
                "%d); used uniform priors there (a network that masks out all legal moves?)",
                len(run.zero_priors),
                run.zero_priors[0],
            )

    def _check_budget_binds(self, budget: Budget) -> None:
        """Refuse a budget whose only limits this search never spends (it would never stop)."""
        spent = ["simulations", "expansions", "policy_calls", "wall_time"]
        if self.policy is not None:
            spent += ["tokens", "verifier_calls"]
        if all(getattr(budget, name) is None for name in spent):
            raise ValueError(
                f"this MCTS never spends the limits of {budget}; give it one of {spent} "
                "(an evaluator search generates no tokens and calls no verifier on live leaves)"
            )

    def _run_general(self, run: _Run, rng: np.random.Generator) -> _Rounds:
        """Rounds of gather (with virtual loss), one batched evaluation, expansion and backup,
        for every configuration; sets ``run.stop_reason``.

        A generator: each evaluator call is yielded as ``(states, tree nodes)`` and the
        evaluations are sent back, so that :meth:`search_many` can batch many trees' leaves
        into one call. A policy/verifier search makes its calls itself and never yields.
        """
        tree, meter, cache, zero_priors = run.tree, run.meter, run.cache, run.zero_priors
        root_priors = run.root_priors
        budget = meter.budget
        stop_reason = "exhausted"
        # Without a simulation or time limit only the limits below can end the search.
        open_ended = budget.simulations is None and budget.wall_time is None
        counted = [
            n
            for n in ("expansions", "policy_calls", "tokens", "verifier_calls")
            if getattr(budget, n) is not None
        ]
        idle_rounds = 0
        while True:
            if self.solver and not math.isnan(tree.proven[Tree.ROOT]):
                stop_reason = "solved"
                break
            if not meter.can(simulations=1):
                stop_reason = meter.stop_reason or "exhausted"
                break
            pending = self._gather(tree, meter, root_priors)
            if not pending:
                stop_reason = meter.stop_reason or "exhausted"
                break
            vl = self.virtual_loss if self.leaves_per_round > 1 else 0
            spent_before = [meter.used(n) for n in counted]
            try:
                full = yield from self._evaluate_and_expand(
                    tree, pending, meter, rng, cache, zero_priors
                )
            except BaseException as exc:
                # The round is abandoned: nothing was backed up, so take its virtual loss back
                # and leave the tree usable (a caller may retry after a callback error).
                for item in pending:
                    apply_virtual_loss(tree, item.path, -vl)
                if isinstance(exc, _OutOfBudget):
                    stop_reason = meter.stop_reason or "tokens"
                    break
                raise
            for item in pending:
                assert item.value is not None  # filled by _evaluate_and_expand
                backup_path(tree, item.path, item.value, virtual_loss=vl)
                if self.solver:
                    self._propagate_proof(tree, item.path)
            meter.charge(simulations=len(pending))
            if open_ended:
                spent = [meter.used(n) for n in counted]
                idle_rounds = 0 if spent != spent_before else idle_rounds + 1
                if idle_rounds > _MAX_IDLE_ROUNDS:
                    # Rounds no longer spend any limit that is set (a finite tree explored to
                    # its terminal leaves, or a policy that spends no tokens): it would never end.
                    stop_reason = "exhausted"
                    break
            if root_priors is None and self.dirichlet_alpha is not None:
                root_priors = self._noised_root_priors(tree, rng)
            if full:
                stop_reason = "max_nodes"
                break
        run.stop_reason = stop_reason

    def _run_plain(self, run: _Run, rng: np.random.Generator) -> _Rounds:
        """The common case in one loop: an evaluator, one leaf per round, and a budget of
        simulations only. Same selection, checks and backup as the general loop, without its
        per-round bookkeeping; tests/search/test_mcts_paths.py runs searches through both and
        requires identical trees. A generator like :meth:`_run_general`; sets
        ``run.stop_reason``.
        """
        tree, meter, root_priors, zero_priors = (
            run.tree,
            run.meter,
            run.root_priors,
            run.zero_priors,
        )
        assert self.evaluator is not None and meter.budget.simulations is not None
        name = type(self.evaluator).__name__
        only = self._only
        best_child = self._best_child
        limit = meter.budget.simulations
        # Each simulation expands at most one node, with about as many children as the root
        # has: reserving that at once spares the tree its repeated doublings (a tenth of a
        # free-evaluator search on 15x15 Gomoku). Capped: a solved root stops early.
        root_state = tree.states[Tree.ROOT]
        assert root_state is not None  # search() refuses trees without one
        width = int(tree.num_children[Tree.ROOT]) or len(root_state.legal_actions())
        tree.reserve(min(limit * width, _RESERVE_CAP))
        states, first_child, num_children = tree.states, tree.first_child, tree.num_children
        terminal, proven = tree.terminal, tree.proven
        sims, calls, expansions = 0, 0, 0
        lo, hi = self.value_bounds
        # The last read-only prior array an evaluator returned, and its normalised copy.
        checked_raw: np.ndarray | None = None
        checked = np.empty(0)
        stop = "simulations"
        try:
            while True:
                if self.solver and proven[Tree.ROOT] == proven[Tree.ROOT]:  # not NaN
                    stop = "solved"
                    break
                if sims >= limit:
                    break
                node, path = Tree.ROOT, [Tree.ROOT]
                while (start := int(first_child[node])) >= 0 and not terminal[node]:
                    end = start + int(num_children[node])
                    priors = root_priors if node == Tree.ROOT else None
                    node = start + best_child(tree, node, start, end, priors)
                    if states[node] is None:
                        tree.state(node)
                    path.append(node)
                full = False
                if terminal[node]:
                    value = self._known_value(tree, node)
                    if value is None:  # scored by the verifier
                        scored = _without_requests(
                            self._evaluate(tree, [node], meter, rng, zero_priors)
                        )
                        value = scored[0][1]
                        tree.score[node] = value
                else:
                    state = states[node]
                    assert state is not None  # created during the descent
                    raw = yield [state], [node]
                    calls += 1
                    check_batch(raw, 1, what="evaluations", source=self.evaluator)
                    actions = state.legal_actions()
                    if not actions:
                        raise ValueError(
                            f"empty expansion: no legal actions at non-terminal node {node} "
                            f"({state!r}); {_EMPTY_HINT}"
                        )
                    ev: Any = raw[0]
                    if (
                        isinstance(ev, Evaluation)
                        and ev.priors is checked_raw
                        and len(checked) == len(actions)
                    ):
                        # The evaluator handed back the same read-only array as last time
                        # (uniform priors): it is already validated and normalised.
                        priors, value = checked, check_value(ev.value, source=self.evaluator)
                    else:
                        priors, value = check_evaluation(ev, len(actions), source=self.evaluator)
                        total = priors.sum()
                        priors = (
                            priors / total
                            if total > 0
                            else _uniform_for(len(actions), node, zero_priors)
                        )
                        raw_priors = ev.priors
                        if (
                            isinstance(raw_priors, np.ndarray)
                            and not raw_priors.flags.writeable
                            and raw_priors.base is None  # owns its data: not a view of a buffer
                        ):
                            checked_raw, checked = raw_priors, priors
                    if not lo <= value <= hi:
                        self._bounded(value, node, name)  # raises, naming the bounds
                    if only is not None:
                        actions, priors = _forced_only(state, actions, priors, only)
                    try:
                        tree.add_children(node, actions, priors)
                        expansions += 1
                    except TreeFull:
                        full = True
                    # Growing the tree may have reallocated its arrays.
                    first_child, num_children = tree.first_child, tree.num_children
                    terminal, proven = tree.terminal, tree.proven
                backup_path(tree, path, value)
                if self.solver:
                    self._propagate_proof(tree, path)
                sims += 1
                if root_priors is None and self.dirichlet_alpha is not None:
                    root_priors = self._noised_root_priors(tree, rng)
                if full:
                    stop = "max_nodes"
                    break
        finally:
            meter.charge(simulations=sims, policy_calls=calls, expansions=expansions)
            run.stop_reason = stop

    # ------------------------------------------------------------------ phases
    def _gather(
        self, tree: Tree, meter: BudgetMeter, root_priors: np.ndarray | None
    ) -> list[_Pending]:
        """Select up to ``leaves_per_round`` leaves, adding virtual loss along each path."""
        pending: list[_Pending] = []
        new_leaves: set[int] = set()
        cost = dict.fromkeys(
            ("simulations", "policy_calls", "expansions", "verifier_calls", "tokens"), 0
        )
        try:
            self._gather_into(tree, meter, root_priors, pending, new_leaves, cost)
        except BaseException:
            if self.leaves_per_round > 1:  # an error while selecting: undo this round
                for item in pending:
                    apply_virtual_loss(tree, item.path, -self.virtual_loss)
            raise
        return pending

    def _gather_into(
        self,
        tree: Tree,
        meter: BudgetMeter,
        root_priors: np.ndarray | None,
        pending: list[_Pending],
        new_leaves: set[int],
        cost: dict[str, int],
    ) -> None:
        for _ in range(self.leaves_per_round):
            path = self._select(tree, root_priors)
            leaf = path[-1]
            if leaf in new_leaves:
                # Visiting an unexpanded leaf twice would count a visit that no child receives;
                # end the round instead (virtual loss usually steers around this).
                break
            value = self._known_value(tree, leaf)
            if self.leaves_per_round == 1 and meter.only_simulations:
                # search() already checked that one more simulation fits.
                pending.append(_Pending(path, value))
                return
            step = {"simulations": 1}
            if value is None:
                if tree.terminal[leaf]:
                    step["verifier_calls"] = 1
                else:
                    step.update(policy_calls=1, expansions=1)
                    if self.policy is not None:
                        # A policy leaf needs at least one token left to propose anything.
                        step.update(verifier_calls=1, tokens=1)
            trial = {k: cost[k] + step.get(k, 0) for k in cost}
            if not meter.can(**trial):
                return
            cost.update(trial)
            if value is None:
                new_leaves.add(leaf)
            pending.append(_Pending(path, value))
            if self.leaves_per_round > 1:
                apply_virtual_loss(tree, path, self.virtual_loss)

    def _select(self, tree: Tree, root_priors: np.ndarray | None) -> list[int]:
        node = Tree.ROOT
        path = [node]
        first_child = tree.first_child
        while first_child[node] >= 0 and not tree.terminal[node]:
            start = int(first_child[node])
            end = start + int(tree.num_children[node])
            priors = root_priors if node == Tree.ROOT and root_priors is not None else None
            node = start + self._best_child(tree, node, start, end, priors)
            if tree.states[node] is None:
                tree.state(node)
            path.append(node)
        return path

    def _best_child(
        self, tree: Tree, node: int, start: int, end: int, priors: np.ndarray | None
    ) -> int:
        fpu = self.fpu
        if (
            end - start <= _NARROW
            and fpu != "parent"
            and not (self.solver and tree.proven_children[node])
        ):
            return self._best_child_narrow(tree, start, end, int(tree.visits[node]), priors, fpu)
        if fpu == "parent":
            n = tree.visits[node]
            own = tree.value_sum[node] / n if n > 0 else 0.0
            # The parent's mean is stored for *its* parent's player; children are scored for
            # the player at ``node``, so convert through the one sign rule.
            fpu = own if node == Tree.ROOT else value_for_parent(tree, node, own)
        parent_visits = int(tree.visits[node])
        if self.solver and tree.proven_children[node]:
            proven = tree.proven[start:end]
            wins = np.flatnonzero(proven >= self.value_bounds[1])
            if len(wins):
                return int(wins[0])
            # A proven child's value is exact: spend simulations on the unproven ones.
            # (All children proven would have proven this node, which is never entered.)
            skip = ~np.isnan(proven)
        else:
            skip = None
        if end - start <= _NARROW and skip is None:
            return self._best_child_narrow(tree, start, end, parent_visits, priors, fpu)
        visits = tree.visits[start:end]
        value_sum = tree.value_sum[start:end]
        if self.selection == "uct":
            if fpu == math.inf and skip is None:
                # Unvisited children score +inf, so the argmax is the first of them.
                first = int(visits.argmin())
                if visits[first] == 0:
                    return first
            scores = uct_scores(visits, value_sum, parent_visits, c=self.c, fpu=fpu)
        else:
            p = tree.prior[start:end] if priors is None else priors
            # puct_scores() in fewer numpy calls (half the time on 225 children), equal to the
            # bit: W / max(N, 1) is Q for visited children and 0 for unvisited ones, whose
            # value sums the tree keeps at 0; the sums and products are the same, commuted.
            scores = visits + 1.0
            np.divide(math.sqrt(parent_visits), scores, out=scores)
            scores *= self._c(parent_visits) * p
            q = value_sum / np.maximum(visits, 1)
            if fpu != 0.0:
                np.copyto(q, fpu, where=visits == 0)
            scores += q
        if skip is not None and not skip.all():
            scores = np.where(skip, -np.inf, scores)
        return int(scores.argmax())  # the method: np.argmax's dispatch costs ~1 us here

    def _best_child_narrow(
        self,
        tree: Tree,
        start: int,
        end: int,
        parent_visits: int,
        priors: np.ndarray | None,
        fpu: float,
    ) -> int:
        """Same rule as the vectorised path, in plain Python: faster below ~32 children."""
        visits = tree.visits[start:end].tolist()
        value_sum = tree.value_sum[start:end].tolist()
        best_index, best, i = 0, -math.inf, 0
        if self.selection == "uct":
            if fpu == math.inf and 0 in visits:
                return visits.index(0)
            scale = self.c * math.sqrt(math.log(max(parent_visits, 1)))
            sqrt = math.sqrt
            for n, w in zip(visits, value_sum, strict=True):
                score = (w + scale * sqrt(n)) / n if n > 0 else fpu  # w/n + c sqrt(ln N / n)
                if score > best:
                    best, best_index = score, i
                i += 1
            return best_index
        p = (tree.prior[start:end] if priors is None else priors).tolist()
        scale = self._c(parent_visits) * math.sqrt(parent_visits)
        for n, w, prior in zip(visits, value_sum, p, strict=True):
            score = (w / n if n > 0 else fpu) + scale * prior / (1.0 + n)
            if score > best:
                best, best_index = score, i
            i += 1
        return best_index

    def _c(self, parent_visits: int) -> float:
        if self.c_base is None:
            return self.c
        return alphazero_c(parent_visits, c_base=self.c_base, c_init=self.c)

    def _known_value(self, tree: Tree, leaf: int) -> float | None:
        """The exact value of a terminal leaf, for the player to move there."""
        if not tree.terminal[leaf]:
            return None
        value = tree.state(leaf).terminal_value()
        if value is None and not math.isnan(tree.score[leaf]):
            return float(tree.score[leaf])  # scored by the verifier on an earlier visit
        if value is None:
            if self.verify is None:
                raise ValueError(
                    f"terminal state at node {leaf} has no terminal_value() and MCTS has no "
                    "verifier to score it"
                )
            return None
        value = float(value)
        lo, hi = self.value_bounds
        if not lo <= value <= hi:  # also rejects NaN
            raise ValueError(
                f"terminal_value() of node {leaf} is {value}, outside value_bounds="
                f"{self.value_bounds}; pass MCTS(value_bounds=...) covering every terminal value"
            )
        return value

    def _evaluate_and_expand(
        self,
        tree: Tree,
        pending: list[_Pending],
        meter: BudgetMeter,
        rng: np.random.Generator,
        cache: dict[object, _Evaluated] | None,
        zero_priors: list[int],
    ) -> Generator[_Request, Sequence[object], bool]:
        """Fill in every pending value; expand new non-terminal leaves. True if the tree is full."""
        todo: dict[int, list[int]] = {}
        for i, item in enumerate(pending):
            if item.value is None:
                todo.setdefault(item.path[-1], []).append(i)
        results: dict[int, _Evaluated] = {}
        to_call = []
        for leaf in todo:
            hit = None if cache is None else cache.get(tree.state(leaf).key)
            if hit is not None:
                results[leaf] = hit
            else:
                to_call.append(leaf)
        if to_call:
            fresh = yield from self._evaluate(tree, to_call, meter, rng, zero_priors)
            for leaf, res in zip(to_call, fresh, strict=True):
                results[leaf] = res
                if cache is not None and res[0] is not None:
                    cache[tree.state(leaf).key] = res
        # Check every leaf's children before expanding any, so an error leaves the tree as it was.
        for leaf in todo:
            children = results[leaf][0]
            if children is None:
                continue
            if not len(children[0] if isinstance(children, tuple) else children):
                raise ValueError(
                    f"empty expansion: no children proposed for non-terminal node {leaf} "
                    f"({tree.state(leaf)!r}); {_EMPTY_HINT}"
                )
            if not isinstance(children, tuple):
                check_legal(self.policy, tree, leaf, children)
        # Only now change the tree: keep the verifier's scores of freshly scored leaves.
        for leaf in to_call:
            if self.policy is not None or tree.terminal[leaf]:
                tree.score[leaf] = results[leaf][1]
        full = False
        for leaf, indices in todo.items():
            children, value = results[leaf]
            if children is not None and not full:
                try:
                    if isinstance(children, tuple):
                        tree.add_children(leaf, *children)
                    else:
                        expand_node(tree, leaf, children, dedupe=True)
                    meter.charge(expansions=1)
                except TreeFull:
                    full = True
            for i in indices:
                pending[i] = _Pending(pending[i].path, value)
        return full

    def _bounded(self, value: float, node: int, what: str) -> float:
        """A leaf value must lie within ``value_bounds``, so every Q does too."""
        lo, hi = self.value_bounds
        if not lo <= value <= hi:
            raise ValueError(
                f"{what} gave value {value} for tree node {node}, outside "
                f"value_bounds={self.value_bounds}; pass MCTS(value_bounds=...) covering it"
            )
        return value

    def _evaluate(
        self,
        tree: Tree,
        leaves: list[int],
        meter: BudgetMeter,
        rng: np.random.Generator,
        zero_priors: list[int],
    ) -> Generator[_Request, Sequence[object], list[_Evaluated]]:
        """(children or None for terminal leaves, value for the player to move) per leaf.

        Children are ``(legal actions, normalised priors)`` from an evaluator, or the policy's
        Candidates.
        """
        states = [tree.state(leaf) for leaf in leaves]
        live = [i for i, leaf in enumerate(leaves) if not tree.terminal[leaf]]
        live_states = [states[i] for i in live]
        out: list[_Evaluated] = [(None, 0.0)] * len(leaves)
        if self.evaluator is not None:
            raw: Sequence[object] = []
            if live_states:
                nodes = [leaves[i] for i in live]
                raw = yield live_states, nodes
            meter.charge(policy_calls=len(live_states))
            check_batch(raw, len(live_states), what="evaluations", source=self.evaluator)
            for i, state, ev in zip(live, live_states, raw, strict=True):
                actions = state.legal_actions()
                priors, value = check_evaluation(ev, len(actions), index=i, source=self.evaluator)
                total = priors.sum()
                if total > 0:
                    priors = priors / total
                elif len(actions):
                    priors = _uniform_for(len(actions), leaves[i], zero_priors)
                if self._only is not None:
                    actions, priors = _forced_only(state, actions, priors, self._only)
                out[i] = (
                    (actions, priors),
                    self._bounded(value, leaves[i], type(self.evaluator).__name__),
                )
            dead = [i for i, leaf in enumerate(leaves) if tree.terminal[leaf]]
        else:
            assert self.policy is not None  # guaranteed by __init__
            proposals = propose(self.policy, live_states, meter, rng, require_candidates=True)
            if proposals is None:  # the token allowance ran out inside the call
                raise _OutOfBudget
            for i, cands in zip(live, proposals, strict=True):
                out[i] = (cands, 0.0)
            dead = list(range(len(leaves)))  # every leaf gets its value from the verifier
        if dead:
            assert self.verify is not None  # terminal-without-value checked in _known_value
            scores = score_states(self.verify, [states[i] for i in dead], meter)
            if scores is None:
                raise RuntimeError("budget refused a verifier call that was checked beforehand")
            for i, score in zip(dead, scores, strict=True):
                out[i] = (out[i][0], self._bounded(score.value, leaves[i], "the verifier"))
        return out

    def _propagate_proof(self, tree: Tree, path: list[int]) -> None:
        """MCTS-Solver: mark the leaf proven if terminal, then prove ancestors while possible."""
        leaf = path[-1]
        if not tree.terminal[leaf] or not math.isnan(tree.proven[leaf]):
            return
        value = tree.state(leaf).terminal_value()
        if value is None:
            return
        hi = self.value_bounds[1]
        tree.proven[leaf] = value if leaf == Tree.ROOT else value_for_parent(tree, leaf, value)
        if leaf != Tree.ROOT:
            tree.proven_children[path[-2]] += 1
        for node in reversed(path[:-1]):
            if not math.isnan(tree.proven[node]):
                return  # proven by an earlier path of this round; its parent already counts it
            kids = tree.children(node)
            proven = tree.proven[kids.start : kids.stop]
            known = ~np.isnan(proven)
            if (proven[known] >= hi).any():
                own = hi
            elif known.all():
                own = float(proven.max())
            else:
                return
            # ``own`` is for the player to move at ``node``; store it in its parent's frame.
            if node == Tree.ROOT:
                tree.proven[node] = own
            else:
                tree.proven[node] = value_for_parent(tree, node, own)
                tree.proven_children[tree.parent[node]] += 1

    def _noised_root_priors(self, tree: Tree, rng: np.random.Generator) -> np.ndarray | None:
        if self.dirichlet_alpha is None or not tree.is_expanded(Tree.ROOT):
            return None
        kids = tree.children(Tree.ROOT)
        priors = tree.prior[kids.start : kids.stop]
        noise = rng.dirichlet(np.full(len(kids), self.dirichlet_alpha))
        eps = self.dirichlet_epsilon
        return (1.0 - eps) * priors + eps * noise

    # ------------------------------------------------------------------ result
    def _result(
        self, tree: Tree, meter: BudgetMeter, rng: np.random.Generator, stop_reason: str
    ) -> SearchResult:
        actions, dist = root_distribution(tree)
        kids = tree.children(Tree.ROOT)
        action: Action | None = None
        best: int | None = None
        if len(kids):
            best = kids.start + self._final_choice(tree, kids, rng)
            action = tree.actions[best]
        root_visits = tree.visits[Tree.ROOT]
        root_value = float(tree.value_sum[Tree.ROOT] / root_visits) if root_visits else math.nan
        if self.solver and not math.isnan(tree.proven[Tree.ROOT]):
            root_value = float(tree.proven[Tree.ROOT]) + 0.0  # no negative zero
        traces = () if best is None else (trace_from_path(tree, self._follow(tree, best, rng)),)
        result = SearchResult(
            action=action,
            actions=actions,
            visit_distribution=dist,
            root_value=root_value,
            tree=tree,
            usage=meter.usage(),
            traces=traces,
            stop_reason=stop_reason,
        )
        log_stop("MCTS", stop_reason, result.usage, tree.num_nodes)
        return result

    def _final_choice(
        self, tree: Tree, kids: range, rng: np.random.Generator, *, sample: bool = True
    ) -> int:
        start, stop = kids.start, kids.stop
        visits = tree.visits[start:stop].astype(np.float64)
        q = np.where(visits > 0, tree.value_sum[start:stop] / np.maximum(visits, 1.0), -np.inf)
        proven = tree.proven[start:stop] if self.solver else np.full(len(kids), np.nan)
        known = ~np.isnan(proven)
        allowed = np.arange(len(kids))
        if known.any():
            wins = np.flatnonzero(proven >= self.value_bounds[1])
            if len(wins):
                return int(wins[0])
            # Proven children stop collecting visits, so rank them by their exact value.
            q = np.where(known, proven, q)
            losing = known & (proven <= self.value_bounds[0])
            if not losing.all():  # a proven loss is played only when every move is one
                allowed = np.flatnonzero(~losing)
        visits, q, known = visits[allowed], q[allowed], known[allowed]
        if self.final == "q" and np.isfinite(q).any():
            return int(allowed[np.argmax(q)])
        if sample and self.final == "sample" and self.temperature > 0 and visits.sum() > 0:
            pi = visit_policy(visits, self.temperature)
            return int(allowed[rng.choice(len(pi), p=pi)])
        best = int(np.argmax(visits))
        if known.any():
            # The most visited unproven move is kept unless a proven move is worth more.
            safe = np.flatnonzero(known)
            if q[safe].max() > q[best]:
                return int(allowed[safe[np.argmax(q[safe])]])
        tied = np.flatnonzero(visits == visits[best])
        return int(allowed[tied[np.argmax(q[tied])]])

    def _follow(self, tree: Tree, node: int, rng: np.random.Generator) -> int:
        """Descend from ``node`` by the final-move rule (no sampling) to an explored leaf."""
        while (kids := tree.children(node)) and tree.visits[kids.start : kids.stop].max() > 0:
            node = kids.start + self._final_choice(tree, kids, rng, sample=False)
        return node


def _forced_actions(state: State) -> Sequence[Action] | None:
    return state.forced_actions()  # type: ignore[attr-defined,no-any-return]


def _children_filter(
    decisive: bool, move_filter: Callable[[State], Sequence[Action] | None] | None
) -> Callable[[State], Sequence[Action] | None] | None:
    """The one function naming a node's only children: ``forced_actions()``, the move filter,
    or the first of them that names some."""
    if move_filter is None:
        return _forced_actions if decisive else None
    if not decisive:
        return move_filter
    return lambda state: _forced_actions(state) or move_filter(state)


def _forced_only(
    state: State,
    actions: Sequence[Action],
    priors: np.ndarray,
    named: Callable[[State], Sequence[Action] | None] = _forced_actions,
) -> tuple[Sequence[Action], np.ndarray]:
    """The children of ``state`` restricted to the actions ``named`` (by default its
    ``forced_actions()``) gives, if it names any."""
    forced = named(state)
    if not forced:
        return actions, priors
    index = {action: i for i, action in enumerate(actions)}
    try:
        keep = [index[action] for action in forced]
    except KeyError as exc:
        what = "forced_actions()" if named is _forced_actions else "move_filter"
        raise ValueError(
            f"{what} of {state!r} named {exc.args[0]!r}, which is not a legal action"
        ) from None
    kept = priors[keep]
    total = kept.sum()
    kept = kept / total if total > 0 else np.full(len(keep), 1.0 / len(keep))
    return tuple(forced), kept


def _without_requests(gen: Generator[Any, Any, _T]) -> _T:
    """Run a phase that cannot need the evaluator (terminal leaves only) to its result."""
    try:
        next(gen)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    raise RuntimeError("a terminal-only evaluation asked for the evaluator")


def _uniform_for(num_actions: int, node: int, zero_priors: list[int]) -> np.ndarray:
    """Uniform priors for a node whose evaluator gave every legal action prior 0; the node is
    noted so the search can warn once at its end."""
    zero_priors.append(node)
    return np.full(num_actions, 1.0 / num_actions)


def reuse_subtree(tree: Tree, action: Action) -> Tree:
    """The subtree under the root's child ``action``, as a new tree to continue searching.

    The new root's statistics are converted to its own player's frame (the sign rule).
    """
    for child in tree.children(Tree.ROOT):
        if tree.actions[child] == action:
            break
    else:
        raise ValueError(f"action {action!r} is not a child of the root")
    tree.state(child)
    sub = tree.subtree(child)
    sub.value_sum[Tree.ROOT] = value_for_parent(tree, child, float(tree.value_sum[child]))
    if not math.isnan(tree.proven[child]):
        sub.proven[Tree.ROOT] = value_for_parent(tree, child, float(tree.proven[child]))
    return sub


def _check_number(name: str, value: object, *, minimum: float, strict: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value) or value < minimum or (strict and value == minimum):
        op = ">" if strict else ">="
        raise ValueError(f"{name} must be finite and {op} {minimum}, got {value}")
