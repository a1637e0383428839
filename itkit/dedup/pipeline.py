"""The deduplication pipeline: exact -> near -> rouge, a keep policy, and a file runner.

:class:`Deduplicator` takes texts one at a time (with a response length for
``keep="longest"``) and holds only what the enabled stages need: a 128-bit hash
per distinct normalised text, a group number per text, MinHash signatures per
distinct text (computed in vectorised batches of :data:`SIGNATURE_CHUNK` texts
as they arrive) and, for the ROUGE-L stage only, the texts themselves. :meth:`Deduplicator.finish`
applies the stages in order, each to the survivors of the previous one:

- ``exact``: texts equal after normalisation form a group; one survives;
- ``near``: MinHash LSH over word n-grams, estimated Jaccard >= threshold;
- ``rouge``: Self-Instruct's filter, ROUGE-L F1 > threshold against a kept text.

The keep policy decides which member survives and the visiting order of the
greedy stages: ``first`` prefers earlier records, ``longest`` the record with the
longest response (ties: the earlier). Every removal names the record it matched,
which survived that stage.

:func:`dedup_file` runs it over any input the readers accept: records are read
once, their output rows spooled to a temporary file, and the kept rows written
in input order at the end (atomically, like every itkit output).
"""

from __future__ import annotations

import os
import pickle
import tempfile
from array import array
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterable

import numpy as np

from itkit.dataset import AUTO, RecordReader, RecordWriter, RejectLog
from itkit.dedup.exact import ExactGroups
from itkit.dedup.minhash import (
    DEFAULT_JACCARD,
    DEFAULT_NGRAM,
    DEFAULT_NUM_PERM,
    DEFAULT_SEED,
    MinHasher,
    SignatureStore,
    WordBatch,
    find_near_duplicates,
    lsh_params,
)
from itkit.dedup.normalize import normalize_text
from itkit.dedup.rouge import DEFAULT_ROUGE_THRESHOLD, RougeNoveltyFilter
from itkit.dedup.texts import AUTO as ON_AUTO
from itkit.dedup.texts import response_length, text_getter
from itkit.errors import UsageError
from itkit.formats import get_format
from itkit.io.sinks import RowWriter, cannot_write, commit_together

STAGES = ("exact", "near", "rouge")
KEEP_CHOICES = ("first", "longest")
SIGNATURE_CHUNK = 8192
"""Distinct texts whose MinHash signatures are computed together (one vectorised batch)."""
PROGRESS_EVERY = 10_000


@dataclass(frozen=True)
class DedupOptions:
    """What to run. ``near``/``rouge`` are thresholds; None turns the stage off."""

    exact: bool = True
    near: float | None = None
    num_perm: int = DEFAULT_NUM_PERM
    ngram: int = DEFAULT_NGRAM
    rouge: float | None = None
    keep: str = "first"
    seed: int = DEFAULT_SEED

    @property
    def stages(self) -> list[str]:
        on = {"exact": self.exact, "near": self.near is not None, "rouge": self.rouge is not None}
        return [s for s in STAGES if on[s]]

    def validate(self) -> None:
        if self.keep not in KEEP_CHOICES:
            raise UsageError(f"--keep must be first or longest, not '{self.keep}'")
        if not self.stages:
            raise UsageError("no stage to run: keep --exact on, or add --near or --rouge")
        if self.near is not None:
            if not 0.0 < self.near <= 1.0:
                raise UsageError(f"the near-duplicate Jaccard threshold must be in (0, 1], not {self.near}")
            if self.num_perm < 2:
                raise UsageError(f"--num-perm must be at least 2, not {self.num_perm}")
            if self.ngram < 1:
                raise UsageError(f"--ngram must be at least 1, not {self.ngram}")
        if self.rouge is not None and not 0.0 <= self.rouge <= 1.0:
            raise UsageError(f"the ROUGE-L threshold must be between 0 and 1, not {self.rouge}")


@dataclass(frozen=True)
class Removal:
    """Record ``index`` was removed by ``stage`` as a duplicate of ``kept_index`` (similarity ``score``)."""

    stage: str
    index: int
    kept_index: int
    score: float


