"""Advantages, token rewards and returns for policy-gradient training on search outputs.

Pure ``numpy`` functions (``docs/algorithms.md`` sections 5, 7 and 8): no torch, no state, no
randomness. Each takes plain arrays and returns new arrays; bad input raises ``ValueError`` or
``TypeError`` naming the problem.

* :func:`grpo_advantages`: GRPO's group-relative outcome advantage (Shao et al., DeepSeekMath,
  arXiv 2402.03300), and without the std division Dr. GRPO (Liu et al., arXiv 2503.20783).
* :func:`process_grpo_advantages`: GRPO with process supervision (DeepSeekMath section 4.1.3).
* :func:`prl_advantages`, :func:`prl_token_advantages`, :func:`step_end_mask`: Process Reward
  Learning (arXiv 2601.10201), per-step credit ``A_i - C_t / eta`` from the KL-regularised
  optimum, as its reference code (MaxwellJryao/Process-Reward-Learning) computes it, except
  for one pitfall of that code's fill (see :func:`prl_token_advantages`).
* :func:`step_ppo_rewards`: step-level PPO rewards from a PRM (Math-Shepherd, Wang et al.,
  arXiv 2312.08935).
* :func:`grpo_kl` and :func:`clipped_surrogate`: GRPO's per-token k3 KL estimator and the PPO
  clipped objective, averaged per sequence then over the batch.
* :func:`monte_carlo_returns` and :func:`td_lambda_returns`: critic targets for TS-LLM
  (arXiv 2309.17179) value training (Monte-Carlo and GAE-style TD(lambda) returns).

Shapes: one response is a 1-D array over its tokens; a batch is a 2-D ``(batch, tokens)``
array padded on the right, with ``lengths`` giving each response's number of tokens. Padding
positions are ignored on input (they may hold anything, even NaN) and are 0 on output.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal, overload

import numpy as np

__all__ = [
    "clipped_surrogate",
    "grpo_advantages",
    "grpo_kl",
    "monte_carlo_returns",
    "prl_advantages",
    "prl_token_advantages",
    "process_grpo_advantages",
    "step_end_mask",
    "step_ppo_rewards",
    "td_lambda_returns",
]

StdMode = Literal["unbiased", "population"] | None
_STD_MODES = ("unbiased", "population", None)


# -- validation helpers ------------------------------------------------------------------------


def _float_array(value: Any, name: str) -> np.ndarray:
    if isinstance(value, str | bytes):
        raise TypeError(f"{name} must be an array of numbers, not {type(value).__name__}")
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{name} must be an array of numbers ({error})") from None
    return array


def _check_finite(array: np.ndarray, name: str, where: np.ndarray | None = None) -> None:
    bad = ~np.isfinite(array)
    if where is not None:
        bad &= where
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        position = index[0] if len(index) == 1 else index
        raise ValueError(
            f"{name} holds {array[index]} at position {position}; every value must be finite"
        )


def _finite_array(value: Any, name: str, ndims: tuple[int, ...]) -> np.ndarray:
    array = _float_array(value, name)
    if array.ndim not in ndims:
        wanted = " or ".join(f"{n}-D" for n in ndims)
        raise ValueError(f"{name} must be {wanted}, not of shape {array.shape}")
    _check_finite(array, name)
    return array


def _check_real(value: Any, name: str, *, low: float, high: float, open_low: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise TypeError(f"{name} must be a number, not {type(value).__name__}")
    number = float(value)
    below = number <= low if open_low else number < low
    if math.isnan(number) or below or number > high:
        bracket = "(" if open_low else "["
        raise ValueError(f"{name} must lie in {bracket}{low}, {high}], not {value!r}")
    return number


def _check_std(std: Any, eps: Any) -> float:
    if std not in _STD_MODES:
        raise ValueError(f"std must be 'unbiased', 'population' or None, not {std!r}")
    return _check_real(eps, "eps", low=0.0, high=math.inf, open_low=False)


def _check_int(value: Any, name: str, *, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < low:
        raise ValueError(f"{name} must be at least {low}, not {value}")
    return int(value)


def _index_array(value: Any, name: str) -> np.ndarray:
    array = np.asarray(value)
    if array.ndim != 1:
        raise ValueError(f"{name} must be a 1-D sequence of token positions, not {array.shape}")
    if array.size == 0:
        return np.zeros(0, dtype=np.int64)
    if array.dtype == np.bool_ or not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"{name} must hold integer token positions, not {array.dtype}")
    return array.astype(np.int64)


def _step_ends(value: Any, length: int, name: str) -> np.ndarray:
    ends = _index_array(value, name)
    if ends.size == 0:
        return ends
    if ends[0] < 0 or ends[-1] >= length:
        bad = ends[(ends < 0) | (ends >= length)][0]
        raise ValueError(f"{name} has position {bad}, outside the response's [0, {length})")
    if np.any(np.diff(ends) <= 0):
        raise ValueError(f"{name} must be strictly increasing, got {ends.tolist()}")
    return ends


def _lengths(value: Any, batch: int, width: int) -> np.ndarray:
    if value is None:
        return np.full(batch, width, dtype=np.int64)
    lengths = _index_array(value, "lengths")
    if lengths.shape != (batch,):
        raise ValueError(f"lengths has {lengths.size} entries for a batch of {batch}")
    if batch and (lengths.min() < 0 or lengths.max() > width):
        raise ValueError(f"lengths must lie in [0, {width}] (the padded width), got {lengths}")
    return lengths


def _response_mask(lengths: np.ndarray, width: int) -> np.ndarray:
    return np.arange(width)[None, :] < lengths[:, None]


# -- GRPO -------------------------------------------------------------------------------------


def _group_normalize(
    values: np.ndarray, group_of: np.ndarray, num_groups: int, std: StdMode, eps: float
) -> np.ndarray:
    """``(x - mean) / (std + eps)`` within groups (``group_of[i]`` = group of ``values[i]``)."""
    sizes = np.bincount(group_of, minlength=num_groups)
    if np.any(sizes == 0):
        raise ValueError(f"group {int(np.argmin(sizes))} is empty: every group needs rewards")
    if std == "unbiased" and np.any(sizes == 1):
        raise ValueError(
            f"group {int(np.argmax(sizes == 1))} has a single reward, and the unbiased std needs "
            "at least 2: sample 2 or more outputs per prompt, drop the group, or pass "
            "std='population' or std=None (a lone output then gets advantage 0)"
        )
    means = np.bincount(group_of, weights=values, minlength=num_groups) / sizes
    centred = values - means[group_of]
    # A rounded mean leaves ~1e-17 residues in a group of equal rewards, which the division by
    # its ~1e-17 std would blow up to +/-1; such a group's advantages are exactly 0.
    highest = np.full(num_groups, -np.inf)
    lowest = np.full(num_groups, np.inf)
    np.maximum.at(highest, group_of, values)
    np.minimum.at(lowest, group_of, values)
    centred[(highest == lowest)[group_of]] = 0.0
    if std is None:
        return centred
    ddof = 1 if std == "unbiased" else 0
    squares = np.bincount(group_of, weights=centred * centred, minlength=num_groups)
    spread = np.sqrt(squares / (sizes - ddof)) + eps
    # A group of equal rewards is centred to exact zeros; with eps=0 keep them 0, not 0/0.
    safe = np.where(spread > 0, spread, 1.0)
    return centred / safe[group_of]


@overload
def grpo_advantages(
    rewards: np.ndarray, *, std: StdMode = "unbiased", eps: float = 1e-6
) -> np.ndarray: ...


@overload
def grpo_advantages(
    rewards: Sequence[Any], *, std: StdMode = "unbiased", eps: float = 1e-6
) -> np.ndarray | list[np.ndarray]: ...


def grpo_advantages(
    rewards: Any, *, std: StdMode = "unbiased", eps: float = 1e-6
) -> np.ndarray | list[np.ndarray]:
    """GRPO's group-relative advantages (Shao et al., DeepSeekMath, arXiv 2402.03300).

    ``A_i = (r_i - mean(r)) / (std(r) + eps)`` over the G outputs sampled for one prompt; the
    same ``A_i`` applies to every token of output ``i``. ``std=None`` drops the division
    (Dr. GRPO, Liu et al., arXiv 2503.20783), which removes the question-level difficulty
    bias. verl uses the unbiased std (``ddof=1``), the default here.

    Args:
        rewards: one group (1-D), a batch of equal-sized groups (2-D, one group per row), or
            ragged groups (a list or tuple whose items are sequences/arrays, one per group).
        std: ``"unbiased"``, ``"population"`` or ``None`` (no division).
        eps: added to the std; a group with equal rewards gets advantages 0.

    Returns:
        Advantages shaped like the input: a 1-D or 2-D array, or a list of 1-D arrays for
        ragged groups.

    Raises:
        ValueError: empty groups, NaN/inf rewards, a group of one with ``std="unbiased"``.
    """
    eps = _check_std(std, eps)
    if isinstance(rewards, list | tuple) and rewards and all(np.ndim(g) >= 1 for g in rewards):
        groups = [_finite_array(g, f"rewards[{i}]", (1,)) for i, g in enumerate(rewards)]
        sizes = np.array([g.size for g in groups])
        if np.any(sizes == 0):
            raise ValueError(f"group {int(np.argmin(sizes))} is empty: every group needs rewards")
        group_of = np.repeat(np.arange(len(groups)), sizes)
        flat = _group_normalize(np.concatenate(groups), group_of, len(groups), std, eps)
        return np.split(flat, np.cumsum(sizes)[:-1])
    array = _finite_array(rewards, "rewards", (1, 2))
    if array.size == 0:
        raise ValueError(f"rewards of shape {array.shape} has an empty group")
    matrix = array.reshape(1, -1) if array.ndim == 1 else array
    num_groups, size = matrix.shape
    group_of = np.repeat(np.arange(num_groups), size)
    return _group_normalize(matrix.ravel(), group_of, num_groups, std, eps).reshape(array.shape)


def process_grpo_advantages(
    step_rewards: Sequence[Any],
    step_ends: Sequence[Any],
    lengths: Sequence[int] | np.ndarray,
    *,
    std: StdMode = "unbiased",
    eps: float = 1e-6,
) -> list[np.ndarray]:
    """GRPO with process supervision (DeepSeekMath, arXiv 2402.03300, section 4.1.3).

    For one group of G outputs, every step reward of every output is normalised with the
    mean and std of *all* step rewards in the group; the advantage of token ``t`` of output
    ``i`` is then the sum of the normalised rewards of that output's steps ending at or after
    ``t``. Tokens after an output's last step end get 0.

    Args:
        step_rewards: G sequences, the PRM reward of each step of each output.
        step_ends: G sequences of token positions, the last token of each step (strictly
            increasing, inside the response), one per step reward.
        lengths: G response lengths in tokens.
        std: ``"unbiased"`` (default), ``"population"`` or ``None`` (no division).
        eps: added to the std.

    Returns:
        G arrays, array ``i`` of length ``lengths[i]``: the token advantages.
    """
    eps = _check_std(std, eps)
    num_outputs = len(step_rewards)
    if num_outputs == 0:
        raise ValueError("the group is empty: pass the step rewards of at least one output")
    if len(step_ends) != num_outputs or len(lengths) != num_outputs:
        raise ValueError(
            f"{num_outputs} step_rewards, {len(step_ends)} step_ends and {len(lengths)} lengths: "
            "pass one of each per output"
        )
    rewards = [_finite_array(r, f"step_rewards[{i}]", (1,)) for i, r in enumerate(step_rewards)]
    sizes = [_check_int(n, f"lengths[{i}]", low=0) for i, n in enumerate(lengths)]
    ends = [
        _step_ends(e, n, f"step_ends[{i}]")
        for i, (e, n) in enumerate(zip(step_ends, sizes, strict=True))
    ]
    for i, (r, e) in enumerate(zip(rewards, ends, strict=True)):
        if r.size != e.size:
            raise ValueError(f"output {i} has {r.size} step rewards but {e.size} step ends")
    flat = np.concatenate(rewards)
    if flat.size == 0:
        raise ValueError("the group has no step rewards at all")
    normalized = _group_normalize(flat, np.zeros(flat.size, dtype=np.int64), 1, std, eps)
    splits = np.split(normalized, np.cumsum([r.size for r in rewards])[:-1])
    out = []
    for norm, e, n in zip(splits, ends, sizes, strict=True):
        # suffix[k] = sum of the normalised rewards of steps k, k+1, ...; suffix[K] = 0.
        suffix = np.concatenate([np.cumsum(norm[::-1])[::-1], [0.0]])
        first_step_at_or_after = np.searchsorted(e, np.arange(n), side="left")
        out.append(suffix[first_step_at_or_after])
    return out


# -- PRL --------------------------------------------------------------------------------------


def step_end_mask(
    lengths: Sequence[int] | np.ndarray,
    width: int,
    *,
    step_len: int | None = None,
    step_ends: Sequence[Any] | None = None,
    token_ids: Any = None,
    step_token_ids: Sequence[int] | None = None,
) -> np.ndarray:
    """Where the steps of each response end, as PRL's reference code splits them (arXiv 2601.10201).

    Exactly one way of splitting: ``step_len`` (every ``step_len``-th token, positions
    ``step_len - 1, 2 * step_len - 1, ...``), ``step_ends`` (explicit positions per response)
    or ``step_token_ids`` with ``token_ids`` (each token whose id is one of them, e.g. the ids
    of ``"\\n"`` and ``"\\n\\n"``). The last token of every non-empty response always ends a
    step.

    Returns:
        A bool array ``(batch, width)``, False on padding.
    """
    width = _check_int(width, "width", low=0)
    batch = len(lengths)
    sizes = _lengths(lengths, batch, width)
    chosen = [
        name
        for name, value in (
            ("step_len", step_len),
            ("step_ends", step_ends),
            ("step_token_ids", step_token_ids),
        )
        if value is not None
    ]
    if len(chosen) != 1:
        raise ValueError(
            "pass exactly one of step_len, step_ends or step_token_ids (with token_ids), "
            f"got {chosen or 'none'}"
        )
    if (token_ids is not None) != (step_token_ids is not None):
        raise ValueError("step_token_ids and token_ids go together: pass both or neither")
    inside = _response_mask(sizes, width)
    positions = np.arange(width)
    if step_len is not None:
        every = _check_int(step_len, "step_len", low=1)
        mask = np.broadcast_to((positions + 1) % every == 0, (batch, width)).copy()
    elif step_ends is not None:
        if len(step_ends) != batch:
            raise ValueError(f"{len(step_ends)} step_ends for a batch of {batch} responses")
        mask = np.zeros((batch, width), dtype=bool)
        for i, (e, n) in enumerate(zip(step_ends, sizes, strict=True)):
            mask[i, _step_ends(e, int(n), f"step_ends[{i}]")] = True
    else:
        ids = np.asarray(token_ids)
        if ids.shape != (batch, width):
            raise ValueError(f"token_ids has shape {ids.shape}, expected {(batch, width)}")
        if not np.issubdtype(ids.dtype, np.integer):
            raise TypeError(f"token_ids must hold integer token ids, not {ids.dtype}")
        separators = _index_array(step_token_ids, "step_token_ids")
        if separators.size == 0:
            raise ValueError("step_token_ids is empty: name the token ids that end a step")
        mask = np.isin(ids, separators)
    mask &= inside
    rows = np.flatnonzero(sizes > 0)
    mask[rows, sizes[rows] - 1] = True
    return mask


def prl_token_advantages(
    outcome: Any,
    log_ratio: Any,
    *,
    eta: float,
    step_ends_mask: Any = None,
    lengths: Sequence[int] | np.ndarray | None = None,
) -> np.ndarray:
    """PRL's per-token process advantages from a per-response signal (arXiv 2601.10201).

    With ``d_t = log pi_old(y_t) - log pi_ref(y_t)`` (``log_ratio``) and the inclusive suffix
    sum ``C_t = sum_{t' >= t} d_t'`` over the response, ``R_t = outcome - C_t / eta``. Without
    ``step_ends_mask`` every token's advantage is ``R_t`` (PRL's mode "prm"). With it, R is
    kept only at step ends and every token takes the R of the end of its own step, the first
    step end at or after it (PRL's mode "orm", steps 5 and 6 of ``docs/algorithms.md`` section
    7).

    The reference code's fill (``left_fill_by_next_nonzero``) zeroes the tokens that are not
    step ends and then fills from the next *nonzero* value, so a step whose R is exactly 0
    borrows the next step's R. Here the step ends come as a mask, so an exact 0 is kept: a
    step's tokens always get that step's own R.

    Args:
        outcome: per response, the scalar signal (a 0-D value for one response, else
            ``(batch,)``): the group-normalised ``A_i`` or the raw reward ``r_i``.
        log_ratio: ``d``, 1-D for one response or ``(batch, width)`` padded on the right.
        eta: the KL temperature, > 0; ``math.inf`` drops the KL term (advantage ``outcome``).
        step_ends_mask: bool, shaped like ``log_ratio``: where steps end (see
            :func:`step_end_mask`; the last token of each response must be one).
        lengths: response lengths for a 2-D ``log_ratio`` (default: the full width).

    Returns:
        Advantages shaped like ``log_ratio``, 0 on padding.
    """
    eta = _check_real(eta, "eta", low=0.0, high=math.inf, open_low=True)
    d = _float_array(log_ratio, "log_ratio")
    single = d.ndim == 1
    if d.ndim not in (1, 2):
        raise ValueError(f"log_ratio must be 1-D or 2-D, not of shape {d.shape}")
    d2 = d.reshape(1, -1) if single else d
    batch, width = d2.shape
    if single and lengths is not None:
        raise ValueError("lengths is for a 2-D batch; a 1-D log_ratio is one whole response")
    sizes = _lengths(lengths, batch, width)
    inside = _response_mask(sizes, width)
    _check_finite(d2, "log_ratio", where=inside)
    signal = _finite_array(outcome, "outcome", (0, 1)).reshape(-1)
    if signal.size != batch:
        raise ValueError(f"outcome has {signal.size} entries for a batch of {batch} responses")
    d2 = np.where(inside, d2, 0.0)
    suffix = np.cumsum(d2[:, ::-1], axis=1)[:, ::-1]
    advantages = signal[:, None] - suffix / eta
    if step_ends_mask is not None:
        ends = np.asarray(step_ends_mask)
        if ends.dtype != np.bool_:
            raise TypeError(f"step_ends_mask must be a bool array, not {ends.dtype}")
        ends = ends.reshape(1, -1) if single and ends.ndim == 1 else ends
        if ends.shape != (batch, width):
            raise ValueError(f"step_ends_mask has shape {ends.shape}, expected {d.shape}")
        ends = ends & inside
        rows = np.flatnonzero(sizes > 0)
        if not np.all(ends[rows, sizes[rows] - 1]):
            row = rows[~ends[rows, sizes[rows] - 1]][0]
            raise ValueError(f"response {row}'s last token is not a step end in step_ends_mask")
        # The first step end at or after each token: a running minimum from the right.
        end_positions = np.where(ends, np.arange(width)[None, :], width - 1)
        own_end = np.minimum.accumulate(end_positions[:, ::-1], axis=1)[:, ::-1]
        advantages = np.take_along_axis(advantages, own_end, axis=1)
    advantages = np.where(inside, advantages, 0.0)
    return advantages[0] if single else advantages


def prl_advantages(
    rewards: Any,
    logp_old: Any,
    logp_ref: Any,
    *,
    eta: float,
    mode: Literal["orm", "prm"] = "orm",
    groups: Any = None,
    lengths: Sequence[int] | np.ndarray | None = None,
    step_len: int | None = None,
    step_ends: Sequence[Any] | None = None,
    token_ids: Any = None,
    step_token_ids: Sequence[int] | None = None,
    std: StdMode = "unbiased",
    eps: float = 1e-6,
) -> np.ndarray:
    """Process Reward Learning advantages (arXiv 2601.10201), ``docs/algorithms.md`` section 7.

    PRL maximises ``E[r] - (1/eta) KL(pi || pi_0)``, whose optimum makes
    ``r - (1/eta) log(pi*/pi_0)`` constant over responses; it turns this into per-step credit:

    * mode ``"orm"`` (the reference code's ``adv_estimator=prm, mode orm``): group-normalise
      the outcome rewards as GRPO does (``A_i``), take ``d_t = logp_old - logp_ref`` on the
      response tokens, its inclusive suffix sum ``C_t``, ``R_t = A_i - C_t / eta``; keep R at
      step ends only (``step_len``, ``step_ends`` or ``step_token_ids`` with ``token_ids``,
      plus the last response token), and give every token the R of the end of its own step.
    * mode ``"prm"``: no group normalisation and no steps: every token gets ``r_i - C_t/eta``.

    The log-ratio uses the behaviour (old) policy, not the current one. A group whose rewards
    are all equal has ``A_i = 0`` and only the KL term is left. Unlike the reference code a
    step whose R is exactly 0 keeps it (see :func:`prl_token_advantages`).

    Args:
        rewards: ``(batch,)`` outcome rewards.
        logp_old, logp_ref: ``(batch, width)`` log-probabilities of the response tokens under
            the behaviour and reference policies, padded on the right (1-D for one response).
        eta: KL temperature, > 0 (``math.inf``: plain ``A_i``); the paper's runs use 1 to 200.
        mode: ``"orm"`` or ``"prm"``.
        groups: ``(batch,)`` group ids (which prompt each response answers) for the
            normalisation in mode ``"orm"``; default: the whole batch is one group.
        lengths: ``(batch,)`` response lengths; default: the full width.
        step_len, step_ends, token_ids, step_token_ids: how steps are split in mode ``"orm"``
            (exactly one way; see :func:`step_end_mask`). For a single 1-D response,
            ``step_ends`` is that response's list of positions.
        std, eps: the GRPO normalisation (see :func:`grpo_advantages`).

    Returns:
        Token advantages shaped like ``logp_old``, 0 on padding, for the clipped objective.
    """
    if mode not in ("orm", "prm"):
        raise ValueError(f"mode must be 'orm' or 'prm', not {mode!r}")
    eps = _check_std(std, eps)
    old = _float_array(logp_old, "logp_old")
    ref = _float_array(logp_ref, "logp_ref")
    if old.shape != ref.shape:
        raise ValueError(f"logp_old has shape {old.shape} but logp_ref has {ref.shape}")
    if old.ndim not in (1, 2):
        raise ValueError(f"logp_old must be 1-D or 2-D, not of shape {old.shape}")
    single = old.ndim == 1
    if single and lengths is not None:
        raise ValueError("lengths is for a 2-D batch; a 1-D logp_old is one whole response")
    old2, ref2 = (old.reshape(1, -1), ref.reshape(1, -1)) if single else (old, ref)
    batch, width = old2.shape
    sizes = _lengths(lengths, batch, width)
    inside = _response_mask(sizes, width)
    _check_finite(old2, "logp_old", where=inside)
    _check_finite(ref2, "logp_ref", where=inside)
    reward = _finite_array(rewards, "rewards", (0, 1)).reshape(-1)
    if reward.size != batch:
        raise ValueError(f"rewards has {reward.size} entries for a batch of {batch} responses")
    d = np.where(inside, old2 - ref2, 0.0)
    if mode == "prm":
        unused = (
            ("step_len", step_len),
            ("step_ends", step_ends),
            ("token_ids", token_ids),
            ("step_token_ids", step_token_ids),
            ("groups", groups),
        )
        given = [name for name, value in unused if value is not None]
        if given:
            raise ValueError(f"mode 'prm' uses no steps and no groups; drop {', '.join(given)}")
        out = prl_token_advantages(reward, d, eta=eta, lengths=sizes)
        return out[0] if single else out
    if batch == 0:
        raise ValueError("the batch is empty: pass at least one response")
    if groups is None:
        group_of = np.zeros(batch, dtype=np.int64)
    else:
        ids = np.asarray(groups)
        if ids.shape != (batch,):
            raise ValueError(f"groups has shape {ids.shape}, expected one id per response")
        _, group_of = np.unique(ids, return_inverse=True)
    group_of = group_of.reshape(-1).astype(np.int64)
    normalized = _group_normalize(reward, group_of, int(group_of.max()) + 1, std, eps)
    ends = step_end_mask(
        sizes,
        width,
        step_len=step_len,
        step_ends=[step_ends] if single and step_ends is not None else step_ends,
        token_ids=None if token_ids is None else np.asarray(token_ids).reshape(batch, -1),
        step_token_ids=step_token_ids,
    )
    out = prl_token_advantages(normalized, d, eta=eta, step_ends_mask=ends, lengths=sizes)
    return out[0] if single else out


# -- step-level PPO ---------------------------------------------------------------------------


def step_ppo_rewards(
    step_ends: Sequence[int] | np.ndarray,
    scores: Any,
    length: int,
    *,
    mode: Literal["absolute", "difference"] = "absolute",
    baseline: float = 0.0,
    kl: Any = None,
    kl_coef: float = 0.04,
) -> np.ndarray:
    """Token rewards for step-level PPO with a PRM (Math-Shepherd, Wang et al., arXiv 2312.08935).

    The PRM score of step ``k`` becomes a reward on the last token of step ``k``; other tokens
    get 0. ``mode="difference"`` rewards ``score_k - score_{k-1}`` instead (with
    ``score_0 = baseline`` before the first step), so the rewards sum to
    ``score_K - baseline`` and many short steps earn nothing extra. With ``kl`` (a per-token
    KL estimate, e.g. ``logp - logp_ref``) the usual ``-kl_coef * kl`` is added to every
    token; the default coefficient is DeepSeekMath's beta 0.04. A critic with GAE
    (:func:`td_lambda_returns`) then turns the rewards into advantages.

    Args:
        step_ends: the last token of each step, strictly increasing, in ``[0, length)``.
        scores: one PRM score per step.
        length: the response length in tokens.

    Returns:
        A float array of ``length`` token rewards.
    """
    if mode not in ("absolute", "difference"):
        raise ValueError(f"mode must be 'absolute' or 'difference', not {mode!r}")
    length = _check_int(length, "length", low=0)
    ends = _step_ends(step_ends, length, "step_ends")
    values = _finite_array(scores, "scores", (1,))
    if values.size != ends.size:
        raise ValueError(f"{values.size} scores for {ends.size} step ends: one score per step")
    start = _check_real(baseline, "baseline", low=-math.inf, high=math.inf, open_low=True)
    if math.isinf(start):
        raise ValueError(f"baseline must be finite, not {baseline!r}")
    if mode == "difference":
        values = np.diff(values, prepend=start)
    rewards = np.zeros(length)
    rewards[ends] = values
    if kl is not None:
        coef = _check_real(kl_coef, "kl_coef", low=0.0, high=math.inf, open_low=False)
        if math.isinf(coef):
            raise ValueError("kl_coef must be finite")
        penalty = _finite_array(kl, "kl", (1,))
        if penalty.size != length:
            raise ValueError(f"kl has {penalty.size} entries for a response of {length} tokens")
        rewards = rewards - coef * penalty
    return rewards


# -- GRPO objective pieces --------------------------------------------------------------------


def grpo_kl(logp: Any, logp_ref: Any) -> np.ndarray:
    """GRPO's per-token KL estimate (DeepSeekMath, arXiv 2402.03300, equation 4).

    The unbiased, always non-negative "k3" estimator of ``KL(pi || pi_ref)`` from a token
    sampled from ``pi``: ``pi_ref/pi - log(pi_ref/pi) - 1``, computed as ``expm1(x) - x`` with
    ``x = logp_ref - logp`` for accuracy near 0. Its expectation under ``pi`` is the KL.

    Args:
        logp, logp_ref: log-probabilities of the sampled tokens under the policy and the
            reference (same shape, finite).

    Returns:
        The per-token estimate, shaped like ``logp``.
    """
    policy = _float_array(logp, "logp")
    reference = _float_array(logp_ref, "logp_ref")
    if policy.shape != reference.shape:
        raise ValueError(f"logp has shape {policy.shape} but logp_ref has {reference.shape}")
    _check_finite(policy, "logp")
    _check_finite(reference, "logp_ref")
    x = reference - policy
    out: np.ndarray = np.expm1(x) - x
    return out


def clipped_surrogate(ratio: Any, advantages: Any, *, clip: float = 0.2, mask: Any = None) -> float:
    """The PPO/GRPO clipped objective (DeepSeekMath, arXiv 2402.03300, equation 3).

    Per token ``min(rho * A, clip(rho, 1 - clip, 1 + clip) * A)`` with
    ``rho = pi / pi_old``; averaged over each sequence's (unmasked) tokens, then over the
    sequences. This is the objective to *maximise*: the loss is its negative (plus
    ``beta * mean(grpo_kl)`` when a KL penalty is used).

    Args:
        ratio: ``rho``, 1-D for one sequence or ``(batch, tokens)``; positive.
        advantages: shaped like ``ratio``, or one per sequence (``ratio.shape[:-1]``).
        clip: the clip range epsilon, > 0 (0.2 is usual).
        mask: bool or 0/1, shaped like ``ratio``; 0 marks padding. Every sequence needs at
            least one unmasked token.

    Returns:
        The objective as a float.
    """
    eps = _check_real(clip, "clip", low=0.0, high=math.inf, open_low=True)
    if math.isinf(eps):
        raise ValueError("clip must be finite")
    rho = _float_array(ratio, "ratio")
    if rho.ndim not in (1, 2):
        raise ValueError(f"ratio must be 1-D or 2-D, not of shape {rho.shape}")
    adv = _float_array(advantages, "advantages")
    if adv.shape == rho.shape[:-1]:
        adv = np.broadcast_to(adv[..., None], rho.shape)
    elif adv.shape != rho.shape:
        raise ValueError(
            f"advantages has shape {adv.shape}; expected {rho.shape} (per token) or "
            f"{rho.shape[:-1]} (per sequence)"
        )
    if mask is None:
        weights = np.ones(rho.shape)
    else:
        raw = np.asarray(mask)
        if raw.shape != rho.shape:
            raise ValueError(f"mask has shape {raw.shape}, expected {rho.shape}")
        if raw.dtype != np.bool_ and not np.all((raw == 0) | (raw == 1)):
            raise ValueError("mask must hold only 0/1 or booleans")
        weights = raw.astype(np.float64)
    used = weights > 0
    _check_finite(rho, "ratio", where=used)
    _check_finite(adv, "advantages", where=used)
    if np.any(rho[used] < 0):
        raise ValueError("ratio must be non-negative: it is pi / pi_old")
    counts = weights.sum(axis=-1)
    if np.any(counts == 0):
        raise ValueError("a sequence has no unmasked tokens: drop it before averaging")
    rho = np.where(used, rho, 1.0)
    adv = np.where(used, adv, 0.0)
    per_token = np.minimum(rho * adv, np.clip(rho, 1.0 - eps, 1.0 + eps) * adv)
    per_sequence = (per_token * weights).sum(axis=-1) / counts
    return float(np.mean(per_sequence))


# -- returns for critic targets ---------------------------------------------------------------


def monte_carlo_returns(rewards: Any, *, gamma: float = 1.0) -> np.ndarray:
    """Discounted Monte-Carlo returns ``G_k = sum_{j >= k} gamma^(j-k) r_j``.

    TS-LLM (arXiv 2309.17179) trains its critic on these with ``gamma = 1`` and the reward at
    the end only, so every step's target is the final reward (``docs/algorithms.md`` section
    5).

    Args:
        rewards: 1-D (one episode) or 2-D (one equal-length episode per row).
        gamma: discount in [0, 1].

    Returns:
        The returns, shaped like ``rewards``.
    """
    discount = _check_real(gamma, "gamma", low=0.0, high=1.0, open_low=False)
    r = _finite_array(rewards, "rewards", (1, 2))
    returns = np.empty_like(r)
    running = np.zeros(r.shape[:-1])
    for t in range(r.shape[-1] - 1, -1, -1):
        running = r[..., t] + discount * running
        returns[..., t] = running
    return returns


def td_lambda_returns(
    rewards: Any,
    values: Any,
    *,
    gamma: float = 1.0,
    lam: float = 0.95,
    bootstrap: Any = 0.0,
) -> np.ndarray:
    """TD(lambda) returns computed the GAE way (Schulman et al., arXiv 1506.02438).

    ``delta_t = r_t + gamma * V_{t+1} - V_t`` with ``V_T = bootstrap`` (0 for a finished
    episode); ``A_t = delta_t + gamma * lam * A_{t+1}``; the return is ``A_t + V_t``.
    ``lam = 1`` gives Monte-Carlo returns (plus ``gamma^(T-t) * bootstrap``), ``lam = 0`` the
    one-step targets ``r_t + gamma * V_{t+1}``. TS-LLM (arXiv 2309.17179) implements this with
    ``lam = 0.95`` as an alternative critic target; ``returns - values`` are GAE advantages.

    Args:
        rewards: 1-D (one episode) or 2-D (one per row); ``r_t`` follows state ``s_t``.
        values: ``V(s_t)``, shaped like ``rewards``.
        gamma, lam: in [0, 1].
        bootstrap: the value after the last step, a scalar or one per episode.

    Returns:
        The lambda-returns, shaped like ``rewards``.
    """
    discount = _check_real(gamma, "gamma", low=0.0, high=1.0, open_low=False)
    trace = _check_real(lam, "lam", low=0.0, high=1.0, open_low=False)
    r = _finite_array(rewards, "rewards", (1, 2))
    v = _finite_array(values, "values", (1, 2))
    if v.shape != r.shape:
        raise ValueError(f"values has shape {v.shape} but rewards has {r.shape}")
    tail = _finite_array(bootstrap, "bootstrap", (0, 1))
    if tail.ndim == 1 and tail.shape != r.shape[:-1]:
        raise ValueError(
            f"bootstrap has shape {tail.shape}; expected a scalar or one per episode {r.shape[:-1]}"
        )
    returns = np.empty_like(r)
    next_value = np.broadcast_to(tail, r.shape[:-1]).astype(np.float64)
    advantage = np.zeros(r.shape[:-1])
    for t in range(r.shape[-1] - 1, -1, -1):
        delta = r[..., t] + discount * next_value - v[..., t]
        advantage = delta + discount * trace * advantage
        returns[..., t] = advantage + v[..., t]
        next_value = v[..., t]
    return returns
