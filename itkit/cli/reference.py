"""The README's command reference, generated from the commands themselves.

``python -m itkit.cli.reference --write README.md`` rewrites the part of the README between the
markers; ``tests/test_readme.py`` fails when the README's copy differs from what the commands say.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from itkit.cli import app

START = "<!-- command-reference:start -->"
END = "<!-- command-reference:end -->"


def _cell(text: str) -> str:
    return " ".join(text.replace("|", "\\|").replace("\\[", "[").split())


def _option_row(param) -> str:
    names = ", ".join(f"`{n}`" for n in [*param.opts, *param.secondary_opts])
    help_text = getattr(param, "help", None) or ""
    default = getattr(param, "default", None)
    show = getattr(param, "show_default", True)
    if show is not False and default not in (None, False, (), "") and not callable(default) and not param.is_flag:
        value = getattr(default, "value", default)
        help_text = f"{help_text} (default: {value})"
    return f"| {names} | {_cell(help_text)} |"


def command_reference() -> str:
    root = typer.main.get_command(app)  # typer ships its own click: duck-typed below
    ctx = root.context_class(root, info_name="itkit")
    parts = [START, ""]
    for name in root.list_commands(ctx):
        cmd = root.get_command(ctx, name)
        if cmd is None or cmd.hidden:
            continue
        args = [p.name.upper() for p in cmd.params if p.param_type_name == "argument"]
        usage = " ".join(["[OPTIONS]", *args])
        summary = (cmd.help or "").strip().split("\n\n", 1)[0]
        parts.append(f"### `itkit {name}`")
        parts.append("")
        parts.append(_cell(summary))
        parts.append("")
        parts.append(f"Usage: `itkit {name} {usage}`")
        parts.append("")
        options = [p for p in cmd.params if p.param_type_name == "option" and not getattr(p, "hidden", False)]
        if options:
            parts.append("| option | meaning |")
            parts.append("|---|---|")
            parts.extend(_option_row(p) for p in options)
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
