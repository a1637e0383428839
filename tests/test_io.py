"""Containers and streams: JSON, JSONL, Parquet, CSV, gzip, stdin/stdout, the Hub; atomic writes; encoding and types."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import ROOT, SAMPLES, id_blind, invoke, without_added_ids

from itkit.convert import convert
from itkit.dataset import RecordWriter, read_records
from itkit.errors import OutputError, SourceError, UsageError
from itkit.io import sinks
from itkit.io.rows import container_of, iter_rows, parse_hub_uri
from itkit.io.sinks import AtomicFile, RowWriter

ROWS = [
    {"id": "1", "instruction": "Traduis « bonjour ».", "input": "", "output": "Hello — 日本語 🎌 </p> \\ \"quoted\""},
    {"id": "2", "instruction": "Line\nbreaks\tand tabs", "input": "a,b;c", "output": ""},
]


def jsonl_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def leftovers(folder: Path) -> list[str]:
    """Temporary files an atomic writer may have left behind."""
    return [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


# ------------------------------------------------------------------ containers


@pytest.mark.parametrize("ext", ["jsonl", "json", "csv", "parquet", "jsonl.gz", "json.gz", "ndjson"])
def test_every_container_writes_and_reads_back_the_same_rows(tmp_path, ext):
    path = tmp_path / f"rows.{ext}"
    with RowWriter(str(path)) as writer:
        for row in ROWS:
            writer.write(row)
    assert [raw.data for raw in iter_rows(str(path))] == ROWS


def test_container_comes_from_the_extension():
    assert container_of("a.JSONL") == ("jsonl", False)
    assert container_of("a.json.gz") == ("json", True)
    assert container_of("dir.v2/a.parquet") == ("parquet", False)
    assert container_of("a.txt") == (None, False)
    assert container_of("a.txt", "csv") == ("csv", False)


@pytest.mark.parametrize(
    "content",
    [
        b'{"instruction": "a", "output": "b"}\n{"instruction": "c", "output": "d"}',
        b'[{"instruction": "a", "output": "b"}, {"instruction": "c", "output": "d"}]',
        b'\n\n  [\n {"instruction": "a", "output": "b"},\n{"instruction": "c", "output": "d"}\n]\n',
    ],
)
def test_json_or_jsonl_is_sniffed_whatever_the_extension(tmp_path, content):
    for name in ("data.txt", "data.json", "data.jsonl"):
        (tmp_path / name).write_bytes(content)
        assert [r.instruction for r in read_records(str(tmp_path / name))] == ["a", "c"], name


def test_jsonl_line_numbers_count_blank_lines(tmp_path):
    path = tmp_path / "gaps.jsonl"
    path.write_bytes(b'\n{"instruction": "a", "output": "b"}\r\n\n{"instruction": "c", "output": "d"}\n\n')
    assert [raw.location.line for raw in iter_rows(str(path))] == [2, 4]


def test_gzip_output_is_gzip_and_reads_back(tmp_path):
    out = tmp_path / "dolly.jsonl.gz"
    convert(str(SAMPLES / "dolly.jsonl"), str(out))
    assert out.read_bytes()[:2] == b"\x1f\x8b"
    lines = gzip.decompress(out.read_bytes()).decode("utf-8").splitlines()
    rows = jsonl_rows(SAMPLES / "dolly.jsonl")
    assert without_added_ids([json.loads(line) for line in lines], rows) == rows
    assert id_blind(read_records(str(out))) == id_blind(read_records(str(SAMPLES / "dolly.jsonl")))


def test_csv_keeps_nested_fields_as_json_cells(tmp_path):
    out = tmp_path / "chat.csv"
    convert(str(SAMPLES / "sharegpt.json"), str(out))
    assert out.read_text(encoding="utf-8").splitlines()[0] == "id,conversations,system,model,lang"
    back = tmp_path / "back.json"
    convert(str(out), str(back))
    want = json.loads((SAMPLES / "sharegpt.json").read_text(encoding="utf-8"))
    # a CSV cell cannot tell an absent field from an empty one: unknown columns come back as empty strings
    # (id, system and the JSON columns come back absent)
    want = [{**row, "model": row.get("model", ""), "lang": row.get("lang", "")} for row in want]
    assert json.loads(back.read_text(encoding="utf-8")) == want


def test_csv_empty_cells_of_optional_structured_columns_are_absent(tmp_path):
    """Rows without history/id in a CSV written by itkit read back without them (not as empty strings)."""
    src = tmp_path / "mixed.jsonl"
    src.write_text(
        '{"instruction": "a", "input": "", "output": "b"}\n'
        '{"id": "x2", "instruction": "c", "input": "", "output": "d", "history": [["p", "r"]]}\n',
        encoding="utf-8",
    )
    out = tmp_path / "mixed.csv"
    convert(str(src), str(out))
    records = read_records(str(out))
    assert records[0].history == [] and records[0].id == "mixed-0"  # the id given once, from the first file
    assert records[1].id == "x2" and records[1].history == [("p", "r")]


def test_parquet_columns_are_typed_and_absent_fields_are_null(tmp_path):
    out = tmp_path / "alpaca_variants.parquet"
    convert(str(SAMPLES / "alpaca_variants.jsonl"), str(out))
    table = pq.read_table(out)
    assert str(table.schema.field("instruction").type) == "string"
    assert str(table.schema.field("id").type) == "string"
    history = table.schema.field("history").type
    assert pa.types.is_list(history) and pa.types.is_string(history.value_type.value_type)
    assert id_blind(read_records(str(out))) == id_blind(read_records(str(SAMPLES / "alpaca_variants.jsonl")))


def test_parquet_round_trip_does_not_invent_null_fields(tmp_path):
    """Parquet gives every struct all keys seen in the column; absent ones (null) must stay absent."""
    out = tmp_path / "sharegpt.parquet"
    convert(str(SAMPLES / "sharegpt.json"), str(out))
    turn_keys = {k for row in pq.read_table(out).to_pylist() for turn in row["conversations"] for k in turn}
    assert turn_keys == {"from", "value", "markdown"}
    back = tmp_path / "back.json"
    convert(str(out), str(back))
    assert json.loads(back.read_text(encoding="utf-8")) == json.loads((SAMPLES / "sharegpt.json").read_text(encoding="utf-8"))


def test_parquet_refuses_gzip_and_stdout(tmp_path):
    with pytest.raises(UsageError, match="gzip-compressed Parquet"):
        RowWriter(str(tmp_path / "x.parquet.gz"))
    with pytest.raises(UsageError, match="cannot write Parquet to stdout"):
        RowWriter("-", "parquet")
    assert leftovers(tmp_path) == []


def test_unknown_output_extension_is_a_usage_error(tmp_path, runner):
    result = invoke(runner, "convert", SAMPLES / "dolly.jsonl", "-o", tmp_path / "out.txt")
    assert result.exit_code == 2
    assert "cannot tell the output container from its extension" in result.stderr
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ stdin / stdout


def test_stdin_to_stdout(runner):
    data = (SAMPLES / "alpaca.json").read_bytes()
    result = invoke(runner, "convert", "-", "-o", "-", "--to", "messages", input=data)
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert len(lines) == 32
    assert json.loads(lines[1])["messages"][0] == {
        "role": "user",
        "content": "Translate the sentence into French.\n\nThe library opens at nine o'clock on Saturdays.",
    }
    assert "converted 32 of 32 records (alpaca -> messages) to stdout" in result.stderr


def test_stdin_jsonl_to_a_file(runner, tmp_path):
    out = tmp_path / "o.json"
    result = invoke(runner, "convert", "-", "-o", out, input=(SAMPLES / "messages.jsonl").read_bytes())
    assert result.exit_code == 0 and result.stdout == ""
    assert len(json.loads(out.read_text(encoding="utf-8"))) == 20


def test_stdout_is_the_default_output_and_gets_only_data(runner):
    result = invoke(runner, "convert", SAMPLES / "openorca.jsonl")
    assert result.exit_code == 0
    assert [json.loads(line)["id"] for line in result.stdout.splitlines()][:2] == ["niv.101", "niv.102"]
    assert "converted 20 of 20" in result.stderr and "converted" not in result.stdout


# ------------------------------------------------------------------ UTF-8 and types


@pytest.mark.parametrize("ext", ["jsonl", "json", "csv", "jsonl.gz"])
def test_utf8_output_does_not_escape_non_ascii_or_slashes(tmp_path, ext):
    src = tmp_path / "src.jsonl"
    src.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in ROWS))
    out = tmp_path / f"out.{ext}"
    convert(str(src), str(out))
    raw = out.read_bytes()
    text = (gzip.decompress(raw) if ext.endswith(".gz") else raw).decode("utf-8")
    for needle in ("« bonjour »", "—", "日本語", "🎌", "</p>"):
        assert needle in text
    assert "\\u" not in text and "\\/" not in text


def test_ids_and_contents_have_one_type_in_every_row(tmp_path):
    src = tmp_path / "mixed_ids.jsonl"
    src.write_text(
        '{"id": 1, "instruction": "a", "input": "", "output": "b"}\n'
        '{"id": "two", "instruction": "c", "input": "", "output": "d"}\n'
        '{"id": 3, "instruction": "e", "input": "", "output": ""}\n',
        encoding="utf-8",
    )
    for ext in ("jsonl", "parquet"):
        out = tmp_path / f"out.{ext}"
        convert(str(src), str(out), to_format="sharegpt")
        rows = [raw.data for raw in iter_rows(str(out))]
        assert [r["id"] for r in rows] == ["1", "two", "3"]
        assert all(isinstance(t["value"], str) for r in rows for t in r["conversations"])
    assert str(pq.read_table(tmp_path / "out.parquet").schema.field("id").type) == "string"


def test_output_loads_with_datasets(tmp_path, monkeypatch):
    """datasets fails when a column changes type between rows; itkit's output must load."""
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf_cache")
    src = tmp_path / "ints.jsonl"
    src.write_text('{"id": 1, "instruction": "a", "output": "b"}\n{"id": "x", "instruction": "c", "output": "d"}\n')
    out = tmp_path / "out.jsonl"
    convert(str(src), str(out), to_format="messages")
    ds = datasets.load_dataset("json", data_files=str(out), split="train")
    assert ds["id"] == ["1", "x"]


