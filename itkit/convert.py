"""Converting between formats and containers, and validating inputs."""

from __future__ import annotations

from dataclasses import dataclass, field

from itkit.dataset import AUTO, OnError, RecordReader, RecordWriter, RejectLog
from itkit.errors import ConversionError, InputError, Location
from itkit.io.sinks import commit_together


@dataclass
class ConvertResult:
    source_format: str
    target_format: str
    read: int
    written: int
    rejected: int
    errors_path: str | None
    reasons: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)
    """Source fields the target format cannot hold -> records written without them."""


def convert(
    source: str,
    target: str,
    from_format: str = AUTO,
    to_format: str | None = None,
    on_error: OnError = "fail",
    errors_path: str | None = None,
    container: str | None = None,
) -> ConvertResult:
    """Stream ``source`` into ``target``; rejected records go to ``errors_path`` with ``on_error="skip"``."""
    rejects = RejectLog(errors_path if on_error == "skip" else None)
    reader = RecordReader(source, from_format, on_error=on_error, rejects=rejects)
    writer: RecordWriter | None = None
    try:
        fmt = reader.format
        writer = RecordWriter(target, to_format or fmt.name, container)
        for record in reader:
            try:
                row = writer.dump(record)
            except ConversionError as err:
                if on_error == "fail":
                    raise
                reader.counts.rejected += 1
                reason = f"{err.field}: {err.reason}" if err.field else err.reason
                reader.counts.reasons[reason] = reader.counts.reasons.get(reason, 0) + 1
                # the input row verbatim, where it was read (not the record's canonical form)
                rejects.add(f"record '{record.id}': {err}", reader.location, data=reader.row)
                continue
            writer.rows.write(row)
        commit_together(writer, rejects)  # the output never appears without its errors file
    except BaseException:
        rejects.abort()
        if writer is not None:
            writer.abort()
        raise
    counts = reader.counts
    return ConvertResult(
        source_format=fmt.name,
        target_format=writer.format.name,
        read=counts.rows,
        written=writer.count,
        rejected=counts.rejected,
        errors_path=errors_path if rejects.count else None,
        reasons=dict(counts.reasons),
        dropped=dict(writer.dropped),
    )


@dataclass
class Problem:
    message: str
    location: dict


@dataclass
class ValidationResult:
    format: str | None
    records: int
    valid: int
    problems: list[Problem]


class _Collect(RejectLog):
    def __init__(self) -> None:
        super().__init__(None)
        self.problems: list[Problem] = []

    def add(self, reason: str, location: Location | None, data: object = None, raw: str | None = None) -> None:
        self.count += 1
        self.problems.append(Problem(reason, location.as_dict() if location else {}))


def validate(source: str, from_format: str = AUTO) -> ValidationResult:
    """Every problem in ``source`` (not just the first). Problems that stop reading end the list."""
    collect = _Collect()
    reader = RecordReader(source, from_format, on_error="skip", rejects=collect)
    fmt_name: str | None = None
    try:
        fmt_name = reader.format.name
        for _ in reader:
            pass
    except InputError as err:  # container-level: invalid JSON array, detection failure...
        collect.problems.append(Problem(str(err), err.location.as_dict() if err.location else {}))
    return ValidationResult(fmt_name, reader.counts.rows, reader.counts.loaded, collect.problems)
