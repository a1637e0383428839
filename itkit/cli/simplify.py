"""``itkit simplify``: rewrite responses into simpler, shorter ones with an LLM."""

from __future__ import annotations

from typing import Annotated

import typer

from itkit.cli.app import app, handle_errors, out_console
from itkit.cli.llm_options import llm_options
from itkit.cli.llm_summary import check_llm_paths, FAILURES_HEADER, print_engine_stats, print_failures, print_rejected, rejects_path, run_llm_command, say, where
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
from itkit.llm.report import RunReport
from itkit.llm.settings import LLMSettings
from itkit.simplify import COMMAND, SimplifyResult, simplify_file

KeepOriginal = Annotated[
    bool,
    typer.Option("--keep-original", help="Keep the original response in the record's metadata (original_output)."),
]
RejectLonger = Annotated[
    bool,
    typer.Option(
        "--reject-longer",
        help="A rewrite still longer than the original after one more try fails the record (default: keep it, flagged simplify_longer).",
    ),
]


@app.command()
@handle_errors
@llm_options
def simplify(
    src: Source,
    output: Output = "-",
    from_: FromFormat = InputFormat.auto,
    to: ToFormat = None,
    keep_original: KeepOriginal = False,
    reject_longer: RejectLonger = False,
    on_error: OnErrorOpt = OnError.fail,
    errors: ErrorsPath = None,
    *,
    settings: LLMSettings,
    prompts_dir: str | None,
) -> int:
    """Rewrite each record's final response into a simpler, shorter one that keeps only what it states.

    Training on simplified responses reduces hallucination after full fine-tuning (Ghosh et al. 2024). Records without a response are written unchanged. Writes OUTPUT.summary.json, and OUTPUT.failures.jsonl for records that failed (exit 3).

    Interrupted? Re-run the same command: finished responses come from the cache and are not sent again.

    \b
    Examples:
      itkit simplify alpaca.json -o simple.json --keep-original
      itkit simplify dolly.jsonl -o out.jsonl --base-url http://localhost:11434/v1 --model llama3.1
      itkit simplify chats.jsonl -o simple.jsonl --dry-run
    """
    check_llm_paths(COMMAND, settings, {"SRC": src}, {"-o": output, "--errors": rejects_path(output, on_error, errors)})
    parameters = {
        "src": src,
        "output": output,
        "from": from_.value,
        "to": to.value if to else None,
        "keep_original": keep_original,
        "reject_longer": reject_longer,
        "on_error": on_error.value,
        "prompts_dir": prompts_dir,
    }
    return run_llm_command(
        settings,
        lambda engine: simplify_file(
            src,
            output,
            engine=engine,
            report=RunReport(COMMAND, output, settings, parameters),
            from_format=from_.value,
            to_format=to.value if to else None,
            keep_original=keep_original,
            reject_longer=reject_longer,
            prompts_dir=prompts_dir,
            on_error=on_error.value,
            errors_path=rejects_path(output, on_error, errors),
        ),
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
        f"{result.no_response} without a response (unchanged), {result.failed} failed"
    )
    print_engine_stats(engine)
    if result.failed:
        print_failures(f"{FAILURES_HEADER}: {result.failures_path}", result.failure_reasons)
    print_rejected(result.rejected_input, "input rows", result.errors_path)
    say(f"summary: {result.summary_path}")
