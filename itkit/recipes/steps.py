"""One adapter per step type, registered in :data:`STEPS`; plus the export adapter.

An adapter turns a step's recipe options into the call its command makes:
the same library function with the same arguments (``itkit filter`` calls
:func:`~itkit.filters.pipeline.filter_file`, ``itkit simplify``
:func:`~itkit.simplify.simplify_file`...). Nothing is re-implemented here; the
adapters only wire the step's folder in as the output and collect figures for
the run summary.

- ``prepare(options, settings, prompts_dir)`` builds and checks the library's
  configuration (rule names, operations, thresholds, prompt templates) before
  anything runs, raising :class:`~itkit.errors.UsageError` or another
  :class:`~itkit.errors.ItkitError`;
- ``run(prepared, io)`` runs the step from ``io.input`` into ``io.folder``.

Between steps, records travel as Alpaca JSONL (:data:`INTERMEDIATE_FORMAT`):
it keeps the system prompt, the history of multi-turn records, the input
apart from the instruction, and itkit's metadata (source, category,
provenance). Every step writes its output to ``output.jsonl`` in its folder
and the summary its command would write to ``summary.json``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import orjson
from pydantic import BaseModel

from itkit.dedup import DEFAULT_JACCARD, DEFAULT_NGRAM, DEFAULT_NUM_PERM, DEFAULT_ROUGE_THRESHOLD, DedupOptions, dedup_file
from itkit.errors import UsageError
from itkit.export import ExportSettings, run_export
from itkit.filters import build_rules, filter_file
from itkit.filters.options import rule_params
from itkit.io.sinks import write_file_atomic
from itkit.llm.engine import Engine, open_engine
from itkit.llm.report import RunReport
from itkit.llm.settings import LLMSettings
from itkit.methods.evol_instruct.operations import PROMPTS_METHOD as EVOL_PROMPTS, EvolPrompts, parse_ops
from itkit.methods.evol_instruct.run import COMMAND as EVOL_COMMAND, run_evol_instruct, split_sampling
from itkit.methods.orca.rewrite import METHOD as ORCA_PROMPTS, OrcaRewriter
from itkit.methods.orca.run import COMMAND as ORCA_COMMAND, run_orca
from itkit.methods.self_instruct.generate import SelfInstructConfig
from itkit.methods.self_instruct.options import config_from_options, report_parameters
from itkit.methods.self_instruct.prompts import METHOD as SELF_INSTRUCT_PROMPTS, SelfInstructPrompts
from itkit.methods.self_instruct.run import COMMAND as SELF_INSTRUCT_COMMAND, self_instruct_file
from itkit.recipes.schema import (
    DedupOptionsModel,
    EvolInstructOptions,
    ExportOptions,
    FilterOptions,
    OrcaOptions,
    SelfInstructOptions,
    SimplifyOptions,
)
from itkit.simplify import COMMAND as SIMPLIFY_COMMAND, METHOD as SIMPLIFY_PROMPTS, TEMPLATE_NAME as SIMPLIFY_TEMPLATE, simplify_file
from itkit.templates import load_template

INTERMEDIATE_FORMAT = "alpaca"
"""The record format of every file between steps (written as JSONL)."""
OUTPUT_FILE = "output.jsonl"
SUMMARY_FILE = "summary.json"
FAILURES_FILE = "failures.jsonl"
REMOVED_FILE = "removed.jsonl"
ELIMINATED_FILE = "eliminated.jsonl"
EXPORT_FOLDER = "output"
DRY_RUN_SAMPLES = 2
"""Rendered prompts shown per LLM step in a dry run."""


@dataclass
class StepIO:
    """Where a step reads and writes, and how it runs."""

    input: Path
    folder: Path
    settings: LLMSettings | None = None
    """The effective LLM settings (dry_run and quiet included); None for a step without an LLM."""
    prompts_dir: str | None = None
    samples: int = DRY_RUN_SAMPLES
    """Dry run: rendered prompts kept per LLM step."""

    @property
    def output(self) -> Path:
        return self.folder / OUTPUT_FILE


@dataclass
class StepOutcome:
    """What a step did, in the terms of the run summary."""

    records_in: int
    records_out: int | None
    """None for a dry-run LLM step (nothing was generated)."""
    removed: dict[str, int] = field(default_factory=dict)
    """Records removed on purpose, by rule / stage / reason."""
    failed: int = 0
    """Records that failed (LLM steps: in failures.jsonl)."""
    rejected: int = 0
    """Input rows that could not be read (sources with on_error: skip)."""
    partial: bool = False
    """The step's command would exit 3."""
    outputs: dict[str, int] = field(default_factory=dict)
    """Export: records per mode."""
    engine: dict[str, Any] | None = None
    """LLM steps: the engine's accounting (requests, cache hits, tokens, cost, seconds)."""
    estimate: dict[str, Any] | None = None
    """Dry run: the requests, tokens and cost the step would spend."""
    plan_lines: list[str] = field(default_factory=list)
    """Dry run: sample prompts and the estimate, as the command's --dry-run prints them."""
    notes: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    """Files in the step's folder besides its output and fingerprint (filled in by the runner)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "records_in": self.records_in,
            "records_out": self.records_out,
            "removed": dict(self.removed),
            "failed": self.failed,
            "rejected": self.rejected,
            "partial": self.partial,
            "outputs": dict(self.outputs),
            "engine": self.engine,
            "files": list(self.files),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "StepOutcome":
        return cls(
            records_in=int(data.get("records_in") or 0),
            records_out=data.get("records_out"),
            removed=dict(data.get("removed") or {}),
            failed=int(data.get("failed") or 0),
            rejected=int(data.get("rejected") or 0),
            partial=bool(data.get("partial")),
            outputs=dict(data.get("outputs") or {}),
            engine=data.get("engine"),
            files=list(data.get("files") or []),
        )


@dataclass(frozen=True)
class StepAdapter:
    name: str
    options: type[BaseModel]
    uses_llm: bool
    prepare: Callable[[Any, LLMSettings | None, str | None], Any]
    run: Callable[[Any, Any, StepIO], StepOutcome]
    prompts_method: str | None = None
    """The folder of the method's prompt files (hashed into the fingerprint)."""
    description: str = ""


