"""The greedy decision step (:func:`itkit.dedup.decide.decide_near`) against the plain greedy it replaced.

``reference_decide`` is the earlier implementation, kept here verbatim as the specification: Python
lists of kept items per bucket, a set of candidates per item. The array version must make exactly the
same removals, matches, scores and estimates, whatever the buckets, the visiting order and the labels.
"""

from __future__ import annotations

import numpy as np
import pytest

from itkit.dedup import decide
from itkit.dedup.lsh import NearResult, SignatureStore, bucket_members, decide_near, visiting_rank
from itkit.dedup.verify import VERIFY_MARGIN


def reference_decide(
    items_all: np.ndarray,
    buckets_all: np.ndarray,
    bucket_count: int,
    rank: np.ndarray,
    store,
    row_of: np.ndarray,
    threshold: float,
    sets: ShingleSets | None = None,
    labels: np.ndarray | None = None,
) -> NearResult:
    """The greedy keep policy over bucket memberships (see :func:`find_near_duplicates`).

    ``store`` gives signature rows (``row(i)``: a :class:`SignatureStore` or a spilled one),
    ``sets`` their shingle sets (anything with ``jaccard(i, j)``), ``row_of[item]`` an item's row.
    """
    num_perm = store.num_perm
    empty = np.zeros(0, dtype=np.int64)
    if not len(items_all):
        return NearResult(empty, empty, np.zeros(0), estimate=np.zeros(0))
    # group each item's buckets; visit items in priority order
    by_item = np.lexsort((buckets_all, rank[items_all]))
    items_sorted = items_all[by_item]
    buckets_sorted = buckets_all[by_item].tolist()
    boundaries = np.flatnonzero(np.diff(items_sorted)) + 1
    starts = np.concatenate([[0], boundaries]).tolist()
    stops = np.concatenate([boundaries, [len(items_sorted)]]).tolist()
    visit_items = items_sorted[np.concatenate([[0], boundaries])].tolist()
    del by_item, items_sorted

    kept_in: list[list[int] | None] = [None] * bucket_count
    removed: list[int] = []
    matched: list[int] = []
    scores: list[float] = []
    estimates: list[float] = []
    floor = round((threshold - VERIFY_MARGIN) * num_perm, 9) if sets is not None else threshold * num_perm
    compared = 0
    rank_of = rank.tolist()
    row_list = row_of.tolist()
    row = store.row
    label_of = None if labels is None else np.asarray(labels).tolist()
    for item, lo, hi in zip(visit_items, starts, stops):
        its_buckets = buckets_sorted[lo:hi]
        candidates: set[int] = set()
        for b in its_buckets:
            lst = kept_in[b]
            if lst:
                candidates.update(lst)
        if candidates and label_of is not None:
            mine = label_of[row_list[item]]
            candidates = {c for c in candidates if label_of[row_list[c]] == mine}
        if candidates:
            compared += len(candidates)
            signature = row(row_list[item])
            cand = sorted(candidates, key=rank_of.__getitem__)
            if len(cand) == 1:
                counts = [int(np.count_nonzero(signature == row(row_list[cand[0]])))]
            else:
                counts = np.count_nonzero(np.stack([row(row_list[c]) for c in cand]) == signature, axis=1).tolist()
            best, score, estimate = -1, -1.0, 0.0
            for c, equal in zip(cand, counts):  # earliest-visited first: it wins ties
                if equal < floor:
                    continue
                similarity = equal / num_perm if sets is None else sets.jaccard(row_list[item], row_list[c])
                if similarity > score:
                    best, score, estimate = c, similarity, equal / num_perm
            if score >= threshold:
                removed.append(item)
                matched.append(best)
                scores.append(score)
                estimates.append(estimate)
                continue
        for b in its_buckets:
            lst = kept_in[b]
            if lst is None:
                kept_in[b] = [item]
            else:
                lst.append(item)
    return NearResult(
        np.asarray(removed, dtype=np.int64),
        np.asarray(matched, dtype=np.int64),
        np.asarray(scores),
        compared,
        np.asarray(estimates),
    )



class _Sets:
    """Shingle sets of each row: random small sets, so true Jaccard values vary."""

    def __init__(self, rng: np.random.Generator, rows: int):
        self._sets = [set(rng.integers(0, 12, rng.integers(1, 8)).tolist()) for _ in range(rows)]

    def jaccard(self, i: int, j: int) -> float:
        a, b = self._sets[i], self._sets[j]
        return len(a & b) / len(a | b)


def _case(seed: int, *, items: int, rows: int, bands: int, alphabet: int, num_perm: int = 16):
    rng = np.random.default_rng(seed)
    # few distinct values per signature position: many shared buckets, many near pairs
    base = rng.integers(0, 4, (rows // 3 + 1, num_perm), dtype=np.uint32)
    signatures = base[rng.integers(0, len(base), rows)].copy()
    noise = rng.random(signatures.shape) < 0.25
    signatures[noise] = rng.integers(0, 4, int(noise.sum()), dtype=np.uint32)
    row_of = rng.integers(0, rows, items)
    keys = rng.integers(0, alphabet, (items, bands)).astype(np.uint64)
    columns = [(np.sort(keys[:, b]), np.argsort(keys[:, b], kind="stable")) for b in range(bands)]
    priority = rng.permutation(items)
    return rng, SignatureStore(num_perm, [signatures]), row_of, columns, visiting_rank(items, priority)


def _same(a: NearResult, b: NearResult) -> None:
    assert a.removed.tolist() == b.removed.tolist()
    assert a.matched.tolist() == b.matched.tolist()
    assert a.score.tolist() == b.score.tolist()
    assert a.estimate.tolist() == b.estimate.tolist()
    assert a.candidates == b.candidates


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("verified", [False, True])
@pytest.mark.parametrize("labelled", [False, True])
def test_same_decisions_as_the_plain_greedy(seed, verified, labelled):
    rng, store, row_of, columns, rank = _case(seed, items=300, rows=200, bands=4, alphabet=40 + 30 * (seed % 3))
    sets = _Sets(rng, 200) if verified else None
    labels = rng.integers(0, 3, 200).astype(np.uint64) if labelled else None
    items, buckets, count = bucket_members(columns)
    threshold = 0.5 + 0.05 * (seed % 4)
    want = reference_decide(items, buckets, count, rank, store, row_of, threshold, sets, labels)
    got = decide_near(items, buckets, count, rank, store, row_of, threshold, sets, labels)
    assert len(want.removed), "the case must remove something"
    _same(got, want)


def test_chunks_end_on_item_boundaries(monkeypatch):
    """Processed a few memberships at a time, the decisions are the same as all at once."""
    _, store, row_of, columns, rank = _case(99, items=400, rows=250, bands=6, alphabet=30)
    items, buckets, count = bucket_members(columns)
    whole = decide_near(items, buckets, count, rank, store, row_of, 0.6)
    monkeypatch.setattr(decide, "DECIDE_CHUNK", 5)
    _same(decide_near(items, buckets, count, rank, store, row_of, 0.6), whole)
    _same(whole, reference_decide(items, buckets, count, rank, store, row_of, 0.6))

