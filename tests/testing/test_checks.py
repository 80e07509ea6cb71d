"""Each conformance check catches what it claims, and correct objects pass."""

from __future__ import annotations

import itertools
import math
import pickle
import re
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from treesearch.backup import apply_virtual_loss, backup
from treesearch.budget import Budget
from treesearch.evaluators import LegalActionsPolicy, RandomRollout, UniformEvaluator
from treesearch.interfaces import Candidate, Evaluation, Score
from treesearch.testing import (
    ConformanceError,
    TokenPolicy,
    assert_tree_invariants,
    check_evaluator,
    check_policy,
    check_state,
    check_verifier,
)
from treesearch.testing import strategies as tst
from treesearch.testing.strategies import HashVerifier, RandomTreeState
from treesearch.tree import Tree


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


# ---------------------------------------------------------------------------- a correct game
@dataclass(frozen=True)
class Race:
    """Two players add 1 or 2 to a running total; whoever reaches ``target`` wins."""

    total: int = 0
    player: int = 0
    target: int = 6

    @property
    def to_play(self) -> int:
        return self.player

    @property
    def key(self):
        return (self.total, self.player, self.target)

    def legal_actions(self):
        if self.is_terminal():
            return ()
        return tuple(a for a in (1, 2) if self.total + a <= self.target)

    def step(self, action):
        if action not in self.legal_actions():
            raise ValueError(f"illegal action {action!r}")
        return type(self)(self.total + action, 1 - self.player, self.target)

    def is_terminal(self) -> bool:
        return self.total >= self.target

    def terminal_value(self):
        return -1.0 if self.is_terminal() else None


def problems_of(excinfo: pytest.ExceptionInfo[ConformanceError]) -> str:
    return "\n".join(excinfo.value.problems)


def test_correct_state_passes():
    check_state(Race(), rng=rng(), require_outcomes=True)
    check_state(Race(target=40), rng=rng(), num_games=5, max_moves=40)


def test_terminal_start_passes():
    check_state(Race(total=6), rng=rng(), require_outcomes=True)


def test_conformance_error_is_value_error_and_lists_problems():
    assert issubclass(ConformanceError, ValueError)
    assert not issubclass(ConformanceError, AssertionError)
    err = ConformanceError("thing", ["first fix", "second fix"])
    assert err.problems == ("first fix", "second fix")
    assert "2 problems" in str(err) and "1. first fix" in str(err) and "2. second fix" in str(err)
    again = pickle.loads(pickle.dumps(err))
    assert again.problems == err.problems and str(again) == str(err)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"rng": 0}, TypeError, "Generator"),
        ({"rng": rng(), "num_games": 0}, ValueError, "num_games"),
        ({"rng": rng(), "max_moves": -1}, ValueError, "max_moves"),
    ],
)
def test_check_state_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        check_state(Race(), **kwargs)


# ---------------------------------------------------------------------------- broken states
class MutatingRace:
    """step() records the move on self before returning a new state."""

    def __init__(self, total=0, player=0, history=None):
        self.total = total
        self.player = player
        self.history = list(history or [])

    to_play = property(lambda self: self.player)
    key = property(lambda self: (self.total, self.player))

    def legal_actions(self):
        return () if self.is_terminal() else (1, 2)

    def step(self, action):
        if action not in (1, 2):
            raise ValueError("illegal")
        self.history.append(action)  # the bug
        return MutatingRace(self.total + action, 1 - self.player, self.history)

    def is_terminal(self):
        return self.total >= 6

    def terminal_value(self):
        return -1.0 if self.is_terminal() else None


class SlotsMutatingRace:
    __slots__ = ("player", "total")

    def __init__(self, total=0, player=0):
        self.total = total
        self.player = player

    to_play = property(lambda self: self.player)
    key = property(lambda self: (self.total, self.player))

    def legal_actions(self):
        return () if self.is_terminal() else (1, 2)

    def step(self, action):
        if action not in (1, 2):
            raise ValueError("illegal")
        child = SlotsMutatingRace(self.total + action, 1 - self.player)
        self.player = 1 - self.player  # the bug: flips the parent's player
        return child

    def is_terminal(self):
        return self.total >= 6

    def terminal_value(self):
        return -1.0 if self.is_terminal() else None


_serial = itertools.count()


