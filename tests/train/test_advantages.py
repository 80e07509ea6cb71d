"""Tests of treesearch.train.advantages: the worked examples of docs/algorithms.md sections 5, 7
and 8 with their exact numbers, hand-computed cases, and hypothesis properties."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from treesearch.train.advantages import (
    clipped_surrogate,
    grpo_advantages,
    grpo_kl,
    monte_carlo_returns,
    prl_advantages,
    prl_token_advantages,
    process_grpo_advantages,
    step_end_mask,
    step_ppo_rewards,
    td_lambda_returns,
)

# The PRL worked example of docs/algorithms.md section 7.
D = np.array([0.1, 0.2, 0.0, 0.3, -0.1, 0.2])
PRL_EXPECTED = np.array([0.96, 0.96, 0.96, 0.98, 0.98, 0.98])

finite = st.floats(-10.0, 10.0, allow_nan=False, allow_infinity=False)


def test_module_imports_only_numpy():
    code = (
        "import sys, treesearch.train.advantages; "
        "bad = [m for m in ('torch', 'transformers', 'matplotlib') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# -- GRPO -------------------------------------------------------------------------------------


def test_grpo_worked_example_unbiased_and_population():
    # [1, 0, 0, 1]: mean 0.5; unbiased std sqrt(1/3) -> +/-0.866; population std 0.5 -> +/-1.
    unbiased = grpo_advantages([1.0, 0.0, 0.0, 1.0])
    np.testing.assert_allclose(unbiased, [0.866, -0.866, -0.866, 0.866], atol=5e-4)
    np.testing.assert_allclose(unbiased, 0.5 / (math.sqrt(1 / 3) + 1e-6) * np.array([1, -1, -1, 1]))
    population = grpo_advantages([1.0, 0.0, 0.0, 1.0], std="population", eps=0.0)
    np.testing.assert_array_equal(population, [1.0, -1.0, -1.0, 1.0])


def test_dr_grpo_only_centres():
    np.testing.assert_array_equal(grpo_advantages([1, 0, 0, 1], std=None), [0.5, -0.5, -0.5, 0.5])
    np.testing.assert_array_equal(grpo_advantages([3.0, 1.0], std=None), [1.0, -1.0])


@pytest.mark.parametrize("std", ["unbiased", "population", None])
@pytest.mark.parametrize("eps", [1e-6, 0.0])
def test_all_equal_group_gives_zero_advantages(std, eps):
    np.testing.assert_array_equal(grpo_advantages([0.7, 0.7, 0.7], std=std, eps=eps), [0, 0, 0])


def test_grpo_batch_and_ragged_shapes():
    batch = grpo_advantages(np.array([[1.0, 0.0, 0.0, 1.0], [2.0, 2.0, 2.0, 2.0]]))
    assert batch.shape == (2, 4)
    np.testing.assert_array_equal(batch[0], grpo_advantages([1.0, 0.0, 0.0, 1.0]))
    np.testing.assert_array_equal(batch[1], [0, 0, 0, 0])
    ragged = grpo_advantages([[1.0, 0.0], [1.0, 2.0, 3.0]], std="population", eps=0.0)
    assert isinstance(ragged, list) and [g.shape for g in ragged] == [(2,), (3,)]
    np.testing.assert_array_equal(ragged[0], [1.0, -1.0])
    np.testing.assert_allclose(ragged[1], np.array([-1.0, 0.0, 1.0]) / math.sqrt(2 / 3))


def test_grpo_group_of_one():
    with pytest.raises(ValueError, match=r"single reward.*std='population'"):
        grpo_advantages([1.0])
    with pytest.raises(ValueError, match="group 1 has a single reward"):
        grpo_advantages([[1.0, 0.0], [1.0]])
    assert grpo_advantages([1.0], std="population").tolist() == [0.0]
    assert grpo_advantages([1.0], std=None).tolist() == [0.0]


@pytest.mark.parametrize(
    ("rewards", "error", "match"),
    [
        ([], ValueError, "empty"),
        (np.zeros((2, 0)), ValueError, "empty"),
        ([[1.0, 0.0], []], ValueError, "group 1 is empty"),
        ([1.0, float("nan")], ValueError, r"rewards holds nan at position 1"),
        ([[1.0, 0.0], [0.0, float("inf")]], ValueError, r"rewards\[1\] holds inf"),
        (np.zeros((2, 2, 2)), ValueError, "1-D or 2-D"),
        ("abc", TypeError, "numbers"),
        ([1.0, [1.0, 2.0]], TypeError, "numbers"),
    ],
)
def test_grpo_bad_input(rewards, error, match):
    with pytest.raises(error, match=match):
        grpo_advantages(rewards)


def test_grpo_bad_options():
    with pytest.raises(ValueError, match="std must be"):
        grpo_advantages([1.0, 0.0], std="sample")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="eps"):
        grpo_advantages([1.0, 0.0], eps=-1.0)


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(np.float64, st.tuples(st.integers(1, 4), st.integers(2, 8)), elements=finite))
def test_grpo_zero_mean_unit_std_and_batch_equals_groups(rewards):
    for std, ddof in (("unbiased", 1), ("population", 0)):
        advantages = grpo_advantages(rewards, std=std)
        for row, adv in zip(rewards, advantages, strict=True):
            np.testing.assert_allclose(adv.mean(), 0.0, atol=1e-9)
            spread = row.std(ddof=ddof)
            if spread > 1e-3:
                np.testing.assert_allclose(adv.std(ddof=ddof), spread / (spread + 1e-6))
            np.testing.assert_array_equal(adv, grpo_advantages(row, std=std))
        ragged = grpo_advantages([list(row) for row in rewards], std=std)
        np.testing.assert_allclose(np.stack(ragged), advantages, rtol=1e-12, atol=1e-12)


# -- process-supervised GRPO -----------------------------------------------------------------


def test_process_grpo_two_outputs_by_hand():
    # Step rewards {1, 0} and {0, 1}: mean 0.5, population std 0.5, so they normalise to +/-1.
    # Output 0 (5 tokens, steps end at 1 and 4): tokens 0-1 get 1 + (-1) = 0, tokens 2-4 get -1.
    # Output 1 (4 tokens, steps end at 0 and 2): token 0 gets -1 + 1 = 0, tokens 1-2 get 1, and
    # token 3, after the last step, gets 0.
    out = process_grpo_advantages(
        [[1.0, 0.0], [0.0, 1.0]], [[1, 4], [0, 2]], [5, 4], std="population", eps=0.0
    )
    np.testing.assert_array_equal(out[0], [0.0, 0.0, -1.0, -1.0, -1.0])
    np.testing.assert_array_equal(out[1], [0.0, 1.0, 1.0, 0.0])
    # With the unbiased std sqrt(1/3) every normalised reward is +/-0.866.
    unbiased = process_grpo_advantages([[1.0, 0.0], [0.0, 1.0]], [[1, 4], [0, 2]], [5, 4])
    scale = 0.5 / (math.sqrt(1 / 3) + 1e-6)
    np.testing.assert_allclose(unbiased[0], scale * np.array([0, 0, -1, -1, -1]), atol=1e-12)
    np.testing.assert_allclose(unbiased[1], scale * np.array([0, 1, 1, 0]), atol=1e-12)


def test_process_grpo_single_step_outputs_match_outcome_grpo():
    # One step per output, ending at the last token: process GRPO is outcome GRPO broadcast.
    rewards = [1.0, 0.0, 0.0, 1.0]
    out = process_grpo_advantages([[r] for r in rewards], [[2], [0], [3], [1]], [3, 1, 4, 2])
    outcome = grpo_advantages(rewards)
    for adv, a, n in zip(out, outcome, [3, 1, 4, 2], strict=True):
        np.testing.assert_array_equal(adv, np.full(n, a))


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (([], [], []), "group is empty"),
        (([[1.0]], [[0]], [1, 2]), "one of each per output"),
        (([[1.0, 0.0]], [[0]], [2]), "2 step rewards but 1 step ends"),
        (([[1.0, 0.0]], [[0, 2]], [2]), r"position 2, outside the response's \[0, 2\)"),
        (([[1.0, 0.0]], [[1, 0]], [2]), "strictly increasing"),
        (([[1.0, 0.0]], [[-1, 0]], [2]), "position -1"),
        (([[1.0, float("nan")]], [[0, 1]], [2]), "nan"),
        (([[1.0]], [[0]], [1]), "single reward"),
        (([[]], [[]], [3]), "no step rewards"),
    ],
)
def test_process_grpo_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        process_grpo_advantages(*args)


def test_process_grpo_step_ends_must_be_integers():
    with pytest.raises(TypeError, match="integer"):
        process_grpo_advantages([[1.0, 0.0]], [[0.0, 1.0]], [2])


# -- PRL --------------------------------------------------------------------------------------


def test_prl_worked_example():
    # C = [0.7, 0.6, 0.4, 0.4, 0.1, 0.2], R = 1 - C/10; step ends at 2 and 5.
    mask = step_end_mask([6], 6, step_len=3)
    np.testing.assert_array_equal(mask[0], [False, False, True, False, False, True])
    adv = prl_token_advantages(1.0, D, eta=10.0, step_ends_mask=mask[0])
    np.testing.assert_allclose(adv, PRL_EXPECTED, rtol=1e-12)


def test_prl_advantages_orm_worked_example_all_step_splits():
    # Group [1, 0] with population std and eps 0 normalises to A = [1, -1] exactly.
    old = np.stack([D, D])
    ref = np.zeros((2, 6))
    expected = np.stack([PRL_EXPECTED, PRL_EXPECTED - 2.0])
    common = {"eta": 10.0, "std": "population", "eps": 0.0}
    by_len = prl_advantages([1.0, 0.0], old, ref, step_len=3, **common)
    np.testing.assert_allclose(by_len, expected, rtol=1e-12)
    by_ends = prl_advantages([1.0, 0.0], old, ref, step_ends=[[2], [2, 5]], **common)
    np.testing.assert_allclose(by_ends, expected, rtol=1e-12)
    newline = 13
    ids = np.array([[5, 7, newline, 5, 7, 9], [5, 7, newline, 5, 7, newline]])
    by_token = prl_advantages(
        [1.0, 0.0], old, ref, token_ids=ids, step_token_ids=[newline, 99], **common
    )
    np.testing.assert_allclose(by_token, expected, rtol=1e-12)
    # Raising logp_ref by 0.5 lowers every d by 0.5, so C at a step end drops by 0.5 per token
    # from that end on: 4 tokens from the end at 2, 1 from the end at 5.
    shifted = prl_advantages([1.0, 0.0], old, ref + 0.5, step_len=3, **common)
    shift = 0.5 * np.array([4, 4, 4, 1, 1, 1]) / 10.0
    np.testing.assert_allclose(shifted, expected + shift, rtol=1e-12)


def test_prl_prm_mode_is_unnormalised_and_unmasked():
    # R_t = r - C_t/eta with r = 1: [1 - 0.07, 1 - 0.06, 1 - 0.04, 1 - 0.04, 1 - 0.01, 1 - 0.02].
    adv = prl_advantages([1.0], D[None, :], np.zeros((1, 6)), eta=10.0, mode="prm")
    np.testing.assert_allclose(adv[0], [0.93, 0.94, 0.96, 0.96, 0.99, 0.98], rtol=1e-12)
    # One 1-D response: the reward is used as is (no group of one to normalise).
    one = prl_advantages(0.0, D, np.zeros(6), eta=10.0, mode="prm")
    np.testing.assert_allclose(one, [-0.07, -0.06, -0.04, -0.04, -0.01, -0.02], rtol=1e-12)


def reference_left_fill_by_next_nonzero(x: np.ndarray) -> np.ndarray:
    """The PRL reference code's fill (verl core_algos.left_fill_by_next_nonzero) in numpy."""
    out = np.zeros_like(x)
    for row in range(x.shape[0]):
        carry = 0.0
        for t in range(x.shape[1] - 1, -1, -1):
            if x[row, t] != 0:
                carry = x[row, t]
            out[row, t] = carry
    return out


