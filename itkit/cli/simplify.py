"""``itkit simplify``: rewrite responses into simpler, shorter ones with an LLM."""

from __future__ import annotations

from typing import Annotated

import typer

from itkit.cli.app import app, err_console, handle_errors, out_console
from itkit.cli.llm_options import llm_options
from itkit.cli.options import (
    ErrorsPath,
    FromFormat,
    InputFormat,
    OnError,
    OnErrorOpt,
    Output,
    Source,
    ToFormat,
    errors_path_for,
)
from itkit.errors import EXIT_PARTIAL
from itkit.llm.engine import open_engine
from itkit.llm.report import RunReport
from itkit.llm.settings import LLMSettings
from itkit.simplify import COMMAND, simplify_file

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
    skip = on_error is OnError.skip
    errors_path = errors_path_for(output, errors) if skip else None
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
    with open_engine(settings) as engine:
        result = simplify_file(
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
            errors_path=errors_path,
        )
        if result.dry_run:
            assert result.plan is not None
            for line in result.plan.describe(engine.stats.price, settings.model):
                out_console.print(line, markup=False, highlight=False)
            if result.no_response:
                out_console.print(f"records without a response (passed through, no request): {result.no_response}", markup=False)
            return 0
        if not settings.quiet:
            where = "stdout" if output == "-" else output
            err_console.print(
                f"simplify: {result.read} records ({result.source_format} -> {result.target_format}) to {where}: "
                f"{result.simplified} simplified, {result.longer_kept} kept longer (flagged), "
                f"{result.no_response} without a response (unchanged), {result.failed} failed",
                markup=False,
            )
            for line in engine.stats.describe():
                err_console.print(f"  {line}", markup=False)
            if result.failed:
                err_console.print(f"failures with reasons and raw responses: {result.failures_path}", markup=False)
                for reason, n in list(result.failure_reasons.items())[:5]:
                    err_console.print(f"  {n:>6}  {reason}", markup=False)
            if result.rejected_input:
                err_console.print(f"{result.rejected_input} input rows rejected, written to {result.errors_path}", markup=False)
            err_console.print(f"summary: {result.summary_path}", markup=False)
    return EXIT_PARTIAL if result.partial else 0
