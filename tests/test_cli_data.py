"""convert, validate and stats end to end through the CLI: files written, messages, exit codes."""

from __future__ import annotations

import json
import re
import os
import statistics
import tempfile
from pathlib import Path

import numpy as np
import pytest
import typer.main
from conftest import SAMPLES, SHARED, invoke, without_added_ids

import itkit
from itkit.cli import app
from itkit.dataset import RecordReader
from itkit.formats import FORMAT_NAMES

BROKEN = SAMPLES / "broken"
SAMPLE_FORMATS = {
    "alpaca.json": ("alpaca", 32),
    "alpaca_variants.jsonl": ("alpaca", 20),
    "dolly.jsonl": ("dolly", 35),
    "dolly.jsonl.gz": ("dolly", 35),
    "dolly.csv": ("dolly", 35),
    "dolly.parquet": ("dolly", 35),
    "sharegpt.json": ("sharegpt", 20),
    "messages.jsonl": ("messages", 20),
    "openorca.jsonl": ("openorca", 20),
    "seed_tasks.jsonl": ("seed_tasks", 20),
}


@pytest.fixture
def tiktoken_cache(monkeypatch):
    """tiktoken's encodings without network: the shared cache, or whatever TIKTOKEN_CACHE_DIR already says."""
    if "TIKTOKEN_CACHE_DIR" not in os.environ:
        if not (SHARED / "tiktoken").is_dir():
            pytest.skip("no tiktoken cache: set TIKTOKEN_CACHE_DIR")
        monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(SHARED / "tiktoken"))


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# ------------------------------------------------------------------ the app


def test_version(runner):
    result = invoke(runner, "--version")
    assert result.exit_code == 0
    assert result.stdout == f"itkit {itkit.__version__}\n"


def all_commands() -> list[str]:
    return sorted(typer.main.get_command(app).commands)


def test_the_data_commands_are_registered():
    assert {"convert", "validate", "stats"} <= set(all_commands())


@pytest.mark.parametrize("args", [["--help"], ["-h"]] + [[name, "--help"] for name in all_commands()])
def test_help_on_every_command(runner, args):
    result = invoke(runner, *args)
    assert result.exit_code == 0, result.output
    assert "Usage: itkit" in result.stdout
    assert result.stderr == ""


def test_root_help_lists_the_commands(runner):
    out = invoke(runner, "--help").stdout
    for name in ("convert", "validate", "stats"):
        assert f" {name} " in out


@pytest.mark.parametrize(
    "args",
    [
        ["convert", str(SAMPLES / "dolly.jsonl"), "--to", "orca"],
        ["convert", str(SAMPLES / "dolly.jsonl"), "--from", "csv"],
        ["convert", str(SAMPLES / "dolly.jsonl"), "--on-error", "ignore"],
        ["convert", str(SAMPLES / "dolly.jsonl"), "--no-such-option"],
        ["convert"],
        ["no-such-command"],
        ["stats", str(SAMPLES / "dolly.jsonl"), "--encoding", "cl100k_base", "--tokenizer-model", "gpt-4o"],
        ["stats", str(SAMPLES / "dolly.jsonl"), "--encoding", "no_such_encoding"],
    ],
)
def test_usage_errors_exit_2(runner, args, tiktoken_cache):
    result = invoke(runner, *args)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""


def test_usage_error_messages(runner, tiktoken_cache):
    result = invoke(runner, "stats", SAMPLES / "dolly.jsonl", "--encoding", "cl100k_base", "--tokenizer-model", "gpt-4o")
    assert result.stderr == "itkit: error: give --encoding or --tokenizer-model, not both\n"
    result = invoke(runner, "stats", SAMPLES / "dolly.jsonl", "--encoding", "no_such_encoding")
    assert result.stderr.startswith("itkit: error: unknown tiktoken encoding 'no_such_encoding' (known: ")
    assert "cl100k_base" in result.stderr and "o200k_base" in result.stderr


# ------------------------------------------------------------------ convert