# ------------------------------------------------------------------ atomic writes


def test_a_failing_writer_leaves_no_file(tmp_path):
    target = tmp_path / "out.jsonl"
    with pytest.raises(RuntimeError):
        with RowWriter(str(target)) as writer:
            writer.write(ROWS[0])
            assert leftovers(tmp_path), "rows go to a temporary file first"
            raise RuntimeError("boom")
    assert not target.exists()
    assert leftovers(tmp_path) == []


def test_a_failed_run_leaves_an_existing_output_untouched(tmp_path):
    target = tmp_path / "out.jsonl"
    target.write_text("precious\n")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "a", "input": "", "output": "b"}\n{"instruction": 1, "input": "", "output": "b"}\n')
    with pytest.raises(Exception, match="field 'instruction'"):
        convert(str(bad), str(target))
    assert target.read_text() == "precious\n"
    assert leftovers(tmp_path) == []


def test_an_interrupted_convert_writes_nothing(tmp_path, runner, monkeypatch):
    """Ctrl-C in the middle of a conversion: exit 130, no output, no errors file, no temporary file."""
    from itkit.formats import sharegpt

    calls = {"n": 0}
    real_dump = sharegpt.FORMAT.dump  # the format is a frozen dataclass: wrap the writer's dump instead

    def dump_then_interrupt(record):
        calls["n"] += 1
        if calls["n"] == 10:
            raise KeyboardInterrupt
        return real_dump(record)

    monkeypatch.setattr("itkit.dataset.RecordWriter.dump", lambda self, record: dump_then_interrupt(record))
    target = tmp_path / "out.jsonl"
    result = invoke(runner, "convert", SAMPLES / "alpaca.json", "-o", target, "--to", "sharegpt", "--on-error", "skip")
    assert result.exit_code == 130
    assert result.stderr.strip().splitlines()[-1].startswith("itkit: error: interrupted: nothing half-written was left")
    assert calls["n"] == 10
    assert list(tmp_path.iterdir()) == []