@dataclass(frozen=True)
class NoisyRace(Race):
    """step() stamps each child with a global serial number that ends up in its key."""

    serial: int = 0

    @property
    def key(self):
        return (self.total, self.player, self.serial)

    def step(self, action):
        if action not in self.legal_actions():
            raise ValueError("illegal")
        return NoisyRace(self.total + action, 1 - self.player, self.target, next(_serial))


@dataclass(frozen=True)
class TerminalWithActions(Race):
    def legal_actions(self):
        return (1, 2)

    def step(self, action):
        if action not in (1, 2):
            raise ValueError("illegal")
        return type(self)(self.total + action, 1 - self.player, self.target)


@dataclass(frozen=True)
class ListKey(Race):
    @property
    def key(self):
        return [self.total, self.player]


@dataclass(frozen=True)
class MethodKey(Race):
    def key(self):  # forgot @property
        return (self.total, self.player)


@dataclass(frozen=True)
class IdentityKey(Race):
    """Equal states (==) but a key built from id()."""

    @property
    def key(self):
        return (self.total, id(self))


@dataclass(frozen=True)
class AcceptsIllegal(Race):
    def step(self, action):
        amount = action if action in (1, 2) else 1  # the bug: no validation
        return type(self)(self.total + amount, 1 - self.player, self.target)


@dataclass(frozen=True)
class KeyErrorOnIllegal(Race):
    def step(self, action):
        amount = {1: 1, 2: 2}[action]  # KeyError instead of ValueError
        return type(self)(self.total + amount, 1 - self.player, self.target)


@dataclass(frozen=True)
class DeadEnd(Race):
    """Only +2 moves, target odd: at total = target - 1 nothing is legal yet nothing has ended."""

    target: int = 5

    def legal_actions(self):
        if self.is_terminal():
            return ()
        return (2,) if self.total + 2 <= self.target else ()


@dataclass(frozen=True)
class NoOutcome(Race):
    def terminal_value(self):
        return None


@dataclass(frozen=True)
class NanOutcome(Race):
    def terminal_value(self):
        return math.nan if self.is_terminal() else None


@dataclass(frozen=True)
class StrToPlay(Race):
    @property
    def to_play(self):
        return f"p{self.player}"


@dataclass(frozen=True)
class Endless(Race):
    def legal_actions(self):
        return (0,)

    def step(self, action):
        if action != 0:
            raise ValueError("illegal")
        return type(self)(self.total, 1 - self.player, self.target)


@dataclass(frozen=True)
class CrashingStep(Race):
    def step(self, action):
        if action == 2:
            raise RuntimeError("not implemented yet")
        return super().step(action)


@dataclass(frozen=True)
class DuplicateActions(Race):
    def legal_actions(self):
        return () if self.is_terminal() else (1, 1, 2)


@dataclass(frozen=True)
class UnhashableActions(Race):
    def legal_actions(self):
        return () if self.is_terminal() else ([1], [2])

    def step(self, action):
        if action not in ([1], [2]):
            raise ValueError("illegal")
        return type(self)(self.total + action[0], 1 - self.player, self.target)


@pytest.mark.parametrize(
    ("state", "kwargs", "match"),
    [
        (MutatingRace(), {}, r"changed the state it was called on \(.*'history'"),
        (SlotsMutatingRace(), {}, r"changed the state it was called on \(.*'player'"),
        (NoisyRace(), {}, r"step is nondeterministic.*differ in key"),
        (TerminalWithActions(), {}, r"terminal state .* has 2 legal actions"),
        (ListKey(), {}, r"key is not hashable \(list\)"),
        (MethodKey(), {}, r"key is a method; make it a @property"),
        (IdentityKey(), {}, r"equal states must have equal keys"),
        (IdentityKey(), {}, r"differs from the key of its copy\.copy"),
        (AcceptsIllegal(), {}, r"step\(\) accepted an illegal action"),
        (KeyErrorOnIllegal(), {}, r"step\(\) raised KeyError for an illegal action"),
        (DeadEnd(), {}, r"non-terminal state .* has no legal actions"),
        (NoOutcome(), {"require_outcomes": True}, r"terminal_value\(\) is None"),
        (NanOutcome(), {}, r"outcomes must be finite"),
        (StrToPlay(), {}, r"to_play must be an int player index, got str"),
        (Endless(), {"max_moves": 50}, r"still going after max_moves=50"),
        (CrashingStep(), {}, r"step\(2\) raised RuntimeError.*in legal_actions"),
        (DuplicateActions(), {}, r"same action more than once"),
        (UnhashableActions(), {}, r"legal action \[1\] \(list\) is not hashable"),
    ],
    ids=lambda x: type(x).__name__ if not isinstance(x, (dict, str)) else None,
)
def test_check_state_reports(state, kwargs, match):
    with pytest.raises(ConformanceError) as excinfo:
        check_state(state, rng=rng(), **kwargs)
    text = problems_of(excinfo)
    assert any(re.search(match, p) for p in excinfo.value.problems), text


