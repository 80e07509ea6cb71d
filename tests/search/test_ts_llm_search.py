"""TS-LLM's MCTS-alpha and MCTS-Rollout (treesearch.search.ts_llm) on the stub text world:
critic-valued children and lazy expansion by hand, the algorithms.md test idea (the most
visited root child has the highest critic value under uniform priors), no sign flips for one
agent, episodes, budgets (hypothesis), and the answer votes on hand-built inputs."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from treesearch import Budget, Candidate, MCTSAlpha, MCTSRollout, Trace, TraceStep
from treesearch.search.ts_llm import (
    choose_path,
    majority_vote,
    min_max_normalise,
    orm_max,
    orm_vote,
)
from treesearch.testing import assert_tree_invariants

C_BASE = 19652.0
FIRST_STEP_VALUE = {"a": 0.2, "b": 0.8, "c": 0.5}


def three_way(steps):
    """Every state offers a, b, c with equal priors."""
    return [("a", 1.0), ("b", 1.0), ("c", 1.0)]


def by_first_step(steps):
    """The fixed critic: a state is worth the value of its first step (the root 0)."""
    return FIRST_STEP_VALUE[steps[0]] if steps else 0.0


def puct_c(n: int, c_init: float = 1.25) -> float:
    return math.log((n + C_BASE + 1) / C_BASE) + c_init


# ---------------------------------------------------------------------- the simulation by hand


def test_first_simulations_by_hand(tw):
    """Priors 1/3 each, critic a .2, b .8, c .5, c_init 1.25.

    Sim 1: N = 0, so only the critic counts: b (its value .8 is backed up; b is not expanded).
    Sim 2: a .2 + c(1)/3 = .617, b .8 + c(1)/6 = 1.008, c .5 + c(1)/3 = .917: b again, now on
    its second visit, so it is expanded (the policy's second call) and the simulation goes on
    to b's first child (all .8: ties go to the first), whose value .8 is backed up.
    Sim 3: sqrt(2) c(2) / 3 = .589: a .789, b (2 visits) .8 + .589 / 3 = .996, c 1.089: c
    (first visit: not expanded).
    """
    c1, c2 = puct_c(1), puct_c(2)
    assert 0.8 + c1 / 6 > 0.5 + c1 / 3 > 0.2 + c1 / 3
    assert 0.5 + math.sqrt(2) * c2 / 3 > 0.8 + math.sqrt(2) * c2 / 9
    policy = tw.TablePolicy(default=three_way)
    critic = tw.TableVerifier(default=by_first_step)
    search = MCTSAlpha(policy, critic, num_simulations=3, sample=False)
    result = search.search(tw.S(max_len=3), Budget(simulations=3), rng=tw.rng())
    tree = result.tree
    assert result.stop_reason == "simulations"
    assert policy.calls == [[()], [("b",)]]
    # The critic valued the root's three children, then b's three children, each once.
    assert critic.seen == [[("a",), ("b",), ("c",)], [("b", "a"), ("b", "b"), ("b", "c")]]
    kids = tree.children(0)
    assert [tw.steps_of(tree, i) for i in kids] == [("a",), ("b",), ("c",)]
    assert tree.visits[kids.start : kids.stop].tolist() == [0, 2, 1]
    assert tree.score[kids.start : kids.stop].tolist() == [0.2, 0.8, 0.5]
    assert tree.visits[0] == 3
    assert tree.value_sum[0] == pytest.approx(0.8 + 0.8 + 0.5)
    b_kids = tree.children(kids.start + 1)
    assert tree.visits[b_kids.start : b_kids.stop].tolist() == [1, 0, 0]
    assert not tree.is_expanded(kids.start + 2)  # c: visited once, not expanded yet
    assert result.usage.simulations == 3
    assert result.usage.expansions == 2
    assert result.usage.verifier_calls == 6


def test_most_visited_root_child_has_the_highest_critic_value(tw):
    """docs/algorithms.md section 5: with uniform priors and a fixed critic, after many
    MCTS-alpha simulations the most visited root child is the best-valued one."""
    for order in (("a", "b", "c"), ("b", "c", "a"), ("c", "a", "b")):
        policy = tw.TablePolicy(default=lambda steps, order=order: [(x, 1.0) for x in order])
        critic = tw.TableVerifier(default=by_first_step)
        search = MCTSAlpha(policy, critic, num_simulations=300, sample=False)
        result = search.search(tw.S(max_len=2), Budget(simulations=300), rng=tw.rng())
        visits = dict(zip(result.actions, result.visit_distribution.tolist(), strict=True))
        assert max(visits, key=visits.__getitem__) == "b"
        assert visits["b"] > 0.8
        assert result.action == "b"


def test_a_strong_prior_loses_to_a_better_critic_value(tw):
    """Priors .8 / .1 / .1 favour a (.2); the critic favours b (.8): with enough simulations
    the visits follow the values."""
    policy = tw.TablePolicy(default=lambda steps: [("a", 0.8), ("b", 0.1), ("c", 0.1)])
    critic = tw.TableVerifier(default=by_first_step)
    search = MCTSAlpha(policy, critic, num_simulations=400, sample=False)
    result = search.search(tw.S(max_len=2), Budget(simulations=400), rng=tw.rng())
    visits = dict(zip(result.actions, result.visit_distribution.tolist(), strict=True))
    assert max(visits, key=visits.__getitem__) == "b"


# ---------------------------------------------------------------------- the sign rule


@dataclass(frozen=True)
class TwoPlayerText:
    """The text world with players alternating every step (for the contrast test)."""

    steps: tuple[str, ...] = ()

    @property
    def to_play(self) -> int:
        return len(self.steps) % 2

    @property
    def key(self):
        return self.steps

    def legal_actions(self):
        return ()

    def step(self, action):
        return TwoPlayerText((*self.steps, str(action)))

    def is_terminal(self) -> bool:
        return len(self.steps) >= 3

    def terminal_value(self):
        return None


def test_single_agent_values_are_never_negated(tw):
    """Every state is worth .7 to the one player (to_play 0 everywhere), so every Q in the
    tree is .7: a sign flip anywhere would show as -.7."""
    policy = tw.TablePolicy(default=three_way)
    search = MCTSAlpha(policy, lambda states: [0.7] * len(states), num_simulations=40)
    result = search.search(tw.S(max_len=4), Budget(simulations=200), rng=tw.rng(1))
    tree = result.tree
    visited = [i for i in range(tree.num_nodes) if tree.visits[i] > 0]
    assert len(visited) > 10
    assert all(tree.to_play[i] == 0 for i in visited)
    for i in visited:
        assert tree.value_sum[i] / tree.visits[i] == pytest.approx(0.7)
    assert result.root_value == pytest.approx(0.7)
    assert all(step.value == pytest.approx(0.7) for t in result.traces for step in t.steps)


def test_alternating_players_are_negated_once_per_ply(tw):
    """The same critic (.7 for the player to move everywhere) over a two-player state, four
    simulations by hand. Sims 1-3 visit a, b, c once (each -.7 for the root's player: the
    opponent moves there). Sim 4 enters a again: it is expanded, its children are worth .7 to
    the root's player, i.e. -.7 to a's player, and the first one, aa, is backed up: aa -.7 (for
    a's player), a (-.7 + .7) / 2 = 0, root (-.7 * 3 + .7) / 4 = -.35. One agent: all .7."""
    policy = tw.TablePolicy(default=three_way)
    search = MCTSAlpha(policy, lambda states: [0.7] * len(states), num_simulations=4, sample=False)
    result = search.search(TwoPlayerText(), Budget(simulations=4), rng=tw.rng())
    tree = result.tree
    a, b, c = tree.children(0)
    aa = tree.children(a)[0]
    q = {name: tree.value_sum[i] / tree.visits[i] for name, i in zip("abc", (a, b, c), strict=True)}
    assert q == pytest.approx({"a": 0.0, "b": -0.7, "c": -0.7})
    assert tree.visits[aa] == 1 and tree.value_sum[aa] == pytest.approx(-0.7)
    assert result.root_value == pytest.approx(-0.35)
    one_agent = search.search(tw.S(max_len=3), Budget(simulations=4), rng=tw.rng())
    t = one_agent.tree
    visited = [i for i in range(t.num_nodes) if t.visits[i]]
    assert len(visited) == 5
    assert all(t.value_sum[i] / t.visits[i] == pytest.approx(0.7) for i in visited)


# ---------------------------------------------------------------------- MCTS-alpha episodes


def test_episodes_reach_terminal_states_and_vote(tw):
    policy = tw.TablePolicy(default=lambda steps: [("a", 1.0), ("b", 1.0), ("EOS", 1.0)])
    critic = tw.TableVerifier(default=tw.hash_score)
    search = MCTSAlpha(
        policy, critic, num_simulations=6, num_episodes=4, answer_fn=lambda s: s.steps[0]
    )
    result = search.search(tw.S(max_len=4), Budget(simulations=1000), rng=tw.rng(3))
    assert result.stop_reason == "exhausted"
    assert len(result.traces) == 4
    for i, trace in enumerate(result.traces):
        assert trace.terminal
        assert trace.metadata["path"] == i
        assert trace.answer == trace.actions[0]
        assert trace.metadata["value"] == pytest.approx(tw.hash_score(trace.actions))
    answers = [t.answer for t in result.traces]
    assert result.answer_text == majority_vote(answers)
    assert result.answer is not None and result.answer.steps[0] == result.answer_text
    assert result.action == result.answer.steps[0]


def episode_run(tw, episode_tree: str, episodes: int):
    policy = tw.TablePolicy(default=three_way)
    critic = tw.TableVerifier(default=tw.hash_score)
    search = MCTSAlpha(
        policy,
        critic,
        num_simulations=5,
        num_episodes=episodes,
        episode_tree=episode_tree,
        sample=False,
    )
    return search.search(tw.S(max_len=3), Budget(simulations=1000), rng=tw.rng(4)), policy


def test_clear_and_reset_replay_a_deterministic_episode(tw):
    """Without sampling, an episode depends only on the tree it starts from: ``"clear"`` (same
    children, zeroed statistics) and ``"reset"`` (a fresh tree) both replay the first episode;
    ``"clear"`` generates nothing new, ``"reset"`` generates it all again."""
    single, single_policy = episode_run(tw, "keep", 1)
    cleared, cleared_policy = episode_run(tw, "clear", 2)
    reset, reset_policy = episode_run(tw, "reset", 2)
    first = single.traces[0].actions
    assert [t.actions for t in cleared.traces] == [first, first]
    assert [t.actions for t in reset.traces] == [first, first]
    assert len(cleared_policy.calls) == len(single_policy.calls)
    assert len(reset_policy.calls) == 2 * len(single_policy.calls)
    assert cleared.usage.expansions == single.usage.expansions
    assert reset.usage.expansions == 2 * single.usage.expansions


def test_keep_continues_from_the_statistics_of_earlier_episodes(tw):
    kept, _ = episode_run(tw, "keep", 2)
    single, _ = episode_run(tw, "keep", 1)
    # Backups reach the original root: it counts the simulations of both episodes.
    assert kept.tree.visits[0] == kept.usage.simulations > single.tree.visits[0]


def test_exact_terminal_values_replace_the_critic(tw):
    """A finished state that knows its outcome (``eos_value``) is backed up with it."""
    policy = tw.TablePolicy(default=lambda steps: [("EOS", 1.0)])
    search = MCTSAlpha(policy, lambda states: [0.3] * len(states), num_simulations=3)
    result = search.search(tw.S(eos_value=-1.0), Budget(simulations=100), rng=tw.rng())
    assert result.traces[0].actions == ("EOS",)
    assert result.traces[0].metadata["value"] == -1.0
    assert result.traces[0].steps[0].score == 0.3  # the critic's value is kept as the score
    assert result.root_value == pytest.approx(-1.0)


def test_critic_values_are_clipped_or_refused(tw):
    policy = tw.TablePolicy(default=three_way)
    result = MCTSAlpha(policy, lambda states: [1.5] * len(states), num_simulations=2).search(
        tw.S(max_len=2), Budget(simulations=4), rng=tw.rng()
    )
    assert np.nanmax(result.tree.score[: result.tree.num_nodes]) == 1.0
    strict = MCTSAlpha(
        policy, lambda states: [1.5] * len(states), num_simulations=2, clip_values=False
    )
    with pytest.raises(ValueError, match="value_bounds"):
        strict.search(tw.S(max_len=2), Budget(simulations=4), rng=tw.rng())


def test_same_seed_same_tree(tw):
    def run(seed):
        policy = tw.RandomPolicy()
        search = MCTSAlpha(policy, tw.TableVerifier(default=tw.hash_score), num_simulations=4)
        return search.search(tw.S(max_len=4), Budget(tokens=60), rng=tw.rng(seed))

    assert run(5).tree.to_dict() == run(5).tree.to_dict()


# ---------------------------------------------------------------------- MCTS-Rollout


def test_rollout_stops_after_n_paths(tw):
    policy = tw.TablePolicy(default=lambda steps: [("a", 1.0), ("b", 1.0), ("EOS", 1.0)])
    critic = tw.TableVerifier(default=tw.hash_score)
    search = MCTSRollout(policy, critic, num_paths=5, answer_fn=lambda s: "".join(s.steps))
    result = search.search(tw.S(max_len=3), Budget(simulations=10_000), rng=tw.rng())
    assert result.stop_reason == "exhausted"
    assert len(result.traces) == 5
    assert all(t.terminal for t in result.traces)
    assert [t.metadata["path"] for t in result.traces] == [0, 1, 2, 3, 4]
    tokens = [t.metadata["tokens"] for t in result.traces]
    assert tokens == sorted(tokens)
    # Every simulation starts at the original root.
    assert result.tree.visits[0] == result.usage.simulations


def test_rollout_counts_every_arrival_at_a_terminal(tw):
    """One step, then EOS: the only terminal states are aEOS and bEOS, so ten paths must
    repeat them (the reference counts every arrival)."""
    policy = tw.TablePolicy(
        {(): [("a", 1.0), ("b", 1.0)], ("a",): [("EOS", 1.0)], ("b",): [("EOS", 1.0)]}
    )
    critic = tw.TableVerifier(default=lambda steps: 0.9 if steps[:1] == ("a",) else 0.1)
    result = MCTSRollout(policy, critic, num_paths=10).search(
        tw.S(max_len=5), Budget(simulations=1000), rng=tw.rng()
    )
    assert len(result.traces) == 10
    assert {t.actions for t in result.traces} <= {("a", "EOS"), ("b", "EOS")}
    assert result.answer == tw.S("a", "EOS", max_len=5)


COUNTERS = ("simulations", "expansions", "policy_calls", "tokens", "verifier_calls")
budgets = st.fixed_dictionaries({name: st.none() | st.integers(1, 60) for name in COUNTERS}).filter(
    lambda d: any(v is not None for v in d.values())
)


@settings(max_examples=60, deadline=None)
@given(budget=budgets, num_paths=st.integers(1, 8), seed=st.integers(0, 2**16))
def test_rollout_never_exceeds_its_budget(tw, budget, num_paths, seed):
    budget = Budget(**budget)
    policy = tw.RandomPolicy()
    search = MCTSRollout(policy, tw.TableVerifier(default=tw.hash_score), num_paths=num_paths)
    result = search.search(tw.S(max_len=4), budget, rng=tw.rng(seed))
    assert result.usage.within(budget)
    assert len(result.traces) <= num_paths
    assert all(t.terminal for t in result.traces)
    if result.stop_reason == "exhausted":
        assert len(result.traces) == num_paths
    else:
        assert result.stop_reason in COUNTERS or result.stop_reason == "max_nodes"
    if budget.tokens is not None:
        assert result.usage.tokens <= budget.tokens
    # Visit conservation with lazy expansion: a node's first visit ends at it, so an expanded
    # node's children hold all its visits but that one; the root (expanded before any
    # simulation) has no such visit.
    tree = result.tree
    assert_tree_invariants(tree, value_bounds=(0.0, 1.0), visit_conservation=False)
    for i in range(tree.num_nodes):
        kids = tree.children(i)
        if len(kids):
            own = 0 if i == 0 else 1
            assert tree.visits[kids.start : kids.stop].sum() == tree.visits[i] - own


@settings(max_examples=40, deadline=None)
@given(
    budget=budgets,
    episodes=st.integers(1, 3),
    sims=st.integers(1, 6),
    sample=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_alpha_never_exceeds_its_budget(tw, budget, episodes, sims, sample, seed):
    budget = Budget(**budget)
    search = MCTSAlpha(
        tw.RandomPolicy(),
        tw.TableVerifier(default=tw.hash_score),
        num_simulations=sims,
        num_episodes=episodes,
        sample=sample,
    )
    result = search.search(tw.S(max_len=4), budget, rng=tw.rng(seed))
    assert result.usage.within(budget)
    assert len(result.traces) <= episodes
    assert all(t.terminal for t in result.traces)
    if result.stop_reason == "exhausted":
        assert len(result.traces) == episodes
    tree = result.tree
    for i in range(tree.num_nodes):  # every child block's priors sum to one
        kids = tree.children(i)
        if len(kids):
            assert tree.prior[kids.start : kids.stop].sum() == pytest.approx(1.0)


def test_token_budget_ends_the_search_mid_expansion(tw):
    """Each candidate costs one token: the search stops when the policy gets none left."""
    result = MCTSRollout(
        tw.RandomPolicy(), tw.TableVerifier(default=tw.hash_score), num_paths=1000
    ).search(tw.S(max_len=6), Budget(tokens=25), rng=tw.rng(7))
    assert result.stop_reason == "tokens"
    assert result.usage.tokens <= 25


# ---------------------------------------------------------------------- answer votes


def test_majority_vote_by_hand():
    assert majority_vote(["3", "5", "3", None]) == "3"
    assert majority_vote(["5", "3", "3", "5"]) == "5"  # a tie goes to the answer seen first
    assert majority_vote([None, None]) is None
    assert majority_vote([]) is None


def test_min_max_normalise_by_hand():
    np.testing.assert_allclose(min_max_normalise([-1.0, 0.0, 1.0]), [0.0, 1 / 2.001, 2 / 2.001])
    np.testing.assert_allclose(min_max_normalise([0.4, 0.4]), [0.0, 0.0])


def test_orm_vote_normalises_before_summing():
    """Raw sums: A .5, B .3 + .3 = .6 (B). Normalised: A .2 / .201 = .995, B 0 + 0 (A)."""
    assert orm_vote(["A", "B", "B"], [0.5, 0.3, 0.3]) == "A"
    # Two B paths well above A's: A 0, B (.5 + .5) / .501 each = 1.996.
    assert orm_vote(["A", "B", "B"], [0.1, 0.6, 0.6]) == "B"
    # A path without an answer is dropped before the normalisation: the min is then .3.
    assert orm_vote(["A", None, "B", "B"], [0.35, -1.0, 0.3, 0.3]) == "A"
    assert orm_vote([None], [0.5]) is None


def test_orm_max_by_hand():
    assert orm_max(["A", "B", None], [0.2, 0.7, 0.9]) == "B"
    assert orm_max(["A", "B", "C"], [0.7, 0.7, 0.1]) == "A"


def trace(actions, answer, value):
    steps = tuple(TraceStep(a, score=value) for a in actions)
    return Trace(steps=steps, terminal=True, answer=answer)


def test_choose_path_over_traces_and_states(tw):
    traces = [trace(("x",), "1", 0.1), trace(("y",), "2", 0.9), trace(("z",), "1", 0.3)]
    assert choose_path(traces, method="majority") == 2  # answer 1; its best path is z (.3)
    assert choose_path(traces, method="orm_max") == 1
    # Normalised: 0, 1 / 0.801 = 1.248, .2 / .801 = .250: answer 2.
    assert choose_path(traces, method="orm_vote") == 1
    states = [tw.S("x"), tw.S("y"), tw.S("z")]
    assert choose_path(states, answer_fn=lambda s: s.steps[0] != "y") == 0
    assert choose_path(states, method="orm_max", answer_fn=str, values=[0.1, 0.5, 0.2]) == 1
    with pytest.raises(ValueError, match="values"):
        choose_path(states, method="orm_vote", answer_fn=str)
    with pytest.raises(TypeError, match="answer_fn"):
        choose_path(states)
    with pytest.raises(ValueError, match="method"):
        choose_path(traces, method="best")


# ---------------------------------------------------------------------- bad input


def test_bad_settings_are_refused(tw):
    policy = tw.TablePolicy(default=three_way)

    def critic(states):
        return [0.0] * len(states)

    with pytest.raises(ValueError, match="num_simulations"):
        MCTSAlpha(policy, critic, num_simulations=0)
    with pytest.raises(ValueError, match="episode_tree"):
        MCTSAlpha(policy, critic, episode_tree="share")
    with pytest.raises(ValueError, match="vote"):
        MCTSRollout(policy, critic, vote="best")
    with pytest.raises(ValueError, match="value_bounds"):
        MCTSRollout(policy, critic, value_bounds=(1.0, -1.0))
    with pytest.raises(ValueError, match="c_base"):
        MCTSAlpha(policy, critic, c_base=0.0)
    with pytest.raises(TypeError, match="propose"):
        MCTSAlpha(object(), critic)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="rng"):
        MCTSAlpha(policy, critic).search(tw.S(), Budget(simulations=3), rng=0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="terminal"):
        MCTSRollout(policy, critic).search(tw.S("EOS"), Budget(simulations=3), rng=tw.rng())


def test_policy_candidates_are_deduplicated(tw):
    class Repeating:
        def propose(self, states, *, rng, max_tokens=None):
            return [[Candidate("a", 0.5), Candidate("a", 0.5), Candidate("EOS", 1.0)]] * len(states)

    result = MCTSRollout(Repeating(), lambda s: [0.0] * len(s), num_paths=2).search(
        tw.S(max_len=3), Budget(simulations=50), rng=tw.rng()
    )
    kids = result.tree.children(0)
    assert [result.tree.actions[i] for i in kids] == ["a", "EOS"]
