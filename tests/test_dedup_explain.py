"""itkit dedup --explain: the pair of a --report line side by side, shared shingles highlighted, its scores."""

from __future__ import annotations

import json
import random

import pytest
from conftest import invoke
from rich.console import Console
from test_dedup_cli import RECORDS
from test_dedup_common import PREAMBLE, QUESTIONS, TOPICS

from itkit.cli.explain import print_explanation
from itkit.dedup import DedupOptions
from itkit.dedup.explain import COMMON, SHARED, Explanation, Note, explain_file


@pytest.fixture
def data(tmp_path):
    path = tmp_path / "data.json"
    path.write_text(json.dumps(RECORDS), encoding="utf-8")
    return path


def explain(runner, data, *args):
    result = invoke(runner, "dedup", data, "--near", "--rouge", *args)
    assert result.exit_code == 0, result.stderr
    return result


def test_explains_a_removal_from_the_report(runner, data, tmp_path):
    report = tmp_path / "r.jsonl"
    invoke(runner, "dedup", data, "-o", tmp_path / "o.json", "--near", "--rouge", "--report", report)
    lines = {json.loads(x)["index"]: json.loads(x) for x in report.read_text().splitlines()}
    near = lines[3]
    result = explain(runner, data, "--explain", "3")
    out = result.stdout
    flat = " ".join(out.split())
    assert flat.startswith("record 3 (id b-near) was removed by the near stage as a duplicate of record 2 (id b) ")
    assert "removed: record 3, id b-near" in out and "kept: record 2, id b" in out
    assert f"true Jaccard {near['score']:.3f} (17 of 21 word 2-gram shingles shared), MinHash" in flat
    assert f"estimate {near['estimate']:.3f}; threshold 0.8" in flat
    assert '"five short", "in five"' in out and '"four short", "in four"' in out
    assert all(len(line) <= 80 for line in out.splitlines())  # (the runner's terminal is 80 columns wide)

    as_json = json.loads(explain(runner, data, "--explain", "b-near", "--json").stdout)
    assert as_json["stage"] == "near" and as_json["score"] == as_json["jaccard"] == near["score"]
    assert as_json["estimate"] == near["estimate"] and as_json["kept"]["id"] == "b"
    assert as_json["removed"]["only"] == ["five short", "in five"]

    rouge = json.loads(explain(runner, data, "--explain", "id:c-rouge", "--json").stdout)
    assert rouge["stage"] == "rouge" and rouge["rouge"] == rouge["score"] == lines[5]["score"]
    exact = json.loads(explain(runner, data, "--explain", "1", "--json").stdout)
    assert exact["stage"] == "exact" and exact["exact"] is True and exact["kept"]["index"] == 0


def test_kept_records_pairs_and_nothing_written(runner, data, tmp_path):
    out = tmp_path / "o.json"
    result = explain(runner, data, "--explain", "2", "-o", out, "--report", tmp_path / "r.jsonl")
    assert " ".join(result.stdout.split()) == ("record 2 (id b) was kept; 1 record(s) were removed as its duplicates: 3 (near); "
                                     "--explain one of them to see the pair")
    assert "--explain writes nothing" in result.stderr and not out.exists() and not (tmp_path / "r.jsonl").exists()
    assert "was kept, and no record was removed" in explain(runner, data, "--explain", "d").stdout

    pair = " ".join(explain(runner, data, "--explain", "0,6").stdout.split())
    assert pair.startswith("record 0 (id a): kept; record 6 (id d): kept")
    assert "true Jaccard 0.000 (0 of 8" in pair and "ROUGE-L F1 0.200" in pair
    assert json.loads(explain(runner, data, "--explain", "a,6", "--json").stdout)["a"]["id"] == "a"


@pytest.mark.parametrize("target, message", [
    ("99", "has no compared record 99"),
    ("nobody", "no record of"),
    ("1,2,3", "--explain takes N or N,M"),
    ("", "--explain takes N or N,M"),
])
def test_unknown_targets_are_one_line_usage_errors(runner, data, target, message):
    result = invoke(runner, "dedup", data, "--explain", target)
    assert result.exit_code == 2 and result.stdout == ""
    (line,) = result.stderr.strip().splitlines()
    assert message in line


