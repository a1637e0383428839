"""The real files in ../shared/realdata, loaded as-is (skipped when ../shared is absent)."""

from __future__ import annotations

import json

import pytest
from conftest import invoke

from itkit.convert import convert
from itkit.dataset import RecordReader, read_records
from itkit.formats import FORMAT_NAMES

SHAREGPT = "sharegpt_fastchat_sample.json"
SEEDS = "self_instruct_seed_tasks.jsonl"
SINGLE_TURN_FORMATS = ("dolly", "openorca", "seed_tasks")


def test_sharegpt_sample_loads_as_is(realdata):
    reader = RecordReader(str(realdata / SHAREGPT))
    records = list(reader)
    assert reader.format.name == "sharegpt"
    assert len(records) == 500
    assert len({r.id for r in records}) == 500
    assert all(r.turns[0].role == "user" for r in records)
    assert sum(r.is_multi_turn for r in records) > 0


def test_sharegpt_sample_round_trips_exactly(realdata, tmp_path):
    original = json.loads((realdata / SHAREGPT).read_text(encoding="utf-8"))
    for name in ("same.json", "same.jsonl", "same.parquet", "same.jsonl.gz"):
        convert(str(realdata / SHAREGPT), str(tmp_path / name))
        back = tmp_path / f"{name}.back.json"
        convert(str(tmp_path / name), str(back))
        assert json.loads(back.read_text(encoding="utf-8")) == original, name


def test_seed_tasks_load_as_is(realdata):
    records = read_records(str(realdata / SEEDS))
    assert len(records) == 175
    assert [r.id for r in records[:2]] == ["seed_task_0", "seed_task_1"]
    assert sum(r.metadata["is_classification"] for r in records) == 26
    assert records[1].metadata["task_name"] == "antonym_relation"
    assert records[1].input == "Night : Day :: Right : Left"


def test_seed_tasks_round_trip_exactly(realdata, tmp_path):
    out = tmp_path / "seeds.jsonl"
    result = convert(str(realdata / SEEDS), str(out))
    assert (result.read, result.written, result.rejected) == (175, 175, 0)
    original = [json.loads(line) for line in (realdata / SEEDS).read_text(encoding="utf-8").splitlines()]
    assert [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()] == original


@pytest.mark.parametrize("target", FORMAT_NAMES)
def test_real_files_convert_to_every_format(realdata, tmp_path, runner, target):
    for name, count in ((SHAREGPT, 500), (SEEDS, 175)):
        out = tmp_path / f"{name}.{target}.jsonl"
        result = invoke(runner, "convert", realdata / name, "-o", out, "--to", target, "--on-error", "skip", "-q")
        written = out.read_text(encoding="utf-8").splitlines()
        errors = tmp_path / f"{name}.{target}.jsonl.errors.jsonl"
        rejected = errors.read_text(encoding="utf-8").splitlines() if errors.exists() else []
        assert len(written) + len(rejected) == count
        if name == SEEDS or target not in SINGLE_TURN_FORMATS:
            assert result.exit_code == 0 and rejected == [], (name, target)
        else:  # only the multi-turn conversations are refused by single-turn formats
            assert result.exit_code == 3
            multi = sum(r.is_multi_turn for r in read_records(str(realdata / SHAREGPT)))
            assert len(rejected) == multi
        reader = RecordReader(str(out))
        assert sum(1 for _ in reader) == len(written)
        assert reader.format.name == target


def test_real_files_validate(realdata, runner):
    for name, fmt, count in ((SHAREGPT, "sharegpt", 500), (SEEDS, "seed_tasks", 175)):
        result = invoke(runner, "validate", realdata / name)
        assert result.exit_code == 0
        assert result.stderr == f"{realdata / name}: {fmt}, {count} of {count} records valid: ok\n"
