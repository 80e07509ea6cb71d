"""TS-LLM critic training (treesearch.train.ts_llm): Monte-Carlo and TD(lambda) targets by hand
(the algorithms.md section 5 numbers), targets exactly at the step-end separators, deduplicated
merges, refused bad traces, and a smoke training of a tiny value-head model whose loss goes down
and whose values the search-time verifier reads back unchanged."""

from __future__ import annotations

import math

import numpy as np
import pytest

from treesearch import Trace, TraceStep

pytest.importorskip("torch")
pytest.importorskip("transformers")

from treesearch.train.ts_llm import (
    CriticConfig,
    CriticExample,
    critic_examples,
    critic_value_fn,
    critic_verifier,
    encode_critic_example,
    merge_traces,
    predict_values,
    train_critic,
)

PROMPT = "Compute 3+4*2.<sep>"
STEPS = ("4*2=8<sep>", "3+8=11<sep>", "The answer is 11<sep>")


def make_trace(
    steps=STEPS,
    outcome: float | None = 1.0,
    *,
    scores=None,
    values=None,
    problem="p1",
    prompt=PROMPT,
) -> Trace:
    scores = scores or [None] * len(steps)
    values = values or [None] * len(steps)
    return Trace(
        steps=tuple(
            TraceStep(a, score=s, value=v) for a, s, v in zip(steps, scores, values, strict=True)
        ),
        outcome=outcome,
        terminal=True,
        metadata={"problem_id": problem, "prompt": prompt},
    )


# ---------------------------------------------------------------------- Monte-Carlo targets


def test_mc_returns_from_algorithms_md():
    """Rewards [0, 0, 1] (three steps, right answer): gamma 1 gives [1, 1, 1], gamma 0.9 gives
    [0.81, 0.9, 1]; the final state also carries the reward (the ORM target)."""
    (example,) = critic_examples([make_trace()])
    assert example.targets == (1.0, 1.0, 1.0, 1.0)
    assert example.steps == STEPS
    assert example.prompt == PROMPT
    assert example.problem_id == "p1"
    (discounted,) = critic_examples([make_trace()], gamma=0.9)
    assert discounted.targets == pytest.approx((0.81, 0.9, 1.0, 1.0))


def test_wrong_answers_get_minus_one_and_the_rewards_can_be_chosen():
    (wrong,) = critic_examples([make_trace(outcome=0.0)])
    assert wrong.targets == (-1.0, -1.0, -1.0, -1.0)
    (unit,) = critic_examples([make_trace(outcome=0.0)], correct_reward=1.0, wrong_reward=0.0)
    assert unit.targets == (0.0, 0.0, 0.0, 0.0)
    (soft,) = critic_examples([make_trace(outcome=0.75)], gamma=0.5)
    assert soft.targets == pytest.approx((0.125, 0.25, 0.5, 0.5))  # reward -1 + 2 * .75


def test_the_end_of_sequence_step_is_dropped():
    (example,) = critic_examples([make_trace((*STEPS, ""))])
    assert example.steps == STEPS
    assert len(example.targets) == 4


# ---------------------------------------------------------------------- TD(lambda) targets


def test_td_lambda_by_hand():
    """Three steps, reward 1, V(s_1) = .5 and V(s_2) = .8 (the search's critic scores), lam .95:
    G_2 = 1; G_1 = .05 * .8 + .95 * 1 = .99; G_0 = .05 * .5 + .95 * .99 = .9655."""
    trace = make_trace(scores=[0.5, 0.8, 0.9])
    (example,) = critic_examples([trace], method="td")
    assert example.targets == pytest.approx((0.9655, 0.99, 1.0, 1.0))
    # Q values stand in for missing scores; lam = 1 is Monte Carlo; lam = 0 one-step TD.
    (from_q,) = critic_examples([make_trace(values=[0.5, 0.8, None])], method="td")
    assert from_q.targets == pytest.approx(example.targets)
    (mc,) = critic_examples([trace], method="td", lam=1.0)
    assert mc.targets == pytest.approx((1.0, 1.0, 1.0, 1.0))
    (one_step,) = critic_examples([trace], method="td", lam=0.0)
    assert one_step.targets == pytest.approx((0.5, 0.8, 1.0, 1.0))


def test_td_targets_do_not_depend_on_the_first_state_value():
    trace = make_trace(scores=[0.5, 0.8, 0.9])
    a = critic_examples([trace], method="td", values=lambda t: [0.3, 0.5, 0.8])[0]
    b = critic_examples([trace], method="td", values=lambda t: [-0.9, 0.5, 0.8])[0]
    assert a.targets == pytest.approx(b.targets)
    assert a.targets == pytest.approx((0.9655, 0.99, 1.0, 1.0))


# ---------------------------------------------------------------------- bad traces


