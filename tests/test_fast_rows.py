"""The fast record path (RecordReader.fast, Format.plain, RecordWriter.write_fast) against the slow one.

Every check compares the two on the same input: the views' fields, records and dumped rows against load/dump;
the reader's records, counts, errors and rejects; decontaminate's output, report and errors files byte for byte,
over every format and container (all but Alpaca JSONL fall back to the slow path whole).
"""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import orjson
import pytest
from conftest import SAMPLES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from itkit.dataset import RecordReader, RecordWriter, RejectLog
from itkit.decontaminate import DecontaminateOptions, decontaminate_file
from itkit.dedup.texts import text_getter
from itkit.errors import InputError, Location
from itkit.formats import FORMATS, alpaca
from itkit.formats.base import LoadContext, Plain

CTX = LoadContext(Location("t.jsonl", line=3), "t-2")
TEXT = st.one_of(st.sampled_from(["", " ", "<noinput>", " No Input ", "noinput", "a \"quoted\" \\ word", "x\ny"]), st.text(max_size=12))
VALUE = st.one_of(TEXT, st.none(), st.integers(-3, 3), st.booleans(), st.lists(TEXT, max_size=2),
                  st.lists(st.lists(TEXT, min_size=2, max_size=2), max_size=2), st.dictionaries(st.sampled_from(["k", "category"]), TEXT, max_size=2))
KEYS = ["id", "system", "instruction", "input", "output", "response", "history", "metadata", "text", "context", "instances"]
ROW = st.dictionaries(st.sampled_from(KEYS), st.one_of(TEXT, TEXT, VALUE), max_size=6).map(
    lambda d: {"instruction": "Do it", "output": "Done", **d} if len(d) % 3 else d
)


def slow(row: dict):
    try:
        return alpaca.load(row, CTX)
    except InputError:
        return None


@settings(max_examples=3000, suppress_health_check=[HealthCheck.too_slow])
@given(ROW)
def test_an_alpaca_plain_view_is_the_record_load_builds_and_its_dump(row):
    view = alpaca.plain(row, CTX.default_id)
    record = slow(row)
    if view is None:
        return
    view.location = CTX.location
    assert record is not None and alpaca.matches(row)
    assert view.record() == record
    assert view.dumped == alpaca.dump(record)
    assert (view.id, view.system, view.instruction, view.input, view.output) == (
        record.id, record.system, record.instruction, record.input, record.output)
    assert view.prompt == text_getter("prompt")(record) == record.prompt
    assert view.response == text_getter("response")(record)


def test_plain_views_cover_the_common_rows_and_nothing_else():
    assert alpaca.plain({"instruction": "a", "input": "", "output": "b"}, "t-2").dumped == {
        "id": "t-2", "instruction": "a", "input": "", "output": "b"}
    assert alpaca.plain({"id": "x", "system": "s", "instruction": "a", "output": "b"}, "t-2").dumped == {
        "id": "x", "system": "s", "instruction": "a", "output": "b"}
    for row in ({"instruction": "a", "input": "<noinput>", "output": "b"}, {"instruction": "a", "output": "b", "text": "t"},
                {"instruction": "a", "response": "b"}, {"id": 3, "instruction": "a", "output": "b"},
                {"instruction": "a", "output": "b", "history": []}, {"instruction": "a", "input": None, "output": "b"}):
        assert alpaca.plain(row, "t-2") is None, row
    assert [name for name, fmt in FORMATS.items() if fmt.plain is not None] == ["alpaca"]


ALPACA_LINES = [
    b'{"instruction": "Name a colour.", "input": "", "output": "Red."}\n',
    b'{"id": "own", "instruction": "Say \\"hi\\"", "output": "\\"hi\\""}\n',  # escaped quotes
    b'\n',
    b'   \n',
    b'{"instruction": "Dup", "output": "a", "output": "b"}\n',  # a duplicate key
    b'{"instruction": "Marker", "input": "<noinput>", "output": "x"}\n',  # not plain: loaded
    b'{"instruction": "Hist", "output": "x", "history": [["q", "a"]], "text": "extra"}\n',
    b'{"instruction": "broken", "output": \n',  # invalid JSON
    b'[1, 2]\n',  # not an object
    b'{"instruction": 5, "output": "x"}\n',  # a schema error
    b'{"instruction": "Sys", "system": "Be brief.", "input": "ctx", "output": "ok", "id": "s1"}\n',
    b'{"instruction": "caf\xc3\xa9 \xe6\x9d\xb1\xe4\xba\xac", "output": "x", "_itkit_failure": {"reason": "r"}}\n',
    b'{"instruction": "bad utf8 \xff", "output": "x"}\n',
    b'{"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo"}]}\n',  # another format
    b'{"instruction": "last", "output": "no newline"}',
]
HEAD = b"".join(orjson.dumps({"instruction": f"Row {i}", "input": "", "output": "ok"}) + b"\n" for i in range(20))
"""Plain rows first, so that format detection (the first 20 rows) sees Alpaca only."""


