"""``itkit orca`` as a library call: read, assign, check, regenerate, write, report.

Every input record is accounted for: written to the output, written with its
reason and raw response to the failures file (LLM failures, empty prompts), or
rejected by the reader (``--on-error skip``, errors file). Outputs are written
in input order, whatever order the responses arrive in, so a re-run over the
same cache gives a byte-identical file.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from itkit.dataset import RecordWriter
from itkit.formats import get_format
from itkit.formats.base import META_ID_GENERATED
from itkit.formats.openorca import NAME as OPENORCA
from itkit.llm.engine import Engine
from itkit.llm.job import JobResult, fails_before_sending, file_report, read_input
from itkit.llm.report import RunReport
from itkit.methods.orca.rewrite import EMPTY_PROMPT, META_SYSTEM_MESSAGE, META_TASK_TYPE, OrcaItem, OrcaRewriter
from itkit.records import Record

COMMAND = "orca"
DRY_RUN_LENGTH_FACTOR = 2.0
"""A dry run expects each explained answer to be this many times the original response's length."""
PROBE_RESPONSE = "answer"
"""Stands in for the model's answer when checking, before any request, that the output format can hold a record."""
CHOOSE_FORMAT = "choose it with --to"
"""The hint when the output format cannot hold a rewritten record."""


@dataclass
class OrcaResult(JobResult):
    source_format: str
    target_format: str
    read: int = 0
    """Records loaded from the input (after --limit)."""
    rejected: int = 0
    """Input rows rejected by the reader (--on-error skip)."""
    written: int = 0
    failed: int = 0
    planned: int = 0
    by_message: Counter = field(default_factory=Counter)
    by_type: Counter = field(default_factory=Counter)
    found_by: Counter = field(default_factory=Counter)
    empty_prompts: int = 0
    """Records with nothing to ask (failed without a request)."""
    fallbacks: int = 0
    """by-type records whose type shares no message with --system-messages (drawn from the whole set)."""

    @property
    def partial(self) -> bool:
        return bool(self.failed or self.rejected)

    def counts(self) -> dict[str, Any]:
        return {
            "read": self.read,
            "rejected_input": self.rejected,
            "written": self.written,
            "failed": self.failed,
            **self.limit_counts(),
        }

    def distribution(self) -> dict[str, Any]:
        return {
            "system_messages": {str(k): v for k, v in sorted(self.by_message.items())},
            "task_types": dict(sorted(self.by_type.items(), key=lambda kv: (-kv[1], kv[0]))),
            "task_type_found_by": dict(sorted(self.found_by.items(), key=lambda kv: (-kv[1], kv[0]))),
            "system_messages_fallback": self.fallbacks,
        }


def _found_by_kind(found_by: str) -> str:
    return found_by.split(":", 1)[0]


def check_writable(items: list[OrcaItem], rewriter: OrcaRewriter, target: str) -> None:
    """Fail before any request when the output format cannot hold a rewritten record (system, turns)."""
    fmt = get_format(target)
    for item in items:
        if item.skip_reason is not None:
            continue
        with fails_before_sending(f"record '{item.record.id}'", CHOOSE_FORMAT):
            fmt.dump(finalise(rewriter.rewritten(item, PROBE_RESPONSE), target))


def finalise(record: Record, target: str) -> Record:
    """OpenOrca rows are keyed by id: write it even when itkit made it up at load time."""
    if target == OPENORCA and record.metadata.get(META_ID_GENERATED):
        metadata = dict(record.metadata)
        del metadata[META_ID_GENERATED]
        return record.model_copy(update={"metadata": metadata})
    return record


def run_orca(
    source: str,
    output: str,
    *,
    engine: Engine,
    rewriter: OrcaRewriter,
    report: RunReport,
    from_format: str = "auto",
    to_format: str | None = None,
    on_error: str = "fail",
    errors_path: str | None = None,
    pass_rest: bool = False,
) -> OrcaResult:
    """Regenerate every record of ``source`` under its Orca system message and write ``output``.

    With ``pass_rest`` the records after ``--limit``'s first ones are written unchanged after them.
    """
    settings = engine.settings
    read = read_input(
        source, from_format, limit=settings.limit, on_error=on_error, errors_path=errors_path, pass_rest=pass_rest
    )
    target = to_format or read.format
    result = OrcaResult(read.format, target, read=len(read.records), rejected=read.rejected)
    result.errors_path = read.errors_path
    result.take_limit(read)
    report.inputs = read
    items = [rewriter.plan(record) for record in read.records]
    for item in items:
        a = item.assignment
        result.by_message[a.number] += 1
        result.by_type[a.task_type] += 1
        result.found_by[_found_by_kind(a.found_by)] += 1
        result.fallbacks += a.fallback
        result.empty_prompts += item.skip_reason == EMPTY_PROMPT
    check_writable(items, rewriter, target)
    rest_format = get_format(target)
    for record in read.rest:
        with fails_before_sending(f"record '{record.id}'", CHOOSE_FORMAT):
            rest_format.dump(record)

    sendable = [item for item in items if item.skip_reason is None]
    dry_run = settings.dry_run
    counter = engine.counter if dry_run else None

    async def worker(item: OrcaItem) -> Record:
        expected = None
        if counter is not None and item.record.output:
            expected = int(counter.count(item.record.output) * DRY_RUN_LENGTH_FACTOR)
        return await rewriter.rewrite(engine, item, expected_tokens=expected)

    outcomes = engine.run(sendable, worker, description="orca")
    if dry_run:
        result.dry_run = True
        result.planned = sum(1 for o in outcomes if o.planned)
        result.plan = engine.plan
        return result

    answered = iter(outcomes)  # in the order of ``sendable``, whatever order the responses came in
    with RecordWriter(output, target) as writer:
        for item in items:
            a = item.assignment
            details = {META_SYSTEM_MESSAGE: a.number, META_TASK_TYPE: a.task_type}
            if item.skip_reason is not None:
                report.fail_record(item.record, item.skip_reason, "", **details)
                result.failed += 1
                continue
            outcome = next(answered)
            if outcome.failure is not None:
                report.fail_record(item.record, outcome.failure.reason, outcome.failure.raw, **details)
                result.failed += 1
                continue
            writer.write(finalise(outcome.value, target))  # type: ignore[arg-type]
            result.written += 1
        for record in read.rest:  # after a recipe's limit: unchanged
            writer.write(finalise(record, target))
            result.written += 1
    result.dropped = dict(writer.dropped)
    extra = {
        "source_format": result.source_format,
        "target_format": target,
        "templates": {
            "request": rewriter.template.ref,
            "system_messages": rewriter.system_messages.ref,
            "task_types": rewriter.table.ref,
        },
        "assignment": {
            "mode": rewriter.assigner.mode,
            "seed": rewriter.assigner.seed,
            "system_messages": list(rewriter.assigner.allowed) if rewriter.assigner.allowed else None,
        },
        "orca": result.distribution(),
    }
    file_report(result, report, engine.stats, result.counts(), extra)
    return result
