"""``itkit simplify`` end to end: the CLI, the real engine and SDK, the local OpenAI-compatible server."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import pytest

from conftest import SAMPLES, SHARED, invoke, read_failures
from llm_server import TEST_API_KEY, Fault, FakeLLMServer

from itkit.formats.base import META_ID_GENERATED
from itkit.dataset import RecordReader, read_records, write_records
from itkit.llm.cache import ResponseCache
from itkit.llm.engine import Engine
from itkit.llm.openai_client import OpenAIChatLLM
from itkit.llm.settings import LLMSettings
from itkit.records import Record
from itkit.simplify import META_LONGER, META_ORIGINAL_OUTPUT, META_VIOLATIONS, Simplifier, needs_simplifying
from itkit.simplify_checks import run_checks
from itkit.templates import load_template

os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(SHARED / "tiktoken"))

ORIGINAL = re.compile(r"Original answer:\n<<<\n(.*)\n>>>\n\nRewrite the original answer", re.S)


def halve(text: str) -> str:
    words = text.split()
    return " ".join(words[: max(1, len(words) // 2)])


def original_of(body: dict) -> str:
    """The original answer, from the first user message (a retry adds the rewrite and a follow-up after it)."""
    first_user = next(m for m in body["messages"] if m["role"] == "user")
    match = ORIGINAL.search(first_user["content"])
    assert match, "the prompt carries the original answer"
    return match.group(1)


def simplify_reply(body: dict) -> str:
    """A model that keeps the first half of the original answer's words."""
    return halve(original_of(body))


def digest(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest(), 16)


@pytest.fixture
def server():
    with FakeLLMServer(api_key=TEST_API_KEY, reply=simplify_reply) as fake:
        yield fake


def run(runner, server, *args, key: str = TEST_API_KEY):
    return invoke(runner, "simplify", *args, "--base-url", server.base_url, "--api-key", key, "--max-retries", "3")


