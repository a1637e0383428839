"""Decontamination: remove training records that contain benchmark items.

Two methods (``mode``):

- ``ngram`` (GPT-3, Brown et al. 2020, appendix C; lm-evaluation-harness's
  ``decontamination``): a training record is contaminated when it shares any
  word n-gram (default n = 13) with a benchmark item;
- ``coverage`` (Tulu 3, Lambert et al. 2024, section 2.3): the share of a
  benchmark item's distinct n-grams (default n = 8) found in one training record;
  the record is contaminated when that share is at or above ``threshold`` (default 0.5).

Both compare the training record's prompt (every user turn, the last with its
input) with the benchmark questions, and its response (the assistant turns) with
the benchmark answers; each match says which (``prompt`` / ``response``). An item
with fewer than n words on a side cannot be matched on that side; the summary
counts such items.

:func:`decontaminate_file` holds the benchmarks' hashed n-grams in memory
(:class:`~itkit.decontaminate.index.NgramIndex`) and streams the training records
in batches of :data:`BATCH` through it, writing the clean ones in input order.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

from itkit.lazy import lazy_module

np = lazy_module("numpy")

from itkit.dataset import AUTO, RecordReader, RecordWriter, RejectLog
from itkit.decontaminate.benchmarks import BUILTIN, Benchmark, load_benchmarks
from itkit.decontaminate.index import NgramIndex
from itkit.decontaminate.ngrams import ngram_texts
from itkit.dedup.texts import text_getter
from itkit.errors import UsageError
from itkit.formats import get_format
from itkit.formats.base import Plain
from itkit.io.sinks import RowWriter
from itkit.records import Record

MODES = ("ngram", "coverage")
DEFAULT_N = {"ngram": 13, "coverage": 8}
DEFAULT_THRESHOLD = 0.5
BATCH = 4096
"""Training records matched together (one batch of numpy work)."""
REPORT_NGRAMS = 3
"""Matched n-grams quoted per removed record in the report."""
SIDES = ("prompt", "response")


@dataclass(frozen=True)
class DecontaminateOptions:
    mode: str = "ngram"
    n: int | None = None
    """Words per n-gram (None: the mode's default, :data:`DEFAULT_N`)."""
    threshold: float = DEFAULT_THRESHOLD
    """``coverage``: the share of an item's n-grams at or above which a record is contaminated."""

    @property
    def ngram(self) -> int:
        return DEFAULT_N[self.mode] if self.n is None else self.n

    def validate(self) -> None:
        if self.mode not in MODES:
            raise UsageError(f"--mode must be one of {', '.join(MODES)}, not '{self.mode}'")
        if self.ngram < 1:
            raise UsageError(f"--ngram must be at least 1, not {self.ngram}")
        if not 0.0 < self.threshold <= 1.0:
            raise UsageError(f"--threshold must be in (0, 1], not {self.threshold}")


@dataclass
class BenchmarkCounts:
    name: str
    source: str
    items: int
    too_short: dict[str, int]
    """Items with a text of fewer than n words, per side (question / answer): never matched there."""
    records_removed: int = 0
    """Training records matching this benchmark (a record may match several)."""
    items_leaked: int = 0

    @property
    def leaked_share(self) -> float:
        return self.items_leaked / self.items if self.items else 0.0

    def as_dict(self) -> dict:
        return {**asdict(self), "leaked_share": self.leaked_share}


@dataclass
class DecontaminateSummary:
    source: str
    output: str
    input_format: str
    output_format: str
    mode: str
    ngram: int
    threshold: float | None
    benchmarks: list[BenchmarkCounts] = field(default_factory=list)
    rows: int = 0
    kept: int = 0
    removed: int = 0
    removed_by_side: dict[str, int] = field(default_factory=lambda: {s: 0 for s in SIDES})
    rejected: int = 0
    report: str | None = None
    errors: str | None = None

    def as_dict(self) -> dict:
        data = asdict(self)
        data["benchmarks"] = [b.as_dict() for b in self.benchmarks]
        return data


_PROMPT, _RESPONSE = text_getter("prompt"), text_getter("response")
"""The compared texts of a training record: every user turn (the last with its input); every assistant turn."""


class _Side:
    """One comparison: training ``side`` against the benchmarks' questions or answers."""

    def __init__(self, side: str, benches: list[Benchmark], n: int):
        self.side = side
        attr = "question" if side == "prompt" else "answer"
        self.index = NgramIndex([getattr(item, attr) for b in benches for item in b.items], n)
        words = self.index.words
        self.short = (words > 0) & (words < n)
        """Items with some text on this side but fewer than n words."""


class Decontaminator:
    """The benchmarks' n-grams, and the decisions for batches of training records."""

    def __init__(self, benches: list[Benchmark], options: DecontaminateOptions = DecontaminateOptions()):
        options.validate()
        self.options = options
        self.benches = benches
        self.n = options.ngram
        self.bench_of = np.repeat(np.arange(len(benches)), [len(b.items) for b in benches])
        self.local = np.concatenate([np.arange(len(b.items)) for b in benches])
        self.sides = {s: _Side(s, benches, self.n) for s in SIDES}
        self.leaked = np.zeros(len(self.bench_of), dtype=np.bool_)
        self.counts = []
        for i, b in enumerate(benches):
            mine = self.bench_of == i
            short = {label: int(self.sides[s].short[mine].sum()) for s, label in zip(SIDES, ("question", "answer"))}
            self.counts.append(BenchmarkCounts(b.name, b.source, len(b.items), short))

    def decide(self, records: Sequence[Record | Plain]) -> list[dict | None]:
        """For each record: None (clean) or its best match (benchmark, item, side, score, shared n-grams)."""
        prompts, responses = [], []
        for r in records:
            if type(r) is Plain:
                prompts.append(r.prompt)
                responses.append(r.output)
            else:
                prompts.append(_PROMPT(r))
                responses.append(_RESPONSE(r))
        return self.decide_texts(prompts, responses)

    def decide_texts(self, prompts: Sequence[str], responses: Sequence[str]) -> list[dict | None]:
        """:meth:`decide` for the records' compared texts: their prompts and their responses."""
        best: list[dict | None] = [None] * len(prompts)
        benches_hit: list[set[int]] = [set() for _ in prompts]
        texts = {"prompt": prompts, "response": responses}
        for side in SIDES:
            m = self.sides[side].index.match(texts[side])
            flagged = m.shared >= 1 if self.options.mode == "ngram" else m.share >= self.options.threshold
            for t, g, shared, share in zip(m.text[flagged].tolist(), m.item[flagged].tolist(), m.shared[flagged].tolist(), m.share[flagged].tolist()):
                self.leaked[g] = True
                benches_hit[t].add(int(self.bench_of[g]))
                current = best[t]
                if current is None:
                    best[t] = {"item": g, "side": side, "score": share, "shared": shared, "sides": {side}}
                    continue
                current["sides"].add(side)
                if share > current["score"]:  # ties: the earlier item, the prompt side
                    current.update(item=g, side=side, score=share, shared=shared)
        for t, found in enumerate(best):
            if found is not None:
                found["text"] = texts[found["side"]][t]
                found["benchmarks"] = benches_hit[t]
        return best

    def report_row(self, index: int, record: Record | Plain, found: dict) -> dict:
        g = found["item"]
        bench = self.benches[int(self.bench_of[g])]
        local = int(self.local[g])
        side = found["side"]
        index_ = self.sides[side].index
        return {
            "index": index,
            "id": record.id,
            "benchmark": bench.name,
            "item_index": local,
            "item_id": bench.items[local].id,
            "matched": side,
            "matched_sides": [s for s in SIDES if s in found["sides"]],
            "score": found["score"],
            "shared_ngrams": found["shared"],
            "ngrams": ngram_texts(found["text"], self.n, index_.of_item(g), REPORT_NGRAMS),
            "benchmarks": [self.benches[b].name for b in sorted(found["benchmarks"])],
        }

    def finish(self) -> list[BenchmarkCounts]:
        for i, c in enumerate(self.counts):
            c.items_leaked = int(self.leaked[self.bench_of == i].sum())
        return self.counts


ProgressFn = Callable[[str], None]


def check_paths(source: str, output: str, against: Sequence[str], *, report: str | None, errors: str | None) -> None:
    """Every file written differs from the others and from every input (a usage error names the two)."""
    def key(path: str) -> str:
        return os.path.realpath(path)

    inputs = {key(p): f"the input {p}" for p in (source, *against) if p != "-" and p not in BUILTIN and not p.startswith("hf://")}
    written: dict[str, str] = {}
    for label, path in (("-o", output), ("--report", report), ("--errors", errors)):
        if path is None:
            continue
        if path == "-":
            if "-" in written:
                raise UsageError(f"{label} and {written['-']} both go to stdout; give one of them a file")
            written["-"] = label
            continue
        k = key(path)
        if k in inputs:
            raise UsageError(f"{label} {path} is {inputs[k]}; write to another file")
        if k in written:
            raise UsageError(f"{label} and {written[k]} name the same file ({path}); give each its own path")
        written[k] = label


def decontaminate_file(
    source: str,
    output: str = "-",
    *,
    against: Sequence[str],
    bench_fields: Sequence[str] | None = None,
    options: DecontaminateOptions = DecontaminateOptions(),
    from_format: str = AUTO,
    to_format: str | None = None,
    report: str | None = None,
    on_error: str = "fail",
    errors: str | None = None,
    progress: ProgressFn | None = None,
    fast: bool = True,
) -> DecontaminateSummary:
    """Write the records of ``source`` that match no benchmark of ``against`` to ``output``.

    ``report``: one JSON line per removed record (see :meth:`Decontaminator.report_row`).
    Nothing is written when an error stops the run. ``fast``: read plain rows of a JSONL source without
    building their records when the output format is the input's (:meth:`~itkit.dataset.RecordReader.fast`;
    the same output, byte for byte).
    """
    options.validate()
    check_paths(source, output, against, report=report, errors=errors if on_error == "skip" else None)
    if progress is not None:
        progress("reading the benchmarks")
    benches = load_benchmarks(against, bench_fields)
    decon = Decontaminator(benches, options)
    rejects = RejectLog(errors if on_error == "skip" else None)
    reader = RecordReader(source, from_format, on_error, rejects)
    in_format = reader.format
    out_format = get_format(to_format) if to_format else in_format
    summary = DecontaminateSummary(
        source=reader.name,
        output=output,
        input_format=in_format.name,
        output_format=out_format.name,
        mode=options.mode,
        ngram=decon.n,
        threshold=options.threshold if options.mode == "coverage" else None,
        report=report,
        errors=errors if on_error == "skip" else None,
    )
    writer = RecordWriter(output, out_format)
    report_writer = RowWriter(report, "jsonl") if report else None
    bench_removed = [0] * len(benches)

    def flush(batch: list[Record | Plain], rows: list[int]) -> None:
        for record, row, found in zip(batch, rows, decon.decide(batch)):
            if found is None:
                write(record)
                summary.kept += 1
                continue
            summary.removed += 1
            summary.removed_by_side[found["side"]] += 1
            for b in found["benchmarks"]:
                bench_removed[b] += 1
            if report_writer is not None:
                report_writer.write(decon.report_row(row, record, found))
        if progress is not None:
            progress(f"checked {summary.kept + summary.removed:,} records, removed {summary.removed:,}")

    fast = fast and out_format is in_format  # a view is written back only in its own format
    write = writer.write_fast if fast else writer.write
    try:
        batch: list[Record | Plain] = []
        rows: list[int] = []
        for record in reader.fast() if fast else reader:
            batch.append(record)
            rows.append(reader.counts.rows - 1)
            if len(batch) >= BATCH:
                flush(batch, rows)
                batch, rows = [], []
        if batch:
            flush(batch, rows)
        writer.close()
        if report_writer is not None:
            report_writer.close()
        rejects.close()
    except BaseException:
        writer.abort()
        if report_writer is not None:
            report_writer.abort()
        rejects.abort()
        raise
    summary.benchmarks = decon.finish()
    for counts, n in zip(summary.benchmarks, bench_removed):
        counts.records_removed = n
    summary.rows = reader.counts.rows
    summary.rejected = reader.counts.rejected
    return summary


__all__ = [
    "BATCH",
    "DEFAULT_N",
    "DEFAULT_THRESHOLD",
    "MODES",
    "BenchmarkCounts",
    "DecontaminateOptions",
    "DecontaminateSummary",
    "Decontaminator",
    "decontaminate_file",
]
