"""The simplify step (``itkit simplify``, a recipe's ``simplify:``): simpler, shorter responses."""

from __future__ import annotations

from typing import Any

from itkit.simplify import COMMAND, METHOD, TEMPLATE_NAME
from itkit.steps import llm
from itkit.steps.io import Files, StepIO, StepOutcome
from itkit.steps.spec import Context, Opt, Step

OPTS = (
    Opt("keep_original", bool, False, "Keep the original response in metadata (original_output)."),
    Opt("reject_longer", bool, False, "Fail a rewrite still longer than the original (default: keep, flagged)."),
)


def prepare(o: Any, ctx: Context) -> None:
    from itkit.templates import load_template

    load_template(METHOD, TEMPLATE_NAME, ctx.prompts_dir)  # a broken template fails before anything runs


def execute(_prepared: None, o: Any, files: Files, engine: Any, settings: Any):
    """``simplify_file``: a :class:`~itkit.simplify.SimplifyResult`."""
    from itkit.simplify import simplify_file

    params = llm.parameters(files, keep_original=o.keep_original, reject_longer=o.reject_longer)
    return simplify_file(
        files.src,
        files.output,
        engine=engine,
        report=llm.run_report(COMMAND, files, settings, params),
        from_format=files.from_format,
        to_format=files.to_format,
        keep_original=o.keep_original,
        reject_longer=o.reject_longer,
        prompts_dir=files.prompts_dir,
        on_error=files.on_error,
        errors_path=files.errors_path,
    )


def run(prepared: None, o: Any, io: StepIO) -> StepOutcome:
    with llm.open_engine(io.settings, io) as engine:
        result = execute(prepared, o, io.files(), engine, io.settings)
        outcome = llm.outcome(
            engine, records_in=result.read, records_out=result.written, failed=result.failed,
            partial=result.partial, plan=result.plan,
        )
    if result.dry_run and result.no_response:
        outcome.notes.append(f"records without a response (passed through, no request): {result.no_response}")
    return outcome


STEP = Step(
    "simplify",
    "rewrite responses into simpler, shorter ones (itkit simplify)",
    OPTS,
    panel="Simplify",
    prepare=prepare,
    execute=execute,
    run=run,
    uses_llm=True,
    prompts_method=METHOD,
    plumbing=("src", "output", "from", "to", "on_error", "errors"),
    seed_default="none: not sent",
)
