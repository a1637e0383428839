"""Durable batch mode end to end: the real CLI, engine and OpenAI SDK against a fake batch API (tests/batch_server.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from batch_server import FakeBatchServer, Script
from conftest import ROOT, SHARED, invoke, read_failures
from llm_server import TEST_API_KEY, echo_reply

from itkit.errors import EXIT_BATCH_PENDING

TIKTOKEN_DIR = SHARED / "tiktoken"
ROWS = [{"instruction": f"Question number {i}: what is {i} plus {i}?", "input": "", "output": f"It is {2 * i}."} for i in range(8)]


@pytest.fixture(autouse=True)
def _tiktoken_cache(monkeypatch):
    if not os.environ.get("TIKTOKEN_CACHE_DIR") and TIKTOKEN_DIR.is_dir():
        monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(TIKTOKEN_DIR))


@pytest.fixture
def server():
    with FakeBatchServer(api_key=TEST_API_KEY) as s:
        yield s


@pytest.fixture
def src(tmp_path) -> str:
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
    return str(path)


def common(server, cache: Path) -> list[str]:
    return ["--base-url", server.base_url, "--api-key", TEST_API_KEY, "--model", "teacher", "--cache-dir", str(cache),
            "--quiet"]


def cli(runner, command: str, server, src: str, out: Path, cache: Path, *args: str):
    return invoke(runner, command, src, "-o", str(out), *common(server, cache), *args)


def online(runner, command: str, server, src: str, tmp_path: Path, *args: str) -> bytes:
    """The online run's output (its own cache), the chat requests it sent forgotten."""
    out = tmp_path / f"online-{command}.jsonl"
    result = cli(runner, command, server, src, out, tmp_path / "online-cache", *args)
    assert result.exit_code in (0, 3), result.stderr
    server.reset()
    return out.read_bytes()


def until_done(runner, command: str, server, src: str, out: Path, cache: Path, *args: str, most: int = 20):
    """Re-run a --batch command until it stops exiting 4; the results of every run."""
    results = []
    for _ in range(most):
        result = cli(runner, command, server, src, out, cache, "--batch", *args)
        results.append(result)
        if result.exit_code != EXIT_BATCH_PENDING:
            return results
        assert not out.exists(), "nothing is written before every answer is there"
    raise AssertionError("still pending")


# ---- one stage: submit, detach, collect ---------------------------------------------------
def test_orca_batch_detaches_then_collects_byte_identical_to_online(runner, tmp_path, server, src):
    expected = online(runner, "orca", server, src, tmp_path)
    out, cache = tmp_path / "batch.jsonl", tmp_path / "cache"

    first = cli(runner, "orca", server, src, out, cache, "--batch")
    assert first.exit_code == 4
    assert "submitted 1 batch (8 requests)" in first.stderr and "re-run the same command" in first.stderr
    assert not out.exists() and not Path(f"{out}.summary.json").exists()
    assert [c[0] + " " + c[1] for c in server.calls] == ["POST /v1/files", "POST /v1/batches"]
    batch = server.created()[0]
    assert batch["completion_window"] == "24h" and batch["endpoint"] == "/v1/chat/completions"
    assert set(batch["metadata"]) == {"itkit_job", "itkit_command", "itkit_stage"}
    lines = server.input_lines(batch)
    assert all(len(line["custom_id"]) == 64 and line["url"] == "/v1/chat/completions" for line in lines)

    second = cli(runner, "orca", server, src, out, cache, "--batch")
    assert second.exit_code == 0, second.stderr
    assert out.read_bytes() == expected
    assert server.chat_requests() == []  # nothing went online
    assert len(server.batches) == 1
    summary = json.loads(Path(f"{out}.summary.json").read_text())
    assert summary["engine"]["batch"]["lines_used"] == 8 and summary["engine"]["requests"] == 0
    assert TEST_API_KEY not in Path(f"{out}.summary.json").read_text()

    again = cli(runner, "orca", server, src, out, cache, "--batch")  # all in the cache now: no remote call
    assert again.exit_code == 0 and len(server.calls) == 4


