"""The deduplication pipeline: exact -> near -> semantic -> rouge, a keep policy, and a file runner.

:class:`Deduplicator` takes texts one at a time (with a response length for
``keep="longest"``) and holds only what the enabled stages need: a 128-bit hash
per distinct normalised text, a group number per text, MinHash signatures per
distinct text (computed in vectorised batches of :data:`~itkit.dedup.signing.SIGNATURE_CHUNK` texts
as they arrive) and, for the ROUGE-L stage only, the texts themselves. :meth:`Deduplicator.finish`
applies the stages in order, each to the survivors of the previous one:

- ``exact``: texts equal after normalisation form a group; one survives;
- ``near``: MinHash LSH over word n-grams; a candidate goes when the true Jaccard
  of the shingle sets is >= threshold (:mod:`itkit.dedup.verify`);
- ``semantic``: cosine of sentence embeddings >= threshold (:mod:`itkit.dedup.semantic`);
- ``rouge``: Self-Instruct's filter, ROUGE-L F1 > threshold against a kept text.

The keep policy decides which member survives and the visiting order of the
greedy stages: ``first`` prefers earlier records, ``longest`` the record with the
longest response (ties: the earlier). Every removal names the record it matched,
which survived that stage.

:func:`itkit.dedup.files.dedup_file` runs it over any input the readers accept.
"""

from __future__ import annotations

import dataclasses
from array import array
from dataclasses import dataclass, field
from typing import Iterable

from itkit.lazy import lazy_module

np = lazy_module("numpy")

from itkit.dedup.common import COMMON_SAMPLE, IGNORE_COMMON_CHOICES, Boilerplate, detect
from itkit.dedup.exact import ExactTable, key_bytes
from itkit.dedup.minhash import DEFAULT_JACCARD, DEFAULT_NGRAM, DEFAULT_NUM_PERM, DEFAULT_SEED, find_near_duplicates
from itkit.dedup.normalize import normalize_text, number_key
from itkit.dedup.rouge import DEFAULT_ROUGE_THRESHOLD, RougeNoveltyFilter
from itkit.dedup.semantic import EMBED_CHUNK, VectorStore, check_available, find_semantic_duplicates, load_embedder
from itkit.dedup.report import DEFAULT_WARN_SHARE
from itkit.dedup.signing import Signer
from itkit.dedup.spill import SPILL_AFTER, SpilledSets, SpilledSignatures
from itkit.errors import UsageError

STAGES = ("exact", "near", "semantic", "rouge")
KEEP_CHOICES = ("first", "longest")
NUMBERS_CHOICES = ("significant", "ignore")
"""``significant``: the near and ROUGE-L stages only compare texts with the same numbers
(:func:`~itkit.dedup.normalize.number_key`); ``ignore``: numbers are words like any other."""
EXACT_BATCH = 4096
"""Texts grouped by the exact stage at a time (:class:`~itkit.dedup.exact.ExactTable`)."""
PROGRESS_EVERY = 10_000


