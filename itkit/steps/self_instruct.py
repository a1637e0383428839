"""The self-instruct step (``itkit self-instruct``, a recipe's ``self-instruct:``): new tasks from seed tasks.

In a run, the step's input records are the seed tasks and its output is the new tasks.
"""

from __future__ import annotations

from typing import Any

from itkit.methods.self_instruct.filters import MAX_WORDS, MIN_WORDS, MOST_SIMILAR, ROUGE_THRESHOLD
from itkit.methods.self_instruct.generate import ALPACA_TASKS, BATCH_SIZE, DEFAULT_SEED, MACHINE_DEMOS, STYLES
from itkit.methods.self_instruct.instances import MAX_INSTANCES
from itkit.methods.self_instruct.prompts import METHOD
from itkit.methods.self_instruct.run import COMMAND, DEFAULT_TARGET
from itkit.steps import llm
from itkit.steps import headlines
from itkit.steps.io import Files, StepIO, StepOutcome
from itkit.steps.spec import COMMA, REPEAT, Context, Opt, Step

PANEL = "Self-Instruct"
INSTANCES_PANEL = "Self-Instruct instances (self-instruct style)"
FILTERS_PANEL = "Self-Instruct filters"

OPTS = (
    Opt("num", int, short="-n", required=True, help="How many new instructions to keep."),
    Opt("style", str, STYLES[0], "self-instruct: 8 demos, then instances; alpaca: 3 demos, 20 tasks per call.",
        choices=STYLES),
    Opt("instances", bool, True, "Classify each task and generate its instances.",
        flag="--instances/--no-instances", panel=INSTANCES_PANEL),
    Opt("batch_size", int, BATCH_SIZE, "Generation prompts per round, sent concurrently."),
    Opt("demos", int, default_text="8 self-instruct, 3 alpaca", help="Demo tasks per prompt."),
    Opt("machine_demos", int, MACHINE_DEMOS, "self-instruct style: demos from the generated pool."),
    Opt("num_tasks", int, ALPACA_TASKS, "alpaca style: tasks each prompt asks for."),
    Opt("max_prompts", int, old="limit", default_text="4 per instruction wanted, plus a round",
        help="Generation prompts to send at most."),
    Opt("max_instances", int, MAX_INSTANCES, "Instances kept per task (a seeded random sample).", panel=INSTANCES_PANEL),
    Opt("prepare", str, many=COMMA, default_text="all", panel=INSTANCES_PANEL,
        help="The final training-pair stage: seeds, strip-prefixes, dedup (or all, none)."),
    Opt("min_words", int, MIN_WORDS, "Drop instructions with this many words or fewer.", panel=FILTERS_PANEL),
    Opt("max_words", int, MAX_WORDS, "Drop instructions with more words than this.", panel=FILTERS_PANEL),
    Opt("blacklist", str, many=REPEAT, metavar="WORD", panel=FILTERS_PANEL,
        help="Another whole-word keyword that drops an instruction (repeatable)."),
    Opt("rouge_threshold", float, ROUGE_THRESHOLD, "Drop an instruction with a ROUGE-L F1 above this.",
        panel=FILTERS_PANEL),
    Opt("most_similar", int, MOST_SIMILAR, "Most similar instructions listed in metadata (0: none).",
        panel=FILTERS_PANEL),
)


def prepare(o: Any, ctx: Context):
    """The run's :class:`~itkit.methods.self_instruct.generate.SelfInstructConfig`, its templates checked."""
    from itkit.methods.self_instruct.options import config_from_options
    from itkit.methods.self_instruct.prompts import SelfInstructPrompts

    config = config_from_options(**o.model_dump(), seed=ctx.settings.seed)
    SelfInstructPrompts(config.style, ctx.prompts_dir, instances=config.wants_instances)
    return config


def execute(config: Any, o: Any, files: Files, engine: Any, settings: Any):
    """``self_instruct_file``: a :class:`~itkit.methods.self_instruct.run.SelfInstructResult`."""
    from itkit.methods.self_instruct.options import report_parameters
    from itkit.methods.self_instruct.run import self_instruct_file

    params = report_parameters(
        config,
        seeds=files.src,
        output=files.output,
        from_format=files.from_format,
        to_format=files.to_format or DEFAULT_TARGET,
        on_error=files.on_error,
        prompts_dir=files.prompts_dir,
    )
    return self_instruct_file(
        files.src,
        files.output,
        engine=engine,
        config=config,
        report=llm.run_report(COMMAND, files, settings, params),
        from_format=files.from_format,
        to_format=files.to_format,
        prompts_dir=files.prompts_dir,
        on_error=files.on_error,
        errors_path=files.errors_path,
    )


def run(config: Any, o: Any, io: StepIO) -> StepOutcome:
    with llm.open_engine(io.settings, io) as engine:
        result = engine.rounds(lambda: execute(config, o, io.files(), engine, io.settings))
        outcome = llm.outcome(
            engine, records_in=result.seeds, records_out=result.written, failed=result.failed,
            partial=result.partial, plan=result.plan,
        )
    if result.dry_run:
        outcome.notes.append(f"the {result.seeds} input records are the seed tasks; {o.num} new instructions wanted")
    elif result.kept < result.requested:
        outcome.notes.append(f"kept {result.kept} of the {result.requested} instructions wanted")
    return outcome if result.dry_run else outcome.headed(headlines.self_instruct_headline(result))


STEP = Step(
    "self-instruct",
    "generate new tasks from the records as seeds",
    OPTS,
    panel=PANEL,
    prepare=prepare,
    run=run,
    execute=execute,
    uses_llm=True,
    prompts_method=METHOD,
    plumbing=("seeds", "output", "from", "to", "on_error", "errors"),
    seed_default=str(DEFAULT_SEED),
    llm_exclude=("limit",),
)
