"""report: one self-contained HTML page showing what a run (or one command) did to the data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from itkit.cli.root import app, err_console, handle_errors
from itkit.cli.options import Help, Quiet
from itkit.steps.panels import PANEL_CONTROL, PANEL_IO

HELP = """Write an HTML report of a run folder, or of one command's summary and side files.

One self-contained file (inline CSS, JavaScript and SVG; no network, opens from file://, printable): the funnel (records in, out, removed by reason, failed; LLM requests, tokens, cost and failure reasons per step); removed records per filter rule and duplicate pairs side by side with the shared text highlighted; original and simplified responses with a word-level diff and the length-ratio histogram; Evol-Instruct lineages and eliminations per rule and operation; Orca's system messages and task types; Self-Instruct's new tasks with their most similar instructions; and for the exported sets, length histograms (tokens), categories, scores, the validation split and the LFT subset against the whole. Tables are searchable. Large runs are shown through samples (fixed seed), so the page stays a few MB. A recipe with `report: true` writes RUN_DIR/report.html at the end of itkit run.

TARGET is a run folder (run_summary.json), one of its step folders, an OUT.summary.json of simplify, evol-instruct, orca or self-instruct, the --json summary of filter or dedup saved to a file (with the --report file it names), or an export folder (manifest.json).

\b
Examples:
  itkit report runs/quickstart          # runs/quickstart/report.html
  itkit report runs/quickstart -o ~/quickstart.html
  itkit report simple.jsonl.summary.json   # simple.jsonl.report.html
  itkit dedup a.json -o b.json --report pairs.jsonl --json > dedup.json
  itkit report dedup.json               # dedup.report.html
"""


@app.command("report", help=HELP)
@handle_errors
def report_command(
    target: Annotated[str, typer.Argument(help="A run folder, a step folder, a command's summary file or an export folder.", show_default=False, metavar="TARGET")],
    output: Annotated[
        Optional[str],
        typer.Option("--output", "-o", help="The HTML file \\[default: TARGET/report.html for a folder, OUT.report.html beside a summary file]. An existing file is replaced only if it is an itkit report.", show_default=False, metavar="FILE", rich_help_panel=PANEL_IO),
    ] = None,
    samples: Annotated[
        Optional[int],
        typer.Option("--samples", min=1, help="Examples shown per filter rule, dedup stage and rewrite step \\[default: 5, 6 and 10].", show_default=False, metavar="N", rich_help_panel="Report"),
    ] = None,
    quiet: Quiet = False,
    help_: Help = False,
) -> int:
    from itkit.report import Limits, default_output, write_report

    limits = Limits() if samples is None else Limits(examples=samples, pairs=samples, rewrites=samples)
    where = Path(output) if output else default_output(target)
    if quiet:
        write_report(target, where, limits)
    else:
        with err_console.status("reading the run", spinner="dots") as status:
            write_report(target, where, limits, progress=lambda message: status.update(message))
        err_console.print(f"report: {where}", markup=False)
    return 0