def make_alpaca(path: Path, n: int, prefix: str = "item") -> list[dict]:
    rows = [
        {
            "id": f"in-{i}",
            "instruction": f"Explain {prefix} {i} in detail.",
            "input": "",
            "output": f"The {prefix} number {i} is explained here with several words, "
            f"namely alpha{i} beta{i} gamma{i} delta{i} epsilon{i} and finally zeta{i}.",
        }
        for i in range(n)
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return rows


SAMPLE_FILES = [
    "alpaca.json",
    "alpaca_variants.jsonl",
    "dolly.jsonl",
    "dolly.csv",
    "dolly.parquet",
    "sharegpt.json",
    "messages.jsonl",
    "openorca.jsonl",
    "seed_tasks.jsonl",
]


@pytest.mark.parametrize("name", SAMPLE_FILES)
def test_every_input_format_keeps_its_format_and_changes_only_the_final_response(runner, server, tmp_path, name):
    source = SAMPLES / name
    suffix = ".jsonl" if name.endswith((".csv", ".parquet")) else "".join(Path(name).suffixes)
    out = tmp_path / f"out{suffix}"
    result = run(runner, server, source, "-o", out)
    assert result.exit_code == 0, result.stderr
    before = RecordReader(str(source))
    originals = list(before)
    after = RecordReader(str(out))
    rewritten = list(after)
    assert after.format.name == before.format.name
    assert len(rewritten) == len(originals)
    assert [r.id for r in rewritten if not r.metadata.get(META_ID_GENERATED)] == [
        r.id for r in originals if not r.metadata.get(META_ID_GENERATED)
    ]
    asked = 0
    for old, new in zip(originals, rewritten):
        assert new.system == old.system and new.input == old.input
        assert [t.content for t in new.turns[:-1]] == [t.content for t in old.turns[:-1]]
        if needs_simplifying(old):
            half = halve(old.output)
            if run_checks(old.output.strip(), half):  # e.g. a code block or "The answer is 8" cut in half
                asked += 2  # the retry names the problem; this model halves again; the original is kept
                assert new.output == old.output and new.metadata[META_VIOLATIONS]
            else:
                asked += 1
                assert new.output == half
        else:
            assert new.turns == old.turns
    assert len(server.chat_requests()) == asked
    summary = json.loads(Path(f"{out}.summary.json").read_text())
    counts = summary["counts"]
    assert counts["read"] == len(originals) == counts["written"]
    assert (
        counts["simplified"] + counts["longer_kept"] + counts["kept_original"] + counts["no_response_passed_through"]
        == len(originals)
    )


def test_multi_turn_prompt_shows_the_earlier_conversation(runner, server, tmp_path):
    result = run(runner, server, SAMPLES / "sharegpt.json", "-o", tmp_path / "out.json", "--limit", "1")
    assert result.exit_code == 0, result.stderr
    [record] = read_records(str(SAMPLES / "sharegpt.json"))[:1]
    prompt = server.chat_requests()[0].body["messages"][-1]["content"]
    assert record.is_multi_turn
    assert "Earlier in the conversation:" in prompt and record.turns[0].content in prompt
    assert f"Request:\n<<<\n{record.prompt}\n>>>" in prompt


def test_rerun_sends_nothing_and_writes_identical_bytes(runner, server, tmp_path):
    out = tmp_path / "out.jsonl"
    assert run(runner, server, SAMPLES / "dolly.jsonl", "-o", out).exit_code == 0
    first = out.read_bytes()
    sent = len(server.chat_requests())
    assert sent > 0
    server.reset()
    result = run(runner, server, SAMPLES / "dolly.jsonl", "-o", out)
    assert result.exit_code == 0
    assert server.requests == []
    assert out.read_bytes() == first
    engine = json.loads(Path(f"{out}.summary.json").read_text())["engine"]
    assert engine["requests"] == 0 and engine["cache_hits"] == sent
    assert "0 sent" in result.stderr and f"{sent} from cache" in result.stderr


def test_answers_stay_with_their_records_and_every_record_is_accounted_for(runner, server, tmp_path):
    source = tmp_path / "in.jsonl"
    rows = make_alpaca(source, 300)
    doomed = {i for i in range(300) if i % 37 == 5}
    kinds = ["429", "500", "drop", "timeout", "malformed", "empty", "length", None, None, None]

    def faults(request, attempt):
        text = original_of(request.body)
        number = int(re.search(r"alpha(\d+)", text).group(1))
        if number in doomed:
            return "empty" if number % 2 else "503"
        if attempt == 0:
            kind = kinds[digest(text) % len(kinds)]
            if kind == "429":
                return Fault("429", retry_after=0.05)
            if kind == "timeout":
                return Fault("timeout", hang=3)
            return kind
        return None

    server.faults = faults
    server.latency = lambda body: (digest(original_of(body)) % 30) / 1000
    out = tmp_path / "out.jsonl"
    result = run(runner, server, source, "-o", out, "--concurrency", "32", "--timeout", "1")
    assert result.exit_code == 3, result.stderr
    written = read_records(str(out))
    by_id = {r.id: r for r in written}
    failures = read_failures(f"{out}.failures.jsonl")
    failed_ids = {f["id"] for f in failures}
    all_ids = {f"in-{i}" for i in range(300)}
    assert set(by_id) | failed_ids == all_ids and not set(by_id) & failed_ids
    assert failed_ids == {f"in-{i}" for i in doomed}
    for i, row in enumerate(rows):
        if i not in doomed:
            assert by_id[f"in-{i}"].output == halve(row["output"])
            assert by_id[f"in-{i}"].instruction == row["instruction"]
    for failure in failures:
        number = int(failure["id"].split("-")[1])
        if number % 2:
            assert failure["reason"] == "empty response (gave up after 4 attempts)" and failure["response"] == ""
        else:
            assert failure["reason"] == "HTTP 503 (gave up after 4 attempts)"
    assert [r.id for r in written] == sorted(by_id, key=lambda x: int(x.split("-")[1]))
    summary = json.loads(Path(f"{out}.summary.json").read_text())
    assert summary["counts"]["read"] == 300
    assert summary["counts"]["written"] + summary["counts"]["failed"] == 300
    assert summary["failures"]["count"] == len(doomed)
    assert summary["engine"]["retries"] > 0 and summary["engine"]["rate_limited"] > 0
    assert f"{len(doomed)} failed" in result.stderr


def longer_reply_factory():
    def reply(body: dict) -> str:
        original = original_of(body)
        retry = len(body["messages"]) > 2  # the retry carries the rewrite and a follow-up naming the problem
        if retry:
            assert "it is longer than the original answer" in body["messages"][-1]["content"]
        if "ALWAYS" in original or ("ONCE" in original and not retry):
            return original + " plus some words the original never said"
        return halve(original)

    return reply


def length_guard_records(path: Path) -> None:
    write_records(
        str(path),
        [
            Record.single_turn("always", "Say it.", "ALWAYS long answer here"),
            Record.single_turn("once", "Say it.", "ONCE long answer here"),
            Record.single_turn("fine", "Say it.", "a fine long answer here"),
        ],
        "alpaca",
    )


def test_length_guard_retries_once_then_keeps_the_longer_rewrite(runner, server, tmp_path):
    server.reply = longer_reply_factory()
    source = tmp_path / "in.json"
    length_guard_records(source)
    out = tmp_path / "out.json"
    result = run(runner, server, source, "-o", out)
    assert result.exit_code == 0, result.stderr
    outputs = {r.id: r.output for r in read_records(str(out))}
    assert outputs == {
        "always": "ALWAYS long answer here plus some words the original never said",
        "once": "ONCE long",
        "fine": "a fine",
    }
    requests = [r.body["messages"] for r in server.chat_requests()]
    assert len(requests) == 5  # always x2, once x2, fine x1
    retries = [m for m in requests if len(m) > 2]
    assert len(retries) == 2 and all(m[-2]["role"] == "assistant" and m[-1]["role"] == "user" for m in retries)
    counts = json.loads(Path(f"{out}.summary.json").read_text())["counts"]
    assert counts["longer_kept"] == 1 and counts["simplified"] == 2
    server.reset()
    again = tmp_path / "again.json"
    assert run(runner, server, source, "-o", again).exit_code == 0
    assert server.requests == [] and again.read_bytes() == out.read_bytes()


def test_reject_longer_sends_the_record_to_the_failures_file(runner, server, tmp_path):
    server.reply = longer_reply_factory()
    source = tmp_path / "in.json"
    length_guard_records(source)
    out = tmp_path / "out.json"
    result = run(runner, server, source, "-o", out, "--reject-longer")
    assert result.exit_code == 3
    assert [r.id for r in read_records(str(out))] == ["once", "fine"]
    [failure] = read_failures(f"{out}.failures.jsonl")
    assert failure["id"] == "always"
    assert failure["reason"].startswith("the simplified response is longer than the original: it is longer than")
    assert failure["reason"].endswith("after 2 tries")
    assert failure["response"] == "ALWAYS long answer here plus some words the original never said"


def test_keep_original_flag_and_provenance_are_written_and_read_back(runner, server, tmp_path):
    server.reply = longer_reply_factory()
    source = tmp_path / "in.json"
    length_guard_records(source)
    out = tmp_path / "out.jsonl"
    result = run(runner, server, source, "-o", out, "--keep-original", "--model", "m-2", "--to", "messages")
    assert result.exit_code == 0, result.stderr
    template = load_template("simplify", "simplify")
    records = {r.id: r for r in read_records(str(out))}
    assert records["always"].metadata[META_ORIGINAL_OUTPUT] == "ALWAYS long answer here"
    assert records["always"].metadata[META_LONGER] is True
    assert records["fine"].metadata[META_ORIGINAL_OUTPUT] == "a fine long answer here"
    assert records["fine"].output == "a fine" and META_LONGER not in records["fine"].metadata
    assert records["fine"].provenance == [
        {"method": "simplify", "model": "m-2", "template": template.ref, "template_hash": template.hash, "parent_id": "fine"}
    ]
    plain = tmp_path / "plain.jsonl"
    assert run(runner, server, source, "-o", plain, "--to", "messages").exit_code == 0
    assert all(META_ORIGINAL_OUTPUT not in r.metadata for r in read_records(str(plain)))


def test_metadata_keeps_the_original_flags_longer_rewrites_and_records_provenance(server, tmp_path):
    server.reply = longer_reply_factory()
    settings = LLMSettings.resolve(env={}, api_key=TEST_API_KEY, base_url=server.base_url, quiet=True, model="m-1")
    template = load_template("simplify", "simplify")
    records = [
        Record.single_turn("always", "Say it.", "ALWAYS long answer here"),
        Record.single_turn("fine", "Say it.", "a fine long answer here", metadata={"category": "open_qa"}),
    ]
    with Engine(OpenAIChatLLM(settings), settings, ResponseCache.open()) as engine:
        outcomes = engine.run(records, Simplifier(engine, template, keep_original=True))
    always, fine = (o.value.record for o in outcomes)
    assert always.metadata[META_ORIGINAL_OUTPUT] == "ALWAYS long answer here" and always.metadata[META_LONGER] is True
    assert fine.metadata[META_ORIGINAL_OUTPUT] == "a fine long answer here" and META_LONGER not in fine.metadata
    assert fine.metadata["category"] == "open_qa" and fine.output == "a fine"
    assert fine.provenance == [
        {"method": "simplify", "model": "m-1", "template": template.ref, "template_hash": template.hash, "parent_id": "fine"}
    ]
    assert records[1].output == "a fine long answer here" and records[1].provenance == []  # inputs untouched


def test_records_without_a_response_pass_through_unchanged(runner, server, tmp_path):
    source = tmp_path / "in.jsonl"
    rows = [
        {"messages": [{"role": "user", "content": "Hi there, tell me a long story please."}]},
        {"messages": [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "A long answer with words."}]},
        {"messages": [{"role": "user", "content": "Q2?"}, {"role": "assistant", "content": "   "}]},
    ]
    source.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    out = tmp_path / "out.jsonl"
    result = run(runner, server, source, "-o", out)
    assert result.exit_code == 0
    written = [json.loads(line) for line in out.read_text().splitlines()]
    assert written[0] == rows[0] and written[2] == rows[2]
    assert written[1]["messages"][1]["content"] == "A long"
    assert len(server.chat_requests()) == 1
    counts = json.loads(Path(f"{out}.summary.json").read_text())["counts"]
    assert counts["no_response_passed_through"] == 2 and counts["simplified"] == 1
    assert "2 without a response (unchanged)" in result.stderr


