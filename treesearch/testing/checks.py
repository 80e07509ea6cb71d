"""Conformance checks for user objects, in the spirit of SB3's ``check_env`` and pgx's
``api_test``.

* :func:`check_state` plays random legal lines from a :class:`~treesearch.interfaces.State` and
  checks immutability, determinism, keys, terminal handling and illegal-action handling.
* :func:`check_policy`, :func:`check_verifier` and :func:`check_evaluator` call a
  :class:`~treesearch.interfaces.Policy`, :class:`~treesearch.interfaces.Verifier` or
  :class:`~treesearch.interfaces.Evaluator` on a batch of states and check shapes, values,
  determinism for a fixed seed, and that a batch gives the same answers as single states.
  :func:`check_policy` and :func:`check_verifier` can also play random lines from the given
  states (``num_lines``) and check the states met on the way, so that a model that only
  misbehaves deeper in the problem is caught.

Each check collects every problem it finds and raises one :class:`ConformanceError` listing
them all, each naming what to fix. :func:`assert_tree_invariants` is a test helper for search
trees and raises ``AssertionError``.
"""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..interfaces import Candidate, Evaluation, Score, State
from ..tree import Tree

__all__ = [
    "ConformanceError",
    "assert_tree_invariants",
    "check_evaluator",
    "check_policy",
    "check_state",
    "check_verifier",
]

_MISSING = object()
_FREEZE_DEPTH = 6
_MAX_REPR = 120


class ConformanceError(ValueError):
    """A user object breaks the treesearch contracts.

    Attributes:
        subject: what was checked (for example ``"TicTacToe state"``).
        problems: one actionable message per problem found.
    """

    def __init__(self, subject: str, problems: Sequence[str]) -> None:
        self.subject = subject
        self.problems = tuple(problems)
        lines = "\n".join(f"  {i}. {p}" for i, p in enumerate(self.problems, 1))
        count = len(self.problems)
        super().__init__(f"{subject}: {count} problem{'s' if count != 1 else ''} found:\n{lines}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.subject, self.problems))


class _Problems:
    """Collects the first message of each kind of problem, in order of discovery."""

    def __init__(self, subject: str) -> None:
        self.subject = subject
        self._messages: dict[str, str] = {}

    def add(self, kind: str, message: str) -> None:
        self._messages.setdefault(kind, message)

    def __contains__(self, kind: str) -> bool:
        return kind in self._messages

    def raise_if_any(self) -> None:
        if self._messages:
            raise ConformanceError(self.subject, list(self._messages.values()))


# ---------------------------------------------------------------------------- small helpers
def _short(obj: object) -> str:
    try:
        text = repr(obj)
    except Exception as exc:  # a broken __repr__ must not hide the real problems
        text = f"<{type(obj).__name__} with a failing __repr__: {type(exc).__name__}>"
    return text if len(text) <= _MAX_REPR else text[: _MAX_REPR - 3] + "..."


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _is_int(x: object) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def _is_real(x: object) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(
        x, (bool, np.bool_)
    )


def _check_rng(rng: object) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            "rng must be a numpy.random.Generator (np.random.default_rng(seed)), got "
            f"{type(rng).__name__}"
        )
    return rng


def _check_positive_int(value: object, name: str) -> int:
    if not _is_int(value) or value < 1:  # type: ignore[operator]
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)  # type: ignore[call-overload]


def _check_states(states: object, *, allow_terminal: bool) -> list[Any]:
    if isinstance(states, (str, bytes)) or not isinstance(states, Sequence):
        raise TypeError(f"states must be a sequence of states, got {type(states).__name__}")
    states = list(states)
    if not states:
        raise ValueError("states must not be empty")
    if not allow_terminal:
        for i, s in enumerate(states):
            try:
                terminal = s.is_terminal()
            except Exception as exc:
                raise ValueError(f"states[{i}].is_terminal() raised {_error(exc)}") from exc
            if terminal:
                raise ValueError(
                    f"states[{i}] is terminal; pass only non-terminal states (searches never "
                    "ask for children or priors of a terminal state)"
                )
    return states


def _seed(rng: np.random.Generator) -> int:
    return int(rng.integers(0, 2**62))


def _check_lines(num_lines: object, max_moves: object) -> tuple[int, int]:
    if not _is_int(num_lines) or num_lines < 0:  # type: ignore[operator]
        raise ValueError(f"num_lines must be an int >= 0, got {num_lines!r}")
    return int(num_lines), _check_positive_int(max_moves, "max_moves")  # type: ignore[call-overload]


def _hashable_key(state: Any) -> Any:
    """``state.key`` when it is usable as a dict key, else ``_MISSING``."""
    try:
        key = state.key
        hash(key)
    except Exception:
        return _MISSING
    return key


def _play_lines(
    starts: Sequence[Any],
    rng: np.random.Generator,
    num_lines: int,
    max_moves: int,
    *,
    keep_terminal: bool,
    propose: Callable[..., Any] | None = None,
) -> list[Any]:
    """The states met on ``num_lines`` random lines from each of ``starts``, in order of
    discovery, without the starts and without repeating a key.

    A line steps along a random legal action. At a non-terminal state that lists none (an
    open-ended problem) it steps along a random candidate of ``propose`` when given, and ends
    otherwise. It also ends at a terminal state (kept only with ``keep_terminal``), after
    ``max_moves`` moves, or when the state or the policy raises or returns something unusable:
    broken states are :func:`check_state`'s business, and the policy's output is checked on the
    states met so far.
    """
    seen = {k for k in map(_hashable_key, starts) if k is not _MISSING}
    out: list[Any] = []
    for start in starts:
        for _ in range(num_lines):
            state = start
            for _ in range(max_moves):
                try:
                    if state.is_terminal() is not False:
                        break
                    actions = list(state.legal_actions())
                    if not actions and propose is not None:
                        proposed = propose([state], rng=np.random.default_rng(_seed(rng)))
                        actions = [c.action for c in proposed[0] if isinstance(c, Candidate)]
                    if not actions:
                        break
                    state = state.step(actions[int(rng.integers(len(actions)))])
                    terminal = state.is_terminal() is not False
                except Exception:
                    break
                if terminal and not keep_terminal:
                    break
                key = _hashable_key(state)
                if key is _MISSING or key not in seen:
                    if key is not _MISSING:
                        seen.add(key)
                    out.append(state)
    return out


