"""Atomic writes: the target holds the old content or the new, never a torn file."""

from __future__ import annotations

import json

import pytest

from treesearch.train.atomic import (
    atomic_file,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_jsonl,
    atomic_write_text,
    read_json,
    read_jsonl,
)


def test_round_trips_and_creates_folders(tmp_path):
    atomic_write_json(tmp_path / "a" / "b.json", {"x": [1, 2]})
    assert read_json(tmp_path / "a" / "b.json") == {"x": [1, 2]}
    atomic_write_text(tmp_path / "t.txt", "héllo")
    assert (tmp_path / "t.txt").read_text(encoding="utf-8") == "héllo"
    atomic_write_bytes(tmp_path / "b.bin", b"\x00\x01")
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"


def test_a_failed_write_leaves_the_old_file_and_no_temp(tmp_path):
    target = tmp_path / "state.json"
    atomic_write_json(target, {"iteration": 1})
    with pytest.raises(RuntimeError), atomic_file(target, "w") as fh:
        fh.write('{"iteration": 2')
        raise RuntimeError("killed mid-write")
    assert json.loads(target.read_text()) == {"iteration": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_bad_input_is_refused(tmp_path):
    with pytest.raises(ValueError):
        atomic_write_json(tmp_path / "n.json", {"x": float("nan")})
    assert not (tmp_path / "n.json").exists()
    with pytest.raises(TypeError, match="bytes"):
        atomic_write_bytes(tmp_path / "x", "text")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="str"):
        atomic_write_text(tmp_path / "x", b"bytes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="mode"), atomic_file(tmp_path / "x", "a"):
        pass
    (tmp_path / "torn.json").write_text('{"a": ')
    with pytest.raises(ValueError, match=r"torn\.json"):
        read_json(tmp_path / "torn.json")


def test_jsonl_round_trips_one_compact_record_a_line(tmp_path):
    records = [{"b": 1, "a": [1.5, None]}, {"text": "x\ny"}]
    assert atomic_write_jsonl(tmp_path / "r.jsonl", records) == 2
    assert (tmp_path / "r.jsonl").read_text() == '{"b": 1, "a": [1.5, null]}\n{"text": "x\\ny"}\n'
    assert read_jsonl(tmp_path / "r.jsonl") == records
    atomic_write_jsonl(tmp_path / "s.jsonl", records[:1], sort_keys=True)
    assert (tmp_path / "s.jsonl").read_text() == '{"a": [1.5, null], "b": 1}\n'
    assert read_jsonl(tmp_path / "r.jsonl", lambda r: sorted(r)) == [["a", "b"], ["text"]]
    assert atomic_write_jsonl(tmp_path / "e.jsonl", iter(())) == 0
    assert read_jsonl(tmp_path / "e.jsonl") == []


def test_jsonl_names_the_bad_line(tmp_path):
    with pytest.raises(ValueError):
        atomic_write_jsonl(tmp_path / "n.jsonl", [{"x": float("inf")}])
    assert not (tmp_path / "n.jsonl").exists()
    (tmp_path / "bad.jsonl").write_text('{"a": 1}\n\n{"a": \n')
    with pytest.raises(ValueError, match=r"bad\.jsonl:3: bad record"):
        read_jsonl(tmp_path / "bad.jsonl")
    (tmp_path / "odd.jsonl").write_text('{"a": 1}\n{"b": 2}\n')
    with pytest.raises(ValueError, match=r"odd\.jsonl:2: bad row: 'a'"):
        read_jsonl(tmp_path / "odd.jsonl", lambda r: r["a"], what="row")