def test_bad_traces_are_refused_by_name():
    unlabelled = make_trace(outcome=None, problem="p2")
    with pytest.raises(ValueError, match=r"trace 1 \(problem 'p2'\) has none"):
        critic_examples([make_trace(), unlabelled])
    with pytest.raises(ValueError, match=r"trace 0 .*metadata\['prompt'\]"):
        critic_examples([make_trace(prompt="")])
    with pytest.raises(ValueError, match=r"outcome 2\.0"):
        critic_examples([make_trace(outcome=2.0)])
    with pytest.raises(ValueError, match="step 1 is blank"):
        critic_examples([make_trace(("a<sep>", " ", "b<sep>"))])
    with pytest.raises(ValueError, match="no non-blank step"):
        critic_examples([make_trace(("",))])
    with pytest.raises(ValueError, match="step 0 has no critic value"):
        critic_examples([make_trace()], method="td")
    with pytest.raises(ValueError, match="gave 2 values"):
        critic_examples([make_trace()], method="td", values=lambda t: [0.0, 0.0])
    with pytest.raises(ValueError, match="method"):
        critic_examples([make_trace()], method="gae")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="gamma"):
        critic_examples([make_trace()], gamma=1.5)
    with pytest.raises(ValueError, match="targets"):
        CriticExample(PROMPT, STEPS, (1.0, 1.0))


# ---------------------------------------------------------------------- merging iterations


def test_merge_traces_drops_repeated_paths():
    first = [make_trace(), make_trace((*STEPS[:2], "The answer is 9<sep>"), 0.0)]
    second = [make_trace(), make_trace(problem="p2"), make_trace(prompt="Compute 1+1.<sep>")]
    merged = merge_traces(first, second)
    assert merged == [first[0], first[1], second[1], second[2]]
    assert len(critic_examples(first + second)) == 4
    assert len(critic_examples(first + second, dedupe=False)) == 5
    with pytest.raises(TypeError, match="lists of traces"):
        merge_traces(make_trace())  # type: ignore[arg-type]


# ---------------------------------------------------------------------- encoding


@pytest.fixture(scope="module")
def tok():
    from treesearch.adapters.toymath import build_tokenizer

    return build_tokenizer()


def test_targets_land_exactly_at_the_step_end_separators(tok):
    (example,) = critic_examples([make_trace((*STEPS, ""))], gamma=0.9)
    encoded = encode_critic_example(tok, example)
    ids = list(encoded.input_ids)
    sep = tok.sep_token_id
    assert [i for i, t in enumerate(ids) if t == sep] == list(encoded.positions)
    # <bos>, 14 prompt characters, <sep>, then each step's characters and its <sep>.
    prompt_end = 1 + len("Compute 3+4*2.")
    ends = [prompt_end]
    for step in ("4*2=8", "3+8=11", "The answer is 11"):
        ends.append(ends[-1] + len(step) + 1)
    assert list(encoded.positions) == ends
    assert len(ids) == ends[-1] + 1
    assert ids[0] == tok.bos_token_id
    assert tok.decode(ids[ends[0] + 1 : ends[1]]) == "4*2=8"
    assert encoded.targets == pytest.approx((0.81, 0.9, 1.0, 1.0))


def test_a_prompt_without_its_separator_encodes_the_same(tok):
    with_sep = critic_examples([make_trace()])[0]
    without = critic_examples(
        [make_trace(("4*2=8", "3+8=11", "The answer is 11"), prompt=PROMPT[:-5])]
    )[0]
    assert encode_critic_example(tok, with_sep) == encode_critic_example(tok, without)


# ---------------------------------------------------------------------- training


@pytest.fixture(scope="module")
def critic(tok):
    import torch
    import transformers

    from treesearch.train.prm import value_head_model

    config = transformers.LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        lm = transformers.LlamaForCausalLM(config)
    return lambda: value_head_model(lm, seed=1)


def training_traces() -> list[Trace]:
    right = make_trace((*STEPS, ""), 1.0)
    wrong = make_trace(("4*2=8<sep>", "3+8=12<sep>", "The answer is 12<sep>", ""), 0.0)
    other = make_trace(("3+4=7<sep>", "7*2=14<sep>", "The answer is 14<sep>", ""), 0.0)
    return [right, wrong, other]


def test_training_lowers_the_loss_and_changes_the_parameters(tok, critic, one_torch_thread):
    import torch

    model = critic()
    before = [p.detach().clone() for p in model.parameters()]
    examples = critic_examples(training_traces())
    config = CriticConfig(num_steps=40, batch_size=3, learning_rate=3e-3, warmup_steps=2)
    log = train_critic(model, tok, examples, config=config, rng=np.random.default_rng(0))
    assert len(log.losses) == 40
    assert np.mean(log.losses[-5:]) < 0.5 * np.mean(log.losses[:5])
    changed = [not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True)]
    assert all(changed)
    predicted = predict_values(model, tok, examples)
    right, wrong, _ = predicted
    # The wrong solution's later states are told apart from the right one's.
    assert right[-1] > 0.5 > -0.5 > wrong[-1]
    mse = np.mean(
        [
            (p - t) ** 2
            for e, v in zip(examples, predicted, strict=True)
            for p, t in zip(v, e.targets, strict=True)
        ]
    )
    assert mse == pytest.approx(log.losses[-1], abs=0.2)