@pytest.mark.parametrize("sample", sorted(SAMPLE_FORMATS))
def test_convert_every_sample_to_every_format(runner, tmp_path, sample):
    source_format, count = SAMPLE_FORMATS[sample]
    for target in FORMAT_NAMES:
        out = tmp_path / f"{target}.jsonl"
        result = invoke(runner, "convert", SAMPLES / sample, "-o", out, "--to", target, "--on-error", "skip")
        assert result.exit_code in (0, 3), result.stderr
        written = read_jsonl(out)
        errors = tmp_path / f"{target}.jsonl.errors.jsonl"
        rejected = read_jsonl(errors) if errors.exists() else []
        assert len(written) + len(rejected) == count, "every record is written or rejected"
        assert (result.exit_code == 3) == bool(rejected)
        assert f"converted {len(written)} of {count} records ({source_format} -> {target}) to {out}" in result.stderr
        if written:
            reader = RecordReader(str(out))
            assert len(list(reader)) == len(written)
            assert reader.format.name == target


@pytest.mark.parametrize("ext", ["json", "jsonl", "csv", "parquet", "jsonl.gz", "json.gz"])
def test_convert_to_every_container_and_back(runner, tmp_path, ext):
    out = tmp_path / f"chat.{ext}"
    result = invoke(runner, "convert", SAMPLES / "messages.jsonl", "-o", out)
    assert result.exit_code == 0, result.stderr
    back = tmp_path / "back.jsonl"
    assert invoke(runner, "convert", out, "-o", back, "-q").exit_code == 0
    rows = read_jsonl(SAMPLES / "messages.jsonl")
    assert without_added_ids(read_jsonl(back), rows) == rows
    # rows without an id got one from the first file's name and row, and kept it through the second convert
    assert [r["id"] for r in read_jsonl(back)] == [r.get("id", f"messages-{i}") for i, r in enumerate(rows)]


def test_convert_writes_a_json_array_for_json(runner, tmp_path):
    out = tmp_path / "dolly.json"
    assert invoke(runner, "convert", SAMPLES / "dolly.jsonl", "-o", out).exit_code == 0
    rows = json.loads(out.read_text(encoding="utf-8"))
    assert without_added_ids(rows, read_jsonl(SAMPLES / "dolly.jsonl")) == read_jsonl(SAMPLES / "dolly.jsonl")


def test_convert_quiet_prints_nothing(runner, tmp_path):
    result = invoke(runner, "convert", SAMPLES / "dolly.jsonl", "-o", tmp_path / "o.jsonl", "-q")
    assert result.exit_code == 0
    assert result.stdout == result.stderr == ""


def test_convert_forced_from_format(runner, tmp_path):
    src = tmp_path / "both.jsonl"
    src.write_text(json.dumps({"conversations": [{"from": "human", "value": "hi"}], "messages": [{"role": "user", "content": "yo"}]}) + "\n")
    result = invoke(runner, "convert", src, "--from", "messages", "--to", "alpaca")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {"id": "both-0", "instruction": "yo", "input": "", "output": ""}


# ------------------------------------------------------------------ validate


def test_validate_a_good_file(runner):
    result = invoke(runner, "validate", SAMPLES / "dolly.jsonl")
    assert result.exit_code == 0
    assert result.stdout == ""
    assert result.stderr == f"{SAMPLES / 'dolly.jsonl'}: dolly, 35 of 35 records valid: ok\n"


def test_validate_reports_every_problem_not_only_the_first(runner, tmp_path):
    src = tmp_path / "many.jsonl"
    good = '{"instruction": "ok", "input": "", "output": "fine"}'
    src.write_text(
        "\n".join(
            [
                good,
                '{"instruction": "a", "input": "", "output": 3}',
                "<html>not json</html>",
                '{"instruction": "b", "input": "", "output": "c", "history": "oops"}',
                '{"instruction": "ok", "input": "", "output": "fine"}',
                "[1, 2]",
                '{"input": "", "output": "no instruction"}',
                *[good] * 20,
                '{"instruction": "x", "context": "", "response": "dolly among alpacas"}',
            ]
        )
        + "\n"
    )
    result = invoke(runner, "validate", src)
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        f"{src}, line 2: field 'output': must be a string, got integer",
        f"{src}, line 3, column 1: invalid JSON: unexpected character, expected a JSON value",
        f"{src}, line 4: field 'history': must be an array of [prompt, response] pairs, got string",
        f"{src}, line 6: must be a JSON object, got list",
        f"{src}, line 7: field 'instruction': is missing",
        f"{src}, line 28: is in dolly format, not alpaca (mixed formats; split the file; alpaca expects instruction, input, output (or response), optional system, history)",
    ]
    assert result.stderr == f"{src}: alpaca, 22 of 28 records valid: 6 problem(s)\n"


