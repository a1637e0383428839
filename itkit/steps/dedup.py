"""The dedup step (``itkit dedup``, a recipe's ``dedup:``): exact, MinHash near and ROUGE-L duplicates."""

from __future__ import annotations

import sys
from typing import Any

from itkit.dedup.common import IGNORE_COMMON_CHOICES
from itkit.dedup.minhash import DEFAULT_JACCARD, DEFAULT_NGRAM, DEFAULT_NUM_PERM
from itkit.dedup.pipeline import KEEP_CHOICES, NUMBERS_CHOICES, DedupOptions
from itkit.dedup.ray_executor import EXECUTORS, check_executor
from itkit.dedup.report import DEFAULT_WARN_SHARE, REPORT_CHARS
from itkit.dedup.rouge import DEFAULT_ROUGE_THRESHOLD
from itkit.dedup.texts import ON_CHOICES
from itkit.errors import UsageError
from itkit.steps.io import REMOVED_FILE, SUMMARY_FILE, Files, StepIO, StepOutcome, nonzero, write_json
from itkit.steps.spec import Context, Opt, Step

PANEL = "Deduplication"

OPTS = (
    Opt("near", bool, False, "Also remove MinHash near-duplicates."),
    Opt("rouge", bool, False, "Also remove ROUGE-L near copies (Self-Instruct's filter)."),
    Opt("on", str, "auto", "Which text to compare (see above).", choices=ON_CHOICES),
    Opt("keep", str, "first", "Which record of a duplicate group survives.", choices=KEEP_CHOICES),
    Opt("exact", bool, True, "Remove exact duplicates (after normalisation).", flag="--exact/--no-exact"),
    Opt("near_threshold", float, default_text=str(DEFAULT_JACCARD),
        help="Jaccard at or above which texts are near-duplicates; implies --near."),
    Opt("num_perm", int, DEFAULT_NUM_PERM, "MinHash permutations (more: finer, slower)."),
    Opt("ngram", int, DEFAULT_NGRAM, "Words per shingle for --near."),
    Opt("rouge_threshold", float, default_text=str(DEFAULT_ROUGE_THRESHOLD),
        help="ROUGE-L F1 above which a record is a near copy; implies --rouge."),
    Opt("numbers", str, "significant", "significant: texts with different numbers are never near or ROUGE "
        "duplicates; ignore: numbers are words.", choices=NUMBERS_CHOICES),
    Opt("ignore_common", str, "auto", "auto: near and rouge leave out text most records share (a template "
        "preamble); off: compare whole texts.", choices=IGNORE_COMMON_CHOICES),
    Opt("warn_share", float, DEFAULT_WARN_SHARE, "Warn when a stage removes more than this share of its records.",
        ge=0.0, le=1.0),
    Opt("report_chars", int, REPORT_CHARS, "Characters of each text in a --report line (0: no texts).", ge=0),
    Opt("executor", str, "local", "local: this process; ray: the exact and near stages on Ray Data "
        "(pip install 'itkit[ray]').", choices=EXECUTORS),
    Opt("ray_address", str, None, "The Ray cluster of --executor ray (ray://HOST:10001, auto); "
        "default: RAY_ADDRESS, else a local Ray.", metavar="ADDRESS"),
)


def prepare(o: Any, ctx: Context) -> DedupOptions:
    near_on = o.near or o.near_threshold is not None
    rouge_on = o.rouge or o.rouge_threshold is not None
    if not near_on and (o.num_perm != DEFAULT_NUM_PERM or o.ngram != DEFAULT_NGRAM):
        raise UsageError(f"{ctx.name('num_perm')} and {ctx.name('ngram')} tune the near-duplicate stage; add {ctx.setting('near')}")
    options = DedupOptions(
        exact=o.exact,
        near=(DEFAULT_JACCARD if o.near_threshold is None else o.near_threshold) if near_on else None,
        num_perm=o.num_perm,
        ngram=o.ngram,
        rouge=(DEFAULT_ROUGE_THRESHOLD if o.rouge_threshold is None else o.rouge_threshold) if rouge_on else None,
        keep=o.keep,
        numbers=o.numbers,
        ignore_common=o.ignore_common,
        warn_share=o.warn_share,
    )
    options.validate()
    check_executor(o.executor, options, o.ray_address, ctx.name, ctx.setting)
    return options


def execute(options: DedupOptions, o: Any, files: Files):
    """``dedup_file`` with the step's stages: a :class:`~itkit.dedup.pipeline.DedupSummary`."""
    from itkit.dedup import dedup_file

    return dedup_file(
        files.src,
        files.output,
        options=options,
        on=o.on,
        from_format=files.from_format,
        to_format=files.to_format,
        report=files.report,
        on_error=files.on_error,
        errors=files.errors_path,
        progress=files.progress,
        report_chars=o.report_chars,
        executor=o.executor,
        ray_address=o.ray_address,
    )


def run(options: DedupOptions, o: Any, io: StepIO) -> StepOutcome:
    summary = execute(options, o, io.files(report=str(io.folder / REMOVED_FILE)))
    for warning in summary.warnings:
        sys.stderr.write(f"itkit: warning: dedup: {warning}\n")
    write_json(io.folder / SUMMARY_FILE, summary.as_dict())
    return StepOutcome(
        records_in=summary.rows,
        records_out=summary.kept,
        removed=nonzero(dict(summary.removed)),
        rejected=summary.rejected,
        partial=bool(summary.rejected),
    )


STEP = Step(
    "dedup",
    "remove exact and near duplicates",
    OPTS,
    panel=PANEL,
    prepare=prepare,
    execute=execute,
    run=run,
    plumbing=("src", "output", "from", "to", "report", "on_error", "errors", "quiet", "json"),
)
