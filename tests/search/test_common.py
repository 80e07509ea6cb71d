"""The shared helpers of the verifier-guided searches (treesearch.search._common)."""

from __future__ import annotations

import pytest

from treesearch import Budget, Candidate
from treesearch.budget import BudgetMeter
from treesearch.search._common import Stop, expand_nodes, start_unit
from treesearch.tree import Tree


def test_expand_nodes_groups_a_repeated_node(tw):
    tree = Tree(tw.S())
    meter = BudgetMeter(Budget(expansions=5))
    made = expand_nodes(
        tree,
        meter,
        [Tree.ROOT, Tree.ROOT],
        [[Candidate("a", 1.0), Candidate("b", 1.0)], [Candidate("a", 2.0)]],
    )
    # One expansion of the root with all three candidates, priors normalised over them.
    assert made == [[1, 2], [3]]
    assert list(tree.actions[1:]) == ["a", "b", "a"]
    assert list(tree.prior[1:4]) == pytest.approx([0.25, 0.25, 0.5])
    assert meter.usage().expansions == 1


def test_expand_nodes_dedupes_per_node_and_attributes_children(tw):
    tree = Tree(tw.S())
    meter = BudgetMeter(Budget(simulations=1))
    made = expand_nodes(
        tree,
        meter,
        [Tree.ROOT, Tree.ROOT],
        [[Candidate("a"), Candidate("b")], [Candidate("a"), Candidate("c")]],
        dedupe=True,
    )
    assert made == [[1, 2], [3]]
    assert list(tree.actions[1:]) == ["a", "b", "c"]


def test_expand_nodes_adds_nothing_when_the_children_do_not_fit(tw):
    tree = Tree(tw.S(), max_nodes=3)
    meter = BudgetMeter(Budget(simulations=1))
    with pytest.raises(Stop) as info:
        expand_nodes(tree, meter, [Tree.ROOT], [[Candidate(x) for x in "abc"]])
    assert info.value.reason == "max_nodes"
    assert len(tree) == 1
    assert meter.usage().expansions == 0


def test_start_unit_stops_with_the_refusing_limit():
    meter = BudgetMeter(Budget(expansions=1))
    start_unit(meter, expansions=1)
    assert meter.usage().simulations == 1
    with pytest.raises(Stop) as info:
        start_unit(meter, expansions=2)
    assert info.value.reason == "expansions"
    assert meter.usage().simulations == 1
