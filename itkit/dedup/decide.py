"""The greedy keep policy of the near-duplicate stage: :func:`decide_near` over LSH bucket memberships.

:func:`itkit.dedup.lsh.bucket_members` gives every membership of a bucket of two or more items;
:func:`decide_near` visits the items in priority order and removes an item whose verified similarity
with a kept candidate of its buckets reaches the threshold (see :func:`itkit.dedup.lsh.find_near_duplicates`).
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field

from itkit.lazy import lazy_module

np = lazy_module("numpy")

from itkit.dedup.verify import VERIFY_MARGIN, ShingleSets


@dataclass
class NearResult:
    """``removed[i]`` was matched to the kept ``matched[i]`` with Jaccard ``score[i]`` (estimated ``estimate[i]``).

    ``score`` is the true Jaccard of the shingle sets when they were given, else the estimate.

    Indices are item numbers (rows of the signature matrix given to :func:`find_near_duplicates`).
    """

    removed: np.ndarray
    matched: np.ndarray
    score: np.ndarray
    candidates: int = 0
    estimate: np.ndarray = field(default_factory=lambda: np.zeros(0))


def index_type(n: int):
    """The smallest signed integer type that holds indices below ``n``."""
    return np.int32 if n < 2**31 else np.int64


DECIDE_CHUNK = 1 << 20
"""Bucket memberships turned into Python lists at a time by :func:`decide_near` (bounds its memory)."""


def _as_array(values: np.ndarray, code: str = "q") -> array:
    """A numpy vector as an ``array.array`` (8 bytes an entry, and Python ints out of it quickly)."""
    out = array(code)
    out.frombytes(np.ascontiguousarray(values, dtype=np.int64 if code == "q" else np.uint64).tobytes())
    return out


def decide_near(
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

    Items are visited in ``rank`` order; an item's candidates are the items visited before it in
    any of its buckets that were kept. The memberships are held in numpy arrays: per bucket its
    members in visiting order (so the members visited before an item are a slice), and one kept
    flag a byte per item; only the items that share a bucket with an earlier one are visited in Python,
    :data:`DECIDE_CHUNK` memberships at a time.
    """
    num_perm = store.num_perm
    empty = np.zeros(0, dtype=np.int64)
    if not len(items_all):
        return NearResult(empty, empty, np.zeros(0), estimate=np.zeros(0))
    n_items, memberships = len(rank), len(items_all)
    place_type = index_type(memberships)
    item_rank = rank.astype(index_type(n_items))[items_all]
    # per bucket, its members by rank: the members before an item are visited before it
    if bucket_count * n_items < 2**63:  # one int64 key sorts faster than lexsort's two
        key = buckets_all.astype(np.int64)
        key *= n_items
        key += item_rank
        by_bucket = np.argsort(key)
        del key
    else:
        by_bucket = np.lexsort((item_rank, buckets_all))
    members = items_all[by_bucket].astype(index_type(n_items))
    position = np.empty(memberships, dtype=place_type)
    position[by_bucket] = np.arange(memberships, dtype=place_type)
    del by_bucket
    first = np.zeros(bucket_count + 1, dtype=np.int64)
    np.cumsum(np.bincount(buckets_all, minlength=bucket_count), out=first[1:])
    start = first[buckets_all].astype(place_type)
    del first
    later = np.flatnonzero(position > start)  # memberships with an earlier member in their bucket
    # visit them by the item's rank (its memberships together)
    later = later[np.argsort(item_rank[later], kind="stable")]
    del item_rank
    visit_item, visit_start, visit_stop = items_all[later], start[later], position[later]
    del later, start, position

    kept = bytearray(b"\x01") * n_items  # an item stays kept unless it is removed; removals only happen here
    removed: list[int] = []
    matched: list[int] = []
    scores: list[float] = []
    estimates: list[float] = []
    floor = round((threshold - VERIFY_MARGIN) * num_perm, 9) if sets is not None else threshold * num_perm
    compared = 0
    rank_of = _as_array(rank)
    row_list = _as_array(row_of)
    row = store.row
    label_of = None if labels is None else _as_array(np.asarray(labels).astype(np.uint64), "Q")
    total = len(visit_item)
    lo = 0
    while lo < total:
        hi = min(total, lo + DECIDE_CHUNK)
        if hi < total:  # end the chunk on an item boundary
            last = visit_item[hi - 1]
            while hi < total and visit_item[hi] == last:
                hi += 1
        chunk_items = visit_item[lo:hi].tolist()
        chunk_start = visit_start[lo:hi].tolist()
        chunk_stop = visit_stop[lo:hi].tolist()
        k, end = 0, hi - lo
        while k < end:
            item = chunk_items[k]
            candidates: set[int] = set()
            while k < end and chunk_items[k] == item:
                a, b = chunk_start[k], chunk_stop[k]
                if b - a == 1:
                    c = int(members[a])
                    if kept[c]:
                        candidates.add(c)
                else:
                    candidates.update(c for c in members[a:b].tolist() if kept[c])
                k += 1
            if candidates and label_of is not None:
                mine = label_of[row_list[item]]
                candidates = {c for c in candidates if label_of[row_list[c]] == mine}
            if not candidates:
                continue
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
                kept[item] = 0
                removed.append(item)
                matched.append(best)
                scores.append(score)
                estimates.append(estimate)
        lo = hi
    return NearResult(
        np.asarray(removed, dtype=np.int64),
        np.asarray(matched, dtype=np.int64),
        np.asarray(scores),
        compared,
        np.asarray(estimates),
    )


__all__ = ["DECIDE_CHUNK", "NearResult", "decide_near", "index_type"]
