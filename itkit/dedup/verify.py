"""True Jaccard similarity of shingle sets: the check every MinHash candidate passes before a removal.

A MinHash signature only *estimates* the Jaccard similarity of two shingle sets (128
permutations: a standard error of ~0.035 at 0.8), so LSH candidates whose estimate
clears the threshold include pairs whose true similarity does not. :class:`ShingleSets`
keeps, per signature row, the sorted distinct shingle hashes the signature was computed
from (the high 32 bits of each 64-bit shingle hash: 4 bytes a shingle; two different
shingles collide with probability 2**-32), and :meth:`ShingleSets.jaccard` gives the exact
similarity of two rows, cheap for instruction-length texts.
"""

from __future__ import annotations

import bisect

from itkit.lazy import lazy_module

np = lazy_module("numpy")

VERIFY_MARGIN = 0.1
"""Candidates whose estimate is this far below the threshold are verified too (the estimate
errs in both directions, so a true duplicate can be estimated under the threshold)."""


def sorted_sets(shingles: np.ndarray, per_row: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(values, offsets): row ``i``'s distinct shingles (high 32 bits, sorted) are ``values[offsets[i]:offsets[i+1]]``."""
    per_row = np.asarray(per_row, dtype=np.int64)
    # one sort of (row << 32 | value): rows in order, each row's values sorted
    keys = np.repeat(np.arange(len(per_row), dtype=np.uint64) << np.uint64(32), per_row)
    keys |= np.asarray(shingles, dtype=np.uint64) >> np.uint64(32)
    keys.sort()
    first = np.ones(len(keys), dtype=bool)
    np.not_equal(keys[1:], keys[:-1], out=first[1:])
    keys = keys[first]
    values = keys.astype(np.uint32)  # the low half: the value
    row_of = (keys >> np.uint64(32)).astype(np.int64)
    offsets = np.zeros(len(per_row) + 1, dtype=np.int64)
    np.cumsum(np.bincount(row_of, minlength=len(per_row)), out=offsets[1:])
    return values, offsets


def jaccard_of(a: np.ndarray, b: np.ndarray) -> float:
    """|A & B| / |A | B| of two sorted sets of distinct values."""
    shared = len(np.intersect1d(a, b, assume_unique=True))
    return shared / (len(a) + len(b) - shared)


class ShingleSets:
    """Sorted distinct shingle hashes (uint32) per row, stored in blocks (appended like signatures)."""

    def __init__(self) -> None:
        self._values: list[np.ndarray] = []
        self._offsets: list[np.ndarray] = []
        self._ends: list[int] = []

    def __len__(self) -> int:
        return self._ends[-1] if self._ends else 0

    def append(self, shingles: np.ndarray, per_row: np.ndarray) -> None:
        """Add ``len(per_row)`` rows: ``per_row[i]`` consecutive 64-bit hashes of ``shingles`` each."""
        if not len(per_row):
            return
        self.append_sorted(*sorted_sets(shingles, per_row))

    def append_sorted(self, values: np.ndarray, offsets: np.ndarray) -> None:
        """Rows already in :func:`sorted_sets` form."""
        if len(offsets) > 1:
            self._values.append(values)
            self._offsets.append(offsets)
            self._ends.append(len(self) + len(offsets) - 1)

    def blocks(self):
        """(values, offsets) of each appended block, in order."""
        return zip(self._values, self._offsets)

    def row(self, i: int) -> np.ndarray:
        b = bisect.bisect_right(self._ends, i)
        local = i - (self._ends[b - 1] if b else 0)
        offsets = self._offsets[b]
        return self._values[b][offsets[local] : offsets[local + 1]]

    def jaccard(self, i: int, j: int) -> float:
        """|A & B| / |A | B| of rows ``i`` and ``j``."""
        if i == j:
            return 1.0
        return jaccard_of(self.row(i), self.row(j))
