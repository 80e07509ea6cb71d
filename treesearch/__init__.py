"""treesearch: tree search with pluggable generators and verifiers.

The core imports only numpy; torch, transformers and graphviz load lazily where needed.
"""

from .budget import Budget, BudgetMeter, Usage
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
from .tree import Node, Tree

__version__ = "0.1.0"

__all__ = [
    "Action",
    "Budget",
    "BudgetMeter",
    "Candidate",
    "Evaluation",
    "Evaluator",
    "Node",
    "Policy",
    "Score",
    "SearchResult",
    "State",
    "Trace",
    "TraceStep",
    "Tree",
    "Usage",
    "Verifier",
    "__version__",
    "read_traces",
    "write_traces",
]
