"""Options shared by several commands, defined once as ``Annotated`` aliases."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Optional

import typer

from itkit.formats import FORMAT_NAMES

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
        help="Output file; its extension sets the container (.jsonl, .json, .parquet, .csv, optionally .gz); - for stdout (JSONL).",
    ),
]
FromFormat = Annotated[
    InputFormat,
    typer.Option("--from", help="Input record format; auto detects it from the first records."),
]
ToFormat = Annotated[
    Optional[OutputFormat],
    typer.Option("--to", help="Output record format \\[default: the input's format]."),
]
OnErrorOpt = Annotated[
    OnError,
    typer.Option(
        "--on-error",
        help="fail: stop at the first bad record, writing nothing; skip: write bad records verbatim with their reason to the errors file and go on (exit 3).",
    ),
]
ErrorsPath = Annotated[
    Optional[str],
    typer.Option("--errors", help="Errors file (JSONL) for --on-error skip \\[default: OUTPUT.errors.jsonl]."),
]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or summary on stderr.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON to stdout instead of a table.")]
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
    from itkit.io.sinks import is_stream

    if is_stream(output):  # stdout or a device such as /dev/null: nothing can go beside it
        return "itkit-errors.jsonl"
    return f"{output}.errors.jsonl"


def check_stdout_use(as_json: bool, output: str, report: str | None) -> None:
    """Refuse a --json summary on the stdout that the records (or the report) also go to."""
    from itkit.errors import UsageError

    if as_json and (output == "-" or report == "-"):
        raise UsageError("--json prints the summary to stdout, where the records would go too; give -o FILE (and --report FILE)")