@dataclass(frozen=True)
class DedupOptions:
    """What to run. ``near``/``semantic``/``rouge`` are thresholds; None turns the stage off.

    ``embedding_model``: a local model folder for ``semantic`` (None: WordLlama).
    """

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
    spill_dir: str | None = None
    """Where the near stage spills its signatures (then it always does); None: past ``spill_after`` texts only."""
    spill_after: int = SPILL_AFTER
    semantic: float | None = None
    embedding_model: str | None = None

    @property
    def stages(self) -> list[str]:
        on = {"exact": self.exact, "near": self.near is not None, "semantic": self.semantic is not None,
              "rouge": self.rouge is not None}
        return [s for s in STAGES if on[s]]

    def validate(self) -> None:
        if self.keep not in KEEP_CHOICES:
            raise UsageError(f"--keep must be first or longest, not '{self.keep}'")
        if self.numbers not in NUMBERS_CHOICES:
            raise UsageError(f"--numbers must be significant or ignore, not '{self.numbers}'")
        if self.ignore_common not in IGNORE_COMMON_CHOICES:
            raise UsageError(f"--ignore-common must be auto or off, not '{self.ignore_common}'")
        if self.spill_after < 1:
            raise UsageError(f"spill_after must be at least 1, not {self.spill_after}")
        if not 0.0 <= self.warn_share <= 1.0:
            raise UsageError(f"--warn-share must be between 0 and 1, not {self.warn_share}")
        if not self.stages:
            raise UsageError("no stage to run: keep --exact on, or add --near, --semantic or --rouge")
        if self.near is not None:
            if not 0.0 < self.near <= 1.0:
                raise UsageError(f"the near-duplicate Jaccard threshold must be in (0, 1], not {self.near}")
            if self.num_perm < 2:
                raise UsageError(f"--num-perm must be at least 2, not {self.num_perm}")
            if self.ngram < 1:
                raise UsageError(f"--ngram must be at least 1, not {self.ngram}")
        if self.semantic is not None:
            if not 0.0 < self.semantic <= 1.0:
                raise UsageError(f"the semantic cosine threshold must be in (0, 1], not {self.semantic}")
            check_available(self.embedding_model)
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

    def __init__(self, options: DedupOptions = DedupOptions(), spill_dir: str | None = None):
        """``spill_dir``: where to spill when ``options.spill_dir`` names no folder (default: the temp folder)."""
        options.validate()
        self.options = options
        self.count = 0
        self._groups = ExactTable()
        self._keys = bytearray()  # 128-bit keys of the texts not grouped yet
        self._normalized: list[str] = []  # and their normalised forms
        self._group_of = array("q")
        self._lengths = array("q") if options.keep == "longest" else None
        self._texts: list[str] | None = [] if options.rouge is not None else None
        fuzzy = options.near is not None or options.rouge is not None or options.semantic is not None
        self._number_keys = array("Q") if fuzzy and options.numbers == "significant" else None
        self._sample: list[str] | None = [] if fuzzy and options.ignore_common == "auto" else None
        self.boilerplate = Boilerplate()
        self._signer: Signer | None = None
        if options.near is not None:
            self._signer = Signer(
                options.num_perm, options.ngram, options.seed, options.near,
                spill_where=options.spill_dir or spill_dir, spill_after=0 if options.spill_dir else options.spill_after,
            )
        self._embedder = load_embedder(options.embedding_model) if options.semantic is not None else None
        self._vectors: VectorStore | None = VectorStore() if self._embedder is not None else None
        self._to_embed: list[str] = []
        self._finished = False

    # -- collecting
    def add(self, text: str, response_length: int = 0) -> int:
        """Add the next text; returns its index."""
        if self._finished:
            raise RuntimeError("cannot add texts after Deduplicator.finish()")
        normalized = normalize_text(text)
        self._keys += key_bytes(normalized)
        self._normalized.append(normalized)
        if self._lengths is not None:
            self._lengths.append(response_length)
        if self._texts is not None:
            self._texts.append(text)
        self.count += 1
        if len(self._normalized) >= EXACT_BATCH:
            self._resolve()
        return self.count - 1

    def _resolve(self) -> None:
        """Group the texts added since the last call (one :class:`ExactTable` batch); pass the new ones on."""
        if not self._normalized:
            return
        pending, keys = self._normalized, np.frombuffer(bytes(self._keys), dtype=np.uint64).reshape(-1, 2)
        self._normalized, self._keys = [], bytearray()
        groups, new = self._groups.add_keys(keys)
        self._group_of.frombytes(groups.astype(np.int64).tobytes())
        for i in np.flatnonzero(new).tolist():
            normalized = pending[i]
            if self._number_keys is not None:
                self._number_keys.append(number_key(normalized))
            if self._sample is not None:
                self._sample.append(normalized)
                if len(self._sample) >= COMMON_SAMPLE:
                    self._detect()
            else:
                self._compare_new(normalized)

    def add_all(self, texts: Iterable[str], response_lengths: Iterable[int] | None = None) -> None:
        if response_lengths is None:
            for text in texts:
                self.add(text)
        else:
            for text, length in zip(texts, response_lengths, strict=True):
                self.add(text, length)

    def _compare_new(self, normalized: str) -> None:
        """Hash and/or embed a new distinct text (without its boilerplate) for the fuzzy stages."""
        if self._signer is None and self._embedder is None:
            return
        compared = self.boilerplate.strip(normalized)
        if self._signer is not None:
            self._signer.add(compared)
        if self._embedder is not None:
            self._to_embed.append(compared)
            if len(self._to_embed) >= EMBED_CHUNK:
                self._embed()

    def _embed(self) -> None:
        assert self._embedder is not None and self._vectors is not None
        if self._to_embed:
            texts, self._to_embed = self._to_embed, []
            self._vectors.append(self._embedder.embed(texts))

    def _detect(self) -> None:
        """Find the boilerplate in the held first distinct texts, then hash them."""
        sample, self._sample = self._sample, None
        assert sample is not None
        self.boilerplate = detect(sample)
        for normalized in sample:
            self._compare_new(normalized)

    def _compared(self, text: str) -> str:
        """The text the ROUGE-L stage compares: without the boilerplate, if it has some."""
        if not self.boilerplate:
            return text
        normalized = normalize_text(text)
        rest = self.boilerplate.strip(normalized)
        return text if rest == normalized else rest

    # -- deciding
    def finish(self) -> Decisions:
        """Apply the stages in order; returns the decisions (once: the collected data is released)."""
        if self._finished:
            raise RuntimeError("Deduplicator.finish() was already called")
        self._finished = True
        self._resolve()
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
            assert self._signer is not None
            signatures, sets = self._signer.finish()
            assert len(signatures) == len(self._groups)
            items = np.flatnonzero(alive)
            priority = np.argsort(rank[items], kind="stable")
            row_of = group_of[items]
            columns = None
            if isinstance(signatures, SpilledSignatures):
                assert isinstance(sets, SpilledSets)
                sets.finish()
                columns = signatures.columns(row_of)
            result = find_near_duplicates(
                signatures, opts.near, priority=priority, items=row_of, sets=sets, labels=labels, columns=columns
            )
            del signatures, sets, columns
            self._signer.close()
            self._signer = None
            record("near", items[result.removed], items[result.matched], result.score, result.estimate)

        if opts.semantic is not None:
            assert self._vectors is not None
            self._embed()
            vectors, self._vectors = self._vectors.matrix(), None
            assert len(vectors) == len(self._groups)
            items = np.flatnonzero(alive)
            priority = np.argsort(rank[items], kind="stable")
            result = find_semantic_duplicates(vectors, opts.semantic, priority=priority, items=group_of[items], labels=labels)
            del vectors
            record("semantic", items[result.removed], items[result.matched], result.score)

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
        """Free the signatures and texts (the decisions stay valid); stops the hashing thread and process."""
        if self._signer is not None:
            self._signer.close()
            self._signer = None
        self._texts = None
        self._normalized, self._keys = [], bytearray()
        self._vectors = None
        self._to_embed = []

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


__all__ = [
    "DEFAULT_JACCARD",
    "DEFAULT_ROUGE_THRESHOLD",
    "KEEP_CHOICES",
    "STAGES",
    "Decisions",
    "DedupOptions",
    "Deduplicator",
    "Removal",
    "dedup_texts",
]