def write_json(path: Path, data: Any) -> None:
    """A JSON file written atomically (the summaries of steps and runs)."""
    write_file_atomic(path, orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE))


def _nonzero(counts: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in counts.items() if v}


# ---------------------------------------------------------------------------
# filter (itkit filter)
# ---------------------------------------------------------------------------


def prepare_filter(o: FilterOptions, settings: LLMSettings | None, prompts_dir: str | None) -> list:
    if (o.encoding or o.model) and o.length_unit != "tokens":
        raise UsageError("encoding and model set the tokenizer of length_unit: tokens; add length_unit: tokens")
    given = rule_params(**o.model_dump(exclude={"rules"}))
    try:
        return build_rules(o.rules, **given)
    except UsageError as err:
        raise UsageError(_option_names(str(err))) from None


FILTER_OPTION_FOR_PARAM = {
    "placeholders": "placeholder",
    "refusal_openings": "refusal_pattern",
    "boilerplate": "boilerplate_pattern",
    "non_text_patterns": "non_text_pattern",
}
"""Rule parameters whose recipe option has another name (the option adds to the rule's default list)."""


def _option_names(message: str) -> str:
    """A rule library message naming the recipe's options instead of the rules' parameters."""
    for param, option in FILTER_OPTION_FOR_PARAM.items():
        message = re.sub(rf"(?<![\w-])'{param}'(?!\w)", f"'{option}'", message)
    return message


def run_filter(rules: list, o: FilterOptions, io: StepIO) -> StepOutcome:
    result = filter_file(
        str(io.input),
        str(io.output),
        rules,
        from_format=INTERMEDIATE_FORMAT,
        to_format=INTERMEDIATE_FORMAT,
        report_path=str(io.folder / REMOVED_FILE),
    )
    write_json(io.folder / SUMMARY_FILE, {**result.as_dict(), "output": str(io.output)})
    return StepOutcome(
        records_in=result.rows,
        records_out=result.written,
        removed=_nonzero(dict(result.counts.removed)),
        rejected=result.rejected,
        partial=bool(result.rejected),
    )


# ---------------------------------------------------------------------------
# dedup (itkit dedup)
# ---------------------------------------------------------------------------


