"""The evol-instruct step (``itkit evol-instruct``, a recipe's ``evol-instruct:``): WizardLM's Evol-Instruct."""

from __future__ import annotations

from typing import Any

from itkit.methods.evol_instruct.evolve import DEFAULT_ROUNDS
from itkit.methods.evol_instruct.operations import OPERATION_GROUPS, OPERATION_NAMES, PROMPTS_METHOD
from itkit.methods.evol_instruct.run import COMMAND
from itkit.steps import llm
from itkit.steps import headlines
from itkit.steps.io import ELIMINATED_FILE, Files, StepIO, StepOutcome
from itkit.steps.spec import COMMA, Context, Opt, Step

DEFAULT_SEED = 0
KEEP_CHOICES = ("final", "all")

OPTS = (
    Opt("rounds", int, DEFAULT_ROUNDS, "Rounds of evolution (the paper: 4; WizardLM's code: 1).", ge=1),
    Opt("ops", str, many=COMMA, metavar="OPS", default_text="all six",
        help=f"Operations to draw from: {', '.join(OPERATION_NAMES)}, or {', '.join(OPERATION_GROUPS)}."),
    Opt("keep_rounds", str, "final", "final: each input's last survivor; all: every round's survivors.",
        choices=KEEP_CHOICES, old="keep"),
    Opt("only_evolved", bool, False, "Leave out the input records themselves."),
    Opt("salvage_labels", bool, False,
        "Strip a label such as '#Rewritten Prompt#:' before rule 4 and keep the rest, counted apart "
        "(default: judged as written, as the paper)."),
    Opt("eliminated", bool, file=True, help="Also write each eliminated evolution (rule, rewrite) here (JSONL)."),
)


def prepare(o: Any, ctx: Context) -> tuple[str, ...]:
    """The operations, with every template they need loaded and checked."""
    from itkit.methods.evol_instruct.operations import EvolPrompts, parse_ops

    ops = parse_ops(",".join(o.ops) if o.ops is not None else None)
    EvolPrompts.load(ops, ctx.prompts_dir)
    return ops


def engine_settings(settings: Any) -> Any:
    """The engine runs without --temperature/--top-p: they reach the rewrites and responses only."""
    from itkit.methods.evol_instruct.run import split_sampling

    return split_sampling(settings)[0]


def execute(ops: tuple[str, ...], o: Any, files: Files, engine: Any, settings: Any):
    """``run_evol_instruct``: an :class:`~itkit.methods.evol_instruct.run.EvolFileResult`."""
    from itkit.methods.evol_instruct.run import run_evol_instruct, split_sampling

    seed = settings.seed if settings.seed is not None else DEFAULT_SEED
    params = llm.parameters(
        files, rounds=o.rounds, ops=list(ops), seed=seed, keep_rounds=o.keep_rounds, only_evolved=o.only_evolved,
        salvage_labels=o.salvage_labels, eliminated=files.eliminated,
    )
    return run_evol_instruct(
        files.src,
        files.output,
        engine=engine,
        report=llm.run_report(COMMAND, files, settings, params),
        rounds=o.rounds,
        ops=ops,
        seed=seed,
        keep=o.keep_rounds,
        only_evolved=o.only_evolved,
        sampling=split_sampling(settings)[1],
        salvage_labels=o.salvage_labels,
        prompts_dir=files.prompts_dir,
        **files.record_options(),
        eliminated_path=files.eliminated,
    )


def run(ops: tuple[str, ...], o: Any, io: StepIO) -> StepOutcome:
    settings = io.settings
    eliminated = str(io.folder / ELIMINATED_FILE) if o.eliminated else None
    with llm.open_engine(engine_settings(settings), io) as engine:
        result = engine.rounds(lambda: execute(ops, o, io.files(eliminated=eliminated), engine, settings))
        assert result.evolution is not None
        counts = result.evolution.counts()["records"]
        if result.dry_run:
            outcome = llm.outcome(
                engine, records_in=result.read + result.passed_through, records_out=0, failed=0, partial=False,
                plan=result.plan, passed_through=result.passed_through,
            )
            outcome.notes.append(
                f"{result.read} records x {o.rounds} round(s), up to 3 requests each (rewrite, equality check, response); "
                "the estimate assumes every evolution survives (an upper bound)"
            )
            if counts["skipped"]:
                outcome.notes.append(f"{counts['skipped']} records would be skipped (multi-turn or empty)")
            return outcome
        return llm.outcome(
            engine,
            records_in=result.read + result.passed_through,
            records_out=result.written,
            failed=counts["skipped"],  # records with a failed request are written (parent kept); partial says so
            partial=result.partial,
            plan=None,
            passed_through=result.passed_through,
        ).headed(headlines.evol_headline(result.evolution.counts()))


STEP = Step(
    "evol-instruct",
    "evolve instructions into harder, more diverse ones",
    OPTS,
    panel="Evol-Instruct",
    prepare=prepare,
    execute=execute,
    run=run,
    uses_llm=True,
    prompts_method=PROMPTS_METHOD,
    plumbing=("src", "output", "eliminated", "from", "to", "on_error", "errors"),
    seed_default=str(DEFAULT_SEED),
    engine_settings=engine_settings,
)
