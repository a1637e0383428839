"""Docs that cannot drift: the README documents every command, its options and the CI command."""

from __future__ import annotations

import re
import subprocess

from itkit.cli.reference import END, START, command_reference

from conftest import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_command_reference_is_current():
    current = README.split(START, 1)[1].split(END, 1)[0]
    expected = command_reference().split(START, 1)[1].split(END, 1)[0]
    assert current == expected, "README's command reference is stale: run python -m itkit.cli.reference --write README.md"


def test_every_command_has_a_section_of_its_own():
    from typer.main import get_command

    from itkit.cli import app

    root = get_command(app)
    names = root.list_commands(root.context_class(root, info_name="itkit"))
    assert {"convert", "validate", "stats", "filter", "dedup", "simplify", "self-instruct", "evol-instruct", "orca", "export", "run"} <= set(names)
    prose = README.split(START, 1)[0]
    for name in names:
        assert re.search(rf"^##+ .*`itkit {re.escape(name)}", prose, re.M), f"no README section for itkit {name}"


def test_ci_runs_exactly_the_readme_test_command():
    script = ROOT / ".ci" / "run"
    awk = subprocess.run(
        ["awk", "/<!-- test-command -->/{found=1; next} found && /^[^`]/{print; exit}", str(ROOT / "README.md")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert awk.startswith("python3 -m venv .venv") and "pytest" in awk
    assert "<!-- test-command -->" in script.read_text(encoding="utf-8")


def test_main_job_command_is_the_quickstart_recipe():
    assert "pip install . && itkit run data_samples/recipes/quickstart.yaml" in README
    assert (ROOT / "data_samples" / "recipes" / "quickstart.yaml").is_file()
