"""The decontaminate step (``itkit decontaminate``, a recipe's ``decontaminate:``): remove benchmark leaks."""

from __future__ import annotations

from typing import Any

from itkit.decontaminate.benchmarks import BUILTIN
from itkit.decontaminate.pipeline import DEFAULT_N, DEFAULT_THRESHOLD, MODES, DecontaminateOptions
from itkit.errors import UsageError
from itkit.steps.io import REMOVED_FILE, SUMMARY_FILE, Files, StepIO, StepOutcome, nonzero, write_json
from itkit.steps.spec import COMMA, REPEAT, Context, Opt, Step

PANEL = "Decontamination"

OPTS = (
    Opt("against", str, many=REPEAT,
        help=f"A benchmark: any itkit source, a rows file with --bench-field, or {', '.join(BUILTIN)} (one or more)."),
    Opt("bench_field", str, many=COMMA, help="The benchmark rows' question field and optional answer field (question,answer)."),
    Opt("mode", str, "ngram", "ngram: any shared n-gram (GPT-3); coverage: share of an item's n-grams (Tulu 3).",
        choices=MODES),
    Opt("ngram", int, default_text=f"{DEFAULT_N['ngram']} (ngram), {DEFAULT_N['coverage']} (coverage)",
        help="Words per n-gram.", ge=1),
    Opt("threshold", float, DEFAULT_THRESHOLD, "--mode coverage: the share at or above which a record is removed.",
        ge=0.0, le=1.0),
)


def prepare(o: Any, ctx: Context) -> tuple[DecontaminateOptions, list[str]]:
    if not o.against:
        raise UsageError(f"give at least one benchmark with {ctx.name('against')}")
    if o.mode != "coverage" and o.threshold != DEFAULT_THRESHOLD:
        raise UsageError(f"{ctx.name('threshold')} applies to {ctx.setting('mode', 'coverage')}")
    if o.bench_field is not None and not 1 <= len(o.bench_field) <= 2:
        raise UsageError(f"{ctx.name('bench_field')} takes a question field and optionally an answer field")
    options = DecontaminateOptions(mode=o.mode, n=o.ngram, threshold=o.threshold)
    options.validate()
    against = [b if b in BUILTIN or b.startswith("hf://") else ctx.resolve(b) for b in o.against]
    return options, against


def reads(o: Any, resolve) -> list[str]:
    """The benchmark files (a built-in's file when its package is installed; hf:// datasets are not files)."""
    files = []
    for b in o.against or []:
        if b in BUILTIN:
            try:
                files.append(BUILTIN[b]()[0])
            except UsageError:
                continue
        elif not b.startswith("hf://"):
            files.append(resolve(b))
    return files


def execute(prepared: tuple[DecontaminateOptions, list[str]], o: Any, files: Files):
    """``decontaminate_file`` with the step's benchmarks: a :class:`~itkit.decontaminate.DecontaminateSummary`."""
    from itkit.decontaminate import decontaminate_file

    options, against = prepared
    return decontaminate_file(
        files.src,
        files.output,
        against=against,
        bench_fields=o.bench_field,
        options=options,
        from_format=files.from_format,
        to_format=files.to_format,
        report=files.report,
        on_error=files.on_error,
        errors=files.errors_path,
        progress=files.progress,
    )


def run(prepared: tuple[DecontaminateOptions, list[str]], o: Any, io: StepIO) -> StepOutcome:
    summary = execute(prepared, o, io.files(report=str(io.folder / REMOVED_FILE)))
    write_json(io.folder / SUMMARY_FILE, summary.as_dict())
    return StepOutcome(
        records_in=summary.rows,
        records_out=summary.kept,
        removed=nonzero({f"contaminated ({side})": n for side, n in summary.removed_by_side.items()}),
        rejected=summary.rejected,
        partial=bool(summary.rejected),
    )


STEP = Step(
    "decontaminate",
    "remove records that contain benchmark items (itkit decontaminate)",
    OPTS,
    panel=PANEL,
    prepare=prepare,
    execute=execute,
    run=run,
    reads=reads,
    plumbing=("src", "output", "from", "to", "report", "on_error", "errors", "quiet", "json"),
)
