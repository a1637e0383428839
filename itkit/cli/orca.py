"""``itkit orca``: Orca-style explanation tuning (regenerate responses under the Orca system messages)."""

from __future__ import annotations

from collections import Counter
from enum import Enum
from typing import Annotated, Optional

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
from itkit.methods.orca.assign import BY_TYPE, UNIFORM
from itkit.methods.orca.rewrite import OrcaRewriter
from itkit.methods.orca.run import COMMAND, OrcaResult, run_orca


class AssignMode(str, Enum):
    by_type = BY_TYPE
    uniform = UNIFORM


AssignOpt = Annotated[
    AssignMode,
    typer.Option(
        "--assign",
        help="by-type: detect each record's task type (category field, OpenOrca id prefix, or the rules of "
        "prompts/orca/task_types.yaml) and draw among the messages allowed for that type; uniform: draw among all 16.",
    ),
]
SystemMessagesOpt = Annotated[
    Optional[str],
    typer.Option(
        "--system-messages",
        help="Restrict the choice to these message numbers, e.g. 2,5,7 or 1-4,9 (with by-type: the type's "
        "messages within this set, or the whole set when they share none).",
        show_default=False,
    ),
]


def _counts_line(counter: Counter, prefix: str = "") -> str:
    return ", ".join(f"{prefix}{k} x{v}" for k, v in sorted(counter.items(), key=lambda kv: (-kv[1], str(kv[0]))))


@app.command()
@handle_errors
@llm_options
def orca(
    src: Source,
    output: Output = "-",
    from_: FromFormat = InputFormat.auto,
    to: ToFormat = None,
    assign: AssignOpt = AssignMode.by_type,
    system_messages: SystemMessagesOpt = None,
    on_error: OnErrorOpt = OnError.fail,
    errors: ErrorsPath = None,
    *,
    settings: LLMSettings,
    prompts_dir: str | None,
) -> int:
    """Regenerate each response under an Orca system message that asks for an explanation trace.

    Each record gets one of the 16 Orca system messages (#1 is empty), chosen by its task type, deterministically from --seed and the record id. The user query is the record's prompt (instruction + input); a multi-turn record keeps its earlier turns as context and only its final response is regenerated. The message is kept as the record's system prompt; --to openorca writes OpenOrca's layout (id, system_prompt, question, response). Writes OUTPUT.summary.json, and OUTPUT.failures.jsonl for records that failed (exit 3).

    Interrupted? Re-run the same command: finished responses come from the cache and are not sent again.

    \b
    Examples:
      itkit orca dolly.jsonl -o orca.jsonl --to openorca --model gpt-4o-mini
      itkit orca alpaca.json -o explained.json --assign uniform --seed 7
      itkit orca data.jsonl -o out.jsonl --system-messages 2,5,7 --base-url http://localhost:8000/v1
      itkit orca data.jsonl -o out.jsonl --to openorca --dry-run --limit 100
    """
    check_llm_paths(COMMAND, settings, {"SRC": src}, {"-o": output, "--errors": rejects_path(output, on_error, errors)})
    parameters = {
        "src": src,
        "output": output,
        "from": from_.value,
        "to": to.value if to else None,
        "assign": assign.value,
        "system_messages": system_messages,
        "on_error": on_error.value,
        "prompts_dir": prompts_dir,
    }
    rewriter = OrcaRewriter.load(
        settings.model,
        prompts_dir=prompts_dir,
        assign=assign.value,
        system_messages=system_messages,
        seed=settings.seed,
    )
    return run_llm_command(
        settings,
        lambda engine: run_orca(
            src,
            output,
            engine=engine,
            rewriter=rewriter,
            report=RunReport(COMMAND, output, settings, parameters),
            from_format=from_.value,
            to_format=to.value if to else None,
            on_error=on_error.value,
            errors_path=rejects_path(output, on_error, errors),
        ),
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
