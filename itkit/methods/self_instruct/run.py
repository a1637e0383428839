"""``self_instruct_file``: seeds in, generated tasks out, with the summary and failures files."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from itkit.dataset import RecordWriter
from itkit.formats import get_format
from itkit.io.sinks import RowWriter
from itkit.llm.engine import Engine
from itkit.llm.job import JobResult, collecting_rejects, fails_before_sending, file_report
from itkit.llm.report import RunReport, sidecar_path
from itkit.methods.self_instruct.generate import (
    METHOD,
    SelfInstructConfig,
    SelfInstructGenerator,
)
from itkit.methods.self_instruct.finetune import prepare_for_finetuning
from itkit.methods.self_instruct.prompts import SelfInstructPrompts
from itkit.methods.self_instruct.seeds import load_seeds
from itkit.records import Record

COMMAND = "self-instruct"
TASKS_SUFFIX = ".tasks.jsonl"
"""The sidecar listing every kept instruction with its most similar instructions and its fate."""
DEFAULT_TARGET = "alpaca"
"""The output record format when --to is not given."""


@dataclass
class SelfInstructResult(JobResult):
    seed_format: str
    target_format: str
    requested: int
    seeds: int = 0
    rejected_input: int = 0
    """Seed rows the reader rejected (--on-error skip): in the errors file."""
    kept: int = 0
    written: int = 0
    failed: int = 0
    counts: dict[str, Any] = field(default_factory=dict)
    tasks_path: str | None = None

    @property
    def partial(self) -> bool:
        """Some request failed, a seed row was rejected, or fewer than --num instructions were kept."""
        return bool(self.failed or self.rejected_input or self.kept < self.requested)


def check_writable(target: str, config: SelfInstructConfig) -> None:
    """Fail before any request when the output format cannot hold a generated record."""
    has_output = config.style == "alpaca" or config.wants_instances
    probe = Record.single_turn(f"{METHOD}-1", "Instruction", "Output" if has_output else None, input="Input")
    with fails_before_sending(f"--to {target}"):
        get_format(target).dump(probe)


def self_instruct_file(
    source: str,
    output: str,
    *,
    engine: Engine,
    config: SelfInstructConfig,
    report: RunReport | None = None,
    from_format: str = "auto",
    to_format: str | None = None,
    prompts_dir: str | None = None,
    on_error: str = "fail",
    errors_path: str | None = None,
) -> SelfInstructResult:
    """Generate ``config.num`` tasks from the seeds in ``source`` into ``output`` (nothing is written in a dry run).

    Loads and checks the templates, the seeds and the output format before any
    request; then generates instructions until ``config.num`` are kept, then (Self-
    Instruct style) classifies them and generates their instances; writes the records,
    the failures file and the run summary.
    """
    settings = engine.settings
    prompts = SelfInstructPrompts(config.style, prompts_dir, instances=config.wants_instances)
    target = to_format or DEFAULT_TARGET
    check_writable(target, config)
    with collecting_rejects(errors_path) as rejects:
        seeds = load_seeds(source, from_format, on_error=on_error, rejects=rejects)
    result = SelfInstructResult(seeds.format, target, config.num, seeds=len(seeds.seeds), rejected_input=rejects.count)
    result.errors_path = errors_path if rejects.count else None
    generator = SelfInstructGenerator(engine, prompts, seeds, config)

    if settings.dry_run:
        engine.execute(generator.plan, description=f"{COMMAND}: dry run")
        result.dry_run = True
        result.plan = engine.plan
        return result

    engine.execute(generator.generate_instructions, total=config.num, description=f"{COMMAND}: instructions")
    if config.wants_instances and generator.tasks:
        engine.execute(generator.generate_instances, total=len(generator.tasks), description=f"{COMMAND}: instances")
    grouped = target == "seed_tasks"
    records = generator.records(settings.model, group_instances=grouped)
    prepared = None
    if config.wants_instances and not grouped and config.prepare:
        # the original's prepare_for_finetuning: seed instances added, field names stripped, duplicates removed
        records, prepared = prepare_for_finetuning(records, seeds.seeds, config.prepare, config.seed, settings.model)
    with RecordWriter(output, target) as writer:
        for record in records:
            writer.write(record)
    result.kept = len(generator.tasks)
    result.written = len(records)
    result.tasks_path = sidecar_path(output, TASKS_SUFFIX, COMMAND)
    with RowWriter(result.tasks_path, "jsonl") as tasks_file:
        for row in generator.task_rows():
            tasks_file.write(row)

    report = report or RunReport(COMMAND, output, settings)
    for failure in generator.failures:
        report.fail(failure.reason, failure.raw, **failure.extra)
    result.failed = len(generator.failures)
    result.counts = {
        "seeds": result.seeds,
        "seeds_without_instruction": seeds.skipped_empty,
        "rejected_input": result.rejected_input,
        "requested": config.num,
        **generator.summary_counts(),
        **({"prepare": prepared.as_dict()} if prepared is not None else {}),
        "records_written": result.written,
    }
    file_report(
        result,
        report,
        engine.stats,
        result.counts,
        extra={
            "style": config.style,
            "seed": config.seed,
            "templates": [t.ref for t in prompts.templates()],
            "filters": {
                "min_words": config.filters.min_words,
                "max_words": config.filters.max_words,
                "blacklist": list(config.filters.blacklist),
                "banned_prefixes": list(config.filters.banned_prefixes),
                "rouge_threshold": config.filters.rouge_threshold,
            },
            "source_format": seeds.format,
            "target_format": target,
            "tasks_file": result.tasks_path,
        },
    )
    return result
