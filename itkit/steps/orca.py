"""The orca step (``itkit orca``, a recipe's ``orca:``): responses regenerated with explanation traces."""

from __future__ import annotations

from typing import Any

from itkit.methods.orca.assign import BY_TYPE, UNIFORM
from itkit.methods.orca.rewrite import METHOD
from itkit.methods.orca.run import COMMAND
from itkit.steps import llm
from itkit.steps import headlines
from itkit.steps.io import Files, StepIO, StepOutcome
from itkit.steps.spec import Context, Opt, Step


def number_set(value: Any) -> Any:
    """``system_messages``: ``"2,5,7"``, ``"1-4,9"`` or ``[2, 5, 7]`` in a recipe, given to the library as a string."""
    if isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return ",".join(str(v) for v in value)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


OPTS = (
    Opt("assign", str, BY_TYPE, "by-type: messages allowed for the task type; uniform: all 16.", choices=(BY_TYPE, UNIFORM)),
    Opt("system_messages", str, recipe_value=number_set, metavar="NUMBERS", help="Only these message numbers, e.g. 2,5,7 or 1-4,9.",
        default_text="all 16"),
)


def prepare(o: Any, ctx: Context):
    """The rewriter: templates, task-type rules and system messages loaded and checked."""
    from itkit.methods.orca.rewrite import OrcaRewriter

    return OrcaRewriter.load(
        ctx.settings.model,
        prompts_dir=ctx.prompts_dir,
        assign=o.assign,
        system_messages=o.system_messages,
        seed=ctx.settings.seed,
    )


def execute(rewriter: Any, o: Any, files: Files, engine: Any, settings: Any):
    """``run_orca``: an :class:`~itkit.methods.orca.run.OrcaResult`."""
    from itkit.methods.orca.run import run_orca

    params = llm.parameters(files, assign=o.assign, system_messages=o.system_messages)
    return run_orca(
        files.src,
        files.output,
        engine=engine,
        rewriter=rewriter,
        report=llm.run_report(COMMAND, files, settings, params),
        **files.record_options(),
    )


def run(rewriter: Any, o: Any, io: StepIO) -> StepOutcome:
    result, outcome = llm.run_records(io, lambda engine: execute(rewriter, o, io.files(), engine, io.settings))
    if result.dry_run and result.empty_prompts:
        outcome.notes.append(f"records with an empty prompt (not sent): {result.empty_prompts}")
    return outcome if result.dry_run else outcome.headed(headlines.orca_headline(result))


STEP = Step(
    "orca",
    "regenerate responses with explanation traces",
    OPTS,
    panel="Orca",
    prepare=prepare,
    execute=execute,
    run=run,
    uses_llm=True,
    prompts_method=METHOD,
    plumbing=("src", "output", "from", "to", "on_error", "errors"),
    seed_default="0",
)
