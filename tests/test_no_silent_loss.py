"""Every input record ends in the output, in the failures file verbatim, or counted: LLM failures, limits, empty steps.

Driven through the CLI against the local OpenAI-compatible server; assertions on the files left and the exit codes.
"""

from __future__ import annotations

import json
import os
import re
import textwrap
from pathlib import Path

import pytest

from conftest import SHARED, invoke
from llm_server import Fault, FakeLLMServer

from itkit.failures import FAILURE_KEY

os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(SHARED / "tiktoken"))

ORIGINAL = re.compile(r"Original answer:\n<<<\n(.*)\n>>>\n\nRewrite the original answer", re.S)


def short(body: dict) -> str:
    """Simplify's answer: the original's first word; Orca's and Evol's: something plausible."""
    text = body["messages"][-1]["content"]
    match = ORIGINAL.search(text)
    if match:
        return match.group(1).split()[0]
    if "#Given Prompt#" in text:
        return "#Rewritten Prompt#:\n" + text.split("#Given Prompt#:\n", 1)[1].rsplit("\n\n#", 1)[0] + " In French."
    if "Decide whether they are equal" in text:
        return "Not Equal"
    if "Score: <a number" in text:  # a judge (itkit score)
        return "Score: 4\nReason: Fine."
    return "Because it is so, step by step."


def doomed(req, attempt):
    """Every request about a record whose instruction says FAIL gets a 500."""
    return Fault("500") if "FAIL" in json.dumps(req.body["messages"]) else None


ROWS = [
    {"instruction": "Name a colour.", "output": "Blue is a colour of the sky."},
    {"instruction": "FAIL one", "input": "ctx", "output": "A long answer that will not be simplified.", "note": 1},
    {"id": 7, "instruction": "Say hi.", "output": "Hello there, my friend."},
    {"instruction": "FAIL two", "output": "Another long answer here.", "category": "x"},
]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def llm(runner, command: str, src, out, server, *args: str, input: str | None = None):
    return invoke(
        runner, command, src, "-o", out, "--base-url", server.base_url, "--max-retries", "0", *args, input=input
    )


