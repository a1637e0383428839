"""``itkit run`` with LLM steps, end to end against the local OpenAI-compatible test server.

The server's ``teacher`` answers every method's prompts like a well-behaved
model (deterministically), so a re-run over the same cache is byte-identical
and a test can tell which step a request belongs to.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import self_instruct_fakes
from conftest import ROOT, SAMPLES, SHARED, invoke, read_failures
from llm_server import TEST_API_KEY, FakeLLMServer

TIKTOKEN_DIR = SHARED / "tiktoken"
RECIPES = ROOT / "data_samples" / "recipes"
ORIGINAL = re.compile(r"Original answer:\n<<<\n(.*)\n>>>\n\nRewrite the original answer", re.S)
KILL_TIMEOUT = 60.0
"""Seconds the subprocess may take to reach the point where it is killed."""


@pytest.fixture(autouse=True)
def _tiktoken_cache(monkeypatch):
    if not os.environ.get("TIKTOKEN_CACHE_DIR") and TIKTOKEN_DIR.is_dir():
        monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(TIKTOKEN_DIR))


# ---------------------------------------------------------------------------
# the teacher model
# ---------------------------------------------------------------------------


def kind(body: dict) -> str:
    """Which step a request comes from."""
    text = body["messages"][-1]["content"]
    if ORIGINAL.search(text):
        return "simplify"
    if "\n#Given Prompt#:\n" in text:
        return "evolve"
    if "Decide whether they are equal" in text:
        return "equality"
    if self_instruct_fakes.kind_of(body["messages"]) != "unknown":
        return "self-instruct"
    return "answer"  # Orca's request (system message + question), or Evol-Instruct's response request


def teacher(body: dict) -> str:
    text = body["messages"][-1]["content"]
    k = kind(body)
    if k == "simplify":
        words = ORIGINAL.search(text).group(1).split()
        return " ".join(words[: max(1, len(words) // 2)])
    if k == "evolve":
        given = text.split("#Given Prompt#:\n", 1)[1].rsplit("\n\n#", 1)[0]
        return f"{given} Answer in exactly three short bullet points."
    if k == "equality":
        return "Not Equal"
    if k == "self-instruct":
        return self_instruct_fakes.answer_text(body["messages"])
    return "Step by step: " + " ".join(text.split()[:12])


def is_orca(body: dict) -> bool:
    """An Orca request, in a recipe without Evol-Instruct (CHAIN below)."""
    return kind(body) == "answer"


@pytest.fixture
def server():
    with FakeLLMServer(api_key=TEST_API_KEY, reply=teacher) as fake:
        yield fake


@pytest.fixture
def llm_env(server, monkeypatch):
    """The endpoint and key from the environment, as a user sets them."""
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", TEST_API_KEY)
    return server


def write_recipe(folder: Path, text: str, name: str = "recipe.yaml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip("\n").replace("SAMPLES", str(SAMPLES)), encoding="utf-8")
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def summary_of(run_dir: Path) -> dict:
    return json.loads((run_dir / "run_summary.json").read_text(encoding="utf-8"))


def rows(run_dir: Path) -> dict[str, dict]:
    return {row["step"]: row for row in summary_of(run_dir)["steps"]}


def run(runner, recipe: Path, run_dir: Path, *args: str):
    return invoke(runner, "run", recipe, "--run-dir", run_dir, *args)


ALL_STEPS = """
name: all-steps
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
  - filter: {}
  - dedup: {near: true}
  - simplify:
      keep_original: true
      llm: {temperature: 0}
  - evol-instruct: {rounds: 1, ops: deepening}
  - orca: {assign: uniform}
export:
  target: [trl, llama-factory]
  lft_size: 5
