"""Options shared by several commands, defined once as ``Annotated`` aliases."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Optional

import typer

from itkit.formats import FORMAT_NAMES
from itkit.steps.spec import PANEL_CONTROL, PANEL_IO

InputFormat = Enum("InputFormat", {name: name for name in ("auto", *FORMAT_NAMES)}, type=str)  # type: ignore[misc]
OutputFormat = Enum("OutputFormat", {name: name for name in FORMAT_NAMES}, type=str)  # type: ignore[misc]


class OnError(str, Enum):
    fail = "fail"
    skip = "skip"


SOURCE_HELP = (
    "Input: a .json, .jsonl, .parquet or .csv file (JSON/JSONL may be .gz), - for stdin, "
    "or hf://org/name\\[/config][:split] for a Hugging Face Hub dataset."  # "\\[": a literal "[" in rich help markup
)

Source = Annotated[str, typer.Argument(help=SOURCE_HELP, show_default=False)]
Output = Annotated[
    str,
    typer.Option(
        "--output",
        "-o",
        help="Output file: .jsonl, .json, .parquet, .csv (optionally .gz); - for stdout (JSONL).",
        rich_help_panel=PANEL_IO,
    ),
]
FromFormat = Annotated[
    InputFormat,
    typer.Option("--from", help="Input record format; auto detects it from the first records.", rich_help_panel=PANEL_IO),
]
ToFormat = Annotated[
    Optional[OutputFormat],
    typer.Option("--to", help="Output record format.  \\[default: the input's]", show_default=False, rich_help_panel=PANEL_IO),
]
OnErrorOpt = Annotated[
    OnError,
    typer.Option(
        "--on-error",
        help="fail: stop at the first bad record; skip: set bad records aside in --errors (exit 3).",
        rich_help_panel=PANEL_IO,
    ),
]
ErrorsPath = Annotated[
    Optional[str],
    typer.Option("--errors", help="Errors file (JSONL) of --on-error skip.  \\[default: OUTPUT.errors.jsonl]", show_default=False, rich_help_panel=PANEL_IO),
]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or summary on stderr.", rich_help_panel=PANEL_CONTROL, metavar="")]
AsJson = Annotated[bool, typer.Option("--json", help="Print the summary as JSON on stdout instead of a table.", rich_help_panel=PANEL_CONTROL, metavar="")]
Report = Annotated[
    Optional[str],
    typer.Option("--report", help="Write every removed record with its reason here (JSONL).", show_default=False, rich_help_panel=PANEL_IO),
]
Encoding = Annotated[
    Optional[str],
    typer.Option("--encoding", help="tiktoken encoding for token counts \\[default: cl100k_base]."),
]
TokenModel = Annotated[
    Optional[str],
    typer.Option("--model", help="Count tokens with the encoding of this model (e.g. gpt-4o) instead of --encoding."),
]


def errors_path_for(output: str, errors: str | None) -> str:
    """Where rejected records go: --errors, or next to the output."""
    if errors:
        return errors
    if output == "-":
        return "itkit-errors.jsonl"
    return f"{output}.errors.jsonl"


def check_stdout_use(as_json: bool, output: str, report: str | None) -> None:
    """Refuse a --json summary on the stdout that the records (or the report) also go to."""
    from itkit.errors import UsageError

    if as_json and (output == "-" or report == "-"):
        raise UsageError("--json prints the summary to stdout, where the records would go too; give -o FILE (and --report FILE)")