def test_prl_exact_zero_step_value_is_kept():
    # d = [0, 1, 1, 0], A = 0.5, eta = 4: C = [2, 2, 1, 0], R = [0, 0, 0.25, 0.5]; the steps end
    # at 1 and 3, so the first step's R is exactly 0 and its tokens must get 0.
    d = np.array([0.0, 1.0, 1.0, 0.0])
    mask = step_end_mask([4], 4, step_len=2)[0]
    adv = prl_token_advantages(0.5, d, eta=4.0, step_ends_mask=mask)
    np.testing.assert_array_equal(adv, [0.0, 0.0, 0.5, 0.5])
    # The reference code keeps R only at step ends and then fills from the next *nonzero*
    # value, so its first step borrows the second step's 0.5: the pitfall this module avoids.
    kept = np.where(mask, 0.5 - np.array([2.0, 2.0, 1.0, 0.0]) / 4.0, 0.0)[None, :]
    np.testing.assert_array_equal(reference_left_fill_by_next_nonzero(kept)[0], [0.5] * 4)
    # It agrees with the reference whenever no kept R is exactly 0 (the worked example).
    mask6 = step_end_mask([6], 6, step_len=3)
    r = 1.0 - np.cumsum(D[::-1])[::-1] / 10.0
    reference = reference_left_fill_by_next_nonzero(np.where(mask6, r[None, :], 0.0))
    np.testing.assert_allclose(reference[0], PRL_EXPECTED, rtol=1e-12)


