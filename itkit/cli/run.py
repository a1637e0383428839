"""run: a whole pipeline from a recipe (YAML), resumable, with a summary across steps."""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer
from rich import box
from rich.table import Table
from rich.text import Text

from itkit.cli.root import app, err_console, error_line, handle_errors, out_console
from itkit.cli.options import AsJson, Help, Quiet
from itkit.cli.step_options import deprecated
from itkit.recipes.runner import RUNS_FOLDER, run_recipe
from itkit.recipes.schema import load_recipe
from itkit.recipes.steps import DRY_RUN_SAMPLES, STEPS
from itkit.recipes.summary import STATUS_PLANNED, STATUS_RAN, RunSummary, StepRow
from itkit.steps.spec import PANEL_CONTROL

def _help() -> str:
    steps = "\n".join(f"  {name:<15}{step.description}" for name, step in STEPS.items())
    return f"""Run a recipe: merge its sources, run its steps in order, export; resume where it stopped.

A recipe (YAML) names its sources, its steps with their options, the LLM settings (once, overridable per step; the key only from OPENAI_API_KEY) and the export. It is checked in full before anything runs: a problem is one error naming the recipe's line (exit 2). Paths are relative to the recipe's folder.

\b
Step types (options: those of itkit <type>, with underscores):
{steps}

Re-running resumes: a step whose options, LLM settings, prompts and input are unchanged is skipped; LLM steps get finished responses back from the cache. The run folder (default {RUNS_FOLDER}/<recipe name>) holds every step's output and run_summary.json. Exit 3 when records failed in an LLM step or source rows were rejected. Details: README, "itkit run".

\b
Examples:
  itkit run data_samples/recipes/quickstart.yaml
  itkit run my.yaml --dry-run              # prompts, requests, tokens, cost
  itkit run my.yaml --from-step dedup      # re-run dedup and what follows
"""


RUN_PANEL = "Run"


@app.command("run", help=_help())
@handle_errors
def run_command(
    recipe: Annotated[str, typer.Argument(help="The recipe: a YAML file.", metavar="RECIPE", show_default=False)],
    run_dir: Annotated[
        Optional[str],
        typer.Option(
            "--run-dir", metavar="DIR", show_default=False, rich_help_panel=RUN_PANEL,
            help=f"Run folder: new, empty, or made by itkit.  \\[default: {RUNS_FOLDER}/<recipe name>]",
        ),
    ] = None,
    from_step: Annotated[
        Optional[str],
        typer.Option(
            "--from-step", metavar="STEP", show_default=False, rich_help_panel=RUN_PANEL,
            help="Re-run this step and the later ones: number (0: sources), folder or type.",
        ),
    ] = None,
    old_from: Annotated[Optional[str], typer.Option("--from", hidden=True)] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", metavar="", rich_help_panel=PANEL_CONTROL,
            help="Check, count, show sample prompts and estimate the cost; send and write nothing.",
        ),
    ] = False,
    samples: Annotated[
        int,
        typer.Option("--samples", min=0, metavar="N", rich_help_panel=PANEL_CONTROL, help="Dry run: sample prompts per LLM step."),
    ] = DRY_RUN_SAMPLES,
    quiet: Quiet = False,
    as_json: AsJson = False,
    help_: Help = False,
) -> int:
    if old_from is not None:
        deprecated("--from", "--from-step")
        from_step = from_step or old_from
    loaded = load_recipe(recipe)
    for warning in loaded.warnings:
        error_line(warning, "warning")
    summary = run_recipe(
        loaded,
        run_dir,
        from_step=from_step,
        dry_run=dry_run,
        quiet=quiet,
        samples=samples,
        events=None if quiet or as_json else _print_event,
    )
    if dry_run and not as_json:
        _print_plan(summary)
    if as_json:
        out_console.print_json(json.dumps(summary.as_dict(), ensure_ascii=False))
    elif not quiet:
        err_console.print(_table(summary))
        for warning in summary.warnings:  # said as they happened; again here, where the run is summed up
            err_console.print(f"warning: {warning}", markup=False)
        where = summary.run_dir
        if summary.dry_run:
            err_console.print(f"dry run: nothing was sent and nothing written (a run would use {where})", markup=False)
        else:
            err_console.print(f"run folder: {where} (run_summary.json)", markup=False)
            for row in summary.rows:
                if row.type == "export" and row.output:
                    err_console.print(f"datasets: {where}/{row.folder}/output", markup=False)
            if summary.report:
                err_console.print(f"report: {summary.report}", markup=False)
    return summary.exit_code


def _print_event(kind: str, stage: str, message: str) -> None:
    if kind == "start":
        err_console.print(Text(f"> {stage}" + (f" ({message})" if message else ""), style="bold"))
    elif kind == "skip":
        err_console.print(f"  {stage}: skipped, {message}", markup=False)
    elif kind == "done":
        err_console.print(f"  {stage}: {message}", markup=False)
    else:
        err_console.print(f"  {stage}: {message}", markup=False)


