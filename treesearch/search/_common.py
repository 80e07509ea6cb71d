"""Helpers shared by the search algorithms.

* :class:`GuidedSearch`, the base of the verifier-guided searches (their shared options, checked
  once);
* argument checks (``check_*``) and :func:`start_search`, which validates ``search``'s
  arguments and creates the tree and the budget meter;
* budgeted, validated policy and verifier calls (:func:`propose`, :func:`score_states`);
* tree growth (:func:`expand_node`, :func:`expand_nodes`) and scoring with backup
  (:func:`score_nodes`);
* ranking (:func:`chooser_score`, :func:`root_score`), answer selection (:func:`best`,
  :func:`by_score`, :func:`vote`) and the result record (:func:`make_result`).

The verifier-guided searches (best-of-N, BFS, DFS, beam search, best-first, DVTS) stop early
through :class:`Stop`: :func:`start_unit`, :func:`check_unit`, :func:`require_room`,
:func:`require_scores`, :func:`expand_nodes`, :func:`propose_children`, :func:`score_nodes` and
:func:`expand_and_score` raise it, and ``search`` catches it and reports its ``reason`` as the
result's ``stop_reason``.

Scores and players: ``tree.score`` holds the verifier's score, which is for the player to move at
the scored state. Siblings and levels are ranked by :func:`chooser_score` (the score for the
player who chose the state, via :func:`~treesearch.backup.value_for_parent`) and final answers by
:func:`root_score` (the score for the root's player). In single-agent problems both are the
score itself.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Literal, TypeVar

import numpy as np

from ..backup import backup, value_for_parent, value_for_player
from ..budget import Budget, BudgetMeter, Usage
from ..interfaces import (
    Candidate,
    Policy,
    Score,
    State,
    Verifier,
    VerifierFn,
    as_verifier,
    describe_not_a_state,
)
from ..results import SearchResult, root_distribution, trace_from_path
from ..tree import Tree

_log = logging.getLogger("treesearch.search")

__all__ = [
    "Aggregation",
    "AnswerFn",
    "GuidedSearch",
    "Stop",
    "aggregate",
    "best",
    "by_score",
    "check_aggregation",
    "check_answer_fn",
    "check_beams",
    "check_choice",
    "check_int",
    "check_legal",
    "check_max_nodes",
    "check_policy_role",
    "check_rng",
    "check_roles",
    "check_root",
    "check_unit",
    "chooser_score",
    "expand_and_score",
    "expand_node",
    "expand_nodes",
    "log_stop",
    "make_result",
    "normalised_priors",
    "propose",
    "propose_children",
    "require_room",
    "require_scores",
    "resolve_verifier",
    "root_score",
    "score_nodes",
    "score_states",
    "start_search",
    "start_unit",
    "top_by_prior",
    "unique",
    "user_call",
    "vote",
]

Aggregation = Literal["last", "min", "prod", "mean"]
AGGREGATIONS: tuple[str, ...] = ("last", "min", "prod", "mean")
AnswerFn = Callable[[State], "str | None"]
Verify = Callable[[Sequence[State]], list[Score]]
_T = TypeVar("_T")


class Stop(Exception):
    """Ends a verifier-guided search early; ``reason`` is the result's ``stop_reason``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _budget_stop(meter: BudgetMeter) -> Stop:
    return Stop(meter.stop_reason or "exhausted")


# ---------------------------------------------------------------------- argument checks


def check_rng(rng: object) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            f"rng must be a numpy.random.Generator (np.random.default_rng(seed)), got "
            f"{type(rng).__name__}"
        )
    return rng


