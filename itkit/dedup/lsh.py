"""LSH banding and the greedy keep policy of the near-duplicate stage, in separable steps.

1. :func:`band_keys`: a 64-bit key per band of each signature row;
2. :func:`sorted_band_columns`: per band, the items sorted by their key (in memory here;
   :mod:`itkit.dedup.spill` merges sorted shards on disk into the same columns);
3. :func:`bucket_members`: the buckets (runs of equal keys) with two or more items;
4. :func:`~itkit.dedup.decide.decide_near` (:mod:`itkit.dedup.decide`): items visited in priority
   order, each verified against the kept candidates of its buckets (:mod:`itkit.dedup.verify`) and
   removed or kept.

:func:`find_near_duplicates` chains them for signatures held in memory. Any executor that
produces the same sorted columns (same keys, same items) gets the same decisions: bucket
numbers follow key order, and a bucket is a set.
"""

from __future__ import annotations

import bisect
import functools
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Iterable, Iterator, Sequence

from itkit.lazy import lazy_module

np = lazy_module("numpy")

from itkit.dedup.decide import NearResult, decide_near, index_type
from itkit.dedup.verify import ShingleSets

LSH_SEED = 1
DEFAULT_THRESHOLD = 0.8
"""The Jaccard threshold of :func:`find_near_duplicates` when none is given (``minhash.DEFAULT_JACCARD``)."""
FP_WEIGHT = 0.1
FN_WEIGHT = 0.9
"""Weights of the false-positive and false-negative areas when choosing bands (verification
removes false positives, nothing brings back a false negative)."""
_KEY_MIX = 0x9E3779B97F4A7C15