def _lines_subject(check: str, given: int, met: int) -> str:
    if not met:
        return check
    return (
        f"{check} on {given} given state{'s' if given != 1 else ''} and {met} met on random "
        f"lines from them (states[{given}:])"
    )


def _defines_eq(obj: object) -> bool:
    return type(obj).__eq__ is not object.__eq__


def _freeze(obj: Any, depth: int = 0) -> Any:
    """A comparable, deep snapshot of ``obj`` (numpy arrays, containers, plain objects)."""
    if obj is None or isinstance(obj, (bool, int, str, bytes, np.bool_, np.integer)):
        return obj
    if isinstance(obj, (float, np.floating)):
        return ("nan",) if math.isnan(obj) else obj
    if isinstance(obj, complex):
        return ("complex", repr(obj))
    if depth >= _FREEZE_DEPTH:
        return ("object", type(obj).__name__, id(obj))
    if isinstance(obj, np.ndarray):
        return ("ndarray", obj.dtype.str, obj.shape, obj.tobytes())
    if isinstance(obj, (bytearray, memoryview)):
        return ("bytes", bytes(obj))
    if isinstance(obj, dict):
        items = tuple((_freeze(k, depth + 1), _freeze(v, depth + 1)) for k, v in obj.items())
        return ("dict", items)
    if isinstance(obj, (list, tuple)):
        return (type(obj).__name__, tuple(_freeze(x, depth + 1) for x in obj))
    if isinstance(obj, (set, frozenset)):
        return ("set", tuple(sorted(repr(_freeze(x, depth + 1)) for x in obj)))
    attrs = _attributes(obj)
    if attrs:
        return (
            "object",
            type(obj).__name__,
            tuple((k, _freeze(v, depth + 1)) for k, v in attrs.items()),
        )
    if callable(obj):
        return ("callable", id(obj))
    return ("object", type(obj).__name__, id(obj), _short(obj))


def _attributes(obj: object) -> dict[str, Any]:
    """Instance attributes from ``__dict__`` and ``__slots__``, without cached properties."""
    cls = type(obj)
    cached = {
        name
        for klass in cls.__mro__
        for name, value in vars(klass).items()
        if isinstance(value, functools.cached_property)
    }
    out: dict[str, Any] = {}
    for klass in cls.__mro__:
        slots = vars(klass).get("__slots__", ())
        if isinstance(slots, str):
            slots = (slots,)
        for name in slots:
            if name in ("__dict__", "__weakref__"):
                continue
            if name.startswith("__") and not name.endswith("__"):
                name = f"_{klass.__name__.lstrip('_')}{name}"
            value = getattr(obj, name, _MISSING)
            if value is not _MISSING:
                out[name] = value
    try:
        instance_dict = object.__getattribute__(obj, "__dict__")
    except AttributeError:
        instance_dict = {}
    if isinstance(instance_dict, dict):
        for name, value in instance_dict.items():
            if name not in cached:
                out[name] = value
    return out


def _snapshot(state: Any) -> dict[str, Any]:
    snap: dict[str, Any] = {}
    try:
        snap["key"] = _freeze(state.key)
    except Exception as exc:
        snap["key"] = ("raised", type(exc).__name__)
    try:
        snap["repr"] = repr(state)
    except Exception as exc:
        snap["repr"] = ("raised", type(exc).__name__)
    for name, value in _attributes(state).items():
        snap[f"attribute {name!r}"] = _freeze(value)
    return snap