@pytest.mark.parametrize(
    ("state", "kwargs"),
    [
        (DeadEnd(), {"open_ended": True}),
        (NoOutcome(), {}),
    ],
)
def test_check_state_allows_with_flags(state, kwargs):
    check_state(state, rng=rng(), **kwargs)


def test_check_state_lists_every_problem():
    @dataclass(frozen=True)
    class TwoBugs(AcceptsIllegal):
        @property
        def key(self):
            return [self.total]

    with pytest.raises(ConformanceError) as excinfo:
        check_state(TwoBugs(), rng=rng())
    text = problems_of(excinfo)
    assert "not hashable" in text and "accepted an illegal action" in text
    assert len(excinfo.value.problems) == 2, text


def test_open_ended_state_without_actions_passes():
    @dataclass(frozen=True)
    class Text:
        text: str = ""

        to_play = 0
        key = property(lambda self: self.text)

        def legal_actions(self):
            return ()

        def step(self, action):
            if not isinstance(action, str):
                raise TypeError("actions are strings")
            return Text(self.text + action)

        def is_terminal(self):
            return self.text.endswith(".")

        def terminal_value(self):
            return None

    check_state(Text(), rng=rng(), open_ended=True)
    with pytest.raises(ConformanceError, match="no legal actions"):
        check_state(Text(), rng=rng())


# ---------------------------------------------------------------------------- policies
STATES = [Race(), Race(total=3, player=1), Race(total=5, player=0)]


class SamplingPolicy:
    """A correct stochastic policy: a random subset of the legal actions."""

    def propose(self, states, *, rng, max_tokens=None):
        out = []
        for s in states:
            acts = list(s.legal_actions())
            keep = [a for a in acts if rng.random() < 0.7] or acts[:1]
            out.append([Candidate(a, float(rng.random())) for a in keep])
        return out


@pytest.mark.parametrize(
    "policy",
    [LegalActionsPolicy(), SamplingPolicy(), TokenPolicy(tokens_per_candidate=1), TokenPolicy()],
)
def test_correct_policies_pass(policy):
    check_policy(policy, STATES, rng=rng())
    check_policy(policy, STATES, rng=rng(), max_tokens=4, num_lines=3)


def test_token_policy_stays_within_max_tokens():
    policy = TokenPolicy(tokens_per_candidate=3)
    states = [Race(), Race(total=3, player=1), Race(total=5)]
    unlimited = policy.propose(states, rng=rng())
    assert [[c.action for c in cands] for cands in unlimited] == [[1, 2], [1, 2], [1]]
    assert all(c.num_tokens == 3 and c.prior == 1.0 for cands in unlimited for c in cands)
    # 7 tokens pay for two candidates: the first state's; the rest of the batch gets none.
    short = policy.propose(states, rng=rng(), max_tokens=7)
    assert [[c.action for c in cands] for cands in short] == [[1, 2], [], []]
    assert policy.propose(states, rng=rng(), max_tokens=2) == [[], [], []]
    assert policy.calls == [3, 3, 3]
    assert TokenPolicy(tokens_per_candidate=1).propose(states, rng=rng(), max_tokens=4)[1] == [
        Candidate(1, 1.0, num_tokens=1),
        Candidate(2, 1.0, num_tokens=1),
    ]
    with pytest.raises(ValueError, match="tokens_per_candidate"):
        TokenPolicy(tokens_per_candidate=-1)


def _tampered(prior: float) -> Candidate:
    c = Candidate(1, 0.5)
    object.__setattr__(c, "prior", prior)
    return c


class _Fixed:
    def __init__(self, fn):
        self.fn = fn

    def propose(self, states, *, rng, max_tokens=None):
        return self.fn(states, rng, max_tokens)


_counter = itertools.count()


def _legal(states):
    return [[Candidate(a, 1.0) for a in s.legal_actions()] for s in states]


