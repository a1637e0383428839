"""dedup: remove exact duplicates, MinHash near-duplicates and ROUGE-L near copies."""

from __future__ import annotations

import json
from enum import Enum
from typing import Annotated, Optional

import typer
from rich.table import Table
from rich.text import Text

from itkit.cli.app import app, err_console, handle_errors, out_console
from itkit.cli.options import (
    check_stdout_use,
    AsJson,
    ErrorsPath,
    FromFormat,
    InputFormat,
    OnError,
    OnErrorOpt,
    Output,
    Quiet,
    Source,
    ToFormat,
    errors_path_for,
)
from itkit.dedup import (
    DEFAULT_JACCARD,
    DEFAULT_NGRAM,
    DEFAULT_NUM_PERM,
    DEFAULT_ROUGE_THRESHOLD,
    DedupOptions,
    DedupSummary,
    dedup_file,
)
from itkit.errors import EXIT_PARTIAL, UsageError
from itkit.io.paths import check_paths


class On(str, Enum):
    auto = "auto"
    instruction = "instruction"
    prompt = "prompt"
    response = "response"
    conversation = "conversation"


class Keep(str, Enum):
    first = "first"
    longest = "longest"


HELP = f"""Remove duplicate records; write the rest in input order.

\b
Stages, in this order, each on the records the previous one kept:
  exact  on by default (--no-exact): texts equal after NFKC, case folding
         and whitespace collapsing
  near   --near: MinHash LSH on word n-grams (--ngram {DEFAULT_NGRAM}), estimated
         Jaccard >= {DEFAULT_JACCARD} (--near-threshold); short texts are one shingle
  rouge  --rouge: Self-Instruct's filter, ROUGE-L F1 > {DEFAULT_ROUGE_THRESHOLD} against a
         kept record (--rouge-threshold); exactly rouge_score's decisions
Giving --near-threshold or --rouge-threshold turns its stage on.

\b
--on: the compared text. instruction = instruction + input; prompt = every
user turn; response = every assistant turn; conversation = system + all
turns; auto = instruction, or prompt for multi-turn records.
--keep: the survivor of a duplicate group. first = earliest in the input;
longest = longest response (ties: earliest).

\b
The summary counts every record (kept, removed per stage, rejected).
--report writes one JSON line per removed record: stage, index (0-based
input row), id, kept_index, kept_id, score (exact 1.0, near estimated
Jaccard, rouge ROUGE-L F1). Exit 0 (3 when --on-error skip rejected some).

\b
Examples:
  itkit dedup alpaca.json -o unique.json
  itkit dedup merged.jsonl -o clean.jsonl --near --report removed.jsonl
  itkit dedup generated.jsonl -o novel.jsonl --rouge --keep longest
  itkit dedup chats.json -o unique.json --on conversation --near-threshold 0.9
"""


@app.command("dedup", help=HELP)
@handle_errors
def dedup_command(
    src: Source,
    output: Output = "-",
    from_: FromFormat = InputFormat.auto,
    to: ToFormat = None,
    exact: Annotated[
        bool, typer.Option("--exact/--no-exact", help="Remove exact duplicates (after normalisation).")
    ] = True,
    near: Annotated[bool, typer.Option("--near", help="Remove MinHash near-duplicates.")] = False,
    near_threshold: Annotated[
        Optional[float],
        typer.Option(
            "--near-threshold",
            help=f"Jaccard similarity at or above which two texts are near-duplicates \\[default: {DEFAULT_JACCARD}]; implies --near.",
            show_default=False,
        ),
    ] = None,
    num_perm: Annotated[
        int, typer.Option("--num-perm", help="MinHash permutations (more: finer similarity estimates, slower).")
    ] = DEFAULT_NUM_PERM,
    ngram: Annotated[int, typer.Option("--ngram", help="Words per shingle for --near.")] = DEFAULT_NGRAM,
    rouge: Annotated[bool, typer.Option("--rouge", help="Remove records too similar by ROUGE-L (Self-Instruct).")] = False,
    rouge_threshold: Annotated[
        Optional[float],
        typer.Option(
            "--rouge-threshold",
            help=f"ROUGE-L F1 above which a record is a near copy \\[default: {DEFAULT_ROUGE_THRESHOLD}]; implies --rouge.",
            show_default=False,
        ),
    ] = None,
    on: Annotated[On, typer.Option("--on", help="Which text to compare (see above).")] = On.auto,
    keep: Annotated[Keep, typer.Option("--keep", help="Which record of a duplicate group survives.")] = Keep.first,
    report: Annotated[
        Optional[str],
        typer.Option("--report", help="Write one JSON line per removed record here (stage, ids, score)."),
    ] = None,
    on_error: OnErrorOpt = OnError.fail,
    errors: ErrorsPath = None,
    quiet: Quiet = False,
    as_json: AsJson = False,
) -> int:
    check_stdout_use(as_json, output, report)
    check_paths(
        {"SRC": src},
        {"-o": output, "--report": report, "--errors": errors_path_for(output, errors) if on_error is OnError.skip else None},
    )
    near_on = near or near_threshold is not None
    rouge_on = rouge or rouge_threshold is not None
    if not near_on and (num_perm != DEFAULT_NUM_PERM or ngram != DEFAULT_NGRAM):
        raise UsageError("--num-perm and --ngram tune the near-duplicate stage; add --near")
    options = DedupOptions(
        exact=exact,
        near=(DEFAULT_JACCARD if near_threshold is None else near_threshold) if near_on else None,
        num_perm=num_perm,
        ngram=ngram,
        rouge=(DEFAULT_ROUGE_THRESHOLD if rouge_threshold is None else rouge_threshold) if rouge_on else None,
        keep=keep.value,
    )
    skip = on_error is OnError.skip

    def run(progress=None) -> DedupSummary:
        return dedup_file(
            src,
            output,
            options=options,
            on=on.value,
            from_format=from_.value,
            to_format=to.value if to else None,
            report=report,
            on_error=on_error.value,
            errors=errors_path_for(output, errors) if skip else None,
            progress=progress,
        )

    if quiet or as_json:
        summary = run()
    else:
        with err_console.status("deduplicating: reading records") as status:
            summary = run(lambda message: status.update(f"deduplicating: {message}"))
    if as_json:
        out_console.print_json(json.dumps(summary.as_dict(), ensure_ascii=False))
    elif not quiet:
        _print_summary(summary)
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
    err_console.print(f"wrote {summary.kept} record(s) to {where}", markup=False)
    removed = sum(summary.removed.values())
    if summary.report is not None:
        err_console.print(f"{removed} removed record(s) with their matches in {summary.report}", markup=False)
    if summary.errors and summary.rejected:
        err_console.print(f"{summary.rejected} rejected record(s) with reasons in {summary.errors}", markup=False)
