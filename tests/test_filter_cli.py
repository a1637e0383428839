"""`itkit filter` end to end: files written, report lines, summary counts, formats kept, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import SHARED, invoke, without_added_ids
from itkit.filters import build_rules, filter_file

ALPACA = [
    {"instruction": "Say hi", "input": "", "output": "Hi!"},
    {"instruction": "Give the answer", "input": "", "output": "<No Output>"},
    {"instruction": "Explain recursion", "input": "", "output": "I'm sorry, but I can't help with that."},
    {"instruction": "Summarise this article", "input": "https://example.com/cats", "output": "Cats are great."},
    {"instruction": "", "input": "some context", "output": "An answer."},
    {"instruction": "Name a colour", "input": "", "output": "Blue is the colour of the sky on a clear day."},
    {"instruction": "Extract the date. Write N/A if there is none.", "input": "We met.", "output": "N/A"},
    {"instruction": "Reply politely", "input": "", "output": "I'm sorry to hear that, here is what you can do."},
]
KEPT_ALPACA = [0, 5, 6, 7]

DOLLY = [
    {"instruction": "What is the capital of France?", "context": "", "response": "Paris.", "category": "open_qa"},
    {"instruction": "Summarise.", "context": "<no input>", "response": "Nothing to say.", "category": "summarization"},
    {"instruction": "Classify the animal.", "context": "A whale.", "response": "   ", "category": "classification"},
    {"instruction": "Who wrote Hamlet?", "context": "", "response": "Shakespeare.", "category": "open_qa"},
]

SHAREGPT = [
    {"id": "a", "conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello! How can I help?"}]},
    {"id": "b", "conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}, {"from": "human", "value": "Are you there?"}]},
    {"id": "c", "conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": ""}, {"from": "human", "value": "Hello?"}, {"from": "gpt", "value": "Yes."}]},
    {"id": "d", "model": "gpt-4", "conversations": [{"from": "system", "value": "Be brief."}, {"from": "human", "value": "Tell me a joke"}, {"from": "gpt", "value": "As an AI language model, I don't tell jokes."}]},
    {"id": "e", "conversations": [{"from": "user", "value": "2+2?"}, {"from": "assistant", "value": "4", "weight": 1}]},
]


def write_json(path: Path, rows: list[dict]) -> Path:
    path.write_text(json.dumps(rows, ensure_ascii=False, indent=1), encoding="utf-8")
    return path


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# ---------------------------------------------------------------------------
# the default rules, output, report and summary
# ---------------------------------------------------------------------------


def test_filter_alpaca_default_rules(runner, tmp_path):
    src = write_json(tmp_path / "alpaca.json", ALPACA)
    out, report = tmp_path / "clean.json", tmp_path / "removed.jsonl"
    result = invoke(runner, "filter", src, "-o", out, "--report", report)
    assert result.exit_code == 0, result.stderr
    # kept records: same format, same rows, same order
    kept = json.loads(out.read_text())
    assert without_added_ids(kept, [ALPACA[i] for i in KEPT_ALPACA]) == [ALPACA[i] for i in KEPT_ALPACA]
    assert [r["id"] for r in kept] == [f"alpaca-{i}" for i in KEPT_ALPACA]  # the ids of the source rows
    lines = read_jsonl(report)
    assert [(r["index"], r["rule"]) for r in lines] == [(1, "placeholder"), (2, "refusal"), (3, "non_text"), (4, "empty")]
    first = lines[0]
    assert first == {
        "id": "alpaca-1",
        "source": str(src),
        "index": 1,
        "rule": "placeholder",
        "reason": 'response is the placeholder "<No Output>"',
        "record": ALPACA[1],
    }
    assert lines[2]["reason"] == 'input is not text: "https://example.com/cats"'
    # every record accounted for: kept + reported
    assert len(json.loads(out.read_text())) + len(lines) == len(ALPACA)
    # the summary on stderr
    err = result.stderr
    for label, n in [("in", 8), ("removed: empty", 1), ("removed: placeholder", 1), ("removed: alternation", 0),
                     ("removed: non_text", 1), ("removed: refusal", 1), ("kept", 4)]:
        assert any(label in line and line.rstrip(" │").endswith(f" {n}") for line in err.splitlines()), (label, err)
    assert f"wrote 4 record(s) to {out}" in err
    assert f"4 removed record(s) with reasons in {report}" in err
    assert result.stdout == ""


def test_filter_json_summary(runner, tmp_path):
    src = write_json(tmp_path / "alpaca.json", ALPACA)
    out = tmp_path / "clean.jsonl"
    result = invoke(runner, "filter", src, "-o", out, "--json", "--max-response", "8")
    assert result.exit_code == 0
    summary = json.loads(result.stdout)
    assert summary["rows"] == summary["records"] == 8
    assert summary["kept"] == summary["written"] == 2  # two responses of 10+ words are now too long
    assert summary["removed_by_rule"] == {
        "empty": 1, "placeholder": 1, "alternation": 0, "non_text": 1, "refusal": 1, "length": 2,
    }
    assert summary["removed"] == 6
    assert summary["rules"][-1] == {"name": "length", "params": {"max_response": 8}}
    assert [json.loads(line)["instruction"] for line in out.read_text().splitlines()] == [
        "Say hi", "Extract the date. Write N/A if there is none."
    ]


def test_filter_rules_subset_in_the_given_order(runner, tmp_path):
    src = write_json(tmp_path / "alpaca.json", ALPACA)
    out = tmp_path / "out.json"
    result = invoke(runner, "filter", src, "-o", out, "--rules", "refusal, empty", "--json")
    assert result.exit_code == 0
    summary = json.loads(result.stdout)
    assert summary["removed_by_rule"] == {"refusal": 1, "empty": 1}
    assert len(json.loads(out.read_text())) == 6  # placeholder and URL records stay


def test_filter_length_in_tokens(runner, tmp_path, monkeypatch):
    if not (SHARED / "tiktoken").is_dir():
        pytest.skip("../shared/tiktoken is not present")
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(SHARED / "tiktoken"))
    rows = [
        {"instruction": "Say a word", "input": "", "output": "Hello"},
        {"instruction": "Say a long word", "input": "", "output": "Pneumonoultramicroscopicsilicovolcanoconiosis"},
    ]
    src = write_json(tmp_path / "a.json", rows)
    out, report = tmp_path / "out.json", tmp_path / "r.jsonl"
    args = ("filter", src, "-o", out, "--rules", "length", "--max-response", "3", "--report", report)
    assert invoke(runner, *args).exit_code == 0
    assert without_added_ids(json.loads(out.read_text()), rows) == rows  # one word each: within 3 words
    assert invoke(runner, *args, "--length-unit", "tokens", "--tokenizer-model", "gpt-4o").exit_code == 0
    assert without_added_ids(json.loads(out.read_text()), rows[:1]) == rows[:1]
    (line,) = read_jsonl(report)
    assert line["rule"] == "length" and "tokens, more than max_response 3" in line["reason"]


def test_filter_placeholder_and_refusal_options(runner, tmp_path):
    rows = [
        {"instruction": "Q1", "input": "", "output": "nothing here"},
        {"instruction": "Q2", "input": "", "output": "Nope, I refuse."},
        {"instruction": "Extract the date. Write N/A if none.", "input": "", "output": "N/A"},
    ]
    src = write_json(tmp_path / "a.json", rows)
    out = tmp_path / "out.json"
    result = invoke(
        runner, "filter", src, "-o", out, "--json",
        "--placeholder", "Nothing here", "--refusal-pattern", r"nope\b", "--drop-requested-placeholders",
    )
    assert result.exit_code == 0
    assert json.loads(result.stdout)["removed_by_rule"]["placeholder"] == 2
    assert json.loads(result.stdout)["removed_by_rule"]["refusal"] == 1
    assert json.loads(out.read_text()) == []


# ---------------------------------------------------------------------------
# formats
# ---------------------------------------------------------------------------


def test_filter_keeps_dolly_format_and_reports_lines(runner, tmp_path):
    src = tmp_path / "dolly.jsonl"
    # a blank line between records: the report's line is the file's line, index the record's position
    src.write_text("\n".join(json.dumps(r) for r in DOLLY[:2]) + "\n\n" + "\n".join(json.dumps(r) for r in DOLLY[2:]) + "\n")
    out, report = tmp_path / "out.jsonl", tmp_path / "r.jsonl"
    result = invoke(runner, "filter", src, "-o", out, "-q", "--report", report)
    assert result.exit_code == 0 and result.stderr == ""
    assert without_added_ids(read_jsonl(out), [DOLLY[0], DOLLY[3]]) == [DOLLY[0], DOLLY[3]]  # "<no input>" context and blank response removed
    assert [(r["index"], r["line"], r["rule"], r["reason"]) for r in read_jsonl(report)] == [
        (1, 2, "placeholder", 'input is the placeholder "<no input>"'),
        (2, 4, "empty", "response is empty"),
    ]


def test_filter_keeps_sharegpt_format_exactly(runner, tmp_path):
    src = write_json(tmp_path / "chats.json", SHAREGPT)
    out, report = tmp_path / "out.json", tmp_path / "r.jsonl"
    result = invoke(runner, "filter", src, "-o", out, "--report", report)
    assert result.exit_code == 0
    # role spellings, extra keys per turn and per record survive
    assert json.loads(out.read_text()) == [SHAREGPT[0], SHAREGPT[4]]
    assert [(r["id"], r["rule"], r["reason"]) for r in read_jsonl(report)] == [
        ("b", "alternation", "the conversation ends with an unanswered user turn (turn 3)"),
        ("c", "alternation", "turn 2 (assistant) is empty in the middle of the conversation"),
        ("d", "refusal", 'response has assistant boilerplate: "As an AI language model"'),
    ]
    assert read_jsonl(report)[2]["record"] == SHAREGPT[3]  # the source row, system turn and extra key included


def test_filter_converts_with_to(runner, tmp_path):
    src = write_json(tmp_path / "alpaca.json", ALPACA)
    out = tmp_path / "out.jsonl"
    assert invoke(runner, "filter", src, "-o", out, "--to", "messages", "-q").exit_code == 0
    rows = read_jsonl(out)
    assert len(rows) == 4
    assert rows[0]["messages"] == [{"role": "user", "content": "Say hi"}, {"role": "assistant", "content": "Hi!"}]


def test_filter_streams_stdin_to_stdout(runner, tmp_path):
    data = "".join(json.dumps(r) + "\n" for r in ALPACA)
    result = invoke(runner, "filter", "-", "-q", input=data)
    assert result.exit_code == 0
    kept = [json.loads(line) for line in result.stdout.splitlines()]
    assert without_added_ids(kept, [ALPACA[i] for i in KEPT_ALPACA]) == [ALPACA[i] for i in KEPT_ALPACA]


# ---------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------


def test_unknown_rule_is_a_usage_error(runner, tmp_path):
    src = write_json(tmp_path / "a.json", ALPACA)
    out = tmp_path / "out.json"
    result = invoke(runner, "filter", src, "-o", out, "--rules", "empty,profanity")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "itkit: error: unknown rule 'profanity'; valid rules: "
        "empty, placeholder, alternation, non_text, refusal, length, language, score"
    )
    assert not out.exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (("--rules", "empty", "--max-response", "5"), "--max-response is a parameter of rule 'length', which is not among the selected rules (empty)"),
        (("--min-response", "9", "--max-response", "3"), "rule 'length': --min-response (9) is greater than --max-response (3)"),
        (("--max-response", "-2"), "--max-response must be a whole number >= 0"),
        (("--encoding", "o200k_base"), "--encoding and --tokenizer-model set the tokenizer of --length-unit tokens"),
        (("--scripts", "latin,elvish"), "unknown script 'elvish'"),
        (("--refusal-pattern", "(unclosed"), "--refusal-pattern: invalid regular expression '(unclosed'"),
        (("--rules", "length"), "rule 'length' needs at least one bound"),
        (("--rules", " , "), "no rules selected"),
    ],
)
def test_bad_rule_options_are_usage_errors(runner, tmp_path, args, message):
    src = write_json(tmp_path / "a.json", ALPACA)
    result = invoke(runner, "filter", src, "-o", tmp_path / "out.json", *args)
    assert result.exit_code == 2, result.stderr
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_json_summary_needs_an_output_file(runner, tmp_path):
    src = write_json(tmp_path / "a.json", ALPACA)
    result = invoke(runner, "filter", src, "--json")
    assert result.exit_code == 2 and "--json prints the summary to stdout" in result.stderr
    result = invoke(runner, "filter", src, "-o", tmp_path / "o.json", "--report", tmp_path / "o.json")
    assert result.exit_code == 2 and "-o and --report name the same file" in result.stderr


def test_bad_input_fails_and_writes_nothing(runner, tmp_path):
    rows = "".join(json.dumps(r) + "\n" for r in ALPACA[:3]) + '{"instruction": "x", "output": 5}\n'
    src = tmp_path / "bad.jsonl"
    src.write_text(rows)
    out, report = tmp_path / "out.jsonl", tmp_path / "r.jsonl"
    result = invoke(runner, "filter", src, "-o", out, "--report", report)
    assert result.exit_code == 1
    assert result.stderr.strip() == f"itkit: error: {src}, line 4: field 'output': must be a string, got integer"
    assert not out.exists() and not report.exists()
    assert list(tmp_path.iterdir()) == [src]  # no temporary files left behind either


def test_on_error_skip_accounts_for_every_row(runner, tmp_path):
    rows = "".join(json.dumps(r) + "\n" for r in ALPACA) + "{not json\n"
    src = tmp_path / "bad.jsonl"
    src.write_text(rows)
    out, report, errors = tmp_path / "out.jsonl", tmp_path / "r.jsonl", tmp_path / "e.jsonl"
    result = invoke(runner, "filter", src, "-o", out, "--report", report, "--on-error", "skip", "--errors", errors, "--json")
    assert result.exit_code == 3
    summary = json.loads(result.stdout)
    assert summary["rows"] == 9 and summary["rejected"] == 1
    assert summary["rows"] == summary["written"] + summary["removed"] + summary["rejected"]
    assert len(read_jsonl(out)) == 4 and len(read_jsonl(report)) == 4
    (bad,) = read_jsonl(errors)
    assert bad["line"] == 9 and bad["raw"] == "{not json"


def test_missing_source(runner, tmp_path):
    result = invoke(runner, "filter", tmp_path / "nope.json", "-o", tmp_path / "o.json")
    assert result.exit_code == 1 and "no such file" in result.stderr


# ---------------------------------------------------------------------------
# help and the library entry point
# ---------------------------------------------------------------------------


def test_help_lists_every_rule(runner):
    result = invoke(runner, "filter", "--help")
    assert result.exit_code == 0
    for name in ("empty*", "placeholder*", "alternation*", "non_text*", "refusal*", "length", "language"):
        assert name in result.stdout
    assert "--max-response" in result.stdout and "--report" in result.stdout


def test_filter_file_library_call(tmp_path):
    src = write_json(tmp_path / "alpaca.json", ALPACA)
    out = tmp_path / "out.parquet"
    result = filter_file(str(src), str(out), build_rules(["placeholder", "empty"]))
    assert result.counts.removed == {"placeholder": 1, "empty": 1}
    assert result.written == 6 and out.exists()
    assert result.as_dict()["removed"] == 2


def test_filter_real_sharegpt_sample(runner, realdata, tmp_path):
    src = realdata / "sharegpt_fastchat_sample.json"
    out, report = tmp_path / "out.json", tmp_path / "r.jsonl"
    result = invoke(runner, "filter", src, "-o", out, "--report", report, "--json")
    assert result.exit_code == 0
    summary = json.loads(result.stdout)
    kept = json.loads(out.read_text())
    removed = read_jsonl(report)
    assert summary["records"] == 500 == len(kept) + len(removed)
    # FastChat's identity answers ("As a language model, I go by the name Vicuna...") are assistant boilerplate
    assert removed and all(r["rule"] == "refusal" and r["id"].startswith("identity_") for r in removed)
    # kept records come back exactly as read, in order
    original = json.loads(src.read_text())
    removed_ids = {r["id"] for r in removed}
    assert kept == [row for row in original if row["id"] not in removed_ids]
