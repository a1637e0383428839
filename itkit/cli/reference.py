"""The README's command reference, generated from the commands and the steps' one definition.

``python -m itkit.cli.reference --write README.md`` rewrites the part of the README between the
markers; ``tests/test_readme.py`` fails when the README's copy differs from what the code says.

For a step's command (:data:`itkit.steps.COMMANDS`) each option's row names its recipe key, taken
from the step's :class:`~itkit.steps.spec.Opt` (``near_threshold``), ``llm.<setting>`` for the
engine options, and "run folder" for the input/output plumbing a recipe does not take.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from itkit.cli import app
from itkit.cli.llm_options import PREFIX as LLM_PREFIX
from itkit.cli.step_options import PREFIX as STEP_PREFIX
from itkit.recipes.schema import LLM_BLOCK_FIELDS
from itkit.steps import COMMANDS, Step

START = "<!-- command-reference:start -->"
END = "<!-- command-reference:end -->"
RUN_OPTIONS = {
    "dry_run": "`itkit run --dry-run`",
    "quiet": "`itkit run -q`",
    "batch_file": "command line only",
    "batch_results": "command line only",
}
"""Engine options that are options of ``itkit run``, not recipe settings."""


def _cell(text: str) -> str:
    return " ".join(text.replace("|", "\\|").replace("\\[", "[").split())


def _names(param) -> str:
    return ", ".join(f"`{n}`" for n in [*param.opts, *param.secondary_opts])


def _help(param) -> str:
    help_text = getattr(param, "help", None) or ""
    default = getattr(param, "default", None)
    show = getattr(param, "show_default", True)
    if show is not False and default not in (None, False, (), "") and not callable(default) and not param.is_flag:
        value = getattr(default, "value", default)
        help_text = f"{help_text} [default: {value}]"
    return _cell(help_text)


def _recipe_key(param, step: Step) -> str:
    """Where a recipe sets what this option sets."""
    name = param.name
    if name.startswith(STEP_PREFIX):
        return f"`{name[len(STEP_PREFIX):]}`"
    opt = next((o for o in step.opts if o.file and o.name == name), None)
    if opt is not None:
        return f"`{opt.name}: true`"
    setting = name.removeprefix(LLM_PREFIX) if name.startswith(LLM_PREFIX) else name
    if name.startswith(LLM_PREFIX) or name == "prompts_dir":
        if setting in RUN_OPTIONS:
            return RUN_OPTIONS[setting]
        return f"`llm.{setting}`" if setting in LLM_BLOCK_FIELDS else "environment only"
    if name in ("quiet", "as_json", "help_", "explain"):
        return "-"
    return "run folder"


def command_reference() -> str:
    root = typer.main.get_command(app)  # typer ships its own click: duck-typed below
    ctx = root.context_class(root, info_name="itkit")
    parts = [START, ""]
    for name in root.list_commands(ctx):
        cmd = root.get_command(ctx, name)
        if cmd is None or cmd.hidden:
            continue
        step = COMMANDS.get(name)
        args = [p.human_readable_name if hasattr(p, "human_readable_name") else (p.metavar or p.name.upper())
                for p in cmd.params if p.param_type_name == "argument"]
        usage = " ".join(["[OPTIONS]", *args])
        summary = (cmd.help or "").strip().split("\n\n", 1)[0]
        parts += [f"### `itkit {name}`", "", _cell(summary), "", f"Usage: `itkit {name} {usage}`", ""]
        if step is not None:
            parts += [f"Recipe step: `{step.name}:`" if step.run else "Recipe block: `export:`", ""]
        options = [p for p in cmd.params if p.param_type_name == "option" and not getattr(p, "hidden", False)]
        if options:
            if step is None:
                parts += ["| option | meaning |", "|---|---|"]
                parts += [f"| {_names(p)} | {_help(p)} |" for p in options]
            else:
                parts += ["| option | in a recipe | meaning |", "|---|---|---|"]
                parts += [f"| {_names(p)} | {_recipe_key(p, step)} | {_help(p)} |" for p in options]
            parts.append("")
    parts.append(END)
    return "\n".join(parts)


def write_reference(readme: Path) -> bool:
    """Put the current reference into ``readme``; True when it changed."""
    text = readme.read_text(encoding="utf-8")
    if START not in text or END not in text:
        raise SystemExit(f"{readme}: has no {START} ... {END} markers")
    head, rest = text.split(START, 1)
    _old, tail = rest.split(END, 1)
    new = head + command_reference() + tail
    if new != text:
        readme.write_text(new, encoding="utf-8")
        return True
    return False


if __name__ == "__main__":  # pragma: no cover - a maintenance script
    if len(sys.argv) == 3 and sys.argv[1] == "--write":
        changed = write_reference(Path(sys.argv[2]))
        print("updated" if changed else "unchanged")
    else:
        print(command_reference())