@dataclass
class Decisions:
    """The outcome: ``keep[i]`` for every text, the removals in index order, counts per stage."""

    keep: np.ndarray
    removals: list[Removal]
    removed: dict[str, int]

    @property
    def kept(self) -> int:
        return int(self.keep.sum())


class Deduplicator:
    """Collects texts one by one, then decides which survive (see the module docstring).

    :meth:`finish` can be called once. Use as a context manager (or call :meth:`close`)
    to free the collected signatures and texts early.
    """

    def __init__(self, options: DedupOptions = DedupOptions()):
        options.validate()
        self.options = options
        self.count = 0
        self._groups = ExactGroups()
        self._group_of = array("q")
        self._lengths = array("q") if options.keep == "longest" else None
        self._texts: list[str] | None = [] if options.rouge is not None else None
        self._hasher: MinHasher | None = None
        self._store: SignatureStore | None = None
        if options.near is not None:
            self._hasher = MinHasher(options.num_perm, options.ngram, options.seed)
            self._store = SignatureStore(options.num_perm)
            lsh_params(options.near, options.num_perm)  # fail early on impossible settings
        self._pending = WordBatch()
        self._finished = False

    # -- collecting
    def add(self, text: str, response_length: int = 0) -> int:
        """Add the next text; returns its index."""
        if self._finished:
            raise RuntimeError("cannot add texts after Deduplicator.finish()")
        normalized = normalize_text(text)
        group, new = self._groups.add_normalized(normalized)
        self._group_of.append(group)
        if self._lengths is not None:
            self._lengths.append(response_length)
        if self._texts is not None:
            self._texts.append(text)
        if new and self._hasher is not None:
            self._hasher.add(normalized, self._pending)
            if len(self._pending) >= SIGNATURE_CHUNK:
                self._submit()
        self.count += 1
        return self.count - 1

    def add_all(self, texts: Iterable[str], response_lengths: Iterable[int] | None = None) -> None:
        if response_lengths is None:
            for text in texts:
                self.add(text)
        else:
            for text, length in zip(texts, response_lengths, strict=True):
                self.add(text, length)

    def _submit(self) -> None:
        assert self._hasher is not None and self._store is not None
        if len(self._pending):
            batch, self._pending = self._pending, WordBatch()
            self._store.append(self._hasher.signatures(batch))
            self._hasher.trim_cache()

    def _signatures(self) -> SignatureStore:
        """All signatures, one row per exact group."""
        assert self._store is not None
        self._submit()
        assert len(self._store) == len(self._groups)
        return self._store

    # -- deciding
    def finish(self) -> Decisions:
        """Apply the stages in order; returns the decisions (once: the collected data is released)."""
        if self._finished:
            raise RuntimeError("Deduplicator.finish() was already called")
        self._finished = True
        opts = self.options
        n = self.count
        index = np.arange(n, dtype=np.int64)
        group_of = np.frombuffer(self._group_of, dtype=np.int64) if n else np.zeros(0, dtype=np.int64)
        if self._lengths is not None and n:
            lengths = np.frombuffer(self._lengths, dtype=np.int64)
            visit = np.lexsort((index, -lengths))  # longest response first, then input order
        else:
            visit = index
        rank = np.empty(n, dtype=np.int64)
        rank[visit] = index

        alive = np.ones(n, dtype=bool)
        stage_of: list[np.ndarray] = []
        removed_of: list[np.ndarray] = []
        kept_of: list[np.ndarray] = []
        score_of: list[np.ndarray] = []
        removed: dict[str, int] = {}

        def record(stage: str, gone: np.ndarray, matched: np.ndarray, scores: np.ndarray) -> None:
            alive[gone] = False
            removed[stage] = len(gone)
            stage_of.append(np.full(len(gone), STAGES.index(stage), dtype=np.int8))
            removed_of.append(gone)
            kept_of.append(matched)
            score_of.append(np.asarray(scores, dtype=np.float64))

        if opts.exact:
            best_rank = np.full(len(self._groups), n, dtype=np.int64)
            np.minimum.at(best_rank, group_of, rank)
            survivor = visit[best_rank] if n else best_rank
            gone = np.flatnonzero(survivor[group_of] != index)
            record("exact", gone, survivor[group_of[gone]], np.ones(len(gone)))

        if opts.near is not None:
            signatures = self._signatures()
            self._store = None
            items = np.flatnonzero(alive)
            priority = np.argsort(rank[items], kind="stable")
            result = find_near_duplicates(signatures, opts.near, priority=priority, items=group_of[items])
            del signatures
            record("near", items[result.removed], items[result.matched], result.score)

        if opts.rouge is not None:
            assert self._texts is not None
            items = np.flatnonzero(alive)
            texts = [self._texts[i] for i in items.tolist()]
            self._texts = None
            priority = np.argsort(rank[items], kind="stable").tolist()
            outcome = RougeNoveltyFilter(opts.rouge).filter(texts, order=priority)
            dropped = sorted(outcome.dropped.items())
            record(
                "rouge",
                items[np.asarray([i for i, _ in dropped], dtype=np.int64)],
                items[np.asarray([m.index for _, m in dropped], dtype=np.int64)],
                np.asarray([m.score for _, m in dropped]),
            )

        removals: list[Removal] = []
        if removed_of:
            gone = np.concatenate(removed_of)
            order = np.argsort(gone, kind="stable")
            stages = np.concatenate(stage_of)[order].tolist()
            matched = np.concatenate(kept_of)[order].tolist()
            scores = np.concatenate(score_of)[order].tolist()
            removals = [
                Removal(STAGES[s], i, k, sc) for s, i, k, sc in zip(stages, gone[order].tolist(), matched, scores)
            ]
        return Decisions(alive, removals, removed)

    def close(self) -> None:
        """Free the signatures and texts (the decisions stay valid)."""
        self._store = None
        self._texts = None
        self._pending = WordBatch()

    def __enter__(self) -> "Deduplicator":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def dedup_texts(
    texts: Iterable[str],
    options: DedupOptions = DedupOptions(),
    response_lengths: Iterable[int] | None = None,
) -> Decisions:
    """Deduplicate a list of texts in memory (see :class:`Deduplicator`)."""
    with Deduplicator(options) as dedup:
        dedup.add_all(texts, response_lengths)
        return dedup.finish()


