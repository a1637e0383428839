"""``itkit self-instruct``: generate new tasks from seed tasks (Self-Instruct, or Alpaca's variant)."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, List, Optional

import typer

from itkit.cli.app import app, handle_errors
from itkit.cli.llm_options import llm_options
from itkit.cli.llm_summary import check_llm_paths, print_engine_stats, print_failures, print_rejected, rejects_path, run_llm_command, say, where
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
from itkit.llm.report import RunReport
from itkit.llm.settings import LLMSettings
from itkit.methods.self_instruct.filters import FILTER_DESCRIPTIONS, FILTER_NAMES, MAX_WORDS, MIN_WORDS, MOST_SIMILAR, ROUGE_THRESHOLD
from itkit.methods.self_instruct.generate import ALPACA_TASKS, BATCH_SIZE, MACHINE_DEMOS
from itkit.methods.self_instruct.instances import MAX_INSTANCES
from itkit.methods.self_instruct.options import config_from_options, report_parameters
from itkit.methods.self_instruct.run import COMMAND, DEFAULT_TARGET, TASKS_SUFFIX, SelfInstructResult, self_instruct_file

PANEL = "Self-Instruct"


class Style(str, Enum):
    self_instruct = "self-instruct"
    alpaca = "alpaca"


Seeds = Annotated[
    str,
    typer.Argument(
        help="Seed tasks: Self-Instruct's seed_tasks.jsonl as-is, or any instruction dataset itkit reads (.json, .jsonl, .parquet, .csv, hf://...).",
        show_default=False,
    ),
]
Num = Annotated[int, typer.Option("--num", "-n", help="How many new instructions to keep.", rich_help_panel=PANEL)]
StyleOpt = Annotated[
    Style,
    typer.Option(
        "--style",
        help="self-instruct: 8 demos (6 seeds + 2 generated), numbered-list continuation, then classification and instances; alpaca: 3 seed demos, up to 20 tasks with input and output per call.",
        rich_help_panel=PANEL,
    ),
]
Instances = Annotated[
    bool,
    typer.Option(
        "--instances/--no-instances",
        help="self-instruct style: classify each new instruction and generate its instances (--no-instances: write the instructions alone, without output).",
        rich_help_panel=PANEL,
    ),
]
BatchSize = Annotated[
    int,
    typer.Option("--batch-size", help="Generation prompts per round, sent concurrently; the demo pool grows between rounds.", rich_help_panel=PANEL),
]
Demos = Annotated[
    Optional[int],
    typer.Option("--demos", help="Demo tasks per prompt \\[default: 8 self-instruct, 3 alpaca].", rich_help_panel=PANEL, show_default=False),
]
MachineDemos = Annotated[
    int,
    typer.Option("--machine-demos", help="self-instruct style: how many of the demos come from the generated pool once it has some.", rich_help_panel=PANEL),
]
NumTasks = Annotated[
    int,
    typer.Option("--num-tasks", help="alpaca style: the length of the list each prompt asks for.", rich_help_panel=PANEL),
]
MaxInstances = Annotated[
    int,
    typer.Option("--max-instances", help="self-instruct style: instances kept per task.", rich_help_panel=PANEL),
]
MinWords = Annotated[
    int,
    typer.Option("--min-words", help="Filter: drop instructions with this many words or fewer.", rich_help_panel=PANEL),
]
MaxWords = Annotated[
    int,
    typer.Option("--max-words", help="Filter: drop instructions with more words than this.", rich_help_panel=PANEL),
]
Blacklist = Annotated[
    Optional[List[str]],
    typer.Option(
        "--blacklist",
        help="Filter: one more whole-word keyword (case-insensitive) to drop instructions for; repeatable. Added to the style's list.",
        rich_help_panel=PANEL,
        show_default=False,
    ),
]
RougeThreshold = Annotated[
    float,
    typer.Option("--rouge-threshold", help="Filter: drop an instruction whose ROUGE-L F1 against a seed or kept instruction is above this.", rich_help_panel=PANEL),
]
ToFormat = Annotated[
    Optional[OutputFormat],
    typer.Option("--to", help=f"Output record format \\[default: {DEFAULT_TARGET}; seed_tasks writes one record per task with its instances].", show_default=False),
]
MostSimilar = Annotated[
    int,
    typer.Option("--most-similar", help="List this many most similar instructions (with ROUGE-L scores) in each record's metadata; 0: none.", rich_help_panel=PANEL),
]


@app.command(name="self-instruct")
@handle_errors
@llm_options
def self_instruct(
    seeds: Seeds,
    num: Num,
    output: Output = "-",
    style: StyleOpt = Style.self_instruct,
    from_: FromFormat = InputFormat.auto,
    to: ToFormat = None,
    instances: Instances = True,
    batch_size: BatchSize = BATCH_SIZE,
    demos: Demos = None,
    machine_demos: MachineDemos = MACHINE_DEMOS,
    num_tasks: NumTasks = ALPACA_TASKS,
    max_instances: MaxInstances = MAX_INSTANCES,
    min_words: MinWords = MIN_WORDS,
    max_words: MaxWords = MAX_WORDS,
    blacklist: Blacklist = None,
    rouge_threshold: RougeThreshold = ROUGE_THRESHOLD,
    most_similar: MostSimilar = MOST_SIMILAR,
    on_error: OnErrorOpt = OnError.fail,
    errors: ErrorsPath = None,
    *,
    settings: LLMSettings,
    prompts_dir: str | None,
) -> int:
    """Generate new instruction-tuning tasks from seed tasks (Self-Instruct, Wang et al. 2022).

    Each prompt shows demo tasks and asks for more; candidates pass the method's filters in order (word count, keyword blacklist, "Write a program" prefix, punctuation/non-ASCII start, ROUGE-L > 0.7 against the seeds and every kept instruction) until --num are kept. The self-instruct style then asks whether each task is classification (Yes/No) and generates up to 5 instances for it (label first for classification tasks, input first otherwise), cleaned by the method's rules: one record per instance. The alpaca style gets instruction, input and output in one go: one record per task.

    Records (default --to alpaca; --to seed_tasks: one record per task with all its instances) are numbered self-instruct-N (-M for the instance) and carry provenance in their metadata (style, round, prompt, demo ids, model, template hash). --limit caps the number of generation prompts (default: 4 per instruction wanted, plus one round). --seed makes the demo sampling reproducible; a re-run with the same cache gives the same output. Writes OUTPUT.summary.json (candidates removed by each filter), OUTPUT.tasks.jsonl (each kept instruction with its most similar instructions and ROUGE-L scores) and OUTPUT.failures.jsonl (raw responses); exit 3 when a request failed or fewer than --num were kept.

    \b
    Examples:
      itkit self-instruct seed_tasks.jsonl -o new.jsonl --num 200
      itkit self-instruct seed_tasks.jsonl -o alpaca.json --num 1000 --style alpaca
      itkit self-instruct dolly.jsonl -o tasks.jsonl --num 50 --no-instances --seed 7
      itkit self-instruct seed_tasks.jsonl -o new.jsonl --num 100 --dry-run
    """
    check_llm_paths(
        COMMAND,
        settings,
        {"SEEDS": seeds},
        {"-o": output, "--errors": rejects_path(output, on_error, errors)},
        sidecars={"the tasks file": TASKS_SUFFIX},
    )
    config = config_from_options(
        num,
        style=style.value,
        seed=settings.seed,
        batch_size=batch_size,
        demos=demos,
        machine_demos=machine_demos,
        num_tasks=num_tasks,
        instances=instances,
        max_instances=max_instances,
        max_prompts=settings.limit,
        min_words=min_words,
        max_words=max_words,
        blacklist=blacklist,
        rouge_threshold=rouge_threshold,
        most_similar=most_similar,
    )
    target = to.value if to else None
    parameters = report_parameters(
        config,
        seeds=seeds,
        output=output,
        from_format=from_.value,
        to_format=target or DEFAULT_TARGET,
        on_error=on_error.value,
        prompts_dir=prompts_dir,
    )
    return run_llm_command(
        settings,
        lambda engine: self_instruct_file(
            seeds,
            output,
            engine=engine,
            config=config,
            report=RunReport(COMMAND, output, settings, parameters),
            from_format=from_.value,
            to_format=target,
            prompts_dir=prompts_dir,
            on_error=on_error.value,
            errors_path=rejects_path(output, on_error, errors),
        ),
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
    if "tasks" in counts:
        tasks, inst = counts["tasks"], counts["instances"]
        say(
            f"instances: {inst['kept']} kept of {inst['parsed']} generated; "
            f"classification {counts['classification']['yes']} yes / {counts['classification']['no']} no; "
            f"tasks with instances {tasks['with_instances']}, dropped {sum(tasks['dropped'].values())}, failed {tasks['failed']}"
        )
        for reason, n in inst["dropped"].items():
            say(f"  {n:>6}  instances dropped: {reason}")
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