def test_wait_polls_until_done_and_reports_the_state(runner, tmp_path, server, src):
    expected = online(runner, "orca", server, src, tmp_path)
    server.script = lambda number, lines: Script(polls=2)
    out = tmp_path / "batch.jsonl"
    result = invoke(runner, "orca", src, "-o", str(out), *common(server, tmp_path / "cache")[:-1], "--batch", "--wait",
                    "--batch-poll", "0.01")
    assert result.exit_code == 0, result.stderr
    assert out.read_bytes() == expected
    assert "in_progress" in result.stderr and "completed" in result.stderr
    assert "0/8 done" in result.stderr  # the provider's counts, never 100% before the download


def test_detach_then_collect_from_a_new_process(tmp_path, server, src):
    out, cache = tmp_path / "batch.jsonl", tmp_path / "cache"
    command = [sys.executable, "-m", "itkit", "orca", src, "-o", str(out), *common(server, cache), "--batch"]
    first = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    assert first.returncode == 4, first.stderr
    assert "itkit: batch:" in first.stderr
    second = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    assert second.returncode == 0, second.stderr
    assert len(out.read_text().splitlines()) == len(ROWS)
    assert len(server.batches) == 1


# ---- kill -9 at every remote call boundary ----------------------------------------------------
@pytest.mark.parametrize("point", ["upload:after", "create:before", "create:after", "download"])
def test_kill_9_at_a_remote_call_boundary_never_duplicates_nor_loses(runner, tmp_path, server, src, point):
    expected = online(runner, "orca", server, src, tmp_path)
    out, cache = tmp_path / "batch.jsonl", tmp_path / "cache"
    command = [sys.executable, "-m", "itkit", "orca", src, "-o", str(out), *common(server, cache), "--batch"]
    server.kill_at = point
    codes = []
    while server.kill_at is not None and len(codes) < 3:  # the download is the second run's
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
        server.kill_pid = proc.pid
        proc.communicate(timeout=120)
        codes.append(proc.returncode)
    assert codes[-1] == -signal.SIGKILL and codes[:-1] == ([4] if point == "download" else [])
    assert not out.exists()

    results = until_done(runner, "orca", server, src, out, cache)
    assert results[-1].exit_code == 0, results[-1].stderr
    assert out.read_bytes() == expected  # every record once, none lost
    assert len(server.batches) == 1  # the batch created before the kill was found again by its metadata
    assert server.chat_requests() == []


# ---- multi-stage methods: one round per stage ---------------------------------------------------
def test_evol_instruct_one_batch_round_per_stage(runner, tmp_path, server, src):
    from test_evol_instruct_cli import good_reply

    server.reply = good_reply
    args = ("--seed", "3", "--rounds", "2")
    expected = online(runner, "evol-instruct", server, src, tmp_path, *args)
    out, cache = tmp_path / "batch.jsonl", tmp_path / "cache"
    results = until_done(runner, "evol-instruct", server, src, out, cache, *args)
    assert results[-1].exit_code == 0, results[-1].stderr
    assert out.read_bytes() == expected
    assert len(server.batches) == 6  # 2 rounds x (rewrite, equality, response)
    stages = [r.stderr for r in results[:-1]]
    assert "stage equality" in stages[1] and "stage response" in stages[2]
    assert all(len(server.input_lines(b)) == len(ROWS) for b in server.created())


def test_self_instruct_resumes_at_the_right_stage(runner, tmp_path, server):
    from test_self_instruct_cli import SEEDS, _model

    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text("".join(json.dumps(r) + "\n" for r in SEEDS), encoding="utf-8")
    server.reply = _model
    args = ("--num", "6", "--batch-size", "2", "--seed", "5")
    expected = online(runner, "self-instruct", server, str(seeds), tmp_path, *args)
    out, cache = tmp_path / "batch.jsonl", tmp_path / "cache"
    results = until_done(runner, "self-instruct", server, str(seeds), out, cache, *args)
    assert results[-1].exit_code == 0, results[-1].stderr
    assert out.read_bytes() == expected
    assert Path(f"{out}.tasks.jsonl").read_bytes() == (tmp_path / "online-self-instruct.jsonl.tasks.jsonl").read_bytes()
    assert "self-instruct: instructions" in results[0].stderr
    assert any("self-instruct: instances" in r.stderr for r in results)


