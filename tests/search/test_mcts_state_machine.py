"""A hypothesis state machine: the array tree against a naive dict-based PUCT.

Random interleavings of "search N more simulations" and "play a move, keeping its subtree" must
leave both with the same visit counts and values at every node under the root.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from treesearch import MCTS, Budget, reuse_subtree
from treesearch.games.connect_four import ConnectFour
from treesearch.testing import HashEvaluator

C = 1.3


class NaivePUCT:
    """PUCT over dicts keyed by action paths, written the obvious way."""

    def __init__(self, root):
        self.visits = {(): 0}
        self.value_sum = {(): 0.0}
        self.prior: dict[tuple, float] = {}
        self.children: dict[tuple, list] = {}
        self.states = {(): root}
        self.evaluator = HashEvaluator()

    def simulate(self) -> None:
        node, path = (), [()]
        while node in self.children and not self.states[node].is_terminal():
            best, best_score = None, -math.inf
            for a in self.children[node]:
                child = (*node, a)
                n = self.visits.get(child, 0)
                q = self.value_sum[child] / n if n else 0.0
                score = q + C * self.prior[child] * math.sqrt(self.visits[node]) / (1 + n)
                if score > best_score:
                    best, best_score = child, score
            node = best
            if node not in self.states:
                self.states[node] = self.states[node[:-1]].step(node[-1])
                self.visits[node], self.value_sum[node] = 0, 0.0
            path.append(node)
        state = self.states[node]
        if state.is_terminal():
            value = state.terminal_value()
        else:
            ev = self.evaluator.evaluate([state], rng=None)[0]
            self.children[node] = list(state.legal_actions())
            for a, p in zip(self.children[node], ev.priors, strict=True):
                self.prior[(*node, a)] = p / ev.priors.sum()
            value = ev.value
        for nd in reversed(path):
            if nd and self.states[nd[:-1]].to_play != self.states[nd].to_play:
                value = -value
            self.visits[nd] += 1
            self.value_sum[nd] += value

    def advance(self, action) -> None:
        def strip(d):
            return {k[1:]: v for k, v in d.items() if k[:1] == (action,)}

        old_root, new_root = self.states[()], self.states[(action,)]
        root_value = self.value_sum[(action,)]
        if old_root.to_play != new_root.to_play:
            root_value = -root_value  # the new root's statistics are for its own player
        self.visits, self.value_sum = strip(self.visits), strip(self.value_sum)
        self.prior, self.children, self.states = (
            strip(self.prior),
            strip(self.children),
            strip(self.states),
        )
        self.value_sum[()] = root_value


class TreeVersusNaive(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.mcts = MCTS(HashEvaluator(), c=C, solver=False)
        self.tree = None
        self.state = ConnectFour.from_moves([3, 3, 2])
        self.naive = NaivePUCT(self.state)

    @rule(sims=st.integers(1, 40))
    def search(self, sims):
        root = self.state if self.tree is None else self.tree
        self.tree = self.mcts.search(
            root, Budget(simulations=sims), rng=np.random.default_rng(0)
        ).tree
        for _ in range(sims):
            self.naive.simulate()

    @precondition(lambda self: self.tree is not None and self.tree.visits[0] > 1)
    @rule(pick=st.integers(0, 6))
    def advance(self, pick):
        kids = self.tree.children(0)
        visited = [i for i in kids if self.tree.visits[i] > 0]
        child = visited[pick % len(visited)]
        action = self.tree.actions[child]
        if self.tree.state(child).is_terminal():
            return
        self.tree = reuse_subtree(self.tree, action)
        self.naive.advance(action)
        self.state = self.state.step(action)

    @invariant()
    def same_statistics(self):
        if self.tree is None:
            return
        assert self.tree.visits[0] == self.naive.visits[()]
        assert self.tree.value_sum[0] == pytest.approx(self.naive.value_sum[()], abs=1e-9)
        for node in range(1, self.tree.num_nodes):
            path = tuple(self.tree.actions[i] for i in self.tree.path(node)[1:])
            assert self.tree.visits[node] == self.naive.visits.get(path, 0), path
            if self.tree.visits[node]:
                assert self.tree.value_sum[node] == pytest.approx(
                    self.naive.value_sum[path], abs=1e-9
                )


# Example count comes from the active profile (tests/conftest.py: 200 under CI).
TreeVersusNaive.TestCase.settings = settings(stateful_step_count=8, deadline=None)
test_tree_versus_naive = TreeVersusNaive.TestCase