"""


def test_every_step_type_end_to_end_then_a_rerun_sends_nothing(runner, tmp_path, llm_env):
    server = llm_env
    recipe = write_recipe(tmp_path, ALL_STEPS)
    run_dir = tmp_path / "run"
    result = run(runner, recipe, run_dir)
    assert result.exit_code == 0, result.stderr

    steps = rows(run_dir)
    assert list(steps) == [
        "00-sources", "01-self-instruct", "02-filter", "03-dedup", "04-simplify", "05-evol-instruct", "06-orca", "07-export",
    ]
    assert {row["status"] for row in steps.values()} == {"ran"}
    kinds = [kind(r.body) for r in server.chat_requests()]
    assert {"self-instruct", "simplify", "evolve", "equality", "answer"} <= set(kinds)
    assert sum(row["requests"] for row in steps.values()) == len(server.chat_requests())
    assert summary_of(run_dir)["totals"]["requests"] == len(server.chat_requests())

    # each step worked on the output of the one before
    assert steps["01-self-instruct"]["records_in"] == 20  # the seeds
    generated = steps["01-self-instruct"]["records_out"]
    assert generated >= 6
    for before, after in zip(list(steps)[1:-1], list(steps)[2:-1]):
        assert steps[after]["records_in"] == steps[before]["records_out"], (before, after)
    final = read_jsonl(run_dir / "06-orca" / "output.jsonl")
    assert len(final) == steps["06-orca"]["records_out"] > 0
    methods = [[p["method"] for p in r["metadata"]["provenance"]] for r in final]
    assert all(m[0] == "self-instruct" and "simplify" in m and "evol-instruct" in m and m[-1] == "orca" for m in methods)
    assert all("original_output" in r["metadata"] for r in final)
    assert all(r["output"].startswith("Step by step: ") for r in final)  # Orca's regenerated answers
    assert (run_dir / "07-export" / "output" / "sft" / "trl" / "train.jsonl").is_file()
    for step in ("01-self-instruct", "04-simplify", "05-evol-instruct", "06-orca"):
        summary = json.loads((run_dir / step / "summary.json").read_text(encoding="utf-8"))
        assert summary["engine"]["requests"] == steps[step]["requests"] > 0
    assert "itkit run all-steps" in result.stderr and "06-orca" in result.stderr

    # the key never reaches a file
    for path in [*run_dir.rglob("*"), *Path(os.environ["ITKIT_HOME"]).rglob("*")]:
        if path.is_file():
            assert TEST_API_KEY.encode() not in path.read_bytes(), path

    server.reset()
    before = {p: p.read_bytes() for p in run_dir.rglob("*.jsonl")}
    result = run(runner, recipe, run_dir, "-q")
    assert result.exit_code == 0, result.stderr
    assert server.chat_requests() == []
    assert {row["status"] for row in rows(run_dir).values()} == {"skipped"}
    assert {p: p.read_bytes() for p in run_dir.rglob("*.jsonl")} == before


CHAIN = """
name: chain
sources:
  - {path: SAMPLES/alpaca.json, format: alpaca}
  - {path: SAMPLES/dolly.jsonl, format: dolly}
llm:
  model: teacher
  max_retries: 1
  concurrency: 2
steps:
  - filter: {}
  - dedup: {}
  - simplify: {keep_original: false}
  - orca: {assign: by-type}
export:
  target: [trl]
  lft_size: 10
