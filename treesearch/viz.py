"""Look at a search tree: JSON export and import, Graphviz DOT, rendered SVG / PNG, networkx.

* :func:`to_json` / :func:`from_json` (and :func:`save_json` / :func:`load_json`): the tree's
  statistics and actions as JSON (``Tree.to_dict``); the round trip is exact.
* :func:`to_dot`: DOT source text, built here without any dependency. Nodes show the action,
  visits ``N``, value ``Q``, prior ``P`` and verifier score ``S``; the fill colour follows ``Q``
  (red low, white middle, green high; grey when unvisited). Wide or deep trees are pruned with
  ``max_depth`` / ``top_k`` / ``min_visits``; hidden children are summarised as one ``+N more``
  node so nothing disappears silently.
* :func:`render`: SVG / PNG / PDF through Graphviz's ``dot`` program.
* :func:`to_networkx`: a :class:`networkx.DiGraph` for analysis.

The module imports only numpy; networkx is imported inside :func:`to_networkx`
(``pip install treesearch[viz]``), and :func:`render` needs the Graphviz ``dot`` program on
``PATH`` (https://graphviz.org/download/).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import tempfile
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .tree import Node, Tree

if TYPE_CHECKING:
    import networkx

__all__ = [
    "from_json",
    "load_json",
    "render",
    "save_json",
    "to_dot",
    "to_json",
    "to_networkx",
]

_EXTRA_HINT = "pip install treesearch[viz]"
MAX_LABEL_CHARS = 40
"""Action text longer than this is cut, with an ellipsis, in :func:`to_dot` labels."""
_MAX_TOOLTIP_CHARS = 1000

# Fill colours: value_range[0] -> _LOW, midpoint -> _MID, value_range[1] -> _HIGH.
_LOW = (239, 83, 80)
_MID = (255, 255, 255)
_HIGH = (102, 187, 106)
_UNVISITED = "#d9d9d9"

# Characters XML 1.0 (hence SVG) cannot carry, plus C1 controls; replaced in labels.
_BAD_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


# ---------------------------------------------------------------------------------------- JSON
def to_json(tree: Tree) -> str:
    """The tree's statistics and actions as compact JSON text (states and payloads are dropped).

    Raises:
        TypeError: an action is not a JSON scalar or a tuple of them.
        ValueError: a statistic or action is infinite (NaN is stored as ``null``).
    """
    if not isinstance(tree, Tree):
        raise TypeError(f"to_json expects a Tree, got {type(tree).__name__}")
    data = tree.to_dict()
    try:
        return json.dumps(data, allow_nan=False, separators=(",", ":"))
    except ValueError as exc:
        raise ValueError(f"tree holds a non-finite number that JSON cannot store: {exc}") from exc


def _reject_constant(name: str) -> float:
    raise ValueError(f"tree JSON must not contain {name}")


def from_json(text: str | bytes) -> Tree:
    """Inverse of :func:`to_json`: a tree with statistics and actions but no states.

    Raises:
        ValueError: the text is not valid JSON, not a treesearch tree, or its arrays do not
            describe a consistent tree (parents, child blocks, depths).
    """
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except (TypeError, UnicodeDecodeError) as exc:
        raise ValueError(f"tree JSON could not be read: {exc}") from exc
    except ValueError as exc:
        raise ValueError(f"invalid tree JSON: {exc}") from exc
    try:
        tree = Tree.from_dict(data)
    except (KeyError, TypeError, IndexError, OverflowError, AttributeError) as exc:
        raise ValueError(f"corrupted tree JSON: {type(exc).__name__}: {exc}") from exc
    _check_structure(tree)
    return tree


def _check_structure(tree: Tree) -> None:
    """Raise ``ValueError`` unless parent pointers, child blocks and depths agree."""
    n = tree.num_nodes
    parent = tree.parent[:n].astype(np.int64)
    first = tree.first_child[:n].astype(np.int64)
    count = tree.num_children[:n].astype(np.int64)
    depth = tree.depth[:n].astype(np.int64)
    ids = np.arange(n)
    if parent[0] != Tree.NO_PARENT:
        raise ValueError("corrupted tree JSON: the root has a parent")
    if n > 1 and np.any((parent[1:] < 0) | (parent[1:] >= ids[1:])):
        raise ValueError("corrupted tree JSON: a node's parent is not an earlier node")
    if np.any(count < 0) or np.any(tree.visits[:n] < 0):
        raise ValueError("corrupted tree JSON: negative child or visit counts")
    expanded = first != Tree.UNEXPANDED
    if np.any(~expanded & (count != 0)):
        raise ValueError("corrupted tree JSON: an unexpanded node has children")
    bad_block = expanded & ((first <= ids) | (first + count > n))
    if np.any(bad_block):
        raise ValueError(
            f"corrupted tree JSON: bad child block at node {int(np.argmax(bad_block))}"
        )
    if n > 1:
        p = parent[1:]
        inside = (first[p] <= ids[1:]) & (ids[1:] < first[p] + count[p])
        if not np.all(inside):
            raise ValueError("corrupted tree JSON: a node lies outside its parent's child block")
        if count.sum() != n - 1:
            raise ValueError("corrupted tree JSON: child blocks overlap")
        if np.any(depth[1:] != depth[p] + 1):
            raise ValueError("corrupted tree JSON: depths disagree with parents")


def save_json(tree: Tree, path: str | os.PathLike[str]) -> Path:
    """Write :func:`to_json` to ``path`` atomically (temp file in the same folder, then rename)."""
    path = Path(path)
    _atomic_write(path, to_json(tree).encode("utf-8"))
    return path


def load_json(path: str | os.PathLike[str]) -> Tree:
    """Read a tree written by :func:`save_json`; ``ValueError`` names the file if it is bad."""
    data = Path(path).read_bytes()
    try:
        return from_json(data)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc


def _atomic_write(path: Path, data: bytes) -> None:
    try:  # mkstemp makes the file private (0600); keep an existing file's mode, else 0644
        mode = path.stat().st_mode & 0o777
    except OSError:
        mode = 0o644
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ----------------------------------------------------------------------------------------- DOT
def _clean(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", " ")
    return _BAD_CHARS.sub("\ufffd", text)


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _html(text: str) -> str:
    """``text`` as the inside of a Graphviz HTML-like label; newlines become line breaks."""
    text = (
        _clean(text)
        .replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("\\", "\\\\")  # dot expands \N, \G, ... even inside HTML labels
    )
    return text.replace("\n", "<br/>")


def _quoted(text: str) -> str:
    """``text`` as a double-quoted DOT tooltip string.

    Graphviz 2.43 unescapes tooltips twice (quoted string, then escString), so a backslash is
    written as four; a Graphviz that unescapes once shows two, which is harmless.
    """
    text = _clean(text).replace("\\", "\\\\\\\\").replace('"', '\\"').replace("&", "&amp;")
    return '"' + text.replace("\n", "\\n") + '"'


def _action_text(action: Any) -> str:
    return action if isinstance(action, str) else str(action)


def _value_colour(q: float, lo: float, hi: float) -> str:
    t = min(1.0, max(0.0, (q - lo) / (hi - lo)))
    if t < 0.5:
        a, b, s = _LOW, _MID, t * 2.0
    else:
        a, b, s = _MID, _HIGH, (t - 0.5) * 2.0
    r, g, bl = (round(x + (y - x) * s) for x, y in zip(a, b, strict=True))
    return f"#{r:02x}{g:02x}{bl:02x}"


def _default_label(tree: Tree, i: int) -> str:
    head = "root" if i == Tree.ROOT else _truncate(_action_text(tree.actions[i]), MAX_LABEL_CHARS)
    visits = int(tree.visits[i])
    q = tree.q(i)
    stats = f"N={visits}" + (f" Q={q:+.3f}" if visits > 0 and math.isfinite(q) else "")
    extra = [] if i == Tree.ROOT else [f"P={float(tree.prior[i]):.3f}"]
    score = float(tree.score[i])
    if not math.isnan(score):
        extra.append(f"S={score:.3f}")
    proven = float(tree.proven[i])
    if not math.isnan(proven):
        extra.append(f"proven={proven:+g}")
    return "\n".join([head, stats] + ([" ".join(extra)] if extra else []))


def _check_count(name: str, value: Any, *, minimum: int, allow_none: bool) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


def to_dot(
    tree: Tree,
    *,
    max_depth: int | None = None,
    top_k: int | None = None,
    min_visits: int = 0,
    label_fn: Callable[[Node], str] | None = None,
    value_range: tuple[float, float] = (-1.0, 1.0),
) -> str:
    """Graphviz DOT source for ``tree``, pruned for readability.

    Each node shows its action (cut to 40 characters; the full text is the SVG tooltip), visits
    ``N``, value ``Q`` (for the player to move at the parent; the root's for its own player),
    prior ``P`` and, when known, verifier score ``S`` and proven value. The fill colour follows
    ``Q`` from red (``value_range[0]``) through white to green (``value_range[1]``); unvisited
    nodes are grey, terminal nodes have a double border. Edge width follows the child's share of
    its siblings' visits.

    Args:
        tree: the tree to draw.
        max_depth: hide nodes deeper than this (the root has depth 0).
        top_k: keep only the ``k`` most visited children of each node (ties: higher prior, then
            lower index).
        min_visits: hide children with fewer visits.
        label_fn: ``label_fn(node) -> str`` replaces the default label text (escaped here; a
            newline starts a new line).
        value_range: the values mapped to the two ends of the colour scale.

    Hidden children of a node are drawn as one dashed ``+N more`` node with their total visits.
    """
    if not isinstance(tree, Tree):
        raise TypeError(f"to_dot expects a Tree, got {type(tree).__name__}")
    _check_count("max_depth", max_depth, minimum=0, allow_none=True)
    _check_count("top_k", top_k, minimum=1, allow_none=True)
    _check_count("min_visits", min_visits, minimum=0, allow_none=False)
    try:
        lo, hi = (float(v) for v in value_range)
    except (TypeError, ValueError):
        raise ValueError(f"value_range must be two numbers, got {value_range!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"value_range must be finite with low < high, got {value_range!r}")
    if label_fn is not None and not callable(label_fn):
        raise TypeError(f"label_fn must be callable, got {type(label_fn).__name__}")

    visits = tree.visits
    prior = tree.prior
    out = [
        "digraph treesearch {",
        '  graph [rankdir=TB, ranksep=0.35, nodesep=0.15, fontname="Helvetica"];',
        '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=10, '
        f'fillcolor="{_UNVISITED}", color="#555555"];',
        '  edge [arrowsize=0.6, color="#777777"];',
    ]

    def emit_node(i: int) -> None:
        if label_fn is None:
            label = _default_label(tree, i)
        else:
            label = label_fn(tree.node(i))
            if not isinstance(label, str):
                raise TypeError(f"label_fn must return a str, got {type(label).__name__}")
        n = int(visits[i])
        q = tree.q(i)
        attrs = [f"label=<{_html(label)}>"]
        if n > 0 and math.isfinite(q):
            attrs.append(f'fillcolor="{_value_colour(q, lo, hi)}"')
        if bool(tree.terminal[i]):
            attrs.append("peripheries=2")
        if i != Tree.ROOT:
            full = _action_text(tree.actions[i])
            attrs.append(f"tooltip={_quoted(_truncate(full, _MAX_TOOLTIP_CHARS))}")
        out.append(f"  n{i} [{', '.join(attrs)}];")

    emit_node(Tree.ROOT)
    queue: deque[tuple[int, int]] = deque([(Tree.ROOT, 0)])
    while queue:
        node, depth = queue.popleft()
        kids = tree.children(node)
        if not len(kids):
            continue
        ids = np.arange(kids.start, kids.stop)
        kid_visits = visits[kids.start : kids.stop].astype(np.int64)
        if max_depth is not None and depth >= max_depth:
            keep = ids[:0]
        else:
            keep = ids[kid_visits >= min_visits]
            if top_k is not None and len(keep) > top_k:
                # lexsort: last key is primary -> most visits, then highest prior, then index.
                order = np.lexsort((keep, -prior[keep], -visits[keep].astype(np.int64)))
                keep = np.sort(keep[order[:top_k]])
        total = int(kid_visits.sum())
        for child in keep.tolist():
            emit_node(child)
            width = 1.0 + 3.0 * int(visits[child]) / total if total > 0 else 1.0
            out.append(f"  n{node} -> n{child} [penwidth={width:.2f}];")
            queue.append((child, depth + 1))
        hidden = len(ids) - len(keep)
        if hidden:
            hidden_visits = total - int(visits[keep].sum())
            out.append(
                f'  m{node} [label=<+{hidden} more<br/>N={hidden_visits}>, style="dashed", '
                'fillcolor="white", color="#999999", fontcolor="#555555"];'
            )
            out.append(f'  n{node} -> m{node} [style=dashed, color="#aaaaaa"];')
    out.append("}")
    return "\n".join(out) + "\n"


# -------------------------------------------------------------------------------------- render
_TEXT_FORMATS = {"dot", "gv"}
_DOT_FORMATS = {"svg", "png", "pdf"}


def render(
    tree: Tree,
    path: str | os.PathLike[str],
    *,
    format: str | None = None,
    **to_dot_kwargs: Any,
) -> Path:
    """Draw ``tree`` to ``path`` with Graphviz and return the path.

    Args:
        tree: the tree to draw.
        path: the output file; written atomically.
        format: ``"svg"``, ``"png"`` or ``"pdf"`` (run through ``dot``), or ``"dot"`` / ``"gv"``
            (the DOT source, no Graphviz needed); by default taken from the file suffix.
        **to_dot_kwargs: pruning and labelling options of :func:`to_dot`.

    Raises:
        ValueError: unknown format.
        RuntimeError: the Graphviz ``dot`` program is missing or fails.
    """
    path = Path(path)
    fmt = (format if format is not None else path.suffix.lstrip(".")).lower()
    if fmt not in _TEXT_FORMATS | _DOT_FORMATS:
        supported = ", ".join(sorted(_TEXT_FORMATS | _DOT_FORMATS))
        raise ValueError(
            f"cannot render to {path.name!r}: unknown format {fmt!r} (use one of {supported})"
        )
    source = to_dot(tree, **to_dot_kwargs)
    if fmt in _TEXT_FORMATS:
        _atomic_write(path, source.encode("utf-8"))
        return path
    _atomic_write(path, _run_dot(source, fmt))
    return path


def _run_dot(source: str, fmt: str) -> bytes:
    dot = shutil.which("dot")
    if dot is None:
        raise RuntimeError(
            "rendering needs the Graphviz 'dot' program on PATH; install Graphviz "
            "(https://graphviz.org/download/, e.g. 'apt install graphviz' or "
            "'brew install graphviz'), or write the DOT source to a .dot file instead"
        )
    proc = subprocess.run(
        [dot, f"-T{fmt}"], input=source.encode("utf-8"), capture_output=True, check=False
    )
    if proc.returncode != 0 or not proc.stdout:
        message = proc.stderr.decode("utf-8", "replace").strip() or "no output"
        raise RuntimeError(f"Graphviz dot -T{fmt} failed (exit {proc.returncode}): {message}")
    return proc.stdout


# ------------------------------------------------------------------------------------ networkx
def to_networkx(tree: Tree) -> networkx.DiGraph:
    """The tree as a :class:`networkx.DiGraph` on node ids, edges parent -> child.

    Node attributes: ``visits``, ``q`` (NaN when unvisited), ``prior``, ``score``, ``depth``,
    ``action``, ``to_play``, ``terminal``, ``proven``.
    """
    try:
        import networkx as nx
    except ImportError as exc:
        raise ImportError(f"to_networkx needs networkx: {_EXTRA_HINT}") from exc
    if not isinstance(tree, Tree):
        raise TypeError(f"to_networkx expects a Tree, got {type(tree).__name__}")
    n = tree.num_nodes
    visits = tree.visits[:n].tolist()
    value_sum = tree.value_sum[:n].tolist()
    prior = tree.prior[:n].tolist()
    score = tree.score[:n].tolist()
    depth = tree.depth[:n].tolist()
    to_play = tree.to_play[:n].tolist()
    terminal = tree.terminal[:n].tolist()
    proven = tree.proven[:n].tolist()
    graph = nx.DiGraph()
    graph.add_nodes_from(
        (
            i,
            {
                "visits": visits[i],
                "q": value_sum[i] / visits[i] if visits[i] > 0 else math.nan,
                "prior": prior[i],
                "score": score[i],
                "depth": depth[i],
                "action": tree.actions[i],
                "to_play": to_play[i],
                "terminal": terminal[i],
                "proven": proven[i],
            },
        )
        for i in range(n)
    )
    parents = tree.parent[:n].tolist()
    graph.add_edges_from((parents[i], i) for i in range(1, n))
    return graph