@pytest.mark.parametrize(
    ("policy", "match"),
    [
        (_Fixed(lambda s, r, m: _legal(s)[:-1]), r"returned 2 lists for 3 states"),
        (
            _Fixed(lambda s, r, m: [[(1, 0.5)] for _ in s]),
            r"returned a tuple for state 0: wrap each proposal in treesearch\.Candidate",
        ),
        (_Fixed(lambda s, r, m: [[_tampered(-1.0)] for _ in s]), r"priors must be finite and >= 0"),
        (_Fixed(lambda s, r, m: [[_tampered(math.nan)] for _ in s]), r"priors must be finite"),
        (_Fixed(lambda s, r, m: [[Candidate(7, 1.0)] for _ in s]), r"not in its legal_actions"),
        (
            _Fixed(lambda s, r, m: [[Candidate(1, float(next(_counter)) + 1)] for _ in s]),
            r"different candidates for two generators with the same seed",
        ),
        (
            _Fixed(lambda s, r, m: [[Candidate(1, 1.0, num_tokens=5)] for _ in s]),
            r"generated 15 tokens when given max_tokens=1",
        ),
        (
            _Fixed(lambda s, r, m: [[Candidate(1, float(len(s)))] for _ in s]),
            r"different candidates for states\[0\] alone than in a batch",
        ),
        (_Fixed(lambda s, r, m: 1 / 0), r"propose raised ZeroDivisionError"),
        (_Fixed(lambda s, r, m: "abc"), r"must return one list of Candidates per state"),
        (object(), r"has no propose"),
    ],
)
def test_check_policy_reports(policy, match):
    with pytest.raises(ConformanceError, match=match):
        check_policy(policy, STATES, rng=rng())


def test_check_policy_requires_max_tokens_keyword():
    class NoMaxTokens:
        def propose(self, states, *, rng):
            return _legal(states)

    with pytest.raises(ConformanceError, match=r"max_tokens=None\)"):
        check_policy(NoMaxTokens(), STATES, rng=rng())


def test_check_policy_nondeterminism_can_be_allowed():
    policy = _Fixed(lambda s, r, m: [[Candidate(1, float(next(_counter)) + 1)] for _ in s])
    check_policy(policy, STATES, rng=rng(), deterministic=False)


def test_check_policy_reports_state_mutation():
    class Scribble:
        def propose(self, states, *, rng, max_tokens=None):
            for s in states:
                s.history.append("seen")
            return [[Candidate(a) for a in s.legal_actions()] for s in states]

    with pytest.raises(ConformanceError, match=r"changed states\[0\].*'history'"):
        check_policy(Scribble(), [MutatingRace()], rng=rng())


@pytest.mark.parametrize(
    ("states", "error", "match"),
    [
        ([], ValueError, "empty"),
        ([Race(total=6)], ValueError, "terminal"),
        (Race(), TypeError, "sequence"),
    ],
)
def test_check_policy_bad_states(states, error, match):
    with pytest.raises(error, match=match):
        check_policy(LegalActionsPolicy(), states, rng=rng())


class LateIllegalPolicy:
    """Correct near the start; proposes an illegal action once the total reaches 4."""

    def propose(self, states, *, rng, max_tokens=None):
        return [
            [Candidate(7 if s.total >= 4 else a, 1.0) for a in s.legal_actions()] for s in states
        ]


def test_check_policy_plays_random_lines():
    # The given state is fine: only the states deeper in the game show the bug.
    check_policy(LateIllegalPolicy(), [Race()], rng=rng())
    with pytest.raises(ConformanceError, match="not in its legal_actions") as excinfo:
        check_policy(LateIllegalPolicy(), [Race()], rng=rng(), num_lines=5)
    assert re.search(
        r"on 1 given state and \d+ met on random lines .*states\[1:\]", str(excinfo.value)
    )
    # A correct policy passes on every state met, and lines never reach terminal states.
    seen = []

    class Recording(LegalActionsPolicy):
        def propose(self, states, *, rng, max_tokens=None):
            seen.extend(states)
            return super().propose(states, rng=rng, max_tokens=max_tokens)

    check_policy(Recording(), [Race()], rng=rng(), num_lines=5)
    assert {s.total for s in seen} == {0, 1, 2, 3, 4, 5}
    assert not any(s.is_terminal() for s in seen)