def test_explain_uses_the_same_settings_as_the_run(runner, data, tmp_path):
    # without --near the same record is kept; with --on-regex a record it does not match was never compared
    result = invoke(runner, "dedup", data, "--explain", "3")
    assert result.exit_code == 0 and "was kept" in result.stdout
    result = invoke(runner, "dedup", data, "--on-regex", "poem (.*)", "--explain", "0")
    assert " ".join(result.stdout.split()) == "record 0 was kept without being compared (--on-regex did not match)"
    result = invoke(runner, "dedup", data, "--on-regex", "(", "--explain", "0")
    assert result.exit_code == 2 and "--on-regex" in result.stderr


MIDDLE = "Always cite the Straße, café or 東京 source you used in the final answer"
SUFFIX = "Answer in English, and keep it short please!"


def toolformer_with_copies() -> list[str]:
    """A preamble, a repeated middle sentence and a suffix around different questions; a few real copies."""
    texts = [f"{PREAMBLE} Question: Find information about {t}. {MIDDLE}. Why? {SUFFIX}" for t in TOPICS]
    texts += [f"{PREAMBLE} Question: {q} {MIDDLE}! {SUFFIX}" for q in QUESTIONS]
    rng = random.Random(3)
    for i in rng.sample(range(len(TOPICS)), 8):  # one word changed: real near duplicates
        texts.append(f"{PREAMBLE} Question: Find some information about {TOPICS[i]}. {MIDDLE}. Why? {SUFFIX}")
    return texts


def test_highlights_mirror_the_near_stage(tmp_path):
    rows = [{"id": f"r{i}", "instruction": t, "input": "", "output": "x"} for i, t in enumerate(toolformer_with_copies())]
    data, report = tmp_path / "t.json", tmp_path / "r.jsonl"
    data.write_text(json.dumps(rows), encoding="utf-8")
    from itkit.dedup import dedup_file

    options = DedupOptions(near=0.5)
    dedup_file(str(data), str(tmp_path / "o.json"), options=options, report=str(report))
    removals = [json.loads(x) for x in report.read_text().splitlines()]
    assert len(removals) >= 6 and {r["stage"] for r in removals} == {"near"}
    for r in removals:  # the explanation's shingle sets are the ones the stage compared
        e = explain_file(str(data), str(r["index"]), options=options)
        assert isinstance(e, Explanation) and e.removal is not None and e.b.row == r["kept_index"]
        assert e.jaccard == pytest.approx(r["score"], abs=1e-12)
    e = explain_file(str(data), "60", options=options)
    kinds = {p.kind for p in e.a.pieces}
    assert {COMMON, SHARED} <= kinds
    common = "".join(p.text for p in e.a.pieces if p.kind == COMMON)
    assert common.startswith("Your task is to answer") and "Question" in common
    assert "".join(p.text for p in e.a.pieces) == e.a.text  # nothing lost or added

    console = Console(record=True, width=80, force_terminal=True, color_system="standard")
    print_explanation(e, console)
    html = console.export_html(inline_styles=True, clear=False)
    assert "font-weight: bold" in html and "color: #008000" in html  # shared shingles: bold green
    shown = console.export_text()
    assert "left out prefix: your task is to answer" in " ".join(shown.split())
    assert "only in 60 \"find some\", \"some information\"" in " ".join(shown.split())
    assert all(len(x) <= 80 for x in shown.splitlines())


def test_note_for_a_record_that_is_not_compared(tmp_path):
    rows = [{"id": "e", "instruction": "Hi", "input": "", "output": ""}, {"id": "f", "instruction": "Hi", "input": "", "output": ""}]
    data = tmp_path / "d.json"
    data.write_text(json.dumps(rows), encoding="utf-8")
    found = explain_file(str(data), "f", on="output")
    assert isinstance(found, Note) and found.message == "record 1 was kept without being compared (empty text)"