# ---------------------------------------------------------------- files


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

    def as_dict(self) -> dict:
        return asdict(self)


ProgressFn = Callable[[str], None]
"""Called with a short status message while a file run progresses."""


class _Spool:
    """Output rows parked in an anonymous temporary file until the decisions are known."""

    def __init__(self, directory: str | None, output: str):
        # a full disk while spooling is the output's (the spool sits beside it), or the temp folder's for stdout
        self._output = output if output != "-" else f"a temporary file in {directory or tempfile.gettempdir()}"
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
    if output == "-":
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
) -> DedupSummary:
    """Deduplicate the records of ``source`` into ``output``; see the module docstring.

    ``report``: a JSONL file with one line per removed record (stage, index, id,
    kept_index, kept_id, score). ``on_error="skip"`` sends bad records to
    ``errors`` instead of failing; they count as rejected. Nothing is written
    when an error stops the run.
    """
    options.validate()
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
    ids: list[str] | None = [] if report else None
    rows_of = array("q") if report else None
    longest = options.keep == "longest"
    multi_turn = False
    try:
        with Deduplicator(options) as dedup:
            lost: dict[int, list[str]] = {}  # record index -> fields its output row lacks (kept ones are counted)
            for record in reader:
                spool.add(writer.dump(record))
                if writer.last_dropped:
                    lost[dedup.count] = writer.last_dropped
                dedup.add(get_text(record), response_length(record) if longest else 0)
                if ids is not None and rows_of is not None:
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
        if report and ids is not None and rows_of is not None:
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
    if on == ON_AUTO:
        summary.on = "auto: instruction, prompt for multi-turn records" if multi_turn else "auto: instruction"
    summary.rows = reader.counts.rows
    summary.rejected = reader.counts.rejected
    summary.removed = {stage: decisions.removed.get(stage, 0) for stage in options.stages}
    summary.kept = decisions.kept
    return summary


__all__ = [
    "DEFAULT_JACCARD",
    "DEFAULT_ROUGE_THRESHOLD",
    "KEEP_CHOICES",
    "STAGES",
    "Decisions",
    "DedupOptions",
    "DedupSummary",
    "Deduplicator",
    "Removal",
    "dedup_file",
    "dedup_texts",
]