@functools.lru_cache(maxsize=64)
def lsh_params(
    threshold: float, num_perm: int, fp_weight: float = FP_WEIGHT, fn_weight: float = FN_WEIGHT
) -> tuple[int, int]:
    """(bands, rows) with ``bands * rows <= num_perm`` minimising the weighted error areas.

    For a pair of Jaccard similarity ``s`` the probability to share a bucket is
    ``1 - (1 - s**rows)**bands``; the false-positive area integrates it over
    ``[0, threshold]``, the false-negative area its complement over
    ``[threshold, 1]`` (as datasketch's ``_optimal_param``).
    """
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"the Jaccard threshold must be in (0, 1], not {threshold}")
    best: tuple[float, int, int] | None = None
    for bands in range(1, num_perm + 1):
        for rows in range(1, num_perm // bands + 1):
            lo = np.linspace(0.0, threshold, 201)
            hi = np.linspace(threshold, 1.0, 201)
            fp = np.trapezoid(1 - (1 - lo**rows) ** bands, lo)
            fn = np.trapezoid((1 - hi**rows) ** bands, hi)
            error = fp * fp_weight + fn * fn_weight
            if best is None or error < best[0] - 1e-15:
                best = (error, bands, rows)
    assert best is not None
    return best[1], best[2]


class SignatureStore:
    """Signature rows kept as a list of blocks, so a growing collection is never copied whole.

    ``append`` adds a block of rows; ``take(rows)`` gathers rows (any order) into one array.
    """

    def __init__(self, num_perm: int, blocks: Iterable[np.ndarray] = ()):
        self.num_perm = num_perm
        self._blocks: list[np.ndarray] = []
        self._ends: list[int] = []
        for block in blocks:
            self.append(block)

    def append(self, block: np.ndarray) -> None:
        if block.ndim != 2 or block.shape[1] != self.num_perm:
            raise ValueError(f"signature blocks must have {self.num_perm} columns, got shape {block.shape}")
        if len(block):
            self._blocks.append(block)
            self._ends.append(len(self) + len(block))

    def __len__(self) -> int:
        return self._ends[-1] if self._ends else 0

    @property
    def blocks(self) -> list[np.ndarray]:
        return self._blocks

    def row(self, i: int) -> np.ndarray:
        b = bisect.bisect_right(self._ends, i)
        return self._blocks[b][i - (self._ends[b - 1] if b else 0)]

    def take(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        if len(self._blocks) == 1:
            return self._blocks[0][rows]
        ends = np.asarray(self._ends, dtype=np.int64)
        which = np.searchsorted(ends, rows, side="right")
        out = np.empty((len(rows), self.num_perm), dtype=self._blocks[0].dtype if self._blocks else np.uint32)
        for b in np.unique(which).tolist():
            mask = which == b
            out[mask] = self._blocks[b][rows[mask] - (ends[b - 1] if b else 0)]
        return out


def band_multipliers(rows: int, seed: int = LSH_SEED) -> np.ndarray:
    rng = np.random.Generator(np.random.PCG64(seed + 7919))
    return rng.integers(0, 2**64, rows, dtype=np.uint64, endpoint=False) | np.uint64(1)


def block_band_keys(block: np.ndarray, bands: int, rows: int, seed: int = LSH_SEED) -> np.ndarray:
    """``(len(block), bands)`` uint64 bucket keys of one block of signature rows (see :func:`band_keys`)."""
    values = block[:, : bands * rows].astype(np.uint64).reshape(len(block), bands, rows)
    values *= band_multipliers(rows, seed)
    part = values.sum(axis=2, dtype=np.uint64)
    part ^= part >> np.uint64(31)
    part *= np.uint64(_KEY_MIX)
    part ^= part >> np.uint64(29)
    return part


def band_keys(signatures: np.ndarray | SignatureStore, bands: int, rows: int, seed: int = LSH_SEED) -> np.ndarray:
    """``(n, bands)`` uint64 bucket keys: a hash of each band's ``rows`` signature values.

    A random linear combination of the values (mod 2**64), then mixed; two different
    bands collide with negligible probability (and candidates are verified anyway).
    Blocks are keyed in :data:`BAND_THREADS` threads (numpy leaves the interpreter lock meanwhile).
    """
    store = signatures if isinstance(signatures, SignatureStore) else SignatureStore(signatures.shape[1], [signatures])
    keys = np.empty((len(store), bands), dtype=np.uint64)
    starts = np.cumsum([0] + [len(block) for block in store.blocks]).tolist()

    def key(b: int) -> None:
        keys[starts[b] : starts[b + 1]] = block_band_keys(store.blocks[b], bands, rows, seed)

    _in_threads(key, range(len(store.blocks)))
    return keys


BAND_THREADS = max(1, min(4, os.cpu_count() or 1))
"""Threads that key the signature blocks and sort the band columns of an in-memory near stage."""


def _in_threads(fn, args) -> list:
    args = list(args)
    if BAND_THREADS == 1 or len(args) < 2:
        return [fn(a) for a in args]
    with ThreadPoolExecutor(min(BAND_THREADS, len(args)), thread_name_prefix="itkit-lsh") as pool:
        return list(pool.map(fn, args))


def sorted_band_columns(keys: np.ndarray, row_of: np.ndarray | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Per band: (the keys of every item sorted, the item of each), items being rows or ``row_of``'s entries."""
    for band in range(keys.shape[1]):
        k = keys[:, band] if row_of is None else keys[row_of, band]
        order = np.argsort(k)
        yield k[order], order


def _band_buckets(sk: np.ndarray, order: np.ndarray) -> tuple[np.ndarray, np.ndarray, int] | None:
    """(items, bucket of each, bucket count) of one band's buckets of two or more items (numbered from 0
    in key order; the memberships come in that order)."""
    n = len(sk)
    if n < 2:
        return None
    new_run = np.empty(n, dtype=bool)
    new_run[0] = True
    np.not_equal(sk[1:], sk[:-1], out=new_run[1:])
    run_id = np.cumsum(new_run) - 1
    run_size = np.bincount(run_id)
    shared = run_size[run_id] > 1
    if not shared.any():
        return None
    runs = run_id[shared]  # non-decreasing: number the shared runs in order
    first_of_run = np.empty(len(runs), dtype=bool)
    first_of_run[0] = True
    np.not_equal(runs[1:], runs[:-1], out=first_of_run[1:])
    local = np.cumsum(first_of_run) - 1
    return order[shared].astype(index_type(n)), local, int(local[-1]) + 1


def _join_bands(per_band: Iterable[tuple[np.ndarray, np.ndarray, int] | None]) -> tuple[np.ndarray, np.ndarray, int]:
    member_items: list[np.ndarray] = []
    member_buckets: list[np.ndarray] = []
    next_bucket = 0
    for found in per_band:
        if found is None:
            continue
        items, local, count = found
        member_items.append(items)
        local += next_bucket
        member_buckets.append(local)
        next_bucket += count
    if not member_items:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, 0
    items = np.concatenate(member_items)
    del member_items
    return items, np.concatenate(member_buckets, dtype=index_type(next_bucket)), next_bucket


def bucket_members(columns: Iterable[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray, int]:
    """(items, buckets, bucket count): every membership of a bucket of two or more items.

    ``columns`` gives, per band, the items' keys in sorted order and the item of each; a bucket
    is a run of equal keys in one band, numbered band by band in key order.
    """
    return _join_bands(_band_buckets(sk, order) for sk, order in columns)


def bucket_members_of_keys(keys: np.ndarray, row_of: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """:func:`bucket_members` of :func:`sorted_band_columns`, the bands sorted in :data:`BAND_THREADS` threads."""

    def band(b: int):
        k = keys[:, b] if row_of is None else keys[row_of, b]
        order = np.argsort(k)
        return _band_buckets(k[order], order)

    return _join_bands(_in_threads(band, range(keys.shape[1])))


def visiting_rank(n: int, priority: np.ndarray | None) -> np.ndarray:
    """``rank[item]``: its place in the visiting order (``priority``, a permutation; default: item order)."""
    visit = np.arange(n) if priority is None else np.asarray(priority, dtype=np.int64)
    rank = np.empty(n, dtype=np.int64)
    rank[visit] = np.arange(n)
    return rank


def find_near_duplicates(
    signatures: np.ndarray | SignatureStore,
    threshold: float = DEFAULT_THRESHOLD,
    priority: np.ndarray | None = None,
    bands: int | None = None,
    rows: int | None = None,
    items: np.ndarray | None = None,
    sets: ShingleSets | None = None,
    labels: np.ndarray | None = None,
    columns: Iterable[tuple[np.ndarray, np.ndarray]] | None = None,
) -> NearResult:
    """Greedy near-duplicate removal.

    The items are the signature rows, or ``signatures[items[i]]`` for item ``i``
    when ``items`` is given (several items may share a row). Items are visited
    by ``priority`` (a permutation of item numbers: earlier means preferred;
    default: item order). An item whose estimated Jaccard with an LSH candidate
    kept before it is ``>= threshold`` is removed, matched to the most similar
    such item (ties: the one visited first). ``bands``/``rows`` default to
    :func:`lsh_params`. With ``sets`` (the shingle sets of the signature rows) the
    similarity that decides is the true Jaccard of candidates whose estimate is at
    least ``threshold - VERIFY_MARGIN``. With ``labels`` (one per signature row) only
    rows with equal labels are compared (``--numbers significant``: their numbers).
    ``columns``: the items' sorted band keys when they come from elsewhere (spilled shards).
    """
    store = signatures if not isinstance(signatures, np.ndarray) else SignatureStore(signatures.shape[1], [signatures])
    num_perm = store.num_perm
    if bands is None or rows is None:
        bands, rows = lsh_params(threshold, num_perm)
    if bands * rows > num_perm:
        raise ValueError(f"{bands} bands of {rows} rows need {bands * rows} permutations; there are {num_perm}")
    row_of = np.arange(len(store)) if items is None else np.asarray(items, dtype=np.int64)
    n = len(row_of)
    if n < 2:
        empty = np.zeros(0, dtype=np.int64)
        return NearResult(empty, empty, np.zeros(0), estimate=np.zeros(0))
    rank = visiting_rank(n, priority)
    if columns is None:
        items_all, buckets_all, bucket_count = bucket_members_of_keys(
            band_keys(store, bands, rows), None if items is None else row_of
        )
    else:
        items_all, buckets_all, bucket_count = bucket_members(columns)
    return decide_near(items_all, buckets_all, bucket_count, rank, store, row_of, threshold, sets, labels)
