"""Loss-free round trips: format -> canonical -> same format gives back the same records (field order aside).

Property-based with hypothesis for Alpaca, Dolly, ShareGPT and messages, at three depths: the format's own
load/dump, through the canonical record serialised as JSON, and end to end through files with ``convert``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import orjson
import pytest
from conftest import without_added_ids
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from itkit.convert import convert
from itkit.dataset import RecordReader
from itkit.errors import Location
from itkit.formats import LoadContext, get_format
from itkit.formats.alpaca import EMPTY_INPUT_MARKERS
from itkit.formats.sharegpt import ASSISTANT_ROLES, USER_ROLES
from itkit.records import Record

FAST = settings(max_examples=150, deadline=None)
FILES = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# any Unicode text (no lone surrogates: they cannot be UTF-8), with newlines, quotes, emoji, RTL...
text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
ids = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12)
json_scalar = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.floats(allow_nan=False, allow_infinity=False) | text
json_value = st.recursive(json_scalar, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3), max_leaves=8)


def extras(names: list[str]):
    """Unknown top-level fields a source may carry (kept verbatim)."""
    return st.dictionaries(st.sampled_from(names), json_value, max_size=len(names))


def optional(**fields):
    """A dict strategy where each given field may be absent."""
    return st.fixed_dictionaries({}, optional=fields)


def cased(tags: tuple[str, ...]):
    """A role tag as written in the wild: any alias, sometimes capitalised or upper-case."""
    return st.sampled_from(tags).flatmap(lambda t: st.sampled_from([t, t.capitalize(), t.upper()]))


# ------------------------------------------------------------------ row strategies

alpaca_input = text.filter(lambda s: s.strip().lower() not in EMPTY_INPUT_MARKERS)


@st.composite
def alpaca_rows(draw):
    row = {"instruction": draw(text), draw(st.sampled_from(["output", "response"])): draw(text)}
    row.update(
        draw(optional(id=ids, input=alpaca_input, system=text, history=st.lists(st.lists(text, min_size=2, max_size=2), max_size=3)))
    )
    row.update(draw(extras(["text", "source", "score", "tags"])))
    return row


@st.composite
def dolly_rows(draw):
    row = {"instruction": draw(text), "context": draw(text), "response": draw(text)}
    row.update(draw(optional(id=ids, category=st.sampled_from(["open_qa", "closed_qa", "summarization", ""]) | text)))
    row.update(draw(extras(["source", "lang", "score"])))
    return row


def turn_extras(names: list[str]):
    return st.dictionaries(st.sampled_from(names), json_value, max_size=2)


@st.composite
def conversation(draw, role_key: str, content_key: str, user_tags, assistant_tags, system_tag, extra_names):
    n = draw(st.integers(min_value=1, max_value=6))
    turns = []
    if draw(st.booleans()):
        turns.append({role_key: draw(system_tag), content_key: draw(text), **draw(turn_extras(extra_names))})
    for i in range(n):
        tag = draw(user_tags if i % 2 == 0 else assistant_tags)
        turns.append({role_key: tag, content_key: draw(text), **draw(turn_extras(extra_names))})
    return turns


@st.composite
def sharegpt_rows(draw):
    turns = draw(conversation("from", "value", cased(USER_ROLES), cased(ASSISTANT_ROLES), cased(("system",)), ["markdown", "weight"]))
    row = {"conversations": turns}
    fields = {"id": ids}
    if turns[0]["from"].lower() != "system":  # a system prompt stands either first in the turns or at the top
        fields["system"] = text
    row.update(draw(optional(**fields)))
    row.update(draw(extras(["model", "lang", "source"])))
    return row


@st.composite
def messages_rows(draw):
    turns = draw(
        conversation(
            "role", "content", st.just("user"), st.just("assistant"), st.just("system"), ["name", "weight", "tool_calls"]
        )
    )
    row = {"messages": turns}
    row.update(draw(optional(id=ids)))
    row.update(draw(extras(["source", "lang"])))
    return row


STRATEGIES = {"alpaca": alpaca_rows(), "dolly": dolly_rows(), "sharegpt": sharegpt_rows(), "messages": messages_rows()}
CTX = LoadContext(Location("prop.jsonl", line=1), "prop-0")


def check_same_format(fmt_name: str, row: dict) -> None:
    fmt = get_format(fmt_name)
    record = fmt.load(row, CTX)
    # the canonical record is valid by the model's own rules...
    assert Record.model_validate(record.model_dump()) == record
    # ...gives back the source row (with the id it was given, when it had none)...
    dumped = fmt.dump(record)
    assert without_added_ids([dumped], [row]) == [row]
    assert dumped["id"] == (str(row["id"]) if "id" in row else "prop-0")
    # ...and survives being stored as canonical JSON
    stored = Record.model_validate_json(record.model_dump_json())
    assert fmt.dump(stored) == dumped


@pytest.mark.parametrize("fmt_name", sorted(STRATEGIES))
def test_same_format_round_trip_property(fmt_name):
    @FAST
    @given(STRATEGIES[fmt_name])
    def run(row):
        check_same_format(fmt_name, row)

    run()


@pytest.mark.parametrize("fmt_name", sorted(STRATEGIES))
def test_round_trip_through_files_property(fmt_name):
    """rows -> JSONL file -> auto-detected -> convert -> JSONL file -> the same rows, in order."""

    @FILES
    @given(st.lists(STRATEGIES[fmt_name], min_size=1, max_size=8))
    def run(rows):
        with tempfile.TemporaryDirectory() as tmp:
            src, dst = Path(tmp) / "in.jsonl", Path(tmp) / "out.jsonl"
            src.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
            result = convert(str(src), str(dst))
            assert result.source_format == result.target_format == fmt_name
            assert result.written == len(rows)
            written = [orjson.loads(line) for line in dst.read_bytes().splitlines()]
            assert without_added_ids(written, rows) == rows

    run()


@given(st.lists(sharegpt_rows(), min_size=1, max_size=5))
@settings(max_examples=15, deadline=None)
def test_sharegpt_through_a_json_array_file_property(rows):
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.json", Path(tmp) / "out.json"
        src.write_bytes(orjson.dumps(rows, option=orjson.OPT_INDENT_2))
        convert(str(src), str(dst))
        assert without_added_ids(orjson.loads(dst.read_bytes()), rows) == rows


@given(alpaca_rows())
@FAST
def test_alpaca_to_messages_keeps_every_turn_property(row):
    """Across formats the conversation is kept: the input is joined to the last instruction."""
    record = get_format("alpaca").load(row, CTX)
    messages = get_format("messages")
    back = messages.load(messages.dump(record), CTX)
    assert back.to_messages() == record.to_messages()
    assert back.system == row.get("system")


# ------------------------------------------------------------------ examples


EXAMPLES = {
    "alpaca": [
        {"instruction": "Translate into French.", "input": "Good night", "output": "Bonne nuit"},
        {"instruction": "Name a colour.", "output": "Blue."},
        {"id": "a-7", "system": "", "instruction": "Hi", "input": "", "response": "Hello", "history": []},
        {"instruction": "And now?", "input": "", "output": "Done.", "history": [["Start.", "Started."]], "text": "### Instruction: ..."},
    ],
    "dolly": [
        {"instruction": "When?", "context": "It opened in 1998.[2]", "response": "1998.", "category": "closed_qa"},
        {"id": "d1", "instruction": "Ideas?", "context": "", "response": "", "category": ""},
        {"instruction": "Ideas?", "context": "", "response": "Some."},
    ],
    "sharegpt": [
        {"id": "c1", "conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]},
        {"conversations": [{"from": "system", "value": "Be kind."}, {"from": "user", "value": "Hi"}, {"from": "chatgpt", "value": "Hey"}]},
        {"id": "c3", "system": "", "conversations": [{"from": "HUMAN", "value": "Q", "lang": "en"}, {"from": "Bard", "value": "A"}, {"from": "human", "value": "Q2"}]},
        {"id": "c4", "model": "gpt-4", "conversations": [{"from": "human", "value": "日本語で"}, {"from": "bing", "value": "はい 🎌"}]},
    ],
    "messages": [
        {"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}, {"role": "assistant", "content": "A"}]},
        {"id": "m2", "messages": [{"role": "user", "content": "U", "name": "ann"}]},
        {"messages": [{"role": "user", "content": "1"}, {"role": "assistant", "content": "2", "weight": 0}, {"role": "user", "content": "3"}, {"role": "assistant", "content": "4"}]},
    ],
}


@pytest.mark.parametrize("fmt_name, row", [(f, r) for f, rows in EXAMPLES.items() for r in rows])
def test_same_format_round_trip_examples(fmt_name, row):
    check_same_format(fmt_name, row)


def test_round_trip_of_example_files_in_every_container(tmp_path):
    for fmt_name, rows in EXAMPLES.items():
        src = tmp_path / f"{fmt_name}.jsonl"
        src.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
        for ext in ("json", "jsonl", "jsonl.gz", "json.gz"):
            mid = tmp_path / f"{fmt_name}.{ext}"
            if mid != src:
                convert(str(src), str(mid))
            back = tmp_path / f"{fmt_name}.back.jsonl"
            convert(str(mid), str(back))
            written = [orjson.loads(line) for line in back.read_bytes().splitlines()]
            assert without_added_ids(written, rows) == rows, (fmt_name, ext)
            # ids given once, from the first file's name and row, kept through every later conversion
            assert [r["id"] for r in written] == [row.get("id", f"{fmt_name}-{i}") for i, row in enumerate(rows)]
            assert RecordReader(str(mid)).format.name == fmt_name