def test_validate_reports_a_mix_among_the_first_records_as_one_problem(runner):
    result = invoke(runner, "validate", BROKEN / "mixed_formats.jsonl")
    assert result.exit_code == 1
    assert result.stdout == (
        f"{BROKEN / 'mixed_formats.jsonl'}: mixes formats (line 1 looks like alpaca, line 3 looks like dolly); "
        "split the file or pass --from\n"
    )


def test_validate_json_output(runner):
    result = invoke(runner, "validate", BROKEN / "schema_violation.jsonl", "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["format"] == "dolly" and report["records"] == 4 and report["valid"] == 2
    assert [(p["line"], p["message"].split(": ", 1)[1]) for p in report["problems"]] == [
        (2, "field 'response': must be a string, got integer"),
        (4, "field 'instruction': is missing"),
    ]


def test_validate_a_file_that_cannot_be_read_at_all(runner):
    result = invoke(runner, "validate", BROKEN / "invalid_json_array.json", "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["format"] is None and report["valid"] == 0
    assert report["problems"] == [
        {
            "message": f"{BROKEN / 'invalid_json_array.json'}, line 7, column 3: invalid JSON: unexpected character, expected ',' or ']'",
            "source": str(BROKEN / "invalid_json_array.json"),
            "line": 7,
            "column": 3,
        }
    ]


def test_validate_with_a_forced_format(runner):
    result = invoke(runner, "validate", SAMPLES / "dolly.jsonl", "--from", "alpaca", "-q")
    assert result.exit_code == 1
    assert len(result.stdout.splitlines()) == 35
    assert result.stderr == ""


def test_validate_stdin(runner):
    result = invoke(runner, "validate", "-", input=(SAMPLES / "openorca.jsonl").read_bytes())
    assert result.exit_code == 0
    assert result.stderr == "<stdin>: openorca, 20 of 20 records valid: ok\n"


# ------------------------------------------------------------------ stats

STATS_ROWS = [
    {"instruction": "Name a colour.", "input": "", "output": "Blue."},
    {"instruction": "Name a colour.", "input": "", "output": "Blue."},  # exact duplicate
    {"instruction": "name a   COLOUR.", "input": "", "output": "blue."},  # duplicate once normalised
    {"instruction": "Name a colour.", "input": "", "output": "Red."},  # same prompt, other response
    {"instruction": "Translate into English.", "input": "Bonjour tout le monde", "output": ""},  # empty response
    {"system": "Be brief.", "instruction": "And now?", "input": "", "output": "Done and dusted.", "history": [["Start.", "Started."]]},
]


@pytest.fixture
def stats_file(tmp_path) -> Path:
    path = tmp_path / "stats.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in STATS_ROWS), encoding="utf-8")
    return path


def expected_tokens(encoding: str) -> dict[str, dict]:
    """Token distributions computed here, independently, with tiktoken and numpy."""
    import tiktoken

    enc = tiktoken.get_encoding(encoding)
    n = lambda s: len(enc.encode_ordinary(s))  # noqa: E731
    fields: dict[str, list[int]] = {"system": [], "prompt": [], "input": [], "response": [], "total": []}
    for r in STATS_ROWS:
        users = [p for p, _ in r.get("history", [])] + [r["instruction"]]
        answers = [a for _, a in r.get("history", [])] + [r["output"]]
        values = [n(r.get("system", "")), n("\n".join(users)), n(r["input"]), n("\n".join(answers))]
        for name, v in zip(("system", "prompt", "input", "response"), values):
            fields[name].append(v)
        fields["total"].append(sum(values))
    return {
        name: {
            "min": min(v),
            "median": statistics.median(v),
            "p95": float(np.percentile(v, 95)),
            "max": max(v),
            "count": len(v),
            "mean": sum(v) / len(v),
        }
        for name, v in fields.items()
    }


def test_stats_json(runner, stats_file, tiktoken_cache):
    result = invoke(runner, "stats", stats_file, "--json")
    assert result.exit_code == 0, result.stderr
    stats = json.loads(result.stdout)
    assert stats["scores"] == {}  # no record carries a judge score (itkit score)
    assert {k: stats[k] for k in stats if k not in ("tokens", "categories", "source", "scores")} == {
        "format": "alpaca",
        "encoding": "cl100k_base",
        "records": 6,
        "single_turn": 5,
        "multi_turn": 1,
        "exchanges": 7,
        "max_exchanges": 2,
        "with_system": 1,
        "with_input": 1,
        "empty_prompt": 0,
        "empty_response": 1,
        "no_response": 0,
        "duplicate_records": 2,
        "duplicate_prompts": 3,
        "rejected": 0,
    }
    expected = expected_tokens("cl100k_base")
    for name, dist in expected.items():
        got = stats["tokens"][name]
        assert got == pytest.approx(dist), name


def test_stats_table(runner, stats_file, tiktoken_cache):
    result = invoke(runner, "stats", stats_file)
    assert result.exit_code == 0
    lines = [" ".join(line.replace("│", " ").split()) for line in result.stdout.splitlines()]
    for row in (
        "records 6",
        "multi-turn 1",
        "empty response 1",
        "duplicate records (normalised) 2",
        "duplicate prompts (normalised) 3",
    ):
        assert row in lines
    assert "tokens per record (cl100k_base)" in result.stdout
    header = next(line for line in lines if line.startswith("┃") or "field" in line)
    assert header.replace("┃", " ").split() == ["field", "min", "median", "p95", "max", "mean"]
    d = expected_tokens("cl100k_base")["response"]
    response_row = next(line.split() for line in lines if line.startswith("response "))
    assert response_row[1:5] == [str(d["min"]), f"{d['median']:g}", f"{d['p95']:.1f}", str(d["max"])]


def test_stats_categories_and_turns_of_the_samples(runner, tiktoken_cache):
    stats = json.loads(invoke(runner, "stats", SAMPLES / "dolly.jsonl", "--json").stdout)
    assert stats["records"] == 35
    assert stats["categories"] == {
        "closed_qa": 5,
        "general_qa": 5,
        "open_qa": 5,
        "brainstorming": 4,
        "classification": 4,
        "creative_writing": 4,
        "information_extraction": 4,
        "summarization": 4,
    }
    assert stats["duplicate_records"] == 1 and stats["empty_response"] == 1
    chat = json.loads(invoke(runner, "stats", SAMPLES / "sharegpt.json", "--json").stdout)
    assert (chat["records"], chat["multi_turn"], chat["max_exchanges"], chat["no_response"]) == (20, 7, 3, 1)
    assert chat["with_system"] == 3 and chat["duplicate_records"] == 1


def test_stats_with_another_encoding_or_a_model(runner, stats_file, tiktoken_cache):
    for args, encoding in ((["--encoding", "o200k_base"], "o200k_base"), (["--tokenizer-model", "gpt-4o"], "o200k_base"), (["--tokenizer-model", "my-local-llama"], "o200k_base"), (["--tokenizer-model", "gpt-4"], "cl100k_base")):
        stats = json.loads(invoke(runner, "stats", stats_file, "--json", *args).stdout)
        assert stats["encoding"] == encoding
        assert stats["tokens"]["total"] == pytest.approx(expected_tokens(encoding)["total"])


def test_stats_skip_counts_rejected_records(runner, tiktoken_cache):
    result = invoke(runner, "stats", BROKEN / "some_bad_records.jsonl", "--on-error", "skip", "--json")
    assert result.exit_code == 3
    stats = json.loads(result.stdout)
    assert (stats["records"], stats["rejected"]) == (4, 2)


@pytest.fixture
def offline_tiktoken(tmp_path, monkeypatch):
    """tiktoken with an empty cache and the network blocked: every download attempt is recorded and refused."""
    import requests
    import tiktoken.registry

    from itkit import tokens

    empty = tmp_path / "empty_tiktoken_cache"
    empty.mkdir()
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(empty))
    monkeypatch.setattr(tiktoken.registry, "ENCODINGS", {})  # forget encodings other tests loaded
    tokens.get_encoding.cache_clear()
    attempts: list[str] = []

    def blocked(url, *args, **kwargs):
        attempts.append(url)
        raise requests.ConnectionError(f"network blocked in tests: {url}")

    monkeypatch.setattr(requests, "get", blocked)
    yield empty, attempts
    tokens.get_encoding.cache_clear()


CL100K_FILE = "9b5ad71b2ce5302211f9c61530b329a4922fc6a4"  # sha1 of tiktoken's cl100k_base.tiktoken URL
O200K_FILE = "fb374d419588a4632f3f557e76b4b70aebbca790"  # sha1 of tiktoken's o200k_base.tiktoken URL
CL100K_URL = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"


def test_stats_offline_estimates_tokens_and_says_once_how_to_get_exact_ones(runner, offline_tiktoken):
    empty, attempts = offline_tiktoken
    result = invoke(runner, "stats", SAMPLES / "dolly.jsonl", "--json")
    assert result.exit_code == 0, result.stderr
    assert result.stderr == (
        f"itkit: warning: token figures are estimates: cannot load the tiktoken encoding 'cl100k_base': "
        f"TIKTOKEN_CACHE_DIR={empty} does not hold it and it could not be downloaded (offline?); for exact figures, "
        f"download {CL100K_URL} as {empty / CL100K_FILE} (tiktoken names a cached file by the sha1 of its URL)\n"
    )
    stats = json.loads(result.stdout)
    assert stats["encoding"] == "cl100k_base (estimated)"
    assert stats["records"] == 35 and stats["tokens"]["response"]["max"] > 0
    assert attempts and all(url.startswith("https://") for url in attempts), "the download was tried (and blocked)"
    assert list(empty.iterdir()) == []


def test_stats_fails_offline_when_the_encoding_was_asked_for(runner, offline_tiktoken, monkeypatch, tmp_path):
    monkeypatch.delenv("TIKTOKEN_CACHE_DIR")
    monkeypatch.delenv("DATA_GYM_CACHE_DIR", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # tiktoken's default cache lives in the temp folder
    result = invoke(runner, "stats", SAMPLES / "dolly.jsonl", "--tokenizer-model", "gpt-4o")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == (
        "itkit: error: cannot load the tiktoken encoding 'o200k_base': it is not in tiktoken's cache and it could not "
        "be downloaded (offline?); download https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken "
        f"as DIR/{O200K_FILE} and set TIKTOKEN_CACHE_DIR=DIR (tiktoken names a cached file by the sha1 of its URL)\n"
    )


def test_the_named_cache_files_are_tiktokens():
    """The file names the messages give are the sha1 of the URLs in tiktoken's own source, and the shared
    cache that CI uses holds exactly those files."""
    import hashlib
    import inspect
    import re as _re

    import tiktoken_ext.openai_public as public

    from itkit.tokens import ENCODING_FILES, encoding_files

    def urls_of(ctor) -> list[str]:
        source = inspect.getsource(ctor)
        urls = _re.findall(r'"(https://[^"]+)"', source)
        if not urls:  # built on another encoding (o200k_harmony on o200k_base)
            base = _re.search(r"= (\w+)\(\)", source).group(1)
            urls = urls_of(public.ENCODING_CONSTRUCTORS[base])
        return urls

    for name, ctor in public.ENCODING_CONSTRUCTORS.items():
        urls = urls_of(ctor)
        assert name in ENCODING_FILES, name
        assert [url for url, _ in encoding_files(name)] == urls, name
        assert [key for _, key in encoding_files(name)] == [hashlib.sha1(u.encode()).hexdigest() for u in urls]
    assert encoding_files("cl100k_base")[0][1] == CL100K_FILE
    shared = SHARED / "tiktoken"
    if shared.is_dir():
        assert {CL100K_FILE, O200K_FILE} <= {p.name for p in shared.iterdir()}


def test_ids_are_given_once_from_the_first_source_and_kept_through_every_pipe(runner, tmp_path):
    """alpaca.json (no ids) | filter | dedup | convert: every record still has the id of its source row."""
    src = SAMPLES / "alpaca.json"
    source_rows = json.loads(src.read_text(encoding="utf-8"))
    assert not any("id" in row for row in source_rows)
    step1 = invoke(runner, "filter", src, "-o", "-", "-q")
    step2 = invoke(runner, "dedup", "-", "-o", "-", "-q", input=step1.stdout)
    step3 = invoke(runner, "convert", "-", "-o", tmp_path / "final.jsonl", "--to", "messages", "-q", input=step2.stdout)
    assert step1.exit_code == step2.exit_code == step3.exit_code == 0, (step1.stderr, step2.stderr, step3.stderr)
    final = read_jsonl(tmp_path / "final.jsonl")
    assert final and all(re.fullmatch(r"alpaca-\d+", row["id"]) for row in final), [row["id"] for row in final]
    for row in final:  # each id names the source row the record came from
        source = source_rows[int(row["id"].split("-")[1])]
        assert row["messages"][-1]["content"] == source["output"]
