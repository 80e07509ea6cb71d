"""MCTS-DPO (arXiv 2405.00451, docs/algorithms.md section 4): the formulas by hand, the search on
a scripted problem traced by hand, preference pairs from hand-built traces, the DPO loss and its
sequence log-probabilities, a smoke training and a resume of the online loop."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from treesearch import Budget, Candidate
from treesearch.results import Trace, TraceStep, read_traces, write_traces
from treesearch.train.mcts_dpo import (
    DPOConfig,
    MCTSDPOConfig,
    MCTSDPOSearch,
    PreferencePair,
    build_preference_pairs,
    comparison_sets,
    length_normalised_prior,
    mcts_dpo_value,
    puct_scores,
    read_pairs,
    visit_label_smoothing,
    write_pairs,
)
from treesearch.train.traces import TraceTree, with_outcomes

torch = pytest.importorskip("torch")

LOG2 = math.log(2.0)


# ----------------------------------------------------------------------------- formulas
def test_visit_label_smoothing_matches_the_worked_examples():
    assert visit_label_smoothing(6, 2) == pytest.approx(0.25)
    assert visit_label_smoothing(4, 4) == 0.5  # N_w = N_l: the cap
    assert visit_label_smoothing(2, 6) == 0.5  # 0.75 capped
    assert visit_label_smoothing(9, 1) == pytest.approx(0.1)
    assert visit_label_smoothing(0, 0) == 0.5
    with pytest.raises(ValueError, match="n_l"):
        visit_label_smoothing(1, -1)
    with pytest.raises(TypeError):
        visit_label_smoothing(1.5, 1)  # type: ignore[arg-type]


def test_backup_value_of_the_worked_example():
    # children (N=3, Q=0.5) and (N=1, Q=-1): (1.5 - 1) / 4
    assert mcts_dpo_value([3, 1], [0.5, -1.0]) == pytest.approx(0.125)
    # unvisited children weigh as one visit: (0.2 + 0.4) / 2
    assert mcts_dpo_value([0, 0], [0.2, 0.4]) == pytest.approx(0.3)


def test_length_normalised_prior_by_hand():
    # exp(-2 / 4 ** 1.25) = exp(-2 / 5.656854) = exp(-0.3535534)
    assert length_normalised_prior(-2.0, 4) == pytest.approx(0.7021885, abs=1e-6)
    assert length_normalised_prior(-2.0, 4, length_penalty=1.0) == pytest.approx(math.exp(-0.5))
    assert length_normalised_prior(0.0, 3) == 1.0
    with pytest.raises(ValueError, match="log-probability"):
        length_normalised_prior(0.5, 3)
    with pytest.raises(ValueError, match="num_tokens"):
        length_normalised_prior(-1.0, 0)
    with pytest.raises(TypeError):  # the hyperparameter is keyword-only
        length_normalised_prior(-2.0, 4, 1.0)  # type: ignore[misc]


def test_puct_choice_by_hand():
    # 0.2 + 0.9 * sqrt(4) / 2 = 1.1 ; 0.5 + 0.1 * 2 / 4 = 0.55
    scores = puct_scores([0.2, 0.5], [0.9, 0.1], [1, 3], 4, w_exp=1.0)
    np.testing.assert_allclose(scores, [1.1, 0.55])
    assert int(np.argmax(scores)) == 0
    # a small exploration weight lets Q decide: 0.2 + 0.09 = 0.29 against 0.5 + 0.005
    scores = puct_scores([0.2, 0.5], [0.9, 0.1], [1, 3], 4, w_exp=0.1)
    np.testing.assert_allclose(scores, [0.29, 0.505])
    assert int(np.argmax(scores)) == 1
    # an unvisited parent: no exploration term
    np.testing.assert_allclose(puct_scores([0.2, 0.5], [0.9, 0.1], [0, 0], 0), [0.2, 0.5])
    with pytest.raises(ValueError, match="one length"):
        puct_scores([0.2], [0.9, 0.1], [1, 3], 4)


# ----------------------------------------------------------------------------- DPO loss


def test_dpo_loss_is_log2_at_initialisation_for_any_smoothing():
    from treesearch.train.mcts_dpo import dpo_loss

    gen = torch.Generator().manual_seed(0)
    chosen = -torch.rand(5, generator=gen) * 10
    rejected = -torch.rand(5, generator=gen) * 10
    for eps in (0.0, 0.1, 0.25, 0.5):
        losses = dpo_loss(chosen, rejected, chosen.clone(), rejected.clone(), label_smoothing=eps)
        torch.testing.assert_close(losses, torch.full((5,), LOG2))
    per_pair = torch.tensor([0.0, 0.25, 0.5, 0.1, 0.3])
    losses = dpo_loss(chosen, rejected, chosen.clone(), rejected.clone(), label_smoothing=per_pair)
    torch.testing.assert_close(losses, torch.full((5,), LOG2))
    # IPO at initialisation: (0 - 1 / (2 beta))^2 = 25 for beta 0.1
    ipo = dpo_loss(chosen, rejected, chosen.clone(), rejected.clone(), loss="ipo")
    torch.testing.assert_close(ipo, torch.full((5,), 25.0))


def test_dpo_loss_by_hand():
    from treesearch.train.mcts_dpo import dpo_loss

    def t(x: float) -> Any:
        return torch.tensor([x], dtype=torch.float64)

    # log-ratios: chosen -1 - (-2) = 1, rejected -3 - (-2) = -1, so z = 0.5 * 2 = 1
    plain = dpo_loss(t(-1.0), t(-3.0), t(-2.0), t(-2.0), beta=0.5)
    assert plain.item() == pytest.approx(math.log1p(math.exp(-1.0)))  # 0.3132617
    smoothed = dpo_loss(t(-1.0), t(-3.0), t(-2.0), t(-2.0), beta=0.5, label_smoothing=0.25)
    expected = 0.75 * math.log1p(math.exp(-1.0)) + 0.25 * math.log1p(math.exp(1.0))
    assert smoothed.item() == pytest.approx(expected)  # 0.5632617
    ipo = dpo_loss(t(-1.0), t(-3.0), t(-2.0), t(-2.0), beta=0.5, loss="ipo")
    assert ipo.item() == pytest.approx((2.0 - 1.0) ** 2)


def test_dpo_loss_rejects_bad_input():
    from treesearch.train.mcts_dpo import dpo_loss

    x = torch.zeros(3)
    with pytest.raises(ValueError, match="label_smoothing"):
        dpo_loss(x, x, x, x, label_smoothing=0.6)
    with pytest.raises(ValueError, match="IPO"):
        dpo_loss(x, x, x, x, label_smoothing=0.1, loss="ipo")
    with pytest.raises(ValueError, match="loss"):
        dpo_loss(x, x, x, x, loss="hinge")
    with pytest.raises(ValueError, match="shapes"):
        dpo_loss(x, torch.zeros(2), x, x)
    with pytest.raises(ValueError, match="beta"):
        dpo_loss(x, x, x, x, beta=0.0)


# ----------------------------------------------------------------------------- search
class ScriptState:
    """A scripted reasoning problem: states are tuples of step names; terminal at ``depth``."""

    def __init__(self, steps: tuple[str, ...] = (), depth: int = 2) -> None:
        self.steps = steps
        self.depth = depth

    @property
    def to_play(self) -> int:
        return 0

    @property
    def key(self) -> tuple[str, ...]:
        return self.steps

    def legal_actions(self) -> tuple[()]:
        return ()

    def step(self, action: object) -> ScriptState:
        return ScriptState((*self.steps, str(action)), self.depth)

    def is_terminal(self) -> bool:
        return len(self.steps) >= self.depth

    def terminal_value(self) -> float | None:
        return None

    def __repr__(self) -> str:
        return f"ScriptState({self.steps})"


class ScriptPolicy:
    """Proposes ``prefix + "a"`` and ``prefix + "b"`` (one token each, log-prob log 0.5)."""

    def __init__(self) -> None:
        self.calls = 0

    def propose(self, states, *, rng, max_tokens=None):
        self.calls += len(states)
        out = []
        for s in states:
            last = s.steps[-1] if s.steps else ""
            out.append(
                [Candidate(last + x, logprob=math.log(0.5), num_tokens=1, prior=0.5) for x in "ab"]
            )
        return out


SCORES = {"a": 0.6, "b": 0.4, "aa": 0.9, "ab": 0.2, "ba": 0.5, "bb": 0.5}


def script_verifier(states: Sequence[Any]) -> list[float]:
    return [SCORES[s.steps[-1]] for s in states]


def script_outcome(state: Any) -> float:
    return 1.0 if state.steps == ("a", "aa") else -1.0


def script_search(**kw: Any) -> MCTSDPOSearch:
    options: dict[str, Any] = {
        "n_iters": 1,
        "root_iters_multiplier": 1,
        "outcome_fn": script_outcome,
    }
    options.update(kw)
    return MCTSDPOSearch(ScriptPolicy(), script_verifier, **options)


def test_search_statistics_traced_by_hand():
    """One simulation per commit, by hand:

    sim 1 from the root: expand (a: value .6, Q .6; b: .4, Q .4); N(root)=0, so PUCT picks the
    larger Q, a; expand a (aa: .9 + 1 = 1.9, Q 1.3; ab: .2 - 1 = -.8, Q -1.4); pick aa
    (terminal). Backup: Q(aa) = 1.3; V(a) = (1.3 - 1.4) / 2 = -.05, Q(a) = .6 - .05 = .55;
    V(root) = (.55 + .4) / 2 = .475. Commit a (1 visit against 0).
    sim 2 from a: PUCT(aa) = 1.3 + .5 / 2, PUCT(ab) = -1.4 + .5: aa. Backup: V(a) =
    (2 * 1.3 - 1.4) / 3 = .4, Q(a) = 1.0. Commit aa: terminal, done.
    """
    found = script_search().search(
        ScriptState(), Budget(simulations=10), rng=np.random.default_rng(0)
    )
    tree = found.tree
    names = {tree.actions[i]: i for i in range(1, tree.num_nodes)}
    a, b, aa, ab = names["a"], names["b"], names["aa"], names["ab"]
    assert found.committed == (0, a, aa)
    assert found.q[a] == pytest.approx(1.0)
    assert found.q[b] == pytest.approx(0.4)
    assert found.q[aa] == pytest.approx(1.3)
    assert found.q[ab] == pytest.approx(-1.4)
    assert found.v[a] == pytest.approx(0.4)
    assert found.result.root_value == pytest.approx(0.475)
    assert [int(tree.visits[i]) for i in (0, a, b, aa, ab)] == [1, 2, 0, 2, 0]
    np.testing.assert_allclose(found.node_value[[a, b, aa, ab]], [0.6, 0.4, 1.9, -0.8])
    assert tree.prior[a] == pytest.approx(0.5)  # exp(log 0.5 / 1 ** 1.25)
    assert found.result.usage.simulations == 2
    assert found.result.stop_reason == "exhausted"
    assert found.result.answer is not None and found.result.answer.steps == ("a", "aa")
    # traces: one per leaf (b, aa, ab), value = Q even where unvisited, committed prefix length
    by_leaf = {t.actions: t for t in found.traces}
    assert set(by_leaf) == {("b",), ("a", "aa"), ("a", "ab")}
    assert by_leaf[("b",)].steps[0].value == pytest.approx(0.4)
    assert by_leaf[("b",)].steps[0].visits == 0
    assert [s.value for s in by_leaf[("a", "ab")].steps] == pytest.approx([1.0, -1.4])
    assert by_leaf[("a", "aa")].metadata["committed_steps"] == 2
    assert by_leaf[("a", "ab")].metadata["committed_steps"] == 1
    assert by_leaf[("b",)].metadata["committed_steps"] == 0
    # Q is also what tree.q reports for visited nodes
    assert tree.q(a) == pytest.approx(1.0)


def test_root_multiplier_and_n_iters_count_simulations():
    search = script_search(n_iters=3, root_iters_multiplier=4)
    found = search.search(ScriptState(), Budget(simulations=100), rng=np.random.default_rng(0))
    assert found.result.usage.simulations == 3 * 4 + 3  # the root, then one commit below it
    assert len(found.committed) == 3


def test_budget_stops_the_search_and_the_commits():
    found = script_search(n_iters=2).search(
        ScriptState(), Budget(simulations=1), rng=np.random.default_rng(0)
    )
    assert found.committed == (0,)  # the root needed 2 simulations before its first commit
    assert found.result.stop_reason == "simulations"
    assert found.result.answer is None
    # an expansion budget: the root is expanded, the child's expansion is refused
    found = script_search().search(
        ScriptState(), Budget(expansions=1), rng=np.random.default_rng(0)
    )
    assert found.result.stop_reason == "expansions"
    assert found.tree.num_nodes == 3
    assert found.result.usage.expansions == 1
    # the partial path was still backed up: a's Q = r + gamma * V with V = 0
    assert int(found.tree.visits[0]) == 1


def test_depth_discount_divides_deep_scores():
    class Chain(ScriptPolicy):
        def propose(self, states, *, rng, max_tokens=None):
            return [[Candidate("x", logprob=-0.1, num_tokens=1)] for _ in states]

    def constant(states):
        return [0.8] * len(states)

    root = ScriptState(depth=6)
    for offset, expected in (
        (3, [0.8] * 5 + [0.4]),
        (None, [0.8] * 6),
        (1, [0.8] * 3 + [0.4, 0.8 / 3, 0.2]),
    ):
        search = MCTSDPOSearch(Chain(), constant, n_iters=1, depth_discount_offset=offset)
        found = search.search(root, Budget(simulations=50), rng=np.random.default_rng(0))
        np.testing.assert_allclose(found.node_value[1:], expected)


def test_depth_limit_bounds_one_simulation():
    search = script_search(depth_limit=1, n_iters=1)
    root = ScriptState(depth=3)
    found = search.search(root, Budget(simulations=1), rng=np.random.default_rng(0))
    assert found.tree.num_nodes == 3  # only the root was expanded in the one simulation


def test_search_rejects_bad_arguments():
    with pytest.raises(ValueError, match="n_iters"):
        script_search(n_iters=0)
    with pytest.raises(TypeError, match="outcome_fn"):
        script_search(outcome_fn=3)
    with pytest.raises(ValueError, match="gamma"):
        script_search(gamma=1.5)
    with pytest.raises(ValueError, match="terminal"):
        script_search().search(
            ScriptState(("a", "aa")), Budget(simulations=1), rng=np.random.default_rng(0)
        )
    with pytest.raises(TypeError, match="Generator"):
        script_search().search(ScriptState(), Budget(simulations=1), rng=0)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- pairs
def step(action: str, q: float | None, visits: int) -> TraceStep:
    return TraceStep(action, value=q, visits=visits)


def hand_traces(problem: str = "p") -> list[Trace]:
    """root -> s1 (Q .5, N 6) -> t1 (.9, 4) -> u1 (.8, 4) -> u2 (.7, 4, eos: committed end)
                               -> t2 (.3, 2)
            -> s2 (Q -.2, N 2)
            -> s3 (Q .1, N 3)
    committed: s1, t1, u1, u2."""

    def tr(steps: list[TraceStep], committed: int, eos: bool = False) -> Trace:
        return Trace(
            steps=tuple(steps),
            terminal=eos,
            metadata={
                "problem_id": problem,
                "prompt": "Q:",
                "committed_steps": committed,
                "eos": eos,
            },
        )

    s1, t1 = step("s1|", 0.5, 6), step("t1|", 0.9, 4)
    return [
        tr([s1, t1, step("u1|", 0.8, 4), step("u2", 0.7, 4)], 4, eos=True),
        tr([s1, step("t2|", 0.3, 2)], 1),
        tr([step("s2|", -0.2, 2)], 0),
        tr([step("s3|", 0.1, 3)], 0),
    ]


def labelled(traces: list[Trace]) -> list[Trace]:
    return with_outcomes(traces, lambda t: 1.0 if t.metadata.get("eos") else 0.0)


def test_pairs_are_highest_against_lowest_q_with_single_child_chains():
    pairs = build_preference_pairs(labelled(hand_traces()))
    assert len(pairs) == 2  # the sets below t1 and u1 have one candidate each
    root_pair, s1_pair = pairs
    assert root_pair == PreferencePair(
        prompt="Q:",
        prefix_steps=(),
        chosen="s1|",
        rejected="s2|",
        chosen_visits=6,
        rejected_visits=2,
        chosen_q=0.5,
        rejected_q=-0.2,
        problem_id="p",
    )
    assert root_pair.label_smoothing == pytest.approx(0.25)
    assert s1_pair.prefix_steps == ("s1|",)
    assert s1_pair.chosen == "t1|u1|u2"  # t1's single-child chain, down to the eos leaf
    assert s1_pair.chosen_eos and not s1_pair.rejected_eos
    assert s1_pair.rejected == "t2|"
    assert (s1_pair.chosen_q, s1_pair.rejected_q) == (0.9, 0.3)
    assert s1_pair.label_smoothing == pytest.approx(1 - 4 / 6)


def test_comparison_sets_follow_the_committed_path():
    tree = TraceTree.from_traces(labelled(hand_traces()))
    sets = comparison_sets(tree)
    assert [len(s.candidates) for s in sets] == [3, 2, 1, 1]
    assert [c.text for c in sets[0].candidates] == ["s1|", "s2|", "s3|"]
    assert sets[2].prefix_steps == ("s1|", "t1|")


def test_committed_path_falls_back_to_most_visits_without_the_metadata():
    plain = [
        Trace(
            t.steps,
            t.outcome,
            t.terminal,
            t.answer,
            {k: v for k, v in t.metadata.items() if k != "committed_steps"},
        )
        for t in labelled(hand_traces())
    ]
    # most visits: s1 (6) at the root, t1 (4) below it, then the chain u1, u2
    assert build_preference_pairs(plain) == build_preference_pairs(labelled(hand_traces()))


def test_random_non_best_never_picks_the_best():
    traces = labelled(hand_traces())
    seen = set()
    for seed in range(40):
        pairs = build_preference_pairs(traces, rejected="random", rng=np.random.default_rng(seed))
        root_pair = pairs[0]
        assert root_pair.chosen == "s1|"
        assert root_pair.rejected != root_pair.chosen
        seen.add(root_pair.rejected)
    assert seen == {"s2|", "s3|"}
    with pytest.raises(TypeError, match="Generator"):
        build_preference_pairs(traces, rejected="random")


def test_pairs_without_divergence_or_preference_are_skipped():
    meta = {"problem_id": "q", "prompt": "Q:", "eos": False}
    # sibling "ab" against "a" whose single child is "b": both read "ab"
    same_text = [
        Trace((step("ab", 0.9, 3),), outcome=0.0, metadata={**meta, "committed_steps": 1}),
        Trace(
            (step("a", 0.1, 1), step("b", 0.1, 1)),
            outcome=0.0,
            metadata={**meta, "committed_steps": 0},
        ),
    ]
    assert build_preference_pairs(same_text) == []
    # "x" against its extension "xy": no divergence point either
    prefix = [
        Trace((step("x", 0.9, 3),), outcome=0.0, metadata={**meta, "committed_steps": 1}),
        Trace((step("xy", 0.1, 1),), outcome=0.0, metadata={**meta, "committed_steps": 0}),
    ]
    assert build_preference_pairs(prefix) == []
    # ...unless the shorter one ends the solution: end-of-sequence differs from "y"
    ended = [
        Trace(
            (step("x", 0.9, 3),), outcome=1.0, metadata={**meta, "committed_steps": 1, "eos": True}
        ),
        prefix[1],
    ]
    assert len(build_preference_pairs(ended)) == 1
    # equal Q: no preference
    tie = [
        Trace((step("u", 0.5, 3),), outcome=0.0, metadata={**meta, "committed_steps": 1}),
        Trace((step("v", 0.5, 1),), outcome=0.0, metadata={**meta, "committed_steps": 0}),
    ]
    assert build_preference_pairs(tie) == []
    # Q gap 0.5 - 0.1 = 0.4
    assert len(build_preference_pairs([*tie[:1], prefix[1]], min_q_gap=0.3)) == 1
    assert build_preference_pairs([*tie[:1], prefix[1]], min_q_gap=0.45) == []


def test_pairs_need_outcomes_prompts_and_one_committed_path():
    with pytest.raises(ValueError, match="outcome"):
        build_preference_pairs(hand_traces())
    with pytest.raises(ValueError, match="no traces"):
        build_preference_pairs([])
    no_prompt = [
        Trace(t.steps, t.outcome, metadata={**t.metadata, "prompt": None})
        for t in labelled(hand_traces())
    ]
    with pytest.raises(ValueError, match="prompt"):
        build_preference_pairs(no_prompt)
    traces = labelled(hand_traces())
    traces[1] = Trace(traces[1].steps, 0.0, metadata={**traces[1].metadata, "committed_steps": 2})
    with pytest.raises(ValueError, match="committed path"):
        build_preference_pairs(traces)


def test_pairs_of_many_problems_and_a_jsonl_round_trip(tmp_path):
    traces = labelled(hand_traces("p1") + hand_traces("p2"))
    write_traces(tmp_path / "traces.jsonl", traces)
    pairs = build_preference_pairs(read_traces(tmp_path / "traces.jsonl"))
    assert [p.problem_id for p in pairs] == ["p1", "p1", "p2", "p2"]
    assert pairs == build_preference_pairs(traces)
    write_pairs(tmp_path / "pairs.jsonl", pairs)
    assert read_pairs(tmp_path / "pairs.jsonl") == pairs


def test_pairs_from_a_search_on_the_scripted_problem():
    found = script_search().search(
        ScriptState(), Budget(simulations=10), rng=np.random.default_rng(0)
    )
    traces = with_outcomes(found.traces, lambda t: 1.0 if t.actions == ("a", "aa") else 0.0)
    traces = [
        Trace(
            t.steps,
            t.outcome,
            t.terminal,
            t.answer,
            {**t.metadata, "problem_id": "s", "prompt": ""},
        )
        for t in traces
    ]
    pairs = build_preference_pairs(traces)
    assert [(p.prefix_steps, p.chosen, p.rejected) for p in pairs] == [
        ((), "a", "b"),
        (("a",), "aa", "ab"),
    ]
    assert [(p.chosen_visits, p.rejected_visits) for p in pairs] == [(2, 0), (2, 0)]
    assert pairs[0].label_smoothing == 0.0


# ----------------------------------------------------------------------------- log-probs
@pytest.fixture
def toy_pair():
    prompt = "Start with 3. Add 4. What is the result?<sep>"
    return PreferencePair(
        prompt=prompt,
        prefix_steps=("3+4=7<sep>",),
        chosen="The answer is 7<sep>",
        rejected="The answer is 8<sep>",
        chosen_visits=6,
        rejected_visits=2,
        chosen_q=1.0,
        rejected_q=-1.0,
        chosen_eos=True,
        rejected_eos=True,
    )


def test_encode_pair_lays_out_tokens_as_the_search_state(toy_tokenizer, toy_pair):
    from treesearch.adapters.state import ReasoningState
    from treesearch.train.mcts_dpo import encode_pair

    encoded = encode_pair(toy_tokenizer, toy_pair)
    state = ReasoningState.from_prompt(toy_pair.prompt, toy_tokenizer).step("3+4=7<sep>")
    assert encoded.context_ids == state.token_ids
    sep, eos = toy_tokenizer.sep_token_id, toy_tokenizer.eos_token_id
    assert encoded.chosen_ids[-2:] == (sep, eos)
    assert encoded.divergence == len("The answer is ")
    assert encoded.label_smoothing == pytest.approx(0.25)
    assert toy_tokenizer.decode(encoded.chosen_ids[encoded.divergence :]) == "7<sep><eos>"
    same = PreferencePair(**{**toy_pair.to_dict(), "rejected": "The answer is 7<sep>"})
    with pytest.raises(ValueError, match="divergence"):
        encode_pair(toy_tokenizer, same)


def test_batched_logprobs_equal_one_sequence_at_a_time(
    toy_tokenizer, toy_pair, tiny_llama, one_torch_thread
):
    from treesearch.train.mcts_dpo import encode_pair, sequence_logprobs

    model = tiny_llama(toy_tokenizer, seed=3)
    short = PreferencePair(
        **{
            **toy_pair.to_dict(),
            "prefix_steps": (),
            "chosen": "3+4=7<sep>",
            "rejected": "3*4=12<sep>",
            "chosen_eos": False,
            "rejected_eos": False,
        }
    )
    pairs = [toy_pair, short]
    chosen, rejected = sequence_logprobs(model, toy_tokenizer, pairs)
    for i, pair in enumerate(pairs):
        enc = encode_pair(toy_tokenizer, pair)
        for cont, got in ((enc.chosen_ids, chosen[i]), (enc.rejected_ids, rejected[i])):
            ids = torch.tensor([enc.context_ids + cont])
            with torch.no_grad():
                logp = torch.log_softmax(model(input_ids=ids).logits[0].float(), dim=-1)
            start = len(enc.context_ids) + enc.divergence
            want = sum(float(logp[j - 1, ids[0, j]]) for j in range(start, ids.shape[1]))
            assert float(got) == pytest.approx(want, abs=1e-4)


def test_tokenizer_and_vocabulary_mismatches_are_refused(toy_tokenizer, toy_pair, tiny_llama):
    from treesearch.adapters.tiny import char_tokenizer
    from treesearch.train.mcts_dpo import check_tokenizers_match, train_dpo

    other = char_tokenizer()
    with pytest.raises(ValueError, match="tokenizers differ"):
        check_tokenizers_match(toy_tokenizer, other)
    check_tokenizers_match(toy_tokenizer, toy_tokenizer)
    policy = tiny_llama(toy_tokenizer)
    reference = tiny_llama(toy_tokenizer)
    config = DPOConfig(epochs=1, batch_size=1)
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="tokenizers differ"):
        train_dpo(
            policy,
            reference,
            toy_tokenizer,
            [toy_pair],
            config=config,
            rng=rng,
            reference_tokenizer=other,
        )
    with pytest.raises(ValueError, match="vocabulary"):
        train_dpo(policy, tiny_llama(other), toy_tokenizer, [toy_pair], config=config, rng=rng)
    with pytest.raises(ValueError, match="empty"):
        train_dpo(policy, reference, toy_tokenizer, [], config=config, rng=rng)
    with pytest.raises(ValueError, match="separate"):
        train_dpo(policy, policy, toy_tokenizer, [toy_pair], config=config, rng=rng)


def test_dpo_smoke_training_lowers_the_loss_and_changes_the_policy(
    toy_tokenizer, toy_pair, tiny_llama, one_torch_thread
):
    from treesearch.train.mcts_dpo import sequence_logprobs, train_dpo

    policy = tiny_llama(toy_tokenizer, seed=1)
    reference = tiny_llama(toy_tokenizer, seed=1)
    before = [p.detach().clone() for p in policy.parameters()]
    pairs = [
        toy_pair,
        PreferencePair(
            **{
                **toy_pair.to_dict(),
                "prefix_steps": (),
                "chosen": "3+4=7<sep>",
                "rejected": "3+4=8<sep>",
                "chosen_eos": False,
                "rejected_eos": False,
            }
        ),
    ]
    config = DPOConfig(
        epochs=30, batch_size=2, learning_rate=1e-2, label_smoothing=0.0, warmup_ratio=0.0
    )
    log = train_dpo(
        policy, reference, toy_tokenizer, pairs, config=config, rng=np.random.default_rng(0)
    )
    assert log.losses[0] == pytest.approx(LOG2, abs=1e-5)  # pi = pi_ref at the first step
    assert log.losses[-1] < 0.5 * LOG2
    assert log.reward_accuracies[-1] == 1.0
    assert any(not torch.equal(a, b) for a, b in zip(before, policy.parameters(), strict=True))
    ref_params = list(reference.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, ref_params, strict=True))  # frozen
    chosen, rejected = sequence_logprobs(policy, toy_tokenizer, pairs)
    ref_chosen, ref_rejected = sequence_logprobs(reference, toy_tokenizer, pairs)
    assert bool(((chosen - ref_chosen) > (rejected - ref_rejected)).all())


def test_nll_term_adds_the_chosen_mean_token_nll(
    toy_tokenizer, toy_pair, tiny_llama, one_torch_thread
):
    from treesearch.train.mcts_dpo import encode_pair, sequence_logprobs, train_dpo

    policy = tiny_llama(toy_tokenizer, seed=2)
    reference = tiny_llama(toy_tokenizer, seed=2)
    other = PreferencePair(
        **{
            **toy_pair.to_dict(),
            "prefix_steps": (),
            "chosen": "3+4=7<sep>",
            "rejected": "3-4=1<sep>",
            "chosen_eos": False,
            "rejected_eos": False,
        }
    )
    pairs = [toy_pair, other]
    chosen, _ = sequence_logprobs(reference, toy_tokenizer, pairs)
    tokens = [
        len(e.chosen_ids) - e.divergence for e in (encode_pair(toy_tokenizer, p) for p in pairs)
    ]
    assert tokens == [3, 5]  # "7", <sep>, <eos>; and "+4=7", <sep>
    nll = float(np.mean([-float(c) / n for c, n in zip(chosen, tokens, strict=True)]))
    config = DPOConfig(epochs=1, batch_size=2, nll_weight=0.5, label_smoothing=0.0)
    log = train_dpo(
        policy, reference, toy_tokenizer, pairs, config=config, rng=np.random.default_rng(0)
    )
    assert log.losses[0] == pytest.approx(LOG2 + 0.5 * nll, abs=1e-5)


def test_dpo_config_validation():
    with pytest.raises(ValueError, match="label_smoothing"):
        DPOConfig(label_smoothing=0.7)
    with pytest.raises(ValueError, match="label_smoothing"):
        DPOConfig(label_smoothing="counts")
    with pytest.raises(ValueError, match="IPO"):
        DPOConfig(loss="ipo")  # the default label smoothing is "visits"
    DPOConfig(loss="ipo", label_smoothing=0.0)
    with pytest.raises(ValueError, match="beta"):
        DPOConfig(beta=-1.0)
    with pytest.raises(ValueError, match="nll_weight"):
        DPOConfig(nll_weight=-0.1)
    assert MCTSDPOConfig(nll_weight=0.5).dpo_config().nll_weight == 0.5


# ----------------------------------------------------------------------------- the loop
def test_loop_config_validation():
    assert MCTSDPOConfig().dpo_config().beta == 0.1
    with pytest.raises(ValueError, match="train_levels"):
        MCTSDPOConfig(train_levels=("impossible",))
    with pytest.raises(TypeError, match="eval_levels"):
        MCTSDPOConfig(eval_levels="easy")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="evaluator"):
        MCTSDPOConfig(evaluator="orm")
    with pytest.raises(ValueError, match="aggregation"):
        MCTSDPOConfig(aggregation="max")
    with pytest.raises(ValueError, match="rejected"):
        MCTSDPOConfig(rejected="worst")
    with pytest.raises(ValueError, match="label_smoothing"):
        MCTSDPOConfig(label_smoothing=0.9)
    with pytest.raises(ValueError, match="outcome_check"):
        MCTSDPOConfig(outcome_check="close")
    config = MCTSDPOConfig(seed=3, train_levels=("medium",))
    assert MCTSDPOConfig.from_dict(config.to_dict()) == config


class Interrupt(Exception):
    pass


def test_resume_after_a_kill_equals_an_uninterrupted_run(tmp_path, one_torch_thread):
    pytest.importorskip("transformers")
    from safetensors.torch import load_file

    from treesearch.train.loop import LoopProgress
    from treesearch.train.mcts_dpo import run_mcts_dpo

    config = MCTSDPOConfig(
        iterations=1,
        problems_per_iteration=2,
        train_levels=("medium",),
        n_iters=1,
        root_iters_multiplier=1,
        eval_levels=("easy",),
        eval_size=2,
        evaluator="prm",  # on two problems the exact checker's Q values tie: no pairs
    )
    whole = run_mcts_dpo(tmp_path / "whole", config)
    assert whole["complete"]
    assert [row["iteration"] for row in whole["history"]] == [0, 1]
    assert whole["iterations"][1]["train"]["pairs"] > 0

    def kill_in_training(event: LoopProgress) -> None:
        if event.phase == "train" and event.done > 0:
            raise Interrupt(event.message)

    with pytest.raises(Interrupt):
        run_mcts_dpo(tmp_path / "killed", config, progress=kill_in_training)
    assert not (tmp_path / "killed" / "iteration-1" / "policy").exists()
    events: list[LoopProgress] = []
    resumed = run_mcts_dpo(tmp_path / "killed", config, progress=events.append)
    assert {e.phase for e in events} == {"train", "evaluate"}  # the search was not redone
    for name in ("traces.jsonl", "pairs.jsonl"):
        a = (tmp_path / "whole" / "iteration-1" / name).read_text()
        assert a == (tmp_path / "killed" / "iteration-1" / name).read_text()
    assert whole["history"] == resumed["history"]
    w1 = load_file(tmp_path / "whole" / "iteration-1" / "policy" / "model.safetensors")
    w2 = load_file(tmp_path / "killed" / "iteration-1" / "policy" / "model.safetensors")
    assert all(torch.equal(w1[k], w2[k]) for k in w1)
    with pytest.raises(ValueError, match="different config"):
        run_mcts_dpo(tmp_path / "whole", MCTSDPOConfig(iterations=1, seed=1))