def read_both(path: Path, fmt: str = "auto", tmp: Path | None = None):
    out = []
    for fast in (False, True):
        errors = tmp / f"errors-{fast}.jsonl" if tmp else None
        rejects = RejectLog(str(errors) if errors else None)
        reader = RecordReader(str(path), fmt, "skip", rejects)
        items = list(reader.fast() if fast else reader)
        rejects.close()
        records = [i.record() if type(i) is Plain else i for i in items]
        out.append((records, reader.counts, errors.read_bytes() if errors and errors.exists() else None,
                    sum(type(i) is Plain for i in items)))
    return out


@pytest.mark.parametrize("bom", [False, True])
def test_the_fast_reader_gives_the_same_records_counts_and_rejects(tmp_path, bom):
    path = tmp_path / "mixed.jsonl"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + b"\n" + HEAD + b"".join(ALPACA_LINES))
    (slow_records, slow_counts, slow_errors, _), (fast_records, fast_counts, fast_errors, plain) = read_both(path, tmp=tmp_path)
    assert fast_records == slow_records and fast_counts == slow_counts and fast_errors == slow_errors
    assert plain == 24 and slow_counts.rejected == 6


def test_the_fast_reader_raises_the_slow_readers_error(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(ALPACA_LINES[0] * 30 + ALPACA_LINES[7] + ALPACA_LINES[0])
    errors = []
    for fast in (False, True):
        reader = RecordReader(str(path))
        with pytest.raises(InputError) as info:
            list(reader.fast() if fast else reader)
        errors.append(str(info.value))
    assert errors[0] == errors[1] and "line 31" in errors[0]


def sources(tmp_path: Path) -> list[Path]:
    """Every sample file (every format and container), plus Alpaca JSONL in the shapes the fast path must refuse."""
    found = sorted(p for p in SAMPLES.iterdir() if p.is_file() and p.suffix in (".json", ".jsonl", ".csv", ".parquet", ".gz"))
    lines = b"".join(ALPACA_LINES[:2] + ALPACA_LINES[5:7] + ALPACA_LINES[10:12])
    for name, data in (("plain.jsonl.gz", gzip.compress(lines)), ("noext", lines), ("array.json", b"[" + b",".join(
            line.strip() for line in ALPACA_LINES[:2]) + b"]"), ("jsonl_in.json", lines), ("pretty.jsonl", b'{\n"instruction": "a",\n"output": "b"}\n')):
        (tmp_path / name).write_bytes(data)
        found.append(tmp_path / name)
    return found


def test_the_fast_reader_matches_on_every_sample_format_and_container(tmp_path):
    checked = 0
    for path in sources(tmp_path):
        try:
            (a, ca, _, _), (b, cb, _, plain) = read_both(path)
        except InputError:
            continue  # a container-level error: both readers raise it before the first record
        assert a == b and ca == cb, path
        checked += 1
    assert checked >= 12


BENCH = [{"id": "q0", "question": "Natalia sold clips to forty eight of her friends in April and then she sold half as many",
          "answer": "she sold twenty four clips in May which makes seventy two clips in April and May together"}]


@pytest.mark.parametrize("mode", ["ngram", "coverage"])
def test_decontaminate_fast_and_slow_write_the_same_bytes(tmp_path, mode):
    bench = tmp_path / "bench.jsonl"
    bench.write_text("".join(json.dumps(r) + "\n" for r in BENCH))
    leak = orjson.dumps({"instruction": "Q: " + BENCH[0]["question"].upper() + "!", "input": "", "output": "x"}) + b"\n"
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_bytes(HEAD + b"".join(ALPACA_LINES[:-1]) + leak + ALPACA_LINES[-1])
    inputs = [mixed, *sources(tmp_path)]
    compared = 0
    for src in inputs:
        outs = []
        for fast in (False, True):
            folder = tmp_path / f"{src.name}-{fast}"
            folder.mkdir()
            try:
                summary = decontaminate_file(str(src), str(folder / "out.jsonl"), against=[str(bench)], bench_fields=["question", "answer"],
                                             options=DecontaminateOptions(mode=mode), report=str(folder / "report.jsonl"),
                                             on_error="skip", errors=str(folder / "errors.jsonl"), fast=fast)
            except InputError as err:
                outs.append(str(err))
                shutil.rmtree(folder)
                continue
            files = {p.name: p.read_bytes() for p in folder.iterdir()}
            outs.append((json.dumps(summary.as_dict()).replace(str(folder), "F"), files))
        assert outs[0] == outs[1], src
        compared += isinstance(outs[0], tuple)
    assert compared >= 12
    removed = [json.loads(line) for line in (tmp_path / "mixed.jsonl-True" / "report.jsonl").read_text().splitlines()]
    assert [r["id"] for r in removed] == ["mixed-32"]  # 20 head rows, 12 non-blank lines


def test_write_fast_converts_a_view_for_another_format(tmp_path):
    row = {"instruction": "a", "input": "b", "output": "c"}
    view = alpaca.plain(row, "t-2")
    for fmt in ("alpaca", "sharegpt", "messages"):
        a, b = tmp_path / f"{fmt}-slow.jsonl", tmp_path / f"{fmt}-fast.jsonl"
        with RecordWriter(str(a), fmt) as w:
            w.write(view.record())
        with RecordWriter(str(b), fmt) as w:
            w.write_fast(view)
        assert a.read_bytes() == b.read_bytes()