def test_check_policy_lines_follow_the_policy_in_open_ended_problems():
    @dataclass(frozen=True)
    class Text:
        text: str = ""

        to_play = 0
        key = property(lambda self: self.text)

        def legal_actions(self):
            return ()

        def step(self, action):
            return Text(self.text + action)

        def is_terminal(self):
            return len(self.text) >= 4

        def terminal_value(self):
            return None

    class Writer:
        def propose(self, states, *, rng, max_tokens=None):
            # Breaks the batch contract only on long texts: a NaN prior.
            bad = [_tampered(math.nan)]
            return [bad if len(s.text) >= 2 else [Candidate("ab"[len(s.text)])] for s in states]

    check_policy(Writer(), [Text()], rng=rng())
    with pytest.raises(ConformanceError, match="priors must be finite"):
        check_policy(Writer(), [Text()], rng=rng(), num_lines=1)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"num_lines": -1}, ValueError, "num_lines"),
        ({"num_lines": 1, "max_moves": 0}, ValueError, "max_moves"),
    ],
)
def test_check_policy_bad_line_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        check_policy(LegalActionsPolicy(), STATES, rng=rng(), **kwargs)


# ---------------------------------------------------------------------------- verifiers
ALL_STATES = [*STATES, Race(total=6, player=1)]


def test_check_verifier_plays_random_lines():
    def late_nan(states):  # fine until the total reaches 5
        return [math.nan if s.total >= 5 else s.total / 6 for s in states]

    check_verifier(late_nan, [Race()])
    with pytest.raises(ConformanceError, match="non-finite score") as excinfo:
        check_verifier(late_nan, [Race()], rng=rng(), num_lines=5)
    assert "met on random lines" in excinfo.value.subject
    # Terminal states are scored too.
    seen = []

    def recording(states):
        seen.extend(states)
        return [0.5] * len(states)

    check_verifier(recording, [Race()], rng=rng(), num_lines=5)
    assert any(s.is_terminal() for s in seen)
    with pytest.raises(TypeError, match="rng"):
        check_verifier(recording, [Race()], num_lines=1)
    with pytest.raises(TypeError, match="Generator"):
        check_verifier(recording, [Race()], rng=0)


@pytest.mark.parametrize(
    "verifier",
    [
        HashVerifier(1),
        HashVerifier(2).score,
        lambda states: [s.total / 6 for s in states],
        lambda states: [Score(0.5, (0.1, 0.9)) for _ in states],
        lambda states: np.array([s.total for s in states], dtype=np.float32),
    ],
)
def test_correct_verifiers_pass(verifier):
    check_verifier(verifier, ALL_STATES)


@pytest.mark.parametrize(
    ("verifier", "match"),
    [
        (lambda states: [math.nan] * len(states), r"non-finite score for state 0"),
        (lambda states: [Score(0.5, (math.inf,))] * len(states), r"non-finite score"),
        (lambda states: [0.5] * (len(states) + 1), r"returned 5 scores for 4 states"),
        (lambda states: ["good"] * len(states), r"score 0 is a str"),
        (lambda states: 0.5, r"must return a sequence of scores"),
        (lambda states: [float(next(_counter)) for _ in states], r"must be deterministic"),
        (lambda states: [len(states) * 0.1 for _ in states], r"alone but .* in a batch"),
        (lambda states: 1 / 0, r"raised ZeroDivisionError"),
        (42, r"is not a verifier"),
    ],
)
def test_check_verifier_reports(verifier, match):
    with pytest.raises(ConformanceError, match=match):
        check_verifier(verifier, ALL_STATES)


def test_check_verifier_tolerance():
    wobble = itertools.cycle([0.5, 0.5 + 1e-9])
    check_verifier(lambda states: [next(wobble) for _ in states], ALL_STATES)
    wobble = itertools.cycle([0.5, 0.6])
    with pytest.raises(ConformanceError, match="deterministic"):
        check_verifier(lambda states: [next(wobble) for _ in states], ALL_STATES[:1])


def test_check_verifier_prefers_score_method():
    class Both:
        def score(self, states):
            return [0.0] * len(states)

        def __call__(self, states):
            raise AssertionError("score() should be used")

    check_verifier(Both(), ALL_STATES)


# ---------------------------------------------------------------------------- evaluators
class _Eval:
    def __init__(self, fn):
        self.fn = fn

    def evaluate(self, states, *, rng):
        return [self.fn(s) for s in states]


def _uniform(s, value=0.0):
    n = len(s.legal_actions())
    return Evaluation(np.full(n, 1.0 / n), value)


