"""itkit dedup end to end: files written, report lines, summary counts, keep policy, --on, errors, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import SAMPLES, invoke

from itkit.dataset import read_records

LONG = "Describe the water cycle in four short steps for a class of ten year old pupils, with one example each"
RECORDS = [
    {"id": "a", "instruction": "Give three tips for staying healthy.", "input": "", "output": "Sleep."},
    {"id": "a-copy", "instruction": "give three tips for staying   HEALTHY.", "input": "", "output": "Sleep, eat well and move."},
    {"id": "b", "instruction": LONG, "input": "", "output": "Evaporation, condensation, precipitation, collection."},
    {"id": "b-near", "instruction": LONG.replace("four", "five"), "input": "", "output": "Five steps."},
    {"id": "c", "instruction": "Write a poem about the sea.", "input": "", "output": "Waves."},
    {"id": "c-rouge", "instruction": "Write a short poem about the sea.", "input": "", "output": "Tides and waves."},
    {"id": "d", "instruction": "List three prime numbers.", "input": "", "output": "2, 3, 5"},
]


@pytest.fixture
def alpaca(tmp_path) -> Path:
    path = tmp_path / "data.json"
    path.write_text(json.dumps(RECORDS), encoding="utf-8")
    return path


def ids(path: Path) -> list[str]:
    return [r.id for r in read_records(str(path))]


def table_rows(stderr: str) -> dict[str, str]:
    """The label -> count rows of the rich summary table."""
    rows = {}
    for line in stderr.splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if len(cells) == 2 and cells[1].isdigit():
            rows[cells[0]] = cells[1]
    return rows


def report_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_all_stages_with_report_and_summary(runner, alpaca, tmp_path):
    out, report = tmp_path / "out.json", tmp_path / "removed.jsonl"
    result = invoke(runner, "dedup", alpaca, "-o", out, "--near", "--rouge", "--report", report)
    assert result.exit_code == 0, result.stderr
    assert ids(out) == ["a", "b", "c", "d"]  # input order of the kept records
    lines = report_lines(report)
    assert [(r["stage"], r["id"], r["kept_id"], r["index"], r["kept_index"]) for r in lines] == [
        ("exact", "a-copy", "a", 1, 0),
        ("near", "b-near", "b", 3, 2),
        ("rouge", "c-rouge", "c", 5, 4),
    ]
    assert lines[0]["score"] == 1.0 and 0.8 <= lines[1]["score"] < 1 and lines[2]["score"] == pytest.approx(12 / 13)
    err = result.stderr
    assert table_rows(err) == {"in": "7", "removed: exact": "1", "removed: near": "1", "removed: rouge": "1", "kept": "4"}
    assert "wrote 4 record(s)" in err and "3 removed record(s)" in err
    assert result.stdout == ""


def test_default_is_exact_only_and_json_summary_accounts_for_every_record(runner, alpaca, tmp_path):
    out = tmp_path / "out.jsonl"
    result = invoke(runner, "dedup", alpaca, "-o", out, "--json")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["stages"] == ["exact"] and summary["removed"] == {"exact": 1}
    assert summary["rows"] == 7 and summary["kept"] == 6 and summary["rejected"] == 0
    assert summary["on"] == "auto: instruction" and summary["keep"] == "first"
    assert ids(out) == ["a", "b", "b-near", "c", "c-rouge", "d"]
    assert result.stderr == ""


def test_thresholds_turn_their_stage_on(runner, alpaca, tmp_path):
    out = tmp_path / "out.jsonl"
    result = invoke(runner, "dedup", alpaca, "-o", out, "--no-exact", "--rouge-threshold", "0.96", "--json")
    summary = json.loads(result.stdout)
    # ROUGE-L alone: the exact copy scores 1.0 > 0.96; the near copy (F1 0.95) and c-rouge (0.92) stay
    assert summary["stages"] == ["rouge"] and summary["removed"] == {"rouge": 1}
    assert "a-copy" not in ids(out)
    result = invoke(runner, "dedup", alpaca, "-o", out, "--near-threshold", "0.99", "--json")
    assert json.loads(result.stdout)["removed"] == {"exact": 1, "near": 0}


def test_keep_longest(runner, alpaca, tmp_path):
    out, report = tmp_path / "out.json", tmp_path / "r.jsonl"
    result = invoke(runner, "dedup", alpaca, "-o", out, "--rouge", "--keep", "longest", "--report", report, "-q")
    assert result.exit_code == 0 and result.stderr == ""
    # a-copy has the longer output than a, b than b-near, c-rouge than c
    assert ids(out) == ["a-copy", "b", "c-rouge", "d"]
    assert [(r["stage"], r["id"], r["kept_id"]) for r in report_lines(report)] == [
        ("exact", "a", "a-copy"),
        ("rouge", "b-near", "b"),
        ("rouge", "c", "c-rouge"),
    ]


def test_on_response_and_conversation(runner, tmp_path):
    rows = [
        {"instruction": "Name a colour.", "input": "", "output": "Blue."},
        {"instruction": "What colour is the sky?", "input": "", "output": "BLUE. "},
        {"instruction": "Name a colour.", "input": "", "output": "Red."},
    ]
    src = tmp_path / "d.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    out = tmp_path / "o.jsonl"

    def kept(*args):
        result = invoke(runner, "dedup", src, "-o", out, "-q", *args)
        assert result.exit_code == 0, result.stderr
        return [json.loads(line)["output"] for line in out.read_text().splitlines()]

    assert kept() == ["Blue.", "BLUE. "]
    assert kept("--on", "instruction") == ["Blue.", "BLUE. "]
    assert kept("--on", "response") == ["Blue.", "Red."]
    assert kept("--on", "conversation") == ["Blue.", "BLUE. ", "Red."]


def test_multi_turn_records_compare_all_user_turns_by_default(runner, tmp_path):
    def convo(cid, first, last):
        return {
            "id": cid,
            "conversations": [
                {"from": "human", "value": first},
                {"from": "gpt", "value": "Sure."},
                {"from": "human", "value": last},
                {"from": "gpt", "value": "Done."},
            ],
        }

    src = tmp_path / "chats.json"
    src.write_text(json.dumps([convo("x", "Plan a trip to Rome.", "Thanks!"), convo("y", "Explain tides.", "Thanks!"),
                               convo("z", "plan a trip to ROME.", "thanks!")]), encoding="utf-8")
    out = tmp_path / "out.json"
    result = invoke(runner, "dedup", src, "-o", out, "--json")
    summary = json.loads(result.stdout)
    assert summary["on"] == "auto: instruction, prompt for multi-turn records"
    assert ids(out) == ["x", "y"] and summary["removed"] == {"exact": 1}
    result = invoke(runner, "dedup", src, "-o", out, "--on", "instruction", "-q")
    assert ids(out) == ["x"]


@pytest.mark.parametrize(
    "sample",
    ["alpaca.json", "alpaca_variants.jsonl", "dolly.jsonl", "dolly.csv", "dolly.parquet", "dolly.jsonl.gz",
     "sharegpt.json", "messages.jsonl", "openorca.jsonl", "seed_tasks.jsonl"],
)
def test_every_input_format(runner, tmp_path, sample):
    src = SAMPLES / sample
    suffix = ".jsonl" if sample.endswith((".csv", ".parquet", ".gz")) else Path(sample).suffix
    out = tmp_path / f"out{suffix}"
    result = invoke(runner, "dedup", src, "-o", out, "--near", "--rouge", "--json")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["rows"] == summary["kept"] + sum(summary["removed"].values()) + summary["rejected"]
    assert summary["rows"] == len(read_records(str(src)))
    kept = [r.to_messages() for r in read_records(str(out))]
    assert len(kept) == summary["kept"] > 0
    # the kept records are the input's records, unchanged and in input order
    originals = iter(r.to_messages() for r in read_records(str(src)))
    assert all(any(k == o for o in originals) for k in kept)


def test_converts_with_to_and_writes_stdout(runner, alpaca):
    result = invoke(runner, "dedup", alpaca, "--to", "messages", "-q")
    assert result.exit_code == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 6 and rows[0]["messages"][0] == {"role": "user", "content": "Give three tips for staying healthy."}


def test_reads_stdin(runner, alpaca):
    text = "\n".join(json.dumps(r) for r in RECORDS)
    result = invoke(runner, "dedup", "-", "-q", input=text)
    assert result.exit_code == 0, result.stderr
    assert len(result.stdout.splitlines()) == 6


def test_real_sharegpt_sample(runner, realdata, tmp_path):
    out, report = tmp_path / "out.json", tmp_path / "r.jsonl"
    result = invoke(runner, "dedup", realdata / "sharegpt_fastchat_sample.json", "-o", out, "--near", "--report", report, "--json")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["rows"] == 500 == summary["kept"] + sum(summary["removed"].values())
    assert summary["removed"]["exact"] > 100  # the sample repeats its conversations
    assert len(report_lines(report)) == 500 - summary["kept"]
    assert len(json.loads(out.read_text(encoding="utf-8"))) == summary["kept"]


def test_bad_record_fails_with_one_line_and_writes_nothing(runner, tmp_path):
    out = tmp_path / "out.jsonl"
    result = invoke(runner, "dedup", SAMPLES / "broken" / "invalid_json.jsonl", "-o", out, "--near")
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("itkit: error: ") and "invalid_json.jsonl, line 3, column 63" in lines[0]
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_skip_bad_records_exits_3_and_counts_them(runner, tmp_path):
    out, errors = tmp_path / "out.jsonl", tmp_path / "bad.jsonl"
    src = SAMPLES / "broken" / "some_bad_records.jsonl"
    result = invoke(runner, "dedup", src, "-o", out, "--on-error", "skip", "--errors", errors, "--json")
    assert result.exit_code == 3, result.stderr
    summary = json.loads(result.stdout)
    assert summary["rejected"] == len(errors.read_text().splitlines()) > 0
    assert summary["rows"] == summary["kept"] + summary["rejected"] + summary["removed"]["exact"]
    assert summary["kept"] == len(out.read_text().splitlines())


@pytest.mark.parametrize(
    "args, message",
    [
        (["--no-exact"], "no stage to run"),
        (["--near-threshold", "1.5"], "Jaccard threshold must be in (0, 1]"),
        (["--rouge-threshold", "2"], "ROUGE-L threshold must be between 0 and 1"),
        (["--num-perm", "64"], "add --near"),
        (["--near", "--num-perm", "1"], "--num-perm must be at least 2"),
        (["--json"], "--json prints the summary to stdout"),
    ],
)
def test_usage_errors_exit_2(runner, alpaca, args, message):
    result = invoke(runner, "dedup", alpaca, *args)
    assert result.exit_code == 2, result.stderr
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_report_and_output_must_differ_and_missing_file(runner, alpaca, tmp_path):
    out = tmp_path / "o.jsonl"
    result = invoke(runner, "dedup", alpaca, "-o", out, "--report", out)
    assert result.exit_code == 2 and "same file" in result.stderr
    result = invoke(runner, "dedup", tmp_path / "nope.jsonl", "-o", out)
    assert result.exit_code == 1 and "nope.jsonl: no such file" in result.stderr and not out.exists()
    result = invoke(runner, "dedup", alpaca, "--on", "everything")
    assert result.exit_code == 2
