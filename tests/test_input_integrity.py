"""Nothing is dropped silently at input or conversion: duplicate keys are located errors, lost fields are named."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from conftest import invoke

from itkit.io.json_keys import duplicate_key, may_have_duplicates


@pytest.mark.parametrize(
    "text",
    [
        '{"a": 1, "a": 2}',
        '{"a":1,"a":2}',
        '{"x": "say \\"hi\\"", "a": 1, "a" : 2}',
        '{"a": {"b": [1, {"c": 1, "c": 1}]}}',
        '{"a"\t:1, "b": 1, "a":\n 2}',
        '{"q": "\\"", "k": 1, "k": 1}',
        '{"a": 1e5, "b": 1, "b": 1}',
    ],
)
def test_every_duplicate_is_found(text):
    import orjson

    raw = text.encode()
    parsed = orjson.loads(raw)
    assert may_have_duplicates(raw, parsed)
    assert duplicate_key(raw, parsed) is not None


@pytest.mark.parametrize("text", ['{"a": 1, "b": "x"}', '{"a":"\\"q\\"","b":{"c":[1,"2"]}}', '{"a" : "b"}'])
def test_no_duplicate_is_reported_where_there_is_none(text):
    import orjson

    raw = text.encode()
    assert duplicate_key(raw, orjson.loads(raw)) is None


def test_a_duplicate_key_in_jsonl_is_a_located_error_and_nothing_is_written(runner, tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text('{"instruction": "a", "output": "b"}\n{"instruction": "c", "output": "first", "output": "second"}\n')
    out = tmp_path / "out.jsonl"
    result = invoke(runner, "convert", src, "-o", out)
    assert result.exit_code == 1
    assert result.stderr.strip() == f"itkit: error: {src}, line 2: duplicate key 'output' in one JSON object " \
        "(JSON would keep only the last value); remove or rename one"
    assert not out.exists() and list(tmp_path.iterdir()) == [src]


def test_a_duplicate_key_row_is_rejected_verbatim_with_on_error_skip(runner, tmp_path):
    line = '{"instruction": "c", "output": "first", "output": "second"}'
    src = tmp_path / "in.jsonl"
    src.write_text('{"instruction": "a", "output": "b"}\n' + line + "\n")
    out = tmp_path / "out.jsonl"
    result = invoke(runner, "convert", src, "-o", out, "--on-error", "skip")
    assert result.exit_code == 3
    assert len(out.read_text().splitlines()) == 1
    (rejected,) = [json.loads(x) for x in Path(f"{out}.errors.jsonl").read_text().splitlines()]
    assert rejected["raw"] == line and rejected["line"] == 2 and "duplicate key 'output'" in rejected["reason"]


def test_a_duplicate_key_in_a_json_array_names_its_line(runner, tmp_path):
    src = tmp_path / "in.json"
    src.write_text('[\n  {"instruction": "a", "output": "b"},\n  {"instruction": "c \\"q\\"",\n   "output": "x",\n   "output": "y"}\n]\n')
    result = invoke(runner, "convert", src, "-o", tmp_path / "out.jsonl")
    assert result.exit_code == 1
    assert f"{src}, line 5: duplicate key 'output'" in result.stderr
    assert not (tmp_path / "out.jsonl").exists()


def test_a_duplicate_key_on_stdin_and_in_a_nested_turn(runner, tmp_path):
    text = '{"conversations": [{"from": "human", "value": "hi", "value": "ho"}, {"from": "gpt", "value": "yo"}]}\n'
    result = invoke(runner, "convert", "-", "-o", tmp_path / "out.jsonl", input=text)
    assert result.exit_code == 1
    assert "<stdin>, line 1: duplicate key 'value'" in result.stderr
    assert not (tmp_path / "out.jsonl").exists()


def test_a_duplicate_csv_column_and_a_duplicate_key_in_a_csv_cell(runner, tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("instruction,output,output\na,b,c\n")
    result = invoke(runner, "convert", src, "-o", tmp_path / "out.jsonl")
    assert result.exit_code == 1 and f"{src}, line 1: the header names column 'output' twice" in result.stderr
    cell = '[{"from": "human", "value": "a", "value": "b"}, {"from": "gpt", "value": "c"}]'
    with src.open("w", newline="") as fh:
        csv.writer(fh).writerows([["conversations"], [cell]])
    result = invoke(runner, "convert", src, "-o", tmp_path / "out.jsonl")
    assert result.exit_code == 1 and "column 'conversations': duplicate key 'value'" in result.stderr
    assert not (tmp_path / "out.jsonl").exists()


@pytest.mark.parametrize("command", [["filter"], ["dedup"], ["validate"]])
def test_every_reader_refuses_duplicate_keys(runner, tmp_path, command):
    src = tmp_path / "in.jsonl"
    src.write_text('{"instruction": "c", "output": "first", "output": "second"}\n')
    args = [*command, src] if command == ["validate"] else [*command, src, "-o", tmp_path / "out.jsonl"]
    result = invoke(runner, *args)
    assert result.exit_code == 1
    assert "duplicate key 'output'" in (result.stdout + result.stderr)
    assert not (tmp_path / "out.jsonl").exists()


def test_a_conversion_names_every_field_the_target_cannot_hold(runner, tmp_path):
    src = tmp_path / "in.jsonl"
    rows = [
        {"conversations": [{"from": "human", "value": "hi", "weight": 0}, {"from": "gpt", "value": "yo", "weight": 1}], "note": "n"},
        {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo"}], "note": "m", "lang": "en"},
        {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo"}]},
    ]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out.jsonl"
    result = invoke(runner, "convert", src, "-o", out, "--to", "messages")
    assert result.exit_code == 0, result.stderr
    assert "converted 3 of 3 records (sharegpt -> messages)" in result.stderr
    assert (
        "fields messages cannot hold, left out: 'conversations[].weight' (1 record), 'lang' (1 record), "
        "'note' (2 records)" in result.stderr
    )
    same = invoke(runner, "convert", src, "-o", tmp_path / "same.jsonl")
    assert "left out" not in same.stderr
    assert [json.loads(x) for x in (tmp_path / "same.jsonl").read_text().splitlines()] == rows


def test_filter_names_the_fields_its_output_format_cannot_hold(runner, tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"conversations": [{"from": "human", "value": "hi", "weight": 0}, {"from": "gpt", "value": "yo there"}]}) + "\n")
    result = invoke(runner, "filter", src, "-o", tmp_path / "out.jsonl", "--to", "alpaca")
    assert result.exit_code == 0, result.stderr
    assert "fields alpaca cannot hold, left out: 'conversations[].weight' (1 record)" in result.stderr


def test_a_parquet_file_with_a_repeated_column_is_refused(runner, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    src = tmp_path / "in.parquet"
    table = pa.Table.from_arrays([pa.array(["a"]), pa.array(["b"]), pa.array(["c"])], names=["instruction", "output", "output"])
    pq.write_table(table, src)
    result = invoke(runner, "convert", src, "-o", tmp_path / "out.jsonl")
    assert result.exit_code == 1
    assert f"{src}: names column 'output' twice" in result.stderr
    assert not (tmp_path / "out.jsonl").exists()


def test_a_record_nested_too_deep_to_write_is_a_clean_error(runner, tmp_path):
    deep = '"x\\""'  # an escaped quote: the quick duplicate check cannot clear it, the slow path runs
    for _ in range(400):
        deep = "[" + deep + "]"
    src = tmp_path / "in.jsonl"
    src.write_text('{"instruction": "a", "output": "b", "deep": ' + deep + "}\n")
    result = invoke(runner, "convert", src, "-o", tmp_path / "out.jsonl")
    assert result.exit_code == 1
    assert "internal error" not in result.stderr and "cannot be written as JSON" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl"]


def test_dedup_names_the_fields_its_output_format_cannot_hold_in_the_records_it_keeps(runner, tmp_path):
    src = tmp_path / "in.jsonl"
    rows = [
        {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo"}]},
        {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo"}], "note": "a removed twin"},
        {"conversations": [{"from": "human", "value": "other"}, {"from": "gpt", "value": "yo"}], "note": "kept"},
    ]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = invoke(runner, "dedup", src, "-o", tmp_path / "out.jsonl", "--to", "alpaca")
    assert result.exit_code == 0, result.stderr
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 2
    assert "fields alpaca cannot hold, left out: 'note' (1 record)" in result.stderr


@pytest.mark.parametrize("target, lost", [("alpaca", True), ("dolly", True), ("messages", False), ("sharegpt", False)])
def test_turn_weights_are_named_when_the_target_cannot_hold_them(runner, tmp_path, target, lost):
    src = tmp_path / "in.jsonl"
    rows = [
        {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo", "weight": 0}]},
        {"conversations": [{"from": "human", "value": "ho"}, {"from": "gpt", "value": "yo"}]},
    ]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = invoke(runner, "convert", src, "-o", tmp_path / "out.jsonl", "--to", target)
    assert result.exit_code == 0, result.stderr
    named = f"fields {target} cannot hold, left out: 'conversations[].weight' (1 record)"
    assert (named in result.stderr) is lost
