"""Budget validation and the meter's accounting."""

from __future__ import annotations

import math

import numpy as np
import pytest

from treesearch import Budget, BudgetMeter, Usage
from treesearch.budget import BudgetExceeded


def test_budget_validation():
    assert Budget(simulations=np.int64(5)).simulations == 5
    assert type(Budget(simulations=np.int64(5)).simulations) is int
    with pytest.raises(ValueError, match="at least one limit"):
        Budget()
    with pytest.raises(ValueError, match="positive"):
        Budget(tokens=-3)
    with pytest.raises(TypeError, match="int"):
        Budget(simulations=2.5)
    with pytest.raises(TypeError, match="int"):
        Budget(simulations=True)
    with pytest.raises(ValueError, match="wall_time"):
        Budget(wall_time=math.nan)
    with pytest.raises(ValueError, match="wall_time"):
        Budget(wall_time=0.0)


def test_meter_refuses_work_past_a_limit_and_names_it():
    meter = BudgetMeter(Budget(simulations=10, policy_calls=4))
    assert meter.can(simulations=1, policy_calls=4)
    meter.charge(simulations=1, policy_calls=4)
    assert meter.remaining("policy_calls") == 0
    assert meter.remaining("tokens") is None
    assert not meter.can(simulations=1, policy_calls=1)
    assert meter.stop_reason == "policy_calls"
    assert meter.can(simulations=9)
    with pytest.raises(BudgetExceeded):
        meter.charge(simulations=10)
    usage = meter.usage()
    assert (usage.simulations, usage.policy_calls) == (1, 4)
    assert usage.within(meter.budget)
    with pytest.raises(ValueError, match="negative"):
        meter.charge(tokens=-1)


def test_first_refusal_is_kept_as_the_stop_reason():
    meter = BudgetMeter(Budget(simulations=1, tokens=1))
    meter.charge(simulations=1, tokens=1)
    assert not meter.can(tokens=1)
    assert not meter.can(simulations=1)
    assert meter.stop_reason == "tokens"


def test_only_simulations_flag():
    assert BudgetMeter(Budget(simulations=3)).only_simulations
    assert not BudgetMeter(Budget(simulations=3, wall_time=1.0)).only_simulations
    assert not BudgetMeter(Budget(simulations=3, tokens=9)).only_simulations


def test_wall_time_refusal():
    meter = BudgetMeter(Budget(wall_time=1e-9))
    assert not meter.can(simulations=1)
    assert meter.stop_reason == "wall_time"


def test_usage_within():
    budget = Budget(simulations=5, verifier_calls=2)
    assert Usage(simulations=5, verifier_calls=2).within(budget)
    assert not Usage(simulations=6).within(budget)
    assert not Usage(verifier_calls=3).within(budget)
    assert Usage(tokens=10**9).within(budget)  # unlimited fields never fail