def _print_plan(summary: RunSummary) -> None:
    """The dry run's details on stdout: records per source, then each LLM step's sample prompts and estimate."""
    for row in summary.rows:
        lines = list(row.outcome.plan_lines) + list(row.outcome.notes)
        if not lines:
            continue
        out_console.print(f"=== {row.step} ({row.status}) ===", markup=False, highlight=False)
        for line in lines:
            out_console.print(line, markup=False, highlight=False)


def _n(value: int) -> str:
    return f"{value:,}"


def _details(row: StepRow) -> str:
    """What the step did, in words that wrap: its headline figures, removals by reason, failures."""
    o = row.outcome
    parts = [", ".join(f"{label} {_n(n)}" for label, n in o.headline.items())] if o.headline else []
    if o.removed:
        top = sorted(o.removed.items(), key=lambda kv: (-kv[1], kv[0]))
        parts.append(f"removed {_n(sum(o.removed.values()))}: " + ", ".join(f"{k} {_n(v)}" for k, v in top))
    if o.passed_through:
        parts.append(f"passed through {_n(o.passed_through)} (beyond the limit, unchanged)")
    if o.failed:
        parts.append(f"failed {_n(o.failed)}")
    if o.rejected:
        parts.append(f"rejected {_n(o.rejected)}")
    if o.warnings:
        parts.append("WARNING (below)")
    return "; ".join(parts)


def _out(row: StepRow) -> str:
    o = row.outcome
    if o.records_out == 0:
        return "0 (none left)" if o.records_in else "0 (empty)"
    if o.records_out is not None:
        return _n(o.records_out)
    if row.type == "export" and o.outputs:
        return "\n".join(f"{k} {_n(v)}" for k, v in o.outputs.items())
    return "-"


def _cost(value: float | None) -> str:
    return "cost n/a" if value is None else f"${value:,.4f}"


def _llm_cell(row: StepRow) -> str:
    """requests, tokens and cost of a row, one per line: spent in this run, or estimated in a dry run."""
    estimate = row.outcome.estimate if row.status == STATUS_PLANNED else None
    if estimate is not None:
        cached = f"\n+{_n(estimate['cached'])} cached" if estimate.get("cached") else ""
        tokens = estimate["prompt_tokens"] + estimate["completion_tokens_estimated"]
        return f"~{_n(estimate['requests'])} req{cached}\n~{_n(tokens)} tok\n~{_cost(estimate.get('estimated_cost_usd'))}"
    if row.status == STATUS_RAN and row.outcome.engine:
        prompt, completion = row.tokens
        cached = f"\n+{_n(row.cache_hits)} cached" if row.cache_hits else ""
        return f"{_n(row.requests)} req{cached}\n{_n(prompt + completion)} tok\n{_cost(row.cost) if row.requests else '$0'}"
    return ""


def _step_cell(row: StepRow) -> str:
    status = "" if row.status == STATUS_RAN else row.status
    if row.forced:
        status = f"{status} (--from-step)".strip()
    return row.step + (f"\n{status}" if status else "")


def _table(summary: RunSummary) -> Table:
    """The run table, laid out for 80 columns: numbers never wrap or shorten; the details column wraps."""
    title = f"itkit run {summary.name}" + (" (dry run)" if summary.dry_run else "")
    llm = any(STEPS[row.type].uses_llm for row in summary.rows if row.type in STEPS)
    table = Table(
        title=Text(title), box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, title_justify="left",
        leading=1 if llm else 0,  # LLM rows take three lines: keep the steps apart
    )
    table.add_column("step", no_wrap=True)
    table.add_column("in", justify="right", no_wrap=True)
    table.add_column("out", justify="right", no_wrap=True)
    table.add_column("what it did", ratio=1, overflow="fold")
    if llm:
        table.add_column("LLM", justify="right", no_wrap=True)
    table.add_column("time", justify="right", no_wrap=True)
    for row in summary.rows:
        cells = [_step_cell(row), _n(row.outcome.records_in), _out(row), Text(_details(row))]
        if llm:
            cells.append(_llm_cell(row))
        cells.append(f"{row.seconds:.1f} s" if row.status in (STATUS_RAN, STATUS_PLANNED) else "")
        table.add_row(*cells)
    totals = summary.totals()
    total = ["total", "", "", f"failed {_n(totals['failed'])}" if totals["failed"] else ""]
    if llm:
        if summary.dry_run and "estimate" in totals:
            e = totals["estimate"]
            tokens = e["prompt_tokens"] + e["completion_tokens_estimated"]
            total.append(f"~{_n(e['requests'])} req\n~{_n(tokens)} tok\n~{_cost(e['estimated_cost_usd'])}")
        else:
            tokens = totals["tokens"]["prompt"] + totals["tokens"]["completion"]
            cost = _cost(totals["cost_usd"]) if totals["requests"] else "$0"
            total.append(f"{_n(totals['requests'])} req\n{_n(tokens)} tok\n{cost}")
    total.append(f"{totals['seconds']:.1f} s")
    table.add_row(*total, style="bold")
    return table
