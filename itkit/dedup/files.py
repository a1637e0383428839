"""The file runner of deduplication: :func:`dedup_file` and its :class:`DedupSummary`.

Records are read once, their output rows spooled to a temporary file (and their compared
texts to another, for the report and the warnings), and the kept rows written in input
order at the end (atomically, like every itkit output).
"""

from __future__ import annotations

import os
import pickle
import tempfile
from array import array
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterable, Sequence

from itkit.dataset import AUTO, RecordReader, RecordWriter, RejectLog
from itkit.dedup.pipeline import PROGRESS_EVERY, Decisions, DedupOptions
from itkit.dedup.ray_executor import check_executor, make_deduplicator
from itkit.dedup.report import REPORT_CHARS, Strings, TextSpool, cut, dominance_warnings, not_compared_warning
from itkit.dedup.texts import AUTO as ON_AUTO
from itkit.dedup.texts import NOT_COMPARED_EMPTY, MissingField, response_length, selector
from itkit.errors import SchemaError, UsageError
from itkit.formats import get_format
from itkit.formats.base import Plain
from itkit.io.sinks import RowWriter, cannot_write, commit_together, dumps_line, is_stream

@dataclass
class DedupSummary:
    """What a file run did. ``rows == kept + sum(removed.values()) + rejected``."""

    source: str
    output: str
    input_format: str
    output_format: str
    on: str
    keep: str
    stages: list[str]
    rows: int = 0
    rejected: int = 0
    removed: dict[str, int] = field(default_factory=dict)
    kept: int = 0
    report: str | None = None
    errors: str | None = None
    dropped: dict[str, int] = field(default_factory=dict)
    """Source fields the output format cannot hold -> kept records written without them."""
    boilerplate: list[str] = field(default_factory=list)
    """The common text the near and ROUGE-L stages left out (``--ignore-common auto``)."""
    warnings: list[str] = field(default_factory=list)
    on_regex: str | None = None
    not_compared: dict[str, int] = field(default_factory=dict)
    """Records kept without being compared, by reason (an empty text, no ``--on-regex`` match)."""

    def as_dict(self) -> dict:
        return asdict(self)


ProgressFn = Callable[[str], None]
"""Called with a short status message while a file run progresses."""


_LINE, _PICKLED = b"L", b"P"
SPOOL_BUFFER = 1 << 20
"""Bytes the spools buffer between writes (a write that releases the GIL is costly while the hashing thread runs)."""


@dataclass
class DedupRun:
    """What :func:`dedup_file` decided, for ``inspect`` (``itkit dedup --explain``); valid during the call.

    ``decisions`` index the compared records; ``rows_of[i]`` is the input row of compared record ``i``,
    ``texts.get(i)`` its compared text, ``ids[i]`` its id.
    """

    decisions: Decisions
    texts: TextSpool
    rows_of: array
    ids: Sequence[str]
    not_compared: dict[int, str]
    """Input row -> why it was kept without being compared."""
    not_compared_ids: dict[int, str]
    """Input row -> id of those records."""


class _Spool:
    """Output rows parked in an anonymous temporary file until the decisions are known."""

    def __init__(self, directory: str | None, output: str):
        # a full disk while spooling is the output's (the spool sits beside it), or the temp folder's for stdout
        self._output = output if not is_stream(output) else f"a temporary file in {directory or tempfile.gettempdir()}"
        try:
            self._fh = tempfile.TemporaryFile(dir=directory, prefix=".itkit-dedup-", buffering=SPOOL_BUFFER)
        except OSError as exc:
            raise cannot_write(output, exc) from None

    def add(self, row: dict) -> None:
        # one self-contained pickle per row: a shared pickler's memo would make later rows refer
        # to objects of earlier ones, which a reader cannot resolve row by row
        try:
            self._fh.write(_PICKLED)
            pickle.dump(row, self._fh, protocol=pickle.HIGHEST_PROTOCOL)
        except OSError as exc:
            raise cannot_write(self._output, exc) from None

    def add_line(self, line: bytes) -> None:
        """A row already dumped as a JSONL line (``dumps_line``: one ``\n``, at its end)."""
        try:
            self._fh.write(_LINE + line)
        except OSError as exc:
            raise cannot_write(self._output, exc) from None

    def rows(self) -> Iterable[dict | bytes]:
        """The rows in order: dicts, and bytes for the lines of :meth:`add_line`."""
        try:
            self._fh.flush()
        except OSError as exc:
            raise cannot_write(self._output, exc) from None
        fh = self._fh
        fh.seek(0)
        load, read, readline = pickle.load, fh.read, fh.readline
        while True:
            tag = read(1)
            if tag == _LINE:
                yield readline()
            elif tag == _PICKLED:
                yield load(fh)
            else:
                return

    def close(self) -> None:
        try:
            self._fh.close()
        except OSError:  # its last buffered rows could not be written: it is deleted on close all the same
            pass


