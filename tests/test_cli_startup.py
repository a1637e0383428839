"""The console script registers only the command it runs (itkit.cli.launch); everything else stays the full app."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from itkit.cli import launch

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "80", "NO_COLOR": "1", "TERM": "dumb"}


def run_python(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=120, input=stdin
    )


FULL_APP = "import sys\nfrom itkit.cli import app\napp(args=sys.argv[1:], prog_name='itkit')\n"


def test_the_command_index_is_generated_from_the_commands():
    assert launch.INDEX_FILE.read_text(encoding="utf-8") == launch.build_index(), (
        "itkit/cli/command_index.py is stale: run python -m itkit.cli.launch --write"
    )


def test_every_command_module_is_in_the_start_up_list():
    from itkit.cli.command_index import COMMANDS

    assert {module for _name, module, _text in COMMANDS} <= set(launch.MODULES)
    cli_dir = ROOT / "itkit" / "cli"
    defining = {p.stem for p in cli_dir.glob("*.py") if re.search(r"^@app\.command", p.read_text(encoding="utf-8"), re.M)}
    assert defining <= set(launch.MODULES), "a module with commands is missing from launch.MODULES"


@pytest.mark.parametrize("args", [["--help"], [], ["-h"]], ids=["--help", "no-args", "-h"])
def test_the_fast_listing_is_the_full_apps_help(args):
    fast = run_python("-m", "itkit", *args)
    full = run_python("-c", FULL_APP, *args)
    assert fast.returncode == full.returncode
    assert fast.stdout == full.stdout and fast.stderr == full.stderr
    assert "convert" in fast.stdout + fast.stderr and "report" in fast.stdout + fast.stderr


@pytest.mark.parametrize("name", [name for name, _module, _text in __import__("itkit.cli.command_index", fromlist=["COMMANDS"]).COMMANDS])
def test_each_commands_help_is_the_full_apps(name):
    fast = run_python("-m", "itkit", name, "--help")
    full = run_python("-c", FULL_APP, name, "--help")
    assert fast.returncode == full.returncode == 0, fast.stderr
    assert fast.stdout == full.stdout


def test_convert_help_loads_none_of_the_library():
    code = (
        "import sys\nfrom itkit.cli.launch import main\n"
        "try:\n    main(['convert', '--help'])\nexcept SystemExit:\n    pass\n"
        "print('LOADED', ','.join(sorted(m for m in sys.modules if m.startswith('itkit.'))))\n"
    )
    proc = run_python("-c", code)
    loaded = proc.stdout.rsplit("LOADED", 1)[1].strip().split(",")
    library = [m for m in loaded if not m.startswith(("itkit.cli", "itkit.steps.panels")) and m not in (
        "itkit.errors", "itkit.interrupts", "itkit.notices", "itkit.format_names", "itkit.steps")]
    assert library == [], f"convert --help imported {library}"
    assert not any(m.startswith("itkit.cli.") and m.endswith(("filter", "dedup", "export", "run")) for m in loaded)


def test_a_mistyped_command_gets_the_full_apps_suggestion():
    proc = run_python("-m", "itkit", "convrt", "x.json")
    assert proc.returncode == 2
    assert "No such command 'convrt'" in proc.stderr and "convert" in proc.stderr


def test_a_command_runs_through_the_launcher(tmp_path):
    src = tmp_path / "a.jsonl"
    src.write_text('{"instruction": "Name a colour.", "input": "", "output": "Blue."}\n', encoding="utf-8")
    proc = run_python("-m", "itkit", "convert", str(src), "--to", "messages", "-q")
    assert proc.returncode == 0, proc.stderr
    assert '"messages":[{"role":"user","content":"Name a colour."}' in proc.stdout
    proc = run_python("-m", "itkit", "--version")
    assert proc.returncode == 0 and proc.stdout.startswith("itkit ")


def test_options_before_the_command_are_the_root_apps():
    proc = run_python("-m", "itkit", "--bogus", "convert")
    assert proc.returncode == 2 and "No such option" in proc.stderr
