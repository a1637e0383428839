"""filter: remove low-quality records with named, tunable rules."""

from __future__ import annotations

import json
import textwrap
from typing import Any

from rich.table import Table
from rich.text import Text

from itkit.cli.root import app, err_console, handle_errors, out_console
from itkit.cli.options import (
    AsJson,
    ErrorsPath,
    FromFormat,
    InputFormat,
    OnError,
    OnErrorOpt,
    Output,
    Quiet,
    Report,
    Source,
    ToFormat,
    check_stdout_use,
    record_files,
)
from itkit.cli.step_options import CLI, step_command
from itkit.dataset import describe_dropped
from itkit.errors import EXIT_PARTIAL
from itkit.filters import DEFAULT_RULES, RULES
from itkit.filters.pipeline import FilterResult
from itkit.steps.filter import STEP as FILTER


HELP_WIDTH = 76
"""The rules table of the help fits an 80-column terminal (the help's margins take 4)."""


def _help() -> str:
    rules = "\n".join(
        textwrap.fill(
            rule.description, HELP_WIDTH, initial_indent=f"  {name + ('*' if name in DEFAULT_RULES else ''):<13}",
            subsequent_indent=" " * 15,
        )
        for name, rule in RULES.items()
    )
    return f"""Remove low-quality records with named rules; write the rest in input order.

Each record is removed by the first rule (in --rules order) that finds a problem. Removing records is not an error (exit 0); --report says which rule removed what and why. Details of every rule: README, "itkit filter".

\b
Rules (* = the default set; length and language join when one of their
options is given):
{rules}

\b
Examples:
  itkit filter alpaca.json -o clean.json --report removed.jsonl
  itkit filter chats.json -o clean.json --rules empty,refusal,alternation
  itkit filter data.jsonl -o short.jsonl --max-response 512
  itkit filter data.jsonl -o en.jsonl --scripts latin --min-script-share 0.8
"""


@app.command("filter", help=_help())
@handle_errors
@step_command(FILTER)
def filter_command(
    src: Source,
    output: Output = "-",
    from_: FromFormat = InputFormat.auto,
    to: ToFormat = None,
    report: Report = None,
    on_error: OnErrorOpt = OnError.fail,
    errors: ErrorsPath = None,
    quiet: Quiet = False,
    as_json: AsJson = False,
    *,
    options: Any,
) -> int:
    check_stdout_use(as_json, output, report)
    rules = FILTER.prepare(options, CLI)
    files = record_files(src, output, from_, to, report, on_error, errors)
    files.check()
    result = FILTER.execute(rules, options, files)
    if as_json:
        out_console.print_json(json.dumps({**result.as_dict(), "output": output}, ensure_ascii=False))
    elif not quiet:
        _print_summary(result, output)
    return EXIT_PARTIAL if result.rejected else 0


def _print_summary(result: FilterResult, output: str) -> None:
    counts = result.counts
    where = "stdout" if output == "-" else output
    # Text(): file names may hold "[...]", which rich would read as markup
    table = Table(title=Text(f"filter {result.source} ({result.source_format} -> {result.target_format})"))
    table.add_column("records")
    table.add_column("count", justify="right")
    table.add_row("in", str(result.rows))
    for name, n in counts.removed.items():
        table.add_row(f"removed: {name}", str(n))
    if result.rejected:
        table.add_row("rejected (bad records)", str(result.rejected))
    table.add_row("kept", str(result.written), style="bold")
    err_console.print(table)
    err_console.print(f"wrote {result.written} record(s) to {where}", markup=False)
    dropped = describe_dropped(result.dropped, result.target_format)
    if dropped:
        err_console.print(dropped, markup=False)
    if result.report_path is not None:
        err_console.print(f"{counts.removed_total} removed record(s) with reasons in {result.report_path}", markup=False)
    if result.errors_path:
        err_console.print(f"{result.rejected} rejected record(s) with reasons in {result.errors_path}", markup=False)
