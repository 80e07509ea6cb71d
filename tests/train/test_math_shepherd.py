"""Tests for treesearch.train.math_shepherd (Monte-Carlo step labels) and train.sampling."""

from __future__ import annotations

import math

import numpy as np
import pytest

from treesearch.train.math_shepherd import (
    Completion,
    LabelComparison,
    MonteCarloLabels,
    SolutionToLabel,
    compare_with_exact,
    monte_carlo_labels,
)

RIGHT = Completion(("The answer is 5",), True)
WRONG = Completion(("The answer is 6",), True)
UNFINISHED = Completion(("The answer is 5",), False)  # cut before its end: never counts


class ScriptedCompleter:
    """Returns, for a prefix of k steps, the completions scripted for k; records the calls."""

    def __init__(self, script: dict[int, list[Completion]]) -> None:
        self.script = script
        self.calls: list[list[tuple[str, tuple[str, ...]]]] = []

    def complete(self, prefixes, num_samples, *, rng):
        assert isinstance(rng, np.random.Generator)
        self.calls.append(list(prefixes))
        return [self.script[len(steps)][:num_samples] for _, steps in prefixes]


SOLUTION = SolutionToLabel("Start with 2.", ("2+3=5", "5*1=5", "5-1=4", "The answer is 4"), "5")


def test_hard_and_soft_estimates_by_hand():
    completer = ScriptedCompleter(
        {
            1: [RIGHT, WRONG, WRONG, WRONG],  # 1 of 4: HE 1, SE 0.25
            2: [RIGHT, RIGHT, UNFINISHED, WRONG],  # 2 of 4 (the unfinished one fails)
            3: [WRONG, WRONG, UNFINISHED, WRONG],  # 0 of 4: HE 0, SE 0
        }
    )
    [labels] = monte_carlo_labels(
        [SOLUTION], completer, num_completions=4, rng=np.random.default_rng(0)
    )
    assert labels == MonteCarloLabels(
        hard=(1, 1, 0, 0),
        soft=(0.25, 0.5, 0.0, 0.0),
        successes=(1, 2, 0, 0),
        sampled=(True, True, True, False),  # the finished answer is judged, not completed
        num_completions=4,
    )
    # One batched call with the three prefixes that need completions.
    assert completer.calls == [
        [
            ("Start with 2.", SOLUTION.steps[:1]),
            ("Start with 2.", SOLUTION.steps[:2]),
            ("Start with 2.", SOLUTION.steps[:3]),
        ]
    ]


def test_finished_solution_with_the_right_answer_gets_a_full_last_label():
    solution = SolutionToLabel("Start with 2.", ("2+3=5", "The answer is 5"), "5")
    completer = ScriptedCompleter({1: [WRONG, WRONG]})
    [labels] = monte_carlo_labels(
        [solution], completer, num_completions=2, rng=np.random.default_rng(0)
    )
    assert labels.hard == (0, 1) and labels.soft == (0.0, 1.0) and labels.successes == (0, 2)


def test_unfinished_solution_has_its_last_step_completed():
    solution = SolutionToLabel("Start with 2.", ("2+3=5",), "5", finished=False)
    completer = ScriptedCompleter({1: [RIGHT, RIGHT, RIGHT]})
    [labels] = monte_carlo_labels(
        [solution], completer, num_completions=3, rng=np.random.default_rng(0)
    )
    assert labels.hard == (1,) and labels.soft == (1.0,) and labels.sampled == (True,)


def test_stop_at_first_failure_skips_the_later_prefixes():
    completer = ScriptedCompleter({1: [RIGHT, WRONG], 2: [WRONG, WRONG], 3: [RIGHT, RIGHT]})
    [labels] = monte_carlo_labels(
        [SOLUTION],
        completer,
        num_completions=2,
        rng=np.random.default_rng(0),
        stop_at_first_failure=True,
    )
    assert labels.hard == (1, 0, 0, 0)
    assert labels.sampled == (True, True, False, False)
    # Rounds by depth: prefix 1, then prefix 2; prefix 3 was never asked for.
    assert [[len(steps) for _, steps in call] for call in completer.calls] == [[1], [2]]


def test_completer_mistakes_are_reported():
    class Short(ScriptedCompleter):
        def complete(self, prefixes, num_samples, *, rng):
            return [[RIGHT] for _ in prefixes]

    with pytest.raises(ValueError, match="returned 1 completions, not 2"):
        monte_carlo_labels([SOLUTION], Short({}), num_completions=2, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="num_completions must be at least 1"):
        monte_carlo_labels([SOLUTION], Short({}), num_completions=0, rng=np.random.default_rng(0))
    with pytest.raises(TypeError, match=r"numpy\.random\.Generator"):
        monte_carlo_labels([SOLUTION], Short({}), num_completions=1, rng=0)
    with pytest.raises(ValueError, match="step 1 is empty"):
        SolutionToLabel("Go.", ("1+1=2", ""), "2")
    with pytest.raises(ValueError, match="at least one step"):
        SolutionToLabel("Go.", (), "2")