def prepare_dedup(o: DedupOptionsModel, settings: LLMSettings | None, prompts_dir: str | None) -> DedupOptions:
    near_on = o.near or o.near_threshold is not None
    rouge_on = o.rouge or o.rouge_threshold is not None
    if not near_on and (o.num_perm != DEFAULT_NUM_PERM or o.ngram != DEFAULT_NGRAM):
        raise UsageError("num_perm and ngram tune the near-duplicate stage; add near: true")
    options = DedupOptions(
        exact=o.exact,
        near=(o.near_threshold if o.near_threshold is not None else DEFAULT_JACCARD) if near_on else None,
        num_perm=o.num_perm,
        ngram=o.ngram,
        rouge=(o.rouge_threshold if o.rouge_threshold is not None else DEFAULT_ROUGE_THRESHOLD) if rouge_on else None,
        keep=o.keep,
    )
    options.validate()
    return options


def run_dedup(options: DedupOptions, o: DedupOptionsModel, io: StepIO) -> StepOutcome:
    summary = dedup_file(
        str(io.input),
        str(io.output),
        options=options,
        on=o.on,
        from_format=INTERMEDIATE_FORMAT,
        to_format=INTERMEDIATE_FORMAT,
        report=str(io.folder / REMOVED_FILE),
    )
    write_json(io.folder / SUMMARY_FILE, summary.as_dict())
    return StepOutcome(
        records_in=summary.rows,
        records_out=summary.kept,
        removed=_nonzero(dict(summary.removed)),
        rejected=summary.rejected,
        partial=bool(summary.rejected),
    )


# ---------------------------------------------------------------------------
# the LLM steps
# ---------------------------------------------------------------------------


def _report(command: str, io: StepIO, settings: LLMSettings, parameters: dict[str, Any]) -> RunReport:
    """The command's RunReport, with its summary and failures files named for the step's folder."""
    report = RunReport(command, str(io.output), settings, parameters)
    report.summary_path = str(io.folder / SUMMARY_FILE)
    report.failures_path = str(io.folder / FAILURES_FILE)
    return report


def _engine(settings: LLMSettings, io: StepIO) -> Engine:
    engine = open_engine(settings)
    engine.plan.samples_wanted = io.samples
    return engine


def _llm_outcome(
    engine: Engine,
    *,
    records_in: int,
    records_out: int,
    failed: int,
    partial: bool,
    plan: Any,
) -> StepOutcome:
    settings = engine.settings
    if settings.dry_run:
        assert plan is not None
        return StepOutcome(
            records_in=records_in,
            records_out=None,
            estimate=plan.as_dict(engine.stats.price),
            plan_lines=plan.describe(engine.stats.price, settings.model),
            engine=engine.stats.as_dict(),
        )
    return StepOutcome(
        records_in=records_in,
        records_out=records_out,
        failed=failed,
        partial=partial,
        engine=engine.stats.as_dict(),
    )


def _parameters(io: StepIO, **options: Any) -> dict[str, Any]:
    """The parameters block of the command's summary: the same keys ``itkit <command>`` records."""
    return {
        "src": str(io.input),
        "output": str(io.output),
        "from": INTERMEDIATE_FORMAT,
        "to": INTERMEDIATE_FORMAT,
        **options,
        "on_error": "fail",
        "prompts_dir": io.prompts_dir,
    }


def prepare_simplify(o: SimplifyOptions, settings: LLMSettings | None, prompts_dir: str | None) -> None:
    load_template(SIMPLIFY_PROMPTS, SIMPLIFY_TEMPLATE, prompts_dir)  # a broken template fails before any step runs


def run_simplify(_prepared: None, o: SimplifyOptions, io: StepIO) -> StepOutcome:
    settings = io.settings
    assert settings is not None
    parameters = _parameters(io, keep_original=o.keep_original, reject_longer=o.reject_longer)
    with _engine(settings, io) as engine:
        result = simplify_file(
            str(io.input),
            str(io.output),
            engine=engine,
            report=_report(SIMPLIFY_COMMAND, io, settings, parameters),
            from_format=INTERMEDIATE_FORMAT,
            to_format=INTERMEDIATE_FORMAT,
            keep_original=o.keep_original,
            reject_longer=o.reject_longer,
            prompts_dir=io.prompts_dir,
            on_error="fail",
        )
        outcome = _llm_outcome(
            engine, records_in=result.read, records_out=result.written, failed=result.failed,
            partial=result.partial, plan=result.plan,
        )
    if result.dry_run and result.no_response:
        outcome.notes.append(f"records without a response (passed through, no request): {result.no_response}")
    return outcome