def test_a_failed_rename_leaves_no_file(tmp_path, monkeypatch):
    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(sinks.os, "replace", broken_replace)
    target = tmp_path / "out.jsonl"
    with pytest.raises(OutputError, match=r"out.jsonl: cannot write: No space left on device"):
        with RowWriter(str(target)) as writer:
            writer.write(ROWS[0])
    assert list(tmp_path.iterdir()) == []


def test_an_unwritable_output_folder_is_a_clear_error(tmp_path, runner):
    (tmp_path / "file").write_text("")
    result = invoke(runner, "convert", SAMPLES / "dolly.jsonl", "-o", tmp_path / "file" / "out.jsonl")
    assert result.exit_code == 1
    assert result.stderr == f"itkit: error: {tmp_path / 'file' / 'out.jsonl'}: cannot write here: Not a directory\n"
    result = invoke(runner, "convert", SAMPLES / "dolly.jsonl", "-o", tmp_path / "file" / "sub" / "out.jsonl")
    assert result.exit_code == 1
    assert result.stderr.startswith("itkit: error: ") and "cannot create its folder" in result.stderr


def test_output_files_get_normal_permissions(tmp_path):
    out = tmp_path / "out.jsonl"
    convert(str(SAMPLES / "dolly.jsonl"), str(out))
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask
    out.chmod(0o640)
    convert(str(SAMPLES / "dolly.jsonl"), str(out))
    assert out.stat().st_mode & 0o777 == 0o640, "replacing a file keeps its permissions"


