"""Score-aware LFT selection: ``--lft-select quality`` and ``--lft-select deita``.

Both read the judge scores ``itkit score`` stores in a record's metadata
(``metadata.scores.<scorer>``, :data:`itkit.records.META_SCORES`). A record's
*score* is the named score, or the product of several (``--lft-score
quality,complexity`` is Deita's evol score, complexity x quality). Records are
ranked by descending score, ties in an order drawn from the seed.

- ``quality``: the stratum quotas of :func:`itkit.export.subset.allocate`,
  each stratum filled with its highest-scored records.
- ``deita``: Deita's score-first, diversity-aware selection (Liu et al. 2023,
  "What Makes Good Data for Alignment?", arXiv:2312.15685, Algorithm 1; the
  ``IterativeFilter`` of hkust-nlp/deita): walk the records by descending
  score and take one only if it is not too similar to any record already
  taken. Deita compares model embeddings by cosine (tau = 0.9); itkit compares
  the prompts' word-bigram sets by Jaccard similarity, MinHash LSH for the
  candidates and the exact Jaccard of the shingle sets for the decision (the
  shingling of ``itkit dedup --near``), so no model is needed and the same input
  gives the same subset. The walk fills the stratum quotas as ``quality`` does;
  ``--diversity random`` (one stratum) is Deita's algorithm as published. When
  too few records pass the guard, the highest-scored of the skipped ones fill
  the subset up to its size, and the card says how many.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any, Sequence

from itkit.dedup import DEFAULT_NGRAM, DEFAULT_NUM_PERM, MinHasher, lsh_params, normalize_text
from itkit.dedup.minhash import WordBatch, band_keys, estimated_jaccard
from itkit.dedup.verify import VERIFY_MARGIN, ShingleSets
from itkit.export.subset import allocate
from itkit.lazy import lazy_module
from itkit.records import META_SCORES, Record
from itkit.stats import percentile

np = lazy_module("numpy")

SELECT_METHODS = ("diverse", "quality", "deita")
"""``--lft-select``: diverse (stratified, seeded), quality (highest scores per stratum), deita (score-first with a
similarity guard)."""
SCORED_METHODS = ("quality", "deita")
DEFAULT_SCORE = ("quality",)
UNSCORED_CHOICES = ("error", "last")
"""``--lft-unscored``: a record without the score stops the export (error), or ranks below every scored one (last)."""
DEFAULT_SIMILARITY = 0.5
"""Deita guard: a record whose prompt has at least this Jaccard similarity (word bigrams) with the prompt of a
record already taken is skipped. 0.5: templated variants ("Write a poem about X" / "... about Y") are skipped; the
dedup default 0.8 would only skip what ``itkit dedup --near`` already removed."""
GUARD_TEXT = "prompt"
"""What the guard compares: every user turn with the input (:func:`itkit.dedup.text_getter`)."""
GUARD_BLOCK = 2048
"""Records whose signatures are computed together while walking."""
SIMILAR_EXAMPLES = 5
"""Skipped records named in the manifest and the card, with the record they resemble."""
HISTOGRAM_VALUES = 12
"""The card lists every score value when there are at most this many distinct ones."""


class BadScore(Exception):
    """A score that is not a number (the export turns it into a located InputError)."""

    def __init__(self, field: str, reason: str):
        super().__init__(reason)
        self.field = field
        self.reason = reason


def score_field(name: str) -> str:
    return f"metadata.{META_SCORES}.{name}"


def score_of(record: Record, names: Sequence[str]) -> float | None:
    """The product of the record's named scores; None when one is missing. Raises :class:`BadScore`."""
    scores = record.metadata.get(META_SCORES)
    if scores is None:
        return None
    if not isinstance(scores, dict):
        raise BadScore(f"metadata.{META_SCORES}", f"must be an object of scorer name -> number, got {type(scores).__name__}")
    product = 1.0
    for name in names:
        value = scores.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise BadScore(score_field(name), f"must be a finite number, got {value!r}")
        product *= float(value)
    return product