def prepare_orca(o: OrcaOptions, settings: LLMSettings | None, prompts_dir: str | None) -> OrcaRewriter:
    assert settings is not None
    return OrcaRewriter.load(
        settings.model,
        prompts_dir=prompts_dir,
        assign=o.assign,
        system_messages=o.system_messages,
        seed=settings.seed,
    )


def run_orca_step(rewriter: OrcaRewriter, o: OrcaOptions, io: StepIO) -> StepOutcome:
    settings = io.settings
    assert settings is not None
    parameters = _parameters(io, assign=o.assign, system_messages=o.system_messages)
    with _engine(settings, io) as engine:
        result = run_orca(
            str(io.input),
            str(io.output),
            engine=engine,
            rewriter=rewriter,
            report=_report(ORCA_COMMAND, io, settings, parameters),
            from_format=INTERMEDIATE_FORMAT,
            to_format=INTERMEDIATE_FORMAT,
            on_error="fail",
        )
        outcome = _llm_outcome(
            engine, records_in=result.read, records_out=result.written, failed=result.failed,
            partial=result.partial, plan=result.plan,
        )
    if result.dry_run and result.empty_prompts:
        outcome.notes.append(f"records with an empty prompt (not sent): {result.empty_prompts}")
    return outcome


def prepare_evol(o: EvolInstructOptions, settings: LLMSettings | None, prompts_dir: str | None) -> tuple[str, ...]:
    ops = parse_ops(",".join(o.ops) if o.ops is not None else None)
    EvolPrompts.load(ops, prompts_dir)  # every template checked before any step runs
    return ops


def run_evol(ops: tuple[str, ...], o: EvolInstructOptions, io: StepIO) -> StepOutcome:
    settings = io.settings
    assert settings is not None
    seed = settings.seed if settings.seed is not None else 0
    eliminated = str(io.folder / ELIMINATED_FILE) if o.eliminated else None
    parameters = _parameters(
        io, rounds=o.rounds, ops=list(ops), seed=seed, keep=o.keep, only_evolved=o.only_evolved, eliminated=eliminated
    )
    engine_settings, sampling = split_sampling(settings)
    with _engine(engine_settings, io) as engine:
        result = run_evol_instruct(
            str(io.input),
            str(io.output),
            engine=engine,
            report=_report(EVOL_COMMAND, io, settings, parameters),
            rounds=o.rounds,
            ops=ops,
            seed=seed,
            keep=o.keep,
            only_evolved=o.only_evolved,
            sampling=sampling,
            prompts_dir=io.prompts_dir,
            from_format=INTERMEDIATE_FORMAT,
            to_format=INTERMEDIATE_FORMAT,
            on_error="fail",
            errors_path=None,
            eliminated_path=eliminated,
        )
        assert result.evolution is not None
        details = result.evolution.counts()
        counts = details["records"]
        if result.dry_run:
            outcome = _llm_outcome(engine, records_in=result.read, records_out=0, failed=0, partial=False, plan=result.plan)
            outcome.notes.append(
                f"{result.read} records x {o.rounds} round(s), up to 3 requests each (rewrite, equality check, response); "
                "the estimate assumes every evolution survives (an upper bound)"
            )
            if counts["skipped"]:
                outcome.notes.append(f"{counts['skipped']} records would be skipped (multi-turn or empty)")
            return outcome
        outcome = _llm_outcome(
            engine,
            records_in=result.read,
            records_out=result.written,
            failed=counts["failed"] + counts["skipped"],
            partial=result.partial,
            plan=None,
        )
    return outcome


def prepare_self_instruct(o: SelfInstructOptions, settings: LLMSettings | None, prompts_dir: str | None) -> SelfInstructConfig:
    assert settings is not None
    config = config_from_options(**o.model_dump(), seed=settings.seed, max_prompts=settings.limit)
    SelfInstructPrompts(config.style, prompts_dir, instances=config.wants_instances)
    return config