@pytest.mark.parametrize(
    "evaluator",
    [
        UniformEvaluator(),
        UniformEvaluator(value=1.0),
        RandomRollout(num_rollouts=4),
        _Eval(lambda s: Evaluation(np.arange(1, len(s.legal_actions()) + 1), -1)),
    ],
)
def test_correct_evaluators_pass(evaluator):
    check_evaluator(evaluator, STATES, rng=rng())


@pytest.mark.parametrize(
    ("evaluator", "kwargs", "match"),
    [
        (
            _Eval(lambda s: Evaluation(np.ones(3) / 3, 0.0)),
            {},
            r"priors of shape \(3,\) for state 0, which has 2 legal actions",
        ),
        (_Eval(lambda s: Evaluation(np.ones((1, 2)), 0.0)), {}, r"priors of shape \(1, 2\)"),
        (
            _Eval(lambda s: Evaluation(np.array([1.5, -0.5][: len(s.legal_actions())]), 0.0)),
            {},
            r"negative priors",
        ),
        (
            _Eval(lambda s: Evaluation(np.full(len(s.legal_actions()), np.nan), 0.0)),
            {},
            r"non-finite priors",
        ),
        (
            _Eval(lambda s: Evaluation(np.zeros(len(s.legal_actions())), 0.0)),
            {},
            r"priors summing to 0",
        ),
        (_Eval(lambda s: _uniform(s, 2.0)), {}, r"outside value_bounds=\(-1.0, 1.0\)"),
        (_Eval(lambda s: _uniform(s, 0.5)), {"value_bounds": (0.0, 0.25)}, r"outside"),
        (_Eval(lambda s: _uniform(s, math.nan)), {"value_bounds": None}, r"must be finite"),
        (_Eval(lambda s: (np.ones(2), 0.0)), {}, r"return treesearch.Evaluation"),
        (_Eval(lambda s: _uniform(s, float(next(_counter) % 2))), {}, r"same seed"),
    ],
)
def test_check_evaluator_reports(evaluator, kwargs, match):
    with pytest.raises(ConformanceError, match=match):
        check_evaluator(evaluator, STATES, rng=rng(), **kwargs)


def test_check_evaluator_count_and_batch():
    class Short:
        def evaluate(self, states, *, rng):
            return [_uniform(s) for s in states][:-1]

    class BatchDependent:
        def evaluate(self, states, *, rng):
            return [_uniform(s, 0.1 * len(states)) for s in states]

    with pytest.raises(ConformanceError, match=r"returned 2 evaluations for 3 states"):
        check_evaluator(Short(), STATES, rng=rng())
    with pytest.raises(ConformanceError, match=r"alone than in a batch"):
        check_evaluator(BatchDependent(), STATES, rng=rng())
    with pytest.raises(ConformanceError, match="has no evaluate"):
        check_evaluator(object(), STATES, rng=rng())


def test_check_evaluator_value_bounds_can_be_disabled():
    check_evaluator(_Eval(lambda s: _uniform(s, 7.0)), STATES, rng=rng(), value_bounds=None)


# ---------------------------------------------------------------------------- trees
def good_tree() -> Tree:
    """An MCTS-like tree: root evaluated, expanded, then three simulations."""
    tree = Tree(Race())
    backup(tree, 0, 0.0)
    tree.add_children(0, [1, 2], [0.5, 0.5])
    for node, value in ((1, 0.5), (2, -0.5)):
        tree.state(node)
        backup(tree, node, value)
    tree.add_children(1, [1, 2], [0.25, 0.75])
    tree.state(3)
    backup(tree, 3, 1.0)
    return tree


def test_good_tree_passes():
    tree = good_tree()
    assert_tree_invariants(tree, value_bounds=(-1.0, 1.0), simulations=4)
    assert_tree_invariants(tree.subtree(1), value_bounds=(-1.0, 1.0), simulations=2)
    assert_tree_invariants(Tree.from_dict(tree.to_dict()), simulations=4)
    assert_tree_invariants(Tree(Race()), simulations=0)


def _corrupt(**changes):
    def apply(tree):
        for name, (index, value) in changes.items():
            getattr(tree, name)[index] = value

    return apply