def test_compare_with_exact_by_hand():
    estimates = [
        MonteCarloLabels((1, 1, 0), (1.0, 0.25, 0.0), (4, 1, 0), (True,) * 3, 4),
        MonteCarloLabels((1,), (0.5,), (2,), (True,), 4),
    ]
    result = compare_with_exact(estimates, [(1, 0, 0), (1,)])
    assert result == LabelComparison(
        steps=4,
        hard_accuracy=3 / 4,
        false_positive_rate=1 / 2,  # of the two wrong steps, one was completed by luck
        false_negative_rate=0.0,
        soft_mean_abs_error=(0 + 0.25 + 0 + 0.5) / 4,
    )
    with pytest.raises(ValueError, match="solution 0: 3 estimated labels but 2 exact"):
        compare_with_exact(estimates[:1], [(1, 0)])
    only_good = compare_with_exact(estimates[1:], [(1,)])
    assert math.isnan(only_good.false_positive_rate)


# ------------------------------------------------------------------------------- with a model
pytest.importorskip("torch")
pytest.importorskip("transformers")
import torch  # noqa: E402


class ScriptedLM(torch.nn.Module):
    """A stand-in causal LM that writes ``script`` token by token after any prompt."""

    def __init__(self, script: list[int], vocab: int) -> None:
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # for the device
        self.script = script
        self.vocab = vocab
        self.done = 0

    def forward(
        self,
        input_ids,
        attention_mask=None,
        position_ids=None,
        past_key_values=None,
        use_cache=True,
        logits_to_keep=None,
    ):
        if input_ids.shape[1] > 1:  # a prefill: a new generation starts
            self.done = 0
        token = self.script[min(self.done, len(self.script) - 1)]
        self.done += 1
        logits = torch.full((input_ids.shape[0], 1, self.vocab), -1e9)
        logits[:, :, token] = 0.0

        class Out:
            pass

        out = Out()
        out.logits = logits
        return out


def test_hf_completer_labels_with_a_scripted_model(toy_tokenizer):
    from treesearch.train.math_shepherd import HFCompleter

    script = toy_tokenizer("The answer is 5<sep><eos>", add_special_tokens=False)["input_ids"]
    completer = HFCompleter(
        ScriptedLM(script, len(toy_tokenizer)), toy_tokenizer, max_new_tokens=40
    )
    solution = SolutionToLabel("Start with 2.", ("2+3=5", "5*2=10", "The answer is 10"), "5")
    [labels] = monte_carlo_labels(
        [solution], completer, num_completions=3, rng=np.random.default_rng(0)
    )
    assert labels.hard == (1, 1, 0) and labels.soft == (1.0, 1.0, 0.0)
    assert completer.sequences_sampled == 6
    # Cut before its end, the same continuation is unfinished and counts for nothing.
    short = HFCompleter(ScriptedLM(script, len(toy_tokenizer)), toy_tokenizer, max_new_tokens=10)
    [labels] = monte_carlo_labels(
        [solution], short, num_completions=2, rng=np.random.default_rng(0)
    )
    assert labels.hard == (0, 0, 0)


def test_hf_completer_prefix_and_parse(toy_tokenizer):
    from treesearch.train.math_shepherd import HFCompleter

    completer = HFCompleter(ScriptedLM([2], len(toy_tokenizer)), toy_tokenizer)
    ids = completer.prefix_ids("Start with 2.", ("2+3=5",))
    assert list(ids) == toy_tokenizer("Start with 2.<sep>2+3=5<sep>")["input_ids"]
    assert list(completer.prefix_ids("Go.", ())) == toy_tokenizer("Go.<sep>")["input_ids"]
    parse = completer.parse
    encode = lambda text: toy_tokenizer(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    assert parse(encode("5*2=10<sep>The answer is 10<sep><eos>")) == Completion(
        ("5*2=10", "The answer is 10"), True
    )
    assert parse(encode("5*2=10<sep>The ans")) == Completion(("5*2=10",), False)
    assert parse(encode("The answer is 10<eos>")) == Completion(("The answer is 10",), True)
    no_sep = pytest.importorskip("treesearch.adapters.toymath").build_tokenizer()
    no_sep.sep_token = None
    with pytest.raises(ValueError, match="no sep_token"):
        HFCompleter(ScriptedLM([2], 10), no_sep)


def test_hf_completer_is_reproducible(toy_tokenizer, tiny_llama, one_torch_thread):
    from treesearch.train.math_shepherd import HFCompleter

    model = tiny_llama(toy_tokenizer, seed=7)
    completer = HFCompleter(model, toy_tokenizer, max_new_tokens=12, batch_size=3)
    prefixes = [("Start with 2. Add 3.", ("2+3=5",)), ("Start with 4.", ())]

    def run(seed):
        return completer.complete(prefixes, 4, rng=np.random.default_rng(seed))

    first = run(1)
    assert len(first) == 2 and all(len(c) == 4 for c in first)
    assert run(1) == first
    assert run(2) != first
