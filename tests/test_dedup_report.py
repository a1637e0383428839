"""--report lines people can read: the removed text and the text it duplicates, with stage, scores, ids, indices."""

from __future__ import annotations

import json

from conftest import invoke
from test_dedup_cli import LONG, RECORDS

from itkit.dedup.report import cut


def lines(path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


def test_report_lines_carry_both_texts(runner, tmp_path):
    data, out, report = tmp_path / "d.json", tmp_path / "o.json", tmp_path / "r.jsonl"
    data.write_text(json.dumps(RECORDS), encoding="utf-8")
    result = invoke(runner, "dedup", data, "-o", out, "--near", "--rouge", "--report", report, "-q")
    assert result.exit_code == 0, result.stderr
    got = lines(report)
    assert [(x["stage"], x["index"], x["id"], x["kept_index"], x["kept_id"], x["text"], x["kept_text"]) for x in got] == [
        ("exact", 1, "a-copy", 0, "a", "give three tips for staying HEALTHY.", "Give three tips for staying healthy."),
        ("near", 3, "b-near", 2, "b", cut(LONG.replace("four", "five"), 200), LONG),
        ("rouge", 5, "c-rouge", 4, "c", "Write a short poem about the sea.", "Write a poem about the sea."),
    ]
    assert got[1]["score"] >= 0.8 and "estimate" in got[1] and "estimate" not in got[0]

    result = invoke(runner, "dedup", data, "-o", out, "--near", "--report", report, "--report-chars", "12", "-q")
    assert result.exit_code == 0, result.stderr
    first = lines(report)[0]
    assert first["text"] == "give three\u2026" and first["kept_text"] == "Give three\u2026"
    assert len(first["text"]) <= 12

    result = invoke(runner, "dedup", data, "-o", out, "--report", report, "--report-chars", "0", "-q")
    assert result.exit_code == 0, result.stderr
    assert all("text" not in x and "kept_text" not in x for x in lines(report))


def test_cut_keeps_one_line():
    assert cut("a\nb   c", 10) == "a b c"
    assert cut("abcdefghij klm", 8) == "abcdefg\u2026"
    assert cut("x" * 5, 5) == "xxxxx"


def test_negative_report_chars_is_a_usage_error(runner, tmp_path):
    data = tmp_path / "d.json"
    data.write_text(json.dumps(RECORDS), encoding="utf-8")
    result = invoke(runner, "dedup", data, "-o", tmp_path / "o.json", "--report-chars", "-1")
    assert result.exit_code == 2