def test_simplify_length_guard_is_its_own_round(runner, tmp_path, server, src):
    def reply(body):  # the first answer is longer than the original: the guard asks again
        text = body["messages"][-1]["content"]
        return "Short." if "shorter" in text.lower() and "longer" in text.lower() else "A much longer answer " * 8

    server.reply = reply
    expected = online(runner, "simplify", server, src, tmp_path)
    out, cache = tmp_path / "batch.jsonl", tmp_path / "cache"
    results = until_done(runner, "simplify", server, src, out, cache)
    assert results[-1].exit_code in (0, 3), results[-1].stderr
    assert out.read_bytes() == expected
    assert len(results) >= 2


# ---- partial results, error lines, retries -------------------------------------------------------
def test_expired_batch_keeps_what_it_finished_and_resubmits_only_the_rest(runner, tmp_path, server, src):
    expected = online(runner, "orca", server, src, tmp_path)
    server.script = lambda number, lines: Script("expired", answer=0.5) if number == 1 else Script()
    out, cache = tmp_path / "batch.jsonl", tmp_path / "cache"
    results = until_done(runner, "orca", server, src, out, cache)
    assert results[-1].exit_code == 0 and out.read_bytes() == expected
    first, second = server.created()
    first_ids = [line["custom_id"] for line in server.input_lines(first)]
    assert [line["custom_id"] for line in server.input_lines(second)] == [f"{c}-1" for c in first_ids[4:]]


def test_a_batch_that_keeps_expiring_fails_its_records_instead_of_looping(runner, tmp_path, server, src):
    server.script = lambda number, lines: Script("expired", answer=0.0)
    out = tmp_path / "batch.jsonl"
    result = invoke(runner, "orca", src, "-o", str(out), *common(server, tmp_path / "cache")[:-1], "--batch", "--wait",
                    "--batch-poll", "0.01", "--max-retries", "2")
    assert result.exit_code == 3
    assert len(server.batches) == 3 and not out.read_text()
    failures = read_failures(f"{out}.failures.jsonl")
    assert len(failures) == len(ROWS) and "the batch expired before answering this request" in failures[0]["reason"]


def test_error_lines_are_retried_then_reported_with_the_providers_reason(runner, tmp_path, server, src):
    def line_error(body, attempt):
        text = body["messages"][-1]["content"]
        if "Question number 1:" in text:
            return "The server had an error processing your request."  # every time
        if "Question number 2:" in text and attempt == 0:
            return "Temporary overload."  # the first time only
        return None

    server.line_error = line_error
    out, cache = tmp_path / "batch.jsonl", tmp_path / "cache"
    results = until_done(runner, "orca", server, src, out, cache, "--max-retries", "2")
    assert results[-1].exit_code == 3
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == len(ROWS) - 1
    failures = read_failures(f"{out}.failures.jsonl")
    assert len(failures) == 1 and "The server had an error processing your request." in failures[0]["reason"]
    assert failures[0]["record"]["instruction"] == ROWS[1]["instruction"]
    sizes = [len(server.input_lines(b)) for b in server.created()]
    assert sizes == [8, 2, 1]  # only the error lines go again


def test_batch_retry_online_sends_the_failed_lines_online(runner, tmp_path, server, src):
    expected = online(runner, "orca", server, src, tmp_path)
    server.line_error = lambda body, attempt: "boom" if "number 3:" in body["messages"][-1]["content"] else None
    out, cache = tmp_path / "batch.jsonl", tmp_path / "cache"
    results = until_done(runner, "orca", server, src, out, cache, "--batch-retry", "online")
    assert results[-1].exit_code == 0
    assert out.read_bytes() == expected
    assert len(server.batches) == 1 and len(server.chat_requests()) == 1


