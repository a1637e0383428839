"""End-to-end tests of ``itkit evol-instruct``: the real CLI, engine and OpenAI client against a local HTTP server."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from conftest import SHARED, invoke, read_failures
from llm_server import TEST_API_KEY, fake_llm  # noqa: F401  (fixture)

from itkit.methods.evol_instruct.elimination import RULES
from itkit.methods.evol_instruct.operations import OPERATION_NAMES, choose_operation

TIKTOKEN_DIR = SHARED / "tiktoken"  # ../shared beside the repository

ALPACA = [
    {"id": "a", "instruction": "Give three tips for staying healthy.", "input": "", "output": "Eat well."},
    {"id": "b", "instruction": "Summarise the text.", "input": "Cats sleep a lot. They hunt at night.", "output": "Cats sleep."},
    {"id": "c", "instruction": "Fill {name} with ${x} and {{ y }} and %s.", "input": "", "output": "Done."},
    {"id": "d", "instruction": "Name a prime number.", "input": "", "output": "7"},
]


@pytest.fixture(autouse=True)
def _tiktoken_cache(monkeypatch):
    if not os.environ.get("TIKTOKEN_CACHE_DIR") and TIKTOKEN_DIR.is_dir():
        monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(TIKTOKEN_DIR))


def kind(body: dict) -> str:
    text = body["messages"][-1]["content"]
    if "\n#Given Prompt#:\n" in text:
        return "evolve"
    if "Decide whether they are equal" in text:
        return "equality"
    return "response"


def given(body: dict) -> str:
    text = body["messages"][-1]["content"]
    return text.split("#Given Prompt#:\n", 1)[1].rsplit("\n\n#", 1)[0]


def good_reply(body: dict) -> str:
    k = kind(body)
    if k == "evolve":
        return f"{given(body)} Answer in exactly three short bullet points."
    if k == "equality":
        return "Not Equal"
    return f"Here is a careful answer to: {body['messages'][-1]['content'][:30]}"


def write_json(path: Path, rows: list[dict]) -> str:
    path.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    return str(path)


def read_jsonl(path: str | Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines()]


def run(runner, server, src: str, out: str, *args: str):
    return invoke(
        runner, "evol-instruct", src, "-o", out, "--base-url", server.base_url, "--api-key", TEST_API_KEY,
        "--model", "teacher", "--max-retries", "1", "--quiet", *args,
    )


def test_one_round_end_to_end(runner, tmp_path, fake_llm):
    fake_llm.reply = good_reply
    src = write_json(tmp_path / "alpaca.json", ALPACA)
    out = tmp_path / "evolved.jsonl"
    result = run(runner, fake_llm, src, str(out), "--seed", "7")
    assert result.exit_code == 0, result.stderr

    rows = read_jsonl(out)
    assert [r["id"] for r in rows] == ["a-evol-r1", "b-evol-r1", "c-evol-r1", "d-evol-r1"]
    assert set(rows[0]) == {"id", "instruction", "input", "output", "metadata"}  # alpaca in, alpaca out
    assert rows[1]["instruction"] == (
        "Summarise the text.\n\nCats sleep a lot. They hunt at night. Answer in exactly three short bullet points."
    )
    assert rows[1]["input"] == "" and rows[1]["output"].startswith("Here is a careful answer to: Summarise")
    assert rows[2]["instruction"].startswith("Fill {name} with ${x} and {{ y }} and %s.")  # verbatim through the prompts

    requests = fake_llm.chat_requests()
    assert len(requests) == 12
    assert sorted(kind(r.body) for r in requests) == ["equality"] * 4 + ["evolve"] * 4 + ["response"] * 4
    for r in requests:
        if kind(r.body) == "equality":
            assert r.body["temperature"] == 0
        if kind(r.body) == "evolve":
            assert r.body["temperature"] == 1.0 and r.body["top_p"] == 0.95
            assert r.body["seed"] == 7

    summary = json.loads(Path(f"{out}.summary.json").read_text())
    assert summary["command"] == "evol-instruct"
    assert summary["counts"] == {
        "read": 4, "rejected_input": 0, "evolved": 4, "unchanged": 0, "failed": 0, "skipped": 0, "written": 4,
    }
    evo = summary["evol_instruct"]
    assert evo["rounds"] == 1 and evo["seed"] == 7 and evo["operations"] == list(OPERATION_NAMES)
    assert evo["eliminated_by_rule"] == {rule: 0 for rule in RULES}
    expected_ops = [choose_operation(OPERATION_NAMES, 7, rid, 1) for rid in "abcd"]
    assert {op: n["attempted"] for op, n in evo["by_operation"].items() if n["attempted"]} == {
        op: expected_ops.count(op) for op in set(expected_ops)
    }
    assert summary["engine"]["requests"] == 12
    assert summary["settings"]["api_key"] == "**********"
    assert TEST_API_KEY not in Path(f"{out}.summary.json").read_text()
    assert not Path(f"{out}.failures.jsonl").exists()


def test_rerun_with_the_same_cache_is_byte_identical_and_sends_nothing(runner, tmp_path, fake_llm):
    fake_llm.reply = good_reply
    src = write_json(tmp_path / "alpaca.json", ALPACA)
    out1, out2 = tmp_path / "one.json", tmp_path / "two.json"
    assert run(runner, fake_llm, src, str(out1), "--rounds", "3", "--keep-rounds", "all", "-j", "8").exit_code == 0
    sent = len(fake_llm.chat_requests())
    assert sent == 4 * 3 * 3
    assert run(runner, fake_llm, src, str(out2), "--rounds", "3", "--keep-rounds", "all", "-j", "2").exit_code == 0
    assert len(fake_llm.chat_requests()) == sent
    assert out1.read_bytes() == out2.read_bytes()
    ids = [r["id"] for r in json.loads(out1.read_text())]
    assert ids[:4] == ["a", "a-evol-r1", "a-evol-r2", "a-evol-r3"] and len(ids) == 16

    # the lineage travels with each record, in its metadata
    rows = json.loads(out1.read_text())
    a3 = rows[3]["metadata"]["provenance"]
    assert [(p["round"], p["parent_id"]) for p in a3] == [(1, "a"), (2, "a-evol-r1"), (3, "a-evol-r2")]
    assert [p["operation"] for p in a3] == [choose_operation(OPERATION_NAMES, 0, "a", k) for k in (1, 2, 3)]
    step = a3[0]
    assert step["method"] == "evol-instruct" and step["model"] == "teacher"
    assert re.fullmatch(r"[a-z_]+@2#[0-9a-f]{12}", step["template"]) and step["template"].endswith(step["template_hash"])
    # one schema per file: every row has an id and metadata; an input record's provenance is empty
    assert rows[0]["metadata"] == {"provenance": []} and rows[0]["id"] == "a"
    assert all(set(r) == set(rows[0]) for r in rows), [sorted(r) for r in rows]


def test_evolving_an_evolved_file_extends_the_lineage(runner, tmp_path, fake_llm):
    fake_llm.reply = good_reply
    src = write_json(tmp_path / "alpaca.json", ALPACA[:1])
    first, second = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    assert run(runner, fake_llm, src, str(first)).exit_code == 0
    assert run(runner, fake_llm, str(first), str(second)).exit_code == 0
    (row,) = read_jsonl(second)
    assert row["id"] == "a-evol-r1-evol-r1"
    assert [p["parent_id"] for p in row["metadata"]["provenance"]] == ["a", "a-evol-r1"]


def test_eliminations_are_counted_and_parents_carry_on(runner, tmp_path, fake_llm):
    takes: dict[str, int] = {}

    def reply(body):
        k, text = kind(body), body["messages"][-1]["content"]
        if k == "evolve":
            # a kept parent is evolved again in round 2: the model's second sample differs
            takes[given(body)] = takes.get(given(body), 0) + 1
            if given(body).startswith("Name a prime"):
                return f"Rewrite the given prompt about prime numbers (take {takes[given(body)]})."  # rule 4
            return f"{given(body)} Use bullet points (take {takes[given(body)]})."
        if k == "equality" and "Give three tips" in text:
            return "Equal"  # rule 1
        if k == "response" and text.startswith("Summarise"):
            return "Sorry, I cannot summarise that."  # rule 2
        if k == "response" and text.startswith("Fill"):
            return "It is what it is."  # rule 3
        return good_reply(body)

    fake_llm.reply = reply
    src = write_json(tmp_path / "alpaca.json", ALPACA)
    out = tmp_path / "out.jsonl"
    dropped = tmp_path / "dropped.jsonl"
    result = run(runner, fake_llm, src, str(out), "--rounds", "2", "--eliminated", str(dropped))
    assert result.exit_code == 0, result.stderr
    rows = read_jsonl(out)
    # every evolution failed for every record: the final pool is the input, unchanged
    assert [r["id"] for r in rows] == ["a", "b", "c", "d"]
    assert rows == [{k: v for k, v in r.items()} for r in ALPACA]
    summary = json.loads(Path(f"{out}.summary.json").read_text())
    evo = summary["evol_instruct"]
    assert evo["eliminated_by_rule"] == {
        "no_information_gain": 2, "sorry_response": 2, "stop_words_response": 2, "copied_markers": 2,
    }
    assert summary["counts"]["unchanged"] == 4 and summary["counts"]["evolved"] == 0
    assert evo["by_round"] == [
        {"round": 1, "attempted": 4, "survived": 0, "eliminated": 4, "failed": 0},
        {"round": 2, "attempted": 4, "survived": 0, "eliminated": 4, "failed": 0},
    ]
    lines = read_jsonl(dropped)
    assert len(lines) == 8 and {l["rule"] for l in lines} == set(RULES)
    sorry = [l for l in lines if l["rule"] == "sorry_response"][0]
    assert sorry["id"] == "b" and sorry["response"] == "Sorry, I cannot summarise that." and sorry["round"] == 1
    assert sorry["instruction"].endswith("Use bullet points (take 1).") and sorry["parent_id"] == "b"
    # eliminated rewrites (rules 1 and 4) get no response request
    kinds = [kind(r.body) for r in fake_llm.chat_requests()]
    assert kinds.count("evolve") == 8 and kinds.count("equality") == 6 and kinds.count("response") == 4


def test_garbage_server_finishes_with_exit_3_and_records_raw_responses(runner, tmp_path, fake_llm):
    fake_llm.reply = lambda body: "\u00af\\_(\u30c4)_/\u00af lorem ipsum"
    src = write_json(tmp_path / "alpaca.json", ALPACA)
    out = tmp_path / "out.json"
    result = run(runner, fake_llm, src, str(out))
    assert result.exit_code == 3
    assert json.loads(out.read_text()) == ALPACA  # a failed request keeps the parent, and --keep final writes it
    failures = read_failures(f"{out}.failures.jsonl")
    assert [f["id"] for f in failures] == ["a", "b", "c", "d"]
    for f in failures:
        assert f["response"] == "\u00af\\_(\u30c4)_/\u00af lorem ipsum" and f["parent_kept"] is True
        assert f["stage"] == "equality" and f["round"] == 1 and f["parent_id"] == f["id"]
        assert "neither 'Equal' nor 'Not Equal'" in f["reason"] and f["operation"] in OPERATION_NAMES
        assert f["instruction"] == "\u00af\\_(\u30c4)_/\u00af lorem ipsum"  # the rewrite that was being checked
    summary = json.loads(Path(f"{out}.summary.json").read_text())
    assert summary["counts"]["failed"] == 4 and summary["failures"]["count"] == 4
    assert summary["evol_instruct"]["failed_by_stage"] == {"evolve": 0, "equality": 4, "response": 0}


def test_a_labelled_rewrite_is_eliminated_unless_salvage_labels(runner, tmp_path, fake_llm):
    fake_llm.reply = lambda body: ("#Rewritten Prompt#:\n" + good_reply(body)) if kind(body) == "evolve" else good_reply(body)
    src = write_json(tmp_path / "alpaca.json", ALPACA[:2])
    strict, salvaged = tmp_path / "strict.jsonl", tmp_path / "salvaged.jsonl"
    assert run(runner, fake_llm, src, str(strict)).exit_code == 0
    assert [r["id"] for r in read_jsonl(strict)] == ["a", "b"]
    summary = json.loads(Path(f"{strict}.summary.json").read_text())
    assert summary["evol_instruct"]["eliminated_by_rule"]["copied_markers"] == 2
    assert summary["evol_instruct"]["salvage_labels"] is False
    result = run(runner, fake_llm, src, str(salvaged), "--salvage-labels")
    assert result.exit_code == 0, result.stderr
    rows = read_jsonl(salvaged)
    assert [r["id"] for r in rows] == ["a-evol-r1", "b-evol-r1"]
    assert not rows[0]["instruction"].startswith("#") and rows[0]["metadata"]["provenance"][0]["salvaged_label"] is True
    summary = json.loads(Path(f"{salvaged}.summary.json").read_text())
    assert summary["evol_instruct"]["evolutions"]["salvaged_labels"] == 2


def test_empty_and_cut_off_replies_become_failures_with_keep_all_survivors(runner, tmp_path, fake_llm):
    fake_llm.reply = good_reply
    # round 2 of record "b" fails at its response: empty, then cut off
    def faults(request, attempt):
        body = request.body or {}
        if body.get("messages") and kind(body) == "response" and body["messages"][-1]["content"].count("bullet points") == 2:
            if body["messages"][-1]["content"].startswith("Summarise"):
                return "empty" if attempt == 0 else "length"
        return None

    fake_llm.faults = faults
    src = write_json(tmp_path / "alpaca.json", ALPACA[:2])
    out = tmp_path / "out.jsonl"
    result = run(runner, fake_llm, src, str(out), "--rounds", "2", "--keep-rounds", "all")
    assert result.exit_code == 3, result.stderr
    assert [r["id"] for r in read_jsonl(out)] == ["a", "a-evol-r1", "a-evol-r2", "b", "b-evol-r1"]
    final = tmp_path / "final.jsonl"
    assert run(runner, fake_llm, src, str(final), "--rounds", "2").exit_code == 3
    assert [r["id"] for r in read_jsonl(final)] == ["a-evol-r2", "b-evol-r1"]  # b's parent stayed in the pool
    (failure,) = read_failures(f"{out}.failures.jsonl")
    assert failure["id"] == "b" and failure["stage"] == "response" and failure["round"] == 2
    assert failure["parent_id"] == "b-evol-r1" and "length limit" in failure["reason"]


def test_dry_run_estimates_every_round_and_sends_nothing(runner, tmp_path, fake_llm):
    src = write_json(tmp_path / "alpaca.json", ALPACA)
    out = tmp_path / "out.json"
    result = run(runner, fake_llm, src, str(out), "--rounds", "4", "--dry-run", "--price-in", "1", "--price-out", "2")
    assert result.exit_code == 0, result.stderr
    assert fake_llm.chat_requests() == []
    assert not out.exists() and not Path(f"{out}.summary.json").exists()
    text = result.stdout
    assert "requests to send: 48" in text
    assert "#Given Prompt#:\nGive three tips for staying healthy." in text  # a rendered rewrite prompt
    assert "Decide whether they are equal" in text  # the equality prompt
    assert "estimated cost: $" in text and "4 records x 4 round(s)" in text


def test_limit_processes_the_first_records(runner, tmp_path, fake_llm):
    fake_llm.reply = good_reply
    src = write_json(tmp_path / "alpaca.json", ALPACA)
    out = tmp_path / "out.jsonl"
    assert run(runner, fake_llm, src, str(out), "--limit", "2").exit_code == 0
    assert [r["id"] for r in read_jsonl(out)] == ["a-evol-r1", "b-evol-r1"]
    assert len(fake_llm.chat_requests()) == 6


def test_ops_restriction_and_user_temperature(runner, tmp_path, fake_llm):
    fake_llm.reply = good_reply
    src = write_json(tmp_path / "alpaca.json", ALPACA[:2])
    out = tmp_path / "out.jsonl"
    result = run(runner, fake_llm, src, str(out), "--ops", "in-breadth", "--temperature", "0.3")
    assert result.exit_code == 0, result.stderr
    for r in fake_llm.chat_requests():
        k = kind(r.body)
        if k == "evolve":
            assert "#Created Prompt#:" in r.body["messages"][-1]["content"]
        assert r.body["temperature"] == (0 if k == "equality" else 0.3)
    summary = json.loads(Path(f"{out}.summary.json").read_text())
    assert summary["evol_instruct"]["operations"] == ["in_breadth"]
    assert summary["settings"]["temperature"] == 0.3


def test_multi_turn_records_are_skipped_to_the_failures_file(runner, tmp_path, fake_llm):
    fake_llm.reply = good_reply
    rows = [
        {"id": "chat", "conversations": [
            {"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello!"},
            {"from": "human", "value": "Tell me a joke."}, {"from": "gpt", "value": "No."}]},
        {"id": "one", "conversations": [{"from": "human", "value": "Name a colour."}, {"from": "gpt", "value": "Red."}]},
    ]
    src = tmp_path / "chats.json"
    src.write_text(json.dumps(rows))
    out = tmp_path / "out.json"
    result = run(runner, fake_llm, str(src), str(out))
    assert result.exit_code == 3
    written = json.loads(out.read_text())
    assert [r["id"] for r in written] == ["one-evol-r1"] and written[0]["conversations"][0]["from"] == "human"
    (failure,) = read_failures(f"{out}.failures.jsonl")
    assert failure["id"] == "chat" and failure["stage"] == "input" and "multi-turn" in failure["reason"]
    assert all("Tell me a joke" not in json.dumps(r.body) for r in fake_llm.chat_requests())


def test_bad_ops_is_a_usage_error_before_any_request(runner, tmp_path, fake_llm):
    src = write_json(tmp_path / "alpaca.json", ALPACA)
    result = run(runner, fake_llm, src, str(tmp_path / "o.json"), "--ops", "deepening,shuffle")
    assert result.exit_code == 2
    assert "unknown operation 'shuffle'" in result.stderr
    assert fake_llm.chat_requests() == []


def test_a_broken_template_override_fails_before_any_request(runner, tmp_path, fake_llm):
    folder = tmp_path / "prompts" / "evol_instruct"
    folder.mkdir(parents=True)
    (folder / "equality.yaml").write_text(
        "name: equality\nversion: 2\nvariables: [first]\nmessages:\n  - role: user\n    content: '{{first}} {{second}}'\n"
    )
    src = write_json(tmp_path / "alpaca.json", ALPACA)
    out = tmp_path / "o.json"
    result = run(runner, fake_llm, src, str(out), "--prompts-dir", str(folder.parent))
    assert result.exit_code == 1
    assert re.search(r"equality\.yaml: uses undeclared variables: second", result.stderr)
    assert fake_llm.chat_requests() == [] and not out.exists()


def test_a_format_that_cannot_hold_the_records_fails_before_any_request(runner, tmp_path, fake_llm):
    rows = [{"id": "s", "system": "Be brief.", "instruction": "Name a river.", "input": "", "output": "Nile."}]
    src = write_json(tmp_path / "alpaca.json", rows)
    out = tmp_path / "o.jsonl"
    result = run(runner, fake_llm, src, str(out), "--to", "dolly")
    assert result.exit_code != 0 and "record 's'" in result.stderr and "nothing was sent" in result.stderr
    assert fake_llm.chat_requests() == [] and not out.exists()


def test_the_per_operation_lines_fit_80_columns(runner, tmp_path, fake_llm, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    fake_llm.reply = good_reply
    src = write_json(tmp_path / "alpaca.json", ALPACA)
    out = tmp_path / "evolved.jsonl"
    result = invoke(runner, "evol-instruct", src, "-o", str(out), "--base-url", fake_llm.base_url, "--api-key",
                    TEST_API_KEY, "--model", "teacher", "--max-retries", "1", "--seed", "7")
    assert result.exit_code == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("    ") and "attempted" in line]
    assert sorted(line.split()[0] for line in lines) == sorted(OPERATION_NAMES)  # one line each: not wrapped
    assert all(line.rstrip().endswith("failed") and len(line) <= 80 for line in lines), lines