def test_atomic_file_commit_is_all_or_nothing(tmp_path):
    f = AtomicFile(tmp_path / "a.bin")
    f.fh.write(b"abc")
    assert not (tmp_path / "a.bin").exists()
    f.commit()
    assert (tmp_path / "a.bin").read_bytes() == b"abc"
    g = AtomicFile(tmp_path / "a.bin")
    g.fh.write(b"xyz")
    g.abort()
    assert (tmp_path / "a.bin").read_bytes() == b"abc"
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGKILL])
def test_a_killed_process_leaves_no_output(tmp_path, sig):
    """A real process stopped mid-stream (stdin still open): the target never appears."""
    target = tmp_path / "out.jsonl"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "itkit", "convert", "-", "-o", str(target), "--to", "sharegpt"],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
        env=env,
    )
    line = b'{"instruction": "a", "input": "", "output": "b"}\n'
    proc.stdin.write(line * 50)
    proc.stdin.flush()
    deadline = time.time() + 30
    while not leftovers(tmp_path) and time.time() < deadline:  # detection done, the writer has opened its temp file
        time.sleep(0.05)
    assert leftovers(tmp_path), "the conversion did not start"
    proc.send_signal(sig)
    proc.stdin.close()
    proc.wait(timeout=30)
    stderr = proc.stderr.read().decode()
    proc.stderr.close()
    assert not target.exists()
    if sig != signal.SIGKILL:  # Ctrl-C, docker stop / systemd / timeout (SIGTERM), a closed terminal (SIGHUP)
        assert proc.returncode == 128 + sig
        by = "" if sig == signal.SIGINT else f" by {signal.Signals(sig).name}"
        assert stderr.strip().startswith(f"itkit: error: interrupted{by}: nothing half-written was left; re-run")
        assert leftovers(tmp_path) == []
    else:
        assert proc.returncode == -signal.SIGKILL


# ------------------------------------------------------------------ streaming


def test_jsonl_conversion_streams(tmp_path):
    """Converting a JSONL file holds a bounded amount of memory, far below the file's size."""
    row = {"instruction": "Question about something " * 3, "input": "x" * 120, "output": "y" * 300}
    src = tmp_path / "big.jsonl"
    src.write_bytes(b"".join(orjson.dumps({**row, "id": str(i)}) + b"\n" for i in range(8000)))
    size = src.stat().st_size
    tracemalloc.start()
    try:
        convert(str(src), str(tmp_path / "out.jsonl"), to_format="sharegpt")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert size > 3_500_000
    assert peak < 0.4 * size, f"peak {peak} bytes for a {size}-byte file"


def test_records_are_read_lazily(tmp_path):
    """The first record is available before a later bad line is even parsed."""
    src = tmp_path / "lazy.jsonl"
    src.write_text('{"instruction": "a", "output": "b"}\n' * 25 + "not json\n")
    rows = iter_rows(str(src))
    first = next(rows)
    assert first.data == {"instruction": "a", "output": "b"} and first.error is None


# ------------------------------------------------------------------ the Hugging Face Hub


def test_hub_uri_parsing():
    assert parse_hub_uri("hf://org/name") == ("org/name", None, "train")
    assert parse_hub_uri("hf://org/name:test") == ("org/name", None, "test")
    assert parse_hub_uri("hf://org/name/config:validation") == ("org/name", "config", "validation")
    assert parse_hub_uri("hf:///data/my.folder:test") == ("/data/my.folder", None, "test")
    assert parse_hub_uri("hf://./local") == ("./local", None, "train")
    with pytest.raises(UsageError, match="names no dataset"):
        parse_hub_uri("hf://")
    with pytest.raises(UsageError, match="is not a dataset name"):
        parse_hub_uri("hf://a/b/c/d")