def run_self_instruct(config: SelfInstructConfig, o: SelfInstructOptions, io: StepIO) -> StepOutcome:
    settings = io.settings
    assert settings is not None
    parameters = report_parameters(
        config,
        seeds=str(io.input),
        output=str(io.output),
        from_format=INTERMEDIATE_FORMAT,
        to_format=INTERMEDIATE_FORMAT,
        on_error="fail",
        prompts_dir=io.prompts_dir,
    )
    with _engine(settings, io) as engine:
        result = self_instruct_file(
            str(io.input),
            str(io.output),
            engine=engine,
            config=config,
            report=_report(SELF_INSTRUCT_COMMAND, io, settings, parameters),
            from_format=INTERMEDIATE_FORMAT,
            to_format=INTERMEDIATE_FORMAT,
            prompts_dir=io.prompts_dir,
            on_error="fail",
        )
        outcome = _llm_outcome(
            engine, records_in=result.seeds, records_out=result.written, failed=result.failed,
            partial=result.partial, plan=result.plan,
        )
    if result.dry_run:
        outcome.notes.append(f"the {result.seeds} input records are the seed tasks; {o.num} new instructions wanted")
    elif result.kept < result.requested:
        outcome.notes.append(f"kept {result.kept} of the {result.requested} instructions wanted")
    return outcome


# ---------------------------------------------------------------------------
# the table of step types
# ---------------------------------------------------------------------------

STEPS: dict[str, StepAdapter] = {
    adapter.name: adapter
    for adapter in (
        StepAdapter("filter", FilterOptions, False, prepare_filter, run_filter,
                    description="remove low-quality records (itkit filter)"),
        StepAdapter("simplify", SimplifyOptions, True, prepare_simplify, run_simplify, SIMPLIFY_PROMPTS,
                    description="rewrite responses into simpler, shorter ones (itkit simplify)"),
        StepAdapter("evol-instruct", EvolInstructOptions, True, prepare_evol, run_evol, EVOL_PROMPTS,
                    description="evolve instructions into harder, more diverse ones (itkit evol-instruct)"),
        StepAdapter("orca", OrcaOptions, True, prepare_orca, run_orca_step, ORCA_PROMPTS,
                    description="regenerate responses with explanation traces (itkit orca)"),
        StepAdapter("self-instruct", SelfInstructOptions, True, prepare_self_instruct, run_self_instruct, SELF_INSTRUCT_PROMPTS,
                    description="generate new tasks from the records as seeds (itkit self-instruct)"),
        StepAdapter("dedup", DedupOptionsModel, False, prepare_dedup, run_dedup,
                    description="remove exact and near duplicates (itkit dedup)"),
    )
}
"""Every step type a recipe may use, by the name of its command."""


# ---------------------------------------------------------------------------
# export (itkit export)
# ---------------------------------------------------------------------------


def export_settings(o: ExportOptions, source: str, out_dir: str, resolve: Callable[[str], str]) -> ExportSettings:
    """The ExportSettings ``itkit export`` would build from these options (``--overwrite``: the run owns the folder)."""
    return ExportSettings.from_options(
        source,
        out_dir,
        **o.model_dump(exclude={"tokenizer"}),
        tokenizer=resolve(o.tokenizer) if o.tokenizer else None,
        from_format=INTERMEDIATE_FORMAT,
        on_error="fail",
        overwrite=True,
    )


def prepare_export(o: ExportOptions, resolve: Callable[[str], str]) -> None:
    export_settings(o, "-", "-", resolve).check()


def run_export_step(o: ExportOptions, io: StepIO, resolve: Callable[[str], str]) -> StepOutcome:
    settings = export_settings(o, str(io.input), str(io.folder / EXPORT_FOLDER), resolve)
    result = run_export(settings)
    write_json(io.folder / SUMMARY_FILE, result.as_dict())
    removed: dict[str, int] = {}
    if result.no_exchange:
        removed["no exchange"] = result.no_exchange
    for mode, m in result.modes.items():
        if m.length_dropped:
            removed[f"{mode}: over max_tokens"] = m.length_dropped
        if m.quality is not None:
            for rule, n in m.quality.removed.items():
                if n:
                    removed[f"{mode}: {rule}"] = n
    return StepOutcome(
        records_in=result.rows,
        records_out=None,
        removed=removed,
        rejected=result.rejected,
        partial=bool(result.rejected),
        outputs={mode: m.records for mode, m in result.modes.items()},
    )


__all__ = [
    "DRY_RUN_SAMPLES",
    "EXPORT_FOLDER",
    "INTERMEDIATE_FORMAT",
    "OUTPUT_FILE",
    "STEPS",
    "StepAdapter",
    "StepIO",
    "StepOutcome",
    "export_settings",
    "prepare_export",
    "run_export_step",
    "write_json",
]
