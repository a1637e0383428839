"""The length policy: --max-length drops over-long records, --split-long splits conversations at turn pairs,
--tokenizer counts with a local Hugging Face tokenizer."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from conftest import invoke
from itkit.errors import TokenizerError, UsageError
from itkit.export.length import MESSAGE_OVERHEAD_TOKENS, HFTokenCounter, apply_length, split_conversation
from itkit.records import Record
from itkit.tokens import TokenCounter


@pytest.fixture(autouse=True)
def _tiktoken_cache(monkeypatch):
    shared = Path(__file__).resolve().parent.parent.parent / "shared" / "tiktoken"
    if shared.is_dir():
        monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(shared))


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def conversation(rid: str, pairs: list[tuple[str, str]], system: str | None = None) -> dict:
    conv = []
    for user, assistant in pairs:
        conv += [{"from": "human", "value": user}, {"from": "gpt", "value": assistant}]
    row = {"id": rid, "conversations": conv}
    if system:
        row["system"] = system
    return row


def words(n: int, word: str = "alpha") -> str:
    return " ".join([word] * n)


def tokens_of(messages: list[dict], counter: TokenCounter) -> int:
    return sum(counter.count(m["content"]) + MESSAGE_OVERHEAD_TOKENS for m in messages)


def test_max_tokens_drops_and_counts(runner, tmp_path):
    rows = [conversation(f"short{i}", [(f"Question {i}?", f"Answer number {i}.")]) for i in range(10)]
    rows += [conversation(f"long{i}", [(f"Question {i}?", words(400))]) for i in range(3)]
    src = tmp_path / "chats.json"
    src.write_text(json.dumps(rows))
    out = tmp_path / "out"
    result = invoke(runner, "export", src, "-o", out, "--target", "trl", "--max-length", "100", "--val-size", "0", "--json")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    for mode in ("lft", "sft"):
        assert summary["modes"][mode]["length"]["dropped"] == 3
        assert summary["modes"][mode]["length"]["kept"] == 10
    counter = TokenCounter("cl100k_base")
    written = read_jsonl(out / "sft" / "trl" / "train.jsonl")
    assert sorted(r["id"] for r in written) == sorted(f"short{i}" for i in range(10))
    assert all(tokens_of(r["messages"], counter) <= 100 for r in written)
    assert summary["modes"]["sft"]["tokens"]["all"]["max"] <= 100


def test_split_long_cuts_conversations_at_turn_pairs(runner, tmp_path):
    long_chat = conversation(
        "chat", [(f"Part {i}: tell me more about topic {i}", words(30, f"w{i}")) for i in range(6)], system="Be brief."
    )
    huge_single = conversation("single", [("Write a lot", words(500))])
    one_pair_too_long = conversation("mixed", [("Small one", "Small answer"), ("Huge one", words(400)), ("Last one", "Last answer")])
    src = tmp_path / "chats.json"
    src.write_text(json.dumps([long_chat, huge_single, one_pair_too_long]))
    out = tmp_path / "out"
    result = invoke(
        runner, "export", src, "-o", out, "--mode", "sft", "--target", "trl,sharegpt", "--max-length", "120",
        "--split-long", "--val-size", "0", "--json",
    )
    assert result.exit_code == 0, result.stderr
    length = json.loads(result.stdout)["modes"]["sft"]["length"]
    assert length["dropped"] == 1  # the single-turn record cannot be split
    assert length["split_records"] == 2
    assert length["split_pairs_dropped"] == 1
    rows = read_jsonl(out / "sft" / "trl" / "train.jsonl")
    ids = [r["id"] for r in rows]
    assert "single" not in ids
    chat_parts = [r for r in rows if r["id"].startswith("chat-part")]
    assert len(chat_parts) >= 2
    assert [r["id"] for r in chat_parts] == [f"chat-part{k}" for k in range(1, len(chat_parts) + 1)]
    counter = TokenCounter("cl100k_base")
    # every piece fits, keeps the system prompt, alternates, and together they hold every turn in order
    seen = []
    for r in chat_parts:
        msgs = r["messages"]
        assert msgs[0] == {"role": "system", "content": "Be brief."}
        assert tokens_of(msgs, counter) <= 120
        assert [m["role"] for m in msgs[1:]] == ["user", "assistant"] * ((len(msgs) - 1) // 2)
        seen += [m["content"] for m in msgs[1:]]
    assert seen == [t["value"] for t in long_chat["conversations"]]
    mixed = {r["id"]: [m["content"] for m in r["messages"]] for r in rows if r["id"].startswith("mixed")}
    assert mixed == {"mixed-part1": ["Small one", "Small answer"], "mixed-part2": ["Last one", "Last answer"]}
    # lineage: each piece points at its source record
    lineage = {r["id"]: r for r in read_jsonl(out / "sft" / "lineage.jsonl")}
    assert lineage["chat-part2"]["source_id"] == "chat" and lineage["chat-part2"]["part"] == 2
    assert lineage["chat-part1"]["provenance"][-1]["operation"] == "split_long"
    sharegpt = read_jsonl(out / "sft" / "sharegpt" / "train.jsonl")
    assert all(r["system"] == "Be brief." for r in sharegpt if r["id"].startswith("chat"))


def test_split_conversation_keeps_the_input_with_the_last_turn():
    record = Record.single_turn("r", "Summarise it", "Summary.", input="the context", history=[("Hi", "Hello"), ("More", "Sure")])
    counts = [1, 1, 1, 1, 5, 1]  # every message but the last user turn is 1 token
    pieces, dropped = split_conversation(record, counts, max_tokens=2 + 2 * MESSAGE_OVERHEAD_TOKENS + 4)
    assert dropped == 0
    assert [p.input for p, _ in pieces][-1] == "the context"
    assert all(p.input == "" for p, _ in pieces[:-1])


def test_apply_length_without_a_budget_keeps_everything():
    records = [Record.single_turn(str(i), "q" * i, "a") for i in range(5)]
    outcome = apply_length(records, TokenCounter("cl100k_base"), None)
    assert outcome.records == records and outcome.dropped == 0 and outcome.origins == list(range(5))


def _word_tokenizer(path: Path) -> Path:
    tokenizers = pytest.importorskip("tokenizers", reason="the optional 'tokenizers' library is not installed")
    from tokenizers import models, pre_tokenizers

    vocab = {"[UNK]": 0, **{w: i + 1 for i, w in enumerate(["alpha", "beta", "question", "answer"])}}
    tok = tokenizers.Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(path))
    return path


def test_tokenizer_option_counts_with_a_local_hf_tokenizer(runner, tmp_path):
    tok = _word_tokenizer(tmp_path / "tokenizer.json")
    assert HFTokenCounter(str(tok)).count_many(["alpha beta", "", "alpha alpha alpha"]) == [2, 0, 3]
    rows = [conversation(f"r{n}", [("question", words(n))]) for n in (5, 30, 60)]
    src = tmp_path / "chats.json"
    src.write_text(json.dumps(rows))
    out = tmp_path / "out"
    # r5: 1 + 5 + 2*4 = 14 tokens, r30: 39, r60: 69 (one token per word, 4 per message)
    result = invoke(
        runner, "export", src, "-o", out, "--mode", "sft", "--target", "trl", "--max-length", "40",
        "--tokenizer", str(tmp_path), "--val-size", "0", "--json",
    )
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["token_counter"] == f"hf:{tmp_path.name}"
    assert [r["id"] for r in read_jsonl(out / "sft" / "trl" / "train.jsonl")] == ["r5", "r30"]
    assert summary["modes"]["sft"]["tokens"]["all"]["max"] == 39


def test_tokenizer_errors(runner, tmp_path, monkeypatch):
    with pytest.raises(UsageError, match="no such file"):
        HFTokenCounter(str(tmp_path / "missing.json"))
    (tmp_path / "tokenizer.json").write_text("{}")
    monkeypatch.setitem(sys.modules, "tokenizers", None)
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(TokenizerError, match=r"pip install tokenizers"):
        HFTokenCounter(str(tmp_path / "tokenizer.json"))
    src = tmp_path / "chats.json"
    src.write_text(json.dumps([conversation("a", [("q", "a")])]))
    result = invoke(runner, "export", src, "-o", tmp_path / "out", "--tokenizer", str(tmp_path), "--max-length", "9")
    assert result.exit_code == 1
    assert "pip install tokenizers" in result.stderr and not (tmp_path / "out").exists()


def test_broken_tokenizer_file_is_a_clear_error(tmp_path):
    pytest.importorskip("tokenizers", reason="the optional 'tokenizers' library is not installed")
    bad = tmp_path / "tokenizer.json"
    bad.write_text('{"not": "a tokenizer"}')
    with pytest.raises(TokenizerError, match="cannot load tokenizer.json"):
        HFTokenCounter(str(bad))


def test_split_long_keeps_tool_calls_with_their_results():
    call = {"id": "c", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}
    turns = [
        ("user", "first question " + words(30), None),
        ("assistant", "", [call]),
        ("tool", "result " + words(30), None),
        ("assistant", "answer one " + words(30), None),
        ("user", "second question " + words(30), None),
        ("assistant", "answer two " + words(30), None),
    ]
    from itkit.records import Turn

    record = Record(id="t", turns=[Turn(role=r, content=c, tool_calls=k) for r, c, k in turns])
    counts = [40] * len(turns)
    pieces, dropped = split_conversation(record, counts, max_tokens=200)
    assert dropped == 0 and [p.id for p, _ in pieces] == ["t-part1", "t-part2"]
    first, second = pieces[0][0], pieces[1][0]
    assert [t.role for t in first.turns] == ["user", "assistant", "tool", "assistant"]
    assert first.turns[1].tool_calls == [call]
    assert [t.role for t in second.turns] == ["user", "assistant"]
    assert pieces[0][1] == 4 * (40 + MESSAGE_OVERHEAD_TOKENS)