def test_limit_processes_only_the_first_records(runner, server, tmp_path):
    out = tmp_path / "out.jsonl"
    result = run(runner, server, SAMPLES / "dolly.jsonl", "-o", out, "--limit", "3")
    assert result.exit_code == 0
    originals = read_records(str(SAMPLES / "dolly.jsonl"))[:3]
    assert [r.instruction for r in read_records(str(out))] == [r.instruction for r in originals]
    assert len(server.chat_requests()) == 3


def test_dry_run_sends_nothing_writes_nothing_and_estimates_the_cost(runner, server, tmp_path):
    out = tmp_path / "out.jsonl"
    result = run(runner, server, SAMPLES / "alpaca.json", "-o", out, "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert server.requests == []
    assert list(tmp_path.iterdir()) == []
    first = read_records(str(SAMPLES / "alpaca.json"))[0]
    stdout = result.stdout
    assert "--- request 1 of" in stdout and first.output in stdout
    planned = sum(1 for r in read_records(str(SAMPLES / "alpaca.json")) if needs_simplifying(r))
    assert f"requests to send: {planned}" in stdout
    assert re.search(r"estimated cost: \$\d+\.\d{4} \(at \$0\.15 / \$0\.6 per 1M tokens", stdout)
    assert "nothing was sent" in stdout


def test_invalid_key_stops_at_once_with_one_clear_line(runner, server, tmp_path):
    source = tmp_path / "in.jsonl"
    make_alpaca(source, 200)
    out = tmp_path / "out.jsonl"
    wrong = "sk-not-the-right-key-9876543210"
    result = run(runner, server, source, "-o", out, "--concurrency", "4", key=wrong)
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("itkit: error: ") and "HTTP 401: the API key was rejected" in lines[0]
    assert wrong not in result.stderr and wrong[-4:] not in result.stderr
    assert len(server.chat_requests()) <= 4
    assert list(tmp_path.iterdir()) == [source]


def test_the_key_is_in_no_file_and_no_message(runner, server, tmp_path, monkeypatch, _isolated_home):
    monkeypatch.setenv("OPENAI_API_KEY", TEST_API_KEY)
    server.faults = lambda req, attempt: "length" if "gamma3" in req.last_user else ("429" if attempt == 0 else None)
    source = tmp_path / "in.jsonl"
    make_alpaca(source, 12)
    out = tmp_path / "out.jsonl"
    result = invoke(runner, "simplify", source, "-o", out, "--base-url", server.base_url, "--keep-original",
                    "--max-retries", "1")
    assert result.exit_code == 3
    assert Path(f"{out}.failures.jsonl").is_file() and Path(f"{out}.summary.json").is_file()
    files = [p for p in [*tmp_path.rglob("*"), *Path(_isolated_home).rglob("*")] if p.is_file()]
    assert any(p.name.startswith("llm-cache.sqlite3") for p in files)
    for path in files:
        assert TEST_API_KEY.encode() not in path.read_bytes(), path
        assert TEST_API_KEY[-8:].encode() not in path.read_bytes(), path
    assert TEST_API_KEY not in result.stderr + result.stdout
    summary = json.loads(Path(f"{out}.summary.json").read_text())
    assert summary["settings"]["api_key"] == "**********"
    assert all(r.headers["authorization"] == f"Bearer {TEST_API_KEY}" for r in server.chat_requests())


def test_to_changes_the_output_format(runner, server, tmp_path):
    out = tmp_path / "out.jsonl"
    result = run(runner, server, SAMPLES / "alpaca.json", "-o", out, "--to", "messages")
    assert result.exit_code == 0
    reader = RecordReader(str(out))
    records = list(reader)
    assert reader.format.name == "messages"
    originals = read_records(str(SAMPLES / "alpaca.json"))
    assert [r.output for r in records] == [halve(o.output) if needs_simplifying(o) else o.output for o in originals]


def test_output_to_stdout(runner, server, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run(runner, server, SAMPLES / "openorca.jsonl", "--limit", "2")
    assert result.exit_code == 0
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    originals = read_records(str(SAMPLES / "openorca.jsonl"))[:2]
    assert [r["response"] for r in rows] == [halve(o.output) for o in originals]
    assert (tmp_path / "itkit-simplify.summary.json").is_file()


def test_prompts_dir_overrides_the_template(runner, server, tmp_path):
    folder = tmp_path / "prompts" / "simplify"
    folder.mkdir(parents=True)
    (folder / "simplify.yaml").write_text(
        "name: simplify\nversion: custom\nvariables: [conversation, instruction, response]\nmessages:\n"
        "  - role: user\n    content: |-\n      MY OWN PROMPT {{conversation}}{{instruction}}\n"
        "      Original answer:\n      <<<\n      {{response}}\n      >>>\n\n      Rewrite the original answer.\n"
    )
    out = tmp_path / "out.jsonl"
    result = run(runner, server, SAMPLES / "dolly.jsonl", "-o", out, "--limit", "1", "--prompts-dir", tmp_path / "prompts")
    assert result.exit_code == 0, result.stderr
    body = server.chat_requests()[0].body
    assert body["messages"][0]["content"].startswith("MY OWN PROMPT")
    assert "temperature" not in body  # the built-in template's sampling does not apply
    summary = json.loads(Path(f"{out}.summary.json").read_text())
    assert summary["template"].startswith("simplify@custom#")


def test_bad_input_fails_before_any_request(runner, server, tmp_path):
    out = tmp_path / "out.jsonl"
    result = run(runner, server, SAMPLES / "broken" / "invalid_json.jsonl", "-o", out)
    assert result.exit_code == 1
    assert result.stderr.startswith("itkit: error: ") and "line" in result.stderr
    assert server.requests == [] and not out.exists()


def test_a_format_that_cannot_hold_the_records_fails_before_any_request(runner, server, tmp_path):
    out = tmp_path / "out.jsonl"
    result = run(runner, server, SAMPLES / "sharegpt.json", "-o", out, "--to", "dolly")
    assert result.exit_code == 1
    assert "nothing was sent" in result.stderr and "record '" in result.stderr
    assert server.requests == [] and not out.exists()


def test_usage_errors_exit_2(runner, server, tmp_path):
    result = run(runner, server, SAMPLES / "dolly.jsonl", "-o", tmp_path / "o.jsonl", "--concurrency", "0")
    assert result.exit_code == 2
    assert "--concurrency" in result.stderr
    assert server.requests == []


def test_on_error_skip_counts_rejected_input_and_exits_3(runner, server, tmp_path):
    out = tmp_path / "out.jsonl"
    result = run(runner, server, SAMPLES / "broken" / "some_bad_records.jsonl", "-o", out, "--on-error", "skip")
    assert result.exit_code == 3, result.stderr
    summary = json.loads(Path(f"{out}.summary.json").read_text())
    assert summary["counts"]["rejected_input"] > 0
    assert Path(f"{out}.errors.jsonl").is_file()
    assert summary["counts"]["written"] == summary["counts"]["read"] == len(read_records(str(out)))


def test_a_rerun_retries_only_the_failed_records_and_clears_the_failures_file(runner, server, tmp_path):
    source = tmp_path / "in.jsonl"
    make_alpaca(source, 20)
    out = tmp_path / "out.jsonl"
    server.faults = lambda req, attempt: "500" if "gamma7" in req.last_user else None
    assert run(runner, server, source, "-o", out).exit_code == 3
    assert Path(f"{out}.failures.jsonl").is_file()
    server.faults = None
    server.reset()
    result = run(runner, server, source, "-o", out)
    assert result.exit_code == 0
    assert [r.last_user for r in server.chat_requests()] == [r.last_user for r in server.completed]
    assert len(server.chat_requests()) == 1 and "gamma7" in server.chat_requests()[0].last_user
    assert not Path(f"{out}.failures.jsonl").exists()
    assert len(read_records(str(out))) == 20