def failure_rows(path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def server():
    with FakeLLMServer(api_key=None, reply=short) as fake:
        yield fake


@pytest.mark.parametrize("command", ["simplify", "orca", "evol-instruct", "score"])
def test_failed_records_are_kept_verbatim_and_feed_straight_back(runner, tmp_path, server, command):
    src = write_jsonl(tmp_path / "in.jsonl", ROWS)
    out = tmp_path / "out.jsonl"
    extra = ["--rounds", "1"] if command == "evol-instruct" else []
    server.faults = doomed
    result = llm(runner, command, src, out, server, *extra)
    assert result.exit_code == 3, result.stderr
    # evol-instruct keeps a record whose request failed as the parent of its lineage: it is written unchanged
    assert len(out.read_text().splitlines()) == (4 if command == "evol-instruct" else 2)
    failures = failure_rows(f"{out}.failures.jsonl")
    # the input rows, byte for byte the same JSON values, plus where and why
    assert [{k: v for k, v in f.items() if k != FAILURE_KEY} for f in failures] == [ROWS[1], ROWS[3]]
    assert [f[FAILURE_KEY]["line"] for f in failures] == [2, 4]
    assert all(f[FAILURE_KEY]["source"] == str(src) and "HTTP 500" in f[FAILURE_KEY]["reason"] for f in failures)
    assert not any("id" in f for f in failures), "no id is made up for a record that had none"

    # fed straight back (the server is well now): the same records, and nothing fails
    server.faults = None
    again = tmp_path / "retried.jsonl"
    result = llm(runner, command, f"{out}.failures.jsonl", again, server, *extra)
    assert result.exit_code == 0, result.stderr
    retried = [json.loads(line) for line in again.read_text().splitlines()]
    assert [r["instruction"].split(" In French")[0].split("\n")[0] for r in retried] == ["FAIL one", "FAIL two"]
    assert all(FAILURE_KEY not in r for r in retried)
    assert not Path(f"{again}.failures.jsonl").exists()


def test_failed_records_read_from_stdin_are_kept_too(runner, tmp_path, server):
    server.faults = doomed
    out = tmp_path / "out.jsonl"
    text = "".join(json.dumps(r) + "\n" for r in ROWS)
    result = llm(runner, "simplify", "-", out, server, input=text)
    assert result.exit_code == 3, result.stderr
    failures = failure_rows(f"{out}.failures.jsonl")
    assert [{k: v for k, v in f.items() if k != FAILURE_KEY} for f in failures] == [ROWS[1], ROWS[3]]
    assert [(f[FAILURE_KEY]["source"], f[FAILURE_KEY]["line"]) for f in failures] == [("<stdin>", 2), ("<stdin>", 4)]


def test_failures_of_a_json_array_keep_their_index_and_format(runner, tmp_path, server):
    rows = [{"conversations": [{"from": "human", "value": r["instruction"]}, {"from": "gpt", "value": r["output"]}]} for r in ROWS]
    src = tmp_path / "in.json"
    src.write_text(json.dumps(rows, indent=1))
    server.faults = doomed
    out = tmp_path / "out.json"
    result = llm(runner, "simplify", src, out, server, "--to", "alpaca")
    assert result.exit_code == 3, result.stderr
    failures = failure_rows(f"{out}.failures.jsonl")
    assert [{k: v for k, v in f.items() if k != FAILURE_KEY} for f in failures] == [rows[1], rows[3]]
    assert [f[FAILURE_KEY]["index"] for f in failures] == [1, 3]


def test_limit_on_the_command_line_says_what_it_left_out(runner, tmp_path, server):
    src = write_jsonl(tmp_path / "in.jsonl", ROWS[:1] + ROWS[2:3] + [{"instruction": f"q{i}", "output": "a b c"} for i in range(5)])
    out = tmp_path / "out.jsonl"
    result = llm(runner, "simplify", src, out, server, "--limit", "2")
    assert result.exit_code == 0, result.stderr
    assert len(out.read_text().splitlines()) == 2
    assert "--limit 2: 5 more input records not processed and not written" in result.stderr
    summary = json.loads(Path(f"{out}.summary.json").read_text())
    assert summary["counts"]["not_processed_beyond_limit"] == 5


RECIPE = """
sources:
  - path: in.jsonl
llm:
  base_url: "{url}"
  max_retries: 0
  limit: 2
steps:
  - {step}
"""


@pytest.mark.parametrize("step", ["simplify: {}", "orca: {}", "evol-instruct: {rounds: 1}"])
def test_a_recipe_step_with_a_limit_passes_the_rest_through(runner, tmp_path, server, step):
    rows = [{"instruction": f"Question {i}?", "output": f"Answer number {i} in many words."} for i in range(6)]
    write_jsonl(tmp_path / "in.jsonl", rows)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(textwrap.dedent(RECIPE.format(url=server.base_url, step=step)))
    result = invoke(runner, "run", recipe, "--run-dir", tmp_path / "run")
    assert result.exit_code == 0, result.stderr
    (folder,) = [p for p in (tmp_path / "run").iterdir() if p.name.startswith("01-")]
    written = [json.loads(line) for line in (folder / "output.jsonl").read_text().splitlines()]
    assert len(written) == 6
    assert [{k: r[k] for k in ("instruction", "output")} for r in written[2:]] == rows[2:]  # unchanged, in order
    summary = json.loads((tmp_path / "run" / "run_summary.json").read_text())
    row = summary["steps"][1]
    assert (row["records_in"], row["records_out"], row["passed_through"]) == (6, 6, 4)
    assert "6 -> 6 records, 4 passed through unchanged (beyond the limit)" in result.stderr
    table = result.stderr.split("itkit run ", 1)[1]
    assert all(word in table.split() for word in ("passed", "through", "(beyond"))  # the step's "what it did" cell (wrapped)


FILTER_ALL = """
sources:
  - path: in.jsonl
steps:
  - filter: {rules: [empty]}
  - dedup: {}
"""


def test_a_step_that_keeps_nothing_gives_the_next_step_zero_records(runner, tmp_path):
    write_jsonl(tmp_path / "in.jsonl", [{"instruction": "q", "output": ""}, {"instruction": "", "output": "a"}])
    recipe = tmp_path / "r.yaml"
    recipe.write_text(FILTER_ALL)
    result = invoke(runner, "run", recipe, "--run-dir", tmp_path / "run")
    assert result.exit_code == 0, result.stderr
    steps = json.loads((tmp_path / "run" / "run_summary.json").read_text())["steps"]
    assert [(s["step"], s["records_in"], s["records_out"], s["produced_nothing"]) for s in steps] == [
        ("00-sources", 2, 2, False),
        ("01-filter", 2, 0, True),
        ("02-dedup", 0, 0, True),
    ]
    assert "0 (none left)" in result.stderr and "0 (empty)" in result.stderr
    assert (tmp_path / "run" / "02-dedup" / "output.jsonl").read_bytes() == b""


def test_an_export_after_an_empty_step_blames_that_step(runner, tmp_path):
    write_jsonl(tmp_path / "in.jsonl", [{"instruction": "q", "output": ""}])
    recipe = tmp_path / "r.yaml"
    recipe.write_text(FILTER_ALL + "export:\n  mode: sft\n")
    result = invoke(runner, "run", recipe, "--run-dir", tmp_path / "run")
    assert result.exit_code == 1
    assert "(its input is empty: step 02-dedup produced no records)" in result.stderr
    assert "internal error" not in result.stderr and "is empty; expected" not in result.stderr


def test_an_llm_step_whose_every_record_failed_exits_3_and_the_next_step_runs_on_nothing(runner, tmp_path, server):
    rows = [{"instruction": "FAIL a", "output": "x y z"}, {"instruction": "FAIL b", "output": "x y"}]
    write_jsonl(tmp_path / "in.jsonl", rows)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "sources:\n  - path: in.jsonl\n"
        f"llm:\n  base_url: \"{server.base_url}\"\n  max_retries: 0\n"
        "steps:\n  - simplify: {}\n  - dedup: {}\n"
    )
    server.faults = lambda req, attempt: Fault("empty")  # every answer comes back empty: every record fails
    result = invoke(runner, "run", recipe, "--run-dir", tmp_path / "run")
    assert result.exit_code == 3, result.stderr
    steps = json.loads((tmp_path / "run" / "run_summary.json").read_text())["steps"]
    assert [(s["records_in"], s["records_out"], s["failed"], s["produced_nothing"]) for s in steps[1:]] == [
        (2, 0, 2, True),
        (0, 0, 0, True),
    ]
    failures = failure_rows(tmp_path / "run" / "01-simplify" / "failures.jsonl")
    assert [{k: f[k] for k in ("instruction", "output")} for f in failures] == rows
    assert (tmp_path / "run" / "02-dedup" / "output.jsonl").read_bytes() == b""


