"""Regression: rows parked by dedup must come back exactly as written (shared JSON keys, nested lists)."""

from __future__ import annotations

import json

from conftest import invoke


def test_dedup_gives_back_rows_with_repeated_keys_unchanged(tmp_path, runner):
    rows = [
        {"instruction": "a", "input": "", "output": "x"},
        {"instruction": "b", "input": "", "output": "y", "metadata": {"provenance": [{"method": "m1"}, {"method": "m2"}]}},
        {"instruction": "c", "input": "", "output": "z", "metadata": {"provenance": [{"method": "m1", "round": 1}]}},
    ]
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "out.jsonl"
    result = invoke(runner, "dedup", src, "-o", out, "-q")
    assert result.exit_code == 0, result.stderr
    written = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert written == [{"id": f"in-{i}", **row} for i, row in enumerate(rows)]
