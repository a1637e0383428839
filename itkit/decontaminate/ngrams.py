"""Hashed word n-grams: the unit decontamination compares.

A text is normalised as deduplication does (:func:`itkit.dedup.normalize.normalize_text`:
NFKC, case folding, whitespace collapsed) and cut into words by
:func:`itkit.dedup.normalize.words` (punctuation dropped; each Chinese/Japanese
character a word). So "The QUICK, brown fox!" and "the quick brown fox" have the
same n-grams. Unlike dedup's shingles, n-grams span sentence ends: a copied
passage is a copy whatever its punctuation.

Each word is hashed with Python's own string hash (SipHash, 64 bits, computed in C;
salted per process, which is harmless: benchmark and training texts are hashed in
the same process and no hash is stored), and the hash of an n-gram is a polynomial
of its words' hashes modulo 2**64, computed for a whole batch of texts in a few
numpy operations (:func:`batch_ngrams`). Two different n-grams share a hash with
probability about 2**-64 per pair.
"""

from __future__ import annotations

from itertools import chain
from typing import Sequence

import numpy as np

from itkit.dedup.normalize import normalize_text, words

MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)
"""The odd multiplier of the n-gram polynomial (the 64-bit golden ratio)."""


def text_words(text: str) -> list[str]:
    """The words n-grams are made of (normalised; see the module docstring)."""
    return words(normalize_text(text)) if text else []


def ngram_hashes(ws: Sequence[str], n: int) -> np.ndarray:
    """The hashes of the n-grams of one word list, in order (empty when it has fewer than ``n`` words)."""
    return batch_ngrams([ws], n)[0]


def batch_ngrams(word_lists: Sequence[Sequence[str]], n: int) -> tuple[np.ndarray, np.ndarray]:
    """The n-gram hashes of several word lists: ``(hashes, owner)``, ``owner[i]`` the list ``hashes[i]`` came from.

    Lists with fewer than ``n`` words contribute nothing.
    """
    lengths = np.fromiter((len(ws) for ws in word_lists), dtype=np.int64, count=len(word_lists))
    lengths = np.where(lengths >= n, lengths, 0)
    total = int(lengths.sum())
    if not total:
        return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64)
    flat = chain.from_iterable(ws for ws in word_lists if len(ws) >= n)
    w = np.fromiter(map(hash, flat), dtype=np.int64, count=total).view(np.uint64)
    starts = len(w) - n + 1
    h = w[:starts].copy()
    for k in range(1, n):
        h *= MULTIPLIER
        h += w[k : k + starts]
    # keep the n-grams that start and end inside one list
    kept = np.maximum(lengths - n + 1, 0)
    owner = np.repeat(np.arange(len(word_lists), dtype=np.int64), kept)
    offsets = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    first = np.repeat(offsets, kept)
    within = np.arange(len(owner), dtype=np.int64) - np.repeat(np.cumsum(kept) - kept, kept)
    return h[first + within], owner


def ngram_texts(ws: Sequence[str], n: int, wanted: np.ndarray, limit: int) -> list[str]:
    """Up to ``limit`` distinct n-grams of ``ws`` (as text, in order) whose hashes are in ``wanted``."""
    hashes, _ = batch_ngrams([ws], n)
    found: list[str] = []
    seen: set[int] = set()
    hit = np.isin(hashes, wanted)
    for i in np.flatnonzero(hit).tolist():
        key = int(hashes[i])
        if key in seen:
            continue
        seen.add(key)
        found.append(" ".join(ws[i : i + n]))
        if len(found) >= limit:
            break
    return found


__all__ = ["MULTIPLIER", "batch_ngrams", "ngram_hashes", "ngram_texts", "text_words"]