def test_the_search_verifier_reads_the_trained_positions(tok, critic, one_torch_thread):
    """critic_verifier (HFPRM, value head, identity) scores a reasoning state with the very
    numbers predict_values gives at the step-end separators."""
    from treesearch.adapters.state import ReasoningState, Step

    model = critic()
    root = ReasoningState.from_prompt(PROMPT, tok, question=PROMPT)
    state = root
    for text in STEPS:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        state = state.step(Step(text, ids, "separator", content=text.removesuffix("<sep>")))
    (score,) = critic_verifier(model, tok).score([state])
    (example,) = critic_examples([make_trace()])
    (values,) = predict_values(model, tok, [example])
    assert score.step_scores == pytest.approx(values[1:], abs=1e-5)
    assert score.value == pytest.approx(values[-1], abs=1e-5)


def test_td_targets_with_values_recomputed_by_the_critic(tok, critic, one_torch_thread):
    from treesearch.train.advantages import td_lambda_returns

    model = critic()
    trace = make_trace()
    (placeholder,) = critic_examples([trace])
    (values,) = predict_values(model, tok, [placeholder])
    (example,) = critic_examples([trace], method="td", values=critic_value_fn(model, tok))
    expected = td_lambda_returns([0.0, 0.0, 1.0], list(values[:-1]), lam=0.95)
    assert example.targets[:-1] == pytest.approx(tuple(expected), abs=1e-6)
    assert example.targets[-1] == 1.0


def test_bad_training_input(tok, critic, tiny_llama):
    model = critic()
    config = CriticConfig(num_steps=1, batch_size=1)
    with pytest.raises(ValueError, match="no training examples"):
        train_critic(model, tok, [], config=config, rng=np.random.default_rng(0))
    with pytest.raises(TypeError, match="CriticConfig"):
        train_critic(
            model,
            tok,
            critic_examples([make_trace()]),
            config=object(),
            rng=np.random.default_rng(0),
        )  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="CriticExample"):
        train_critic(model, tok, [make_trace()], config=config, rng=np.random.default_rng(0))  # type: ignore[list-item]
    lm = tiny_llama(tok)
    with pytest.raises(ValueError, match="one output per token"):
        train_critic(
            lm, tok, critic_examples([make_trace()]), config=config, rng=np.random.default_rng(0)
        )
    with pytest.raises(ValueError, match=r"example 0: .*max_length"):
        train_critic(
            model,
            tok,
            critic_examples([make_trace()]),
            config=CriticConfig(num_steps=1, max_length=8),
            rng=np.random.default_rng(0),
        )
    assert math.isfinite(predict_values(model, tok, critic_examples([make_trace()]))[0][0])


def test_toy_world_search_to_critic_training(one_torch_thread):
    """The data path end to end on the toy world with tiny random models: MCTS-alpha and
    MCTS-Rollout with the critic as verifier, their traces labelled by the exact checker, the
    targets, and a few training steps. The critic values the searches stored for each state
    are the values the critic predicts where that state's target goes."""
    import dataclasses

    from treesearch import Budget, MCTSAlpha, MCTSRollout
    from treesearch.adapters.toymath import DIFFICULTIES, check_solution, generate_problems
    from treesearch.adapters.toymath_search import final_answer, open_searcher
    from treesearch.train.prm import value_head_model
    from treesearch.train.traces import with_outcomes

    searcher, _ = open_searcher(tiny=True, seed=0)
    tok = searcher.tokenizer
    (problem,) = generate_problems(np.random.default_rng(0), DIFFICULTIES["easy"], 1, split="train")
    root = searcher.root(problem)
    model = value_head_model(searcher.policy_model, seed=0)
    verifier = critic_verifier(model, tok)
    policy = searcher.policy(temperature=1.0, num_candidates=3)
    traces = []
    for search in (
        MCTSAlpha(policy, verifier, num_simulations=3, num_episodes=2, answer_fn=final_answer),
        MCTSRollout(policy, verifier, num_paths=3, answer_fn=final_answer),
    ):
        result = search.search(root, Budget(tokens=300), rng=np.random.default_rng(1))
        assert result.usage.tokens <= 300
        assert result.traces and all(t.terminal for t in result.traces)
        traces += [
            dataclasses.replace(t, metadata={**t.metadata, "prompt": root.prompt_text})
            for t in result.traces
        ]

    def solved(trace):
        steps = [str(a).removesuffix("<sep>") for a in trace.actions if str(a).strip()]
        return float(check_solution(problem, steps).solved)

    examples = critic_examples(with_outcomes(traces, solved))
    predicted = predict_values(model, tok, examples)
    for trace, example, values in zip(merge_traces(traces), examples, predicted, strict=True):
        assert len(example.targets) == len(example.steps) + 1
        stored = [step.score for step in trace.steps[: len(example.steps)]]
        assert stored == pytest.approx(values[1:], abs=1e-4)
    log = train_critic(
        model,
        tok,
        examples,
        config=CriticConfig(num_steps=3, batch_size=4),
        rng=np.random.default_rng(0),
    )
    assert all(math.isfinite(loss) for loss in log.losses)
