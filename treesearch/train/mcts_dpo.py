"""MCTS-DPO: step-level Monte Carlo tree search turned into preference pairs for DPO.

Xie, Goyal, Zheng, Kan, Lillicrap, Kawaguchi & Shieh, "Monte Carlo Tree Search Boosts Reasoning
via Iterative Preference Learning" (arXiv 2405.00451); code YuxiXie/MCTS-DPO
(``mcts_rl/algorithms/mcts/mcts/mcts.py``, ``search_config.py``, ``trainer.py``).
``docs/algorithms.md`` section 4 is the reference this module follows.

**Search** (:class:`MCTSDPOSearch`). Nodes are reasoning steps proposed by a policy (``k``
candidates per expansion, e.g. :class:`~treesearch.adapters.policies.HFStepPolicy` with
``num_candidates=k``).

* Prior of a step ``a`` of ``|a|`` tokens with summed log-probability ``lp``:
  ``p(a|s) = exp(lp / |a|^lambda)``, ``lambda = length_penalty`` (1.25); recomputed here from
  ``Candidate.logprob`` and the step's token count (``HFStepPolicy``'s own prior uses
  ``lambda = 1``). Priors are not normalised over siblings (as in the released code).
* Selection (PUCT): ``Q(s,a) + w_exp * p(a|s) * sqrt(N(s)) / (1 + N(s,a))``; ties go to the
  earlier child.
* Evaluation of a new node: the verifier's score (a PRM, or any :class:`~treesearch.Verifier`,
  e.g. a self-evaluation), divided by ``max(parent depth - depth_discount_offset, 1)`` (the
  paper's length penalty for self-evaluation; ``depth_discount_offset=None`` turns it off),
  plus the outcome ``O = outcome_fn(state)`` at terminal nodes (+1 right, -1 wrong; the released
  code uses -0.5 for wrong). This is the node's *value*; the root's value is 0. Edge reward
  ``r = value(child) - value(parent)``; a new child starts with ``Q = r`` (its ``V`` is 0).
* Backup along the simulated path: the leaf gets ``Q = r + gamma * V``; each ancestor
  ``V(s) = sum_c max(1, N_c) Q_c / sum_c max(1, N_c)`` over all its children, then
  ``Q = r + gamma * V``; every node on the path gets ``N += 1`` (iterative).
* One *simulation* descends from the search root by PUCT and, as the released code's
  ``iterate`` does, keeps expanding the nodes it reaches until a terminal node or ``depth_limit``
  steps below the search root; it is backed up once, at the end. A node expanded during the
  simulation has ``N = 0``, so PUCT passes to its child of largest ``Q`` there (the released
  code backs up after every expansion inside one simulation; that inflates visit counts by the
  rollout depth, which this version does not).
* Commit loop: ``n_iters`` simulations (``root_iters_multiplier`` = 4 times as many at the
  problem's root), then the next step is the search root's child with the most visits (ties:
  higher ``Q``, then the earlier child); searching continues from it inside the same tree, so
  its subtree and statistics are kept, and stops at a terminal node. The tree is never cut: the
  siblings along the committed path are what the preference pairs come from. Backups stop at
  the current search root (the released code does the same).

Every policy, verifier and expansion call is charged to a :class:`~treesearch.Budget`; when the
budget refuses, the search stops and the committed path ends where it was.

**Traces.** :attr:`MCTSDPOResult.traces` holds one :class:`~treesearch.results.Trace` per leaf
of the whole tree (``traces_from_tree``'s convention), with ``TraceStep.value = Q`` (defined for
unvisited children too, ``Q = r``), ``visits = N``, ``score`` = the aggregated verifier score and
``prior`` = the length-normalised prior. The committed path is recorded in each trace's
``metadata["committed_steps"]``: how many leading steps of the trace lie on it (the committed
path is the longest such prefix). ``metadata["eos"]`` says whether the leaf's step ended with
the end-of-sequence token (step text does not show it).

**Preference pairs** (:func:`build_preference_pairs`, from traces, so they can be built on
another machine from JSONL): at every node of the committed path where a step was committed,
its children form one comparison set. Each candidate's text is its step plus any single-child
chain below it. Chosen ``y_w`` = highest ``Q`` (ties: more visits, then the earlier child),
rejected ``y_l`` = lowest ``Q`` (the paper, ``--choose_worst``) or a random non-best sibling
(``rejected="random"``; note that in the released code ``--choose_random`` is a store_true flag
whose default is True, so *random* is what its scripts run). Sets with fewer than two
candidates, pairs without a divergence point and pairs whose ``Q`` gap is not above
``min_q_gap`` (equal ``Q`` carries no preference) are skipped.

**Loss** (:func:`dpo_loss`): ``z = beta * [(log pi(y_w|x) - log pi_ref(y_w|x)) - (log pi(y_l|x)
- log pi_ref(y_l|x))]``, ``L = -(1 - eps) log sigmoid(z) - eps log sigmoid(-z)`` with the
visit-count label smoothing ``eps = min(1 - N_w / (N_w + N_l), 0.5)``
(:func:`visit_label_smoothing`, the released code's ``--conservative``); ``loss="ipo"`` gives
``(z / beta - 1 / (2 beta))^2``. Log-probabilities are summed from the first token where
``y_w`` and ``y_l`` differ (:func:`sequence_logprobs`); ``x`` is the prompt and the committed
steps before the comparison. The reference model is frozen.

**Online loop** (:func:`run_mcts_dpo`, on the toy arithmetic world): each iteration searches a
batch of fresh training problems with the current policy (PRM-guided, exact outcome at the
leaves), writes the traces as JSONL, builds the pairs from that file, DPO-updates the policy
against the frozen SFT start, and measures held-out greedy accuracy; the next iteration searches
with the updated policy (the paper refreshes the search policy every ``iteration_interval`` = 64
prompts; here every batch). Each iteration's DPO starts a fresh AdamW state. It resumes after a
kill (:class:`~treesearch.train.loop.RunState`, atomic files).

``import treesearch.train.mcts_dpo`` loads no torch; the functions that need it import it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ..budget import Budget, BudgetMeter
from ..interfaces import Candidate, Policy, State, Verifier, VerifierFn, as_verifier
from ..results import SearchResult, Trace, root_distribution, trace_from_path
from ..search._common import (
    aggregate,
    check_aggregation,
    check_answer_fn,
    check_max_nodes,
    check_policy_role,
    check_rng,
    check_root,
    log_stop,
    propose,
    score_states,
    unique,
)
from ..tree import Tree, TreeFull
from .loop import PhasedLoop, config_dict, phase_rng
from .traces import TraceTree, group_by_problem, require_outcomes

if TYPE_CHECKING:
    import torch

__all__ = [
    "ComparisonCandidate",
    "ComparisonSet",
    "DPOConfig",
    "DPOLog",
    "EncodedPair",
    "MCTSDPOConfig",
    "MCTSDPOResult",
    "MCTSDPOSearch",
    "PreferencePair",
    "build_preference_pairs",
    "check_tokenizers_match",
    "committed_path",
    "comparison_sets",
    "dpo_loss",
    "encode_pair",
    "evaluate_greedy",
    "length_normalised_prior",
    "mcts_dpo_value",
    "pair_logprobs",
    "puct_scores",
    "read_pairs",
    "run_mcts_dpo",
    "sequence_logprobs",
    "train_dpo",
    "visit_label_smoothing",
    "write_pairs",
]

OutcomeFn = Callable[[State], "float | None"]


# ------------------------------------------------------------------------------ checks
def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, not {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, not {value}")
    return int(value)


def _check_real(
    name: str, value: object, low: float, high: float = math.inf, *, open_low: bool = False
) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, not {type(value).__name__} {value!r}")
    x = float(value)
    if not math.isfinite(x) or x < low or x > high or (open_low and x == low):
        bound = "(" if open_low else "["
        raise ValueError(f"{name} must be finite and in {bound}{low}, {high}], not {value!r}")
    return x


# ------------------------------------------------------------------------------ formulas
def length_normalised_prior(
    logprob: float, num_tokens: int, *, length_penalty: float = 1.25
) -> float:
    """``exp(logprob / num_tokens ** length_penalty)``: the MCTS-DPO prior of a step of
    ``num_tokens`` tokens whose log-probabilities sum to ``logprob`` (``length_penalty`` 1.25 in
    the paper; 1 gives the geometric mean of the token probabilities)."""
    num_tokens = _check_int("num_tokens", num_tokens, 1)
    _check_real("length_penalty", length_penalty, 0.0)
    if isinstance(logprob, bool) or not isinstance(logprob, (int, float, np.floating)):
        raise TypeError(f"logprob must be a number, not {logprob!r}")
    if math.isnan(logprob) or logprob > 1e-9:
        raise ValueError(f"logprob must be a log-probability (<= 0), not {logprob}")
    return math.exp(min(float(logprob), 0.0) / num_tokens**length_penalty)


def puct_scores(
    q: Sequence[float] | np.ndarray,
    prior: Sequence[float] | np.ndarray,
    visits: Sequence[int] | np.ndarray,
    parent_visits: int,
    *,
    w_exp: float = 1.0,
) -> np.ndarray:
    """``Q(s,a) + w_exp * p(a|s) * sqrt(N(s)) / (1 + N(s,a))`` for each child."""
    q_arr = np.asarray(q, dtype=np.float64)
    p_arr = np.asarray(prior, dtype=np.float64)
    n_arr = np.asarray(visits, dtype=np.float64)
    if not q_arr.shape == p_arr.shape == n_arr.shape or q_arr.ndim != 1:
        raise ValueError(
            f"q, prior and visits must be 1-d and of one length, not {q_arr.shape}, "
            f"{p_arr.shape}, {n_arr.shape}"
        )
    if parent_visits < 0 or (n_arr < 0).any():
        raise ValueError("visit counts must be non-negative")
    scores: np.ndarray = q_arr + w_exp * p_arr * math.sqrt(parent_visits) / (1.0 + n_arr)
    return scores


def mcts_dpo_value(visits: Sequence[int] | np.ndarray, q: Sequence[float] | np.ndarray) -> float:
    """A node's value from its children: ``sum max(1, N_c) Q_c / sum max(1, N_c)``.

    Children ``(N=3, Q=0.5)`` and ``(N=1, Q=-1)`` give ``(1.5 - 1) / 4 = 0.125``.
    """
    n = np.maximum(np.asarray(visits, dtype=np.float64), 1.0)
    q_arr = np.asarray(q, dtype=np.float64)
    if n.shape != q_arr.shape or n.ndim != 1 or len(n) == 0:
        raise ValueError("visits and q must be non-empty 1-d sequences of one length")
    return float((n * q_arr).sum() / n.sum())


def visit_label_smoothing(n_w: int, n_l: int) -> float:
    """``min(1 - N_w / (N_w + N_l), 0.5)``: the label smoothing of a pair whose chosen step was
    visited ``N_w`` times and the rejected one ``N_l`` times (``N_w = 6, N_l = 2`` give 0.25;
    equal counts, zero included, give the cap 0.5)."""
    for name, value in (("n_w", n_w), ("n_l", n_l)):
        _check_int(name, value, 0)
    total = n_w + n_l
    if total == 0:
        return 0.5
    return min(1.0 - n_w / total, 0.5)


def dpo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    *,
    beta: float = 0.1,
    label_smoothing: float | torch.Tensor = 0.0,
    loss: str = "sigmoid",
) -> torch.Tensor:
    """The per-pair DPO loss (a tensor of the pairs' shape; take ``.mean()`` for a batch).

    ``"sigmoid"``: ``-(1 - eps) log sigmoid(z) - eps log sigmoid(-z)`` with ``z = beta *
    (chosen log-ratio - rejected log-ratio)`` and ``eps = label_smoothing`` (a number or one per
    pair, each in [0, 0.5]); at ``pi = pi_ref`` it is ``log 2`` whatever ``eps``.
    ``"ipo"``: ``(z / beta - 1 / (2 beta))^2`` (IPO takes no label smoothing).
    """
    import torch
    import torch.nn.functional as F

    _check_real("beta", beta, 0.0, open_low=True)
    if loss not in ("sigmoid", "ipo"):
        raise ValueError(f"loss must be 'sigmoid' or 'ipo', not {loss!r}")
    tensors = (policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps)
    if not all(isinstance(t, torch.Tensor) for t in tensors):
        raise TypeError("the four log-probabilities must be torch tensors")
    if len({tuple(t.shape) for t in tensors}) != 1:
        raise ValueError(f"log-probability shapes differ: {[tuple(t.shape) for t in tensors]}")
    logits = (policy_chosen_logps - ref_chosen_logps) - (policy_rejected_logps - ref_rejected_logps)
    eps = torch.as_tensor(label_smoothing, dtype=logits.dtype, device=logits.device)
    if bool(((eps < 0) | (eps > 0.5) | torch.isnan(eps)).any()):
        raise ValueError("label_smoothing must lie in [0, 0.5]")
    if loss == "ipo":
        if bool((eps != 0).any()):
            raise ValueError("the IPO loss takes no label smoothing (set it to 0)")
        return (logits - 1.0 / (2.0 * beta)) ** 2
    z = beta * logits
    return -(1.0 - eps) * F.logsigmoid(z) - eps * F.logsigmoid(-z)


# ------------------------------------------------------------------------------ search
@dataclass(frozen=True)
class MCTSDPOResult:
    """What :meth:`MCTSDPOSearch.search` returns.

    Attributes:
        result: the :class:`~treesearch.SearchResult` (its ``tree`` is the whole tree, its
            ``traces`` one per leaf, its ``answer`` the last committed state when terminal).
        committed: node ids of the committed path, from the root.
        q: ``Q`` of every node (0 at the root).
        v: ``V`` of every node (0 while unexpanded).
        node_value: every node's evaluation (score / depth divisor, plus the outcome at
            terminal nodes; 0 at the root).
    """

    result: SearchResult = field(repr=False)
    committed: tuple[int, ...]
    q: np.ndarray = field(repr=False)
    v: np.ndarray = field(repr=False)
    node_value: np.ndarray = field(repr=False)

    @property
    def traces(self) -> tuple[Trace, ...]:
        return self.result.traces

    @property
    def tree(self) -> Tree:
        return self.result.tree


class _Stopped(Exception):
    """The budget or the node cap ended the search."""


class MCTSDPOSearch:
    """The step-level MCTS of MCTS-DPO with its commit loop (module docstring).

    Args:
        policy: proposes ``k`` candidate steps per state; ``Candidate.logprob`` (the summed
            log-probability) and the step's token count give the prior (a candidate without a
            log-probability keeps its own ``prior``).
        verifier: scores every new node (a PRM, or a self-evaluation wrapped as a verifier).
        outcome_fn: ``f(state) -> float | None``, added to the value of terminal nodes
            (+1 right, -1 wrong); ``None`` adds nothing.
        n_iters: simulations per commit (paper 64).
        root_iters_multiplier: at the problem's root the search runs this many times
            ``n_iters`` (4, as in the released code).
        w_exp: PUCT exploration weight (1).
        gamma: discount of the backup (1).
        length_penalty: lambda of the length-normalised prior (1.25).
        depth_limit: a simulation expands at most this many steps below the search root
            (``None``: to a terminal node; the math script uses 3).
        depth_discount_offset: scores are divided by ``max(parent depth - offset, 1)``
            (3 in the paper's self-evaluation; ``None``: no division).
        aggregation: how a process verifier's step scores become one (``"last"``).
        max_nodes: tree node cap (the search stops at it).
        answer_fn: canonical answer of a state, for the traces and ``answer_text``.
    """

    def __init__(
        self,
        policy: Policy,
        verifier: Verifier | VerifierFn,
        *,
        outcome_fn: OutcomeFn | None = None,
        n_iters: int = 64,
        root_iters_multiplier: int = 4,
        w_exp: float = 1.0,
        gamma: float = 1.0,
        length_penalty: float = 1.25,
        depth_limit: int | None = None,
        depth_discount_offset: int | None = 3,
        aggregation: str = "last",
        max_nodes: int | None = None,
        answer_fn: Callable[[State], str | None] | None = None,
    ) -> None:
        self.policy = check_policy_role(policy)
        if verifier is None:
            raise TypeError("a verifier is required: a .score(states) object or f(states)")
        self.verify = as_verifier(verifier)
        if outcome_fn is not None and not callable(outcome_fn):
            raise TypeError(f"outcome_fn must be callable or None, not {type(outcome_fn).__name__}")
        self.outcome_fn = outcome_fn
        self.n_iters = _check_int("n_iters", n_iters, 1)
        self.root_iters_multiplier = _check_int("root_iters_multiplier", root_iters_multiplier, 1)
        self.w_exp = _check_real("w_exp", w_exp, 0.0)
        self.gamma = _check_real("gamma", gamma, 0.0, 1.0)
        self.length_penalty = _check_real("length_penalty", length_penalty, 0.0)
        self.depth_limit = (
            None if depth_limit is None else _check_int("depth_limit", depth_limit, 1)
        )
        self.depth_discount_offset = (
            None
            if depth_discount_offset is None
            else _check_int("depth_discount_offset", depth_discount_offset, 0)
        )
        self.aggregation = check_aggregation(aggregation)
        self.max_nodes = check_max_nodes(max_nodes)
        self.answer_fn = check_answer_fn(answer_fn)

    # ------------------------------------------------------------------ public
    def search(
        self,
        root: State,
        budget: Budget,
        *,
        rng: np.random.Generator,
        metadata: Mapping[str, Any] | None = None,
    ) -> MCTSDPOResult:
        """Search from ``root`` and commit steps until a terminal state (or the budget ends).

        ``metadata`` is copied into every trace (e.g. ``problem_id`` and ``prompt``).
        """
        check_rng(rng)
        meter = BudgetMeter(budget)
        check_root(root)
        if metadata is not None and not isinstance(metadata, Mapping):
            raise TypeError(f"metadata must be a mapping, not {type(metadata).__name__}")
        run = _Run(self, Tree(root, max_nodes=self.max_nodes), meter, rng)
        if run.tree.terminal[Tree.ROOT]:
            raise ValueError(f"cannot search from a terminal state: {root!r}")
        stop_reason = run.commit_loop()
        return run.result(stop_reason, dict(metadata or {}))

    def prior(self, candidate: Candidate) -> float:
        """The length-normalised prior of a candidate (its own prior without a log-prob)."""
        if candidate.logprob is None:
            return float(candidate.prior)
        return length_normalised_prior(
            float(candidate.logprob), _step_tokens(candidate), length_penalty=self.length_penalty
        )


def _step_tokens(candidate: Candidate) -> int:
    """Tokens of the step itself (``num_tokens`` may count merged duplicate samples)."""
    ids = getattr(candidate.action, "token_ids", None)
    if ids is None and isinstance(candidate.payload, Mapping):
        ids = candidate.payload.get("token_ids")
    if ids is not None and len(ids) > 0:
        return len(ids)
    return max(1, int(candidate.num_tokens))


class _Run:
    """The mutable state of one search: the tree, the MCTS-DPO statistics and the meter."""

    def __init__(
        self, search: MCTSDPOSearch, tree: Tree, meter: BudgetMeter, rng: np.random.Generator
    ) -> None:
        self.search = search
        self.tree = tree
        self.meter = meter
        self.rng = rng
        self.q: list[float] = [0.0]
        self.v: list[float] = [0.0]
        self.value: list[float] = [0.0]
        self.committed = [Tree.ROOT]
        self.stop_reason: str | None = None

    # ------------------------------------------------------------------ loop
    def commit_loop(self) -> str:
        tree = self.tree
        s = self.search
        node = Tree.ROOT
        try:
            while not tree.terminal[node]:
                iters = s.n_iters * (s.root_iters_multiplier if node == Tree.ROOT else 1)
                for _ in range(iters):
                    if not self.meter.can(simulations=1):
                        raise _Stopped
                    self.meter.charge(simulations=1)
                    self.simulate(node)
                node = self.choose(node)
                self.committed.append(node)
        except _Stopped:
            return self.stop_reason or self.meter.stop_reason or "exhausted"
        return "exhausted"

    def choose(self, node: int) -> int:
        """Most visits, ties by higher Q, then the earlier child."""
        kids = self.tree.children(node)
        if not len(kids):
            raise _Stopped
        visits = self.tree.visits[kids.start : kids.stop]
        q = np.asarray(self.q[kids.start : kids.stop])
        order = np.lexsort((np.arange(len(kids)), -q, -visits))
        return kids.start + int(order[0])

    def simulate(self, start: int) -> None:
        tree = self.tree
        s = self.search
        path = [start]
        node = start
        base = int(tree.depth[start])
        try:
            while not tree.terminal[node]:
                if s.depth_limit is not None and tree.depth[node] - base >= s.depth_limit:
                    break
                if not tree.is_expanded(node):
                    self.expand(node)
                node = self.select(node)
                path.append(node)
        finally:
            # What was learnt before the budget ran out is kept.
            self.backup(path)

    def select(self, node: int) -> int:
        kids = self.tree.children(node)
        scores = puct_scores(
            self.q[kids.start : kids.stop],
            self.tree.prior[kids.start : kids.stop],
            self.tree.visits[kids.start : kids.stop],
            int(self.tree.visits[node]),
            w_exp=self.search.w_exp,
        )
        return kids.start + int(np.argmax(scores))

    def expand(self, node: int) -> None:
        tree = self.tree
        meter = self.meter
        s = self.search
        if not meter.can(expansions=1):
            raise _Stopped
        state = tree.state(node)
        proposals = propose(s.policy, [state], meter, self.rng, require_candidates=True)
        if proposals is None:
            raise _Stopped
        candidates = unique(proposals[0], key=lambda c: c.action)
        room = tree.room()
        if room is not None and len(candidates) > room:
            self.stop_reason = "max_nodes"
            raise _Stopped
        if not meter.can(verifier_calls=len(candidates)):
            raise _Stopped
        try:
            kids = tree.add_children(
                node,
                [c.action for c in candidates],
                [s.prior(c) for c in candidates],
                payloads=[c.payload for c in candidates],
                tokens=[c.num_tokens for c in candidates],
            )
        except TreeFull:
            self.stop_reason = "max_nodes"
            raise _Stopped from None
        meter.charge(expansions=1)
        states = [tree.state(i) for i in kids]
        scores = score_states(s.verify, states, meter, reserved=True)
        assert scores is not None  # reserved: the budget was asked above
        depth = int(tree.depth[node])
        offset = s.depth_discount_offset
        divisor = 1.0 if offset is None else float(max(depth - offset, 1))
        parent_value = self.value[node]
        for child, child_state, score in zip(kids, states, scores, strict=True):
            raw = aggregate(score, s.aggregation)
            if not math.isfinite(raw):
                raise ValueError(f"the verifier's score of node {child} is not finite: {raw}")
            tree.score[child] = raw
            value = raw / divisor
            if tree.terminal[child] and s.outcome_fn is not None:
                outcome = s.outcome_fn(child_state)
                if outcome is not None:
                    value += _check_real("outcome_fn's value", outcome, -math.inf)
            self.value.append(value)
            self.q.append(value - parent_value)  # Q = r + gamma * V with V = 0
            self.v.append(0.0)

    def backup(self, path: list[int]) -> None:
        tree = self.tree
        gamma = self.search.gamma
        leaf = path[-1]
        if leaf != Tree.ROOT:
            self.q[leaf] = self._reward(leaf) + gamma * self.v[leaf]
        tree.visits[leaf] += 1
        for node in reversed(path[:-1]):
            kids = tree.children(node)
            self.v[node] = mcts_dpo_value(
                tree.visits[kids.start : kids.stop], self.q[kids.start : kids.stop]
            )
            tree.visits[node] += 1
            if node != Tree.ROOT:
                self.q[node] = self._reward(node) + gamma * self.v[node]

    def _reward(self, node: int) -> float:
        return self.value[node] - self.value[int(self.tree.parent[node])]

    # ------------------------------------------------------------------ result
    def result(self, stop_reason: str, metadata: dict[str, Any]) -> MCTSDPOResult:
        tree = self.tree
        n = tree.num_nodes
        q = np.asarray(self.q, dtype=np.float64)
        tree.value_sum[:n] = q * tree.visits[:n]  # so tree.q(node) is Q for visited nodes
        answer_fn = self.search.answer_fn
        last = self.committed[-1]
        answer = tree.state(last) if tree.terminal[last] else None
        traces = tuple(self._traces(q, metadata))
        actions, dist = root_distribution(tree)
        result = SearchResult(
            action=tree.actions[self.committed[1]] if len(self.committed) > 1 else None,
            actions=actions,
            visit_distribution=dist,
            root_value=float(self.v[Tree.ROOT]),
            tree=tree,
            usage=self.meter.usage(),
            traces=traces,
            answer=answer,
            answer_text=answer_fn(answer) if answer_fn is not None and answer is not None else None,
            stop_reason=stop_reason,
        )
        log_stop("MCTSDPOSearch", stop_reason, result.usage, n)
        return MCTSDPOResult(
            result=result,
            committed=tuple(self.committed),
            q=q,
            v=np.asarray(self.v, dtype=np.float64),
            node_value=np.asarray(self.value, dtype=np.float64),
        )

    def _traces(self, q: np.ndarray, metadata: dict[str, Any]) -> list[Trace]:
        tree = self.tree
        answer_fn = self.search.answer_fn
        committed = self.committed
        out = []
        for node in range(1, tree.num_nodes):
            if tree.is_expanded(node):
                continue
            path = tree.path(node)[1:]
            answer = answer_fn(tree.state(node)) if answer_fn is not None else None
            trace = trace_from_path(tree, node, answer=answer)
            steps = tuple(
                dataclasses.replace(step, value=float(q[i]))
                for step, i in zip(trace.steps, path, strict=True)
            )
            on_path = 0
            while on_path < len(path) and on_path + 1 < len(committed):
                if path[on_path] != committed[on_path + 1]:
                    break
                on_path += 1
            info = {
                **metadata,
                "committed_steps": on_path,
                "eos": getattr(tree.actions[node], "stop", None) == "eos",
            }
            out.append(dataclasses.replace(trace, steps=steps, metadata=info))
        return out


# ------------------------------------------------------------------------------ pairs
@dataclass(frozen=True)
class PreferencePair:
    """One DPO comparison: two continuations of ``prompt + prefix_steps``.

    Attributes:
        prompt: the text the search started from (``trace.metadata["prompt"]``).
        prefix_steps: the committed steps before the comparison.
        chosen, rejected: each candidate's step plus the single-child chain below it (text).
        chosen_visits, rejected_visits: their visit counts ``N_w``, ``N_l``.
        chosen_q, rejected_q: their ``Q``.
        chosen_eos, rejected_eos: the continuation ends the solution with end-of-sequence
            (the token is appended when it is encoded; step text does not show it).
        problem_id: the search it came from.
    """

    prompt: str
    prefix_steps: tuple[str, ...]
    chosen: str
    rejected: str
    chosen_visits: int
    rejected_visits: int
    chosen_q: float
    rejected_q: float
    chosen_eos: bool = False
    rejected_eos: bool = False
    problem_id: str | None = None

    def __post_init__(self) -> None:
        for name in ("prompt", "chosen", "rejected"):
            if not isinstance(getattr(self, name), str):
                raise TypeError(f"PreferencePair.{name} must be a str")
        steps = tuple(self.prefix_steps)
        if not all(isinstance(s, str) for s in steps):
            raise TypeError("PreferencePair.prefix_steps must hold strings")
        object.__setattr__(self, "prefix_steps", steps)
        _check_int("chosen_visits", self.chosen_visits, 0)
        _check_int("rejected_visits", self.rejected_visits, 0)

    @property
    def label_smoothing(self) -> float:
        """:func:`visit_label_smoothing` of the pair's visit counts."""
        return visit_label_smoothing(self.chosen_visits, self.rejected_visits)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["prefix_steps"] = list(self.prefix_steps)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PreferencePair:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown PreferencePair fields: {sorted(unknown)}")
        return cls(**{**data, "prefix_steps": tuple(data.get("prefix_steps", ()))})


@dataclass(frozen=True)
class ComparisonCandidate:
    """One sibling of a comparison set: its node, text (step plus single-child chain), ``Q``,
    visits and whether the chain ends with end-of-sequence."""

    node: int
    text: str
    q: float | None
    visits: int
    eos: bool


@dataclass(frozen=True)
class ComparisonSet:
    """The children of one committed node, in tree order."""

    parent: int
    prefix_steps: tuple[str, ...]
    candidates: tuple[ComparisonCandidate, ...]


def committed_path(tree: TraceTree) -> list[int]:
    """The committed path of a :class:`TraceTree` (root first).

    From ``metadata["committed_steps"]`` (written by :class:`MCTSDPOSearch`): the longest
    committed prefix among the traces; every trace must agree with it. Traces without that
    key (from another search) fall back to following the most-visited child (ties: higher
    value, then the earlier child) down to a leaf, the rule the commit loop uses.
    """
    counts = [t.metadata.get("committed_steps") for t in tree.traces]
    if all(c is None for c in counts):
        node = 0
        path = [0]
        while tree.children[node]:
            kids = tree.children[node]
            node = min(kids, key=lambda i: (-tree.visits[i], -_known(tree.value[i]), kids.index(i)))
            path.append(node)
        return path
    best = -1
    best_trace = -1
    for index, count in enumerate(counts):
        if count is None or isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError(
                f"trace {index} has metadata['committed_steps'] = {count!r}; expected an int "
                ">= 0 on every trace of the problem"
            )
        if count > len(tree.traces[index].steps):
            raise ValueError(f"trace {index} commits {count} steps but has fewer")
        if count > best:
            best, best_trace = count, index
    reference = tree.traces[best_trace].actions[:best]
    for index, count in enumerate(counts):
        if tree.traces[index].actions[: int(count or 0)] != reference[: int(count or 0)]:
            raise ValueError(
                f"trace {index} disagrees with trace {best_trace} about the committed path"
            )
    path = [0]
    for action in reference:
        node = path[-1]
        child = next(i for i in tree.children[node] if tree.action[i] == action)
        path.append(child)
    return path


def _known(value: float | None) -> float:
    return -math.inf if value is None else float(value)


def _node_eos(tree: TraceTree, node: int) -> bool:
    return any(bool(tree.traces[i].metadata.get("eos", False)) for i in tree.leaf_traces[node])


def comparison_sets(tree: TraceTree) -> list[ComparisonSet]:
    """The sibling sets along the committed path: the children of each committed node below
    which a step was committed (sets of one child included; :func:`build_preference_pairs`
    skips them)."""
    path = committed_path(tree)
    out = []
    for depth, parent in enumerate(path[:-1]):
        prefix = tuple(str(tree.action[i]) for i in path[1 : depth + 1])
        candidates = []
        for child in tree.children[parent]:
            pieces = [str(tree.action[child])]
            node = child
            while len(tree.children[node]) == 1:  # no other candidate below: one continuation
                node = tree.children[node][0]
                pieces.append(str(tree.action[node]))
            candidates.append(
                ComparisonCandidate(
                    node=child,
                    text="".join(pieces),
                    q=tree.value[child],
                    visits=int(tree.visits[child]),
                    eos=not tree.children[node] and _node_eos(tree, node),
                )
            )
        out.append(ComparisonSet(parent, prefix, tuple(candidates)))
    return out


def _diverges(a: str, a_eos: bool, b: str, b_eos: bool) -> bool:
    """Whether the two continuations differ at a position both have (the end-of-sequence
    token counts as one more symbol)."""
    x = [*a, None] if a_eos else list(a)
    y = [*b, None] if b_eos else list(b)
    return any(p != r for p, r in zip(x, y, strict=False))


def build_preference_pairs(
    traces: Sequence[Trace],
    *,
    rejected: Literal["lowest", "random"] = "lowest",
    rng: np.random.Generator | None = None,
    min_q_gap: float = 0.0,
) -> list[PreferencePair]:
    """Preference pairs from MCTS-DPO traces (one or many problems; module docstring).

    Args:
        traces: traces with outcomes, ``metadata["problem_id"]`` and ``metadata["prompt"]``
            (e.g. read back with :func:`~treesearch.results.read_traces`).
        rejected: ``"lowest"`` ``Q`` (the paper) or ``"random"``: a uniformly drawn sibling
            other than the chosen one (the released code's default).
        rng: required for ``"random"``.
        min_q_gap: a pair is kept only when ``chosen_q - rejected_q > min_q_gap``.

    Raises:
        ValueError: no traces, a trace without an outcome or problem id, a problem without a
            prompt, or traces that disagree about the committed path.
    """
    if rejected not in ("lowest", "random"):
        raise ValueError(f"rejected must be 'lowest' or 'random', not {rejected!r}")
    if rejected == "random":
        check_rng(rng)
    min_q_gap = _check_real("min_q_gap", min_q_gap, 0.0)
    traces = list(traces)
    if not traces:
        raise ValueError("no traces to build preference pairs from")
    require_outcomes(traces, what="MCTS-DPO preference pairs")
    pairs = []
    for problem_id, group in group_by_problem(traces).items():
        tree = TraceTree.from_traces(group)
        if tree.prompt is None:
            raise ValueError(f"the traces of problem {problem_id!r} have no metadata['prompt']")
        for comparison in comparison_sets(tree):
            known = [c for c in comparison.candidates if c.q is not None]
            if len(known) < 2:
                continue
            # Q ties: more visits wins, then the earlier child; the lowest is the mirror image.
            order = sorted(
                range(len(known)), key=lambda i: (-float(known[i].q or 0.0), -known[i].visits, i)
            )
            best = known[order[0]]
            if rejected == "lowest":
                worst = known[order[-1]]
            else:
                assert rng is not None  # checked above
                others = [c for c in known if c is not best]
                worst = others[int(rng.integers(len(others)))]
            if worst is best or float(best.q or 0.0) - float(worst.q or 0.0) <= min_q_gap:
                continue
            if not _diverges(best.text, best.eos, worst.text, worst.eos):
                continue
            pairs.append(
                PreferencePair(
                    prompt=tree.prompt,
                    prefix_steps=comparison.prefix_steps,
                    chosen=best.text,
                    rejected=worst.text,
                    chosen_visits=best.visits,
                    rejected_visits=worst.visits,
                    chosen_q=float(best.q or 0.0),
                    rejected_q=float(worst.q or 0.0),
                    chosen_eos=best.eos,
                    rejected_eos=worst.eos,
                    problem_id=problem_id,
                )
            )
    return pairs


def write_pairs(path: str | Path, pairs: Sequence[PreferencePair]) -> int:
    """Write pairs as JSONL, atomically. Returns the count."""
    from .atomic import atomic_write_jsonl

    for index, pair in enumerate(pairs):
        if not isinstance(pair, PreferencePair):
            raise TypeError(f"pair {index} is a {type(pair).__name__}, not a PreferencePair")
    return atomic_write_jsonl(path, (pair.to_dict() for pair in pairs))


def read_pairs(path: str | Path) -> list[PreferencePair]:
    """Read pairs written by :func:`write_pairs`; names the line of a bad record."""
    from .atomic import read_jsonl

    return read_jsonl(path, PreferencePair.from_dict, what="preference pair")


# ------------------------------------------------------------------------------ log-probs
@dataclass(frozen=True)
class EncodedPair:
    """A pair as token ids: the shared context, both continuations, and the index (into the
    continuations) of the first token where they differ."""

    context_ids: tuple[int, ...]
    chosen_ids: tuple[int, ...]
    rejected_ids: tuple[int, ...]
    divergence: int
    label_smoothing: float = 0.0


def _sep_text(tokenizer: Any) -> tuple[str | None, int | None]:
    text = getattr(tokenizer, "sep_token", None)
    if not text:
        return None, None
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return (text, int(ids[0])) if len(ids) == 1 else (None, None)


def _encode_steps_text(tokenizer: Any, text: str, sep: tuple[str | None, int | None]) -> list[int]:
    """Tokens of step text: each piece between separators tokenized on its own (no special
    tokens), joined by the separator id, as step-wise SFT and the step policy lay them out."""
    sep_text, sep_id = sep
    if sep_text is None or sep_id is None:
        return list(tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []
    ids: list[int] = []
    pieces = text.split(sep_text)
    for k, piece in enumerate(pieces):
        if piece:
            ids.extend(tokenizer(piece, add_special_tokens=False)["input_ids"])
        if k + 1 < len(pieces):
            ids.append(sep_id)
    return ids


def encode_pair(tokenizer: Any, pair: PreferencePair) -> EncodedPair:
    """Token ids of a pair: the prompt with the tokenizer's special tokens (as
    :meth:`~treesearch.adapters.state.ReasoningState.from_prompt` tokenizes a search root),
    then the prefix steps and each continuation with the separator handled as step-wise SFT does
    (:func:`_encode_steps_text`), plus the EOS id where a continuation ends the solution.

    Raises ``ValueError`` when the continuations have no divergence point (one is a prefix of
    the other).
    """
    if not isinstance(pair, PreferencePair):
        raise TypeError(f"expected a PreferencePair, not {type(pair).__name__}")
    sep = _sep_text(tokenizer)
    context = list(tokenizer(pair.prompt, add_special_tokens=True)["input_ids"])
    for step in pair.prefix_steps:
        context.extend(_encode_steps_text(tokenizer, step, sep))
    eos = getattr(tokenizer, "eos_token_id", None)
    conts = []
    for text, ends in ((pair.chosen, pair.chosen_eos), (pair.rejected, pair.rejected_eos)):
        ids = _encode_steps_text(tokenizer, text, sep)
        if ends:
            if eos is None:
                raise ValueError("the pair ends with end-of-sequence but the tokenizer has no eos")
            ids.append(int(eos))
        conts.append(tuple(ids))
    chosen, rejected = conts
    divergence = next(
        (i for i, (a, b) in enumerate(zip(chosen, rejected, strict=False)) if a != b), None
    )
    if divergence is None:
        raise ValueError(
            f"the pair has no divergence point (one continuation is a prefix of the other): "
            f"chosen {pair.chosen!r:.60}, rejected {pair.rejected!r:.60}"
        )
    return EncodedPair(
        tuple(context), chosen, rejected, divergence, label_smoothing=pair.label_smoothing
    )


def pair_logprobs(
    model: Any,
    pairs: Sequence[EncodedPair],
    *,
    pad_id: int,
    device: str = "cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed log-probabilities of each pair's chosen and rejected continuation, from the
    divergence point on, under ``model`` (one forward pass over ``2 * len(pairs)`` right-padded
    rows; gradients flow unless the caller disables them)."""
    import torch

    if not pairs:
        raise ValueError("no pairs to score")
    rows: list[tuple[int, ...]] = []
    starts: list[int] = []
    for p in pairs:
        for cont in (p.chosen_ids, p.rejected_ids):
            rows.append(p.context_ids + cont)
            starts.append(len(p.context_ids) + p.divergence)
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), int(pad_id), dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        mask[i, : len(row)] = 1
    ids, mask = ids.to(device), mask.to(device)
    logits = model(input_ids=ids, attention_mask=mask).logits.float()
    logp = torch.log_softmax(logits[:, :-1], dim=-1)
    token_logp = logp.gather(2, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
    # Target position j predicts token j + 1: keep the tokens from the divergence point on.
    positions = torch.arange(1, width, device=ids.device).unsqueeze(0)
    lengths = mask.sum(dim=1, keepdim=True)
    start = torch.tensor(starts, device=ids.device).unsqueeze(1)
    keep = (positions >= start) & (positions < lengths)
    sums = (token_logp * keep).sum(dim=1)
    return sums[0::2], sums[1::2]


def sequence_logprobs(
    model: Any,
    tokenizer: Any,
    pairs: Sequence[PreferencePair],
    *,
    device: str = "cpu",
    batch_size: int = 32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Chosen and rejected log-probabilities of ``pairs`` (summed from the divergence point),
    ``batch_size`` pairs per forward pass, without gradients."""
    import torch

    batch_size = _check_int("batch_size", batch_size, 1)
    pad = getattr(tokenizer, "pad_token_id", None)
    if pad is None:
        pad = getattr(tokenizer, "eos_token_id", None)
    if pad is None:
        raise ValueError("the tokenizer has neither a pad nor an eos token to pad with")
    encoded = [encode_pair(tokenizer, p) for p in pairs]
    if not encoded:
        raise ValueError("no pairs to score")
    chosen, rejected = [], []
    with torch.no_grad():
        for start in range(0, len(encoded), batch_size):
            c, r = pair_logprobs(
                model, encoded[start : start + batch_size], pad_id=int(pad), device=device
            )
            chosen.append(c)
            rejected.append(r)
    return torch.cat(chosen), torch.cat(rejected)


def check_tokenizers_match(policy_tokenizer: Any, reference_tokenizer: Any) -> None:
    """Raise ``ValueError`` unless the two tokenizers map every token to the same id and have
    the same special tokens (DPO compares the two models' log-probabilities token by token)."""
    if policy_tokenizer is reference_tokenizer:
        return
    for name in ("bos_token_id", "eos_token_id", "pad_token_id", "sep_token_id", "unk_token_id"):
        a = getattr(policy_tokenizer, name, None)
        b = getattr(reference_tokenizer, name, None)
        if a != b:
            raise ValueError(
                f"the policy and reference tokenizers differ: {name} is {a!r} against {b!r}"
            )
    va = policy_tokenizer.get_vocab()
    vb = reference_tokenizer.get_vocab()
    if va != vb:
        only = sorted(set(va.items()) ^ set(vb.items()))[:3]
        raise ValueError(
            f"the policy and reference tokenizers differ ({len(va)} against {len(vb)} tokens; "
            f"first differences {only})"
        )


def _vocab_size(model: Any) -> int:
    head = model.get_output_embeddings()
    return int(head.weight.shape[0])


# ------------------------------------------------------------------------------ DPO training
@dataclass(frozen=True, kw_only=True)
class DPOConfig:
    """Settings of :func:`train_dpo` (frozen, checked).

    Attributes:
        epochs: passes over the pairs (the paper: 1).
        batch_size: pairs per optimiser step (the paper: 64 by gradient accumulation).
        learning_rate: peak AdamW rate (paper 1e-6 on 7B models; a tiny model needs more).
        warmup_ratio: linear warm-up over this share of the steps, then cosine decay
            (the paper: 3%).
        min_lr_ratio: the cosine ends at ``learning_rate * min_lr_ratio``.
        weight_decay: AdamW weight decay (the paper: 0.05).
        max_grad_norm: gradient clipping (``None``: off).
        beta: the DPO temperature (``scale_coeff``, 0.1).
        label_smoothing: ``"visits"`` (per-pair :func:`visit_label_smoothing`) or a constant in
            [0, 0.5] (0 is plain DPO).
        loss: ``"sigmoid"`` (DPO) or ``"ipo"`` (needs ``label_smoothing=0``).
        nll_weight: adds ``nll_weight`` times the chosen continuation's mean token negative
            log-likelihood (from the divergence point) to the loss: the DPO + NLL objective of
            Iterative RPO (Pang et al., arXiv 2404.19733), which keeps DPO from lowering the
            chosen likelihood along with the rejected one. 0 (the MCTS-DPO paper) turns it off.
        device: where to train.
    """

    epochs: int = 1
    batch_size: int = 8
    learning_rate: float = 1e-4
    warmup_ratio: float = 0.03
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.05
    max_grad_norm: float | None = 1.0
    beta: float = 0.1
    label_smoothing: float | str = "visits"
    loss: str = "sigmoid"
    nll_weight: float = 0.0
    device: str = "cpu"

    def __post_init__(self) -> None:
        _check_int("epochs", self.epochs, 1)
        _check_real("nll_weight", self.nll_weight, 0.0)
        _check_int("batch_size", self.batch_size, 1)
        _check_real("learning_rate", self.learning_rate, 0.0, 10.0, open_low=True)
        _check_real("warmup_ratio", self.warmup_ratio, 0.0, 1.0)
        _check_real("min_lr_ratio", self.min_lr_ratio, 0.0, 1.0)
        _check_real("weight_decay", self.weight_decay, 0.0, 10.0)
        if self.max_grad_norm is not None:
            _check_real("max_grad_norm", self.max_grad_norm, 0.0, open_low=True)
        _check_real("beta", self.beta, 0.0, open_low=True)
        if isinstance(self.label_smoothing, str):
            if self.label_smoothing != "visits":
                raise ValueError(
                    f"label_smoothing must be 'visits' or a number in [0, 0.5], not "
                    f"{self.label_smoothing!r}"
                )
        else:
            _check_real("label_smoothing", self.label_smoothing, 0.0, 0.5)
        if self.loss not in ("sigmoid", "ipo"):
            raise ValueError(f"loss must be 'sigmoid' or 'ipo', not {self.loss!r}")
        if self.loss == "ipo" and self.label_smoothing != 0:
            raise ValueError("the IPO loss takes no label smoothing: set label_smoothing=0")
        if not isinstance(self.device, str) or not self.device:
            raise TypeError(f"device must be a device name such as 'cpu', not {self.device!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class DPOLog:
    """What :func:`train_dpo` did: the loss, reward accuracy (share of pairs whose implicit
    reward ``beta * log-ratio`` is higher for the chosen continuation) and reward margin of
    every step, the pairs used and dropped (no token divergence), and the time."""

    losses: tuple[float, ...]
    reward_accuracies: tuple[float, ...]
    margins: tuple[float, ...]
    pairs: int
    dropped: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def train_dpo(
    policy: Any,
    reference: Any,
    tokenizer: Any,
    pairs: Sequence[PreferencePair],
    *,
    config: DPOConfig,
    rng: np.random.Generator,
    reference_tokenizer: Any = None,
    progress: Callable[[Any], None] | None = None,
) -> DPOLog:
    """DPO-train ``policy`` (in place) on ``pairs`` against the frozen ``reference``.

    The reference log-probabilities are computed once, before training, without gradients.
    Pairs whose tokens have no divergence point are dropped (counted in the log). AdamW with
    warm-up and cosine decay (:func:`~treesearch.train.lm_common.run_steps`); ``progress``
    receives a :class:`~treesearch.train.lm_common.TrainProgress` once per epoch. Minibatch
    order comes from ``rng``.

    Raises:
        ValueError: no pairs (or none left), tokenizers or vocabularies that differ.
    """
    import torch

    from .lm_common import LMTrainConfig, run_steps

    if not isinstance(config, DPOConfig):
        raise TypeError(f"config must be a DPOConfig, not {type(config).__name__}")
    check_rng(rng)
    pairs = list(pairs)
    if not pairs:
        raise ValueError("the preference set is empty: DPO needs at least one pair")
    if reference is policy:
        raise ValueError("the reference model must be a separate, frozen copy of the policy")
    check_tokenizers_match(tokenizer, reference_tokenizer or tokenizer)
    if _vocab_size(policy) != _vocab_size(reference):
        raise ValueError(
            f"the policy has {_vocab_size(policy)} output tokens, the reference "
            f"{_vocab_size(reference)}: they must share one vocabulary"
        )
    pad = getattr(tokenizer, "pad_token_id", None)
    if pad is None:
        pad = getattr(tokenizer, "eos_token_id", None)
    if pad is None:
        raise ValueError("the tokenizer has neither a pad nor an eos token to pad with")
    encoded = []
    dropped = 0
    for pair in pairs:
        try:
            encoded.append(encode_pair(tokenizer, pair))
        except ValueError:
            dropped += 1
    if not encoded:
        raise ValueError(f"none of the {len(pairs)} pairs has a token divergence point")
    if config.label_smoothing == "visits":
        eps = torch.tensor([e.label_smoothing for e in encoded], dtype=torch.float32)
    else:
        eps = torch.full((len(encoded),), float(config.label_smoothing))
    device = config.device
    reference.to(device)
    reference.eval()
    with torch.no_grad():
        ref_c, ref_r = [], []
        for start in range(0, len(encoded), 32):
            c, r = pair_logprobs(
                reference, encoded[start : start + 32], pad_id=int(pad), device=device
            )
            ref_c.append(c)
            ref_r.append(r)
    ref_chosen, ref_rejected = torch.cat(ref_c), torch.cat(ref_r)
    policy.to(device)
    steps_per_epoch = math.ceil(len(encoded) / config.batch_size)
    num_steps = config.epochs * steps_per_epoch
    lm_config = LMTrainConfig(
        num_steps=num_steps,
        batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        warmup_steps=round(config.warmup_ratio * num_steps),
        min_lr_ratio=config.min_lr_ratio,
        weight_decay=config.weight_decay,
        max_grad_norm=config.max_grad_norm,
        group_by_length=False,
        device=device,
        log_every=max(1, steps_per_epoch),
    )
    accuracies: list[float] = []
    margins: list[float] = []
    chosen_tokens = torch.tensor(
        [len(e.chosen_ids) - e.divergence for e in encoded], dtype=torch.float32
    )

    def loss_of(indices: np.ndarray) -> tuple[torch.Tensor, int]:
        batch = [encoded[i] for i in indices]
        chosen, rejected = pair_logprobs(policy, batch, pad_id=int(pad), device=device)
        index = torch.as_tensor(indices, dtype=torch.long)
        rc, rr = ref_chosen[index].to(device), ref_rejected[index].to(device)
        losses = dpo_loss(
            chosen,
            rejected,
            rc,
            rr,
            beta=config.beta,
            label_smoothing=eps[index].to(device),
            loss=config.loss,
        )
        with torch.no_grad():
            reward_w = config.beta * (chosen - rc)
            reward_l = config.beta * (rejected - rr)
            accuracies.append(float((reward_w > reward_l).float().mean()))
            margins.append(float((reward_w - reward_l).mean()))
        tokens = sum(len(e.context_ids) + len(e.chosen_ids) + len(e.rejected_ids) for e in batch)
        loss = losses.mean()
        if config.nll_weight > 0:
            loss = loss - config.nll_weight * (chosen / chosen_tokens[index].to(device)).mean()
        return loss, tokens

    lengths = [len(e.context_ids) + max(len(e.chosen_ids), len(e.rejected_ids)) for e in encoded]
    log = run_steps(policy, lm_config, rng, lengths, loss_of, progress)
    return DPOLog(
        losses=log.losses,
        reward_accuracies=tuple(accuracies),
        margins=tuple(margins),
        pairs=len(encoded),
        dropped=dropped,
        seconds=log.seconds,
    )


# ------------------------------------------------------------------------------ the loop
_LEVELS = ("easy", "medium", "hard")
_PHASES = ("search", "train", "evaluate")


def _check_levels(name: str, levels: object) -> tuple[str, ...]:
    if isinstance(levels, str) or not isinstance(levels, tuple) or not levels:
        raise TypeError(f"{name} must be a non-empty tuple of level names, not {levels!r}")
    for level in levels:
        if level not in _LEVELS:
            raise ValueError(f"{name}: unknown level {level!r}; expected one of {_LEVELS}")
    return levels


@dataclass(frozen=True, kw_only=True)
class MCTSDPOConfig:
    """Every setting of :func:`run_mcts_dpo` (frozen, checked).

    Defaults are the measured run of ``docs/training.md`` on the toy world: two iterations in
    about six minutes with one torch thread on a shared 2-core Xeon. The paper's values
    (``scripts/mcts_mathqa.sh``) are given in brackets.

    Attributes:
        seed: the one seed of the run.
        iterations: online iterations (search, pairs, DPO, evaluation).
        problems_per_iteration: fresh training problems searched per iteration, drawn
            uniformly from ``train_levels``.
        train_levels: toy-world levels of the training problems.
        n_iters: simulations per committed step [64]; ``root_iters_multiplier`` times as many
            at the root [4].
        n_actions: candidate steps per expansion [2].
        w_exp: PUCT weight [1]. gamma: backup discount [1]. length_penalty: prior lambda
            [1.25].
        depth_limit: steps a simulation may expand below the search root [3]; ``None``: down
            to a terminal state (toy solutions are a handful of steps).
        depth_discount_offset: scores are divided by ``max(parent depth - offset, 1)`` [3];
            ``None``: no division.
        temperature: sampling temperature of the search policy [1.0].
        evaluator: ``"oracle"`` (default: the exact step checker, which reads the gold
            solution, as the paper's self-evaluation prompt carries the reference solution as a
            hint) or ``"prm"`` (the shipped PRM, ``"seed"`` preset). With the PRM shipped
            since 2026-12-07 and the defaults, held-out medium accuracy went from 0.48 to
            0.535 and 0.5325 in two iterations, as with the exact checker (0.5225, 0.535); the
            PRM shipped before, at chance on medium steps, gave noisy pairs, and at rate 5e-5
            accuracy fell to 0.40 and 0.355 (measured, ``docs/training.md``).
        aggregation: how the evaluator's step scores become a node's score [``"min"``]: the
            shipped PRM judges each step given the ones before it, so a path is as good as its
            weakest step; for the exact checker ``"min"`` and ``"last"`` agree.
        correct_outcome, wrong_outcome: the outcome ``O`` added at terminal nodes [+1, -1;
            the released code adds -0.5 for wrong].
        outcome_check: what counts as right for ``O``: ``"answer"`` (the final answer equals
            the gold answer, the paper's check) or ``"steps"`` (finished with every step right,
            ``toymath.check_solution``; the toy world can check steps exactly, and its held-out
            accuracy counts a lucky right answer after a wrong step as wrong).
        search_tokens: token budget of one problem's search (a safety net).
        max_step_tokens: a step is cut after this many tokens. extra_steps: a state is
            terminal after ``num_steps + 2 + extra_steps`` steps.
        rejected: ``"lowest"`` Q [paper] or ``"random"`` non-best [released code's default].
        min_q_gap: pairs need ``chosen_q - rejected_q > min_q_gap``.
        beta [0.1], label_smoothing [``"visits"``, ``--conservative``], loss [``"sigmoid"``],
        nll_weight [0], learning_rate [1e-6 on 7B], epochs [1], batch_size [64],
        weight_decay [0.05], warmup_ratio [0.03]: DPO (:class:`DPOConfig`). On the toy policy
        a learning rate of 1e-4 or more lowered held-out greedy accuracy within 24 steps
        (measured on 46 clean easy-level pairs with the earlier, weaker policy: 77.5% to
        71.5% at 1e-4, 50.5% at 2e-4); 2e-5 is the default.
        eval_levels, eval_size: held-out greedy accuracy on ``heldout_split(level,
            eval_size)`` before the first and after every iteration.
        policy_path: the SFT start and frozen reference (``None``: the shipped toy policy).
        prm_path: the PRM (``None``: the shipped toy PRM).
        device: where the models run.
    """

    seed: int = 0
    iterations: int = 2
    problems_per_iteration: int = 256
    train_levels: tuple[str, ...] = ("easy", "medium")
    n_iters: int = 16
    root_iters_multiplier: int = 4
    n_actions: int = 2
    w_exp: float = 1.0
    gamma: float = 1.0
    length_penalty: float = 1.25
    depth_limit: int | None = None
    depth_discount_offset: int | None = 3
    temperature: float = 1.0
    evaluator: str = "oracle"
    aggregation: str = "min"
    correct_outcome: float = 1.0
    outcome_check: str = "answer"
    wrong_outcome: float = -1.0
    search_tokens: int = 20_000
    max_step_tokens: int = 24
    extra_steps: int = 1
    rejected: str = "lowest"
    min_q_gap: float = 0.0
    beta: float = 0.1
    label_smoothing: float | str = "visits"
    loss: str = "sigmoid"
    nll_weight: float = 0.0
    learning_rate: float = 2e-5
    epochs: int = 2
    batch_size: int = 8
    weight_decay: float = 0.05
    warmup_ratio: float = 0.03
    eval_levels: tuple[str, ...] = ("easy", "medium", "hard")
    eval_size: int = 400
    policy_path: str | None = None
    prm_path: str | None = None
    device: str = "cpu"

    def __post_init__(self) -> None:
        _check_int("seed", self.seed, 0)
        _check_int("iterations", self.iterations, 1)
        _check_int("problems_per_iteration", self.problems_per_iteration, 1)
        _check_levels("train_levels", self.train_levels)
        _check_levels("eval_levels", self.eval_levels)
        _check_int("n_iters", self.n_iters, 1)
        _check_int("root_iters_multiplier", self.root_iters_multiplier, 1)
        _check_int("n_actions", self.n_actions, 1)
        _check_real("w_exp", self.w_exp, 0.0)
        _check_real("gamma", self.gamma, 0.0, 1.0)
        _check_real("length_penalty", self.length_penalty, 0.0)
        if self.depth_limit is not None:
            _check_int("depth_limit", self.depth_limit, 1)
        if self.depth_discount_offset is not None:
            _check_int("depth_discount_offset", self.depth_discount_offset, 0)
        _check_real("temperature", self.temperature, 0.0, open_low=True)
        if self.evaluator not in ("prm", "oracle"):
            raise ValueError(f"evaluator must be 'prm' or 'oracle', not {self.evaluator!r}")
        check_aggregation(self.aggregation)
        _check_real("correct_outcome", self.correct_outcome, -math.inf)
        if self.outcome_check not in ("answer", "steps"):
            raise ValueError(
                f"outcome_check must be 'answer' or 'steps', not {self.outcome_check!r}"
            )
        _check_real("wrong_outcome", self.wrong_outcome, -math.inf)
        _check_int("search_tokens", self.search_tokens, 1)
        _check_int("max_step_tokens", self.max_step_tokens, 1)
        _check_int("extra_steps", self.extra_steps, 0)
        if self.rejected not in ("lowest", "random"):
            raise ValueError(f"rejected must be 'lowest' or 'random', not {self.rejected!r}")
        _check_real("min_q_gap", self.min_q_gap, 0.0)
        _check_int("eval_size", self.eval_size, 1)
        if self.eval_size > 1000:
            raise ValueError(f"eval_size must be at most 1000, not {self.eval_size}")
        for name in ("policy_path", "prm_path"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise TypeError(f"{name} must be a non-empty str or None, not {value!r}")
        self.dpo_config()  # checks the DPO fields

    def dpo_config(self) -> DPOConfig:
        return DPOConfig(
            epochs=self.epochs,
            batch_size=self.batch_size,
            learning_rate=self.learning_rate,
            warmup_ratio=self.warmup_ratio,
            weight_decay=self.weight_decay,
            beta=self.beta,
            label_smoothing=self.label_smoothing,
            loss=self.loss,
            nll_weight=self.nll_weight,
            device=self.device,
        )

    def to_dict(self) -> dict[str, Any]:
        return config_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MCTSDPOConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown MCTSDPOConfig fields: {sorted(unknown)}")
        values = dict(data)
        for name in ("train_levels", "eval_levels"):
            if name in values:
                values[name] = tuple(values[name])
        return cls(**values)


def evaluate_greedy(
    model: Any,
    tokenizer: Any,
    *,
    levels: Sequence[str],
    size: int,
    rng: np.random.Generator,
) -> dict[str, dict[str, Any]]:
    """Greedy accuracy of ``model`` on ``toymath.heldout_split(level, size)`` per level:
    ``accuracy`` (finished, every step right: the measure of
    :func:`~treesearch.train.toymath_recipe.evaluate_policy`) and ``answer_accuracy``."""
    from treesearch.adapters import toymath

    from .toymath_recipe import sample_solutions

    out = {}
    for level in _check_levels("levels", tuple(levels)):
        problems = toymath.heldout_split(level, size)
        solutions = sample_solutions(model, tokenizer, problems, samples=1, temperature=0, rng=rng)
        flat = [s[0] for s in solutions]
        out[level] = {
            "accuracy": sum(s.solved for s in flat) / len(flat),
            "answer_accuracy": sum(s.answer_correct for s in flat) / len(flat),
            "problems": len(flat),
        }
    return out


LOOP = "mcts-dpo"


class _Loop(PhasedLoop[MCTSDPOConfig]):
    """One run of :func:`run_mcts_dpo`: paths, models and phases."""

    loop = LOOP

    def __init__(self, out_dir: Path, config: MCTSDPOConfig, progress: Any) -> None:
        from transformers import AutoTokenizer

        from .toymath_recipe import shipped_checkpoint

        self.start = (
            Path(config.policy_path) if config.policy_path else shipped_checkpoint("policy")
        )
        self.prm = Path(config.prm_path) if config.prm_path else shipped_checkpoint("prm")
        self.tokenizer = AutoTokenizer.from_pretrained(self.start)
        super().__init__(out_dir, config, progress)

    def policy_path(self, iteration: int) -> Path:
        return self.start if iteration == 0 else self.folder(iteration) / "policy"

    # ------------------------------------------------------------------ phases
    def evaluate(self, iteration: int) -> dict[str, Any]:
        from .atomic import atomic_write_json

        model = self.load(self.policy_path(iteration))
        greedy = evaluate_greedy(
            model,
            self.tokenizer,
            levels=self.cfg.eval_levels,
            size=self.cfg.eval_size,
            rng=phase_rng(self.cfg.seed, iteration, "evaluate"),
        )
        self.folder(iteration).mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.folder(iteration) / "eval.json", greedy)
        accuracy = ", ".join(f"{lv} {greedy[lv]['accuracy']:.3f}" for lv in greedy)
        self.say(iteration, "evaluate", 1, 1, f"greedy accuracy {accuracy}")
        return {"greedy": greedy}

    def search(self, iteration: int) -> dict[str, Any]:
        from treesearch.adapters import toymath
        from treesearch.adapters.toymath_search import ScalingConfig, ToyMathSearcher, final_answer
        from treesearch.results import write_traces

        from .traces import with_outcomes

        cfg = self.cfg
        rng = phase_rng(cfg.seed, iteration, "search")
        problems = []
        levels = []
        for _ in range(cfg.problems_per_iteration):
            level = cfg.train_levels[int(rng.integers(len(cfg.train_levels)))]
            problems.append(toymath.generate_problem(rng, toymath.DIFFICULTIES[level]))
            levels.append(level)
        searcher = ToyMathSearcher(
            self.load(self.policy_path(iteration - 1)),
            self.load(self.prm),
            self.tokenizer,
            config=ScalingConfig(
                temperature=cfg.temperature,
                max_step_tokens=cfg.max_step_tokens,
                extra_steps=cfg.extra_steps,
                device=cfg.device,
            ),
        )
        policy = searcher.policy(temperature=cfg.temperature, num_candidates=cfg.n_actions)
        traces: list[Trace] = []
        solved = nodes = tokens = 0
        for index, (problem, level) in enumerate(zip(problems, levels, strict=True)):
            search = MCTSDPOSearch(
                policy,
                searcher.verifier(cfg.evaluator, problem),
                outcome_fn=_toy_outcome(cfg, problem),
                n_iters=cfg.n_iters,
                root_iters_multiplier=cfg.root_iters_multiplier,
                w_exp=cfg.w_exp,
                gamma=cfg.gamma,
                length_penalty=cfg.length_penalty,
                depth_limit=cfg.depth_limit,
                depth_discount_offset=cfg.depth_discount_offset,
                aggregation=cfg.aggregation,
                answer_fn=final_answer,
            )
            for component in (policy, searcher.prm):
                component.cache.clear()  # one problem's prefixes are of no use to the next
            root = searcher.root(problem)
            gold = str(problem.answer)
            found = search.search(
                root,
                Budget(tokens=cfg.search_tokens),
                rng=rng,
                metadata={
                    "problem_id": f"{iteration}-{index}",
                    "prompt": root.prompt_text,
                    "question": problem.prompt,
                    "answer": gold,
                    "level": level,
                },
            )
            solved += found.result.answer_text == gold
            nodes += found.tree.num_nodes
            tokens += found.result.usage.tokens
            traces.extend(found.traces)
            self.say(iteration, "search", index + 1, len(problems))
        labelled = with_outcomes(traces, _answer_matches)
        self.folder(iteration).mkdir(parents=True, exist_ok=True)
        write_traces(self.folder(iteration) / "traces.jsonl", labelled)
        return {
            "problems": len(problems),
            "levels": {lv: levels.count(lv) for lv in cfg.train_levels},
            "committed_answer_correct": solved / len(problems),
            "traces": len(labelled),
            "mean_nodes": nodes / len(problems),
            "policy_tokens": tokens,
        }

    def train(self, iteration: int) -> dict[str, Any]:
        from treesearch.results import read_traces

        from .lm_common import save_pretrained_atomic

        cfg = self.cfg
        rng = phase_rng(cfg.seed, iteration, "train")
        traces = read_traces(self.folder(iteration) / "traces.jsonl")
        pairs = build_preference_pairs(
            traces,
            rejected=cfg.rejected,  # type: ignore[arg-type]
            rng=rng,
            min_q_gap=cfg.min_q_gap,
        )
        write_pairs(self.folder(iteration) / "pairs.jsonl", pairs)
        policy = self.load(self.policy_path(iteration - 1))
        info: dict[str, Any] = {"pairs": len(pairs)}
        if pairs:
            reference = self.load(self.start)
            for parameter in reference.parameters():
                parameter.requires_grad_(False)
            log = train_dpo(
                policy,
                reference,
                self.tokenizer,
                pairs,
                config=cfg.dpo_config(),
                rng=rng,
                progress=lambda p: self.say(
                    iteration, "train", p.step, p.num_steps, f"DPO loss {p.loss:.4f}"
                ),
            )
            head = log.losses[: max(1, len(log.losses) // 10)]
            tail = log.losses[-max(1, len(log.losses) // 10) :]
            info.update(
                pairs_used=log.pairs,
                pairs_dropped=log.dropped,
                steps=len(log.losses),
                first_loss=round(sum(head) / len(head), 5),
                final_loss=round(sum(tail) / len(tail), 5),
                final_reward_accuracy=round(float(np.mean(log.reward_accuracies[-len(tail) :])), 4),
                final_margin=round(float(np.mean(log.margins[-len(tail) :])), 5),
                train_seconds=round(log.seconds, 2),
            )
        else:
            info["skipped"] = "no preference pairs: the policy is kept unchanged"
        save_pretrained_atomic(
            self.policy_path(iteration),
            policy,
            self.tokenizer,
            training={"loop": LOOP, "iteration": iteration, **info},
        )
        return info

    # ------------------------------------------------------------------ report
    def report(self) -> dict[str, Any]:
        iterations = self.iteration_entries(_PHASES)
        history = [
            {
                "iteration": entry["iteration"],
                "greedy": {lv: v["accuracy"] for lv, v in entry["evaluate"]["greedy"].items()},
            }
            for entry in iterations
            if "evaluate" in entry
        ]
        return {
            "loop": LOOP,
            "algorithm": "MCTS-DPO (Xie et al., arXiv 2405.00451)",
            "config": self.cfg.to_dict(),
            "complete": self.complete(),
            "greedy_accuracy": self.greedy_accuracy(iterations, self.cfg.eval_levels),
            "history": history,
            "iterations": iterations,
            "seconds": self.seconds(),
        }

    def go(self) -> dict[str, Any]:
        self.run_phase(0, "evaluate", self.evaluate)
        for i in range(1, self.cfg.iterations + 1):
            self.run_phase(i, "search", self.search)
            self.run_phase(i, "train", self.train)
            self.run_phase(i, "evaluate", self.evaluate)
        return self.write_report()


def _answer_matches(trace: Trace) -> float:
    """A toy trace's outcome: 1.0 when its final answer is the gold one, else 0.0."""
    return float(trace.answer is not None and trace.answer == trace.metadata.get("answer"))


def _toy_outcome(config: MCTSDPOConfig, problem: Any) -> OutcomeFn:
    """The outcome ``O`` of a terminal toy state (``config.outcome_check``)."""
    from treesearch.adapters import toymath
    from treesearch.adapters.toymath_search import final_answer

    gold = str(problem.answer)

    def outcome(state: State) -> float:
        if config.outcome_check == "answer":
            right = final_answer(state) == gold
        else:
            steps: Sequence[Any] = getattr(state, "steps", ())
            contents = [s.content for s in steps if s.content.strip()]
            ended = bool(steps) and getattr(steps[-1], "stop", None) == "eos"
            right = ended and toymath.check_solution(problem, contents).solved
        return config.correct_outcome if right else config.wrong_outcome

    return outcome


def run_mcts_dpo(
    out_dir: str | Path,
    config: MCTSDPOConfig | None = None,
    *,
    progress: Callable[[Any], None] | None = None,
) -> dict[str, Any]:
    """Run (or resume) the online MCTS-DPO loop on the toy arithmetic world.

    Iteration 0 measures the SFT start; each iteration ``k`` then runs the phases ``search``
    (fresh training problems searched with the policy of iteration ``k - 1``; traces written to
    ``iteration-k/traces.jsonl`` with outcomes 1.0 / 0.0 from the exact answer check),
    ``train`` (pairs built from that file, ``iteration-k/pairs.jsonl``; DPO against the frozen
    SFT start; the policy saved to ``iteration-k/policy/``) and ``evaluate`` (held-out greedy
    accuracy, ``iteration-k/eval.json``). Each phase is written atomically and recorded in
    ``out_dir/state.json`` (:class:`~treesearch.train.loop.RunState`), and draws its randomness
    from :func:`~treesearch.train.loop.phase_rng` ``(seed, iteration, phase)``, so a rerun skips
    finished phases and a resumed run equals an uninterrupted one. A folder holding a run with
    another config is refused (``ValueError``); ``iterations`` may be raised to train further.

    Args:
        out_dir: the run's folder.
        config: the settings (default :class:`MCTSDPOConfig`).
        progress: called with a :class:`~treesearch.train.loop.LoopProgress` as work advances.

    Returns:
        The report, also written to ``out_dir/report.json``: ``history`` (held-out greedy
        accuracy per level for iteration 0 and each iteration), ``greedy_accuracy`` (the same
        per level), and each phase's numbers and seconds under ``iterations``.
    """
    config = MCTSDPOConfig() if config is None else config
    if not isinstance(config, MCTSDPOConfig):
        raise TypeError(f"config must be an MCTSDPOConfig, not {type(config).__name__}")
    if progress is not None and not callable(progress):
        raise TypeError(f"progress must be callable or None, not {progress!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return _Loop(out, config, progress).go()
