"""Applying rules to a stream of records, and filtering a file into another.

:func:`apply_rules` checks records lazily, in input order: each record is
removed by the FIRST rule (in the rules' order) that gives a reason, and is
counted under that rule only, so ``records == kept + removed``. Iterating the
run gives a :class:`Verdict` for every record; :meth:`FilterRun.kept` gives
only the kept records (handing each removal to a callback).

:func:`filter_file` is the ``itkit filter`` command as a library call (also
used by recipe steps): source -> rules -> target, the removed records with
their reasons in a JSONL report, everything written atomically.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from itkit.dataset import AUTO, OnError, RecordReader, RecordWriter, RejectLog
from itkit.errors import ConversionError, Location, UsageError
from itkit.filters.base import Rule
from itkit.formats import Format
from itkit.formats.base import META_ID_GENERATED
from itkit.io.rows import display_name
from itkit.io.sinks import RowWriter, commit_together
from itkit.records import Record


@dataclass(frozen=True)
class Verdict:
    """What the rules decided for one record. ``index`` is its 0-based position in the stream."""

    record: Record
    index: int
    rule: str | None = None
    reason: str | None = None

    @property
    def kept(self) -> bool:
        return self.rule is None


@dataclass
class FilterCounts:
    """Records seen, kept, and removed per rule (every rule listed, in order, zeros included)."""

    records: int = 0
    kept: int = 0
    removed: dict[str, int] = field(default_factory=dict)

    @property
    def removed_total(self) -> int:
        return sum(self.removed.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "kept": self.kept,
            "removed": self.removed_total,
            "removed_by_rule": dict(self.removed),
        }


def check_record(record: Record, rules: Sequence[Rule]) -> tuple[str, str] | None:
    """(rule name, reason) of the first rule that removes ``record``, or None to keep it."""
    for rule in rules:
        reason = rule.check(record)
        if reason is not None:
            return rule.name, reason
    return None


class FilterRun:
    """Rules applied to a stream of records; iterate once (it is lazy and streams)."""

    def __init__(self, records: Iterable[Record], rules: Sequence[Rule]):
        names = [rule.name for rule in rules]
        if len(set(names)) != len(names):
            raise UsageError(f"a rule is given twice: {', '.join(names)}")
        self.rules = list(rules)
        self.counts = FilterCounts(removed={name: 0 for name in names})
        self._records = records
        self._started = False

    def __iter__(self) -> Iterator[Verdict]:
        if self._started:
            raise RuntimeError("a FilterRun can be iterated only once")
        self._started = True
        counts = self.counts
        rules = self.rules
        for index, record in enumerate(self._records):
            counts.records += 1
            found = check_record(record, rules)
            if found is None:
                counts.kept += 1
                yield Verdict(record, index)
            else:
                counts.removed[found[0]] += 1
                yield Verdict(record, index, found[0], found[1])

    def kept(self, on_removed: Callable[[Verdict], None] | None = None) -> Iterator[Record]:
        """Only the kept records, in order; each removal goes to ``on_removed`` (if given)."""
        for verdict in self:
            if verdict.rule is None:
                yield verdict.record
            elif on_removed is not None:
                on_removed(verdict)


def apply_rules(records: Iterable[Record], rules: Sequence[Rule]) -> FilterRun:
    """Check ``records`` with ``rules`` (see :class:`FilterRun`); nothing runs until it is iterated."""
    return FilterRun(records, rules)


# ---------------------------------------------------------------------------
# file to file
# ---------------------------------------------------------------------------


@dataclass
class FilterResult:
    source: str
    source_format: str
    target_format: str
    rows: int
    """Rows read from the source: ``rows == written + counts.removed_total + rejected``."""
    counts: FilterCounts
    """Records loaded, kept (passed every rule) and removed per rule."""
    written: int
    rejected: int
    """With ``on_error="skip"``: bad rows, and kept records the target format cannot hold."""
    reject_reasons: dict[str, int]
    rules: list[dict[str, Any]]
    """Each rule applied, in order, with the parameters it was given that differ from the defaults."""
    report_path: str | None
    errors_path: str | None
    dropped: dict[str, int] = field(default_factory=dict)
    """Source fields the target format cannot hold -> kept records written without them."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "source_format": self.source_format,
            "target_format": self.target_format,
            "rows": self.rows,
            **self.counts.as_dict(),
            "written": self.written,
            "rejected": self.rejected,
            "rejected_reasons": dict(self.reject_reasons),
            "rules": self.rules,
            "report": self.report_path,
            "errors": self.errors_path,
            "fields_left_out": dict(self.dropped),
        }


