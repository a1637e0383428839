"""itkit report: the data the page is built from (counts equal the summaries', samples are real records)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import ROOT, SAMPLES, SHARED, invoke

from itkit.report import collect, render

os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(SHARED / "tiktoken"))

QUICKSTART = ROOT / "data_samples" / "recipes" / "quickstart.yaml"


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def section(data: dict, kind: str) -> dict:
    found = [s for s in data["sections"] if s["kind"] == kind]
    assert len(found) == 1, [s["kind"] for s in data["sections"]]
    return found[0]


def text_of(segments: list) -> str:
    return "".join(text for _, text in segments)


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory) -> Path:
    from typer.testing import CliRunner

    run_dir = tmp_path_factory.mktemp("report") / "run"
    result = invoke(CliRunner(), "run", QUICKSTART, "--run-dir", run_dir)
    assert result.exit_code == 0, result.stderr
    return run_dir


@pytest.fixture(scope="module")
def data(quickstart) -> dict:
    return collect(quickstart)


def test_the_funnel_has_the_run_summary_counts(quickstart, data):
    steps = read_json(quickstart / "run_summary.json")["steps"]
    assert [r["step"] for r in data["funnel"]] == [s["step"] for s in steps]
    for row, step in zip(data["funnel"], steps):
        assert (row["records_in"], row["records_out"], row["removed"]) == (step["records_in"], step["records_out"], step["removed"])
    totals = data["totals"]
    assert totals["records_in"] == 87 and totals["outputs"] == {"lft": 40, "sft": 73}
    assert totals["removed"] == 87 - 73  # filter and dedup; the export's LFT quality rule is not a removal from the data
    assert [s["kind"] for s in data["sections"]] == ["filter", "dedup", "export"]


def test_filter_examples_are_the_removed_records_with_their_rule(quickstart, data):
    s = section(data, "filter")
    summary = read_json(quickstart / "01-filter" / "summary.json")
    assert {r["rule"]: r["removed"] for r in s["rules"]} == summary["removed_by_rule"]
    removed = {row["id"]: row for row in read_jsonl(quickstart / "01-filter" / "removed.jsonl")}
    kept = {row["id"] for row in read_jsonl(quickstart / "01-filter" / "output.jsonl")}
    shown = 0
    for rule in s["rules"]:
        assert len(rule["examples"]) == min(rule["removed"], 5)
        for example in rule["examples"]:
            row = removed[example["id"]]
            assert row["rule"] == rule["rule"] and example["reason"] == row["reason"] and example["index"] == row["index"]
            turns = example["record"]["turns"]
            users = [t["content"] for t in turns if t["role"] == "user"]
            answers = [t["content"] for t in turns if t["role"] == "assistant"]
            assert users[-1] == row["record"]["instruction"] and answers[-1] == row["record"]["output"]
            assert example["id"] not in kept
            shown += 1
    assert shown == len(removed) == s["table"]["total"] == len(s["table"]["rows"])


def test_dedup_pairs_point_at_the_removed_record_and_its_survivor(quickstart, data):
    s = section(data, "dedup")
    summary = read_json(quickstart / "02-dedup" / "summary.json")
    assert {st["stage"]: st["removed"] for st in s["stages"]} == summary["removed"]
    source = read_jsonl(quickstart / "01-filter" / "output.jsonl")  # the dedup's input, by row
    kept = {row["id"] for row in read_jsonl(quickstart / "02-dedup" / "output.jsonl")}
    report = {(r["index"], r["kept_index"]): r for r in read_jsonl(quickstart / "02-dedup" / "removed.jsonl")}
    pairs = [p for st in s["stages"] for p in st["pairs"]]
    assert len(pairs) == sum(summary["removed"].values()) == 5
    for pair in pairs:
        gone, stay = pair["removed"], pair["kept"]
        row = report[(gone["index"], stay["index"])]
        assert (gone["id"], stay["id"], pair["stage"], pair["score"]) == (row["id"], row["kept_id"], row["stage"], row["score"])
        assert source[gone["index"]]["id"] == gone["id"] and source[stay["index"]]["id"] == stay["id"]
        assert gone["id"] not in kept and stay["id"] in kept
        assert text_of(gone["prompt"]) == source[gone["index"]]["instruction"] + _input(source[gone["index"]])
        assert text_of(stay["response"]) == source[stay["index"]]["output"]
        for side in (gone, stay):  # turn by turn, in order (the last exchange: the instruction with its input, the answer)
            record = source[side["index"]]
            assert [text_of(t["segments"]) for t in side["turns"]][-2:] == [record["instruction"] + _input(record), record["output"]]
    exact = next(p for p in pairs if p["stage"] == "exact")
    assert exact["shared"]["prompt"] == 1.0 and [k for k, _ in exact["removed"]["prompt"]] == ["same"]
    near = next(st for st in s["stages"] if st["stage"] == "near")
    assert near["scores"] is not None and sum(near["scores"]["series"]["near"]) == near["removed"]


def _input(row: dict) -> str:
    return ("\n\n" + row["input"]) if row.get("input") else ""


def test_training_lengths_are_the_exports_token_counts(quickstart, data):
    s = section(data, "export")
    summary = read_json(quickstart / "03-export" / "summary.json")
    assert s["unit"] == "tokens (cl100k_base)"
    for st in s["sets"]:
        mode = summary["modes"][st["mode"]]
        assert (st["records"], st["train"], st["val"]) == (mode["records"], mode["train"], mode["val"])
        assert st["categories"] == mode["categories"]
        for split in ("train", "val"):
            mine, theirs = st["length_stats"][split], mode["tokens"][split]
            assert {k: mine[k] for k in ("count", "min", "max", "median")} == {k: theirs[k] for k in ("count", "min", "max", "median")}
            assert sum(st["lengths"]["series"][split]) == theirs["count"]
    compare = s["compare"]
    assert sum(compare["lengths"]["series"]["lft"]) == 40 and sum(compare["lengths"]["series"]["sft"]) == 73
    assert sum(r["subset"] for r in compare["categories"]) == 40 and sum(r["whole"] for r in compare["categories"]) == 73


def test_the_recipe_option_writes_the_report_and_run_prints_it(quickstart):
    page = (quickstart / "report.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "itkit run" in page and "quickstart" in page


def test_report_command_writes_beside_the_target_and_replaces_only_its_own_files(runner, quickstart, tmp_path):
    out = tmp_path / "page.html"
    result = invoke(runner, "report", quickstart, "-o", out)
    assert result.exit_code == 0, result.stderr
    assert f"report: {out}" in result.stderr
    again = invoke(runner, "report", quickstart, "-o", out, "-q")
    assert again.exit_code == 0 and again.stderr == ""
    precious = tmp_path / "notes.html"
    precious.write_text("<html>my notes</html>", encoding="utf-8")
    refused = invoke(runner, "report", quickstart, "-o", precious)
    assert refused.exit_code == 2 and "not a report itkit wrote" in refused.stderr
    assert precious.read_text(encoding="utf-8") == "<html>my notes</html>"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.html", "page.html"]  # no temp file left
    folder = invoke(runner, "report", quickstart, "-o", tmp_path)
    assert folder.exit_code == 2 and "is a folder" in folder.stderr


def test_a_non_report_file_in_the_run_folder_stops_the_run_before_it_starts(runner, tmp_path):
    run_dir = tmp_path / "run"
    assert invoke(runner, "run", QUICKSTART, "--run-dir", run_dir, "-q").exit_code == 0  # an itkit run folder
    (run_dir / "report.html").write_text("mine", encoding="utf-8")  # ...whose report.html the user replaced
    before = sorted(p.name for p in run_dir.iterdir())
    result = invoke(runner, "run", QUICKSTART, "--run-dir", run_dir, "--from-step", "filter", "-q")
    assert result.exit_code == 2 and "not a report itkit wrote" in result.stderr
    assert (run_dir / "report.html").read_text(encoding="utf-8") == "mine"
    assert sorted(p.name for p in run_dir.iterdir()) == before


@pytest.mark.parametrize("target", ["", "nothing-here", "file.txt", "bad.json"])
def test_a_target_that_is_not_itkit_output_is_one_line_and_exit_2(runner, tmp_path, target):
    (tmp_path / "file.txt").write_text("hello", encoding="utf-8")
    (tmp_path / "bad.json").write_text('{"a": 1}', encoding="utf-8")
    result = invoke(runner, "report", tmp_path / target, "-o", tmp_path / "out.html")
    assert result.exit_code == 2, result.stderr
    assert result.stderr.startswith("itkit: error: ") and result.stderr.count("\n") == 1
    assert not (tmp_path / "out.html").exists()


# ---------------------------------------------------------------------------
# single commands: a summary file and its side files
# ---------------------------------------------------------------------------


def test_filter_and_dedup_json_summaries_with_their_report_files(runner, tmp_path):
    src = SAMPLES / "alpaca.json"
    result = invoke(runner, "filter", src, "-o", tmp_path / "clean.jsonl", "--report", tmp_path / "removed.jsonl", "--json")
    assert result.exit_code == 0, result.stderr
    (tmp_path / "filter.json").write_text(result.stdout, encoding="utf-8")
    data = collect(tmp_path / "filter.json")
    s = section(data, "filter")
    summary = json.loads(result.stdout)
    assert {r["rule"]: r["removed"] for r in s["rules"]} == summary["removed_by_rule"]
    assert data["funnel"][0]["records_in"] == summary["rows"] and data["funnel"][0]["records_out"] == summary["written"]
    assert s["table"]["total"] == summary["removed"] > 0

    result = invoke(runner, "dedup", tmp_path / "clean.jsonl", "-o", tmp_path / "unique.jsonl", "--near",
                    "--report", tmp_path / "pairs.jsonl", "--json")
    assert result.exit_code == 0, result.stderr
    (tmp_path / "dedup.json").write_text(result.stdout, encoding="utf-8")
    s = section(collect(tmp_path / "dedup.json"), "dedup")
    clean = read_jsonl(tmp_path / "clean.jsonl")
    pairs = [p for st in s["stages"] for p in st["pairs"]]
    report = {r["index"]: r for r in read_jsonl(tmp_path / "pairs.jsonl")}
    per_stage = [sum(1 for r in report.values() if r["stage"] == st["stage"]) for st in s["stages"]]
    assert pairs and len(pairs) == sum(min(n, 6) for n in per_stage)
    for p in pairs:
        row = report[p["removed"]["index"]]
        assert (p["removed"]["id"], p["kept"]["id"], p["kept"]["index"]) == (row["id"], row["kept_id"], row["kept_index"])
        assert text_of(p["removed"]["prompt"]).startswith(clean[p["removed"]["index"]]["instruction"])
        assert text_of(p["kept"]["response"]) == clean[p["kept"]["index"]]["output"]

    out = invoke(runner, "report", tmp_path / "dedup.json")
    assert out.exit_code == 0 and (tmp_path / "dedup.report.html").is_file()


def test_an_export_folder_on_its_own(quickstart):
    data = collect(quickstart / "03-export" / "output")
    s = section(data, "export")
    assert [st["mode"] for st in s["sets"]] == ["lft", "sft"] and data["funnel"][0]["outputs"] == {"lft": 40, "sft": 73}


def test_missing_keys_and_bad_lines_leave_parts_out_without_failing(quickstart, tmp_path):
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(quickstart, run_dir)
    (run_dir / "report.html").unlink()
    summary = read_json(run_dir / "02-dedup" / "summary.json")
    for key in ("removed", "stages", "on"):
        summary.pop(key)
    (run_dir / "02-dedup" / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    with (run_dir / "01-filter" / "removed.jsonl").open("a", encoding="utf-8") as fh:
        fh.write("not json\n[1, 2]\n")
    export = read_json(run_dir / "03-export" / "summary.json")
    export["modes"]["lft"] = {"records": 40}
    (run_dir / "03-export" / "summary.json").write_text(json.dumps(export), encoding="utf-8")
    (run_dir / "03-export" / "output" / "sft" / "lineage.jsonl").unlink()
    data = collect(run_dir)
    assert sum(st["removed"] for st in section(data, "dedup")["stages"]) == 5  # counted from the report file
    assert section(data, "filter")["table"]["total"] == 9
    sets = {st["mode"]: st for st in section(data, "export")["sets"]}
    assert sets["lft"]["categories"] == {} and sets["sft"]["lengths"] is None
    assert "<svg" in render(data)


def test_samples_stay_small_however_many_records_were_removed(runner, tmp_path):
    rows = [{"instruction": f"Task number {i}", "input": "", "output": "" if i % 2 else f"answer {i}"} for i in range(2000)]
    src = tmp_path / "big.json"
    src.write_text(json.dumps(rows), encoding="utf-8")
    result = invoke(runner, "filter", src, "-o", tmp_path / "clean.jsonl", "--report", tmp_path / "removed.jsonl", "--json")
    (tmp_path / "filter.json").write_text(result.stdout, encoding="utf-8")
    data = collect(tmp_path / "filter.json")
    s = section(data, "filter")
    empty = next(r for r in s["rules"] if r["rule"] == "empty")
    assert empty["removed"] == 1000 and len(empty["examples"]) == 5
    assert s["table"]["total"] == 1000 and len(s["table"]["rows"]) == 300
    again = section(collect(tmp_path / "filter.json"), "filter")
    assert again["table"]["rows"] == s["table"]["rows"]  # the same sample every time


def test_simplify_fact_checks_and_flagged_records_from_the_summary_and_metadata(tmp_path):
    """The simplify summary's ``simplify`` block and ``metadata.simplify_violations`` (issue 16's names)."""
    rows = [
        {"id": "a", "instruction": "Add 2 and 3.", "output": "Two plus three is five, so 5.",
         "metadata": {"original_output": "If we add two and three we get five. The answer is 5.",
                      "provenance": [{"method": "simplify", "parent_id": "a"}]}},
        {"id": "b", "instruction": "When?", "output": "In 1999 it began, long ago, before the year 2000.",
         "metadata": {"simplify_violations": {"numbers": ["2001"]}}},  # kept its original: no simplify step
    ]
    out = tmp_path / "simple.jsonl"
    out.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    block = {
        "length_unit": "tokens", "length_ratio": {"median": 0.55, "mean": 0.55, "min": 0.55, "max": 0.55},
        "ratio_distribution": [{"range": "[0.5, 0.75)", "records": 1}, {"range": "1", "records": 1}],
        "violations_first_try": {"numbers": 2, "answer": 1}, "violations_final": {"numbers": 1, "answer": 0},
        "retried": 2, "fixed_by_retry": 1, "kept_original": 1, "flagged": 0, "failed_checks": 0,
        "on_violation": "keep-original",
    }
    summary = {"command": "simplify", "output": str(out), "parameters": {"src": str(tmp_path / "gone.jsonl")},
               "counts": {"read": 2, "simplified": 1, "written": 2}, "engine": {"requests": 3}, "simplify": block}
    (tmp_path / "simple.jsonl.summary.json").write_text(json.dumps(summary), encoding="utf-8")
    data = collect(tmp_path / "simple.jsonl.summary.json")
    s = section(data, "simplify")
    assert s["fact_checks"]["violations"] == [("numbers", 2, 1), ("answer", 1, 0)]
    assert s["fact_checks"]["distribution"] == [("[0.5, 0.75)", 1), ("1", 1)]
    assert s["flagged"]["total"] == 1 and s["flagged"]["rows"][0]["id"] == "b" and "numbers: 2001" in s["flagged"]["rows"][0]["flags"]
    assert [p["id"] for p in s["pairs"]] == ["a"] and s["ratio"]["stats"]["count"] == 1
    page = render(data)
    assert "Fact checks" in page and "after the retry" in page and "numbers: 2001" in page


def test_record_text_cannot_inject_markup(runner, tmp_path):
    rows = [{"instruction": '<script>alert("x")</script><img src=http://evil.example/x.png>', "input": "", "output": ""}]
    src = tmp_path / "evil.json"
    src.write_text(json.dumps(rows), encoding="utf-8")
    result = invoke(runner, "filter", src, "-o", tmp_path / "clean.jsonl", "--report", tmp_path / "removed.jsonl", "--json")
    (tmp_path / "filter.json").write_text(result.stdout, encoding="utf-8")
    page = render(collect(tmp_path / "filter.json"))
    assert "<script>alert" not in page and "<img" not in page and "&lt;script&gt;alert" in page


def test_score_distributions_of_both_sets_when_records_carry_scores(runner, tmp_path):
    rows = [{"instruction": f"Write about topic {i} in some detail", "input": "", "output": f"An answer about topic {i}.",
             "quality_score": round(1 + (i % 5) * 0.9, 1)} for i in range(60)]
    src = tmp_path / "data.json"
    src.write_text(json.dumps(rows), encoding="utf-8")
    result = invoke(runner, "export", src, "-o", tmp_path / "out", "--mode", "both", "--target", "trl", "--lft-size", "20", "-q")
    assert result.exit_code == 0, result.stderr
    s = section(collect(tmp_path / "out"), "export")
    hist = s["scores"]["quality_score"]
    assert {mode: sum(counts) for mode, counts in hist["series"].items()} == {"lft": 20, "sft": 60}
    assert hist["edges"][0] <= 1.0 and hist["edges"][-1] >= 4.6