def test_prl_padding_and_groups():
    # Response 1 has 3 tokens; its padding holds NaN and must be ignored.
    old = np.array([[0.1, 0.2, 0.0, 0.3, -0.1, 0.2], [0.3, -0.1, 0.2, np.nan, np.nan, np.nan]])
    ref = np.zeros((2, 6))
    adv = prl_advantages(
        [1.0, 0.0], old, ref, eta=10.0, step_len=2, lengths=[6, 3], std="population", eps=0.0
    )
    # Response 1: A = -1, C = [0.4, 0.1, 0.2], ends at 1 and 2 (its last token).
    np.testing.assert_allclose(adv[1], [-1.01, -1.01, -1.02, 0.0, 0.0, 0.0], rtol=1e-12)
    # Response 0: ends at 1, 3, 5; R = 1 - C/10 with C = [0.7, 0.6, 0.4, 0.4, 0.1, 0.2].
    np.testing.assert_allclose(adv[0], [0.94, 0.94, 0.96, 0.96, 0.98, 0.98], rtol=1e-12)
    # Two groups in one batch equal two separate calls.
    rewards = np.array([1.0, 0.0, 0.5, 0.5, 0.2])
    logp = np.linspace(-1.0, 0.4, 5 * 4).reshape(5, 4)
    together = prl_advantages(
        rewards, logp, np.zeros((5, 4)), eta=2.0, step_len=2, groups=["a", "b", "a", "b", "a"]
    )
    for rows in ([0, 2, 4], [1, 3]):
        apart = prl_advantages(
            rewards[rows], logp[rows], np.zeros((len(rows), 4)), eta=2.0, step_len=2
        )
        np.testing.assert_allclose(together[rows], apart, rtol=1e-12)