"""


def test_a_changed_step_reruns_only_itself_and_what_follows(runner, tmp_path, llm_env):
    server = llm_env
    recipe = write_recipe(tmp_path, CHAIN)
    run_dir = tmp_path / "run"
    assert run(runner, recipe, run_dir, "-q").exit_code == 0
    first = len(server.chat_requests())
    assert first > 0
    fingerprints = lambda: {s: (run_dir / s / "fingerprint.json").stat().st_mtime_ns for s in rows(run_dir)}  # noqa: E731
    before = fingerprints()

    # simplify changes (its answers are in the cache): simplify, orca and export re-run, without a request
    server.reset()
    recipe.write_text(recipe.read_text().replace("keep_original: false", "keep_original: true"), encoding="utf-8")
    assert run(runner, recipe, run_dir, "-q").exit_code == 0
    status = {s: row["status"] for s, row in rows(run_dir).items()}
    assert status == {
        "00-sources": "skipped", "01-filter": "skipped", "02-dedup": "skipped",
        "03-simplify": "ran", "04-orca": "ran", "05-export": "ran",
    }
    after = fingerprints()
    assert [s for s in after if after[s] != before[s]] == ["03-simplify", "04-orca", "05-export"]
    assert server.chat_requests() == []
    assert rows(run_dir)["03-simplify"]["cache_hits"] == rows(run_dir)["03-simplify"]["records_in"]
    simplified = read_jsonl(run_dir / "03-simplify" / "output.jsonl")
    assert all("original_output" in r["metadata"] for r in simplified)

    # orca's assignment changes: only orca asks again (for the records whose system message changed)
    server.reset()
    recipe.write_text(recipe.read_text().replace("assign: by-type", "assign: uniform"), encoding="utf-8")
    assert run(runner, recipe, run_dir, "-q").exit_code == 0
    status = {s: row["status"] for s, row in rows(run_dir).items()}
    assert [s for s, v in status.items() if v == "ran"] == ["04-orca", "05-export"]
    assert server.chat_requests() and all(is_orca(r.body) for r in server.chat_requests())

    # a changed prompt template in prompts_dir is a changed step too
    server.reset()
    prompts = tmp_path / "prompts" / "simplify"
    prompts.mkdir(parents=True)
    builtin = (ROOT / "prompts" / "simplify" / "simplify.yaml").read_text(encoding="utf-8")
    (prompts / "simplify.yaml").write_text(builtin.replace("still correct", "still correct and kind"), encoding="utf-8")
    step = "  - simplify:\n      keep_original: true\n      llm: {prompts_dir: prompts}"
    recipe.write_text(recipe.read_text().replace("  - simplify: {keep_original: true}", step), encoding="utf-8")
    assert run(runner, recipe, run_dir, "-q").exit_code == 0
    status = {s: row["status"] for s, row in rows(run_dir).items()}
    assert [s for s, v in status.items() if v == "ran"] == ["03-simplify", "04-orca", "05-export"]
    assert any(kind(r.body) == "simplify" for r in server.chat_requests())


def test_dry_run_renders_prompts_and_estimates_every_llm_step_without_sending(runner, tmp_path, llm_env):
    server = llm_env
    # a local server: prices given, never OpenAI's table
    recipe = write_recipe(tmp_path, CHAIN.replace("model: teacher", "model: gpt-4o-mini\n  price_in: 0.15\n  price_out: 0.6"))
    run_dir = tmp_path / "run"
    result = run(runner, recipe, run_dir, "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert server.chat_requests() == []
    assert not run_dir.exists()
    out = result.stdout
    assert "=== 03-simplify (dry-run) ===" in out and "=== 04-orca (dry-run) ===" in out
    assert out.count("--- request 1 of ") == 2 and "Original answer:" in out
    assert "estimated cost: $" in out
    assert "estimated on the input of the LLM step before it" in out  # orca runs on simplify's input
    assert "(dry run)" in result.stderr and "~$" in result.stderr

    result = run(runner, recipe, run_dir, "--dry-run", "--json")
    plan = json.loads(result.stdout)
    steps = {row["step"]: row for row in plan["steps"]}
    filtered = steps["01-filter"]["records_out"]
    deduped = steps["02-dedup"]["records_out"]
    assert steps["03-simplify"]["records_in"] == deduped <= filtered  # the real counts of the steps before
    for step in ("03-simplify", "04-orca"):
        estimate = steps[step]["estimate"]
        assert estimate["requests"] == deduped and estimate["prompt_tokens"] > 0
        assert estimate["estimated_cost_usd"] > 0
    assert plan["totals"]["estimate"]["requests"] == 2 * deduped
    assert server.chat_requests() == []

    # after a real run, a dry run has nothing left to plan
    assert run(runner, recipe, run_dir, "-q").exit_code == 0
    server.reset()
    plan = json.loads(run(runner, recipe, run_dir, "--dry-run", "--json").stdout)
    assert {row["status"] for row in plan["steps"]} == {"done"}
    assert server.chat_requests() == []


def test_failed_records_exit_3_and_a_plain_rerun_retries_them(runner, tmp_path, llm_env):
    server = llm_env

    def flaky(body: dict) -> str:
        # Orca answers without a letter for questions about numbers: rejected, retried, failed
        if is_orca(body) and any(ch.isdigit() for ch in body["messages"][-1]["content"]):
            return "?!"
        return teacher(body)

    server.reply = flaky
    recipe = write_recipe(tmp_path, CHAIN)
    run_dir = tmp_path / "run"
    result = run(runner, recipe, run_dir, "-q")
    assert result.exit_code == 3, result.stderr
    orca = rows(run_dir)["04-orca"]
    assert orca["failed"] > 0 and orca["records_out"] == orca["records_in"] - orca["failed"]
    failures = read_failures(run_dir / "04-orca" / "failures.jsonl")
    assert len(failures) == orca["failed"] and all(f["response"] == "?!" for f in failures)
    bad_ids = {f["id"] for f in failures}
    assert summary_of(run_dir)["exit_code"] == 3

    # a plain re-run retries the failed records (only them: the others come from the cache), and says so
    server.reset()
    result = run(runner, recipe, run_dir)
    assert result.exit_code == 3
    assert {r.last_user for r in server.chat_requests()} == {
        r.last_user for r in server.chat_requests() if any(ch.isdigit() for ch in r.last_user)
    }
    assert len(server.chat_requests()) == 2 * len(bad_ids)  # each: its first try and one retry (max_retries 1)
    assert f"retrying the {len(bad_ids)} records that failed last time" in result.stderr

    # once the server answers them, a plain re-run finishes the step
    server.reset()
    server.reply = teacher
    result = run(runner, recipe, run_dir, "-q")
    assert result.exit_code == 0, result.stderr
    assert len(server.chat_requests()) == len(bad_ids)
    ids = {r["id"] for r in read_jsonl(run_dir / "04-orca" / "output.jsonl")}
    assert bad_ids <= ids
    assert not (run_dir / "04-orca" / "failures.jsonl").exists()


def _popen_run(recipe: Path, run_dir: Path, home: Path, server: FakeLLMServer) -> subprocess.Popen:
    env = {
        **os.environ,
        "OPENAI_BASE_URL": server.base_url,
        "OPENAI_API_KEY": TEST_API_KEY,
        "ITKIT_HOME": str(home),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "itkit", "run", str(recipe), "--run-dir", str(run_dir), "-q"],
        env=env,
        cwd=str(recipe.parent),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def dataset_files(run_dir: Path) -> dict[str, bytes]:
    """Every step's output and every exported dataset file (not the card and manifest, which name the paths)."""
    files = {}
    for path in sorted(run_dir.rglob("*")):
        rel = path.relative_to(run_dir).as_posix()
        if path.is_file() and (path.name in ("output.jsonl", "merged.jsonl") or "/output/" in rel) and path.name not in (
            "README.md",
            "manifest.json",
        ):
            files[rel] = path.read_bytes()
    return files


