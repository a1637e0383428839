"""What itkit never does to your files (README): the paths rule, --overwrite, and the run folder.

Every test drives the CLI and checks the files left on disk byte for byte and the exit code.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import orjson
import pytest

from conftest import SAMPLES, invoke

ALPACA = [
    {"instruction": f"Explain topic {i} in a few words.", "input": "", "output": f"Topic {i} is about thing {i}, mostly."}
    for i in range(12)
]
BAD_LINE = b'{"instruction": "broken"\n'


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (hidden ones too) with its bytes."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def write_data(folder: Path, name: str = "data.jsonl", bad: bool = True) -> Path:
    path = folder / name
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in ALPACA) + (BAD_LINE if bad else b""))
    return path


# ---------------------------------------------------------------- 1. two options naming the same file

# (command and its arguments; D is the input's path, X a file in the same folder)
CLASHES = [
    ("convert", ["D", "-o", "X", "--on-error", "skip", "--errors", "X"]),
    ("convert", ["D", "-o", "X", "--on-error", "skip", "--errors", "D"]),
    ("convert", ["D", "-o", "D", "--on-error", "skip", "--errors", "D"]),
    ("filter", ["D", "-o", "X", "--report", "X"]),
    ("filter", ["D", "-o", "X", "--report", "R", "--on-error", "skip", "--errors", "R"]),
    ("filter", ["D", "-o", "X", "--report", "D"]),
    ("filter", ["D", "-o", "X", "--on-error", "skip", "--errors", "X"]),
    ("dedup", ["D", "-o", "X", "--report", "X"]),
    ("dedup", ["D", "-o", "X", "--report", "D"]),
    ("dedup", ["D", "-o", "X", "--report", "R", "--on-error", "skip", "--errors", "R"]),
    ("dedup", ["D", "-o", "-", "--report", "-"]),
    ("simplify", ["D", "-o", "X", "--on-error", "skip", "--errors", "X"]),
    ("simplify", ["D", "-o", "X", "--on-error", "skip", "--errors", "D"]),
    ("simplify", ["D", "-o", "X", "--on-error", "skip", "--errors", "X.summary.json"]),
    ("simplify", ["X.failures.jsonl", "-o", "X"]),
    ("orca", ["D", "-o", "X", "--on-error", "skip", "--errors", "X.failures.jsonl"]),
    ("orca", ["X.summary.json", "-o", "X"]),
    ("score", ["D", "-o", "X", "--on-error", "skip", "--errors", "X.failures.jsonl"]),
    ("score", ["X.failures.jsonl", "-o", "X"]),
    ("evol-instruct", ["D", "-o", "X", "--eliminated", "X"]),
    ("evol-instruct", ["D", "-o", "X", "--eliminated", "D"]),
    ("evol-instruct", ["D", "-o", "X", "--eliminated", "R", "--on-error", "skip", "--errors", "R"]),
    ("self-instruct", ["D", "-n", "3", "-o", "X", "--on-error", "skip", "--errors", "X.tasks.jsonl"]),
    ("self-instruct", ["D", "-n", "3", "-o", "X", "--on-error", "skip", "--errors", "D"]),
    ("simplify", ["D", "-o", "X", "--cache-dir", "C"]),  # -o is the cache database itself
]


@pytest.mark.parametrize("command,args", CLASHES, ids=[f"{c}:{' '.join(a)}" for c, a in CLASHES])
def test_two_paths_naming_one_file_exit_2_before_anything_is_read(runner, tmp_path, command, args):
    data = write_data(tmp_path)
    (tmp_path / "X").write_bytes(b"my precious file\n")
    for sidecar in ("X.failures.jsonl", "X.summary.json"):
        (tmp_path / sidecar).write_bytes(b'{"mine": true}\n')
    (tmp_path / "C").mkdir()
    (tmp_path / "C" / "llm-cache.sqlite3").write_bytes(b"")
    os.symlink(tmp_path / "C" / "llm-cache.sqlite3", tmp_path / "cache-link")
    names = {"D": str(data), "X": str(tmp_path / "X"), "R": str(tmp_path / "R.jsonl"), "C": str(tmp_path / "C")}
    argv = [names.get(a, str(tmp_path / a) if a.startswith("X.") else a) for a in args]
    if command == "simplify" and "C" in args:
        argv[argv.index(str(tmp_path / "X"))] = str(tmp_path / "cache-link")  # via a symlink: still the same file
    before = snapshot(tmp_path)
    result = invoke(runner, command, *argv)
    assert result.exit_code == 2, result.stderr
    assert result.stderr.startswith("itkit: error: ") and result.stderr.count("\n") == 1
    assert "same file" in result.stderr or "names the input" in result.stderr or "both write to stdout" in result.stderr
    assert snapshot(tmp_path) == before, "nothing was written, renamed or removed"
    assert result.stdout == ""


def _commands_with(option: str) -> list[str]:
    """Every itkit command that has both -o and ``option`` (so a new command is covered without listing it)."""
    import typer.main

    from itkit.cli import app

    group = typer.main.get_command(app)
    found = []
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        opts = {o for p in command.params for o in p.opts}
        if "-o" in opts and option in opts:
            found.append(name)
    return sorted(found)


@pytest.mark.parametrize("option", ["--errors", "--report", "--eliminated"])
def test_every_command_refuses_an_output_option_naming_the_output(runner, tmp_path, option):
    data = write_data(tmp_path)
    (tmp_path / "X").write_bytes(b"keep\n")
    commands = _commands_with(option)
    assert commands, f"no command has -o and {option}"
    for name in commands:
        extra = ["--on-error", "skip"] if option == "--errors" else []
        required = ["-n", "2"] if name == "self-instruct" else []
        if name == "export":
            continue  # -o is a folder there
        before = snapshot(tmp_path)
        for clash in (tmp_path / "X", data):  # the output itself, and the input
            result = invoke(runner, name, data, *required, "-o", tmp_path / "X", *extra, option, clash)
            assert result.exit_code == 2, (name, option, result.stderr)
            assert snapshot(tmp_path) == before, name


def test_a_recipe_cache_inside_a_step_folder_is_refused(runner, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-not-used")
    data = write_data(tmp_path, "src.jsonl", bad=False)
    rec = tmp_path / "r.yaml"
    cache = tmp_path / "runs" / "r" / "01-simplify" / "cache"  # emptied each time the step runs again
    rec.write_text(f"name: r\nsources:\n  - path: {data.name}\nllm:\n  cache_dir: {cache}\nsteps:\n  - simplify: {{}}\n")
    for extra in (["--dry-run"], []):
        result = invoke(runner, "run", rec, "--run-dir", tmp_path / "runs" / "r", *extra)
        assert result.exit_code == 2 and "the response cache of 01-simplify" in result.stderr
    assert not (tmp_path / "runs").exists()


def test_symlinks_and_hard_links_count_as_the_same_file(runner, tmp_path):
    data = write_data(tmp_path)
    (tmp_path / "sub").mkdir()
    os.symlink(tmp_path / "out.jsonl", tmp_path / "sub" / "alias.jsonl")  # dangling: out.jsonl does not exist yet
    result = invoke(runner, "convert", data, "-o", tmp_path / "out.jsonl", "--on-error", "skip",
                    "--errors", tmp_path / "sub" / ".." / "sub" / "alias.jsonl")
    assert result.exit_code == 2 and "-o and --errors name the same file" in result.stderr
    os.link(data, tmp_path / "hard.jsonl")
    before = snapshot(tmp_path)
    result = invoke(runner, "filter", data, "-o", tmp_path / "kept.jsonl", "--report", tmp_path / "hard.jsonl")
    assert result.exit_code == 2 and "--report names the input SRC" in result.stderr
    assert snapshot(tmp_path) == before


def test_stdin_input_is_checked_before_it_is_read(runner, tmp_path):
    out = tmp_path / "out.jsonl"
    result = invoke(runner, "convert", "-", "-o", out, "--on-error", "skip", "--errors", out,
                    input=b"".join(orjson.dumps(r) + b"\n" for r in ALPACA))
    assert result.exit_code == 2 and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", ["convert", "filter", "dedup"])
def test_output_may_replace_its_input(runner, tmp_path, command):
    data = write_data(tmp_path, bad=False)
    result = invoke(runner, command, data, "-o", data)
    assert result.exit_code == 0, result.stderr
    assert [json.loads(line)["instruction"] for line in data.read_text().splitlines()] == [r["instruction"] for r in ALPACA]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.jsonl"]


# ---------------------------------------------------------------- 3. export --overwrite


def export(runner, src, out, *args):
    return invoke(runner, "export", src, "-o", out, "--target", "trl", "--lft-size", "5", "-q", *args)


def test_overwrite_refuses_a_folder_with_someone_elses_manifest(runner, tmp_path):
    data = write_data(tmp_path, bad=False)
    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    (project / "manifest.json").write_text('{"name": "my web app", "files": []}')
    (project / "src" / "main.py").write_text("print('hi')\n")
    before = snapshot(project)
    result = export(runner, data, project, "--overwrite")
    assert result.exit_code == 1 and "has no itkit format marker" in result.stderr
    assert "refusing to replace it" in result.stderr
    assert snapshot(project) == before and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_overwrite_replaces_an_itkit_export_but_not_a_file_added_to_it(runner, tmp_path):
    data = write_data(tmp_path, bad=False)
    out = tmp_path / "out"
    assert export(runner, data, out).exit_code == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format"] == "itkit-export" and {f["path"] for f in manifest["files"]} >= {"README.md", "sft/trl/train.jsonl"}
    assert export(runner, data, out, "--overwrite", "--seed", "3").exit_code == 0  # provably ours: replaced

    (out / "notes.txt").write_text("my notes about this export\n")
    before = snapshot(out)
    result = export(runner, data, out, "--overwrite")
    assert result.exit_code == 1 and "notes.txt is not in its manifest.json" in result.stderr
    assert snapshot(out) == before
    (out / "notes.txt").unlink()

    with open(out / "sft" / "trl" / "train.jsonl", "a") as fh:  # a file edited since itkit wrote it
        fh.write('{"messages": []}\n')
    before = snapshot(out)
    result = export(runner, data, out, "--overwrite")
    assert result.exit_code == 1 and "sft/trl/train.jsonl was changed since itkit wrote it" in result.stderr
    assert snapshot(out) == before

    (out / "lft" / "mine").mkdir()
    result = export(runner, data, out, "--overwrite")
    assert result.exit_code == 1 and snapshot(out) == before


def test_overwrite_refuses_when_the_input_lies_inside_the_folder(runner, tmp_path):
    out = tmp_path / "out"
    data = write_data(tmp_path, bad=False)
    assert export(runner, data, out).exit_code == 0
    inside = out / "sft" / "trl" / "train.jsonl"
    before = snapshot(out)
    result = export(runner, inside, out, "--overwrite")
    assert result.exit_code == 2 and "lies inside" in result.stderr
    assert snapshot(out) == before
    folder = tmp_path / "data"
    folder.mkdir()
    data = write_data(folder, bad=False)
    result = export(runner, data, folder, "--overwrite")
    assert result.exit_code == 2 and "lies inside" in result.stderr and data.is_file()


# ---------------------------------------------------------------- 4. itkit run --run-dir


def recipe(tmp_path: Path, steps: str = "  - filter: {}\n  - dedup: {}\n") -> Path:
    data = write_data(tmp_path, "src.jsonl", bad=False)
    path = tmp_path / "r.yaml"
    path.write_text(f"name: r\nsources:\n  - path: {data.name}\nsteps:\n{steps}")
    return path


def test_run_refuses_a_folder_that_is_not_an_itkit_run_folder(runner, tmp_path):
    rec = recipe(tmp_path)
    mine = tmp_path / "mine"
    (mine / "01-filter").mkdir(parents=True)
    (mine / "01-filter" / "thesis.tex").write_text("three years of work\n")
    (mine / "99-export").mkdir()
    before = snapshot(mine)
    for extra in ([], ["--dry-run"]):
        result = invoke(runner, "run", rec, "--run-dir", mine, *extra)
        assert result.exit_code == 2 and "is not an itkit run folder" in result.stderr
        assert snapshot(mine) == before and sorted(p.name for p in mine.iterdir()) == ["01-filter", "99-export"]


def test_run_never_removes_a_step_named_folder_it_did_not_make(runner, tmp_path):
    rec = recipe(tmp_path)
    run_dir = tmp_path / "run"
    assert invoke(runner, "run", rec, "--run-dir", run_dir, "-q").exit_code == 0
    assert (run_dir / ".itkit-run").is_file() and (run_dir / "01-filter" / ".itkit-step").is_file()
    (run_dir / "07-dedup").mkdir()  # named like a stale step folder, but the user's
    (run_dir / "07-dedup" / "keep.txt").write_text("mine\n")
    rec.write_text(rec.read_text().replace("  - dedup: {}\n", ""))  # the recipe changed: 02-dedup is stale now
    assert invoke(runner, "run", rec, "--run-dir", run_dir, "-q").exit_code == 0
    assert not (run_dir / "02-dedup").exists(), "itkit's own stale folder is removed"
    assert (run_dir / "07-dedup" / "keep.txt").read_text() == "mine\n"

    # a user folder where a step of the recipe goes: refused before any step runs
    rec.write_text(rec.read_text() + "  - dedup: {}\n")
    (run_dir / "02-dedup").mkdir()
    (run_dir / "02-dedup" / "notes.md").write_text("mine too\n")
    before = snapshot(run_dir)
    result = invoke(runner, "run", rec, "--run-dir", run_dir, "--from", "filter")
    assert result.exit_code == 2 and "02-dedup: is named like a step of this recipe but was not made by itkit" in result.stderr
    assert snapshot(run_dir) == before


@pytest.mark.parametrize("folder", ["/", "/proc/self", "/sys", "~"])
def test_run_refuses_system_and_home_folders(runner, tmp_path, monkeypatch, folder):
    rec = recipe(tmp_path)
    home = tmp_path / "home"
    (home / "Documents").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))

    def must_not_run(*args, **kwargs):  # a regression must fail here, not write into / or the home folder
        raise AssertionError(f"itkit run went on to write into {folder}")

    monkeypatch.setattr("itkit.recipes.runner.RunLock.__enter__", must_not_run)
    monkeypatch.setattr("itkit.recipes.runner.Runner.run", must_not_run)
    result = invoke(runner, "run", rec, "--run-dir", os.path.expanduser(folder))
    assert result.exit_code == 2, result.stderr
    assert result.stderr.startswith("itkit: error: --run-dir ") and "internal error" not in result.stderr
    assert sorted(p.name for p in home.iterdir()) == ["Documents"]


def test_run_refuses_a_source_inside_the_run_folder(runner, tmp_path):
    run_dir = tmp_path / "run"
    rec = recipe(tmp_path)
    assert invoke(runner, "run", rec, "--run-dir", run_dir, "-q").exit_code == 0
    inside = run_dir / "01-filter" / "output.jsonl"  # the last run's output as the next run's source
    rec.write_text(f"name: r\nsources:\n  - path: {inside}\nsteps:\n  - dedup: {{}}\n")
    before = snapshot(run_dir)
    result = invoke(runner, "run", rec, "--run-dir", run_dir)
    assert result.exit_code == 2 and "lies inside" in result.stderr
    assert snapshot(run_dir) == before


def test_an_empty_folder_becomes_a_run_folder(runner, tmp_path):
    rec = recipe(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert invoke(runner, "run", rec, "--run-dir", empty, "-q").exit_code == 0
    assert (empty / "02-dedup" / "output.jsonl").is_file()



def test_a_recipe_inside_a_step_folder_is_refused(runner, tmp_path):
    rec = recipe(tmp_path)
    run_dir = tmp_path / "run"
    assert invoke(runner, "run", rec, "--run-dir", run_dir, "-q").exit_code == 0
    moved = run_dir / "01-filter" / "r.yaml"  # emptied when filter runs again
    moved.write_text(rec.read_text().replace("src.jsonl", str(tmp_path / "src.jsonl")))
    before = snapshot(run_dir)
    result = invoke(runner, "run", moved, "--run-dir", run_dir, "--from", "filter")
    assert result.exit_code == 2 and "the recipe" in result.stderr and "lies inside" in result.stderr
    assert snapshot(run_dir) == before
