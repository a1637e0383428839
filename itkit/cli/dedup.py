"""dedup: remove exact duplicates, MinHash near-duplicates and ROUGE-L near copies."""

from __future__ import annotations

import json
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
from itkit.dedup import DEFAULT_JACCARD, DEFAULT_NGRAM, DEFAULT_ROUGE_THRESHOLD, DedupSummary
from itkit.errors import EXIT_PARTIAL
from itkit.steps.dedup import STEP as DEDUP


HELP = f"""Remove duplicate records; write the rest in input order.

\b
Stages, in this order, each on the records the previous one kept:
  exact  on by default: texts equal after NFKC, case folding, whitespace
  near   --near: MinHash LSH on word {DEFAULT_NGRAM}-grams, true Jaccard >= {DEFAULT_JACCARD}
  rouge  --rouge: Self-Instruct's filter, ROUGE-L F1 > {DEFAULT_ROUGE_THRESHOLD} against a kept record

--on picks the compared text: instruction (with its input), prompt (every user turn), response (every assistant turn), conversation, or auto (instruction; prompt for multi-turn records). --report gives, for each removed record, the record it duplicates, both texts and the score. --numbers significant keeps texts with different numbers apart; --ignore-common auto leaves shared boilerplate out of near/rouge. Details: README, "itkit dedup".

\b
Examples:
  itkit dedup alpaca.json -o unique.json
  itkit dedup merged.jsonl -o clean.jsonl --near --report removed.jsonl
  itkit dedup generated.jsonl -o novel.jsonl --rouge --keep longest
  itkit dedup chats.json -o unique.json --on conversation --near-threshold 0.9
"""


@app.command("dedup", help=HELP)
@handle_errors
@step_command(DEDUP)
def dedup_command(
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
    prepared = DEDUP.prepare(options, CLI)
    files = record_files(src, output, from_, to, report, on_error, errors)
    files.check()
    if quiet or as_json:
        summary = DEDUP.execute(prepared, options, files)
    else:
        with err_console.status("deduplicating: reading records") as status:
            files.progress = lambda message: status.update(f"deduplicating: {message}")
            summary = DEDUP.execute(prepared, options, files)
    if as_json:
        out_console.print_json(json.dumps(summary.as_dict(), ensure_ascii=False))
    elif not quiet:
        _print_summary(summary)
    for warning in [] if quiet else summary.warnings:  # (-q: only in the --json summary)
        err_console.print(f"warning: {warning}", markup=False)
    return EXIT_PARTIAL if summary.rejected else 0


def _print_summary(summary: DedupSummary) -> None:
    where = "stdout" if summary.output == "-" else summary.output
    # Text(): file names may hold "[...]", which rich would read as markup
    table = Table(
        title=Text(f"dedup {summary.source} ({summary.input_format} -> {summary.output_format}), on {summary.on}, keep {summary.keep}")
    )
    table.add_column("records")
    table.add_column("count", justify="right")
    table.add_row("in", str(summary.rows))
    for stage, n in summary.removed.items():
        table.add_row(f"removed: {stage}", str(n))
    if summary.rejected:
        table.add_row("rejected (bad records)", str(summary.rejected))
    table.add_row("kept", str(summary.kept), style="bold")
    err_console.print(table)
    if summary.boilerplate:
        err_console.print("common text left out of the near/rouge comparison (--ignore-common off to keep it):", markup=False)
        for line in summary.boilerplate:
            err_console.print(f"  {line}", markup=False, soft_wrap=True)
    err_console.print(f"wrote {summary.kept} record(s) to {where}", markup=False)
    dropped = describe_dropped(summary.dropped, summary.output_format)
    if dropped:
        err_console.print(dropped, markup=False)
    removed = sum(summary.removed.values())
    if summary.report is not None:
        err_console.print(f"{removed} removed record(s) with their matches in {summary.report}", markup=False)
    if summary.errors and summary.rejected:
        err_console.print(f"{summary.rejected} rejected record(s) with reasons in {summary.errors}", markup=False)