def test_kill_9_during_an_llm_step_then_rerun_gives_the_datasets_of_an_uninterrupted_run(runner, tmp_path, monkeypatch):
    recipe = write_recipe(tmp_path, CHAIN)
    with FakeLLMServer(api_key=TEST_API_KEY, reply=teacher) as server:
        # Orca is slow: the subprocess is killed while it waits for answers
        server.latency = lambda body: 0.4 if is_orca(body) else 0.0
        killed_dir = tmp_path / "killed"
        proc = _popen_run(recipe, killed_dir, tmp_path / "home-killed", server)
        deadline = time.monotonic() + KILL_TIMEOUT
        try:
            while sum(1 for r in server.completed if is_orca(r.body)) < 4:
                assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
                assert time.monotonic() < deadline, "the run never reached the orca step"
                time.sleep(0.05)
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        answered_before_kill = sum(1 for r in server.completed if is_orca(r.body))

        assert (killed_dir / "03-simplify" / "fingerprint.json").is_file()
        assert not (killed_dir / "04-orca" / "fingerprint.json").exists()
        assert not (killed_dir / "04-orca" / "output.jsonl").exists()
        assert not (killed_dir / "05-export" / "output").exists()

        # the re-run resumes: finished steps skipped, Orca's finished answers from the cache
        server.latency = 0.0
        server.reset()
        proc = _popen_run(recipe, killed_dir, tmp_path / "home-killed", server)
        _out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
        resumed = rows(killed_dir)
        assert [s for s, row in resumed.items() if row["status"] == "ran"] == ["04-orca", "05-export"]
        assert all(is_orca(r.body) for r in server.chat_requests())
        # answers the server sent while the process was killed may not have reached the cache (concurrency: 2)
        assert resumed["04-orca"]["cache_hits"] >= answered_before_kill - 2 >= 2
        assert resumed["04-orca"]["requests"] == resumed["04-orca"]["records_in"] - resumed["04-orca"]["cache_hits"]

        # an uninterrupted run, with a cache of its own, in-process
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", TEST_API_KEY)
        monkeypatch.setenv("ITKIT_HOME", str(tmp_path / "home-clean"))
        clean_dir = tmp_path / "clean"
        assert run(runner, recipe, clean_dir, "-q").exit_code == 0

    killed, clean = dataset_files(killed_dir), dataset_files(clean_dir)
    assert "05-export/output/sft/trl/train.jsonl" in clean and "04-orca/output.jsonl" in clean
    assert killed.keys() == clean.keys()
    for name in clean:
        assert killed[name] == clean[name], name


