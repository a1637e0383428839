"""itkit report on the LLM steps (against the local test server): simplify, Evol-Instruct, Orca, Self-Instruct."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import test_run_llm as llm
from conftest import SAMPLES, invoke
from llm_server import TEST_API_KEY, FakeLLMServer

from itkit.report import collect, render

RECIPE = """
name: llm-report
sources:
  - path: SAMPLES/seed_tasks.jsonl
    format: seed_tasks
llm:
  model: teacher
  max_retries: 1
  concurrency: 4
  seed: 7
steps:
  - self-instruct: {num: 6, batch_size: 2}
  - dedup: {near: true}
  - simplify: {keep_original: false}
  - evol-instruct: {rounds: 2, ops: [deepening, concretizing], keep: all, eliminated: true}
  - orca: {assign: uniform}
export:
  target: [trl]
  lft_size: 5
report: true
"""


def teacher(body: dict) -> str:
    """The shared teacher, except that the equality check finds round-2 rewrites of classification tasks equal to their parents."""
    text = body["messages"][-1]["content"]
    if llm.kind(body) == "equality" and text.count("Answer in exactly three short bullet points.") >= 3 and "Classify" in text:
        return "Equal"
    return llm.teacher(body)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    from typer.testing import CliRunner

    folder = tmp_path_factory.mktemp("llm-report")
    recipe = folder / "recipe.yaml"
    recipe.write_text(RECIPE.replace("SAMPLES", str(SAMPLES)), encoding="utf-8")
    mp = pytest.MonkeyPatch()
    with FakeLLMServer(api_key=TEST_API_KEY, reply=teacher) as server:
        mp.setenv("OPENAI_BASE_URL", server.base_url)
        mp.setenv("OPENAI_API_KEY", TEST_API_KEY)
        mp.setenv("ITKIT_HOME", str(folder / "home"))
        try:
            result = invoke(CliRunner(), "run", recipe, "--run-dir", folder / "run", "-q")
        finally:
            mp.undo()
    assert result.exit_code == 0, result.stderr
    return folder / "run"


@pytest.fixture(scope="module")
def data(run_dir) -> dict:
    return collect(run_dir)


def section(data: dict, kind: str) -> dict:
    return next(s for s in data["sections"] if s["kind"] == kind)


def summary(run_dir: Path, step: str) -> dict:
    return json.loads((run_dir / step / "summary.json").read_text(encoding="utf-8"))


def test_llm_steps_in_the_funnel_with_requests_and_tokens(run_dir, data):
    rows = {r["step"]: r for r in data["funnel"]}
    for step in ("01-self-instruct", "03-simplify", "04-evol-instruct", "05-orca"):
        engine = summary(run_dir, step)["engine"]
        assert rows[step]["requests"] == engine["requests"] > 0
        assert rows[step]["tokens"] == {"prompt": engine["tokens"]["prompt"], "completion": engine["tokens"]["completion"]}
    assert data["totals"]["requests"] == sum(r["requests"] for r in rows.values())
    assert (run_dir / "report.html").is_file()


def test_simplify_pairs_are_the_input_and_output_responses_with_a_word_diff(run_dir, data):
    s = section(data, "simplify")
    before = {r["id"]: r for r in read_jsonl(run_dir / "02-dedup" / "output.jsonl")}
    after = {r["id"]: r for r in read_jsonl(run_dir / "03-simplify" / "output.jsonl")}
    assert s["originals"] == "read from the step's input by id"  # keep_original: false
    assert len(s["pairs"]) == min(10, len(after))
    for pair in s["pairs"]:
        original = "".join(t for k, t in pair["original"] if k != "ins")
        simplified = "".join(t for k, t in pair["simplified"] if k != "del")
        assert original == before[pair["id"]]["output"] and simplified == after[pair["id"]]["output"]
    assert s["ratio"]["stats"]["count"] == summary(run_dir, "03-simplify")["counts"]["simplified"]
    assert sum(s["ratio"]["histogram"]["series"]["ratio"]) == s["ratio"]["stats"]["count"]


def test_evol_lineages_follow_parent_round_1_round_2_and_count_eliminations(run_dir, data):
    s = section(data, "evol-instruct")
    evol = summary(run_dir, "04-evol-instruct")["evol_instruct"]
    assert s["eliminated_by_rule"] == evol["eliminated_by_rule"] and s["by_operation"] == evol["by_operation"]
    assert evol["evolutions"]["eliminated"] > 0
    inputs = {r["id"]: r for r in read_jsonl(run_dir / "03-simplify" / "output.jsonl")}
    outputs = {r["id"]: r for r in read_jsonl(run_dir / "04-evol-instruct" / "output.jsonl")}
    eliminated = read_jsonl(run_dir / "04-evol-instruct" / "eliminated.jsonl")
    assert s["lineages"]
    for lineage in s["lineages"]:
        source, *rest = lineage["steps"]
        assert source["id"] == lineage["root"] and source["prompt"].startswith(inputs[lineage["root"]]["instruction"])
        survived = [g for g in rest if g["status"] == "survived"]
        assert [g["round"] for g in survived] == list(range(1, len(survived) + 1))
        for g in survived:  # keep: all writes every round: each one's text is that record's
            assert outputs[g["id"]]["instruction"] == g["prompt"]
        gone = [g for g in rest if g["status"] == "eliminated"]
        assert len(gone) == sum(1 for e in eliminated if e["id"] == lineage["root"])
    examples = s["eliminated_examples"]["no_information_gain"]
    assert examples and all(x["id"] in inputs for x in examples)


def test_orca_distributions_equal_the_summary_and_texts_are_the_records_system_messages(run_dir, data):
    s = section(data, "orca")
    orca = summary(run_dir, "05-orca")["orca"]
    assert {m["number"]: m["records"] for m in s["system_messages"]} == orca["system_messages"]
    assert s["task_types"] == orca["task_types"]
    records = read_jsonl(run_dir / "05-orca" / "output.jsonl")
    for m in s["system_messages"]:
        assert any(r.get("system", "") == m["text"] and str(r["metadata"]["orca_system_message"]) == m["number"] for r in records)


def test_self_instruct_tasks_with_their_most_similar_seeds(run_dir, data):
    s = section(data, "self-instruct")
    tasks = {r["id"]: r for r in read_jsonl(run_dir / "01-self-instruct" / "output.jsonl.tasks.jsonl")}
    assert len(s["tasks"]) == len(tasks) == 6
    for task in s["tasks"]:
        row = tasks[task["id"]]
        assert task["instruction"] == row["instruction"]
        assert task["similar"] == [{"instruction": x["instruction"], "score": x["score"]} for x in row["most_similar"][:3]]
    assert sum(s["similarity"]["series"]["most similar"]) == 6
    assert s["filtered"] == summary(run_dir, "01-self-instruct")["counts"]["filtered"]


def test_a_single_commands_summary_shows_that_commands_part(run_dir, tmp_path):
    import shutil

    # simplify's OUT.summary.json as the command writes it, in a folder of its own
    for name in ("output.jsonl", "summary.json"):
        shutil.copy(run_dir / "03-simplify" / name, tmp_path / ("simple.jsonl" + ("" if name == "output.jsonl" else ".summary.json")))
    data = collect(tmp_path / "simple.jsonl.summary.json")
    assert [s["kind"] for s in data["sections"]] == ["simplify"] and data["kind"] == "command"
    s = data["sections"][0]
    assert s["ratio"]["stats"]["count"] == len(s["pairs"]) or s["ratio"]["stats"]["count"] >= len(s["pairs"])
    assert "Simplify" in render(data)


FAILING = """
name: failing
sources:
  - {path: SAMPLES/alpaca.json, format: alpaca}
