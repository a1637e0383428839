"""End-to-end tests of ``itkit orca``: the real CLI, engine and OpenAI client against a local HTTP server."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import SHARED, invoke, read_failures
from llm_server import TEST_API_KEY, echo_text, fake_llm  # noqa: F401  (fake_llm: a fixture)

from itkit.methods.orca.system_messages import load_system_messages
from itkit.methods.orca.task_types import load_task_table

TIKTOKEN_DIR = SHARED / "tiktoken"  # ../shared beside the repository
MESSAGES = load_system_messages()
TEXT_TO_NUMBER = {MESSAGES.text(n): n for n in MESSAGES.numbers}
TABLE = load_task_table(MESSAGES.numbers)

DOLLY = [
    {"instruction": "Who wrote Hamlet?", "context": "", "response": "Shakespeare.", "category": "open_qa"},
    {"instruction": "When did the bridge open?", "context": "The bridge opened in 1937 after four years of work.", "response": "1937", "category": "closed_qa"},
    {"instruction": "Classify each as fruit or vegetable: apple, carrot.", "context": "", "response": "apple: fruit", "category": "classification"},
    {"instruction": "Summarize the text.", "context": "Cats sleep a lot. They hunt at night.", "response": "Cats sleep.", "category": "summarization"},
    {"instruction": "Give me ideas for a {party} with ${budget}.", "context": "Use {{ theme }} and %s.", "response": "Games.", "category": "brainstorming"},
    {"instruction": "List the names in the text.", "context": "Ann met Bo in Oslo.", "response": "Ann, Bo", "category": "information_extraction"},
]


@pytest.fixture(autouse=True)
def _tiktoken_cache(monkeypatch):
    if not os.environ.get("TIKTOKEN_CACHE_DIR") and TIKTOKEN_DIR.is_dir():
        monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(TIKTOKEN_DIR))


def _jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def _read(path: str | Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines()]


def _orca(runner, server, src: str, out: str, *args: str):
    return invoke(
        runner, "orca", src, "-o", out, "--base-url", server.base_url, "--api-key", TEST_API_KEY,
        "--model", "teacher", "--cache-dir", str(Path(out).parent / "cache"), "--quiet", *args,
    )


def test_dolly_to_openorca_by_category(runner, tmp_path, fake_llm):
    src = _jsonl(tmp_path / "dolly.jsonl", DOLLY)
    out = str(tmp_path / "orca.jsonl")
    result = _orca(runner, fake_llm, src, out, "--to", "openorca")
    assert result.exit_code == 0, result.stderr

    requests = fake_llm.chat_requests()
    assert len(requests) == len(DOLLY)
    by_question = {}
    for request in requests:
        messages = request.messages
        question = messages[-1]["content"]
        number = TEXT_TO_NUMBER[messages[0]["content"]] if messages[0]["role"] == "system" else 1
        by_question[question] = number
        assert request.body["model"] == "teacher"

    rows = _read(out)
    # OpenOrca's fields plus itkit's metadata (category, provenance)
    assert [list(r) for r in rows] == [["id", "system_prompt", "question", "response", "metadata"]] * len(DOLLY)
    assert [r["id"] for r in rows] == [f"dolly-{i}" for i in range(len(DOLLY))]
    for row, source in zip(rows, DOLLY):
        question = f"{source['instruction']}\n\n{source['context']}" if source["context"] else source["instruction"]
        assert row["question"] == question  # verbatim, braces and $ included
        assert row["response"] == echo_text(question)  # the answer to its own request
        number = by_question[question]
        assert row["system_prompt"] == MESSAGES.text(number)
        expected_type = TABLE.categories[source["category"]]
        assert number in TABLE.messages_for(expected_type)

    summary = json.loads(Path(f"{out}.summary.json").read_text())
    assert summary["command"] == "orca"
    assert summary["counts"] == {"read": 6, "rejected_input": 0, "written": 6, "failed": 0}
    assert summary["orca"]["task_type_found_by"] == {"category": 6}
    assert summary["assignment"] == {"mode": "by-type", "seed": 0, "system_messages": None}
    assert summary["templates"]["request"].startswith("respond@1#")
    assert TEST_API_KEY not in Path(f"{out}.summary.json").read_text()
    assert not Path(f"{out}.failures.jsonl").exists()

    # the same command again: everything from the cache, byte-identical output
    first = Path(out).read_bytes()
    fake_llm.reset()
    again = _orca(runner, fake_llm, src, out, "--to", "openorca")
    assert again.exit_code == 0
    assert fake_llm.chat_requests() == []
    assert Path(out).read_bytes() == first


def test_keeps_the_input_format_and_regenerates_multi_turn_final_answers(runner, tmp_path, fake_llm):
    rows = [
        {"id": "c1", "conversations": [
            {"from": "human", "value": "Name a planet."}, {"from": "gpt", "value": "Mars."},
            {"from": "human", "value": "Why is it red? Explain step by step."}, {"from": "gpt", "value": "Iron."},
        ]},
        {"id": "c2", "system": "Old persona", "conversations": [
            {"from": "human", "value": "Translate 'hello' into Italian."}, {"from": "gpt", "value": "ciao"},
        ]},
    ]
    src = _jsonl(tmp_path / "chats.jsonl", rows)
    out = str(tmp_path / "out.jsonl")
    result = _orca(runner, fake_llm, src, out)
    assert result.exit_code == 0, result.stderr
    written = _read(out)
    assert [w["id"] for w in written] == ["c1", "c2"]
    c1 = written[0]
    assert [t["value"] for t in c1["conversations"][:3]] == ["Name a planet.", "Mars.", "Why is it red? Explain step by step."]
    assert c1["conversations"][3]["value"] == echo_text("Why is it red? Explain step by step.")
    assert TEXT_TO_NUMBER[c1["system"]] in TABLE.messages_for("cot")
    assert TEXT_TO_NUMBER[written[1]["system"]] in TABLE.messages_for("translation")
    request = next(r for r in fake_llm.chat_requests() if r.last_user.startswith("Why"))
    assert [m["role"] for m in request.messages] == ["system", "user", "assistant", "user"]
    assert [m["content"] for m in request.messages[1:]] == ["Name a planet.", "Mars.", "Why is it red? Explain step by step."]

    # OpenOrca holds one exchange: refused before anything is sent
    fake_llm.reset()
    refused = _orca(runner, fake_llm, src, str(tmp_path / "orca.jsonl"), "--to", "openorca")
    assert refused.exit_code == 1
    assert "record 'c1'" in refused.stderr and "has 2 exchanges; openorca holds one" in refused.stderr
    assert fake_llm.chat_requests() == []


def test_uniform_with_a_fixed_set_and_seed(runner, tmp_path, fake_llm):
    rows = [{"id": f"r{i}", "instruction": f"Task number {i}.", "input": "", "output": "x"} for i in range(24)]
    src = _jsonl(tmp_path / "a.jsonl", rows)
    out = str(tmp_path / "o.jsonl")
    result = _orca(runner, fake_llm, src, out, "--assign", "uniform", "--system-messages", "2,5,7", "--seed", "11")
    assert result.exit_code == 0, result.stderr
    used = [TEXT_TO_NUMBER[row["system"]] for row in _read(out)]
    assert set(used) == {2, 5, 7}
    assert all(r.body["seed"] == 11 for r in fake_llm.chat_requests())
    summary = json.loads(Path(f"{out}.summary.json").read_text())
    assert summary["assignment"] == {"mode": "uniform", "seed": 11, "system_messages": [2, 5, 7]}
    assert sum(summary["orca"]["system_messages"].values()) == 24

    other = str(tmp_path / "o2.jsonl")
    _orca(runner, fake_llm, src, other, "--assign", "uniform", "--system-messages", "2,5,7", "--seed", "12")
    assert [TEXT_TO_NUMBER[row["system"]] for row in _read(other)] != used


def test_garbage_and_empty_answers_finish_with_exit_3_and_every_failure_recorded(runner, tmp_path, fake_llm):
    rows = [{"id": f"g{i}", "instruction": f"Question {i}?", "input": "", "output": "x"} for i in range(8)]
    src = _jsonl(tmp_path / "in.jsonl", rows)

    def reply(body):
        question = body["messages"][-1]["content"]
        n = int(question.split()[1].rstrip("?"))
        if n % 4 == 0:
            return "#### ... ####"  # no letters: garbage
        if n % 4 == 1:
            return ""  # empty
        if n % 4 == 2:
            return {"content": "Because the", "finish_reason": "length"}  # cut off
        return f"A fine answer to question {n}."

    fake_llm.reply = reply
    fake_llm.faults = lambda request, attempt: "malformed" if request.last_user == "Question 7?" else None
    out = str(tmp_path / "out.jsonl")
    result = _orca(runner, fake_llm, src, out, "--max-retries", "1")
    assert result.exit_code == 3, result.stderr

    written = _read(out)
    assert [w["id"] for w in written] == ["g3"]
    assert written[0]["output"] == "A fine answer to question 3."
    failures = {f["id"]: f for f in read_failures(f"{out}.failures.jsonl")}
    assert sorted(failures) == ["g0", "g1", "g2", "g4", "g5", "g6", "g7"]
    for rid in ("g0", "g4"):
        assert "no letters or digits" in failures[rid]["reason"] and failures[rid]["response"] == "#### ... ####"
    for rid in ("g1", "g5"):
        assert failures[rid]["reason"].startswith("empty response") and failures[rid]["response"] == ""
    for rid in ("g2", "g6"):
        assert "finish_reason=length" in failures[rid]["reason"] and failures[rid]["response"] == "Because the"
    assert "malformed" in failures["g7"]["reason"]
    for failure in failures.values():
        assert failure["orca_system_message"] in MESSAGES.numbers and failure["task_type"] == "open_qa"
    summary = json.loads(Path(f"{out}.summary.json").read_text())
    assert summary["counts"] == {"read": 8, "rejected_input": 0, "written": 1, "failed": 7}
    assert summary["failures"]["count"] == 7
    # two attempts per failed record (--max-retries 1), one for the good one
    assert len(fake_llm.chat_requests()) == 7 * 2 + 1


def test_dry_run_renders_prompts_estimates_and_sends_nothing(runner, tmp_path, fake_llm):
    src = _jsonl(tmp_path / "dolly.jsonl", DOLLY)
    out = tmp_path / "o.jsonl"
    result = _orca(runner, fake_llm, src, str(out), "--to", "openorca", "--dry-run", "--limit", "4", "--price-in", "1", "--price-out", "2")
    assert result.exit_code == 0, result.stderr
    assert fake_llm.chat_requests() == []
    assert not out.exists()
    text = result.stdout
    assert "--- request 1 of 4 (teacher) ---" in text
    assert "[user]\nWho wrote Hamlet?" in text
    assert "requests to send: 4" in text
    assert "estimated cost: $" in text
    assert "system messages: #" in text and "task types: " in text
    assert "closed_qa x1" in text


def test_limit_sends_only_the_first_records(runner, tmp_path, fake_llm):
    src = _jsonl(tmp_path / "dolly.jsonl", DOLLY)
    out = str(tmp_path / "o.jsonl")
    result = _orca(runner, fake_llm, src, out, "--to", "openorca", "--limit", "2")
    assert result.exit_code == 0
    assert len(fake_llm.chat_requests()) == 2
    assert [r["id"] for r in _read(out)] == ["dolly-0", "dolly-1"]


def test_dolly_output_cannot_hold_a_system_message(runner, tmp_path, fake_llm):
    src = _jsonl(tmp_path / "dolly.jsonl", DOLLY)
    out = tmp_path / "o.jsonl"
    result = _orca(runner, fake_llm, src, str(out), "--system-messages", "2")
    assert result.exit_code == 1
    assert "record 'dolly-0'" in result.stderr and "dolly cannot hold" in result.stderr and "--to" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert fake_llm.chat_requests() == [] and not out.exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--system-messages", "2,17"], "--system-messages: there is no system message #17"),
        (["--system-messages", "two"], "--system-messages: 'two' is not a message number"),
    ],
)
def test_bad_options_are_usage_errors(runner, tmp_path, fake_llm, args, message):
    src = _jsonl(tmp_path / "dolly.jsonl", DOLLY)
    result = _orca(runner, fake_llm, src, str(tmp_path / "o.jsonl"), "--to", "openorca", *args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert fake_llm.chat_requests() == []


def test_bad_prompts_dir_file_is_reported_before_any_request(runner, tmp_path, fake_llm):
    (tmp_path / "p" / "orca").mkdir(parents=True)
    (tmp_path / "p" / "orca" / "task_types.yaml").write_text(
        "name: t\nversion: 1\ntypes:\n  general: {messages: [1, 99]}\ndefault_type: general\n", encoding="utf-8"
    )
    src = _jsonl(tmp_path / "dolly.jsonl", DOLLY)
    result = _orca(runner, fake_llm, src, str(tmp_path / "o.jsonl"), "--to", "openorca", "--prompts-dir", str(tmp_path / "p"))
    assert result.exit_code == 1
    assert "task_types.yaml: field 'types.general.messages': no system message #99" in result.stderr
    assert fake_llm.chat_requests() == []


def test_invalid_key_stops_at_once(runner, tmp_path, fake_llm):
    src = _jsonl(tmp_path / "dolly.jsonl", DOLLY)
    out = tmp_path / "o.jsonl"
    result = invoke(
        runner, "orca", src, "-o", str(out), "--to", "openorca", "--base-url", fake_llm.base_url,
        "--api-key", "sk-wrong-key-0123456789", "--cache-dir", str(tmp_path / "cache"), "--quiet",
    )
    assert result.exit_code == 1
    assert "sk-wrong-key-0123456789" not in result.stderr
    assert len(fake_llm.chat_requests()) <= 16  # at most the requests already in flight
    assert not out.exists()


def test_bad_input_rows_are_skipped_into_the_errors_file(runner, tmp_path, fake_llm):
    src = tmp_path / "in.jsonl"
    src.write_text(
        json.dumps({"id": "ok1", "instruction": "Name a river.", "input": "", "output": "x"}) + "\n"
        + '{"id": "broken", "instruction": \n'
        + json.dumps({"id": "ok2", "instruction": "Name a lake.", "input": "", "output": "y"}) + "\n",
        encoding="utf-8",
    )
    out = str(tmp_path / "o.jsonl")
    result = _orca(runner, fake_llm, str(src), out, "--on-error", "skip")
    assert result.exit_code == 3, result.stderr
    assert [r["id"] for r in _read(out)] == ["ok1", "ok2"]
    [error] = _read(f"{out}.errors.jsonl")
    assert error["line"] == 2 and error["raw"].startswith('{"id": "broken"')
    summary = json.loads(Path(f"{out}.summary.json").read_text())
    assert summary["counts"] == {"read": 2, "rejected_input": 1, "written": 2, "failed": 0}
