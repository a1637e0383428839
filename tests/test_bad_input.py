"""Bad input: one line on stderr naming the file and the line/column or record and field, a non-zero exit,
nothing written; and ``--on-error skip``, which writes each rejected record verbatim with its reason."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pytest
from conftest import SAMPLES, SHARED, invoke

BROKEN = SAMPLES / "broken"



@pytest.fixture
def tiktoken_cache(monkeypatch):
    """tiktoken's encodings without network: the shared cache, or whatever TIKTOKEN_CACHE_DIR already says."""
    if "TIKTOKEN_CACHE_DIR" not in os.environ:
        if not (SHARED / "tiktoken").is_dir():
            pytest.skip("no tiktoken cache: set TIKTOKEN_CACHE_DIR")
        monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(SHARED / "tiktoken"))


# file -> (where, what): the exact location text and the reason that must be in the one-line error
CASES = {
    "invalid_json.jsonl": ("invalid_json.jsonl, line 3, column 63: ", "invalid JSON: unexpected character, expected ',' or '}'"),
    "invalid_json_array.json": ("invalid_json_array.json, line 7, column 3: ", "invalid JSON: unexpected character, expected ',' or ']'"),
    "schema_violation.jsonl": ("schema_violation.jsonl, line 2: ", "field 'response': must be a string, got integer"),
    "non_utf8.jsonl": ("non_utf8.jsonl, line 2, column 75: ", "is not valid UTF-8 (byte 0xe9); convert the file to UTF-8"),
    "bom.json": ("bom.json, line 1, column 1: ", "starts with a UTF-8 byte-order mark (BOM); save the file as UTF-8 without BOM"),
    "object_not_array.json": ("object_not_array.json, line 1: ", "holds a single JSON object where an array of records"),
    "mixed_formats.jsonl": ("mixed_formats.jsonl: ", "mixes formats (line 1 looks like alpaca, line 3 looks like dolly); split the file or pass --from"),
    "sharegpt_unknown_role.json": ("sharegpt_unknown_role.json, index 1: ", "field 'conversations[1].from': unknown role 'narrator'"),
    "sharegpt_broken_alternation.json": ("sharegpt_broken_alternation.json, index 2: ", "field 'conversations': turn 2 is 'user' after 'user'; user and assistant turns must alternate"),
    "unknown_format.jsonl": ("unknown_format.jsonl, line 1: ", "matches no known format (keys: completion, prompt); pass --from"),
    "ambiguous.jsonl": ("ambiguous.jsonl: ", "is ambiguous: its records match messages, sharegpt; pass --from to choose"),
    "some_bad_records.jsonl": ("some_bad_records.jsonl, line 3, column 62: ", "invalid JSON: unexpected end of data"),
    "not_gzip.jsonl.gz": ("not_gzip.jsonl.gz: ", "is not a valid gzip file"),
}


def assert_one_line_error(result, where: str, what: str) -> None:
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("itkit: error: ")
    message = lines[0][len("itkit: error: "):]
    assert Path(message.split(",")[0].split(": ")[0]).name == where.split(",")[0].split(": ")[0]
    assert where in message, message
    assert what in message, message


def test_every_broken_sample_has_a_case():
    assert {p.name for p in BROKEN.iterdir()} == set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_convert_fails_with_one_line_and_writes_nothing(runner, tmp_path, name):
    out = tmp_path / "out.jsonl"
    result = invoke(runner, "convert", BROKEN / name, "-o", out)
    assert result.exit_code == 1
    assert_one_line_error(result, *CASES[name])
    assert list(tmp_path.iterdir()) == [], "no output, no errors file, no temporary file"


@pytest.mark.parametrize("name", sorted(CASES))
def test_convert_keeps_an_existing_output_untouched(runner, tmp_path, name):
    out = tmp_path / "out.json"
    out.write_text("[]\n")
    assert invoke(runner, "convert", BROKEN / name, "-o", out, "--to", "alpaca").exit_code == 1
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"] and out.read_text() == "[]\n"


@pytest.mark.parametrize("name", sorted(CASES))
def test_stats_fails_the_same_way(runner, name, tiktoken_cache):
    result = invoke(runner, "stats", BROKEN / name)
    assert result.exit_code == 1
    assert_one_line_error(result, *CASES[name])


def test_stdin_errors_name_stdin(runner):
    result = invoke(runner, "convert", "-", input=(BROKEN / "invalid_json.jsonl").read_bytes())
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith("itkit: error: <stdin>, line 3, column 63: invalid JSON")


# ------------------------------------------------------------------ cases built here


