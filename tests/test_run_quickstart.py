"""``itkit run`` without an LLM: the quickstart recipe, resume, --from-step, dry run, sources, the run folder."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest
from conftest import ROOT, SAMPLES, SHARED, invoke

# export and dry runs count tokens with tiktoken: use the shared encoding files offline
os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(SHARED / "tiktoken"))

QUICKSTART = ROOT / "data_samples" / "recipes" / "quickstart.yaml"
SOURCE_COUNTS = {"../alpaca.json": 32, "../dolly.jsonl": 35, "../sharegpt.json": 20}


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def summary_of(run_dir: Path) -> dict:
    return json.loads((run_dir / "run_summary.json").read_text(encoding="utf-8"))


def statuses(run_dir: Path) -> dict[str, str]:
    return {row["step"]: row["status"] for row in summary_of(run_dir)["steps"]}


def run(runner, *args):
    return invoke(runner, "run", *args)


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory) -> Path:
    """One run of the shipped quickstart recipe (shared by the tests that only read it)."""
    from typer.testing import CliRunner

    run_dir = tmp_path_factory.mktemp("quickstart") / "run"
    result = invoke(CliRunner(), "run", QUICKSTART, "--run-dir", run_dir)
    assert result.exit_code == 0, result.stderr
    return run_dir


def test_quickstart_merges_filters_dedups_and_exports_both_modes_for_trl_and_llama_factory(quickstart):
    run_dir = quickstart
    summary = summary_of(run_dir)
    assert [row["step"] for row in summary["steps"]] == ["00-sources", "01-filter", "02-dedup", "03-export"]
    assert summary["exit_code"] == 0 and summary["totals"]["requests"] == 0

    sources, filtered, deduped, export = summary["steps"]
    assert sources["records_in"] == sources["records_out"] == sum(SOURCE_COUNTS.values())
    assert sources["outputs"] == SOURCE_COUNTS
    # every record is accounted for: kept or removed with a reason
    for row in (filtered, deduped):
        assert row["records_in"] == row["records_out"] + sum(row["removed"].values())
        assert row["removed"] and len(read_jsonl(run_dir / row["step"] / "removed.jsonl")) == sum(row["removed"].values())
    assert filtered["records_in"] == sources["records_out"]
    assert deduped["records_in"] == filtered["records_out"]
    assert export["records_in"] == deduped["records_out"]
    assert export["outputs"] == {"lft": 40, "sft": deduped["records_out"]}

    out = run_dir / "03-export" / "output"
    for mode in ("lft", "sft"):
        trl = read_jsonl(out / mode / "trl" / "train.jsonl") + read_jsonl(out / mode / "trl" / "val.jsonl")
        assert len(trl) == export["outputs"][mode]
        assert all(row["messages"][-1]["role"] == "assistant" for row in trl)
        factory = out / mode / "llama-factory"
        info = json.loads((factory / "dataset_info.json").read_text(encoding="utf-8"))
        assert info and (factory / "train.jsonl").stat().st_size > 0
    assert (out / "manifest.json").is_file() and (out / "README.md").is_file()

    # every step folder holds its output, its summary and its fingerprint
    for step in ("00-sources", "01-filter", "02-dedup", "03-export"):
        assert (run_dir / step / "summary.json").is_file()
        assert (run_dir / step / "fingerprint.json").is_file()


def test_records_keep_their_source_and_ids_between_steps(quickstart):
    merged = read_jsonl(quickstart / "00-sources" / "merged.jsonl")
    assert [r["metadata"]["source"] for r in merged] == [
        source for source, n in SOURCE_COUNTS.items() for _ in range(n)
    ]
    ids = [r["id"] for r in merged]
    assert len(set(ids)) == len(ids)
    assert ids[0] == "alpaca-0" and "dolly-0" in ids and "sg-001" in ids  # made-up ids are written out
    kept = read_jsonl(quickstart / "02-dedup" / "output.jsonl")
    assert {r["id"] for r in kept} <= set(ids)
    categories = {r["metadata"].get("category") for r in kept}
    assert "open_qa" in categories  # Dolly's category survives the steps
    lineage = read_jsonl(quickstart / "03-export" / "output" / "sft" / "lineage.jsonl")
    assert {row["source"] for row in lineage} == set(SOURCE_COUNTS)


def test_a_second_run_skips_every_step_and_rewrites_nothing(runner, tmp_path):
    run_dir = tmp_path / "run"
    assert run(runner, QUICKSTART, "--run-dir", run_dir, "-q").exit_code == 0
    # run_summary.json and report.html describe the latest run: rewritten each time
    outputs = sorted(p for p in run_dir.rglob("*") if p.is_file() and p.name not in ("run_summary.json", "report.html", ".lock"))
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in outputs}

    result = run(runner, QUICKSTART, "--run-dir", run_dir)
    assert result.exit_code == 0, result.stderr
    assert set(statuses(run_dir).values()) == {"skipped"}
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in outputs} == before
    assert "skipped" in result.stderr and "run_summary.json" in result.stderr


def test_from_reruns_that_step_and_the_ones_after(runner, tmp_path):
    run_dir = tmp_path / "run"
    assert run(runner, QUICKSTART, "--run-dir", run_dir, "-q").exit_code == 0
    filter_mtime = (run_dir / "01-filter" / "output.jsonl").stat().st_mtime_ns
    dedup_bytes = (run_dir / "02-dedup" / "output.jsonl").read_bytes()

    assert run(runner, QUICKSTART, "--run-dir", run_dir, "-q", "--from-step", "dedup").exit_code == 0
    assert statuses(run_dir) == {"00-sources": "skipped", "01-filter": "skipped", "02-dedup": "ran", "03-export": "ran"}
    assert (run_dir / "01-filter" / "output.jsonl").stat().st_mtime_ns == filter_mtime
    assert (run_dir / "02-dedup" / "output.jsonl").read_bytes() == dedup_bytes  # same inputs, same result

    assert run(runner, QUICKSTART, "--run-dir", run_dir, "-q", "--from-step", "0").exit_code == 0
    assert set(statuses(run_dir).values()) == {"ran"}

    result = run(runner, QUICKSTART, "--run-dir", run_dir, "--from-step", "07-nothing")
    assert result.exit_code == 2
    assert "--from-step 07-nothing: no such step; choose a number or a name: 0 (00-sources), 1 (01-filter)" in result.stderr


def test_a_changed_step_reruns_itself_and_what_follows(runner, tmp_path):
    recipe = tmp_path / "recipe.yaml"
    text = QUICKSTART.read_text(encoding="utf-8").replace("../", str(SAMPLES) + "/")
    recipe.write_text(text, encoding="utf-8")
    run_dir = tmp_path / "run"
    assert run(runner, recipe, "--run-dir", run_dir, "-q").exit_code == 0
    mtimes = {step: (run_dir / step / "fingerprint.json").stat().st_mtime_ns for step in statuses(run_dir)}

    recipe.write_text(text.replace("near_threshold: 0.8", "near_threshold: 0.5"), encoding="utf-8")
    assert run(runner, recipe, "--run-dir", run_dir, "-q").exit_code == 0
    assert statuses(run_dir) == {"00-sources": "skipped", "01-filter": "skipped", "02-dedup": "ran", "03-export": "ran"}
    after = {step: (run_dir / step / "fingerprint.json").stat().st_mtime_ns for step in statuses(run_dir)}
    assert [step for step in after if after[step] != mtimes[step]] == ["02-dedup", "03-export"]

    # writing a default value out changes nothing
    recipe.write_text(text.replace("near_threshold: 0.8", "near_threshold: 0.5\n      keep: first"), encoding="utf-8")
    assert run(runner, recipe, "--run-dir", run_dir, "-q").exit_code == 0
    assert set(statuses(run_dir).values()) == {"skipped"}


def test_an_output_changed_by_hand_is_rebuilt(runner, tmp_path):
    run_dir = tmp_path / "run"
    assert run(runner, QUICKSTART, "--run-dir", run_dir, "-q").exit_code == 0
    output = run_dir / "01-filter" / "output.jsonl"
    good = output.read_bytes()
    output.write_bytes(good.replace(b"houseplants", b"cactuses!!!"))
    assert run(runner, QUICKSTART, "--run-dir", run_dir, "-q").exit_code == 0
    assert statuses(run_dir)["01-filter"] == "ran"
    assert output.read_bytes() == good

    # a deleted export file is noticed too
    (run_dir / "03-export" / "output" / "lft" / "trl" / "train.jsonl").unlink()
    assert run(runner, QUICKSTART, "--run-dir", run_dir, "-q").exit_code == 0
    assert statuses(run_dir)["03-export"] == "ran"
    assert (run_dir / "03-export" / "output" / "lft" / "trl" / "train.jsonl").is_file()


def test_the_default_run_folder_is_runs_slash_name_in_the_working_directory(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run(runner, QUICKSTART, "-q").exit_code == 0
    assert (tmp_path / "runs" / "quickstart" / "03-export" / "output" / "sft" / "trl" / "train.jsonl").is_file()


def test_dry_run_counts_and_plans_but_writes_nothing(runner, tmp_path):
    run_dir = tmp_path / "run"
    result = run(runner, QUICKSTART, "--run-dir", run_dir, "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert not run_dir.exists()
    assert "../alpaca.json (alpaca): 32 records" in result.stdout
    assert "../sharegpt.json (sharegpt): 20 records" in result.stdout
    assert "would export mode both for trl, llama-factory" in result.stdout
    assert "dry run: nothing was sent and nothing written" in result.stderr

    assert run(runner, QUICKSTART, "--run-dir", run_dir, "-q").exit_code == 0
    result = run(runner, QUICKSTART, "--run-dir", run_dir, "--dry-run", "--json")
    plan = json.loads(result.stdout)
    assert plan["dry_run"] is True and {row["status"] for row in plan["steps"]} == {"done"}


def write_recipe(folder: Path, text: str) -> Path:
    path = folder / "recipe.yaml"
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def test_clashing_ids_are_renamed_and_bad_rows_can_be_skipped(runner, tmp_path):
    rows = [
        {"id": "1", "instruction": "Name a colour.", "input": "", "output": "Blue is a colour."},
        {"id": "2", "instruction": "Name a fruit.", "input": "", "output": "An apple is a fruit."},
    ]
    (tmp_path / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (tmp_path / "b.jsonl").write_text(
        json.dumps({"id": "1", "instruction": "Name a tree.", "input": "", "output": "An oak is a tree."}) + "\n"
        + "{not json\n",
        encoding="utf-8",
    )
    recipe = write_recipe(
        tmp_path,
        """
        name: ids
        sources:
          - {path: a.jsonl, format: alpaca}
          - {path: b.jsonl, format: alpaca, on_error: skip}
        steps:
          - dedup: {}
        """,
    )
    result = run(runner, recipe, "--run-dir", tmp_path / "run")
    assert result.exit_code == 3, result.stderr  # a rejected source row: finished, but not everything
    merged = read_jsonl(tmp_path / "run" / "00-sources" / "merged.jsonl")
    assert [r["id"] for r in merged] == ["1", "2", "b-1"]
    rejected = read_jsonl(tmp_path / "run" / "00-sources" / "rejected.jsonl")
    assert len(rejected) == 1 and rejected[0]["line"] == 2
    row = summary_of(tmp_path / "run")["steps"][0]
    assert row["rejected"] == 1 and "rejected.jsonl" in row["files"]


def test_stale_step_folders_of_an_earlier_recipe_are_removed(runner, tmp_path):
    (tmp_path / "alpaca.json").write_bytes((SAMPLES / "alpaca.json").read_bytes())
    recipe = write_recipe(tmp_path, "name: s\nsources: [{path: alpaca.json}]\nsteps: [{filter: {}}, {dedup: {}}]\n")
    run_dir = tmp_path / "run"
    assert run(runner, recipe, "--run-dir", run_dir, "-q").exit_code == 0
    (run_dir / "notes").mkdir()
    recipe.write_text("name: s\nsources: [{path: alpaca.json}]\nsteps: [{dedup: {}}]\n", encoding="utf-8")
    assert run(runner, recipe, "--run-dir", run_dir, "-q").exit_code == 0
    assert sorted(p.name for p in run_dir.iterdir() if p.is_dir()) == ["00-sources", "01-dedup", "notes"]
    assert summary_of(run_dir)["removed_stale_folders"] == ["01-filter", "02-dedup"]


def test_a_busy_run_folder_is_refused(runner, tmp_path):
    import fcntl

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    with open(run_dir / ".lock", "a+") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        result = run(runner, QUICKSTART, "--run-dir", run_dir)
    assert result.exit_code == 2
    assert "another itkit run is using this run folder" in result.stderr
