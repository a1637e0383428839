"""Options shared by several commands, defined once as ``Annotated`` aliases."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Optional

import typer

from itkit.format_names import FORMAT_NAMES
from itkit.steps.panels import PANEL_CONTROL, PANEL_IO

InputFormat = Enum("InputFormat", {name: name for name in ("auto", *FORMAT_NAMES)}, type=str)  # type: ignore[misc]
OutputFormat = Enum("OutputFormat", {name: name for name in FORMAT_NAMES}, type=str)  # type: ignore[misc]


class OnError(str, Enum):
    fail = "fail"
    skip = "skip"


SOURCE_HELP = (
    "A .json, .jsonl, .parquet or .csv file (JSON/JSONL may be .gz), - for stdin, "
    "or hf://org/name\\[/config][:split]."  # "\\[": a literal "[" in rich help markup
)
FORMATS_HELP = ", ".join(FORMAT_NAMES)


def show_help(ctx: typer.Context, value: bool) -> None:
    """--help: the command's help (a flag of our own, so that it sits in the output-control panel)."""
    if value:
        text = ctx.get_help()  # Typer's rich help prints itself and returns ""
        if text:
            typer.echo(text)
        raise typer.Exit()


Help = Annotated[
    bool,
    typer.Option(
        "--help", "-h", is_eager=True, callback=show_help, expose_value=False, metavar="",
        help="Show this message and exit.", rich_help_panel=PANEL_CONTROL,
    ),
]
"""Every command's --help/-h (declared by the command, so Typer adds none of its own)."""
Source = Annotated[str, typer.Argument(help=SOURCE_HELP, metavar="SRC", show_default=False)]
Output = Annotated[
    str,
    typer.Option(
        "--output", "-o", metavar="FILE", rich_help_panel=PANEL_IO,
        help="Output: .jsonl, .json, .parquet, .csv (optionally .gz); - for stdout (JSONL).",
    ),
]
FromFormat = Annotated[
    InputFormat,
    typer.Option(
        "--from", metavar="FORMAT", rich_help_panel=PANEL_IO,
        help=f"Input record format: auto (detected) or {FORMATS_HELP}.",
    ),
]
ToFormat = Annotated[
    Optional[OutputFormat],
    typer.Option(
        "--to", metavar="FORMAT", show_default=False, rich_help_panel=PANEL_IO,
        help="Output record format.  \\[default: the input's]",
    ),
]
OnErrorOpt = Annotated[
    OnError,
    typer.Option(
        "--on-error", metavar="fail|skip", rich_help_panel=PANEL_IO,
        help="fail: stop at the first bad record; skip: set bad records aside (exit 3).",
    ),
]
ErrorsPath = Annotated[
    Optional[str],
    typer.Option(
        "--errors", metavar="FILE", show_default=False, rich_help_panel=PANEL_IO,
        help="Where --on-error skip writes bad records.  \\[default: OUTPUT.errors.jsonl]",
    ),
]
Quiet = Annotated[
    bool, typer.Option("--quiet", "-q", help="No progress or summary on stderr.", rich_help_panel=PANEL_CONTROL, metavar="")
]
AsJson = Annotated[
    bool, typer.Option("--json", help="Print the summary as JSON on stdout.", rich_help_panel=PANEL_CONTROL, metavar="")
]
Report = Annotated[
    Optional[str],
    typer.Option(
        "--report", metavar="FILE", show_default=False, rich_help_panel=PANEL_IO,
        help="Also write every removed record with its reason here (JSONL).",
    ),
]
Encoding = Annotated[
    Optional[str],
    typer.Option("--encoding", metavar="NAME", show_default=False, rich_help_panel="Tokens", help="tiktoken encoding.  \\[default: cl100k_base]"),
]
TokenModel = Annotated[
    Optional[str],
    typer.Option(
        "--tokenizer-model", metavar="MODEL", show_default=False, rich_help_panel="Tokens",
        help="Count tokens with this model's encoding (e.g. gpt-4o).",
    ),
]
OldTokenModel = Annotated[Optional[str], typer.Option("--model", hidden=True)]
"""The deprecated spelling of --tokenizer-model."""


def errors_path_for(output: str, errors: str | None) -> str:
    """Where rejected records go: --errors, or next to the output."""
    if errors:
        return errors
    from itkit.io.sinks import is_stream

    if is_stream(output):  # stdout or a device such as /dev/null: nothing can go beside it
        return "itkit-errors.jsonl"
    return f"{output}.errors.jsonl"


def record_files(src: str, output: str, from_: Enum, to: Enum | None, report: str | None, on_error: Enum, errors: str | None):
    """The :class:`~itkit.steps.io.Files` of a records-in, records-out command from its plumbing options."""
    from itkit.steps.io import Files

    return Files(
        src,
        output,
        from_format=from_.value,
        to_format=to.value if to else None,
        report=report,
        on_error=on_error.value,
        errors_path=errors_path_for(output, errors) if on_error is OnError.skip else None,
    )


def check_stdout_use(as_json: bool, output: str, report: str | None) -> None:
    """Refuse a --json summary on the stdout that the records (or the report) also go to."""
    from itkit.errors import UsageError

    if as_json and (output == "-" or report == "-"):
        raise UsageError("--json prints the summary to stdout, where the records would go too; give -o FILE (and --report FILE)")


def deprecated(old: str, new: str) -> None:
    """The one deprecation line on stderr (the old spelling still works for one release)."""
    import sys

    sys.stderr.write(f"itkit: warning: {old} is deprecated and will be removed in the next release; use {new}\n")
    sys.stderr.flush()
