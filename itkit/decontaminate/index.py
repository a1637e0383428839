"""The benchmarks' n-grams in memory, and matching a batch of training texts against them.

:class:`NgramIndex` holds, for one side (the benchmark questions, or the answers),
every item's distinct n-gram hashes in a sorted numpy array with the item each
came from, and a bitmap of their low bits that rules out almost every training
n-gram before the binary search. :meth:`NgramIndex.match` takes a batch of
texts and returns, for each (text, item) pair sharing at least one n-gram, the
number of the item's distinct n-grams found in the text and that number's share of
the item's n-grams (the Tulu 3 coverage score).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from itkit.lazy import lazy_module

np = lazy_module("numpy")

from itkit.decontaminate.ngrams import batch_ngrams

BITMAP_BITS_MAX = 27
"""The prefilter bitmap has at most 2**27 one-byte slots (128 MB), at least 16 per n-gram up to that."""


@dataclass
class Matches:
    """The (text, item) pairs of one batch that share n-grams: arrays of equal length, sorted by text then item."""

    text: np.ndarray
    item: np.ndarray
    shared: np.ndarray
    """Distinct n-grams of the item found in the text."""
    share: np.ndarray
    """``shared`` / the item's distinct n-grams."""


def _empty() -> Matches:
    z = np.zeros(0, dtype=np.int64)
    return Matches(z, z, z, np.zeros(0, dtype=np.float64))


class NgramIndex:
    """The distinct n-grams of ``texts`` (one per benchmark item, "" for none); see the module docstring."""

    def __init__(self, texts: Sequence[str], n: int):
        self.n = n
        self.items = len(texts)
        h, owner, self.words = batch_ngrams(texts, n)
        """``words``: how many words each item's text has."""
        order = np.lexsort((h, owner))
        h, owner = h[order], owner[order]
        first = np.ones(len(h), dtype=np.bool_)
        first[1:] = (h[1:] != h[:-1]) | (owner[1:] != owner[:-1])
        self.item_hashes, owner = h[first], owner[first]
        """Each item's distinct hashes, item after item (``offsets`` says where each starts)."""
        self.counts = np.bincount(owner, minlength=self.items).astype(np.int64)
        """Distinct n-grams per item (0: the item has fewer than n words)."""
        self.offsets = np.concatenate(([0], np.cumsum(self.counts)))
        order = np.argsort(self.item_hashes, kind="stable")
        self.hashes = self.item_hashes[order]
        self.owner = owner[order]
        total = len(self.hashes)
        bits = min(BITMAP_BITS_MAX, max(10, int(np.ceil(np.log2(max(total, 1) * 16)))))
        self.mask = np.uint64((1 << bits) - 1)
        self.bitmap = np.zeros(1 << bits, dtype=np.bool_)
        self.bitmap[self.hashes & self.mask] = True

    def of_item(self, item: int) -> np.ndarray:
        return self.item_hashes[self.offsets[item] : self.offsets[item + 1]]

    @property
    def nbytes(self) -> int:
        return self.item_hashes.nbytes + self.hashes.nbytes + self.owner.nbytes + self.bitmap.nbytes

    def match(self, texts: Sequence[str]) -> Matches:
        """The items sharing n-grams with each text (see :class:`Matches`)."""
        if not len(self.hashes):
            return _empty()
        h, text, _ = batch_ngrams(texts, self.n)
        if not len(h):
            return _empty()
        maybe = self.bitmap[h & self.mask]
        h, text = h[maybe], text[maybe]
        if not len(h):
            return _empty()
        # one entry per distinct (text, n-gram)
        order = np.lexsort((h, text))
        h, text = h[order], text[order]
        first = np.ones(len(h), dtype=np.bool_)
        first[1:] = (h[1:] != h[:-1]) | (text[1:] != text[:-1])
        h, text = h[first], text[first]
        lo = np.searchsorted(self.hashes, h, "left")
        hi = np.searchsorted(self.hashes, h, "right")
        found = hi - lo
        if not found.any():
            return _empty()
        total = int(found.sum())
        within = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(found) - found, found)
        items = self.owner[np.repeat(lo, found) + within]
        texts = np.repeat(text, found)
        key = texts * self.items + items
        pairs, shared = np.unique(key, return_counts=True)
        item = pairs % self.items
        return Matches(pairs // self.items, item, shared.astype(np.int64), shared / self.counts[item])


__all__ = ["BITMAP_BITS_MAX", "Matches", "NgramIndex"]