def test_prl_equal_rewards_leave_only_the_kl_term():
    adv = prl_advantages([1.0, 1.0], np.stack([D, D]), np.zeros((2, 6)), eta=10.0, step_len=3)
    np.testing.assert_allclose(adv, np.stack([PRL_EXPECTED - 1.0] * 2), atol=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"eta": 0.0, "step_len": 3}, ValueError, "eta"),
        ({"eta": -1.0, "step_len": 3}, ValueError, "eta"),
        ({"eta": float("nan"), "step_len": 3}, ValueError, "eta"),
        ({"eta": 1.0}, ValueError, "exactly one of step_len"),
        ({"eta": 1.0, "step_len": 3, "step_ends": [[2], [2]]}, ValueError, "exactly one"),
        ({"eta": 1.0, "step_len": 0}, ValueError, "step_len"),
        ({"eta": 1.0, "step_ends": [[2, 1], [5]]}, ValueError, "strictly increasing"),
        ({"eta": 1.0, "step_ends": [[6], [5]]}, ValueError, "position 6"),
        ({"eta": 1.0, "step_ends": [[2]]}, ValueError, "1 step_ends for a batch of 2"),
        ({"eta": 1.0, "step_token_ids": [13]}, ValueError, "together"),
        ({"eta": 1.0, "step_len": 3, "mode": "outcome"}, ValueError, "mode"),
        ({"eta": 1.0, "step_len": 3, "mode": "prm"}, ValueError, "drop step_len"),
        ({"eta": 1.0, "step_len": 3, "lengths": [6, 7]}, ValueError, "lengths"),
        ({"eta": 1.0, "step_len": 3, "groups": ["a"]}, ValueError, "groups"),
        ({"eta": 1.0, "step_len": 3, "groups": ["a", "b"]}, ValueError, "single reward"),
    ],
)
def test_prl_bad_options(kwargs, error, match):
    with pytest.raises(error, match=match):
        prl_advantages([1.0, 0.0], np.stack([D, D]), np.zeros((2, 6)), **kwargs)


