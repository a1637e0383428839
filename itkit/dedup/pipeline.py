"""The deduplication pipeline: exact -> near -> rouge, a keep policy, and a file runner.

:class:`Deduplicator` takes texts one at a time (with a response length for
``keep="longest"``) and holds only what the enabled stages need: a 128-bit hash
per distinct normalised text, a group number per text, MinHash signatures per
distinct text (computed in vectorised batches of :data:`SIGNATURE_CHUNK` texts
as they arrive) and, for the ROUGE-L stage only, the texts themselves. :meth:`Deduplicator.finish`
applies the stages in order, each to the survivors of the previous one:

- ``exact``: texts equal after normalisation form a group; one survives;
- ``near``: MinHash LSH over word n-grams; a candidate goes when the true Jaccard
  of the shingle sets is >= threshold (:mod:`itkit.dedup.verify`);
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

import dataclasses
import os
import pickle
import tempfile
from array import array
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterable

import numpy as np

from itkit.dataset import AUTO, RecordReader, RecordWriter, RejectLog
from itkit.dedup.common import COMMON_SAMPLE, IGNORE_COMMON_CHOICES, Boilerplate, detect
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
from itkit.dedup.normalize import normalize_text, number_key
from itkit.dedup.rouge import DEFAULT_ROUGE_THRESHOLD, RougeNoveltyFilter
from itkit.dedup.texts import AUTO as ON_AUTO
from itkit.dedup.texts import response_length, text_getter
from itkit.dedup.report import DEFAULT_WARN_SHARE, TextSpool, dominance_warnings
from itkit.dedup.verify import ShingleSets
from itkit.errors import UsageError
from itkit.formats import get_format
from itkit.io.sinks import RowWriter

STAGES = ("exact", "near", "rouge")
KEEP_CHOICES = ("first", "longest")
NUMBERS_CHOICES = ("significant", "ignore")
"""``significant``: the near and ROUGE-L stages only compare texts with the same numbers
(:func:`~itkit.dedup.normalize.number_key`); ``ignore``: numbers are words like any other."""
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
    numbers: str = "significant"
    ignore_common: str = "auto"
    warn_share: float = DEFAULT_WARN_SHARE

    @property
    def stages(self) -> list[str]:
        on = {"exact": self.exact, "near": self.near is not None, "rouge": self.rouge is not None}
        return [s for s in STAGES if on[s]]

    def validate(self) -> None:
        if self.keep not in KEEP_CHOICES:
            raise UsageError(f"--keep must be first or longest, not '{self.keep}'")
        if self.numbers not in NUMBERS_CHOICES:
            raise UsageError(f"--numbers must be significant or ignore, not '{self.numbers}'")
        if self.ignore_common not in IGNORE_COMMON_CHOICES:
            raise UsageError(f"--ignore-common must be auto or off, not '{self.ignore_common}'")
        if not 0.0 <= self.warn_share <= 1.0:
            raise UsageError(f"--warn-share must be between 0 and 1, not {self.warn_share}")
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
    """Record ``index`` was removed by ``stage`` as a duplicate of ``kept_index`` (similarity ``score``).

    ``estimate``: the MinHash estimate of a ``near`` removal (``score`` is the true Jaccard).
    """

    stage: str
    index: int
    kept_index: int
    score: float
    estimate: float | None = None


@dataclass
class Decisions:
    """The outcome: ``keep[i]`` for every text, the removals in index order, counts per stage."""

    keep: np.ndarray
    removals: list[Removal]
    removed: dict[str, int]
    entered: dict[str, int] = field(default_factory=dict)
    """Records each stage compared (the survivors of the stages before it)."""
    boilerplate: Boilerplate = Boilerplate()

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
        fuzzy = options.near is not None or options.rouge is not None
        self._number_keys = array("Q") if fuzzy and options.numbers == "significant" else None
        self._sample: list[str] | None = [] if fuzzy and options.ignore_common == "auto" else None
        self.boilerplate = Boilerplate()
        self._hasher: MinHasher | None = None
        self._store: SignatureStore | None = None
        self._sets: ShingleSets | None = None
        if options.near is not None:
            self._hasher = MinHasher(options.num_perm, options.ngram, options.seed)
            self._store = SignatureStore(options.num_perm)
            self._sets = ShingleSets()
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
        if new and self._number_keys is not None:
            self._number_keys.append(number_key(normalized))
        if self._lengths is not None:
            self._lengths.append(response_length)
        if self._texts is not None:
            self._texts.append(text)
        if new:
            if self._sample is not None:
                self._sample.append(normalized)
                if len(self._sample) >= COMMON_SAMPLE:
                    self._detect()
            elif self._hasher is not None:
                self._hash(normalized)
        self.count += 1
        return self.count - 1

    def add_all(self, texts: Iterable[str], response_lengths: Iterable[int] | None = None) -> None:
        if response_lengths is None:
            for text in texts:
                self.add(text)
        else:
            for text, length in zip(texts, response_lengths, strict=True):
                self.add(text, length)

    def _hash(self, normalized: str) -> None:
        assert self._hasher is not None
        self._hasher.add(self.boilerplate.strip(normalized), self._pending)
        if len(self._pending) >= SIGNATURE_CHUNK:
            self._submit()

    def _detect(self) -> None:
        """Find the boilerplate in the held first distinct texts, then hash them."""
        sample, self._sample = self._sample, None
        assert sample is not None
        self.boilerplate = detect(sample)
        if self._hasher is not None:
            for normalized in sample:
                self._hash(normalized)

    def _compared(self, text: str) -> str:
        """The text the ROUGE-L stage compares: without the boilerplate, if it has some."""
        if not self.boilerplate:
            return text
        normalized = normalize_text(text)
        rest = self.boilerplate.strip(normalized)
        return text if rest == normalized else rest

    def _submit(self) -> None:
        assert self._hasher is not None and self._store is not None
        if len(self._pending):
            batch, self._pending = self._pending, WordBatch()
            self._store.append(self._hasher.signatures(batch, self._sets))
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
        if self._sample is not None:
            self._detect()
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
        keys = self._number_keys
        labels = np.frombuffer(keys, dtype=np.uint64) if keys is not None and len(keys) else None

        alive = np.ones(n, dtype=bool)
        stage_of: list[np.ndarray] = []
        removed_of: list[np.ndarray] = []
        kept_of: list[np.ndarray] = []
        score_of: list[np.ndarray] = []
        estimate_of: list[np.ndarray] = []
        removed: dict[str, int] = {}
        entered: dict[str, int] = {}

        def record(
            stage: str, gone: np.ndarray, matched: np.ndarray, scores: np.ndarray, estimates: np.ndarray | None = None
        ) -> None:
            entered[stage] = int(alive.sum())
            alive[gone] = False
            removed[stage] = len(gone)
            stage_of.append(np.full(len(gone), STAGES.index(stage), dtype=np.int8))
            removed_of.append(gone)
            kept_of.append(matched)
            score_of.append(np.asarray(scores, dtype=np.float64))
            estimate_of.append(np.full(len(gone), np.nan) if estimates is None else np.asarray(estimates, dtype=np.float64))

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
            sets, self._sets = self._sets, None
            result = find_near_duplicates(signatures, opts.near, priority=priority, items=group_of[items], sets=sets, labels=labels)
            del signatures, sets
            record("near", items[result.removed], items[result.matched], result.score, result.estimate)

        if opts.rouge is not None:
            assert self._texts is not None
            items = np.flatnonzero(alive)
            texts = [self._compared(self._texts[i]) for i in items.tolist()]
            self._texts = None
            priority = np.argsort(rank[items], kind="stable")
            dropped = sorted(_rouge_dropped(texts, priority, opts.rouge, None if labels is None else labels[group_of[items]]))
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
            estimates = [None if e != e else e for e in np.concatenate(estimate_of)[order].tolist()]  # NaN: none
            removals = [
                Removal(STAGES[s], i, k, sc, e)
                for s, i, k, sc, e in zip(stages, gone[order].tolist(), matched, scores, estimates)
            ]
        return Decisions(alive, removals, removed, entered, self.boilerplate)

    def close(self) -> None:
        """Free the signatures and texts (the decisions stay valid)."""
        self._store = None
        self._sets = None
        self._texts = None
        self._pending = WordBatch()

    def __enter__(self) -> "Deduplicator":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _rouge_dropped(texts: list[str], priority: np.ndarray, threshold: float, labels: np.ndarray | None):
    """(index, Match) of the texts the ROUGE-L filter drops; with ``labels`` only texts of equal labels meet."""
    if labels is None:
        return RougeNoveltyFilter(threshold).filter(texts, order=priority.tolist()).dropped.items()
    dropped = []
    order = priority[np.argsort(labels[priority], kind="stable")]  # by label, priority order within
    bounds = np.flatnonzero(np.diff(labels[order])) + 1
    for part in np.split(order, bounds):
        if len(part) < 2:
            continue
        members = part.tolist()
        outcome = RougeNoveltyFilter(threshold).filter([texts[i] for i in members])
        dropped += [(members[i], dataclasses.replace(m, index=members[m.index])) for i, m in outcome.dropped.items()]
    return dropped


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
    boilerplate: list[str] = field(default_factory=list)
    """The common text the near and ROUGE-L stages left out (``--ignore-common auto``)."""
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


ProgressFn = Callable[[str], None]
"""Called with a short status message while a file run progresses."""


class _Spool:
    """Output rows parked in an anonymous temporary file until the decisions are known."""

    def __init__(self, directory: str | None):
        self._fh = tempfile.TemporaryFile(dir=directory, prefix=".itkit-dedup-")

    def add(self, row: dict) -> None:
        # one self-contained pickle per row: a shared pickler's memo would make later rows refer
        # to objects of earlier ones, which a reader cannot resolve row by row
        pickle.dump(row, self._fh, protocol=pickle.HIGHEST_PROTOCOL)

    def rows(self) -> Iterable[dict]:
        self._fh.flush()
        self._fh.seek(0)
        load = pickle.load
        while True:
            try:
                yield load(self._fh)
            except EOFError:
                return

    def close(self) -> None:
        self._fh.close()


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
    kept_index, kept_id, score; for ``near`` the score is the true Jaccard and
    ``estimate`` the MinHash estimate). ``on_error="skip"`` sends bad records to
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
    spool = _Spool(_spool_dir(output))
    texts = TextSpool(_spool_dir(output))
    ids: list[str] | None = [] if report else None
    rows_of = array("q")
    longest = options.keep == "longest"
    multi_turn = False
    try:
        with Deduplicator(options) as dedup:
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
                    }
                )
        # commit the output, then the report and the errors file (each atomically)
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
