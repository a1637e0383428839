"""export: write the LoRA (LFT) and full fine-tuning (SFT) sets for TRL, LLaMA-Factory, Axolotl, Alpaca, ShareGPT."""

from __future__ import annotations

import json
import shlex
import sys
from typing import Annotated, Any

import typer
from rich.table import Table

from itkit.cli.root import app, err_console, handle_errors, out_console
from itkit.cli.options import AsJson, FromFormat, InputFormat, OnError, OnErrorOpt, Quiet, Source
from itkit.cli.step_options import CLI, step_command
from itkit.errors import EXIT_PARTIAL
from itkit.export import ExportResult
from itkit.steps.export import STEP as EXPORT, execute, settings_for
from itkit.steps.spec import PANEL_IO

SUMMARY_STRATA = 12


@app.command()
@handle_errors
@step_command(EXPORT)
def export(
    src: Source,
    output: Annotated[
        str,
        typer.Option("--output", "-o", metavar="OUTDIR", help="Output folder; built aside and renamed into place.", show_default=False, rich_help_panel=PANEL_IO),
    ],
    from_: FromFormat = InputFormat.auto,
    on_error: OnErrorOpt = OnError.fail,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace OUTDIR if it provably holds an itkit export (its manifest.json lists every file in it, unchanged).", rich_help_panel=PANEL_IO, metavar="")] = False,
    quiet: Quiet = False,
    as_json: AsJson = False,
    *,
    options: Any,
) -> int:
    """Write the LoRA (LFT) and full fine-tuning (SFT) sets in files TRL, LLaMA-Factory and Axolotl load as is.

    \b
    OUTDIR/<lft|sft>/<target>/train.jsonl and val.jsonl (plus the configs of
    llama-factory and axolotl), <mode>/lineage.jsonl, README.md (dataset card)
    and manifest.json. An existing OUTDIR is only replaced with --overwrite,
    and only if it holds nothing but a previous export. Details: README, "itkit export".

    \b
    Examples:
      itkit export clean.jsonl -o out
      itkit export clean.jsonl -o out --mode lft --lft-size 1000 -t trl
      itkit export chats.json -o out --max-length 2048 --split-long
      itkit export chats.json -o out --max-length 2048 --tokenizer ./Qwen2.5-0.5B-Instruct
    """
    settings = settings_for(
        options, src, output, CLI, from_format=from_.value, on_error=on_error.value, overwrite=overwrite,
        invoked_as=_typed_command(),
    )
    if quiet:
        result = execute(settings)
    else:
        with err_console.status("exporting") as status:
            result = execute(settings, progress=lambda message: status.update(message))
    for warning in result.warnings:
        err_console.print(f"warning: {warning}", markup=False)
    if as_json:
        out_console.print_json(json.dumps(result.as_dict(), ensure_ascii=False))
    elif not quiet:
        _print_summary(result)
    return EXIT_PARTIAL if result.rejected else 0


def _typed_command() -> str | None:
    """The command line as typed, when this process is ``itkit export ...`` (not a test runner or a library call)."""
    argv = sys.argv
    if len(argv) > 1 and argv[1] == "export":
        return shlex.join(["itkit", *argv[1:]])
    return None


def _print_summary(result: ExportResult) -> None:
    err = err_console
    err.print(
        f"{result.as_dict()['source']['path']} ({result.source_format}): {result.rows} rows, {result.usable} usable"
        + (f", {result.rejected} rejected (see rejected.jsonl)" if result.rejected else ""),
        markup=False,
    )
    table = Table(title="export")
    table.add_column("step")
    for mode in result.modes:
        table.add_column(mode.upper(), justify="right")
    modes = list(result.modes.values())

    def row(name: str, values: list[object]) -> None:
        table.add_row(name, *(str(v) for v in values))

    row("candidates", [m.candidates for m in modes])
    row("dropped: over --max-length", [m.length_dropped for m in modes])
    if any(m.unrenderable for m in modes):
        row("dropped: chat template refuses", [m.unrenderable for m in modes])
    if any(m.split_records for m in modes):
        row("split into pieces", [f"{m.split_records} -> {m.split_pieces}" for m in modes])
    if any(m.quality is not None for m in modes):
        row("removed by quality rules", [sum(m.quality.removed.values()) if m.quality else "-" for m in modes])
        row("not selected for the subset", [m.not_selected if m.quality else "-" for m in modes])
    row("records", [m.records for m in modes])
    row("train", [m.train for m in modes])
    row("validation", [m.val for m in modes])
    row("moved to train (duplicate in train)", [m.split.moved for m in modes])
    err.print(table)
    lft = result.modes.get("lft")
    if lft is not None and lft.quality is not None and lft.quality.removed:
        for rule, n in lft.quality.removed.items():
            if n:
                example = lft.quality.examples.get(rule, "")
                err.print(f"  {rule}: {n} removed, e.g. {example}", markup=False)
    if lft is not None and lft.coverage is not None:
        c = lft.coverage
        cov = Table(title=f"LFT coverage by {c.kind}: {c.covered_strata}/{c.full_strata} strata, entropy {c.subset_entropy:.2f} bits (full set {c.full_entropy:.2f})")
        cov.add_column(c.kind)
        cov.add_column("full", justify="right")
        cov.add_column("subset", justify="right")
        full_total = sum(r.full for r in c.rows) or 1
        sub_total = sum(r.subset for r in c.rows) or 1
        for r in c.rows[:SUMMARY_STRATA]:
            cov.add_row(r.stratum, f"{r.full} ({100 * r.full / full_total:.0f}%)", f"{r.subset} ({100 * r.subset / sub_total:.0f}%)")
        if len(c.rows) > SUMMARY_STRATA:
            cov.add_row(f"({len(c.rows) - SUMMARY_STRATA} more)", "", "")
        err.print(cov)
    if result.no_trained_turn:
        err.print(f"{result.no_trained_turn} records left out: every assistant turn has weight 0", markup=False)
    if not result.exact_lengths:
        how = (
            f"{result.settings.tokenizer} has no chat template (chat_template in tokenizer_config.json, or chat_template.jinja)"
            if result.settings.tokenizer
            else "pass --tokenizer with the model's folder for exact lengths"
        )
        err.print(f"token lengths are estimates ({result.token_counter}); the configs allow a margin ({how})", markup=False)
    err.print(f"wrote {len(result.files)} files to {result.out_dir} (README.md, manifest.json)", markup=False)