def test_a_cut_off_answer_is_retried_like_online(runner, tmp_path, server, src):
    fault = lambda seen, attempt: "length" if "number 4:" in seen.last_user and attempt == 0 else None  # noqa: E731
    server.faults = fault
    expected = online(runner, "orca", server, src, tmp_path)
    server.faults = fault
    out, cache = tmp_path / "batch.jsonl", tmp_path / "cache"
    results = until_done(runner, "orca", server, src, out, cache)
    assert results[-1].exit_code == 0 and out.read_bytes() == expected
    retry = server.input_lines(server.created()[1])
    assert len(retry) == 1 and retry[0]["custom_id"].endswith("-1") and retry[0]["body"]["seed"] != 0


def test_failed_validation_fails_the_records_with_its_reason(runner, tmp_path, server, src):
    server.script = lambda number, lines: Script("failed", message="The model teacher is not available for batches")
    out, cache = tmp_path / "batch.jsonl", tmp_path / "cache"
    results = until_done(runner, "orca", server, src, out, cache, "--max-retries", "0")
    assert results[-1].exit_code == 3
    failures = read_failures(f"{out}.failures.jsonl")
    assert len(failures) == len(ROWS)
    assert all("not available for batches" in f["reason"] for f in failures)


def test_429_on_create_is_retried_and_a_low_balance_stops_with_nothing_lost(runner, tmp_path, server, src):
    out, cache = tmp_path / "batch.jsonl", tmp_path / "cache"
    server.create_faults = ["quota"]
    refused = cli(runner, "orca", server, src, out, cache, "--batch")
    assert refused.exit_code == 1 and "quota" in refused.stderr and TEST_API_KEY not in refused.stderr
    assert server.batches == {}
    server.create_faults = ["429", "429"]
    results = until_done(runner, "orca", server, src, out, cache)
    assert results[-1].exit_code == 0
    assert len(server.batches) == 1
    assert [f for f in server.files if server.files[f].count(b"custom_id") == 8 and b'"url"' in server.files[f]] == [
        "file-000001"
    ]  # the upload before the refusal was used, not repeated


def test_a_batch_in_progress_across_runs_is_polled_not_resubmitted(runner, tmp_path, server, src):
    server.script = lambda number, lines: Script("stuck")
    out, cache = tmp_path / "batch.jsonl", tmp_path / "cache"
    for _ in range(3):
        result = cli(runner, "orca", server, src, out, cache, "--batch")
        assert result.exit_code == 4
    assert "8 requests in batches already submitted (1 in_progress)" in result.stderr
    assert len(server.batches) == 1


# ---- money -------------------------------------------------------------------------------------------
def test_dry_run_shows_the_batch_price_and_the_summary_bills_it(runner, tmp_path, server, src):
    prices = ("--price-in", "2", "--price-out", "8")
    dry = cli(runner, "orca", server, src, tmp_path / "x.jsonl", tmp_path / "cache", "--batch", "--dry-run", *prices)
    assert dry.exit_code == 0
    assert "batch price x0.5" in dry.stdout and "$1 / $4 per 1M tokens" in dry.stdout
    out = tmp_path / "batch.jsonl"
    until_done(runner, "orca", server, src, out, tmp_path / "cache", *prices)
    engine = json.loads(Path(f"{out}.summary.json").read_text())["engine"]
    tokens = engine["batch"]["tokens"]
    answered = [json.loads(line) for f in server.files.values() for line in f.splitlines() if b'"response"' in line]
    usage = [a["response"]["body"]["usage"] for a in answered]
    assert tokens == {"prompt": sum(u["prompt_tokens"] for u in usage), "completion": sum(u["completion_tokens"] for u in usage)}
    assert engine["cost_usd"] == pytest.approx((tokens["prompt"] * 1 + tokens["completion"] * 4) / 1e6)


def test_max_cost_refuses_to_submit_beyond_it(runner, tmp_path, server, src):
    out = tmp_path / "batch.jsonl"
    result = cli(runner, "orca", server, src, out, tmp_path / "cache", "--batch", "--price-in", "1000",
                 "--price-out", "1000", "--max-cost", "0.01")
    assert result.exit_code == 1 and "--max-cost" in result.stderr and "nothing was submitted" in result.stderr
    assert server.calls == [] and not out.exists()


