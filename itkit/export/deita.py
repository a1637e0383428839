"""``--lft-select deita``: Deita's score-first, diversity-aware selection, with a MinHash/Jaccard guard.

Liu et al. 2023, "What Makes Good Data for Alignment?" (arXiv:2312.15685),
Algorithm 1, and the ``IterativeFilter`` of hkust-nlp/deita: walk the records
by descending score and take one only if it is not too similar to any record
already taken. Deita compares model embeddings by cosine (tau = 0.9); itkit
compares the prompts' word-bigram sets by Jaccard similarity, MinHash LSH for
the candidates and the exact Jaccard of the shingle sets for the decision (the
shingling of ``itkit dedup --near``), so no model is needed and the same input
gives the same subset. The walk fills the stratum quotas as ``quality`` does;
``--diversity random`` (one stratum) is Deita's algorithm as published. When
too few records pass the guard, the highest-scored of the skipped ones fill
the subset up to its size, each to the stratum with the fewest records so far,
and the card says how many.
"""

from __future__ import annotations

import heapq
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Sequence

from itkit.dedup import DEFAULT_NGRAM, DEFAULT_NUM_PERM, MinHasher, lsh_params, normalize_text
from itkit.dedup.minhash import WordBatch, band_keys, estimated_jaccard
from itkit.dedup.verify import VERIFY_MARGIN, ShingleSets
from itkit.export.scored import by_label, rank, take_quotas
from itkit.lazy import lazy_module

np = lazy_module("numpy")

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


def top_up(counts: Counter[str], spare: dict[str, list[int]], n: int) -> list[int]:
    """``n`` more records from ``spare`` (per stratum, best first), each to the stratum that has the fewest so far
    (then the one with the most spare records, then by name), so the strata stay as even as the data allows."""
    queue = [(counts.get(label, 0), -len(items), label) for label, items in spare.items() if items]
    heapq.heapify(queue)
    used = {label: 0 for label in spare}
    out: list[int] = []
    while queue and len(out) < n:
        have, _, label = heapq.heappop(queue)
        out.append(spare[label][used[label]])
        used[label] += 1
        left = len(spare[label]) - used[label]
        if left:
            heapq.heappush(queue, (have + 1, -left, label))
    return out


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
    chosen = take_quotas(taken, size)
    result = DeitaResult(chosen, skipped)
    if len(chosen) < size and skipped:
        spare = by_label([s.index for s in skipped], labels)
        fill = top_up(Counter(labels[i] for i in chosen), spare, size - len(chosen))
        filled = set(fill)
        result.chosen = chosen + fill
        result.skipped = [s for s in skipped if s.index not in filled]
        result.filled = len(fill)
    result.chosen.sort()
    return result
