"""``itkit orca``: Orca-style explanation tuning (regenerate responses under the Orca system messages)."""

from __future__ import annotations

from collections import Counter
from enum import Enum
from typing import Annotated, Optional

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
from itkit.methods.orca.assign import BY_TYPE, UNIFORM
from itkit.methods.orca.rewrite import OrcaRewriter
from itkit.methods.orca.run import COMMAND, run_orca


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
    skip = on_error is OnError.skip
    errors_path = errors_path_for(output, errors) if skip else None
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
    with open_engine(settings) as engine:
        result = run_orca(
            src,
            output,
            engine=engine,
            rewriter=rewriter,
            report=RunReport(COMMAND, output, settings, parameters),
            from_format=from_.value,
            to_format=to.value if to else None,
            on_error=on_error.value,
            errors_path=errors_path,
        )
        if result.dry_run:
            assert result.plan is not None
            for line in result.plan.describe(engine.stats.price, settings.model):
                out_console.print(line, markup=False, highlight=False)
            out_console.print(f"system messages: {_counts_line(result.by_message, '#')}", markup=False)
            out_console.print(f"task types: {_counts_line(result.by_type)}", markup=False)
            if result.empty_prompts:
                out_console.print(f"records with an empty prompt (not sent): {result.empty_prompts}", markup=False)
            return 0
        if not settings.quiet:
            where = "stdout" if output == "-" else output
            err_console.print(
                f"orca: {result.read} records ({result.source_format} -> {result.target_format}) to {where}: "
                f"{result.written} regenerated, {result.failed} failed",
                markup=False,
            )
            err_console.print(f"  system messages: {_counts_line(result.by_message, '#')}", markup=False)
            err_console.print(f"  task types: {_counts_line(result.by_type)}", markup=False)
            if result.fallbacks:
                err_console.print(
                    f"  {result.fallbacks} records had no message of their type in --system-messages: drawn from the whole set",
                    markup=False,
                )
            for line in engine.stats.describe():
                err_console.print(f"  {line}", markup=False)
            if result.failed:
                err_console.print(f"failures with reasons and raw responses: {result.failures_path}", markup=False)
                for reason, n in list(result.failure_reasons.items())[:5]:
                    err_console.print(f"  {n:>6}  {reason}", markup=False)
            if result.rejected:
                err_console.print(f"{result.rejected} input rows rejected, written to {result.errors_path}", markup=False)
            err_console.print(f"summary: {result.summary_path}", markup=False)
    return EXIT_PARTIAL if result.partial else 0