def write(tmp_path: Path, name: str, data: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return path


INLINE = [
    ("scalar.json", '"just a string"', "scalar.json: ", "holds a JSON str where an array of records was expected"),
    ("list_row.jsonl", '[1, 2]\n', "list_row.jsonl, index 0: ", "must be a JSON object, got int"),
    (
        "array_schema.json",
        '[{"instruction": "a", "input": "", "output": "b"}, {"instruction": "a", "input": ["x"], "output": "b"}]',
        "array_schema.json, index 1: ",
        "field 'input': must be a string, got array",
    ),
    ("history.jsonl", '{"instruction": "a", "output": "b", "history": [["only one"]]}\n', "history.jsonl, line 1: ", "field 'history[0]': must be a [prompt, response] pair of strings"),
    ("int_id.jsonl", '{"id": 1.5, "instruction": "a", "output": "b"}\n', "int_id.jsonl, line 1: ", "field 'id': must be a string or an integer, got number"),
    ("latin1.json", b'[{"instruction": "caf\xe9", "output": "b"}]', "latin1.json, line 1, column 22: ", "is not valid UTF-8 (byte 0xe9)"),
    ("utf16.jsonl", '{"instruction": "a", "output": "b"}\n'.encode("utf-16"), "utf16.jsonl, line 1, column 1: ", "is not valid UTF-8 (byte 0xff)"),
    ("bom.csv", b"\xef\xbb\xbfinstruction,input,output\na,,b\n", "bom.csv, line 1, column 1: ", "byte-order mark"),
    ("wide.csv", "instruction,input,output\na,,b,extra\n", "wide.csv, line 2: ", "has more cells than the header has columns"),
    ("badcell.csv", 'id,conversations\n1,"[{""from"": ""human"""\n', "badcell.csv, line 2: ", "column 'conversations' holds invalid JSON"),
    ("latin1.csv", b"instruction,input,output\ncaf\xe9,,b\n", "latin1.csv, line 2, column 4: ", "is not valid UTF-8 (byte 0xe9)"),
    ("broken.parquet", b"PAR1 this is not parquet", "broken.parquet: ", "is not a valid Parquet file"),
    ("truncated.jsonl.gz", gzip.compress(b'{"instruction": "a", "output": "b"}\n' * 50)[:40], "truncated.jsonl.gz: ", "is not a valid gzip file"),
    ("compressed.parquet.gz", b"", "compressed.parquet.gz: ", "gzip-compressed Parquet is not supported"),
    (
        "two_systems.jsonl",
        '{"system": "A", "conversations": [{"from": "system", "value": "B"}, {"from": "human", "value": "hi"}]}\n',
        "two_systems.jsonl, line 1: ",
        "field 'system': is given both as a top-level 'system' and as a first system turn",
    ),
    (
        "messages_late_system.jsonl",
        '{"messages": [{"role": "user", "content": "a"}, {"role": "system", "content": "b"}]}\n',
        "messages_late_system.jsonl, line 1: ",
        "field 'messages[1].role': a system turn may only come first",
    ),
]


@pytest.mark.parametrize("name, data, where, what", INLINE, ids=[c[0] for c in INLINE])
def test_more_bad_inputs(runner, tmp_path, name, data, where, what):
    src_dir = tmp_path / "in"
    src_dir.mkdir()
    src = write(src_dir, name, data)
    out_dir = tmp_path / "out"
    result = invoke(runner, "convert", src, "-o", out_dir / "out.jsonl")
    assert result.exit_code == 1
    assert_one_line_error(result, where, what)
    assert not out_dir.exists()


def test_a_later_record_in_another_format_is_named(runner, tmp_path):
    """Beyond the records detection looks at, a record of another format is reported with its line."""
    alpaca = '{"instruction": "a", "input": "", "output": "b"}\n'
    src = write(tmp_path, "late_mix.jsonl", alpaca * 30 + '{"instruction": "a", "context": "", "response": "b"}\n')
    result = invoke(runner, "convert", src, "-o", tmp_path / "out.jsonl")
    assert result.exit_code == 1
    assert_one_line_error(result, "late_mix.jsonl, line 31: ", "is in dolly format, not alpaca (mixed formats; split the file")
    assert not (tmp_path / "out.jsonl").exists()


def test_a_forced_format_that_does_not_fit_says_so(runner, tmp_path):
    result = invoke(runner, "convert", SAMPLES / "alpaca.json", "--from", "dolly", "-o", tmp_path / "o.jsonl")
    assert result.exit_code == 1
    assert_one_line_error(result, "alpaca.json, index 0: ", "is in alpaca format, not dolly (check --from dolly; dolly expects instruction")


def test_a_record_the_target_format_cannot_hold_fails_naming_it(runner, tmp_path):
    out = tmp_path / "o.jsonl"
    result = invoke(runner, "convert", SAMPLES / "sharegpt.json", "--to", "dolly", "-o", out)
    assert result.exit_code == 1
    assert_one_line_error(
        result, "record 'sg-001': ", "field 'turns': has 2 exchanges; dolly holds one: write alpaca, sharegpt or messages instead"
    )
    assert list(tmp_path.iterdir()) == []


def test_missing_file(runner, tmp_path):
    result = invoke(runner, "convert", tmp_path / "nope.jsonl", "-o", tmp_path / "o.jsonl")
    assert result.exit_code == 1
    assert result.stderr == f"itkit: error: {tmp_path / 'nope.jsonl'}: no such file\n"


# ------------------------------------------------------------------ --on-error skip


def errors_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_skip_writes_rejected_records_verbatim_with_reasons(runner, tmp_path):
    src = BROKEN / "some_bad_records.jsonl"
    out = tmp_path / "good.jsonl"
    errors = tmp_path / "rejected.jsonl"
    result = invoke(runner, "convert", src, "-o", out, "--on-error", "skip", "--errors", errors)
    assert result.exit_code == 3
    assert [json.loads(line)["instruction"] for line in out.read_text().splitlines()] == [
        "Name a colour.",
        "Name a fruit.",
        "Name a bird.",
        "Name a month.",
    ]
    source_lines = src.read_text(encoding="utf-8").splitlines()
    rejected = errors_of(errors)
    assert rejected == [
        {
            "reason": f"{src}, line 3, column 62: invalid JSON: unexpected end of data",
            "source": str(src),
            "line": 3,
            "column": 62,
            "raw": source_lines[2],
        },
        {
            "reason": f"{src}, line 5: field 'output': must be a string, got array",
            "source": str(src),
            "line": 5,
            "record": json.loads(source_lines[4]),
        },
    ]
    assert "converted 4 of 6 records (alpaca -> alpaca)" in result.stderr
    assert f"2 rejected, written with reasons to {errors}" in result.stderr
    assert "1  invalid JSON: unexpected end of data" in result.stderr
    assert "1  output: must be a string, got array" in result.stderr


def test_skip_errors_file_defaults_next_to_the_output(runner, tmp_path):
    out = tmp_path / "good.json"
    result = invoke(runner, "convert", BROKEN / "schema_violation.jsonl", "-o", out, "--on-error", "skip")
    assert result.exit_code == 3
    assert len(json.loads(out.read_text())) == 2
    rejected = errors_of(tmp_path / "good.json.errors.jsonl")
    assert [(r["line"], r["reason"].split(": ", 1)[1]) for r in rejected] == [
        (2, "field 'response': must be a string, got integer"),
        (4, "field 'instruction': is missing"),
    ]
    assert rejected[1]["record"] == {"context": "The river is 120 km long.", "response": "120 km.", "category": "closed_qa"}


def test_skip_with_stdout_puts_the_errors_file_in_the_working_folder(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke(runner, "convert", BROKEN / "sharegpt_unknown_role.json", "--on-error", "skip")
    assert result.exit_code == 3
    assert [json.loads(line)["id"] for line in result.stdout.splitlines()] == ["ok-1"]
    rejected = errors_of(tmp_path / "itkit-errors.jsonl")
    assert rejected[0]["index"] == 1 and rejected[0]["record"]["id"] == "bad-role"
    assert "unknown role 'narrator'" in rejected[0]["reason"]


def test_skip_counts_records_the_target_format_cannot_hold(runner, tmp_path):
    out = tmp_path / "dolly.jsonl"
    result = invoke(runner, "convert", SAMPLES / "sharegpt.json", "--to", "dolly", "-o", out, "--on-error", "skip")
    assert result.exit_code == 3
    written = out.read_text().splitlines()
    rejected = errors_of(tmp_path / "dolly.jsonl.errors.jsonl")
    assert len(written) + len(rejected) == 20
    # the multi-turn conversations, and the single-turn ones with a system prompt
    assert [r["record"]["id"] for r in rejected] == ["sg-001", "sg-002", "sg-004", "sg-005", "sg-009", "sg-010", "sg-012", "sg-016", "sg-017"]
    assert all(r["reason"].startswith(f"record '{r['record']['id']}': ") and "field '" in r["reason"] for r in rejected)
    sources = {row["id"]: row for row in json.loads((SAMPLES / "sharegpt.json").read_text())}
    assert all(r["record"] == sources[r["record"]["id"]] for r in rejected)  # the input rows, verbatim
    assert f"converted {len(written)} of 20 records (sharegpt -> dolly)" in result.stderr


def test_skip_without_problems_exits_0_and_writes_no_errors_file(runner, tmp_path):
    out = tmp_path / "o.jsonl"
    result = invoke(runner, "convert", SAMPLES / "dolly.jsonl", "-o", out, "--on-error", "skip")
    assert result.exit_code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.jsonl"]


def test_skip_when_no_record_is_readable_fails_and_writes_nothing(runner, tmp_path):
    src = write(tmp_path, "python_dicts.jsonl", "{'instruction': 'a'}\n{'instruction': 'b'}\n")
    out_dir = tmp_path / "out"
    result = invoke(runner, "convert", src, "-o", out_dir / "o.jsonl", "--on-error", "skip")
    assert result.exit_code == 1
    assert_one_line_error(result, "python_dicts.jsonl: ", "none of its 2 rows is a readable record, so its format cannot be detected")
    assert not out_dir.exists()


def test_skip_still_stops_on_container_errors(runner, tmp_path):
    result = invoke(runner, "convert", BROKEN / "invalid_json_array.json", "-o", tmp_path / "o.jsonl", "--on-error", "skip")
    assert result.exit_code == 1
    assert_one_line_error(result, *CASES["invalid_json_array.json"])
    assert list(tmp_path.iterdir()) == []