def test_empty_stdin_is_an_empty_dataset(runner, tmp_path):
    out = tmp_path / "out.jsonl"
    filtered = invoke(runner, "filter", "-", "-o", "-", "--rules", "empty", input='{"instruction": "q", "output": ""}\n')
    assert filtered.exit_code == 0 and filtered.stdout == ""
    result = invoke(runner, "dedup", "-", "-o", out, input=filtered.stdout)
    assert result.exit_code == 0, result.stderr
    assert out.read_bytes() == b""
    for text in ("", "\n\n", "[]"):
        again = invoke(runner, "convert", "-", "-o", tmp_path / "c.jsonl", input=text)
        assert again.exit_code == 0 and "converted 0 of 0 records" in again.stderr


def test_an_empty_input_file_is_an_empty_dataset_in_every_container(runner, tmp_path):
    for name, content in (("e.jsonl", b""), ("e.json", b"[]\n"), ("e.csv", b"instruction,output\r\n")):
        src = tmp_path / name
        src.write_bytes(content)
        result = invoke(runner, "convert", src, "-o", tmp_path / f"out-{name}.parquet", "--to", "sharegpt")
        assert result.exit_code == 0, result.stderr
        back = invoke(runner, "convert", tmp_path / f"out-{name}.parquet", "-o", tmp_path / f"back-{name}.jsonl")
        assert back.exit_code == 0 and (tmp_path / f"back-{name}.jsonl").read_bytes() == b""


def test_an_llm_command_names_the_fields_its_output_format_cannot_hold(runner, tmp_path, server):
    src = write_jsonl(tmp_path / "in.jsonl", [{"instruction": "Name a colour.", "output": "Blue is a colour.", "lang": "en"}])
    out = tmp_path / "out.jsonl"
    result = llm(runner, "simplify", src, out, server, "--to", "sharegpt")
    assert result.exit_code == 0, result.stderr
    assert "fields sharegpt cannot hold, left out: 'lang' (1 record)" in result.stderr
    assert json.loads(Path(f"{out}.summary.json").read_text())["fields_left_out"] == {"lang": 1}


def test_a_dry_run_with_a_limit_says_what_a_run_would_leave_out(runner, tmp_path, server):
    src = write_jsonl(tmp_path / "in.jsonl", [{"instruction": f"q{i}", "output": "a b c"} for i in range(4)])
    result = llm(runner, "simplify", src, tmp_path / "out.jsonl", server, "--limit", "1", "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert "--limit 1: 3 more input records not processed and not written" in result.stdout
    assert not server.chat_requests() and not (tmp_path / "out.jsonl").exists()
