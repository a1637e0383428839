"""The score step (``itkit score``, a recipe's ``score:``): LLM-as-judge scores in each record's metadata."""

from __future__ import annotations

from typing import Any

from itkit.errors import UsageError
from itkit.steps import headlines, llm
from itkit.steps.io import Files, StepIO, StepOutcome
from itkit.steps.spec import COMMA, REPEAT, Context, Opt, Step

METHOD = "score"
COMMAND = "score"
DEFAULT_SCORER = "quality"

OPTS = (
    Opt("scorer", str, many=COMMA, metavar="NAMES", default_text=f"{DEFAULT_SCORER} (none with --scorer-file)",
        help="Scorers by name: quality, complexity, or a file of prompts/score/ (--prompts-dir) (comma-separated)."),
    Opt("scorer_file", str, many=REPEAT, metavar="PATH", help="A scorer of one's own: a prompt file (repeatable)."),
)


def prepare(o: Any, ctx: Context) -> list:
    """The scorers, loaded and checked (names, variables, scale) before anything is read or sent."""
    from itkit.methods.score.scorers import builtin_scorers, load_scorers

    files = [ctx.resolve(f) for f in o.scorer_file or []]
    names = list(o.scorer or ([] if files else [DEFAULT_SCORER]))
    known = builtin_scorers(ctx.prompts_dir)
    for name in names:
        if name not in known:
            where = f"{ctx.name('prompts_dir')}'s score/ folder" if ctx.prompts_dir else "prompts/score/"
            raise UsageError(
                f"no scorer '{name}' in {where}; known: {', '.join(known)}; "
                f"or give a prompt file of your own with {ctx.name('scorer_file')}"
            )
    return load_scorers(names, files, ctx.prompts_dir)


def reads(o: Any, resolve) -> list[str]:
    """The scorer files of one's own (their sha256 goes into the run fingerprint)."""
    return [resolve(f) for f in o.scorer_file or []]


def execute(scorers: list, o: Any, files: Files, engine: Any, settings: Any):
    """``score_file``: a :class:`~itkit.methods.score.run.ScoreResult`."""
    from itkit.methods.score.run import score_file

    params = llm.parameters(files, scorers={s.name: s.template.ref for s in scorers})
    return score_file(
        files.src,
        files.output,
        engine=engine,
        scorers=scorers,
        report=llm.run_report(COMMAND, files, settings, params),
        **files.record_options(),
    )


def run(scorers: list, o: Any, io: StepIO) -> StepOutcome:
    result, outcome = llm.run_records(io, lambda engine: execute(scorers, o, io.files(), engine, io.settings))
    if result.dry_run:
        return outcome
    outcome.notes.extend(result.not_scored_lines())
    return outcome.headed(headlines.score_headline(result))


STEP = Step(
    "score",
    "LLM-as-judge scores (quality, complexity...) in each record's metadata",
    OPTS,
    panel="Scoring",
    prepare=prepare,
    execute=execute,
    run=run,
    reads=reads,
    uses_llm=True,
    prompts_method=METHOD,
    plumbing=("src", "output", "from", "to", "on_error", "errors"),
    seed_default="none: not sent",
)
