"""What every LLM command does around its method: read the input, check the output format, file the report.

- :func:`read_input`: the records of the input (the first ``limit``), the
  rejected rows in the errors file (``on_error="skip"``);
- :func:`collecting_rejects`: the errors file for a reader of one's own,
  removed again when reading fails;
- :func:`fails_before_sending`: a record the output format cannot hold stops
  the run before any request, naming the record and the ``--to`` option;
- :class:`JobResult`: what every command's result holds besides its own
  counts (the dry run's plan, the files written), filled in by
  :func:`file_report`.
"""

from __future__ import annotations

import itertools
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

from itkit.dataset import RecordReader, RejectLog
from itkit.errors import ConversionError, Location
from itkit.llm.dryrun import DryRunPlan
from itkit.llm.report import RunReport
from itkit.llm.stats import EngineStats
from itkit.records import Record

CHOOSE_ANOTHER = "choose another with --to"
"""The hint of :func:`fails_before_sending` when a record does not fit the output format."""


@dataclass
class InputRecords:
    """The records an LLM command works on, and what the reader did with the rest."""

    records: list[Record]
    format: str
    """The input's record format (detected or given)."""
    rejected: int
    """Input rows the reader rejected (``on_error="skip"``)."""
    errors_path: str | None
    """The errors file, when some row was rejected."""


@contextmanager
def collecting_rejects(errors_path: str | None) -> Iterator[RejectLog]:
    """A :class:`RejectLog` for ``errors_path``: closed when the block ends, removed when it raises."""
    rejects = RejectLog(errors_path)
    try:
        yield rejects
    except BaseException:
        rejects.abort()
        raise
    rejects.close()


def read_input(
    source: str,
    from_format: str = "auto",
    *,
    limit: int | None = None,
    on_error: str = "fail",
    errors_path: str | None = None,
) -> InputRecords:
    """The records of ``source`` (the first ``limit`` when given), read before any request."""
    with collecting_rejects(errors_path) as rejects:
        reader = RecordReader(source, from_format, on_error=on_error, rejects=rejects)  # type: ignore[arg-type]
        records = list(itertools.islice(reader, limit)) if limit else list(reader)
    rejected = reader.counts.rejected
    return InputRecords(records, reader.format.name, rejected, errors_path if rejected else None)


@contextmanager
def fails_before_sending(location: str, hint: str = CHOOSE_ANOTHER) -> Iterator[None]:
    """Turn a :class:`ConversionError` of the block (the output format cannot hold a record) into the run's error."""
    try:
        yield
    except ConversionError as err:
        raise ConversionError(f"{err.reason} ({hint}); nothing was sent", Location(location), err.field) from None


@dataclass(kw_only=True)
class JobResult:
    """The part of an LLM command's result every command has (its own counts are in the subclass)."""

    dry_run: bool = False
    plan: DryRunPlan | None = None
    """The dry run's estimate and sample prompts."""
    summary: dict[str, Any] | None = None
    summary_path: str | None = None
    failures_path: str | None = None
    """The failures file, when some record failed."""
    errors_path: str | None = None
    """The errors file, when some input row was rejected."""
    failure_reasons: dict[str, int] = field(default_factory=dict)


def file_report(
    result: JobResult,
    report: RunReport,
    stats: EngineStats,
    counts: dict[str, Any],
    extra: dict[str, Any],
) -> None:
    """Write the summary (and failures) files of ``report`` and note them on ``result``."""
    result.failure_reasons = report.failure_reasons()
    result.summary = report.write(stats, counts, extra=extra)
    result.summary_path = report.summary_path
    result.failures_path = report.failures_path if report.failures else None


__all__ = [
    "CHOOSE_ANOTHER",
    "InputRecords",
    "JobResult",
    "collecting_rejects",
    "fails_before_sending",
    "file_report",
    "read_input",
]
