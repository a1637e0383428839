"""``itkit simplify``: rewrite responses into simpler, shorter ones with an LLM."""

from __future__ import annotations

from typing import Any

from itkit.cli.root import app, handle_errors, out_console
from itkit.cli.llm_summary import FAILURES_HEADER, cli_files, print_engine_stats, print_failures, print_rejected, run_llm_command, say, where
from itkit.cli.step_options import step_command
from itkit.cli.options import (
    ErrorsPath,
    FromFormat,
    InputFormat,
    OnError,
    OnErrorOpt,
    Output,
    Source,
    ToFormat,
)
from itkit.llm.engine import Engine
from itkit.llm.settings import LLMSettings
from itkit.simplify import SimplifyResult
from itkit.simplify_report import distribution_lines
from itkit.steps.simplify import STEP as SIMPLIFY
from itkit.steps.spec import Context

@app.command()
@handle_errors
@step_command(SIMPLIFY)
def simplify(
    src: Source,
    output: Output = "-",
    from_: FromFormat = InputFormat.auto,
    to: ToFormat = None,
    on_error: OnErrorOpt = OnError.fail,
    errors: ErrorsPath = None,
    *,
    options: Any,
    settings: LLMSettings,
    prompts_dir: str | None,
) -> int:
    """Rewrite each record's final response into a simpler, shorter one that keeps only what it states.

    Training on simplified responses reduces hallucination after full fine-tuning (Ghosh et al. 2024). Every rewrite is checked (no new numbers, names or URLs, code kept verbatim, the final answer kept) and asked for once more when it fails or is longer. Records without a response are written unchanged. Writes OUTPUT.summary.json, and OUTPUT.failures.jsonl for records that failed (exit 3). Interrupted? Re-run the same command: finished responses come from the cache.

    \b
    Examples:
      itkit simplify alpaca.json -o simple.json --keep-original
      itkit simplify dolly.jsonl -o out.jsonl --base-url http://localhost:11434/v1
      itkit simplify chats.jsonl -o simple.jsonl --dry-run
    """
    prepared = SIMPLIFY.prepare(options, Context(settings, prompts_dir, cli=True))
    files = cli_files(src, output, from_, to, on_error, errors, prompts_dir, command=SIMPLIFY.name, settings=settings)
    return run_llm_command(
        settings,
        lambda engine: SIMPLIFY.execute(prepared, options, files, engine, settings),
        summary=lambda result, engine: _print_summary(result, output, engine),
        dry_run=_print_dry_run,
    )


def _print_dry_run(result: SimplifyResult) -> None:
    if result.no_response:
        out_console.print(f"records without a response (passed through, no request): {result.no_response}", markup=False)


def _print_summary(result: SimplifyResult, output: str, engine: Engine) -> None:
    say(
        f"simplify: {result.read} records ({result.source_format} -> {result.target_format}) to {where(output)}: "
        f"{result.simplified} simplified, {result.longer_kept} kept longer (flagged), "
        f"{result.kept_original} kept their original (a check failed), {result.flagged} flagged, "
        f"{result.no_response} without a response (unchanged), {result.failed} failed"
    )
    block = result.stats.as_dict()
    ratio, lengths = block["length_ratio"], block["lengths"]
    if ratio["median"] is not None:
        say(
            f"  length ({block['length_unit']}): median ratio {ratio['median']:.2f}; shortened {lengths['shortened']}, "
            f"unchanged {lengths['unchanged']}, longer {lengths['longer']}"
        )
        say("  length ratio (written / original), records:")
        for line in distribution_lines(block):
            say(line)
    first, final = block["violations_first_try"], block["violations_final"]
    if any(first.values()):
        say(f"  checks broken (first try -> after the retry), {block['retried']} retried, {block['fixed_by_retry']} fixed:")
        for name in block["checks"]:
            if first[name] or final[name]:
                say(f"    {name:<13} {first[name]:>6} -> {final[name]}")
    print_engine_stats(engine)
    if result.failed:
        print_failures(f"{FAILURES_HEADER}: {result.failures_path}", result.failure_reasons)
    print_rejected(result.rejected_input, "input rows", result.errors_path)
    say(f"summary: {result.summary_path}")
