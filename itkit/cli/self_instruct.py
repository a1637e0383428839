"""``itkit self-instruct``: generate new tasks from seed tasks (Self-Instruct, or Alpaca's variant)."""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer

from itkit.cli.root import app, handle_errors
from itkit.cli.llm_summary import cli_files, print_engine_stats, print_failures, print_rejected, run_llm_command, say, where
from itkit.cli.step_options import step_command
from itkit.cli.options import (
    ErrorsPath,
    FromFormat,
    InputFormat,
    OnError,
    OnErrorOpt,
    Output,
    OutputFormat,
)
from itkit.llm.engine import Engine
from itkit.llm.settings import LLMSettings
from itkit.methods.self_instruct.filters import FILTER_DESCRIPTIONS, FILTER_NAMES
from itkit.methods.self_instruct.run import DEFAULT_TARGET, TASKS_SUFFIX, SelfInstructResult
from itkit.steps.self_instruct import STEP as SELF_INSTRUCT
from itkit.steps.spec import PANEL_IO, Context


Seeds = Annotated[
    str,
    typer.Argument(
        help="Seed tasks: Self-Instruct's seed_tasks.jsonl, or any dataset itkit reads.",
        metavar="SEEDS",
        show_default=False,
    ),
]
ToFormat = Annotated[
    Optional[OutputFormat],
    typer.Option("--to", metavar="FORMAT", help=f"Output record format (seed_tasks: one record per task with its instances).  \\[default: {DEFAULT_TARGET}]", show_default=False, rich_help_panel=PANEL_IO),
]
@app.command(name="self-instruct")
@handle_errors
@step_command(SELF_INSTRUCT)
def self_instruct(
    seeds: Seeds,
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
    """Generate new instruction-tuning tasks from seed tasks (Self-Instruct, Wang et al. 2022).

    Each prompt shows demo tasks and asks for more; candidates pass the method's filters (length, keywords, ROUGE-L novelty) until --num are kept. The self-instruct style then classifies each task, generates its instances and prepares them as training pairs (--prepare): one record per instance; the alpaca style gets instruction, input and output at once. Writes OUTPUT.summary.json, OUTPUT.tasks.jsonl and OUTPUT.failures.jsonl; exit 3 when a request failed or fewer than --num were kept. Details: README, "itkit self-instruct".

    \b
    Examples:
      itkit self-instruct seed_tasks.jsonl -o new.jsonl --num 200
      itkit self-instruct seed_tasks.jsonl -o alpaca.json -n 1000 --style alpaca
      itkit self-instruct dolly.jsonl -o tasks.jsonl -n 50 --no-instances
      itkit self-instruct seed_tasks.jsonl -o new.jsonl --num 100 --dry-run
    """
    config = SELF_INSTRUCT.prepare(options, Context(settings, prompts_dir, cli=True))
    files = cli_files(seeds, output, from_, to, on_error, errors, prompts_dir, command=SELF_INSTRUCT.name, settings=settings, sidecars={"the_tasks_file": TASKS_SUFFIX})
    return run_llm_command(
        settings,
        lambda engine: SELF_INSTRUCT.execute(config, options, files, engine, settings),
        summary=lambda result, engine: _print_summary(result, output, engine),
    )


def _print_summary(result: SelfInstructResult, output: str, engine: Engine) -> None:
    counts = result.counts
    say(
        f"self-instruct: kept {result.kept} of {result.requested} instructions wanted "
        f"({counts['candidates']} candidates from {counts['prompts']} prompts, {result.seeds} seeds; stopped: {counts['stopped']})"
    )
    filtered = counts["filtered"]
    for name in FILTER_NAMES:
        say(f"  {filtered[name]:>6}  removed by {name} ({FILTER_DESCRIPTIONS[name]})")
    if counts["unused_after_target"]:
        say(f"  {counts['unused_after_target']:>6}  not needed (--num reached)")
    if counts["responses_cut_off"]:
        say(f"  {counts['responses_cut_off']} responses cut off by the length limit (discarded, as the method does)")
    for reason, n in counts.get("rejected_blocks", {}).items():
        if n:
            say(f"  {n:>6}  blocks rejected by the parser: {reason}")
    if "tasks" in counts:
        tasks, inst = counts["tasks"], counts["instances"]
        say(
            f"instances: {inst['kept']} kept of {inst['parsed']} generated; "
            f"classification {counts['classification']['yes']} yes / {counts['classification']['no']} no; "
            f"tasks with instances {tasks['with_instances']}, dropped {sum(tasks['dropped'].values())}, failed {tasks['failed']}"
        )
        for reason, n in inst["dropped"].items():
            say(f"  {n:>6}  instances dropped: {reason}")
    if "prepare" in counts:
        prep = counts["prepare"]
        say(
            f"training pairs ({', '.join(prep['parts'])}): {prep['seed_instances_added']} seed instances added, "
            f"{prep['prefixes_stripped']} field names stripped, {prep['duplicates_removed']} duplicates removed"
        )
    say(f"wrote {result.written} records ({result.seed_format} seeds -> {result.target_format}) to {where(output)}")
    print_engine_stats(engine)
    if result.failed:
        print_failures(
            f"{result.failed} failed requests, with reasons and raw responses: {result.failures_path}",
            result.failure_reasons,
        )
    print_rejected(result.rejected_input, "seed rows", result.errors_path)
    say(f"tasks (most similar instructions, fate of each): {result.tasks_path}")
    say(f"summary: {result.summary_path}")