def check_int(name: str, value: object, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_choice(name: str, value: object, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return str(value)


def check_aggregation(how: str) -> str:
    return check_choice("aggregation", how, AGGREGATIONS)


def check_max_nodes(max_nodes: object) -> int | None:
    return None if max_nodes is None else check_int("max_nodes", max_nodes)


def check_answer_fn(answer_fn: object) -> AnswerFn | None:
    if answer_fn is not None and not callable(answer_fn):
        raise TypeError(
            f"answer_fn must be a callable f(state) -> str | None, got {type(answer_fn).__name__}"
        )
    return answer_fn  # type: ignore[return-value]


def resolve_verifier(verifier: Verifier | VerifierFn | None) -> Verify | None:
    return None if verifier is None else as_verifier(verifier)


def check_policy_role(policy: object) -> Policy:
    """``policy`` itself, once it is checked to have ``propose`` (``TypeError`` otherwise)."""
    if not isinstance(policy, Policy):
        raise TypeError(
            f"policy must have .propose(states, rng=..., max_tokens=...), got "
            f"{type(policy).__name__}"
        )
    return policy


def check_roles(policy: object, verifier: Verifier | VerifierFn | None) -> tuple[Policy, Verify]:
    """The policy and the verifier (as a function) of a verifier-guided search."""
    policy = check_policy_role(policy)
    if verifier is None:
        raise TypeError("a verifier is required: a .score(states) object or f(states) -> scores")
    return policy, as_verifier(verifier)


def check_beams(n: object, beam_width: object) -> tuple[int, int]:
    """``(n, beam_width)`` of beam search and DVTS: positive ints, ``n`` a multiple of the width."""
    n = check_int("n", n)
    beam_width = check_int("beam_width", beam_width)
    if n % beam_width:
        raise ValueError(f"n ({n}) must be a multiple of beam_width ({beam_width})")
    return n, beam_width


class GuidedSearch:
    """The base of the verifier-guided searches (BFS, DFS, best-first, best-of-N, beam search,
    DVTS): the roles and options they all take, checked once.

    Args:
        policy: proposes children (anything with ``propose``; ``TypeError`` otherwise).
        verifier: scores states: a ``.score(states)`` object or a callable ``f(states)``
            (required; ``TypeError`` otherwise).
        aggregation: how a process verifier's per-step scores become one number: ``"last"``,
            ``"min"``, ``"prod"`` or ``"mean"`` (a Score without step scores uses its value).
        max_nodes: node cap for the tree; the search stops with ``"max_nodes"`` at it.
        answer_fn: canonical answer string of a state, for ``answer_text`` and the traces; the
            searches that vote vote on it (``None``: they vote on ``state.key`` and leave
            ``answer_text`` empty).
    """

    policy: Policy
    verify: Verify
    aggregation: str
    max_nodes: int | None
    answer_fn: AnswerFn | None

    def __init__(
        self,
        policy: Policy,
        verifier: Verifier | VerifierFn,
        *,
        aggregation: str = "last",
        max_nodes: int | None = None,
        answer_fn: AnswerFn | None = None,
    ) -> None:
        self.policy, self.verify = check_roles(policy, verifier)
        self.aggregation = check_aggregation(aggregation)
        self.max_nodes = check_max_nodes(max_nodes)
        self.answer_fn = check_answer_fn(answer_fn)


def check_root(root: object) -> None:
    """Raise ``TypeError`` naming what is wrong unless ``root`` is a State instance."""
    # A class has every member a State has, so the Protocol check alone would accept it.
    if isinstance(root, type) or not isinstance(root, State):
        raise TypeError(f"root must be a treesearch State: {describe_not_a_state(root)}")


def start_search(
    root: State, budget: Budget, rng: object, max_nodes: int | None
) -> tuple[Tree, BudgetMeter]:
    """Validate the arguments of ``search`` and create its tree and meter."""
    check_rng(rng)
    meter = BudgetMeter(budget)
    check_root(root)
    tree = Tree(root, max_nodes=max_nodes)
    if tree.terminal[Tree.ROOT]:
        raise ValueError(f"cannot search from a terminal state: {root!r}")
    return tree, meter


# ---------------------------------------------------------------------- policy and verifier


def note_user_error(exc: BaseException, what: str, states: Sequence[State]) -> None:
    """Add a note to an exception from user code naming the call and the states (3.11+)."""
    if hasattr(exc, "add_note"):
        first = repr(states[0]) if states else "-"
        if len(first) > 200:
            first = first[:200] + "..."
        exc.add_note(
            f"treesearch: raised in {what}, called with a list of {len(states)} state(s); "
            f"first state: {first}"
        )


@contextmanager
def user_call(what: str, states: Sequence[State]) -> Iterator[None]:
    """Let exceptions from user code through unchanged, with a note naming the call and states."""
    try:
        yield
    except Exception as exc:
        note_user_error(exc, what, states)
        raise


def propose(
    policy: Policy,
    states: Sequence[State],
    meter: BudgetMeter,
    rng: np.random.Generator,
    *,
    require_candidates: bool = False,
) -> list[list[Candidate]] | None:
    """Ask ``policy`` for candidates within budget; ``None`` when the budget refuses.

    Charges ``policy_calls`` (one per state) and ``tokens``; validates the output.

    With ``require_candidates`` every state must get at least one candidate. A policy that was
    given a token allowance may return none for a state because the allowance ran out: with a
    token budget set, that ends the search (``None``, with ``"tokens"``; the call's other
    candidates are dropped). Without one, an empty list is an error.
    """
    if not states:
        return []
    if not meter.can(policy_calls=len(states)):
        return None
    max_tokens = meter.remaining("tokens")
    if max_tokens is not None and max_tokens <= 0:
        meter.stop_reason = meter.stop_reason or "tokens"
        return None
    name = type(policy).__name__
    with user_call(f"{name}.propose", states):
        raw = policy.propose(states, rng=rng, max_tokens=max_tokens)
    if isinstance(raw, (str, bytes)) or not hasattr(raw, "__len__"):
        raise TypeError(f"{name}.propose must return one list of Candidates per state")
    if any(isinstance(item, Candidate) for item in raw):
        raise TypeError(
            f"{name}.propose must return one list of Candidates per state; it returned a flat "
            "list of Candidates (wrap it: one list for each state)"
        )
    if len(raw) != len(states):
        raise ValueError(f"{name}.propose returned {len(raw)} lists for {len(states)} states")
    out: list[list[Candidate]] = []
    tokens = 0
    for i, cands in enumerate(raw):
        if isinstance(cands, Candidate) or not hasattr(cands, "__iter__"):
            raise TypeError(
                f"{name}.propose must return one list of Candidates per state; item {i} is a "
                f"{type(cands).__name__} (a flat list of Candidates for a single state?)"
            )
        cands = list(cands)
        for c in cands:
            if not isinstance(c, Candidate):
                raise TypeError(
                    f"{name}.propose returned a {type(c).__name__} for state {i}; "
                    "expected treesearch.Candidate"
                )
            tokens += c.num_tokens
        out.append(cands)
    if max_tokens is not None and tokens > max_tokens:
        raise ValueError(
            f"{name}.propose generated {tokens} tokens, over the max_tokens={max_tokens} "
            "it was given"
        )
    meter.charge(policy_calls=len(states), tokens=tokens)
    if require_candidates:
        for state, cands in zip(states, out, strict=True):
            if not cands:
                if meter.budget.tokens is not None:
                    meter.stop_reason = meter.stop_reason or "tokens"
                    return None
                if state.legal_actions():
                    hint = "propose at least one of its legal actions"
                else:  # no moves listed: open-ended, or a game left in a wrong state
                    hint = (
                        "an open-ended state needs at least one proposed step; a game state "
                        "with no moves that is not terminal often means step() changed the state "
                        "it was called on (treesearch.testing.check_state finds that)"
                    )
                raise ValueError(
                    f"empty expansion: {name}.propose returned no candidates for the "
                    f"non-terminal state {state!r}; {hint}"
                )
    return out


def score_states(
    verify: Verify, states: Sequence[State], meter: BudgetMeter, *, reserved: bool = False
) -> list[Score] | None:
    """Score ``states`` within budget (one verifier call per state); ``None`` if refused.

    With ``reserved`` the caller has already made sure the scores fit (:func:`require_scores`),
    so the budget is not asked again (a unit of work started in time finishes).
    """
    if not states:
        return []
    if not reserved and not meter.can(verifier_calls=len(states)):
        return None
    with user_call("the verifier", states):
        scores = verify(states)
    meter.charge(verifier_calls=len(states))
    return scores


def aggregate(score: Score, how: str) -> float:
    """One number from a Score: its per-step scores aggregated, or its value when it has none."""
    steps = score.step_scores
    if not steps:
        return score.value
    if how == "last":
        return steps[-1]
    if how == "min":
        return min(steps)
    if how == "prod":
        return math.prod(steps)
    if how == "mean":
        return sum(steps) / len(steps)
    raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {how!r}")


# ---------------------------------------------------------------------- candidates and tree


def unique(items: Iterable[_T], key: Callable[[_T], Hashable]) -> list[_T]:
    """``items`` without those whose ``key`` repeats an earlier one, in order."""
    seen: set[Hashable] = set()
    out = []
    for item in items:
        k = key(item)
        if k not in seen:
            seen.add(k)
            out.append(item)
    return out


def _priors(candidates: Sequence[Candidate]) -> np.ndarray:
    return np.fromiter((c.prior for c in candidates), dtype=np.float64, count=len(candidates))


def normalised_priors(candidates: Sequence[Candidate]) -> np.ndarray:
    """The candidates' priors scaled to sum to one (uniform when they are all zero)."""
    priors = _priors(candidates)
    if not len(priors):
        return priors
    total = priors.sum()
    return priors / total if total > 0 else np.full(len(priors), 1.0 / len(priors))


def top_by_prior(candidates: Sequence[Candidate], m: int) -> list[Candidate]:
    """The ``m`` candidates with the highest prior (ties: earlier first), in their order."""
    if len(candidates) <= m:
        return list(candidates)
    keep = sorted(range(len(candidates)), key=lambda j: -candidates[j].prior)[:m]
    return [candidates[j] for j in sorted(keep)]


def expand_node(
    tree: Tree,
    node: int,
    candidates: Sequence[Candidate],
    *,
    dedupe: bool = False,
    normalise: bool = True,
) -> range:
    """Add ``candidates`` as the children of ``node``.

    Priors are normalised to sum to one (uniform when they are all zero). With ``dedupe``,
    candidates whose action repeats an earlier one are dropped.
    """
    if dedupe:
        candidates = unique(candidates, key=lambda c: c.action)
    priors = normalised_priors(candidates) if normalise else _priors(candidates)
    return tree.add_children(
        node,
        [c.action for c in candidates],
        priors,
        payloads=[c.payload for c in candidates],
        tokens=[c.num_tokens for c in candidates],
    )


def require_room(tree: Tree, extra: int) -> None:
    """Raise ``Stop("max_nodes")`` unless ``extra`` more nodes fit under the tree's cap."""
    room = tree.room()
    if room is not None and extra > room:
        raise Stop("max_nodes")


_Groups = dict[int, list[tuple[int, Candidate]]]


def _group(
    nodes: Sequence[int], candidate_lists: Sequence[Sequence[Candidate]], dedupe: bool
) -> _Groups:
    """node -> its ``(k, candidate)`` entries, over all ``k`` with ``nodes[k] == node``."""
    groups: _Groups = {}
    for k, (node, cands) in enumerate(zip(nodes, candidate_lists, strict=True)):
        groups.setdefault(node, []).extend((k, c) for c in cands)
    if dedupe:
        groups = {node: unique(e, key=lambda kc: kc[1].action) for node, e in groups.items()}
    return groups


def _add_groups(
    tree: Tree, meter: BudgetMeter, num_lists: int, groups: _Groups, normalise: bool
) -> list[list[int]]:
    made: list[list[int]] = [[] for _ in range(num_lists)]
    for node, entries in groups.items():
        children = expand_node(tree, node, [c for _, c in entries], normalise=normalise)
        for (k, _), child in zip(entries, children, strict=True):
            made[k].append(child)
    meter.charge(expansions=len(groups))
    return made


def expand_nodes(
    tree: Tree,
    meter: BudgetMeter,
    nodes: Sequence[int],
    candidate_lists: Sequence[Sequence[Candidate]],
    *,
    dedupe: bool = False,
    normalise: bool = True,
) -> list[list[int]]:
    """Add ``candidate_lists[k]`` as children of ``nodes[k]`` for every ``k``; returns the
    children made from each list, and charges one expansion per distinct node.

    A node listed more than once (all samples start at the root) is expanded once with the
    candidates of all its lists, in order, so its priors are normalised over all of them. With
    ``dedupe`` a candidate repeating an earlier action of the same node is dropped. Raises
    ``Stop("max_nodes")``, adding nothing, when the children would not fit.
    """
    groups = _group(nodes, candidate_lists, dedupe)
    require_room(tree, sum(len(entries) for entries in groups.values()))
    return _add_groups(tree, meter, len(nodes), groups, normalise)


# ---------------------------------------------------------------------- one unit of work


def start_unit(meter: BudgetMeter, *, expansions: int) -> None:
    """Charge one unit of work (``simulations``) that will expand ``expansions`` nodes; raise
    :class:`Stop` when the budget cannot pay for both."""
    check_unit(meter, expansions=expansions)
    meter.charge(simulations=1)


def check_unit(meter: BudgetMeter, *, expansions: int) -> None:
    """Raise :class:`Stop` unless one more unit of work (``simulations``) expanding
    ``expansions`` nodes fits; charges nothing (:func:`expand_and_score` charges the unit)."""
    if not meter.can(simulations=1, expansions=expansions):
        raise _budget_stop(meter)


def require_scores(meter: BudgetMeter, count: int) -> None:
    """Raise :class:`Stop` (``"verifier_calls"``) unless ``count`` more scores fit.

    Only the verifier allowance is asked (not the wall time): this is checked inside a unit of
    work, which once started in time may finish.
    """
    left = meter.remaining("verifier_calls")
    if left is not None and count > left:
        meter.stop_reason = meter.stop_reason or "verifier_calls"
        raise _budget_stop(meter)


def check_legal(policy: object, tree: Tree, node: int, candidates: Sequence[Candidate]) -> None:
    """Raise unless every candidate is legal where the node's state lists its legal actions
    (open-ended states, which list none, let the policy define the actions)."""
    state = tree.state(node)
    legal = state.legal_actions()
    if not legal:
        return
    allowed = set(legal)
    for c in candidates:
        try:
            known = c.action in allowed
        except TypeError:  # unhashable
            raise TypeError(
                f"{type(policy).__name__}.propose returned action {c.action!r} "
                f"({type(c.action).__name__}) for tree node {node}; actions must be hashable, "
                f"like the state's legal actions {tuple(legal)!r}"
            ) from None
        if not known:
            raise ValueError(
                f"{type(policy).__name__}.propose returned illegal action {c.action!r} for tree "
                f"node {node} ({state!r}); legal actions: {tuple(legal)!r}"
            )


def propose_children(
    search: GuidedSearch,
    tree: Tree,
    meter: BudgetMeter,
    rng: np.random.Generator,
    nodes: Sequence[int],
) -> list[list[Candidate]]:
    """At least one candidate for every node's state (see :func:`propose`); raises
    :class:`Stop` when the budget ends the search."""
    states = [tree.state(i) for i in nodes]
    proposals = propose(search.policy, states, meter, rng, require_candidates=True)
    if proposals is None:
        raise _budget_stop(meter)
    for node, candidates in zip(nodes, proposals, strict=True):
        check_legal(search.policy, tree, node, candidates)
    return proposals


def score_nodes(
    search: GuidedSearch,
    tree: Tree,
    meter: BudgetMeter,
    nodes: Sequence[int],
    *,
    reserved: bool = False,
) -> None:
    """Score ``nodes`` in one verifier call, store the aggregated scores and back them up.

    Raises :class:`Stop` (nothing scored) when the budget refuses the call; with ``reserved``
    the budget was already checked (:func:`require_scores`) and is not asked again.
    """
    scores = score_states(search.verify, [tree.state(i) for i in nodes], meter, reserved=reserved)
    if scores is None:
        raise _budget_stop(meter)
    for node, score in zip(nodes, scores, strict=True):
        value = aggregate(score, search.aggregation)
        if not math.isfinite(value):
            raise ValueError(f"aggregated score of node {node} is not finite: {value}")
        tree.score[node] = value
        backup(tree, node, value)


def _distinct_child_states(tree: Tree, groups: _Groups) -> int:
    """How many distinct ``state.key`` the children in ``groups`` would have."""
    keys = set()
    for node, entries in groups.items():
        state = tree.state(node)
        for _, c in entries:
            keys.add(state.step(c.action).key)
    return len(keys)


def expand_and_score(
    search: GuidedSearch,
    tree: Tree,
    meter: BudgetMeter,
    rng: np.random.Generator,
    nodes: Sequence[int],
    *,
    top: int | None = None,
    dedupe: bool = False,
) -> list[list[int]]:
    """One unit of work of a verifier-guided search, done whole or not at all.

    Proposes for ``nodes`` (one batched call), keeps the ``top`` highest-prior candidates of
    each proposal when given, adds the candidates as children (see :func:`expand_nodes`) and
    scores the new children (one batched call). With ``dedupe``, a candidate repeating an action
    of the same node is dropped, and a child whose ``state.key`` repeats an earlier new child's
    is added but not scored.

    Call :func:`check_unit` first. The unit (``simulations`` 1) is charged, and the tree
    changed, only once the proposals are in and the node cap and the verifier allowance can take
    all the children; otherwise :class:`Stop` is raised with the tree unchanged and no
    simulation charged (the policy call already made stays charged). Returns the scored
    children of each entry of ``nodes``.
    """
    proposals = propose_children(search, tree, meter, rng, nodes)
    if top is not None:
        proposals = [top_by_prior(cands, top) for cands in proposals]
    groups = _group(nodes, proposals, dedupe)
    size = sum(len(entries) for entries in groups.values())
    require_room(tree, size)
    if meter.remaining("verifier_calls") is not None:
        # Duplicated states are not scored; count them before anything is added.
        require_scores(meter, _distinct_child_states(tree, groups) if dedupe else size)
    meter.charge(simulations=1)
    made = _add_groups(tree, meter, len(nodes), groups, normalise=True)
    if dedupe:
        keep = set(unique([i for block in made for i in block], key=lambda i: tree.state(i).key))
        made = [[i for i in block if i in keep] for block in made]
    score_nodes(search, tree, meter, [i for block in made for i in block], reserved=True)
    return made


# ---------------------------------------------------------------------- ranking


def chooser_score(tree: Tree, node: int) -> float:
    """``node``'s score for the player who chose it (the player to move at its parent)."""
    return value_for_parent(tree, node, float(tree.score[node]))


def root_score(tree: Tree, node: int) -> float:
    """``node``'s score for the player to move at the root."""
    return value_for_player(
        float(tree.score[node]), int(tree.to_play[node]), int(tree.to_play[Tree.ROOT])
    )


# ---------------------------------------------------------------------- answer and result


RankKey = Callable[[Tree, int], float]


def best(tree: Tree, nodes: Sequence[int], key: RankKey = chooser_score) -> int | None:
    """The best-scored of ``nodes`` by ``key`` (ties: earlier in ``nodes``), ignoring unscored
    ones. ``key`` is :func:`chooser_score` for siblings, :func:`root_score` for answers."""
    top = None
    top_value = -math.inf
    for node in nodes:
        if math.isnan(tree.score[node]):
            continue
        value = key(tree, node)
        if top is None or value > top_value:
            top, top_value = node, value
    return top


def by_score(tree: Tree, nodes: Iterable[int], key: RankKey = chooser_score) -> list[int]:
    """``nodes`` best-scored first by ``key`` (stable: ties keep their order)."""
    return sorted(nodes, key=lambda i: -key(tree, i))


def vote(tree: Tree, nodes: Sequence[int], mode: str, answer_fn: AnswerFn | None) -> int | None:
    """The chosen node among scored ``nodes``: ``"argmax"`` score, or the best-scored node of
    the answer with the largest ``"weighted"`` score sum / ``"majority"`` count.

    Scores are taken for the root's player (:func:`root_score`). Answers are
    ``answer_fn(state)`` (``state.key`` without one); states whose answer is ``None`` do not
    vote, and when none votes the argmax is returned. Ties go to the answer seen first.
    """
    nodes = [i for i in nodes if not math.isnan(tree.score[i])]
    top = best(tree, nodes, root_score)
    if mode == "argmax" or top is None:
        return top
    answers: list[Hashable] = [
        answer_fn(tree.state(i)) if answer_fn is not None else tree.state(i).key for i in nodes
    ]
    totals: dict[Hashable, float] = {}
    for node, answer in zip(nodes, answers, strict=True):
        if answer is not None:
            weight = 1.0 if mode == "majority" else root_score(tree, node)
            totals[answer] = totals.get(answer, 0.0) + weight
    if not totals:
        return top
    winner = max(totals, key=totals.__getitem__)  # first maximum in insertion order
    return best(tree, [i for i, a in zip(nodes, answers, strict=True) if a == winner], root_score)


def log_stop(algorithm: str, stop_reason: str, usage: Usage, num_nodes: int) -> None:
    """One DEBUG line per search: why it stopped and what it spent."""
    if _log.isEnabledFor(logging.DEBUG):
        _log.debug(
            "%s stopped (%s): %d simulations, %d expansions, %d policy calls, %d tokens, "
            "%d verifier calls, %d nodes, %.3f s",
            algorithm,
            stop_reason,
            usage.simulations,
            usage.expansions,
            usage.policy_calls,
            usage.tokens,
            usage.verifier_calls,
            num_nodes,
            usage.wall_time,
        )


def make_result(
    search: GuidedSearch,
    tree: Tree,
    meter: BudgetMeter,
    chosen: int | None,
    pool: Sequence[int],
    stop_reason: str,
) -> SearchResult:
    """The result record: ``chosen`` is the answer node, ``pool`` the nodes traced."""
    answer_fn = search.answer_fn
    path = tree.path(chosen) if chosen is not None else []
    actions, dist = root_distribution(tree)
    answer = tree.state(chosen) if chosen is not None else None
    traces = tuple(
        trace_from_path(tree, i, answer=answer_fn(tree.state(i)) if answer_fn else None)
        for i in pool
    )
    result = SearchResult(
        action=tree.actions[path[1]] if len(path) > 1 else None,
        actions=actions,
        visit_distribution=dist,
        root_value=tree.q(Tree.ROOT),
        tree=tree,
        usage=meter.usage(),
        traces=traces,
        answer=answer,
        answer_text=answer_fn(answer) if answer_fn is not None and answer is not None else None,
        stop_reason=stop_reason,
    )
    log_stop(type(search).__name__, stop_reason, result.usage, tree.num_nodes)
    return result