def report_row(
    verdict: Verdict, source: str, source_index: int, row: dict, location: Location | None = None
) -> dict[str, Any]:
    """One line of the ``--report`` file: which record, where it was, which rule, why, and the record.

    ``index`` is the 0-based position among the source's rows; ``line`` is added when the
    source has lines (JSONL, CSV).
    """
    out: dict[str, Any] = {"id": verdict.record.id, "source": source, "index": source_index}
    if location is not None and location.line is not None:
        out["line"] = location.line
    out.update(rule=verdict.rule, reason=verdict.reason, record=row)
    return out


def _same_target(a: str, b: str) -> bool:
    if a == "-" or b == "-":
        return a == b
    return Path(a).resolve() == Path(b).resolve()


def _source_row(fmt: Format, record: Record) -> dict:
    """The record as a row of its source format, as read (canonical JSON if that format cannot hold it):
    without the id itkit gave it, when it had none (the report names that id beside it)."""
    try:
        row = fmt.dump(record)
    except ConversionError:
        return record.model_dump(mode="json")
    if record.metadata.get(META_ID_GENERATED):
        row.pop("id", None)
    return row


def filter_file(
    source: str,
    target: str,
    rules: Sequence[Rule],
    *,
    from_format: str = AUTO,
    to_format: str | None = None,
    report_path: str | None = None,
    on_error: OnError = "fail",
    errors_path: str | None = None,
    container: str | None = None,
) -> FilterResult:
    """Write the records of ``source`` that pass ``rules`` to ``target``, in input order.

    Kept records keep the source format unless ``to_format`` is given.
    ``report_path`` (JSONL) gets one line per removed record (see
    :func:`report_row`; ``index`` is the record's 0-based row position in the
    source, ``line`` its line when the source has lines, ``record`` the row as
    read, in the source format). With ``on_error="skip"`` bad rows go to
    ``errors_path`` like ``convert``. The target and the report appear only
    when the whole run succeeds.
    """
    if report_path is not None and _same_target(report_path, target):
        where = "stdout" if target == "-" else f"the same file ({target})"
        raise UsageError(f"the report and the output both go to {where}; give another --report path")
    rejects = RejectLog(errors_path if on_error == "skip" else None)
    reader = RecordReader(source, from_format, on_error=on_error, rejects=rejects)
    name = display_name(source)
    report: RowWriter | None = None
    writer: RecordWriter | None = None
    try:
        fmt = reader.format
        writer = RecordWriter(target, to_format or fmt.name, container)
        report = RowWriter(report_path, "jsonl") if report_path is not None else None
        run = apply_rules(reader, rules)
        counts = reader.counts
        for verdict in run:
            # the reader has just yielded this record: its row position is the last one counted
            source_index = counts.rows - 1
            if verdict.rule is not None:
                if report is not None:
                    row = _source_row(fmt, verdict.record)
                    report.write(report_row(verdict, name, source_index, row, reader.location))
                continue
            try:
                row = writer.dump(verdict.record)
            except ConversionError as err:
                if on_error == "fail":
                    raise
                counts.rejected += 1
                reason = f"{err.field}: {err.reason}" if err.field else err.reason
                counts.reasons[reason] = counts.reasons.get(reason, 0) + 1
                # the input row verbatim (the reader has just yielded this record), where it was read
                rejects.add(f"record '{verdict.record.id}': {err}", reader.location, data=reader.row)
                continue
            writer.rows.write(row)
        commit_together(writer, report, rejects)  # all three files, or none
    except BaseException:
        rejects.abort()
        if report is not None:
            report.abort()
        if writer is not None:
            writer.abort()
        raise
    return FilterResult(
        source=name,
        source_format=fmt.name,
        target_format=writer.format.name,
        rows=reader.counts.rows,
        counts=run.counts,
        written=writer.count,
        rejected=reader.counts.rejected,
        reject_reasons=dict(reader.counts.reasons),
        rules=[{"name": rule.name, "params": rule.overrides()} for rule in rules],
        report_path=report_path,
        dropped=dict(writer.dropped),
        errors_path=errors_path if rejects.count else None,
    )


__all__ = [
    "FilterCounts",
    "FilterResult",
    "FilterRun",
    "Verdict",
    "apply_rules",
    "check_record",
    "filter_file",
    "report_row",
]