@pytest.mark.parametrize("name", ["simplify", "evol_instruct", "orca", "self_instruct"])
def test_the_shipped_method_recipes_run_against_an_openai_compatible_endpoint(runner, tmp_path, llm_env, name):
    server = llm_env
    recipe = RECIPES / f"{name}.yaml"
    run_dir = tmp_path / "run"
    result = run(runner, recipe, run_dir, "--dry-run", "-q")
    assert result.exit_code == 0, result.stderr
    assert server.chat_requests() == []

    result = run(runner, recipe, run_dir, "-q")
    assert result.exit_code == 0, result.stderr
    steps = rows(run_dir)
    export = steps[list(steps)[-1]]
    assert export["type"] == "export" and export["outputs"]["sft"] > 0
    assert summary_of(run_dir)["totals"]["requests"] == len(server.chat_requests()) > 0
    for mode in ("lft", "sft"):
        for target in ("trl", "llama-factory"):
            assert (run_dir / export["step"] / "output" / mode / target / "train.jsonl").stat().st_size > 0


def test_a_step_that_cannot_go_on_stops_the_run_naming_the_step_and_never_the_key(runner, tmp_path, llm_env, monkeypatch):
    server = llm_env
    wrong_key = "sk-wrong-key-0123456789abcdef"
    monkeypatch.setenv("OPENAI_API_KEY", wrong_key)
    recipe = write_recipe(tmp_path, CHAIN)
    run_dir = tmp_path / "run"
    result = run(runner, recipe, run_dir, "-q")
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("itkit: error: step 03-simplify: "), result.stderr
    assert "0123456789abcdef" not in result.stderr
    summary = summary_of(run_dir)
    assert [row["step"] for row in summary["steps"]] == ["00-sources", "01-filter", "02-dedup"]
    assert summary["error"].startswith("step 03-simplify: ") and summary["exit_code"] == 1
    assert not (run_dir / "03-simplify" / "fingerprint.json").exists()
    assert len(server.chat_requests()) >= 1

    # with the right key, the run resumes at the step that stopped it
    monkeypatch.setenv("OPENAI_API_KEY", TEST_API_KEY)
    assert run(runner, recipe, run_dir, "-q").exit_code == 0
    assert [s for s, row in rows(run_dir).items() if row["status"] == "ran"] == ["03-simplify", "04-orca", "05-export"]


# ---------------------------------------------------------------------------
# the run table at 80 columns, headline figures, warnings
# ---------------------------------------------------------------------------


@pytest.fixture
def narrow(monkeypatch):
    """The run table as an 80-column terminal shows it."""
    import importlib

    monkeypatch.setattr(importlib.import_module("itkit.cli.root").err_console, "width", 80)


