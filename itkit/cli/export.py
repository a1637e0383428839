"""export: write the LoRA (LFT) and full fine-tuning (SFT) sets for TRL, LLaMA-Factory, Axolotl, Alpaca, ShareGPT."""

from __future__ import annotations

import json
import shlex
import sys
from enum import Enum
from typing import Annotated, Optional

import typer
from rich.table import Table

from itkit.cli.app import app, err_console, handle_errors, out_console
from itkit.cli.options import AsJson, Encoding, FromFormat, InputFormat, OnError, OnErrorOpt, Quiet, Source, TokenModel
from itkit.errors import EXIT_PARTIAL
from itkit.export import DEFAULT_LFT_SIZE, DEFAULT_SEED, ExportResult, ExportSettings, run_export
from itkit.export.quality import DEFAULT_LFT_RULES, DEFAULT_MAX_RESPONSE_WORDS, DEFAULT_MIN_RESPONSE_WORDS
from itkit.export.targets import TARGET_NAMES

SUMMARY_STRATA = 12


class Mode(str, Enum):
    lft = "lft"
    sft = "sft"
    both = "both"


class TrlFormat(str, Enum):
    messages = "messages"
    prompt_completion = "prompt-completion"


class Diversity(str, Enum):
    auto = "auto"
    category = "category"
    cluster = "cluster"
    random = "random"


@app.command()
@handle_errors
def export(
    src: Source,
    output: Annotated[str, typer.Option("--output", "-o", help="Output folder (OUTDIR); built aside and renamed into place.", show_default=False)],
    mode: Annotated[Mode, typer.Option("--mode", help="lft: the LoRA subset; sft: the full set; both.")] = Mode.both,
    target: Annotated[
        Optional[list[str]],
        typer.Option(
            "--target",
            "-t",
            help=f"Target(s), repeatable or comma-separated: {', '.join(TARGET_NAMES)} (default: all).",
            show_default=False,
        ),
    ] = None,
    lft_size: Annotated[int, typer.Option("--lft-size", help="Records in the LFT subset (all if fewer pass the filters).")] = DEFAULT_LFT_SIZE,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the subset, the clusters and the split.")] = DEFAULT_SEED,
    prefer_simplified: Annotated[
        bool,
        typer.Option(
            "--prefer-simplified",
            help="LFT takes the simplified response where a record also keeps its original (itkit simplify "
            "--keep-original); without it LFT takes the original. SFT always takes the simplified one.",
        ),
    ] = False,
    val_ratio: Annotated[Optional[float], typer.Option("--val-ratio", help="Share of each set held out for validation (default: 0.1).", show_default=False)] = None,
    val_size: Annotated[Optional[int], typer.Option("--val-size", help="Validation records per set (instead of --val-ratio).", show_default=False)] = None,
    max_tokens: Annotated[Optional[int], typer.Option("--max-tokens", help="Token budget per record: longer records are dropped (or split, --split-long).", show_default=False)] = None,
    encoding: Encoding = None,
    model: TokenModel = None,
    tokenizer: Annotated[
        Optional[str],
        typer.Option("--tokenizer", help="Count tokens with a local Hugging Face tokenizer (tokenizer.json or its folder); needs the optional tokenizers library (pip install tokenizers).", show_default=False),
    ] = None,
    split_long: Annotated[bool, typer.Option("--split-long", help="Split over-long multi-turn conversations at turn pairs instead of dropping them.")] = False,
    trl_format: Annotated[TrlFormat, typer.Option("--trl-format", help="TRL rows: messages, or conversational prompt/completion.")] = TrlFormat.messages,
    diversity: Annotated[
        Diversity,
        typer.Option("--diversity", help="Spread the LFT subset over: category (a category field), cluster (topic clusters of the prompts), auto (category when most records have one), random."),
    ] = Diversity.auto,
    clusters: Annotated[Optional[int], typer.Option("--clusters", help="Number of topic clusters (default: about sqrt(records), at most 50).", show_default=False)] = None,
    lft_rules: Annotated[
        str,
        typer.Option("--lft-rules", help="Quality rules for the LFT subset, comma-separated (see itkit filter); none for no rules."),
    ] = ",".join(DEFAULT_LFT_RULES),
    lft_min_response: Annotated[int, typer.Option("--lft-min-response", help="LFT: fewest words in a response (0: no minimum).")] = DEFAULT_MIN_RESPONSE_WORDS,
    lft_max_response: Annotated[int, typer.Option("--lft-max-response", help="LFT: most words in a response (0: no maximum).")] = DEFAULT_MAX_RESPONSE_WORDS,
    base_model: Annotated[Optional[str], typer.Option("--base-model", help="Model to fine-tune, written into the LLaMA-Factory and Axolotl configs.", show_default=False)] = None,
    from_: FromFormat = InputFormat.auto,
    on_error: OnErrorOpt = OnError.fail,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace OUTDIR if it provably holds an itkit export (its manifest.json lists every file in it, unchanged).")] = False,
    quiet: Quiet = False,
    as_json: AsJson = False,
) -> int:
    """Write the LoRA (LFT) and full fine-tuning (SFT) sets in files TRL, LLaMA-Factory and Axolotl load as is.

    \b
    OUTDIR/<lft|sft>/<target>/train.jsonl, val.jsonl (+ dataset_info.json and a config stub
    for llama-factory, a YAML fragment for axolotl), <mode>/lineage.jsonl, README.md (dataset
    card) and manifest.json (sha256 of every file). An existing OUTDIR is only replaced with
    --overwrite, and only if it holds nothing but a previous export. With --on-error skip, bad input rows
    go to OUTDIR/rejected.jsonl (exit 3).
    Examples:
      itkit export clean.jsonl -o out
      itkit export clean.jsonl -o out --mode lft --lft-size 1000 --target trl,llama-factory
      itkit export chats.json -o out --max-tokens 2048 --split-long --tokenizer ./tokenizer.json
      itkit export simplified.jsonl -o out --prefer-simplified --val-size 200 --overwrite
    """
    settings = ExportSettings.from_options(
        src,
        output,
        mode=mode.value,
        target=target,
        from_format=from_.value,
        on_error=on_error.value,
        lft_size=lft_size,
        seed=seed,
        prefer_simplified=prefer_simplified,
        val_ratio=val_ratio,
        val_size=val_size,
        max_tokens=max_tokens,
        encoding=encoding,
        model=model,
        tokenizer=tokenizer,
        split_long=split_long,
        trl_format=trl_format.value,
        diversity=diversity.value,
        clusters=clusters,
        lft_rules=lft_rules.split(","),
        lft_min_response=lft_min_response,
        lft_max_response=lft_max_response,
        base_model=base_model,
        overwrite=overwrite,
        invoked_as=_typed_command(),
    )
    if quiet:
        result = run_export(settings)
    else:
        with err_console.status("exporting") as status:
            result = run_export(settings, progress=lambda message: status.update(message))
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
    row("dropped: over --max-tokens", [m.length_dropped for m in modes])
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
    err.print(f"wrote {len(result.files)} files to {result.out_dir} (README.md, manifest.json)", markup=False)