def _diff(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    names = list(before) + [k for k in after if k not in before]
    return [n for n in names if before.get(n, _MISSING) != after.get(n, _MISSING)]


def _same_list(a: Any, b: Any) -> bool:
    try:
        return bool(list(a) == list(b))
    except Exception:
        return False


def _looks_like_state(obj: object) -> bool:
    try:
        return isinstance(obj, State)
    except Exception:  # a raising property; reported when the state is inspected
        return True


# ---------------------------------------------------------------------------- check_state
_ILLEGAL_ACTION_HINT = (
    "raise ValueError for an action that is not in legal_actions() (TypeError for an action of "
    "the wrong type)"
)


def check_state(
    state: State,
    *,
    rng: np.random.Generator,
    num_games: int = 20,
    max_moves: int = 500,
    open_ended: bool = False,
    require_outcomes: bool = False,
) -> None:
    """Play random legal lines from ``state`` and check that it honours the State contract.

    Checked at every state reached: ``to_play`` is an int; ``key`` is hashable, survives
    ``copy.copy`` and is equal for equal states; ``is_terminal`` is a bool;
    ``legal_actions`` is a repeatable sequence of distinct hashable actions; terminal states have
    no legal actions and a finite (or ``None``) ``terminal_value``; non-terminal states have
    legal actions (unless ``open_ended``); ``step`` leaves the original state unchanged, is
    deterministic, and rejects an action that is not legal (a fresh ``object()``) with
    ``ValueError`` or ``TypeError``; every line ends within ``max_moves`` moves.

    Args:
        state: the state to start from.
        rng: chooses the random moves.
        num_games: number of random lines to play.
        max_moves: a line still going after this many moves is reported.
        open_ended: allow non-terminal states with no legal actions (problems whose actions
            come from a Policy, such as LLM text); lines stop there.
        require_outcomes: report terminal states whose ``terminal_value()`` is ``None``
            (games should know their outcome).

    Raises:
        ConformanceError: listing every problem found.
        TypeError, ValueError: for bad arguments.
    """
    rng = _check_rng(rng)
    num_games = _check_positive_int(num_games, "num_games")
    max_moves = _check_positive_int(max_moves, "max_moves")
    problems = _Problems(f"check_state({type(state).__name__})")
    for _ in range(num_games):
        current = state
        for move in range(max_moves + 1):
            actions = _inspect_state(current, problems, open_ended, require_outcomes)
            if not actions:
                break
            if move == max_moves:
                problems.add(
                    "max_moves",
                    f"a random line from {_short(state)} was still going after max_moves="
                    f"{max_moves} moves: make sure every game ends (or pass a larger max_moves)",
                )
                break
            action = actions[int(rng.integers(len(actions)))]
            nxt = _check_step(current, action, problems)
            if nxt is None:
                break
            current = nxt
    problems.raise_if_any()


def _inspect_state(
    state: Any, problems: _Problems, open_ended: bool, require_outcomes: bool
) -> list[Any]:
    """Check one state; returns the legal actions to continue with (empty to stop the line)."""
    where = _short(state)
    # to_play
    try:
        to_play = state.to_play
    except Exception as exc:
        problems.add("to_play raised", f"to_play raised {_error(exc)} at {where}")
    else:
        if callable(to_play):
            problems.add(
                "to_play type",
                "to_play is a method; make it a @property returning the int index of the player "
                "to move (0 in single-agent problems)",
            )
        elif not _is_int(to_play):
            problems.add(
                "to_play type",
                f"to_play must be an int player index, got {type(to_play).__name__} "
                f"{_short(to_play)} at {where}",
            )
    # key
    try:
        key = state.key
    except Exception as exc:
        problems.add("key raised", f"key raised {_error(exc)} at {where}")
    else:
        if callable(key):
            problems.add(
                "key method",
                "key is a method; make it a @property returning a hashable value such as a tuple",
            )
        else:
            try:
                hash(key)
            except TypeError:
                problems.add(
                    "key unhashable",
                    f"key is not hashable ({type(key).__name__}) at {where}: return a tuple, str, "
                    "int or bytes (convert lists with tuple(...), numpy arrays with .tobytes())",
                )
            else:
                _check_key_copy(state, key, problems)
    # is_terminal
    try:
        terminal = state.is_terminal()
    except Exception as exc:
        problems.add("is_terminal raised", f"is_terminal() raised {_error(exc)} at {where}")
        return []
    if not isinstance(terminal, (bool, np.bool_)):
        problems.add(
            "is_terminal type",
            f"is_terminal() must return a bool, got {type(terminal).__name__} at {where}",
        )
    terminal = bool(terminal)
    actions = _legal_actions(state, problems)
    if actions is None:
        return []
    if terminal:
        if actions:
            problems.add(
                "terminal with actions",
                f"terminal state {where} has {len(actions)} legal actions: legal_actions() must "
                "return an empty sequence once is_terminal() is True",
            )
        _check_terminal_value(state, problems, require_outcomes)
        _check_illegal_action(state, problems)
        return []
    if not actions:
        if not open_ended:
            problems.add(
                "no actions",
                f"non-terminal state {where} has no legal actions, so play cannot continue: make "
                "is_terminal() return True here (or pass open_ended=True for problems whose "
                "actions come from a Policy)",
            )
        return []
    _check_illegal_action(state, problems)
    return actions


def _check_key_copy(state: Any, key: Any, problems: _Problems) -> None:
    try:
        # A shallow copy: a deep one could copy a model or tokenizer the state refers to.
        twin = copy.copy(state)
    except Exception:
        return  # copy support is not part of the contract
    where = _short(state)
    try:
        twin_key = twin.key
        keys_equal = bool(twin_key == key) and hash(twin_key) == hash(key)
    except Exception:
        keys_equal = False
    if not keys_equal:
        problems.add(
            "key identity",
            f"key of {where} differs from the key of its copy.copy: the key must depend only "
            "on the state's contents, never on object identity (id, default hash)",
        )
    if _defines_eq(state):
        try:
            equal = bool(twin == state)
        except Exception:
            equal = False
        if not equal:
            problems.add(
                "eq identity",
                f"{where} is not == to its own copy.copy: define __eq__ on the state's "
                "contents (or do not define it)",
            )


def _legal_actions(state: Any, problems: _Problems) -> list[Any] | None:
    where = _short(state)
    try:
        raw = state.legal_actions()
    except Exception as exc:
        problems.add("legal_actions raised", f"legal_actions() raised {_error(exc)} at {where}")
        return None
    if isinstance(raw, (str, bytes)) or not hasattr(raw, "__len__") or not hasattr(raw, "__iter__"):
        problems.add(
            "legal_actions type",
            f"legal_actions() must return a sequence (tuple or list), got {type(raw).__name__} "
            f"at {where}",
        )
        return None
    actions = list(raw)
    try:
        again = list(state.legal_actions())
    except Exception:
        again = None
    if again is None or not _same_list(actions, again):
        problems.add(
            "legal_actions nondeterministic",
            f"legal_actions() returned different actions when called twice at {where}: it must "
            "depend only on the state",
        )
    hashable = True
    for a in actions:
        try:
            hash(a)
        except TypeError:
            hashable = False
            problems.add(
                "action unhashable",
                f"legal action {_short(a)} ({type(a).__name__}) is not hashable: use ints, "
                "strings or tuples as actions",
            )
            break
    if hashable and len(set(actions)) != len(actions):
        problems.add(
            "duplicate actions",
            f"legal_actions() lists the same action more than once at {where}: list each "
            "action once (priors are matched to legal actions by position)",
        )
    return actions


def _check_terminal_value(state: Any, problems: _Problems, require_outcomes: bool) -> None:
    where = _short(state)
    try:
        value = state.terminal_value()
    except Exception as exc:
        problems.add(
            "terminal_value raised", f"terminal_value() raised {_error(exc)} at terminal {where}"
        )
        return
    if value is None:
        if require_outcomes:
            problems.add(
                "no outcome",
                f"terminal_value() is None at terminal state {where}: return the outcome for "
                "to_play (for example +1 win, 0 draw, -1 loss)",
            )
        return
    if not _is_real(value):
        problems.add(
            "terminal_value type",
            f"terminal_value() must return a float or None, got {type(value).__name__} "
            f"{_short(value)} at {where}",
        )
    elif not math.isfinite(value):
        problems.add(
            "terminal_value not finite",
            f"terminal_value() returned {value!r} at {where}: outcomes must be finite numbers",
        )


def _check_illegal_action(state: Any, problems: _Problems) -> None:
    sentinel = object()
    before = _snapshot(state)
    try:
        state.step(sentinel)
    except (ValueError, TypeError):
        pass
    except Exception as exc:
        problems.add(
            "illegal action error type",
            f"step() raised {type(exc).__name__} for an illegal action (a fresh object()) at "
            f"{_short(state)}: {_ILLEGAL_ACTION_HINT}",
        )
    else:
        problems.add(
            "illegal action accepted",
            f"step() accepted an illegal action (a fresh object(), not in legal_actions()) at "
            f"{_short(state)}: {_ILLEGAL_ACTION_HINT}",
        )
    changed = _diff(before, _snapshot(state))
    if changed:
        problems.add(
            "mutation",
            f"step() changed the state it was called on ({', '.join(changed)} changed) at "
            f"{_short(state)}: return a new state and never modify self",
        )


def _check_step(state: Any, action: Any, problems: _Problems) -> Any:
    """Step ``state`` by a legal ``action`` twice; returns the child, or None to stop."""
    where = _short(state)
    before = _snapshot(state)
    try:
        twin = copy.copy(state) if _defines_eq(state) else None
    except Exception:
        twin = None
    children = []
    changed: list[str] = []
    for _ in range(2):
        try:
            children.append(state.step(action))
        except Exception as exc:
            problems.add(
                "step raised",
                f"step({_short(action)}) raised {_error(exc)} at {where}, though the action is "
                "in legal_actions(): every listed action must be playable",
            )
            return None
        # Compare after each step: a mutation that toggles would undo itself on the second.
        changed = changed or _diff(before, _snapshot(state))
        if not changed and twin is not None:
            try:
                if not bool(state == twin):
                    changed = ["equality with a copy taken before step"]
            except Exception:
                pass
    first, second = children
    if changed:
        problems.add(
            "mutation",
            f"step({_short(action)}) changed the state it was called on ({', '.join(changed)} "
            f"changed) at {where}: return a new state and never modify self",
        )
    if not _looks_like_state(first):
        problems.add(
            "step return type",
            f"step({_short(action)}) returned a {type(first).__name__}, not a State (it needs "
            "to_play, key, legal_actions, step, is_terminal and terminal_value)",
        )
        return None
    _compare_children(state, action, first, second, problems)
    return first


def _compare_children(
    state: Any, action: Any, first: Any, second: Any, problems: _Problems
) -> None:
    differs: list[str] = []
    for name, get in (
        ("to_play", lambda s: s.to_play),
        ("is_terminal()", lambda s: bool(s.is_terminal())),
        ("legal_actions()", lambda s: list(s.legal_actions())),
    ):
        try:
            if not _same_list([get(first)], [get(second)]):
                differs.append(name)
        except Exception:
            pass  # reported when the child itself is inspected
    try:
        keys_equal = bool(first.key == second.key) and hash(first.key) == hash(second.key)
    except Exception:
        keys_equal = None  # unhashable or raising keys are reported on inspection
    states_equal = None
    if _defines_eq(first):
        try:
            states_equal = bool(first == second)
        except Exception:
            states_equal = None
    if keys_equal is False and states_equal:
        problems.add(
            "key unequal for equal states",
            f"two equal states (==) reached by step({_short(action)}) from {_short(state)} have "
            "different keys: equal states must have equal keys (the key must depend only on the "
            "state's contents)",
        )
    else:
        if keys_equal is False:
            differs.append("key")
        if states_equal is False:
            differs.append("==")
    if differs:
        problems.add(
            "nondeterministic",
            f"step is nondeterministic: stepping {_short(action)} twice from {_short(state)} gave "
            f"states that differ in {', '.join(differs)}: step must depend only on the state and "
            "the action (store any seed in the state, and derive keys from contents, not ids)",
        )


# ---------------------------------------------------------------------------- check_policy
def check_policy(
    policy: Any,
    states: Sequence[State],
    *,
    rng: np.random.Generator,
    max_tokens: int | None = 1,
    deterministic: bool = True,
    num_lines: int = 0,
    max_moves: int = 100,
) -> None:
    """Call ``policy.propose`` on ``states`` and check its output.

    Checked: one list of :class:`~treesearch.interfaces.Candidate` per state; finite,
    non-negative priors and non-negative token counts; hashable actions, legal when the state
    lists legal actions; the same candidates for two generators with the same seed (when
    ``deterministic``); at most ``max_tokens`` tokens in all when given that allowance; a batch
    gives the same candidates as one state at a time (for policies that ignore the seed; for
    stochastic ones only the shapes are compared); the states are left unchanged.

    With ``num_lines > 0`` the checks also cover the states met on ``num_lines`` random lines
    from each given state: a line steps along random legal actions (along the policy's own
    candidates at states that list no legal actions) and ends at a terminal state or after
    ``max_moves`` moves. Those states follow the given ones in the batch, and the error's
    subject says which indices they have.

    Args:
        policy: an object with ``propose(states, *, rng, max_tokens=None)``.
        states: non-terminal states to propose for.
        rng: seeds the generators handed to the policy and chooses the random lines.
        max_tokens: a small token allowance the policy must respect; ``None`` skips that
            check, for a policy meant to run only without a token budget (searches with a
            ``tokens`` limit refuse a policy that goes over its allowance).
        deterministic: check that equal seeds give equal candidates.
        num_lines: random lines to play from each state (0: check only ``states``).
        max_moves: the longest line.

    Raises:
        ConformanceError: listing every problem found.
    """
    rng = _check_rng(rng)
    states = _check_states(states, allow_terminal=False)
    if max_tokens is not None and (not _is_int(max_tokens) or max_tokens < 0):
        raise ValueError(f"max_tokens must be an int >= 0, got {max_tokens!r}")
    num_lines, max_moves = _check_lines(num_lines, max_moves)
    name = type(policy).__name__
    problems = _Problems(f"check_policy({name})")
    propose = getattr(policy, "propose", None)
    if not callable(propose):
        raise ConformanceError(
            problems.subject, [f"{name} has no propose(states, *, rng, max_tokens=None) method"]
        )
    seed = _seed(rng)
    if num_lines:
        given = len(states)
        states += _play_lines(
            states, rng, num_lines, max_moves, keep_terminal=False, propose=propose
        )
        problems.subject = _lines_subject(problems.subject, given, len(states) - given)
    keys = [_snapshot(s) for s in states]

    def call(batch: list[Any], seed: int, label: str, **kwargs: Any) -> list[list[Any]] | None:
        try:
            raw = propose(batch, rng=np.random.default_rng(seed), **kwargs)
        except Exception as exc:
            problems.add(
                f"raised {label}",
                f"propose raised {_error(exc)} ({label}); it must accept "
                "propose(states, *, rng, max_tokens=None)",
            )
            return None
        return _validate_candidates(raw, batch, problems, name)

    first = call(states, seed, "called with max_tokens=None", max_tokens=None)
    if first is None:
        problems.raise_if_any()
    again = call(states, seed, "called without max_tokens")
    other = call(states, seed + 1, "called with a second seed", max_tokens=None)
    if deterministic and first is not None and again is not None and not _same_list(first, again):
        problems.add(
            "nondeterministic",
            f"{name}.propose gave different candidates for two generators with the same seed: "
            "draw every random choice from the rng argument (or pass deterministic=False)",
        )
    stochastic = first is None or other is None or not _same_list(first, other)
    small = (
        None
        if max_tokens is None
        else call(states, seed, f"called with max_tokens={max_tokens}", max_tokens=max_tokens)
    )
    if small is not None and max_tokens is not None:
        used = sum(c.num_tokens for cands in small for c in cands if isinstance(c, Candidate))
        if used > max_tokens:
            problems.add(
                "max_tokens",
                f"{name}.propose generated {used} tokens when given max_tokens={max_tokens}: the "
                "candidates of one call must together carry at most max_tokens num_tokens",
            )
    if first is not None and len(first) == len(states):
        for i, state in enumerate(states):
            single = call([state], seed, f"called on states[{i}] alone", max_tokens=None)
            if single is None or len(single) != 1:
                continue
            if not stochastic and not _same_list(single[0], first[i]):
                problems.add(
                    "batch",
                    f"{name}.propose gave different candidates for states[{i}] alone than in a "
                    "batch: a state's candidates must not depend on the other states in its batch",
                )
    _check_unchanged(states, keys, problems, f"{name}.propose")
    problems.raise_if_any()


def _validate_candidates(
    raw: Any, states: list[Any], problems: _Problems, name: str
) -> list[list[Any]] | None:
    if isinstance(raw, (str, bytes)) or not isinstance(raw, Sequence):
        problems.add(
            "result type",
            f"{name}.propose must return one list of Candidates per state, got "
            f"{type(raw).__name__}",
        )
        return None
    if len(raw) != len(states):
        problems.add(
            "result length",
            f"{name}.propose returned {len(raw)} lists for {len(states)} states: return exactly "
            "one list of Candidates per state, in order",
        )
    out: list[list[Any]] = []
    for i, (cands, state) in enumerate(zip(raw, states, strict=False)):
        if isinstance(cands, (str, bytes)) or not isinstance(cands, Sequence):
            problems.add(
                "list type",
                f"{name}.propose item {i} is a {type(cands).__name__}; it must be a list of "
                "Candidates",
            )
            out.append([])
            continue
        cands = list(cands)
        out.append(cands)
        try:
            legal = list(state.legal_actions())
        except Exception:
            legal = []
        for c in cands:
            _check_candidate(c, i, legal, problems, name)
    return out


def _check_candidate(c: Any, i: int, legal: list[Any], problems: _Problems, name: str) -> None:
    if not isinstance(c, Candidate):
        problems.add(
            "candidate type",
            f"{name}.propose returned a {type(c).__name__} for state {i}: wrap each proposal in "
            "treesearch.Candidate(action, prior)",
        )
        return
    if not _is_real(c.prior) or not math.isfinite(c.prior) or c.prior < 0:
        problems.add(
            "prior",
            f"{name}.propose gave prior {c.prior!r} for state {i}: priors must be finite and >= 0",
        )
    if not _is_int(c.num_tokens) or c.num_tokens < 0:
        problems.add(
            "num_tokens",
            f"{name}.propose gave num_tokens={c.num_tokens!r} for state {i}: it must be an "
            "int >= 0",
        )
    try:
        hash(c.action)
    except TypeError:
        problems.add(
            "action unhashable",
            f"{name}.propose gave an unhashable action ({type(c.action).__name__}) for state "
            f"{i}: use ints, strings or tuples",
        )
        return
    if legal and c.action not in legal:
        problems.add(
            "illegal",
            f"{name}.propose proposed {_short(c.action)} for state {i}, which is not in its "
            "legal_actions(): propose only legal actions for states that list them",
        )


def _check_unchanged(
    states: list[Any], before: list[dict[str, Any]], problems: _Problems, who: str
) -> None:
    for i, (state, snap) in enumerate(zip(states, before, strict=True)):
        changed = _diff(snap, _snapshot(state))
        if changed:
            problems.add(
                "mutation",
                f"{who} changed states[{i}] ({', '.join(changed)} changed): treat states as "
                "read-only",
            )
            return


# ---------------------------------------------------------------------------- check_verifier
def check_verifier(
    verifier: Any,
    states: Sequence[State],
    *,
    tolerance: float = 1e-6,
    rng: np.random.Generator | None = None,
    num_lines: int = 0,
    max_moves: int = 100,
) -> None:
    """Score ``states`` with ``verifier`` and check its output.

    Checked: a ``.score(states)`` method or a plain callable; one finite number or
    :class:`~treesearch.interfaces.Score` per state; the same scores when called twice; the same
    scores for each state alone as in the batch, within ``tolerance``; states left unchanged.

    With ``num_lines > 0`` (which needs ``rng``) the checks also cover the states met on
    ``num_lines`` random lines from each given state: a line steps along random legal actions,
    terminal states included, and ends at a terminal state, at a state that lists no legal
    actions, or after ``max_moves`` moves. Those states follow the given ones in the batch, and
    the error's subject says which indices they have.

    Raises:
        ConformanceError: listing every problem found.
    """
    states = _check_states(states, allow_terminal=True)
    if not _is_real(tolerance) or not tolerance >= 0:
        raise ValueError(f"tolerance must be a number >= 0, got {tolerance!r}")
    num_lines, max_moves = _check_lines(num_lines, max_moves)
    if rng is not None:
        rng = _check_rng(rng)
    elif num_lines:
        raise TypeError("check_verifier needs rng= (a numpy.random.Generator) to play lines")
    name = type(verifier).__name__
    problems = _Problems(f"check_verifier({name})")
    if num_lines:
        assert rng is not None  # checked above
        given = len(states)
        states += _play_lines(states, rng, num_lines, max_moves, keep_terminal=True)
        problems.subject = _lines_subject(problems.subject, given, len(states) - given)
    score_method = getattr(verifier, "score", None)
    fn: Callable[[list[Any]], Any] | None
    if callable(score_method):
        fn = score_method
    elif callable(verifier):
        fn = verifier
    else:
        fn = None
        problems.add(
            "not a verifier",
            f"{name} is not a verifier: give it a score(states) method or make it a callable "
            "f(states) -> scores",
        )
        problems.raise_if_any()
    assert fn is not None  # narrowed above
    keys = [_snapshot(s) for s in states]

    def call(batch: list[Any], label: str) -> list[float | None] | None:
        try:
            raw = fn(batch)
        except Exception as exc:
            problems.add(f"raised {label}", f"{name} raised {_error(exc)} ({label})")
            return None
        return _validate_scores(raw, len(batch), problems, name)

    batch = call(states, "on the batch")
    if batch is None:
        problems.raise_if_any()
    again = call(states, "on the batch, a second time")

    def close(a: float | None, b: float | None) -> bool:
        return a is None or b is None or math.isclose(a, b, rel_tol=tolerance, abs_tol=tolerance)

    if batch is not None and again is not None:
        bad = [i for i, (a, b) in enumerate(zip(batch, again, strict=False)) if not close(a, b)]
        if bad:
            i = bad[0]
            problems.add(
                "nondeterministic",
                f"{name} scored states[{i}] {batch[i]} and then {again[i]}: a verifier must be "
                "deterministic (disable dropout / sampling)",
            )
    if batch is not None and len(batch) == len(states):
        for i, state in enumerate(states):
            single = call([state], f"on states[{i}] alone")
            if single is None or len(single) != 1 or close(single[0], batch[i]):
                continue
            problems.add(
                "batch",
                f"{name} scored states[{i}] {single[0]} alone but {batch[i]} in a batch: a "
                "state's score must not depend on the other states in its batch (check padding "
                "and attention masks)",
            )
            break
    _check_unchanged(states, keys, problems, name)
    problems.raise_if_any()


def _validate_scores(raw: Any, expected: int, problems: _Problems, name: str) -> list[float | None]:
    if isinstance(raw, (str, bytes)) or not hasattr(raw, "__len__") or not hasattr(raw, "__iter__"):
        problems.add(
            "result type",
            f"{name} must return a sequence of scores (one per state), got {type(raw).__name__}",
        )
        return []
    items = list(raw)
    if len(items) != expected:
        problems.add(
            "count",
            f"{name} returned {len(items)} scores for {expected} states: return exactly one score "
            "per state, in order",
        )
    out: list[float | None] = []
    for i, item in enumerate(items):
        if isinstance(item, Score):
            value, steps = item.value, item.step_scores
        elif _is_real(item):
            value, steps = item, ()
        else:
            problems.add(
                "score type",
                f"{name} score {i} is a {type(item).__name__}: return floats or treesearch.Score "
                "(convert tensors with float(...) or .tolist())",
            )
            out.append(None)
            continue
        finite = _is_real(value) and math.isfinite(value)
        finite = finite and all(_is_real(s) and math.isfinite(s) for s in steps)
        if not finite:
            problems.add(
                "not finite",
                f"{name} returned a non-finite score for state {i} ({_short(item)}): scores must "
                "be finite numbers",
            )
            out.append(None)
            continue
        out.append(float(value))
    return out


# ---------------------------------------------------------------------------- check_evaluator
def check_evaluator(
    evaluator: Any,
    states: Sequence[State],
    *,
    rng: np.random.Generator,
    value_bounds: tuple[float, float] | None = (-1.0, 1.0),
    deterministic: bool = True,
    tolerance: float = 1e-6,
) -> None:
    """Call ``evaluator.evaluate`` on ``states`` and check its output.

    Checked: one :class:`~treesearch.interfaces.Evaluation` per state; priors of shape
    ``(len(state.legal_actions()),)``, finite, ``>= 0`` and with a positive sum; a finite value
    within ``value_bounds`` (``None`` to skip the bound); equal results for two generators with
    the same seed (when ``deterministic``); a batch gives the same results as one state at a
    time (for evaluators that ignore the seed); states left unchanged.

    Raises:
        ConformanceError: listing every problem found.
    """
    rng = _check_rng(rng)
    states = _check_states(states, allow_terminal=False)
    if value_bounds is not None:
        lo, hi = value_bounds
        if not (_is_real(lo) and _is_real(hi) and lo <= hi):
            raise ValueError(
                f"value_bounds must be (low, high) with low <= high, got {value_bounds!r}"
            )
    name = type(evaluator).__name__
    problems = _Problems(f"check_evaluator({name})")
    evaluate = getattr(evaluator, "evaluate", None)
    if not callable(evaluate):
        raise ConformanceError(problems.subject, [f"{name} has no evaluate(states, *, rng) method"])
    seed = _seed(rng)
    keys = [_snapshot(s) for s in states]

    def call(batch: list[Any], seed: int, label: str) -> list[tuple[np.ndarray, float] | None]:
        try:
            raw = evaluate(batch, rng=np.random.default_rng(seed))
        except Exception as exc:
            problems.add(f"raised {label}", f"{name}.evaluate raised {_error(exc)} ({label})")
            return []
        return _validate_evaluations(raw, batch, problems, name, value_bounds)

    def same(a: tuple[np.ndarray, float] | None, b: tuple[np.ndarray, float] | None) -> bool:
        if a is None or b is None:
            return True
        return (
            a[0].shape == b[0].shape
            and bool(np.allclose(a[0], b[0], rtol=tolerance, atol=tolerance))
            and math.isclose(a[1], b[1], rel_tol=tolerance, abs_tol=tolerance)
        )

    first = call(states, seed, "on the batch")
    again = call(states, seed, "on the batch with the same seed")
    other = call(states, seed + 1, "on the batch with another seed")
    complete = len(first) == len(states)
    if deterministic and complete and len(again) == len(first):
        bad = [i for i, (a, b) in enumerate(zip(first, again, strict=True)) if not same(a, b)]
        if bad:
            problems.add(
                "nondeterministic",
                f"{name}.evaluate gave different results for states[{bad[0]}] with two "
                "generators of the same seed: draw every random choice from the rng argument "
                "(or pass deterministic=False)",
            )
    seed_free = (
        complete
        and len(other) == len(first)
        and all(same(a, b) for a, b in zip(first, other, strict=True))
    )
    if seed_free:
        for i, state in enumerate(states):
            single = call([state], seed, f"on states[{i}] alone")
            if len(single) == 1 and not same(single[0], first[i]):
                problems.add(
                    "batch",
                    f"{name}.evaluate gave different results for states[{i}] alone than in a "
                    "batch: a state's evaluation must not depend on the other states in its "
                    "batch (check padding and masks)",
                )
                break
    _check_unchanged(states, keys, problems, f"{name}.evaluate")
    problems.raise_if_any()


def _validate_evaluations(
    raw: Any,
    states: list[Any],
    problems: _Problems,
    name: str,
    value_bounds: tuple[float, float] | None,
) -> list[tuple[np.ndarray, float] | None]:
    if isinstance(raw, (str, bytes)) or not hasattr(raw, "__len__") or not hasattr(raw, "__iter__"):
        problems.add(
            "result type",
            f"{name}.evaluate must return a sequence of Evaluation, got {type(raw).__name__}",
        )
        return []
    items = list(raw)
    if len(items) != len(states):
        problems.add(
            "count",
            f"{name}.evaluate returned {len(items)} evaluations for {len(states)} states: return "
            "exactly one Evaluation per state, in order",
        )
    out: list[tuple[np.ndarray, float] | None] = []
    for i, (ev, state) in enumerate(zip(items, states, strict=False)):
        out.append(_validate_evaluation(ev, i, state, problems, name, value_bounds))
    return out


def _validate_evaluation(
    ev: Any,
    i: int,
    state: Any,
    problems: _Problems,
    name: str,
    value_bounds: tuple[float, float] | None,
) -> tuple[np.ndarray, float] | None:
    if not isinstance(ev, Evaluation):
        problems.add(
            "evaluation type",
            f"{name}.evaluate item {i} is a {type(ev).__name__}: return "
            "treesearch.Evaluation(priors, value) objects",
        )
        return None
    ok = True
    try:
        priors = np.asarray(ev.priors, dtype=np.float64)
    except Exception:
        problems.add(
            "priors type",
            f"{name}.evaluate gave priors of type {type(ev.priors).__name__} for state {i}: use "
            "a 1-D numpy array (convert tensors with .cpu().numpy())",
        )
        priors = np.zeros(0)
        ok = False
    try:
        n_legal = len(state.legal_actions())
    except Exception:
        n_legal = None
    if ok and n_legal is not None and priors.shape != (n_legal,):
        problems.add(
            "priors shape",
            f"{name}.evaluate gave priors of shape {priors.shape} for state {i}, which has "
            f"{n_legal} legal actions: give one prior per legal_actions() entry, in the same order",
        )
        ok = False
    if ok and not np.all(np.isfinite(priors)):
        problems.add(
            "priors not finite",
            f"{name}.evaluate gave non-finite priors for state {i}: priors must be finite",
        )
        ok = False
    if ok and np.any(priors < 0):
        problems.add(
            "priors negative",
            f"{name}.evaluate gave negative priors for state {i} (min {priors.min()}): priors "
            "must be >= 0 (apply a softmax to logits)",
        )
        ok = False
    if ok and priors.size and not priors.sum() > 0:
        problems.add(
            "priors zero",
            f"{name}.evaluate gave priors summing to 0 for state {i}: at least one legal action "
            "needs a positive prior",
        )
        ok = False
    try:
        value = float(ev.value)
    except Exception:
        problems.add(
            "value type",
            f"{name}.evaluate gave a value of type {type(ev.value).__name__} for state {i}: use "
            "a float",
        )
        return None
    if not math.isfinite(value):
        problems.add(
            "value not finite",
            f"{name}.evaluate gave value {value!r} for state {i}: values must be finite",
        )
        return None
    if value_bounds is not None and not value_bounds[0] - 1e-9 <= value <= value_bounds[1] + 1e-9:
        problems.add(
            "value bounds",
            f"{name}.evaluate gave value {value!r} for state {i}, outside value_bounds="
            f"{tuple(value_bounds)}: squash values (e.g. tanh) or pass the right value_bounds",
        )
    return (priors, value) if ok else None


# ---------------------------------------------------------------------------- trees
def assert_tree_invariants(
    tree: Tree,
    *,
    value_bounds: tuple[float, float] | None = None,
    simulations: int | None = None,
    visit_conservation: bool = True,
    normalised_priors: bool = True,
    tolerance: float = 1e-6,
) -> None:
    """Assert the structural and statistical invariants of a search tree (a test helper).

    Checked: the root has no parent and depth 0; every other node's parent precedes it and
    lists it in its one contiguous children block; blocks stay inside the tree and do not
    overlap; ``depth == parent depth + 1``; visits are ``>= 0``; no virtual loss is left over;
    terminal nodes have no children; side lists match the node count. Optionally: every
    expanded node with visits has ``sum(children visits) == visits - 1``
    (``visit_conservation``); each children block's priors sum to 1 within ``tolerance``
    (``normalised_priors``); the Q of every visited node lies within ``value_bounds``; the root
    has ``simulations`` visits.

    Raises:
        AssertionError: listing every violation found.
    """
    if not isinstance(tree, Tree):
        raise TypeError(f"tree must be a treesearch.Tree, got {type(tree).__name__}")
    n = tree.num_nodes
    errors: list[str] = []
    if n < 1 or n > tree.capacity:
        raise AssertionError(f"num_nodes={n} is outside 1..capacity={tree.capacity}")
    for side in ("actions", "states", "payloads"):
        if len(getattr(tree, side)) != n:
            errors.append(f"tree.{side} has {len(getattr(tree, side))} entries for {n} nodes")
    parent = tree.parent[:n].astype(np.int64)
    depth = tree.depth[:n].astype(np.int64)
    first = tree.first_child[:n].astype(np.int64)
    count = tree.num_children[:n].astype(np.int64)
    visits = tree.visits[:n].astype(np.int64)
    if parent[0] != Tree.NO_PARENT:
        errors.append(f"root has parent {parent[0]}, expected {Tree.NO_PARENT}")
    if depth[0] != 0:
        errors.append(f"root has depth {depth[0]}, expected 0")
    owner = np.full(n, -1, dtype=np.int64)
    for node in range(n):
        if first[node] == Tree.UNEXPANDED:
            if count[node] != 0:
                errors.append(f"node {node} is unexpanded but has num_children={count[node]}")
            continue
        start, stop = int(first[node]), int(first[node] + count[node])
        if count[node] < 0 or start <= node or stop > n:
            errors.append(
                f"node {node} has children block {start}..{stop - 1} outside {node + 1}..{n - 1}"
            )
            continue
        for child in range(start, stop):
            if owner[child] >= 0:
                errors.append(
                    f"children blocks of nodes {owner[child]} and {node} overlap at node {child}"
                )
            else:
                owner[child] = node
        if bool(tree.terminal[node]) and count[node] > 0:
            errors.append(f"terminal node {node} has {count[node]} children")
        if normalised_priors and count[node] > 0:
            total = float(tree.prior[start:stop].sum())
            if not abs(total - 1.0) <= tolerance:
                errors.append(f"priors of node {node}'s children sum to {total}, not 1")
    for node in range(1, n):
        p = int(parent[node])
        if not 0 <= p < node:
            errors.append(f"node {node} has parent {p}; a parent must be an earlier node")
            continue
        if owner[node] != p:
            where = "no children block" if owner[node] < 0 else f"the block of node {owner[node]}"
            errors.append(f"node {node} has parent {p} but lies in {where}")
        if depth[node] != depth[p] + 1:
            errors.append(f"node {node} has depth {depth[node]}, its parent {p} has {depth[p]}")
    negative = np.flatnonzero(visits < 0)
    if negative.size:
        errors.append(f"negative visits at nodes {negative[:10].tolist()}")
    leftover = np.flatnonzero(tree.virtual_loss[:n] != 0)
    if leftover.size:
        errors.append(f"virtual loss left over at nodes {leftover[:10].tolist()}")
    if visit_conservation:
        for node in range(n):
            if first[node] == Tree.UNEXPANDED or visits[node] <= 0 or count[node] < 0:
                continue
            start, stop = int(first[node]), int(min(first[node] + count[node], n))
            below = int(visits[start:stop].sum())
            if below != visits[node] - 1:
                errors.append(
                    f"node {node} has {visits[node]} visits but its children have {below} "
                    f"(expected {visits[node] - 1})"
                )
    if value_bounds is not None:
        lo, hi = value_bounds
        for visited in np.flatnonzero(visits > 0).tolist():
            q = float(tree.value_sum[visited]) / float(visits[visited])
            if not (lo - tolerance <= q <= hi + tolerance):
                errors.append(
                    f"node {visited} has Q={q} outside value_bounds={tuple(value_bounds)}"
                )
    if simulations is not None and visits[0] != simulations:
        errors.append(f"root has {visits[0]} visits, expected simulations={simulations}")
    if errors:
        shown = errors[:20]
        more = f"\n  ... and {len(errors) - 20} more" if len(errors) > 20 else ""
        raise AssertionError(
            f"tree violates {len(errors)} invariant(s):\n  " + "\n  ".join(shown) + more
        )
