"""The simplify step (``itkit simplify``, a recipe's ``simplify:``): simpler, shorter responses."""

from __future__ import annotations

from typing import Any

from itkit.simplify import COMMAND, KEEP_ORIGINAL, METHOD, ON_VIOLATION, RETRY_TEMPLATE_NAME, TEMPLATE_NAME
from itkit.steps import llm
from itkit.steps import headlines
from itkit.steps.io import Files, StepIO, StepOutcome
from itkit.steps.spec import Context, Opt, Step

OPTS = (
    Opt("keep_original", bool, False, "Keep the original response in metadata (original_output)."),
    Opt("reject_longer", bool, False, "Fail a rewrite still longer than the original (default: keep, flagged)."),
    Opt("on_violation", str, KEEP_ORIGINAL, choices=ON_VIOLATION,
        help="A rewrite that still adds a fact or loses the answer after one retry: keep the original response, "
        "flag the rewrite, or fail the record."),
    Opt("allow_code_edits", bool, False, "Let the rewrite change code blocks (default: kept verbatim)."),
)


def prepare(o: Any, ctx: Context) -> None:
    from itkit.templates import load_template

    load_template(METHOD, TEMPLATE_NAME, ctx.prompts_dir)  # a broken template fails before anything runs
    load_template(METHOD, RETRY_TEMPLATE_NAME, ctx.prompts_dir)


def execute(_prepared: None, o: Any, files: Files, engine: Any, settings: Any):
    """``simplify_file``: a :class:`~itkit.simplify.SimplifyResult`."""
    from itkit.simplify import simplify_file

    params = llm.parameters(
        files, keep_original=o.keep_original, reject_longer=o.reject_longer,
        on_violation=o.on_violation, allow_code_edits=o.allow_code_edits,
    )
    return simplify_file(
        files.src,
        files.output,
        engine=engine,
        report=llm.run_report(COMMAND, files, settings, params),
        **files.record_options(),
        keep_original=o.keep_original,
        reject_longer=o.reject_longer,
        on_violation=o.on_violation,
        allow_code_edits=o.allow_code_edits,
        prompts_dir=files.prompts_dir,
    )


def run(prepared: None, o: Any, io: StepIO) -> StepOutcome:
    result, outcome = llm.run_records(io, lambda engine: execute(prepared, o, io.files(), engine, io.settings))
    if result.dry_run and result.no_response:
        outcome.notes.append(f"records without a response (passed through, no request): {result.no_response}")
    return outcome if result.dry_run else outcome.headed(headlines.simplify_headline(result))


STEP = Step(
    "simplify",
    "rewrite responses into simpler, shorter ones",
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
