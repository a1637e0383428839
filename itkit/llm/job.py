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
    origins: dict[int, tuple[dict, Location | None]] = field(default_factory=dict)
    """``id(record)`` -> the row it was read from, verbatim, and where: what the failures file holds."""
    beyond_limit: int = 0
    """Input rows after the first ``limit`` records: not processed (and, unless passed through, not written)."""
    rest: list[Record] = field(default_factory=list)
    """With ``pass_rest``: the records after the first ``limit``, to be written unchanged."""

    def origin(self, record: Record) -> tuple[dict | None, Location | None]:
        """The input row ``record`` was read from and its location ((None, None) for a record not read here)."""
        return self.origins.get(id(record), (None, None))


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
    pass_rest: bool = False,
) -> InputRecords:
    """The records of ``source`` (the first ``limit`` when given), read before any request.

    The rows after the first ``limit`` records are counted (``beyond_limit``)
    without being loaded, or, with ``pass_rest``, loaded into ``rest`` to be
    written unchanged (a recipe step never drops what it does not process).
    """
    records: list[Record] = []
    origins: dict[int, tuple[dict, Location | None]] = {}
    rest: list[Record] = []
    with collecting_rejects(errors_path) as rejects:
        reader = RecordReader(source, from_format, on_error=on_error, rejects=rejects)  # type: ignore[arg-type]
        for record in itertools.islice(reader, limit) if limit else reader:
            records.append(record)
            origins[id(record)] = (reader.row, reader.location)  # type: ignore[assignment]
        beyond = 0
        if limit:
            if pass_rest:
                rest = list(reader)
                beyond = len(rest)
            else:
                beyond = reader.count_rest()
    rejected = reader.counts.rejected
    return InputRecords(
        records, reader.format.name, rejected, errors_path if rejected else None, origins, beyond, rest
    )


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
    not_processed: int = 0
    """Input rows after ``--limit``'s first records: neither processed nor written."""
    passed_through: int = 0
    """Records after the limit written unchanged (a recipe step's ``limit``)."""
    dropped: dict[str, int] = field(default_factory=dict)
    """Input fields the output format cannot hold -> records written without them."""

    def take_limit(self, read: InputRecords) -> None:
        """Note what became of the input after the limit: passed through (``read.rest``) or left out."""
        if read.rest:
            self.passed_through = len(read.rest)
        else:
            self.not_processed = read.beyond_limit

    def limit_counts(self) -> dict[str, int]:
        """The summary counts of the limit (only when it left something out)."""
        out: dict[str, int] = {}
        if self.not_processed:
            out["not_processed_beyond_limit"] = self.not_processed
        if self.passed_through:
            out["passed_through_beyond_limit"] = self.passed_through
        return out


def limit_note(result: JobResult, limit: int | None) -> str | None:
    """The summary line of a ``--limit`` that left records out (None when it did not)."""
    if result.not_processed:
        return (
            f"--limit {limit}: {result.not_processed} more input record{'s' if result.not_processed != 1 else ''} "
            "not processed and not written"
        )
    if result.passed_through:
        return f"limit {limit}: {result.passed_through} more input records passed through unchanged"
    return None


def file_report(
    result: JobResult,
    report: RunReport,
    stats: EngineStats,
    counts: dict[str, Any],
    extra: dict[str, Any],
) -> None:
    """Write the summary (and failures) files of ``report`` and note them on ``result``."""
    result.failure_reasons = report.failure_reasons()
    if result.dropped:
        extra = {**extra, "fields_left_out": dict(result.dropped)}
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
    "limit_note",
    "read_input",
]