def test_prl_bad_arrays():
    with pytest.raises(ValueError, match="logp_old has shape"):
        prl_advantages([1.0, 0.0], np.zeros((2, 6)), np.zeros((2, 5)), eta=1.0, step_len=3)
    with pytest.raises(ValueError, match="rewards has 3 entries"):
        prl_advantages([1.0, 0.0, 1.0], np.zeros((2, 6)), np.zeros((2, 6)), eta=1.0, step_len=3)
    with pytest.raises(ValueError, match=r"logp_ref holds -inf at position \(1, 2\)"):
        ref = np.zeros((2, 6))
        ref[1, 2] = -np.inf
        prl_advantages([1.0, 0.0], np.zeros((2, 6)), ref, eta=1.0, step_len=3)
    with pytest.raises(ValueError, match="rewards holds nan"):
        prl_advantages([1.0, np.nan], np.zeros((2, 6)), np.zeros((2, 6)), eta=1.0, step_len=3)
    with pytest.raises(ValueError, match="batch is empty"):
        prl_advantages([], np.zeros((0, 6)), np.zeros((0, 6)), eta=1.0, step_len=3)
    with pytest.raises(TypeError, match="token_ids must hold integer"):
        prl_advantages(
            [1.0, 0.0], np.zeros((2, 6)), np.zeros((2, 6)), eta=1.0,
            token_ids=np.zeros((2, 6)), step_token_ids=[13],
        )  # fmt: skip
    with pytest.raises(TypeError, match="bool"):
        prl_token_advantages(1.0, D, eta=1.0, step_ends_mask=np.ones(6))
    with pytest.raises(ValueError, match="last token is not a step end"):
        prl_token_advantages(1.0, D, eta=1.0, step_ends_mask=np.arange(6) == 2)


@settings(max_examples=40, deadline=None)
@given(
    st.integers(2, 4).flatmap(
        lambda g: st.tuples(
            hnp.arrays(np.float64, g, elements=st.floats(0, 1)),
            hnp.arrays(np.float64, (g, 7), elements=finite),
            hnp.arrays(np.float64, (g, 7), elements=finite),
            hnp.arrays(np.int64, g, elements=st.integers(1, 7)),
        )
    ),
    st.integers(1, 4),
)
def test_prl_properties(arrays, step_len):
    rewards, old, ref, lengths = arrays
    group = grpo_advantages(rewards)
    inside = np.arange(7)[None, :] < lengths[:, None]
    # eta -> infinity: the KL term vanishes and every response token gets the broadcast A_i.
    infinite = prl_advantages(rewards, old, ref, eta=math.inf, step_len=step_len, lengths=lengths)
    np.testing.assert_array_equal(infinite, np.where(inside, group[:, None], 0.0))
    large = prl_advantages(rewards, old, ref, eta=1e9, step_len=step_len, lengths=lengths)
    np.testing.assert_allclose(large, np.where(inside, group[:, None], 0.0), atol=1e-6)
    # Within a step every token carries the same value, R at the step's end.
    adv = prl_advantages(rewards, old, ref, eta=3.0, step_len=step_len, lengths=lengths)
    prm = prl_advantages(rewards - rewards.mean(), old, ref, eta=3.0, mode="prm", lengths=lengths)
    ends = step_end_mask(lengths, 7, step_len=step_len)
    centred = prl_advantages(
        rewards, old, ref, eta=3.0, step_len=step_len, lengths=lengths, std=None
    )
    for i, n in enumerate(lengths):
        starts = 0
        for end in np.flatnonzero(ends[i]):
            np.testing.assert_array_equal(adv[i, starts : end + 1], adv[i, end])
            starts = end + 1
        # Each row equals a separate call on that row with the group's A_i.
        row = prl_token_advantages(
            group[i], old[i, :n] - ref[i, :n], eta=3.0, step_ends_mask=ends[i, :n]
        )
        np.testing.assert_allclose(adv[i, :n], row, rtol=1e-12, atol=1e-12)
        # At step ends "orm" with std=None equals "prm" on centred rewards.
        np.testing.assert_allclose(centred[i][ends[i]], prm[i][ends[i]], atol=1e-12)
    assert np.all(adv[~inside] == 0.0)