PLAIN_ON = (ON_AUTO, "instruction", "prompt")
"""The compared texts that are a :class:`~itkit.formats.base.Plain` view's prompt (its only user text)."""


def _spool_dir(output: str) -> str | None:
    if is_stream(output):
        return None
    parent = os.path.dirname(os.path.abspath(output))
    return parent if os.path.isdir(parent) else None


def dedup_file(
    source: str,
    output: str = "-",
    *,
    options: DedupOptions = DedupOptions(),
    on: str = ON_AUTO,
    from_format: str = AUTO,
    to_format: str | None = None,
    report: str | None = None,
    on_error: str = "fail",
    errors: str | None = None,
    progress: ProgressFn | None = None,
    report_chars: int = REPORT_CHARS,
    executor: str = "local",
    ray_address: str | None = None,
    on_regex: str | None = None,
    inspect: Callable[[DedupRun], None] | None = None,
) -> DedupSummary:
    """Deduplicate the records of ``source`` into ``output``; see the module docstring.

    ``report``: a JSONL file with one line per removed record (stage, index, id,
    kept_index, kept_id, score; for ``near`` the score is the true Jaccard and
    ``estimate`` the MinHash estimate; ``text`` and ``kept_text``, the compared texts
    cut to ``report_chars`` characters, unless it is 0). ``on_error="skip"`` sends bad records to
    ``errors`` instead of failing; they count as rejected. Nothing is written
    when an error stops the run. ``executor="ray"`` runs the stages on Ray Data (at ``ray_address``,
    else RAY_ADDRESS, else a local Ray; :mod:`itkit.dedup.ray_executor`), with the same decisions.

    ``on`` and ``on_regex`` choose the compared text (:class:`~itkit.dedup.texts.TextSelector`);
    a record with nothing to compare is kept and counted in ``not_compared``. A record without
    the field ``on`` names is a bad record, and a usage error while no record had it (a typo).
    ``inspect``: called with the :class:`DedupRun` once the decisions are made; then nothing is written.
    """
    options.validate()
    check_executor(executor, options, ray_address)
    select = selector(on, on_regex)
    rejects = RejectLog(errors if on_error == "skip" else None)
    reader = RecordReader(source, from_format, on_error, rejects)
    in_format = reader.format
    out_format = get_format(to_format) if to_format else in_format
    summary = DedupSummary(
        source=reader.name,
        output=output,
        input_format=in_format.name,
        output_format=out_format.name,
        on=on,
        keep=options.keep,
        stages=options.stages,
        report=report,
        errors=errors if on_error == "skip" else None,
        on_regex=on_regex,
    )
    writer = RecordWriter(output, out_format)
    report_writer: RowWriter | None = None
    spool = _Spool(_spool_dir(output), output)
    texts = TextSpool(_spool_dir(output))
    ids: Strings | None = Strings() if report or inspect is not None else None
    rows_of = array("q")
    compared = bytearray()  # per spooled record: 1 if compared (its decision is the next one), 0 if kept as is
    not_compared: dict[int, str] = {}
    not_compared_ids: dict[int, str] = {}
    had_field = missing = 0
    longest = options.keep == "longest"
    multi_turn = False
    lines = writer.rows.takes_lines  # plain rows are spooled as their JSONL lines
    try:
        with make_deduplicator(options, executor, ray_address, spill_dir=_spool_dir(output)) as dedup:
            lost: dict[int, list[str]] = {}  # record index -> fields its output row lacks (kept ones are counted)
            # plain rows (Alpaca JSONL) skip the record when it is written back in its own format
            plain_ok = on in PLAIN_ON and on_regex is None
            for item in reader.fast() if plain_ok else reader:
                if type(item) is Plain and item.format is not out_format:
                    item = item.record()
                if type(item) is Plain:
                    if lines:
                        spool.add_line(dumps_line(item.dumped))
                    else:
                        spool.add(item.dumped)
                    had_field += 1
                    text = item.prompt if item.prompt and not item.prompt.isspace() else None
                    why = NOT_COMPARED_EMPTY
                    record_id, length = item.id, len(item.output) if longest else 0
                else:
                    record = item
                    try:
                        text = select(record, reader.row)
                        had_field += 1
                    except MissingField:
                        missing += 1
                        _missing_field(reader, select.on, had_field)
                        continue
                    why = select.why
                    row = writer.dump(record)
                    if writer.last_dropped:
                        lost[len(compared)] = writer.last_dropped
                    spool.add(row)
                    record_id, length = record.id, response_length(record) if longest else 0
                    multi_turn = multi_turn or len(record.turns) > 2  # (turns alternate from the user)
                if text is None:
                    not_compared[reader.counts.rows - 1] = why
                    if ids is not None:
                        not_compared_ids[reader.counts.rows - 1] = record_id
                    compared.append(0)
                    continue
                compared.append(1)
                texts.add(text)
                dedup.add(text, length)
                if ids is not None:
                    ids.append(record_id)
                rows_of.append(reader.counts.rows - 1)
                if progress is not None and dedup.count % PROGRESS_EVERY == 0:
                    progress(f"read {dedup.count:,} records")
            if missing and not had_field:
                raise UsageError(_no_field(select.on, f"none of the {missing:,} records of {reader.name} has it"))
            if progress is not None:
                progress(f"read {dedup.count:,} records; comparing ({', '.join(options.stages)})")
            decisions = dedup.finish()
        if inspect is not None:
            assert ids is not None
            inspect(DedupRun(decisions, texts, rows_of, ids, not_compared, not_compared_ids))
            writer.abort()
            rejects.abort()
            return summary
        if progress is not None:
            progress(f"writing {decisions.kept:,} records")
        decided = iter(decisions.keep.tolist())
        keep = [not c or next(decided) for c in compared]  # (records not compared are kept)
        for row, kept in zip(spool.rows(), keep):
            if kept:
                if type(row) is bytes:
                    writer.rows.write_line(row)
                else:
                    writer.rows.write(row)
        for index, names in lost.items():
            if keep[index]:
                for name in names:
                    summary.dropped[name] = summary.dropped.get(name, 0) + 1
        summary.warnings = dominance_warnings(
            decisions.entered, decisions.removals, texts, rows_of, ids, options.warn_share
        )
        if not_compared:
            summary.warnings.append(not_compared_warning(not_compared, len(compared)))
        if report and ids is not None:
            report_writer = RowWriter(report, "jsonl")
            for r in decisions.removals:
                report_writer.write(
                    {
                        "stage": r.stage,
                        "index": rows_of[r.index],
                        "id": ids[r.index],
                        "kept_index": rows_of[r.kept_index],
                        "kept_id": ids[r.kept_index],
                        "score": r.score,  # unrounded: a ROUGE-L F1 of 0.7000000000000001 is above 0.7
                        **({"estimate": r.estimate} if r.estimate is not None else {}),
                        **(
                            {"text": cut(texts.get(r.index), report_chars), "kept_text": cut(texts.get(r.kept_index), report_chars)}
                            if report_chars
                            else {}
                        ),
                    }
                )
        commit_together(writer, report_writer, rejects)  # the output, the report and the errors file, or none
    except BaseException:
        writer.abort()
        if report_writer is not None:
            report_writer.abort()
        rejects.abort()
        raise
    finally:
        spool.close()
        texts.close()
    if on == ON_AUTO:
        summary.on = "auto: instruction, prompt for multi-turn records" if multi_turn else "auto: instruction"
    summary.rows = reader.counts.rows
    summary.rejected = reader.counts.rejected
    summary.removed = {stage: decisions.removed.get(stage, 0) for stage in options.stages}
    summary.kept = decisions.kept + len(not_compared)
    for why in not_compared.values():
        summary.not_compared[why] = summary.not_compared.get(why, 0) + 1
    summary.boilerplate = decisions.boilerplate.describe()
    return summary


def _no_field(on: str, where: str) -> str:
    return f"--on {on}: {where}; --on takes a built-in text (auto, instruction, prompt, ...) or a field of the records"


def _missing_field(reader: RecordReader, on: str, had_field: int) -> None:
    """A record without the ``--on`` field: a typo while no record had it, else a bad record."""
    if not had_field and reader.on_error == "fail":
        raise UsageError(_no_field(on, f"{reader.location}: no such field"))
    reader.reject(SchemaError("missing; --on compares it", reader.location, on))


__all__ = ["DedupRun", "DedupSummary", "dedup_file"]
