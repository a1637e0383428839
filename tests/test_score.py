"""``itkit score`` end to end: the CLI, the real engine and SDK, the local OpenAI-compatible server; then
``filter --min-score``, ``stats`` and a recipe's ``score:`` step over what it wrote."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest

from conftest import SAMPLES, SHARED, invoke, read_failures
from llm_server import TEST_API_KEY, FakeLLMServer

from itkit.dataset import read_records
from itkit.records import META_SCORE_REASONS, META_SCORES

os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(SHARED / "tiktoken"))


def is_quality(body: dict) -> bool:
    return "### Response:" in body["messages"][-1]["content"]


def judge(body: dict) -> str:
    """Quality 4 with a reason; complexity 2 (or 5 for a question that asks for a proof)."""
    text = body["messages"][-1]["content"]
    if is_quality(body):
        return "Score: 4\nReason: Accurate and complete."
    return "Score: 5" if "prove" in text.lower() else "Score: 2\nReason: One step."


@pytest.fixture
def server():
    with FakeLLMServer(api_key=TEST_API_KEY, reply=judge) as fake:
        yield fake


def score(runner, server, *args):
    return invoke(runner, "score", *args, "--base-url", server.base_url, "--api-key", TEST_API_KEY, "--max-retries", "2")


def write_rows(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def alpaca(n: int, *, response: bool = True) -> list[dict]:
    return [
        {"id": f"r{i}", "instruction": f"Question number {i}?", "input": "", "output": f"Answer {i}." if response else ""}
        for i in range(n)
    ]


def rows_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_two_scorers_write_floats_reasons_and_provenance_into_metadata(runner, server, tmp_path):
    src = write_rows(tmp_path / "in.jsonl", [*alpaca(3), {"id": "p", "instruction": "Prove that 2 is prime.", "output": "It is."}])
    out = tmp_path / "scored.jsonl"
    result = score(runner, server, src, "-o", out, "--scorer", "quality,complexity", "--model", "judge-1")
    assert result.exit_code == 0, result.stderr
    records = read_records(str(out))
    assert [r.id for r in records] == ["r0", "r1", "r2", "p"]
    for r in records:
        scores = r.metadata[META_SCORES]
        assert scores["quality"] == 4.0 and isinstance(scores["quality"], float)
        assert scores["complexity"] == (5.0 if r.id == "p" else 2.0)
        assert r.metadata[META_SCORE_REASONS]["quality"] == "Accurate and complete."
        steps = [s for s in r.provenance if s["method"] == "score"]
        assert [s["scorer"] for s in steps] == ["quality", "complexity"]
        assert all(s["model"] == "judge-1" and s["template"].startswith(s["scorer"] + "@1#") for s in steps)
        assert all(len(s["template_hash"]) == 12 for s in steps)
    # "p" has no reason for complexity: none is stored
    assert "complexity" not in records[3].metadata[META_SCORE_REASONS]
    # one request per record and scorer, showing the record's instruction and (quality) its response
    requests = server.chat_requests()
    assert len(requests) == 8
    quality = [r.body for r in requests if is_quality(r.body)]
    assert len(quality) == 4 and all(b["temperature"] == 0 and b["max_tokens"] == 256 for b in quality)
    assert any("Question number 1?" in b["messages"][-1]["content"] and "Answer 1." in b["messages"][-1]["content"] for b in quality)
    summary = json.loads(Path(f"{out}.summary.json").read_text())
    assert summary["counts"]["scored"] == summary["counts"]["written"] == 4
    assert summary["scorers"]["complexity"]["distribution"]["histogram"] == {"2": 3, "5": 1}
    assert summary["scorers"]["quality"]["scale"] == [1.0, 5.0]
    assert "quality: 4 scored, mean 4.00" in result.stderr


@pytest.mark.parametrize(
    "answer, expected",
    [
        ("Score: 4/5", 4.0),
        ("**4**", 4.0),
        ("4.5", 4.5),
        ("Rating: 4 out of 5", 4.0),
        ("I would rate this response a 3, since it misses the second part.", 3.0),
        ('{"score": 2, "reason": "Wrong year."}', 2.0),
    ],
)
def test_the_usual_ways_judges_write_a_score_are_read(runner, server, tmp_path, answer, expected):
    server.reply = lambda body: answer
    out = tmp_path / "out.jsonl"
    result = score(runner, server, write_rows(tmp_path / "in.jsonl", alpaca(1)), "-o", out)
    assert result.exit_code == 0, result.stderr
    assert rows_of(out)[0]["metadata"]["scores"] == {"quality": expected}
    assert len(server.chat_requests()) == 1


def test_an_ambiguous_answer_is_asked_again_with_another_seed_and_temperature(runner, server, tmp_path):
    server.reply = lambda body: "Score: 3 or maybe Score: 4" if body.get("seed") is None else "Score: 4\nReason: Fine."
    out = tmp_path / "out.jsonl"
    result = score(runner, server, write_rows(tmp_path / "in.jsonl", alpaca(1)), "-o", out)
    assert result.exit_code == 0, result.stderr
    first, second = (r.body for r in server.chat_requests())
    assert "seed" not in first and first["temperature"] == 0
    assert second["seed"] is not None and second["temperature"] > 0
    assert rows_of(out)[0]["metadata"]["scores"] == {"quality": 4.0}


@pytest.mark.parametrize(
    "answer, reason",
    [
        ("Score: 3\nOn reflection, final score: 4", "more than one labelled score (3, 4)"),
        ("Score: 7", "the score 7 is outside the scale 1-5"),
        ("Score: 8/10", "another scale (8/10)"),
        ("A solid answer overall.", "the answer gives no score"),
    ],
)
def test_a_score_never_obtained_sends_the_record_verbatim_to_the_failures_file(runner, server, tmp_path, answer, reason):
    server.reply = lambda body: answer if "number 1?" in body["messages"][-1]["content"] else "Score: 5"
    rows = alpaca(3)
    src = write_rows(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    result = score(runner, server, src, "-o", out)
    assert result.exit_code == 3, result.stderr
    assert [r["id"] for r in rows_of(out)] == ["r0", "r2"]
    [failure] = read_failures(f"{out}.failures.jsonl")
    assert failure["record"] == rows[1]  # verbatim: no score made up
    assert failure["reason"].startswith("quality: ") and reason in failure["reason"]
    assert failure["scorer"] == "quality" and failure["response"] == answer and failure["line"] == 2
    assert len([r for r in server.chat_requests() if "number 1?" in r.body["messages"][-1]["content"]]) == 3  # 1 + 2 retries
    # the failures file goes back in as it is
    retry = score(runner, server, f"{out}.failures.jsonl", "-o", tmp_path / "again.jsonl")
    assert retry.exit_code == 3


def test_records_a_scorer_cannot_judge_are_written_unchanged_and_counted(runner, server, tmp_path):
    rows = [*alpaca(2), {"id": "open", "conversations": [{"from": "human", "value": "Hello?"}]}]
    src = write_rows(tmp_path / "in.jsonl", rows[:2])
    src2 = tmp_path / "chat.json"
    src2.write_text(json.dumps([{"id": "open", "conversations": [{"from": "human", "value": "Hello?"}, {"from": "gpt", "value": ""}]}]))
    out = tmp_path / "out.json"
    result = score(runner, server, src2, "-o", out, "--scorer", "quality,complexity")
    assert result.exit_code == 0, result.stderr
    [written] = json.loads(out.read_text())
    assert written["metadata"]["scores"] == {"complexity": 2.0}  # the empty response is not judged
    assert len(server.chat_requests()) == 1 and not is_quality(server.chat_requests()[0].body)
    assert "quality: 1 record not scored (no response to judge)" in result.stderr
    summary = json.loads(Path(f"{out}.summary.json").read_text())
    assert summary["scorers"]["quality"]["not_scored"] == {"no response to judge": 1}
    # with only the quality scorer, the record is written as it was read
    server.reset()
    out2 = tmp_path / "out2.json"
    assert score(runner, server, src2, "-o", out2).exit_code == 0
    assert json.loads(out2.read_text()) == json.loads(src2.read_text())
    assert server.chat_requests() == []
    assert src.exists()


def test_dry_run_estimates_every_scorer_and_writes_nothing(runner, server, tmp_path):
    src = write_rows(tmp_path / "in.jsonl", alpaca(5))
    out = tmp_path / "out.jsonl"
    result = score(runner, server, src, "-o", out, "--scorer", "quality,complexity", "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert server.chat_requests() == []
    assert not out.exists() and not Path(f"{out}.summary.json").exists()
    assert "requests to send: 10" in result.stdout


def test_a_rerun_comes_from_the_cache_and_a_rescore_replaces_the_value(runner, server, tmp_path):
    src = write_rows(tmp_path / "in.jsonl", alpaca(3))
    out = tmp_path / "out.jsonl"
    assert score(runner, server, src, "-o", out).exit_code == 0
    first = out.read_bytes()
    server.reset()
    assert score(runner, server, src, "-o", out).exit_code == 0
    assert server.chat_requests() == [] and out.read_bytes() == first
    # scoring the scored file again with another answer: the value is replaced, the history kept
    server.reply = lambda body: "Score: 2\nReason: Too short."
    again = tmp_path / "again.jsonl"
    assert score(runner, server, out, "-o", again, "--no-cache").exit_code == 0
    row = rows_of(again)[0]
    assert row["metadata"]["scores"] == {"quality": 2.0}
    assert row["metadata"]["score_reasons"] == {"quality": "Too short."}
    assert [s["score"] for s in row["metadata"]["provenance"]] == [4.0, 2.0]


def test_a_scorer_of_ones_own_from_a_file_and_from_prompts_dir(runner, server, tmp_path):
    scorer = textwrap.dedent(
        """\
        name: helpfulness
        version: 2
        variables: [response]
        data: {min_score: 0, max_score: 10}
        messages:
          - role: user
            content: "Rate 0-10 how helpful this is: {{response}}"
        """
    )
    path = tmp_path / "helpful.yaml"
    path.write_text(scorer)
    server.reply = lambda body: "8/10"
    src = write_rows(tmp_path / "in.jsonl", alpaca(2))
    out = tmp_path / "out.jsonl"
    result = score(runner, server, src, "-o", out, "--scorer-file", path)
    assert result.exit_code == 0, result.stderr
    assert [r["metadata"]["scores"] for r in rows_of(out)] == [{"helpfulness": 8.0}] * 2
    assert server.chat_requests()[0].body["messages"] == [{"role": "user", "content": "Rate 0-10 how helpful this is: Answer 0."}]
    # the same file by name from --prompts-dir
    (tmp_path / "prompts" / "score").mkdir(parents=True)
    (tmp_path / "prompts" / "score" / "helpfulness.yaml").write_text(scorer)
    out2 = tmp_path / "out2.jsonl"
    result = score(runner, server, src, "-o", out2, "--scorer", "helpfulness,quality", "--prompts-dir", tmp_path / "prompts")
    assert result.exit_code == 3  # "8/10" is not a quality score (1-5): those records fail
    assert not out2.exists() or all("quality" not in r["metadata"]["scores"] for r in rows_of(out2))


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["--scorer", "nosuch"], 2, "no scorer 'nosuch' in prompts/score/; known: complexity, quality; or give a prompt file of your own with --scorer-file"),
        (["--scorer", "quality,quality", "--scorer-file", "QUALITY"], 2, "two scorers are named 'quality'"),
        (["--scorer-file", "NOSCALE"], 1, "noscale.yaml: field 'data.min_score': Field required"),
        (["--scorer-file", "BADVAR"], 1, "badvar.yaml: field 'variables': unknown output"),
        (["--scorer-file", "MISSING"], 1, "missing.yaml: cannot read"),
    ],
)
def test_bad_scorers_fail_before_anything_is_read_or_sent(runner, server, tmp_path, args, code, message):
    (tmp_path / "noscale.yaml").write_text("name: x\nversion: 1\nvariables: [instruction]\nmessages: [{role: user, content: '{{instruction}}'}]\n")
    (tmp_path / "badvar.yaml").write_text(
        "name: x\nversion: 1\nvariables: [output]\ndata: {min_score: 1, max_score: 5}\nmessages: [{role: user, content: '{{output}}'}]\n"
    )
    from itkit.templates import builtin_prompts_dir

    paths = {"NOSCALE": tmp_path / "noscale.yaml", "BADVAR": tmp_path / "badvar.yaml", "MISSING": tmp_path / "missing.yaml",
             "QUALITY": builtin_prompts_dir() / "score" / "quality.yaml"}
    out = tmp_path / "out.jsonl"
    result = score(runner, server, write_rows(tmp_path / "in.jsonl", alpaca(1)), "-o", out, *[str(paths.get(a, a)) for a in args])
    assert result.exit_code == code
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr
    assert not out.exists() and server.chat_requests() == []


def test_a_record_whose_scores_field_is_not_an_object_stops_the_run_before_any_request(runner, server, tmp_path):
    src = write_rows(tmp_path / "in.jsonl", [*alpaca(1), {"id": "bad", "instruction": "q", "output": "a", "metadata": {"scores": [4]}}])
    out = tmp_path / "out.jsonl"
    result = score(runner, server, src, "-o", out)
    assert result.exit_code == 1
    assert "record 'bad'" in result.stderr and "metadata.scores" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not out.exists() and server.chat_requests() == []


def test_filter_min_score_keeps_records_at_or_above_and_removes_unscored_with_a_reason(runner, tmp_path):
    rows = [
        {"id": "a", "instruction": "q", "output": "x", "metadata": {"scores": {"quality": 4.5, "complexity": 1.0}}},
        {"id": "b", "instruction": "q", "output": "y", "metadata": {"scores": {"quality": 4.0, "complexity": 3.0}}},
        {"id": "c", "instruction": "q", "output": "z", "metadata": {"scores": {"quality": 3.5}}},
        {"id": "d", "instruction": "q", "output": "w"},
    ]
    src = write_rows(tmp_path / "in.jsonl", rows)
    out, report = tmp_path / "out.jsonl", tmp_path / "removed.jsonl"
    result = invoke(runner, "filter", src, "-o", out, "--min-score", "quality=4", "--report", report, "--json")
    assert result.exit_code == 0, result.stderr
    assert [r["id"] for r in rows_of(out)] == ["a", "b"]
    reasons = {r["id"]: r["reason"] for r in rows_of(report)}
    assert reasons == {"c": "quality score 3.5 is below 4", "d": "no 'quality' score (not scored; run itkit score --scorer quality)"}
    assert json.loads(result.stdout)["removed_by_rule"]["score"] == 2
    both = invoke(runner, "filter", src, "-o", out, "--min-score", "quality=4", "--min-score", "complexity=2")
    assert both.exit_code == 0 and [r["id"] for r in rows_of(out)] == ["b"]
    bad = invoke(runner, "filter", src, "-o", tmp_path / "bad.jsonl", "--min-score", "quality>four")
    assert bad.exit_code == 2 and "--min-score: 'quality>four' is not NAME=NUMBER" in bad.stderr
    assert not (tmp_path / "bad.jsonl").exists()


def test_stats_shows_the_score_distribution_per_scorer(runner, tmp_path):
    rows = [{"id": str(i), "instruction": "q", "output": "a", "metadata": {"scores": {"quality": float(1 + i % 5)}}} for i in range(10)]
    rows.append({"id": "none", "instruction": "q", "output": "a"})
    src = write_rows(tmp_path / "in.jsonl", rows)
    result = invoke(runner, "stats", src, "--json")
    assert result.exit_code == 0, result.stderr
    quality = json.loads(result.stdout)["scores"]["quality"]
    assert quality["histogram"] == {"1": 2, "2": 2, "3": 2, "4": 2, "5": 2}
    assert quality["count"] == 10 and quality["missing"] == 1 and quality["mean"] == 3.0
    table = invoke(runner, "stats", src)
    assert "scores (itkit score)" in table.stdout and "1: 2  2: 2  3: 2" in table.stdout


def test_a_recipe_scores_then_filters_on_the_score(runner, server, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", TEST_API_KEY)
    server.reply = lambda body: "Score: 5" if "Question number 1?" in body["messages"][-1]["content"] else "Score: 3"
    write_rows(tmp_path / "in.jsonl", alpaca(4))
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        textwrap.dedent(
            """\
            name: choose
            sources: [{path: in.jsonl}]
            llm: {model: judge}
            steps:
              - score: {scorer: [quality, complexity]}
              - filter: {min_score: [quality=4]}
            export: {target: [trl], lft_size: 1}
            """
        )
    )
    run_dir = tmp_path / "run"
    result = invoke(runner, "run", recipe, "--run-dir", run_dir)
    assert result.exit_code == 0, result.stderr
    summary = json.loads((run_dir / "run_summary.json").read_text())
    steps = {s["type"]: s for s in summary["steps"]}
    assert steps["score"]["records_out"] == 4 and steps["filter"]["removed"] == {"score": 3}
    assert len(server.chat_requests()) == 8
    # a re-run sends nothing
    server.reset()
    assert invoke(runner, "run", recipe, "--run-dir", run_dir, "-q").exit_code == 0
    assert server.chat_requests() == []


def test_scores_survive_a_csv_and_a_parquet_file_between_commands(runner, server, tmp_path):
    src = write_rows(tmp_path / "in.jsonl", alpaca(3))
    for name in ("scored.csv", "scored.parquet"):
        out = tmp_path / name
        assert score(runner, server, src, "-o", out).exit_code == 0
        assert [r.metadata[META_SCORES] for r in read_records(str(out))] == [{"quality": 4.0}] * 3
        kept = tmp_path / f"kept-{name}.jsonl"
        result = invoke(runner, "filter", out, "-o", kept, "--min-score", "quality=4", "--to", "alpaca")
        assert result.exit_code == 0, result.stderr
        assert len(rows_of(kept)) == 3


def test_a_recipe_scorer_file_is_relative_to_the_recipe_and_a_changed_file_reruns_the_step(runner, server, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", TEST_API_KEY)
    server.reply = lambda body: "Score: 3"
    folder = tmp_path / "project"
    (folder / "scorers").mkdir(parents=True)
    scorer = folder / "scorers" / "tone.yaml"
    scorer.write_text("name: tone\nversion: 1\nvariables: [response]\ndata: {min_score: 1, max_score: 5}\n"
                      "messages: [{role: user, content: 'Rate the tone 1-5: {{response}}'}]\n")
    write_rows(folder / "in.jsonl", alpaca(2))
    recipe = folder / "recipe.yaml"
    recipe.write_text("name: t\nsources: [{path: in.jsonl}]\nllm: {model: judge}\nsteps:\n  - score: {scorer_file: [scorers/tone.yaml]}\n")
    run_dir = tmp_path / "run"
    monkeypatch.chdir(tmp_path)
    assert invoke(runner, "run", recipe, "--run-dir", run_dir, "-q").exit_code == 0
    assert [r["metadata"]["scores"] for r in rows_of(run_dir / "01-score" / "output.jsonl")] == [{"tone": 3.0}] * 2
    assert len(server.chat_requests()) == 2
    scorer.write_text(scorer.read_text().replace("Rate the tone", "Rate the tone of this answer"))
    server.reset()
    assert invoke(runner, "run", recipe, "--run-dir", run_dir, "-q").exit_code == 0
    assert len(server.chat_requests()) == 2 and "tone of this answer" in server.chat_requests()[0].body["messages"][0]["content"]
    bad = folder / "bad.yaml"
    bad.write_text("name: t\nsources: [{path: in.jsonl}]\nsteps:\n  - score: {scorer: [tone]}\n")
    result = invoke(runner, "run", bad, "--run-dir", tmp_path / "run2")
    assert result.exit_code == 2
    assert "step 1 (score): no scorer 'tone' in prompts/score/" in result.stderr and "with scorer_file" in result.stderr


def test_the_report_shows_each_scorers_distribution_and_scored_records_with_reasons(runner, server, tmp_path):
    src = write_rows(tmp_path / "in.jsonl", alpaca(3))
    out = tmp_path / "scored.jsonl"
    assert score(runner, server, src, "-o", out, "--scorer", "quality,complexity").exit_code == 0
    page = tmp_path / "report.html"
    result = invoke(runner, "report", f"{out}.summary.json", "-o", page)
    assert result.exit_code == 0, result.stderr
    html = page.read_text(encoding="utf-8")
    assert "Scores: LLM-as-judge" in html and "3 of 3 records scored" in html
    assert "records per quality score" in html and "records per complexity score" in html
    assert "quality 4.0 (Accurate and complete.); complexity 2.0 (One step.)" in html