@pytest.mark.parametrize(
    ("corrupt", "match"),
    [
        (_corrupt(parent=(3, 2)), r"node 3 has parent 2 but lies in the block of node 1"),
        (_corrupt(parent=(3, 7)), r"node 3 has parent 7; a parent must be an earlier node"),
        (_corrupt(parent=(0, 0)), r"root has parent 0"),
        (_corrupt(depth=(3, 5)), r"node 3 has depth 5, its parent 1 has 1"),
        (_corrupt(depth=(0, 1)), r"root has depth 1"),
        (_corrupt(first_child=(1, 2)), r"children blocks of nodes 0 and 1 overlap at node 2"),
        (_corrupt(num_children=(1, 10)), r"children block 3..12 outside 2..4"),
        (_corrupt(num_children=(2, 1)), r"node 2 is unexpanded but has num_children=1"),
        (_corrupt(visits=(4, -1)), r"negative visits at nodes \[4\]"),
        (_corrupt(visits=(2, 2)), r"node 0 has 4 visits but its children have 4 \(expected 3\)"),
        (_corrupt(value_sum=(1, 5.0)), r"node 1 has Q=2.5 outside value_bounds"),
        (_corrupt(prior=(1, 0.9)), r"priors of node 0's children sum to 1.4"),
        (_corrupt(terminal=(1, True)), r"terminal node 1 has 2 children"),
    ],
)
def test_tree_corruption_is_caught(corrupt, match):
    tree = good_tree()
    corrupt(tree)
    with pytest.raises(AssertionError, match=match):
        assert_tree_invariants(tree, value_bounds=(-1.0, 1.0))


def test_tree_leftover_virtual_loss_and_simulations():
    tree = good_tree()
    with pytest.raises(AssertionError, match=r"expected simulations=5"):
        assert_tree_invariants(tree, simulations=5)
    apply_virtual_loss(tree, [0, 1], 1)
    with pytest.raises(AssertionError, match=r"virtual loss left over at nodes \[0, 1\]"):
        assert_tree_invariants(tree, visit_conservation=False)


def test_tree_side_lists():
    tree = good_tree()
    tree.actions.append(None)
    with pytest.raises(AssertionError, match=r"tree.actions has 6 entries for 5 nodes"):
        assert_tree_invariants(tree)


def test_tree_optional_checks_can_be_disabled():
    tree = good_tree()
    tree.visits[2] += 1
    tree.prior[1] = 0.9
    tree.value_sum[1] = 5.0
    assert_tree_invariants(tree, visit_conservation=False, normalised_priors=False)


def test_tree_lists_every_violation():
    tree = good_tree()
    tree.depth[3] = 5
    tree.visits[4] = -1
    with pytest.raises(AssertionError) as excinfo:
        assert_tree_invariants(tree, visit_conservation=False)
    assert "2 invariant" in str(excinfo.value)
    assert "depth 5" in str(excinfo.value) and "negative visits" in str(excinfo.value)


def test_tree_invariants_rejects_non_trees():
    with pytest.raises(TypeError, match=r"treesearch\.Tree"):
        assert_tree_invariants({"parent": []})


# ---------------------------------------------------------------------------- strategies
def random_descent_tree(root, simulations: int, seed: int) -> Tree:
    """A naive MCTS-shaped search: random descent, expand on first visit, back up."""
    gen = np.random.default_rng(seed)
    tree = Tree(root)
    for _ in range(simulations):
        node = Tree.ROOT
        while tree.is_expanded(node):
            kids = tree.children(node)
            node = kids.start + int(gen.integers(len(kids)))
        state = tree.state(node)
        if state.is_terminal():
            value = state.terminal_value()
        else:
            n = len(state.legal_actions())
            tree.add_children(node, list(state.legal_actions()), np.full(n, 1.0 / n))
            value = float(gen.uniform(-1, 1))
        backup(tree, node, value)
    return tree


@given(tst.random_trees(), st.integers(1, 60), tst.seeds())
def test_random_trees_give_valid_search_trees(root, simulations, seed):
    tree = random_descent_tree(root, simulations, seed)
    assert_tree_invariants(tree, value_bounds=(-1.0, 1.0), simulations=simulations)


@given(tst.random_trees(), tst.seeds())
def test_random_trees_conform(root, seed):
    assert isinstance(root, RandomTreeState)
    assert 1 <= root.num_nodes <= 100
    check_state(root, rng=rng(seed), num_games=5, require_outcomes=True)
    depths = [root.at(i).depth for i in range(root.num_nodes)]
    assert 1 <= max(depths) <= 5
    for i in range(root.num_nodes):
        node = root.at(i)
        assert len(node.legal_actions()) <= 4
        assert node.to_play == (node.depth % 2 if root.two_player else 0)
        if node.is_terminal():
            assert -1.0 <= node.terminal_value() <= 1.0


