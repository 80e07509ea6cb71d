"""treesearch: tree search with pluggable generators and verifiers.

The core imports only numpy; torch, transformers and graphviz load lazily where needed.
"""

import logging

from .budget import Budget, BudgetMeter, Usage
from .evaluators import LegalActionsPolicy, PolicyVerifierEvaluator, RandomRollout, UniformEvaluator
from .interfaces import (
    Action,
    Candidate,
    Evaluation,
    Evaluator,
    Policy,
    Score,
    State,
    Verifier,
)
from .results import SearchResult, Trace, TraceStep, read_traces, write_traces
from .search.batched import BatchedMCTS, BatchedSearchResult
from .search.beam import BeamSearch
from .search.best_first import BestFirst
from .search.best_of_n import BestOfN
from .search.bfs import BFS
from .search.dfs import DFS
from .search.dvts import DVTS
from .search.mcts import MCTS, reuse_subtree
from .search.mcts_star import MCTSStar
from .search.ts_llm import MCTSAlpha, MCTSRollout
from .tree import Node, Tree

# A library logs and never prints: without this, Python would print warnings to stderr for
# applications that have not configured logging.
logging.getLogger(__name__).addHandler(logging.NullHandler())

__version__ = "0.1.0"

__all__ = [
    "BFS",
    "DFS",
    "DVTS",
    "MCTS",
    "Action",
    "BatchedMCTS",
    "BatchedSearchResult",
    "BeamSearch",
    "BestFirst",
    "BestOfN",
    "Budget",
    "BudgetMeter",
    "Candidate",
    "Evaluation",
    "Evaluator",
    "LegalActionsPolicy",
    "MCTSAlpha",
    "MCTSRollout",
    "MCTSStar",
    "Node",
    "Policy",
    "PolicyVerifierEvaluator",
    "RandomRollout",
    "Score",
    "SearchResult",
    "State",
    "Trace",
    "TraceStep",
    "Tree",
    "UniformEvaluator",
    "Usage",
    "Verifier",
    "__version__",
    "read_traces",
    "reuse_subtree",
    "write_traces",
]