# ---- recipes --------------------------------------------------------------------------------------------
def test_a_recipe_step_with_llm_batch_true(runner, tmp_path, server, src):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        f"sources:\n  - {{path: '{src}'}}\nllm: {{base_url: '{server.base_url}', model: teacher, batch: true, "
        f"cache_dir: '{tmp_path / 'cache'}'}}\nsteps:\n  - orca: {{}}\n",
        encoding="utf-8",
    )
    from itkit.cli import app

    args = ["run", str(recipe), "--run-dir", str(tmp_path / "run"), "--quiet"]
    first = runner.invoke(app, args, env={"OPENAI_API_KEY": TEST_API_KEY})
    assert first.exit_code == 4, first.stderr
    assert "itkit: batch: step" in first.stderr and "re-run the same command" in first.stderr
    second = runner.invoke(app, args, env={"OPENAI_API_KEY": TEST_API_KEY})
    assert second.exit_code == 0, second.stderr
    assert len(server.batches) == 1
    assert len((tmp_path / "run" / "01-orca" / "output.jsonl").read_text().splitlines()) == len(ROWS)


# ---- offline files ------------------------------------------------------------------------------------------
def test_batch_file_and_batch_results_without_a_server(runner, tmp_path, server, src):
    expected = online(runner, "orca", server, src, tmp_path)
    out, cache, requests = tmp_path / "batch.jsonl", tmp_path / "cache", tmp_path / "requests.jsonl"
    first = cli(runner, "orca", server, src, out, cache, "--batch-file", str(requests))
    assert first.exit_code == 4 and "vllm run-batch" in first.stderr
    assert server.calls == [] and server.chat_requests() == []
    lines = [json.loads(line) for line in requests.read_text().splitlines()]
    assert len(lines) == len(ROWS)
    results = tmp_path / "results.jsonl"  # what vllm run-batch writes
    results.write_text("".join(json.dumps({
        "id": f"r{i}", "custom_id": line["custom_id"], "error": None,
        "response": {"status_code": 200, "request_id": f"q{i}", "body": {
            "id": f"c{i}", "object": "chat.completion", "model": "teacher",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": echo_reply(line["body"])},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}}},
    }) + "\n" for i, line in enumerate(lines)), encoding="utf-8")
    second = cli(runner, "orca", server, src, out, cache, "--batch-results", str(results))
    assert second.exit_code == 0, second.stderr
    assert out.read_bytes() == expected
    assert server.calls == [] and server.chat_requests() == []


def test_batch_results_that_are_not_batch_output_fail_naming_the_line(runner, tmp_path, server, src):
    bad = tmp_path / "results.jsonl"
    bad.write_text('{"custom_id": "' + "a" * 64 + '", "response": {"status_code": 200, "body": {}}}\nnot json\n')
    result = cli(runner, "orca", server, src, tmp_path / "o.jsonl", tmp_path / "cache", "--batch-results", str(bad))
    assert result.exit_code == 1 and "line 2" in result.stderr and "results.jsonl" in result.stderr


# ---- itkit batches ----------------------------------------------------------------------------------------
def test_itkit_batches_lists_refreshes_and_cancels(runner, tmp_path, server, src):
    expected = online(runner, "orca", server, src, tmp_path)
    server.script = lambda number, lines: Script("stuck", answer=0.5) if number == 1 else Script()
    out, cache = tmp_path / "batch.jsonl", tmp_path / "cache"
    assert cli(runner, "orca", server, src, out, cache, "--batch", "--price-in", "1", "--price-out", "2").exit_code == 4
    listed = invoke(runner, "batches", "--cache-dir", str(cache))
    assert listed.exit_code == 0
    assert "batch-000002" in listed.stdout and "validating" in listed.stdout and "orca / respond" in listed.stdout
    assert all(len(line) <= 80 for line in listed.stdout.splitlines()), "the listing fits 80 columns"
    assert " done, " in listed.stdout and " requests; est. " in listed.stdout
    as_json = json.loads(invoke(runner, "batches", "--cache-dir", str(cache), "--json").stdout)
    assert as_json[0]["requests"] == 8 and as_json[0]["estimated_cost"] > 0

    remote = ("--cache-dir", str(cache), "--base-url", server.base_url, "--api-key", TEST_API_KEY)
    cancelled = invoke(runner, "batches", *remote, "--cancel", "batch-000002")
    assert cancelled.exit_code == 0, cancelled.stderr
    assert "cancelled" in cancelled.stdout and TEST_API_KEY not in cancelled.stdout
    results = until_done(runner, "orca", server, src, out, cache)
    assert results[-1].exit_code == 0 and out.read_bytes() == expected
    assert len(server.input_lines(server.created()[1])) == 4  # only what the cancelled batch had not finished
    assert invoke(runner, "batches", *remote, "--cancel", "nope").exit_code == 2
    assert "no batches" in invoke(runner, "batches", "--cache-dir", str(tmp_path / "empty")).stdout


def test_max_cost_online_stops_sending_once_reached(runner, tmp_path, server, src):
    out = tmp_path / "online.jsonl"
    result = cli(runner, "orca", server, src, out, tmp_path / "cache", "--price-in", "100", "--price-out", "100",
                 "--max-cost", "0.001", "-j", "1", "--no-adapt")
    assert result.exit_code == 1 and "--max-cost $0.001 reached" in result.stderr
    assert 1 <= len(server.chat_requests()) < len(ROWS) and not out.exists()
    unknown = cli(runner, "orca", server, src, out, tmp_path / "cache", "--max-cost", "1")
    assert unknown.exit_code == 2 and "--price-in" in unknown.stderr


def test_batches_respect_the_request_and_byte_limits(runner, tmp_path, server):
    rows = [{"instruction": f"Say {i}.", "input": "", "output": f"{i}"} for i in range(30)]
    src = tmp_path / "many.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out, cache = tmp_path / "batch.jsonl", tmp_path / "cache"
    results = until_done(runner, "orca", server, str(src), out, cache, "--batch-max-requests", "8")
    assert results[-1].exit_code == 0
    assert [len(server.input_lines(b)) for b in server.created()] == [8, 8, 8, 6]
    assert len(server.calls) == 4 * 4  # upload, create, retrieve, download per batch: 0.53 calls per record here

    server.batches.clear()
    line = max(len(raw) + 1 for b in server.files.values() for raw in b.splitlines())
    out2, cache2 = tmp_path / "batch2.jsonl", tmp_path / "cache2"
    results = until_done(runner, "orca", server, str(src), out2, cache2, "--batch-max-bytes", str(max(1024, line * 10)))
    assert results[-1].exit_code == 0 and out2.read_bytes() == out.read_bytes()
    assert all(len(server.files[b["input_file_id"]]) <= max(1024, line * 10) for b in server.created())
    assert len(server.created()) >= 3


def test_batch_usage_errors(runner, tmp_path, src):
    from llm_server import FakeLLMServer

    out = tmp_path / "o.jsonl"
    with FakeLLMServer(api_key=TEST_API_KEY) as plain:  # no batch API (vllm serve, Ollama)
        result = cli(runner, "orca", plain, src, out, tmp_path / "cache", "--batch")
        assert result.exit_code == 1 and "--batch-file" in result.stderr and TEST_API_KEY not in result.stderr
        wait = cli(runner, "orca", plain, src, out, tmp_path / "cache", "--wait")
        assert wait.exit_code == 2 and "itkit: error: --wait: needs --batch\n" == wait.stderr
        same = cli(runner, "orca", plain, src, out, tmp_path / "cache", "--batch-file", src)
        assert same.exit_code == 2 and "--batch-file" in same.stderr
        nocache = invoke(runner, "orca", src, "-o", str(out), "--base-url", plain.base_url, "--api-key", TEST_API_KEY,
                         "--batch", "--no-cache", "--quiet")
        assert nocache.exit_code == 2 and "--no-cache" in nocache.stderr
    assert not out.exists()