@given(tst.random_trees(two_player=True, max_depth=3))
def test_random_tree_minimax_matches_brute_force(root):
    def negamax(state):
        if state.is_terminal():
            return state.terminal_value()
        return max(-negamax(state.step(a)) for a in state.legal_actions())

    assert root.minimax_value() == negamax(root)
    for a in root.optimal_actions():
        assert -root.step(a).minimax_value() == root.minimax_value()


@given(tst.verifiers(), tst.random_trees())
def test_random_verifiers_conform(verifier, root):
    states = [root.at(i) for i in range(root.num_nodes)]
    check_verifier(verifier, states)
    scores = verifier.score(states) if hasattr(verifier, "score") else verifier(states)
    assert all(0.0 <= s <= 1.0 for s in scores)


@given(tst.budgets())
def test_budgets_have_a_counted_limit(budget):
    assert isinstance(budget, Budget)
    limits = [budget.simulations, budget.expansions, budget.policy_calls, budget.verifier_calls]
    assert any(x is not None for x in limits)
    assert all(x is None or 1 <= x <= 50 for x in limits)
    assert budget.tokens is None and budget.wall_time is None


@given(tst.seeds())
def test_seeds_fit_default_rng(seed):
    assert 0 <= seed < 2**32
    np.random.default_rng(seed)


def test_random_tree_state_contract():
    root = RandomTreeState([[1, 2], [3], [], []], [None, None, 0.5, -1.0], two_player=True)
    assert root.legal_actions() == (0, 1)
    assert root.step(0) == root.at(1) and hash(root.step(0)) == hash(root.at(1))
    assert root.step(0) != root.step(1)
    assert root.minimax_value() == -0.5 and root.optimal_actions() == (1,)
    assert pickle.loads(pickle.dumps(root.at(3))) == root.at(3)
    assert eval(repr(root.at(1)), {"RandomTreeState": RandomTreeState}) == root.at(1)
    with pytest.raises(ValueError, match="illegal action 2"):
        root.step(2)
    with pytest.raises(ValueError, match="terminal"):
        root.at(2).step(0)
    with pytest.raises(TypeError):
        root.step("0")
    with pytest.raises(TypeError):
        root.step(True)
    with pytest.raises(AttributeError, match="immutable"):
        root._node = 3


@pytest.mark.parametrize(
    ("children", "values", "error", "match"),
    [
        ([], [], ValueError, "root"),
        ([[1], []], [None], ValueError, "2 nodes but 1 values"),
        ([[0]], [None], ValueError, "child ids must lie"),
        ([[1], [], []], [None, 0.0, 0.0], ValueError, "no parent"),
        ([[1, 1], []], [None, 0.0], ValueError, "two parents"),
        ([[1], []], [0.5, 0.0], ValueError, "use None"),
        ([[1], []], [None, None], TypeError, "real terminal value"),
        ([[1], []], [None, math.inf], ValueError, "non-finite"),
        ([["a"], []], [None, 0.0], TypeError, "node id"),
    ],
)
def test_random_tree_state_validation(children, values, error, match):
    with pytest.raises(error, match=match):
        RandomTreeState(children, values)


@pytest.mark.parametrize(
    ("factory", "match"),
    [
        (lambda: tst.random_trees(max_depth=0), "max_depth"),
        (lambda: tst.random_trees(max_nodes=3), "max_nodes"),
        (lambda: tst.random_trees(two_player=1), "two_player"),
        (lambda: tst.budgets(max_value=0), "max_value"),
    ],
)
def test_strategy_arguments_are_validated(factory, match):
    with pytest.raises((ValueError, TypeError), match=match):
        factory()


def test_check_policy_can_skip_the_token_check():
    class Greedy:  # ignores max_tokens
        def propose(self, states, *, rng, max_tokens=None):
            return [[Candidate(a, 1.0, num_tokens=5) for a in s.legal_actions()] for s in states]

    from treesearch.games import TicTacToe

    with pytest.raises(ConformanceError, match="max_tokens"):
        check_policy(Greedy(), [TicTacToe()], rng=np.random.default_rng(0))
    check_policy(Greedy(), [TicTacToe()], rng=np.random.default_rng(0), max_tokens=None)