def table_lines(stderr: str) -> list[str]:
    lines = stderr.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("itkit run "))
    end = next(i for i, line in enumerate(lines) if line.startswith("run folder: "))
    return lines[start:end]


def test_the_run_table_fits_80_columns_and_shows_each_steps_own_figures(runner, tmp_path, llm_env, narrow):
    recipe = write_recipe(tmp_path, ALL_STEPS)
    run_dir = tmp_path / "run"
    result = run(runner, recipe, run_dir)
    assert result.exit_code == 0, result.stderr
    lines = table_lines(result.stderr)
    assert all(len(line) <= 80 for line in lines), "\n".join(lines)
    table = "\n".join(lines)
    assert "…" not in table  # nothing truncated
    steps = rows(run_dir)
    # every number of the summary is in the table, whole
    for name, row in steps.items():
        assert name in table
        if row["requests"]:
            tokens = row["tokens"]["prompt"] + row["tokens"]["completion"]
            assert f"{row['requests']:,} req" in table and f"{tokens:,} tok" in table
    assert table.count("cost n/a") == 5  # four LLM steps and the total: the teacher has no price
    evol = steps["05-evol-instruct"]["headline"]
    n_evol = steps["05-evol-instruct"]["records_in"]
    assert evol["evolutions tried"] == n_evol and evol["survived"] == n_evol  # one round; the teacher's rewrites all survive
    simplify = steps["04-simplify"]["headline"]
    assert set(simplify) >= {"shortened", "came out longer"} and simplify["shortened"] > 0
    header = next(line for line in lines if line.startswith("step"))
    left = header.index("what it did")
    details = " ".join(re.split(r"\s{2,}", line[left:].strip())[0] for line in lines if len(line) > left and line[left] != " ")
    assert f"evolutions tried {n_evol:,}, survived {n_evol:,}" in details
    assert f"shortened {simplify['shortened']:,}, came out longer {simplify['came out longer']:,}" in details
    dedup = steps["03-dedup"]["removed"]
    if dedup:  # dedup: removed per stage
        assert f"removed {sum(dedup.values()):,}: " in details
    export = steps["07-export"]["outputs"]
    assert f"lft {export['lft']:,}" in table and f"sft {export['sft']:,}" in table
    assert summary_of(run_dir)["warnings"] == []


def test_a_step_that_produced_nothing_of_what_it_exists_for_warns(runner, tmp_path, monkeypatch, narrow):
    def judge_everything_equal(body: dict) -> str:
        return "Equal" if kind(body) == "equality" else teacher(body)

    recipe = write_recipe(
        tmp_path,
        """
        name: evol-none
        sources:
          - {path: SAMPLES/alpaca.json, format: alpaca}
        llm: {model: teacher, max_retries: 1, concurrency: 4}
        steps:
          - evol-instruct: {rounds: 1, ops: deepening}
        export: {target: [trl], lft_size: 5}
        """,
    )
    run_dir = tmp_path / "run"
    with FakeLLMServer(api_key=TEST_API_KEY, reply=judge_everything_equal) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", TEST_API_KEY)
        result = run(runner, recipe, run_dir)
    assert result.exit_code == 0, result.stderr
    expected = "01-evol-instruct: 0 of 32 evolutions survived (eliminated: no_information_gain 32)"
    warned = [line for line in result.stderr.splitlines() if line.startswith(f"itkit: warning: {expected}")]
    assert len(warned) == 1, result.stderr  # said once as it happened...
    assert f"warning: {expected}" in "\n".join(result.stderr.splitlines()[-4:-2])  # ...and again under the table
    summary = summary_of(run_dir)
    assert any(w.startswith(expected) for w in summary["warnings"])
    assert rows(run_dir)["01-evol-instruct"]["warnings"][0].startswith("0 of 32 evolutions survived")
    assert rows(run_dir)["01-evol-instruct"]["headline"]["survived"] == 0
    # a re-run that reuses the output says it again
    with FakeLLMServer(api_key=TEST_API_KEY, reply=judge_everything_equal) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        again = run(runner, recipe, run_dir)
    assert again.exit_code == 0 and f"itkit: warning: {expected}" in again.stderr
