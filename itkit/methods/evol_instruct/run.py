"""``itkit evol-instruct`` as a library call: read, check, evolve for M rounds, write, report.

Every input record is accounted for, in exactly one of these counts:

- **evolved**: at least one evolution survived; with ``keep="final"`` its
  last survivor is written, with ``keep="all"`` the source and every survivor;
- **unchanged**: every evolution was eliminated or its request failed; the
  parent stayed in the pool, and the source is written as it was
  (``only_evolved`` leaves it out);
- **skipped**: a multi-turn conversation or an empty instruction; failures
  file, with the reason, no request;
- **rejected** by the reader (``on_error="skip"``): the errors file.

Apart from these, **failed** counts the records (evolved or unchanged) with a
request that still failed after the engine's retries: each such request goes
to the failures file with the stage, round, operation, reason and raw
response, and the parent went on to the next round as after an elimination.

Each evolved record carries its lineage in ``metadata.provenance`` (one step
per evolution: operation, round, parent id, model, templates), written with
the record. Beside the output: ``<output>.summary.json`` (counts per rule,
operation and round, engine accounting), ``<output>.failures.jsonl`` when
something failed, and the eliminated evolutions if asked for.

Records are written lineage by lineage in input order, whatever order the
responses arrive in, so a re-run over the same cache gives a byte-identical
file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from itkit.dataset import RecordWriter
from itkit.formats import get_format
from itkit.io.sinks import RowWriter
from itkit.llm.base import Sampling
from itkit.llm.engine import Engine
from itkit.llm.job import JobResult, fails_before_sending, file_report, read_input
from itkit.llm.report import RunReport
from itkit.llm.settings import LLMSettings
from itkit.methods.evol_instruct.elimination import EliminationRules
from itkit.methods.evol_instruct.evolve import (
    DEFAULT_ROUNDS,
    EvolConfig,
    EvolResult,
    Evolver,
    Keep,
    run_evolution,
    skip_reason,
)
from itkit.methods.evol_instruct.operations import OPERATION_NAMES, EvolPrompts
from itkit.records import Record

COMMAND = "evol-instruct"
PROBE_TEXT = "probe"
"""Stands in for a rewrite and its answer when checking, before any request, that the output format can hold it."""


def split_sampling(settings: LLMSettings) -> tuple[LLMSettings, Sampling | None]:
    """The engine's settings without ``--temperature``/``--top-p``, and those two as the rewrites' sampling.

    The engine puts the user's explicit sampling over every request; here
    ``--temperature`` and ``--top-p`` must reach the rewrite and response
    requests only, so that the equality check (rule 1) stays at its
    template's temperature 0.
    """
    if settings.temperature is None and settings.top_p is None:
        return settings, None
    user = Sampling(temperature=settings.temperature, top_p=settings.top_p)
    return settings.model_copy(update={"temperature": None, "top_p": None}), user


@dataclass
class EvolFileResult(JobResult):
    source_format: str
    target_format: str
    read: int = 0
    """Records loaded from the input (after --limit)."""
    rejected: int = 0
    """Input rows rejected by the reader (--on-error skip)."""
    written: int = 0
    eliminated_written: int = 0
    evolution: EvolResult | None = None
    eliminated_path: str | None = None

    @property
    def counts(self) -> dict[str, Any]:
        assert self.evolution is not None
        records = self.evolution.counts()["records"]
        return {
            "read": self.read,
            "rejected_input": self.rejected,
            "evolved": records["evolved"],
            "unchanged": records["unchanged"],
            "failed": records["failed"],
            "skipped": records["skipped"],
            "written": self.written,
            **self.limit_counts(),
        }

    @property
    def partial(self) -> bool:
        counts = self.counts
        return bool(counts["failed"] or counts["skipped"] or self.rejected)


def check_writable(records: list[Record], evolver: Evolver, target: str, write_sources: bool) -> None:
    """Fail before any request when the output format cannot hold a source or an evolved record."""
    fmt = get_format(target)
    for record in records:
        if skip_reason(record) is not None:
            continue
        probes = [evolver.child(record, record.id, 1, evolver.config.ops[0], PROBE_TEXT, PROBE_TEXT)]
        if write_sources:
            probes.append(record)
        for probe in probes:
            with fails_before_sending(f"record '{record.id}'"):
                fmt.dump(probe)


def run_evol_instruct(
    source: str,
    output: str,
    *,
    engine: Engine,
    report: RunReport,
    rounds: int = DEFAULT_ROUNDS,
    ops: tuple[str, ...] = OPERATION_NAMES,
    seed: int = 0,
    keep: Keep = "final",
    only_evolved: bool = False,
    rules: EliminationRules | None = None,
    sampling: Sampling | None = None,
    salvage_labels: bool = False,
    prompts_dir: str | None = None,
    from_format: str = "auto",
    to_format: str | None = None,
    on_error: str = "fail",
    errors_path: str | None = None,
    eliminated_path: str | None = None,
    pass_rest: bool = False,
) -> EvolFileResult:
    """Evolve every record of ``source`` for ``rounds`` rounds and write ``output`` (nothing in a dry run).

    Templates are loaded and validated, the records read and the output
    format checked against every record before the first request.
    ``sampling`` (see :func:`split_sampling`) applies to the rewrite and
    response requests. ``eliminated_path``, if given, receives one JSON line
    per eliminated evolution (rule, detail, rewrite, response). With
    ``pass_rest`` the records after ``--limit``'s first ones are written
    unchanged after the others.
    """
    settings = engine.settings
    prompts = EvolPrompts.load(ops, prompts_dir)
    config = EvolConfig(
        rounds=rounds,
        ops=ops,
        seed=seed,
        rules=rules or EliminationRules(),
        model=settings.model,
        sampling=sampling,
        salvage_labels=salvage_labels,
    )
    read = read_input(
        source, from_format, limit=settings.limit, on_error=on_error, errors_path=errors_path, pass_rest=pass_rest
    )
    records = read.records
    target = to_format or read.format
    result = EvolFileResult(read.format, target, read=len(records), rejected=read.rejected)
    result.errors_path = read.errors_path
    result.take_limit(read)
    report.inputs = read
    check_writable(records, Evolver(engine, prompts, config), target, write_sources=not only_evolved)
    rest_format = get_format(target)
    for record in read.rest:
        with fails_before_sending(f"record '{record.id}'"):
            rest_format.dump(record)

    evolution = run_evolution(engine, records, prompts, config)
    result.evolution = evolution
    if settings.dry_run:
        result.dry_run = True
        result.plan = engine.plan
        return result

    with RecordWriter(output, target) as writer:
        for record in evolution.records(keep, only_evolved):
            writer.write(record)
        for record in read.rest:  # after a recipe's limit: unchanged
            writer.write(record)
    result.written = writer.count
    result.dropped = dict(writer.dropped)
    for lineage in evolution.lineages:
        if lineage.skipped is not None:
            report.fail_record(lineage.source, lineage.skipped, "", stage="input")
            continue
        for failure in lineage.failures:
            report.fail_record(
                lineage.source,
                failure.detail,
                failure.raw,
                stage=failure.stage,
                round=failure.round,
                operation=failure.operation,
                parent_id=failure.parent_id,
                parent_kept=True,
                **({"instruction": failure.instruction} if failure.instruction is not None else {}),
            )
    if eliminated_path is not None:
        result.eliminated_written = write_eliminated(evolution, eliminated_path)
        result.eliminated_path = eliminated_path
    details = evolution.counts()
    extra = {
        "source_format": result.source_format,
        "target_format": target,
        "evol_instruct": {
            "rounds": rounds,
            "operations": list(ops),
            "seed": seed,
            "keep": keep,
            "only_evolved": only_evolved,
            "salvage_labels": salvage_labels,
            "templates": {
                **{op: t.ref for op, t in prompts.operations.items()},
                "equality": prompts.equality.ref,
                "response": prompts.response.ref,
            },
            "elimination": {
                "sorry_word": config.rules.sorry_word,
                "sorry_max_words": config.rules.sorry_max_words,
                "stop_words": len(config.rules.stop_words),
            },
            **{k: v for k, v in details.items() if k != "records"},
            "eliminated_file": eliminated_path,
        },
    }
    file_report(result, report, engine.stats, result.counts, extra)
    return result


def write_eliminated(evolution: EvolResult, path: str) -> int:
    """One JSON line per eliminated evolution, in input order then round order."""
    n = 0
    with RowWriter(path, "jsonl") as writer:
        for lineage in evolution.lineages:
            for attempt in lineage.attempts:
                if attempt.status == "eliminated":
                    writer.write({"id": lineage.source.id, **attempt.as_dict()})
                    n += 1
    return n