def test_hub_local_dataset_folder_through_datasets(tmp_path, runner, monkeypatch):
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf_cache")
    folder = tmp_path / "my_dataset"
    folder.mkdir()
    convert(str(SAMPLES / "dolly.jsonl"), str(folder / "train.jsonl"))
    convert(str(SAMPLES / "dolly.jsonl"), str(folder / "test.jsonl"))
    out = tmp_path / "from_hub.jsonl"
    result = invoke(runner, "convert", f"hf://{folder}", "-o", out, "--to", "alpaca")
    assert result.exit_code == 0, result.stderr
    assert "converted 35 of 35 records (dolly -> alpaca)" in result.stderr
    assert jsonl_rows(out)[0]["instruction"] == "What is the difference between a violin and a viola?"
    result = invoke(runner, "stats", f"hf://{folder}:test", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["records"] == 35


def test_hub_name_offline_is_a_clear_one_line_error(tmp_path):
    """HF_HUB_OFFLINE=1 and a dataset that is not cached: one line, exit 1, nothing written, no network."""
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf_home"),
        "HF_DATASETS_CACHE": str(tmp_path / "hf_home" / "datasets"),
    }
    out = tmp_path / "out.jsonl"
    proc = subprocess.run(
        [sys.executable, "-m", "itkit", "convert", "hf://itkit-test/no-such-dataset", "-o", str(out)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("itkit: error: hf://itkit-test/no-such-dataset: cannot load from the Hugging Face Hub")
    assert "offline mode is on" in lines[0]
    assert not out.exists()


def test_writing_to_the_hub_is_refused(runner, tmp_path):
    result = invoke(runner, "convert", SAMPLES / "dolly.jsonl", "-o", "hf://org/name")
    assert result.exit_code == 2
    assert "cannot write to the Hub" in result.stderr


def test_missing_source_and_directory_source(tmp_path):
    with pytest.raises(SourceError, match="no such file"):
        list(iter_rows(str(tmp_path / "nope.jsonl")))
    with pytest.raises(SourceError, match=r"is a directory; give a file \(or hf://"):
        list(iter_rows(str(tmp_path)))


# ------------------------------------------------------------------ byte-order marks, devices

BOM_CASES = {
    "bom.json": b'\xef\xbb\xbf[{"instruction": "Name a colour.", "input": "", "output": "Blue."}]\n',
    "bom.jsonl": b'\xef\xbb\xbf{"instruction": "Name a colour.", "input": "", "output": "Blue."}\n'
    b'{"instruction": "Name a fruit.", "input": "", "output": "Pear."}\n',
    "bom.csv": b"\xef\xbb\xbfinstruction,input,output\nName a colour.,,Blue.\n",
}


@pytest.mark.parametrize("name", sorted(BOM_CASES))
def test_a_utf8_bom_is_accepted_and_stripped(runner, tmp_path, name):
    src = tmp_path / name
    src.write_bytes(BOM_CASES[name])
    out = tmp_path / "out.jsonl"
    result = invoke(runner, "convert", src, "-o", out)
    assert result.exit_code == 0, result.stderr
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert rows[0]["instruction"] == "Name a colour."  # not "\ufeffName..." nor a "\ufeffinstruction" column
    assert all("\ufeff" not in json.dumps(row, ensure_ascii=False) for row in rows)
    assert b"\xef\xbb\xbf" not in out.read_bytes()


def test_a_bom_on_stdin_is_stripped(runner):
    result = invoke(runner, "convert", "-", "-o", "-", input=BOM_CASES["bom.jsonl"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[0])["instruction"] == "Name a colour."


@pytest.mark.skipif(not os.path.exists(os.devnull), reason="no /dev/null")
@pytest.mark.parametrize("command", ["convert", "filter", "dedup"])
def test_dev_null_is_an_output(runner, tmp_path, monkeypatch, command):
    monkeypatch.chdir(tmp_path)
    result = invoke(runner, command, SAMPLES / "dolly.jsonl", "-o", os.devnull, "--on-error", "skip")
    assert result.exit_code == 0, result.stderr
    assert "cannot tell the output container" not in result.stderr
    assert list(tmp_path.iterdir()) == []  # nothing beside it, no temporary file
    assert os.path.exists(os.devnull) and sinks.is_device(os.devnull)


def test_a_device_is_written_in_place_as_jsonl(tmp_path):
    with RowWriter(os.devnull) as writer:
        writer.write({"a": 1})
    assert writer.container == "jsonl" and writer.count == 1
    with pytest.raises(UsageError, match="cannot write Parquet to a device"):
        RowWriter(os.devnull, "parquet")
    assert sinks.is_stream("-") and sinks.is_stream(os.devnull) and not sinks.is_stream(str(tmp_path / "x.jsonl"))
