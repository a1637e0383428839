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
from typing import Callable, Iterable

from itkit.dataset import AUTO, RecordReader, RecordWriter, RejectLog
from itkit.dedup.pipeline import PROGRESS_EVERY, DedupOptions
from itkit.dedup.ray_executor import check_executor, make_deduplicator
from itkit.dedup.report import REPORT_CHARS, TextSpool, cut, dominance_warnings
from itkit.dedup.texts import AUTO as ON_AUTO
from itkit.dedup.texts import response_length, text_getter
from itkit.formats import get_format
from itkit.io.sinks import RowWriter, cannot_write, commit_together, is_stream

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

    def as_dict(self) -> dict:
        return asdict(self)


ProgressFn = Callable[[str], None]
"""Called with a short status message while a file run progresses."""


class _Spool:
    """Output rows parked in an anonymous temporary file until the decisions are known."""

    def __init__(self, directory: str | None, output: str):
        # a full disk while spooling is the output's (the spool sits beside it), or the temp folder's for stdout
        self._output = output if not is_stream(output) else f"a temporary file in {directory or tempfile.gettempdir()}"
        try:
            self._fh = tempfile.TemporaryFile(dir=directory, prefix=".itkit-dedup-")
        except OSError as exc:
            raise cannot_write(output, exc) from None

    def add(self, row: dict) -> None:
        # one self-contained pickle per row: a shared pickler's memo would make later rows refer
        # to objects of earlier ones, which a reader cannot resolve row by row
        try:
            pickle.dump(row, self._fh, protocol=pickle.HIGHEST_PROTOCOL)
        except OSError as exc:
            raise cannot_write(self._output, exc) from None

    def rows(self) -> Iterable[dict]:
        try:
            self._fh.flush()
        except OSError as exc:
            raise cannot_write(self._output, exc) from None
        self._fh.seek(0)
        load = pickle.load
        while True:
            try:
                yield load(self._fh)
            except EOFError:
                return

    def close(self) -> None:
        try:
            self._fh.close()
        except OSError:  # its last buffered rows could not be written: it is deleted on close all the same
            pass


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
) -> DedupSummary:
    """Deduplicate the records of ``source`` into ``output``; see the module docstring.

    ``report``: a JSONL file with one line per removed record (stage, index, id,
    kept_index, kept_id, score; for ``near`` the score is the true Jaccard and
    ``estimate`` the MinHash estimate; ``text`` and ``kept_text``, the compared texts
    cut to ``report_chars`` characters, unless it is 0). ``on_error="skip"`` sends bad records to
    ``errors`` instead of failing; they count as rejected. Nothing is written
    when an error stops the run. ``executor="ray"`` runs the stages on Ray Data (at ``ray_address``,
    else RAY_ADDRESS, else a local Ray; :mod:`itkit.dedup.ray_executor`), with the same decisions.
    """
    options.validate()
    check_executor(executor, options, ray_address)
    get_text = text_getter(on)
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
    )
    writer = RecordWriter(output, out_format)
    report_writer: RowWriter | None = None
    spool = _Spool(_spool_dir(output), output)
    texts = TextSpool(_spool_dir(output))
    ids: list[str] | None = [] if report else None
    rows_of = array("q")
    longest = options.keep == "longest"
    multi_turn = False
    try:
        with make_deduplicator(options, executor, ray_address) as dedup:
            lost: dict[int, list[str]] = {}  # record index -> fields its output row lacks (kept ones are counted)
            for record in reader:
                spool.add(writer.dump(record))
                if writer.last_dropped:
                    lost[dedup.count] = writer.last_dropped
                text = get_text(record)
                texts.add(text)
                dedup.add(text, response_length(record) if longest else 0)
                if ids is not None:
                    ids.append(record.id)
                rows_of.append(reader.counts.rows - 1)
                multi_turn = multi_turn or len(record.turns) > 2  # (turns alternate from the user)
                if progress is not None and dedup.count % PROGRESS_EVERY == 0:
                    progress(f"read {dedup.count:,} records")
            if progress is not None:
                progress(f"read {dedup.count:,} records; comparing ({', '.join(options.stages)})")
            decisions = dedup.finish()
        if progress is not None:
            progress(f"writing {decisions.kept:,} records")
        keep = decisions.keep.tolist()
        for row, kept in zip(spool.rows(), keep):
            if kept:
                writer.rows.write(row)
        for index, names in lost.items():
            if keep[index]:
                for name in names:
                    summary.dropped[name] = summary.dropped.get(name, 0) + 1
        summary.warnings = dominance_warnings(
            decisions.entered, decisions.removals, texts, rows_of, ids, options.warn_share
        )
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
    summary.kept = decisions.kept
    summary.boilerplate = decisions.boilerplate.describe()
    return summary


__all__ = ["DedupSummary", "dedup_file"]