def missing_score(record: Record, names: Sequence[str]) -> str:
    """The first of ``names`` the record has no score for (``names[0]`` when it has none at all)."""
    scores = record.metadata.get(META_SCORES)
    if isinstance(scores, dict):
        for name in names:
            if scores.get(name) is None:
                return name
    return names[0]


def rank(scores: Sequence[float | None], seed: int) -> list[int]:
    """Indices by descending score (None after every score), equal scores in an order drawn from ``seed``."""
    tiebreak = list(range(len(scores)))
    random.Random(seed).shuffle(tiebreak)
    missing = np.fromiter((s is None for s in scores), dtype=bool, count=len(scores))
    values = np.fromiter((0.0 if s is None else -s for s in scores), dtype=np.float64, count=len(scores))
    return np.lexsort((np.asarray(tiebreak, dtype=np.int64), values, missing)).tolist()


def _by_label(order: Sequence[int], labels: Sequence[str]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for i in order:
        out.setdefault(labels[i], []).append(i)
    return dict(sorted(out.items()))


def _take(members: dict[str, list[int]], size: int) -> list[int]:
    quota = allocate({label: len(items) for label, items in members.items()}, size)
    return [i for label, items in members.items() for i in items[: quota[label]]]


def select_quality(labels: Sequence[str], scores: Sequence[float | None], size: int, seed: int) -> list[int]:
    """Indices (input order) of ``size`` records spread over ``labels``, the highest-scored of each stratum."""
    return sorted(_take(_by_label(rank(scores, seed), labels), size))


@dataclass
class Similar:
    """A record the guard skipped: the taken record it resembles and their Jaccard similarity."""

    index: int
    like: int
    jaccard: float


class SimilarityGuard:
    """Which taken record a text resembles: MinHash LSH over the taken texts, exact Jaccard of shingle sets."""

    def __init__(self, texts: Sequence[str], threshold: float, num_perm: int = DEFAULT_NUM_PERM, ngram: int = DEFAULT_NGRAM):
        self.texts = texts
        self.threshold = threshold
        self._hasher = MinHasher(num_perm, ngram)
        self._bands, self._rows = lsh_params(threshold, num_perm)
        self._sets = ShingleSets()
        self._row: dict[int, int] = {}
        self._signature: dict[int, Any] = {}
        self._keys: dict[int, list[int]] = {}
        self._buckets: list[dict[int, list[int]]] = [{} for _ in range(self._bands)]

    def prepare(self, indices: Sequence[int]) -> None:
        """Compute the signatures and shingle sets of these texts (before :meth:`nearest` is asked about them)."""
        todo = [i for i in indices if i not in self._row]
        if not todo:
            return
        batch = WordBatch()
        for i in todo:
            self._hasher.add(normalize_text(self.texts[i]), batch)
        first = len(self._sets)
        signatures = self._hasher.signatures(batch, self._sets)
        keys = band_keys(signatures, self._bands, self._rows)
        for k, i in enumerate(todo):
            self._row[i] = first + k
            self._signature[i] = signatures[k]
            self._keys[i] = keys[k].tolist()

    def nearest(self, i: int) -> tuple[int, float] | None:
        """The taken record most similar to ``i`` when their similarity is at least the threshold, else None."""
        candidates: set[int] = set()
        for band, key in enumerate(self._keys[i]):
            candidates.update(self._buckets[band].get(key, ()))
        if not candidates:
            return None
        members = sorted(candidates)
        estimates = estimated_jaccard(self._signature[i], np.stack([self._signature[j] for j in members]))
        best: tuple[int, float] | None = None
        for j, estimate in zip(members, estimates.tolist()):
            if estimate < self.threshold - VERIFY_MARGIN:
                continue
            similarity = self._sets.jaccard(self._row[i], self._row[j])
            if similarity >= self.threshold and (best is None or similarity > best[1]):
                best = (j, similarity)
        return best

    def take(self, i: int) -> None:
        for band, key in enumerate(self._keys[i]):
            self._buckets[band].setdefault(key, []).append(i)


@dataclass
class DeitaResult:
    chosen: list[int]
    """Indices in input order."""
    skipped: list[Similar] = field(default_factory=list)
    """Records the guard skipped and that stayed out of the subset, in rank order."""
    filled: int = 0
    """Skipped records taken anyway because too few passed the guard."""


def select_deita(
    labels: Sequence[str],
    scores: Sequence[float | None],
    texts: Sequence[str],
    size: int,
    seed: int,
    threshold: float = DEFAULT_SIMILARITY,
) -> DeitaResult:
    """Score-first, diversity-aware selection of ``size`` records, spread over ``labels`` (see the module docstring).

    The walk stops visiting a stratum once it has ``size`` records that passed
    the guard (no quota can be larger), and stops when every stratum has.
    """
    order = rank(scores, seed)
    strata = set(labels)
    guard = SimilarityGuard(texts, threshold)
    taken: dict[str, list[int]] = {label: [] for label in sorted(strata)}
    skipped: list[Similar] = []
    full: set[str] = set()
    pos = 0
    while pos < len(order) and len(full) < len(strata):
        block: list[int] = []
        while pos < len(order) and len(block) < GUARD_BLOCK:
            i = order[pos]
            pos += 1
            if labels[i] not in full:
                block.append(i)
        guard.prepare(block)
        for i in block:
            label = labels[i]
            if label in full:
                continue
            hit = guard.nearest(i)
            if hit is not None:
                skipped.append(Similar(i, hit[0], hit[1]))
                continue
            guard.take(i)
            taken[label].append(i)
            if len(taken[label]) >= size:
                full.add(label)
    chosen = _take(taken, size)
    result = DeitaResult(chosen, skipped)
    if len(chosen) < size and skipped:
        fill = _take(_by_label([s.index for s in skipped], labels), size - len(chosen))
        filled = set(fill)
        result.chosen = chosen + fill
        result.skipped = [s for s in skipped if s.index not in filled]
        result.filled = len(fill)
    result.chosen.sort()
    return result


@dataclass
class ScoreSummary:
    """The distribution of the score over a set of records (for the card and the manifest)."""

    records: int = 0
    unscored: int = 0
    min: float = 0.0
    p25: float = 0.0
    median: float = 0.0
    mean: float = 0.0
    p75: float = 0.0
    max: float = 0.0
    values: dict[str, int] | None = None
    """Records per score value, when there are at most :data:`HISTOGRAM_VALUES` distinct values."""

    @classmethod
    def of(cls, scores: Sequence[float | None]) -> "ScoreSummary":
        known = sorted(s for s in scores if s is not None)
        out = cls(records=len(scores), unscored=len(scores) - len(known))
        if known:
            out.min, out.max = known[0], known[-1]
            out.p25, out.median, out.p75 = (percentile(known, q) for q in (0.25, 0.5, 0.75))
            out.mean = sum(known) / len(known)
            distinct = sorted(set(known), reverse=True)
            if len(distinct) <= HISTOGRAM_VALUES:
                out.values = {f"{v:g}": known.count(v) for v in distinct}
        return out

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"records": self.records, "unscored": self.unscored}
        for name in ("min", "p25", "median", "mean", "p75", "max"):
            out[name] = round(getattr(self, name), 4)
        if self.values is not None:
            out["values"] = dict(self.values)
        return out


@dataclass
class Selection:
    """What the LFT selection did, for the summary, the card and the manifest."""

    method: str
    score: tuple[str, ...] = ()
    similarity: float | None = None
    skipped: int = 0
    """deita: records left out because they resemble a taken one."""
    filled: int = 0
    examples: list[dict[str, Any]] = field(default_factory=list)
    """deita: a few skipped records with the taken record they resemble."""
    unscored: int = 0
    """Candidates without the score (ranked last with --lft-unscored last)."""
    distributions: dict[str, ScoreSummary] = field(default_factory=dict)
    """The score over the LFT candidates, the records after the quality rules and the subset."""

    @property
    def score_name(self) -> str:
        return " x ".join(self.score)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"method": self.method}
        if self.method in SCORED_METHODS:
            out["score"] = list(self.score)
            out["unscored"] = self.unscored
            out["score_distribution"] = {name: d.as_dict() for name, d in self.distributions.items()}
        if self.method == "deita":
            out.update(similarity=self.similarity, skipped_similar=self.skipped, filled=self.filled, examples=self.examples)
        return out
