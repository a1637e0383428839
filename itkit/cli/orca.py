"""``itkit orca``: Orca-style explanation tuning (regenerate responses under the Orca system messages)."""

from __future__ import annotations

from collections import Counter
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
from itkit.methods.orca.run import OrcaResult
from itkit.steps.orca import STEP as ORCA
from itkit.steps.spec import Context


def _counts_line(counter: Counter, prefix: str = "") -> str:
    return ", ".join(f"{prefix}{k} x{v}" for k, v in sorted(counter.items(), key=lambda kv: (-kv[1], str(kv[0]))))


@app.command()
@handle_errors
@step_command(ORCA)
def orca(
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
    """Regenerate each response under an Orca system message that asks for an explanation trace.

    Each record gets one of the 16 Orca system messages (#1 is empty), chosen by its task type, deterministically from --seed and the record id; the model answers the record's prompt under it. A multi-turn record keeps its earlier turns as context. --to openorca writes OpenOrca's layout. Writes OUTPUT.summary.json, and OUTPUT.failures.jsonl for records that failed (exit 3). Details: README, "itkit orca".

    \b
    Examples:
      itkit orca dolly.jsonl -o orca.jsonl --to openorca --model gpt-4o-mini
      itkit orca alpaca.json -o explained.json --assign uniform --seed 7
      itkit orca data.jsonl -o out.jsonl --system-messages 2,5,7
      itkit orca data.jsonl -o out.jsonl --to openorca --dry-run --limit 100
    """
    rewriter = ORCA.prepare(options, Context(settings, prompts_dir, cli=True))
    files = cli_files(src, output, from_, to, on_error, errors, prompts_dir, command=ORCA.name, settings=settings)
    return run_llm_command(
        settings,
        lambda engine: ORCA.execute(rewriter, options, files, engine, settings),
        summary=lambda result, engine: _print_summary(result, output, engine),
        dry_run=_print_dry_run,
    )


def _print_dry_run(result: OrcaResult) -> None:
    out_console.print(f"system messages: {_counts_line(result.by_message, '#')}", markup=False)
    out_console.print(f"task types: {_counts_line(result.by_type)}", markup=False)
    if result.empty_prompts:
        out_console.print(f"records with an empty prompt (not sent): {result.empty_prompts}", markup=False)


def _print_summary(result: OrcaResult, output: str, engine: Engine) -> None:
    say(
        f"orca: {result.read} records ({result.source_format} -> {result.target_format}) to {where(output)}: "
        f"{result.written} regenerated, {result.failed} failed"
    )
    say(f"  system messages: {_counts_line(result.by_message, '#')}")
    say(f"  task types: {_counts_line(result.by_type)}")
    if result.fallbacks:
        say(f"  {result.fallbacks} records had no message of their type in --system-messages: drawn from the whole set")
    print_engine_stats(engine)
    if result.failed:
        print_failures(f"{FAILURES_HEADER}: {result.failures_path}", result.failure_reasons)
    print_rejected(result.rejected, "input rows", result.errors_path)
    say(f"summary: {result.summary_path}")