llm: {model: teacher, max_retries: 0, concurrency: 2}
steps:
  - simplify: {}
report: true
"""


def test_failed_records_and_their_reasons_in_the_funnel(runner, tmp_path, monkeypatch):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(FAILING.replace("SAMPLES", str(SAMPLES)), encoding="utf-8")
    fails = lambda request, attempt: "empty" if "capital" in json.dumps(request.body or {}) else None  # noqa: E731
    with FakeLLMServer(api_key=TEST_API_KEY, reply=llm.teacher, faults=fails) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", TEST_API_KEY)
        result = invoke(runner, "run", recipe, "--run-dir", tmp_path / "run", "-q")
    assert result.exit_code == 3, result.stderr
    data = collect(tmp_path / "run")
    row = next(r for r in data["funnel"] if r["type"] == "simplify")
    failures = summary(tmp_path / "run", "01-simplify")["failures"]
    assert row["failed"] == failures["count"] > 0 and row["failure_reasons"] == failures["reasons"]
    failed = {r["id"]: r for r in read_jsonl(tmp_path / "run" / "01-simplify" / "failures.jsonl")}
    assert row["failure_examples"] and all(failed[x["id"]]["_itkit_failure"]["reason"] == x["reason"] for x in row["failure_examples"])
    page = (tmp_path / "run" / "report.html").read_text(encoding="utf-8")
    assert "finished, some records failed" in page and next(iter(failures["reasons"])) in page
