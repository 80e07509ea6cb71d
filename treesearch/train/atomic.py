"""Files written whole or not at all: write a temporary file beside the target, flush it to
disk, then rename it over the target (``os.replace`` is atomic on POSIX and Windows).

A training loop killed at any instant therefore leaves either the old file or the new one,
never a torn one; this is what lets every loop in :mod:`treesearch.train` resume after a kill.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

__all__ = [
    "atomic_file",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_jsonl",
    "atomic_write_text",
    "read_json",
    "read_jsonl",
]


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; on a clean exit it is synced and renamed onto
    ``path``, on an exception it is removed and ``path`` is untouched."""
    if mode not in ("w", "wb"):
        raise ValueError(f"mode must be 'w' or 'wb', not {mode!r}")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        encoding = None if "b" in mode else "utf-8"
        with os.fdopen(fd, mode, encoding=encoding) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600 files; these are ordinary data files
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes, not {type(data).__name__}")
    with atomic_file(path, "wb") as fh:
        fh.write(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, not {type(text).__name__}")
    with atomic_file(path, "w") as fh:
        fh.write(text)


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented JSON atomically; NaN and infinity are refused (``ValueError``),
    since they are not JSON and would not read back in other tools."""
    text = json.dumps(obj, indent=2, sort_keys=True, allow_nan=False)
    atomic_write_text(path, text + "\n")


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read a JSON file; a torn or invalid one raises ``ValueError`` naming the path."""
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from exc


def atomic_write_jsonl(
    path: str | os.PathLike[str], records: Iterable[Any], *, sort_keys: bool = False
) -> int:
    """Write ``records`` as JSON lines (one compact record a line) atomically; NaN and infinity
    are refused (``ValueError``). Returns the number of records."""
    lines = [json.dumps(r, allow_nan=False, sort_keys=sort_keys) + "\n" for r in records]
    atomic_write_text(path, "".join(lines))
    return len(lines)


def read_jsonl(
    path: str | os.PathLike[str],
    parse: Callable[[Any], Any] | None = None,
    *,
    what: str = "record",
) -> list[Any]:
    """Read the records of a JSON-lines file (blank lines skipped), each passed through
    ``parse`` if given; a line that is not JSON, or that ``parse`` refuses (``ValueError``,
    ``TypeError``, ``KeyError``), raises ``ValueError`` naming the path, line and ``what``."""
    out = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                out.append(record if parse is None else parse(record))
            except (ValueError, TypeError, KeyError) as exc:
                raise ValueError(f"{path}:{lineno}: bad {what}: {exc}") from exc
    return out
