"""SelfEvaluationVerifier (MCTS-DPO's self-evaluation, arXiv 2405.00451): the score computed by
hand from the model's logits, batched equals one state at a time, bad templates and label tokens
refused, and the verifier driving MCTSDPOSearch on a toy problem with tiny models."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from treesearch import Budget  # noqa: E402
from treesearch.adapters.self_eval import DEFAULT_TEMPLATE, SelfEvaluationVerifier  # noqa: E402
from treesearch.adapters.state import ReasoningState, Step  # noqa: E402
from treesearch.adapters.tiny import tiny_model  # noqa: E402
from treesearch.adapters.toymath import SEP, build_tokenizer, format_prefix  # noqa: E402

TEMPLATE = "Q: {question} Hint: {hint} Steps: {solution} Right? (A) yes (B) no. Answer: "
QUESTION = "Start with 3. Add 4. Multiply by 2. What is the result?"


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer()


@pytest.fixture(scope="module")
def model(tok):
    return tiny_model(tok, seed=3)


def step(tok, content: str, stop: str = "separator") -> Step:
    text = content + SEP if stop == "separator" else content
    return Step(text, tok(text, add_special_tokens=False)["input_ids"], stop, content=content)


def state_with(tok, contents: list[str]) -> ReasoningState:
    root = ReasoningState.from_prompt(format_prefix(QUESTION), tok, question=QUESTION)
    for content in contents:
        root = root.step(step(tok, content))
    return root


def hand_score(model, tok, prompt: str, good: list[str], bad: list[str]) -> float:
    ids = torch.tensor([tok(prompt)["input_ids"]])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, -1].double()
    p = torch.softmax(logits, dim=-1)
    vocab = tok.get_vocab()
    p_good = sum(float(p[vocab[w]]) for w in good)
    p_bad = sum(float(p[vocab[w]]) for w in bad)
    return p_good / (p_good + p_bad)


def test_prompt_and_score_by_hand(tok, model):
    verifier = SelfEvaluationVerifier(
        model, tok, template=TEMPLATE, good=("A",), bad=("B",), hint_fn=lambda s: "14"
    )
    state = state_with(tok, ["3+4=7", "7*2=14"])
    prompt = verifier.prompt(state)
    # the steps' content without the separator, one per line
    assert prompt == f"Q: {QUESTION} Hint: 14 Steps: 3+4=7\n7*2=14 Right? (A) yes (B) no. Answer: "
    expected = hand_score(model, tok, prompt, ["A"], ["B"])
    (got,) = verifier.score([state])
    assert got == pytest.approx(expected, abs=1e-6)
    assert 0.0 < got < 1.0
    assert abs(got - 0.5) > 1e-4  # a random model is not exactly indifferent: a real read

    # several label tokens per side: their probabilities are summed
    multi = SelfEvaluationVerifier(
        model,
        tok,
        template=TEMPLATE,
        good=("A", "Positive"),
        bad=("B", "Negative", "n"),
        hint_fn=lambda s: "14",
    )
    expected = hand_score(model, tok, prompt, ["A", "Positive"], ["B", "Negative", "n"])
    assert multi.score([state])[0] == pytest.approx(expected, abs=1e-6)
    assert multi.score([state])[0] != pytest.approx(got, abs=1e-4)


def test_swapping_good_and_bad_gives_one_minus_the_score(tok, model):
    states = [state_with(tok, []), state_with(tok, ["3+4=7"]), state_with(tok, ["3+4=8"])]
    template = "{question}|{solution}|"
    one = SelfEvaluationVerifier(model, tok, template=template, good=("A",), bad=("B",))
    other = SelfEvaluationVerifier(model, tok, template=template, good=("B",), bad=("A",))
    np.testing.assert_allclose(np.add(one.score(states), other.score(states)), 1.0, atol=1e-6)


def test_batched_equals_one_by_one(tok, model):
    contents = [[], ["3+4=7"], ["3+4=7", "7*2=14"], ["3+4=8", "8*2=16", "The answer is 16"]]
    states = [state_with(tok, c) for c in contents]
    states += [state_with(tok, ["3+4=7", "7*2=14", "The answer is 14"]), states[1]]  # a repeat
    hint = {len(s.steps): str(len(s.steps) * 7) for s in states}

    def make(batch_size: int) -> SelfEvaluationVerifier:
        return SelfEvaluationVerifier(
            model,
            tok,
            template=TEMPLATE,
            good=("A",),
            bad=("B",),
            hint_fn=lambda s: hint[len(s.steps)],
            batch_size=batch_size,
        )

    batched = make(16)
    together = batched.score(states)
    assert batched.forward_passes == 1  # one left-padded batch of the 5 distinct prompts
    alone = make(1)
    one_by_one = [alone.score([s])[0] for s in states]
    np.testing.assert_allclose(together, one_by_one, atol=1e-5, rtol=0)
    # the prompts differ in length, so padding really happened
    lengths = {len(tok(batched.prompt(s))["input_ids"]) for s in states}
    assert len(lengths) > 2
    # the repeated state got the same score, and batches of 2 agree too
    assert together[-1] == together[1]
    np.testing.assert_allclose(make(2).score(states), one_by_one, atol=1e-5, rtol=0)
    # and each equals the unpadded hand computation
    for s, value in zip(states, together, strict=True):
        assert value == pytest.approx(
            hand_score(model, tok, batched.prompt(s), ["A"], ["B"]), abs=1e-5
        )


def test_blank_steps_are_skipped_and_root_has_an_empty_solution(tok, model):
    verifier = SelfEvaluationVerifier(
        model, tok, template="{question}[{solution}]", good=("A",), bad=("B",)
    )
    root = state_with(tok, [])
    assert verifier.prompt(root) == f"{QUESTION}[]"
    ended = state_with(tok, ["3+4=7"]).step(Step("", tok("x")["input_ids"][-1:], "eos", ""))
    assert verifier.prompt(ended) == f"{QUESTION}[3+4=7]"


@pytest.mark.parametrize(
    ("template", "match"),
    [
        ("{question} {solution} {answer}", r"\{answer\}"),
        ("{question} {solution} {}", "positional"),
        ("{question} only", r"\{solution\}"),
        ("{solution} only", r"\{question\}"),
        ("{question!r} {solution}", "format spec"),
        ("{question:>5} {solution}", "format spec"),
        ("{question.upper} {solution}", "unknown field"),
        ("{question} {solution", "not a valid"),
    ],
)
def test_bad_templates_are_refused(tok, model, template, match):
    with pytest.raises(ValueError, match=match):
        SelfEvaluationVerifier(model, tok, template=template, good=("A",), bad=("B",))


def test_hint_and_hint_fn_must_go_together(tok, model):
    with pytest.raises(ValueError, match="hint_fn"):
        SelfEvaluationVerifier(model, tok, template=TEMPLATE, good=("A",), bad=("B",))
    with pytest.raises(ValueError, match="no \\{hint\\}"):
        SelfEvaluationVerifier(
            model,
            tok,
            template="{question}{solution}",
            good=("A",),
            bad=("B",),
            hint_fn=lambda s: "1",
        )
    with pytest.raises(TypeError, match="hint_fn"):
        SelfEvaluationVerifier(model, tok, template=TEMPLATE, good=("A",), bad=("B",), hint_fn="14")  # type: ignore[arg-type]
    verifier = SelfEvaluationVerifier(
        model, tok, template=TEMPLATE, good=("A",), bad=("B",), hint_fn=lambda s: 14
    )
    with pytest.raises(TypeError, match="str"):
        verifier.score([state_with(tok, [])])


def test_label_tokens_must_be_single_and_distinct(tok, model):
    # the defaults "(A)" / "(B)" are three characters for the character-level tokenizer
    with pytest.raises(ValueError, match=r"'\(A\)'"):
        SelfEvaluationVerifier(model, tok, template=DEFAULT_TEMPLATE, hint_fn=lambda s: "1")
    with pytest.raises(ValueError, match="'AB'"):
        SelfEvaluationVerifier(model, tok, template=TEMPLATE, good=("AB",), hint_fn=str)
    with pytest.raises(ValueError, match="both good and bad"):
        SelfEvaluationVerifier(
            model, tok, template=TEMPLATE, good=("A", "C"), bad=("C",), hint_fn=str
        )
    with pytest.raises(ValueError, match="twice"):
        SelfEvaluationVerifier(model, tok, template=TEMPLATE, good=("A", "A"), hint_fn=str)
    with pytest.raises(ValueError, match="at least one"):
        SelfEvaluationVerifier(model, tok, template=TEMPLATE, good=(), hint_fn=str)
    with pytest.raises(TypeError, match="sequence"):
        SelfEvaluationVerifier(model, tok, template=TEMPLATE, good="A", hint_fn=str)
    with pytest.raises(ValueError, match="batch_size"):
        SelfEvaluationVerifier(
            model, tok, template=TEMPLATE, good=("A",), bad=("B",), hint_fn=str, batch_size=0
        )


def test_states_without_question_are_refused(tok, model):
    verifier = SelfEvaluationVerifier(
        model, tok, template="{question}{solution}", good=("A",), bad=("B",)
    )
    with pytest.raises(TypeError, match="ReasoningState"):
        verifier.score([object()])
    with pytest.raises(TypeError, match="sequence of states"):
        verifier.score("abc")  # type: ignore[arg-type]


def test_drives_mcts_dpo_search_on_a_toy_problem(tok):
    from treesearch.adapters.policies import HFStepPolicy
    from treesearch.train.mcts_dpo import MCTSDPOSearch

    policy_model = tiny_model(tok, seed=5)
    policy = HFStepPolicy(
        policy_model,
        tok,
        step_separator=SEP,
        num_candidates=2,
        max_step_tokens=5,
        temperature=1.0,
    )
    # the policy judges itself: the same model object, the paper's prompt, the gold answer
    verifier = SelfEvaluationVerifier(
        policy_model,
        tok,
        template=DEFAULT_TEMPLATE,
        good=("A",),
        bad=("B",),
        hint_fn=lambda s: "14",
    )
    search = MCTSDPOSearch(
        policy,
        verifier,
        outcome_fn=lambda s: -1.0,
        n_iters=3,
        root_iters_multiplier=1,
        depth_limit=2,
        depth_discount_offset=0,
    )
    root = ReasoningState.from_prompt(format_prefix(QUESTION), tok, question=QUESTION, max_steps=3)
    found = search.search(root, Budget(simulations=8), rng=np.random.default_rng(0))
    tree = found.tree
    assert tree.num_nodes >= 5  # a real search: several expansions below the root
    assert len(found.committed) >= 2
    depth_two = 0
    for node in range(1, tree.num_nodes):
        state = tree.state(node)
        (alone,) = verifier.score([state])
        assert 0.0 <= tree.score[node] <= 1.0
        assert tree.score[node] == pytest.approx(alone, abs=1e-5)
        parent_depth = int(tree.depth[node]) - 1
        expected = alone / max(parent_depth, 1) - (1.0 if tree.terminal[node] else 0.0)
        assert found.node_value[node] == pytest.approx(expected, abs=1e-5)
        depth_two += parent_depth >= 2
    assert depth_two > 0  # some node was divided by the depth discount
    assert math.isfinite(float(found.q[1:].sum()))
