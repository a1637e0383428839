"""Records in and out: a source read into canonical records, records dumped to a sink.

:class:`RecordReader` detects the format from the first records (or takes the
one given), converts every row, and on a bad row either raises (``on_error=
"fail"``) or hands the row verbatim, with its reason, to a :class:`RejectLog`
and goes on (``"skip"``). :class:`RecordWriter` dumps records in a format
through an atomic :class:`~itkit.io.sinks.RowWriter`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Literal

import orjson

from itkit.errors import ConversionError, FormatDetectionError, InputError, Location, SchemaError, UsageError
from itkit.formats import DETECT_SAMPLE, FORMATS, Format, LoadContext, candidates, detect, get_format
from itkit.io.json_keys import may_have_duplicates
from itkit.io.rows import RawRow, display_name, is_hub, iter_rows, jsonl_lines, jsonl_row, parse_hub_uri
from itkit.io.sinks import RowWriter
from itkit.failures import FAILURE_KEY, strip_failure
from itkit.formats.base import WEIGHTED_FORMATS, Plain, dropped_fields, has_weights
from itkit.records import META_EXTRA, META_LAYOUT, META_SOURCE, META_SOURCE_FORMAT, Record

OnError = Literal["fail", "skip"]
AUTO = "auto"
EMPTY_INPUT_FORMAT = "alpaca"
"""The format of an empty input read with --from auto (nothing to detect it from; nothing is lost either way)."""


def source_stem(source: str) -> str:
    """A short name for ids made up for records without one."""
    if source == "-":
        return "stdin"
    if is_hub(source):
        path, _config, split = parse_hub_uri(source)
        return f"{path.rstrip('/').rsplit('/', 1)[-1]}-{split}"
    name = Path(source).name
    for ext in (".gz", ".jsonl", ".ndjson", ".json", ".parquet", ".csv"):
        if name.lower().endswith(ext):
            name = name[: -len(ext)]
    return name or "record"


class RejectLog:
    """The errors file: one JSON line per rejected record, verbatim, with its reason."""

    def __init__(self, path: str | None):
        self.path = path
        self.count = 0
        self._writer: RowWriter | None = None

    def add(self, reason: str, location: Location | None, data: object = None, raw: str | None = None) -> None:
        self.count += 1
        if self.path is None:
            return
        if self._writer is None:
            self._writer = RowWriter(self.path, "jsonl")
        row: dict = {"reason": reason}
        if location is not None:
            row.update(location.as_dict())
        if raw is not None:
            row["raw"] = raw
        else:
            row["record"] = data
        self._writer.write(row)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()

    def finish(self) -> None:
        if self._writer is not None:
            self._writer.finish()

    def publish(self) -> None:
        if self._writer is not None:
            self._writer.publish()

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.abort()


@dataclass
class ReadCounts:
    rows: int = 0
    loaded: int = 0
    rejected: int = 0
    reasons: dict[str, int] = field(default_factory=dict)


class RecordReader:
    """Canonical records from one source."""

    def __init__(
        self,
        source: str,
        fmt: str = AUTO,
        on_error: OnError = "fail",
        rejects: RejectLog | None = None,
        keep_source: bool = False,
    ):
        if on_error not in ("fail", "skip"):
            raise UsageError(f"--on-error must be fail or skip, not '{on_error}'")
        self.source = source
        self.name = display_name(source)
        self.requested = fmt
        self.on_error = on_error
        self.rejects = rejects if rejects is not None else RejectLog(None)
        self.keep_source = keep_source
        self.counts = ReadCounts()
        self.location: Location | None = None
        """Where the record last yielded was read (file + line, or index)."""
        self.row: dict | None = None
        """The row the record last yielded was loaded from, as read (without a failures file's ``_itkit_failure``)."""
        self._rows = iter_rows(source)
        self._pending: Iterator[RawRow] | None = None
        """The rows __iter__ has still to read, once it has started."""
        self._head: list[RawRow] = []
        self._format: Format | None = None if fmt == AUTO else get_format(fmt)
        self._stem = source_stem(source)
        self.empty = False
        """The source held no rows at all (set once the format is known)."""

    @property
    def format(self) -> Format:
        """The format given, or the one detected from the first records."""
        if self._format is None:
            sample: list[tuple[dict, Location]] = []
            for raw in self._rows:
                self._head.append(raw)
                if raw.error is None and isinstance(raw.data, dict):
                    sample.append((strip_failure(raw.data), raw.location))
                elif self.on_error == "fail":
                    break  # the error is raised in order by __iter__
                if len(sample) >= DETECT_SAMPLE:
                    break
            if self.on_error == "fail" and self._head and (self._head[-1].error or not isinstance(self._head[-1].data, dict)):
                self._raise_for(self._head[-1])
            if not self._head:  # an empty dataset: 0 records, in the format asked for (or the default)
                self.empty = True
                self._format = get_format(EMPTY_INPUT_FORMAT)
                return self._format
            if not sample and self._head:
                # every row is unreadable: report each one (validate lists them all), not "holds no records"
                bad = len(self._head)
                for raw in self._head:
                    self.counts.rows += 1
                    self._reject(raw, self._problem(raw))
                self._head.clear()
                raise FormatDetectionError(
                    f"none of its {bad} rows is a readable record, so its format cannot be detected", Location(self.name)
                )
            self._format = detect(sample, self.name)
        return self._format

    @staticmethod
    def _problem(raw: RawRow) -> InputError:
        if raw.error is not None:
            return raw.error
        return SchemaError(f"must be a JSON object, got {type(raw.data).__name__}", raw.location)

    def _raise_for(self, raw: RawRow) -> None:
        raise self._problem(raw)

    def _reject(self, raw: RawRow, err: InputError) -> None:
        if self.on_error == "fail":
            raise err
        self.counts.rejected += 1
        key = err.reason if err.field is None else f"{err.field}: {err.reason}"
        self.counts.reasons[key] = self.counts.reasons.get(key, 0) + 1
        self.rejects.add(str(err), raw.location, raw.data, raw.raw)

    def count_rest(self) -> int:
        """Consume the rows not read yet without loading them; how many there were (a --limit's remainder)."""
        pending = self._pending if self._pending is not None else itertools.chain(self._head, self._rows)
        self._pending = iter(())
        n = 0
        for _raw in pending:
            n += 1
        return n

    def __iter__(self) -> Iterator[Record]:
        self.format  # detect it first (a bad first row raises here)
        if self._pending is None:  # a second iteration goes on where the first stopped
            self._pending = itertools.chain(self._head, self._rows)
        load = self._load
        for raw in self._pending:
            record = load(raw)
            if record is not None:
                yield record

    def _load(self, raw: RawRow) -> Record | None:
        """The record of the next row (None: rejected, with ``on_error="skip"``; else the error is raised)."""
        fmt = self._format
        assert fmt is not None
        counts = self.counts
        ordinal = counts.rows
        counts.rows += 1
        row = raw.data
        if raw.error is not None or not isinstance(row, dict):
            self._reject(raw, self._problem(raw))
            return None
        if FAILURE_KEY in row:  # a row of a failures file: the record itself, fed back in
            row = strip_failure(row)
        try:
            if not fmt.matches(row):
                others = [n for n in candidates(row) if n != fmt.name]
                if others:
                    hint = f"check --from {fmt.name}" if self.requested != AUTO else "mixed formats; split the file"
                    raise SchemaError(
                        f"is in {others[0]} format, not {fmt.name} ({hint}; {fmt.name} expects {fmt.keys})",
                        raw.location,
                    )
                # load() names the missing field
            record = fmt.load(row, LoadContext(raw.location, f"{self._stem}-{ordinal}"))
        except InputError as err:
            self._reject(raw, err)
            return None
        if self.keep_source:
            record.metadata[META_SOURCE] = self.name
        counts.loaded += 1
        self.location = raw.location
        self.row = row
        return record

    def fast(self) -> Iterator[Record | Plain]:
        """The records of iteration, in order, but each row the format reads plainly as its :class:`Plain`
        view, without building the record (:attr:`Format.plain`), when the source is a JSONL file
        (:func:`~itkit.io.rows.jsonl_lines`): same ids, counts, errors and rejects. Otherwise (another format
        or container, stdin, ``keep_source``, iteration already started) exactly the records of iteration.
        """
        fmt = self.format
        lines = None
        if fmt.plain is not None and self._pending is None and not self.keep_source:
            lines = jsonl_lines(self.source)
        if lines is None:
            yield from self
            return
        self._rows.close()  # the rows read to detect the format are read again, from the first line
        self._head.clear()
        self._pending = iter(())
        plain, load, name, stem, counts = fmt.plain, self._load, self.name, self._stem, self.counts
        loads, JSONDecodeError = orjson.loads, orjson.JSONDecodeError
        for line_no, line in lines:
            try:
                data = loads(line)
            except JSONDecodeError:
                raw = jsonl_row(line, name, line_no)  # the located error
            else:
                view = plain(data, f"{stem}-{counts.rows}") if type(data) is dict else None
                # a plain view's values are all strings: 4 quotes per key unless one is escaped (or duplicated)
                if view is not None and (line.count(b'"') == 4 * len(data) or not may_have_duplicates(line, data)):
                    counts.rows += 1
                    counts.loaded += 1
                    view.location = self.location = Location(name, line_no)
                    self.row = data
                    yield view
                    continue
                if view is not None or may_have_duplicates(line, data):
                    raw = jsonl_row(line, name, line_no)  # the duplicate key, located (or the row, if none)
                else:
                    raw = RawRow(data, Location(name, line=line_no))
            record = load(raw)
            if record is not None:
                yield record


def read_records(source: str, fmt: str = AUTO) -> list[Record]:
    """All records of a source (fails on the first bad record). For small inputs and tests."""
    return list(RecordReader(source, fmt))


class RecordWriter:
    """Dumps records in one format to a target path (or ``-``), atomically."""

    def __init__(self, target: str, fmt: Format | str, container: str | None = None):
        self.format = get_format(fmt) if isinstance(fmt, str) else fmt
        self.rows = RowWriter(target, container)
        self.dropped: dict[str, int] = {}
        """Source fields the format cannot hold -> records written without them (see :func:`dropped_fields`)."""
        self.last_dropped: list[str] = []
        self._loses_weights = self.format.name not in WEIGHTED_FORMATS
        """The fields the row of the last :meth:`dump` lacks."""

    @property
    def count(self) -> int:
        return self.rows.count

    def dump(self, record: Record) -> dict:
        """The row for ``record``; raises ConversionError naming the record when the format cannot hold it."""
        try:
            row = self.format.dump(record)
        except ConversionError as err:
            raise ConversionError(err.reason, Location(f"record '{record.id}'"), err.field) from None
        metadata = record.metadata
        if (
            (META_EXTRA in metadata or META_LAYOUT in metadata) and metadata.get(META_SOURCE_FORMAT) != self.format.name
        ) or (self._loses_weights and has_weights(record)):
            lost = dropped_fields(record, self.format.name)
            self.last_dropped = lost
            for name in lost:
                self.dropped[name] = self.dropped.get(name, 0) + 1
        else:
            self.last_dropped = []
        return row

    def write(self, record: Record) -> None:
        self.rows.write(self.dump(record))

    def write_fast(self, item: Record | Plain) -> None:
        """:meth:`write` for a record or a :class:`Plain` view (its row as read, re-dumped, in its own format)."""
        if type(item) is Plain:
            if item.format is self.format:
                self.last_dropped = []
                self.rows.write(item.dumped)
                return
            item = item.record()
        self.write(item)

    def write_all(self, records: Iterable[Record]) -> int:
        for record in records:
            self.write(record)
        return self.count

    def close(self) -> None:
        self.rows.close()

    def finish(self) -> None:
        self.rows.finish()

    def publish(self) -> None:
        self.rows.publish()

    def abort(self) -> None:
        self.rows.abort()

    def __enter__(self) -> "RecordWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_records(target: str, records: Iterable[Record], fmt: Format | str) -> int:
    with RecordWriter(target, fmt) as writer:
        return writer.write_all(records)


def describe_dropped(dropped: dict[str, int], target: str) -> str | None:
    """One line naming every field a conversion left out and in how many records, or None."""
    if not dropped:
        return None
    parts = ", ".join(f"'{name}' ({n} record{'s' if n != 1 else ''})" for name, n in sorted(dropped.items()))
    return f"fields {target} cannot hold, left out: {parts}; convert to the source's own format to keep them"


__all__ = [
    "AUTO",
    "describe_dropped",
    "FORMATS",
    "ReadCounts",
    "RecordReader",
    "RecordWriter",
    "RejectLog",
    "read_records",
    "source_stem",
    "write_records",
]