# -- step-level PPO -------------------------------------------------------------------------


def test_step_ppo_worked_example():
    rewards = step_ppo_rewards([3, 7], [0.9, 0.4], 8)
    np.testing.assert_array_equal(rewards, [0, 0, 0, 0.9, 0, 0, 0, 0.4])


def test_step_ppo_difference_and_kl():
    diff = step_ppo_rewards([3, 7], [0.9, 0.4], 8, mode="difference")
    np.testing.assert_allclose(diff, [0, 0, 0, 0.9, 0, 0, 0, -0.5], atol=1e-15)
    based = step_ppo_rewards([3, 7], [0.9, 0.4], 8, mode="difference", baseline=0.5)
    np.testing.assert_allclose(based, [0, 0, 0, 0.4, 0, 0, 0, -0.5], atol=1e-15)
    assert based.sum() == pytest.approx(0.4 - 0.5)  # telescopes to score_K - baseline
    kl = np.array([0.0, 1.0, 2.0, 0.0, 0.0, 0.0, 0.0, 1.0])
    with_kl = step_ppo_rewards([3, 7], [0.9, 0.4], 8, kl=kl, kl_coef=0.1)
    np.testing.assert_allclose(with_kl, [0, -0.1, -0.2, 0.9, 0, 0, 0, 0.3], atol=1e-15)
    default = step_ppo_rewards([3, 7], [0.9, 0.4], 8, kl=kl)
    np.testing.assert_allclose(default, [0, -0.04, -0.08, 0.9, 0, 0, 0, 0.36], atol=1e-15)
    assert step_ppo_rewards([], [], 3).tolist() == [0.0, 0.0, 0.0]


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        (([3, 8], [0.9, 0.4], 8), {}, ValueError, "position 8"),
        (([7, 3], [0.9, 0.4], 8), {}, ValueError, "strictly increasing"),
        (([3, 3], [0.9, 0.4], 8), {}, ValueError, "strictly increasing"),
        (([3, 7], [0.9], 8), {}, ValueError, "1 scores for 2 step ends"),
        (([3, 7], [0.9, np.nan], 8), {}, ValueError, "scores holds nan"),
        (([3, 7], [0.9, 0.4], 8), {"mode": "delta"}, ValueError, "mode"),
        (([3, 7], [0.9, 0.4], 8), {"kl": np.zeros(7)}, ValueError, "kl has 7 entries"),
        (([3, 7], [0.9, 0.4], 8), {"kl": np.zeros(8), "kl_coef": -1.0}, ValueError, "kl_coef"),
        (([3, 7], [0.9, 0.4], 8), {"baseline": math.inf}, ValueError, "baseline"),
        (([3, 7], [0.9, 0.4], 8.0), {}, TypeError, "length must be an int"),
        (([3.0, 7.0], [0.9, 0.4], 8), {}, TypeError, "integer"),
    ],
)
def test_step_ppo_bad_input(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        step_ppo_rewards(*args, **kwargs)


# -- KL and clipped objective ---------------------------------------------------------------


def test_grpo_kl_values():
    assert grpo_kl(np.array([-0.3, -2.0]), np.array([-0.3, -2.0])).tolist() == [0.0, 0.0]
    # pi = 1, pi_ref = 0.5: 0.5 - log 0.5 - 1.
    np.testing.assert_allclose(grpo_kl([0.0], [math.log(0.5)]), [math.log(2) - 0.5])
    # Its expectation under pi is KL(pi || pi_ref) exactly.
    pi = np.array([0.5, 0.3, 0.2])
    ref = np.array([0.2, 0.2, 0.6])
    expected = float(np.sum(pi * np.log(pi / ref)))
    estimate = float(np.sum(pi * grpo_kl(np.log(pi), np.log(ref))))
    assert estimate == pytest.approx(expected, rel=1e-12)
    with pytest.raises(ValueError, match="shape"):
        grpo_kl([0.0, 0.0], [0.0])
    with pytest.raises(ValueError, match="logp holds -inf"):
        grpo_kl([-np.inf], [0.0])


@settings(max_examples=50, deadline=None)
@given(hnp.arrays(np.float64, 5, elements=finite), hnp.arrays(np.float64, 5, elements=finite))
def test_grpo_kl_is_non_negative(logp, logp_ref):
    assert np.all(grpo_kl(logp, logp_ref) >= 0.0)


def test_clipped_surrogate_by_hand():
    ratio = np.array([[1.5, 0.5], [1.1, 0.7]])
    adv = np.array([[1.0, 1.0], [-1.0, -1.0]])
    # Row 0 (A = 1): min(1.5, 1.2) = 1.2, min(0.5, 0.8) = 0.5 -> 0.85.
    # Row 1 (A = -1): min(-1.1, -1.1) = -1.1, min(-0.7, -0.8) = -0.8 -> -0.95.
    assert clipped_surrogate(ratio, adv) == pytest.approx(-0.05)
    assert clipped_surrogate(ratio, np.array([1.0, -1.0])) == pytest.approx(-0.05)
    # Masking row 1's second token: row 1 averages -1.1 alone, then (0.85 - 1.1) / 2.
    mask = np.array([[1, 1], [1, 0]])
    assert clipped_surrogate(ratio, adv, mask=mask) == pytest.approx(-0.125)
    # Per sequence, then over the batch: not a mean over all tokens (0.85*2 - 1.1) / 3 = 0.2.
    assert clipped_surrogate(ratio, adv, mask=mask) != pytest.approx(0.2)
    # A wider clip range lets the first token's 1.5 through.
    assert clipped_surrogate(ratio[0], adv[0], clip=0.6) == pytest.approx(1.0)
    # Padding may hold NaN.
    padded = np.array([[1.5, np.nan], [1.1, np.nan]])
    first_only = np.array([[True, False], [True, False]])
    assert clipped_surrogate(padded, np.array([1.0, -1.0]), mask=first_only) == pytest.approx(
        (1.2 - 1.1) / 2
    )


@pytest.mark.parametrize(
    ("ratio", "adv", "kwargs", "match"),
    [
        (np.ones((2, 3)), np.ones((3,)), {}, "advantages has shape"),
        (np.ones((2, 3)), np.ones((2, 3)), {"clip": 0.0}, "clip"),
        (np.ones((2, 3)), np.ones((2, 3)), {"mask": np.ones((2, 2))}, "mask has shape"),
        (np.ones((2, 3)), np.ones((2, 3)), {"mask": np.full((2, 3), 0.5)}, "0/1"),
        (np.ones((2, 3)), np.ones((2, 3)), {"mask": np.array([[1, 1, 1], [0, 0, 0]])}, "no unm"),
        (-np.ones((2, 3)), np.ones((2, 3)), {}, "non-negative"),
        (np.full((2, 3), np.nan), np.ones((2, 3)), {}, "ratio holds nan"),
        (np.ones((2, 2, 2)), np.ones((2, 2, 2)), {}, "1-D or 2-D"),
    ],
)
def test_clipped_surrogate_bad_input(ratio, adv, kwargs, match):
    with pytest.raises(ValueError, match=match):
        clipped_surrogate(ratio, adv, **kwargs)


# -- returns ----------------------------------------------------------------------------------


def test_monte_carlo_returns_worked_example():
    np.testing.assert_array_equal(monte_carlo_returns([0.0, 0.0, 1.0]), [1.0, 1.0, 1.0])
    np.testing.assert_allclose(monte_carlo_returns([0, 0, 1], gamma=0.9), [0.81, 0.9, 1.0])
    batch = monte_carlo_returns(np.array([[0.0, 0.0, 1.0], [1.0, 2.0, 3.0]]), gamma=0.5)
    np.testing.assert_allclose(batch, [[0.25, 0.5, 1.0], [2.75, 3.5, 3.0]])
    np.testing.assert_array_equal(monte_carlo_returns([1.0, 2.0], gamma=0.0), [1.0, 2.0])


def test_td_lambda_by_hand():
    # V = [0.5, 0.6, 0.8], V_3 = 0, gamma 1, lam 0.5: G2 = 1; G1 = 0.5*0.8 + 0.5*1 = 0.9;
    # G0 = 0.5*0.6 + 0.5*0.9 = 0.75.
    returns = td_lambda_returns([0.0, 0.0, 1.0], [0.5, 0.6, 0.8], lam=0.5)
    np.testing.assert_allclose(returns, [0.75, 0.9, 1.0], rtol=1e-12)
    # lam = 0: one-step targets r_t + gamma V_{t+1}, the last one bootstrapping from 2.
    one_step = td_lambda_returns([0.0, 0.5, 1.0], [0.5, 0.6, 0.8], gamma=0.9, lam=0.0, bootstrap=2)
    np.testing.assert_allclose(one_step, [0.54, 0.5 + 0.72, 1.0 + 1.8], rtol=1e-12)
    # lam = 1: Monte-Carlo returns plus the discounted bootstrap.
    mc = td_lambda_returns([0.0, 0.0, 1.0], [0.5, 0.6, 0.8], gamma=0.9, lam=1.0, bootstrap=1.0)
    np.testing.assert_allclose(mc, [0.81 + 0.729, 0.9 + 0.81, 1.0 + 0.9], rtol=1e-12)


@settings(max_examples=50, deadline=None)
@given(
    st.integers(1, 6).flatmap(
        lambda n: st.tuples(
            hnp.arrays(np.float64, (2, n), elements=finite),
            hnp.arrays(np.float64, (2, n), elements=finite),
        )
    ),
    st.floats(0.0, 1.0),
)
def test_td_lambda_limits(arrays, gamma):
    rewards, values = arrays
    np.testing.assert_allclose(
        td_lambda_returns(rewards, values, gamma=gamma, lam=1.0),
        monte_carlo_returns(rewards, gamma=gamma),
        atol=1e-9,
    )
    next_values = np.concatenate([values[:, 1:], np.zeros((2, 1))], axis=1)
    np.testing.assert_allclose(
        td_lambda_returns(rewards, values, gamma=gamma, lam=0.0),
        rewards + gamma * next_values,
        atol=1e-9,
    )
    per_row = [
        td_lambda_returns(r, v, gamma=gamma, lam=0.7) for r, v in zip(rewards, values, strict=True)
    ]
    np.testing.assert_allclose(
        td_lambda_returns(rewards, values, gamma=gamma, lam=0.7), np.stack(per_row), atol=1e-12
    )


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: monte_carlo_returns([0.0, 1.0], gamma=1.5), "gamma"),
        (lambda: monte_carlo_returns([0.0, np.inf]), "rewards holds inf"),
        (lambda: monte_carlo_returns(np.zeros((1, 1, 1))), "1-D or 2-D"),
        (lambda: td_lambda_returns([0.0, 1.0], [0.0]), "values has shape"),
        (lambda: td_lambda_returns([0.0, 1.0], [0.0, 0.0], lam=-0.1), "lam"),
        (lambda: td_lambda_returns([0.0, 1.0], [0.0, np.nan]), "values holds nan"),
        (lambda: td_lambda_returns(np.zeros((2, 2)), np.zeros((2, 2)), bootstrap=[0.0]), "boot"),
    ],
)
def test_returns_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_returns_reject_non_numbers():
    with pytest.raises(TypeError, match="gamma must be a number"):
        monte_carlo_returns([0.0], gamma="1")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="rewards must be an array of numbers"):
        monte_carlo_returns(["a", "b"])
