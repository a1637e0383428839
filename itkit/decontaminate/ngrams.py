"""Hashed word n-grams: the unit decontamination compares.

A text is normalised as deduplication does (:func:`itkit.dedup.normalize.normalize_text`:
NFKC, case folding, whitespace collapsed) and cut into words by
:func:`itkit.dedup.normalize.words` (punctuation dropped; each Chinese/Japanese
character a word). So "The QUICK, brown fox!" and "the quick brown fox" have the
same n-grams. Unlike dedup's shingles, n-grams span sentence ends: a copied
passage is a copy whatever its punctuation.

:func:`batch_ngrams` hashes the n-grams of a whole batch of texts in a few numpy
passes over their bytes, without a Python object per word: each text becomes its
words in UTF-8 separated by spaces (an ASCII text in one ``bytes.translate``,
which gives the same words: its runs of letters and digits, lowered), the texts are
joined, and every word gets a 64-bit hash: a polynomial of its bytes modulo 2**64
(from prefix sums of the bytes times powers of an odd constant), mixed with its
length and finished with MurmurHash3's 64-bit finaliser. The hash of an n-gram is a
polynomial of its words' hashes modulo 2**64. The hashes are the same in every
process and run. Two different n-grams share a hash with probability about 2**-64
per pair.
"""

from __future__ import annotations

from typing import Sequence

from itkit.lazy import lazy_module

np = lazy_module("numpy")

from itkit.dedup.normalize import normalize_text, words

MULTIPLIER = 0x9E3779B97F4A7C15
"""The odd multiplier of the n-gram polynomial over word hashes (the 64-bit golden ratio)."""
BYTE_MULTIPLIER = 0xC2B2AE3D27D4EB4F
"""The odd multiplier of the word polynomial over bytes."""
LENGTH_MULTIPLIER = 0x165667B19E3779F9
"""Mixes a word's length into its hash."""
_FMIX = (0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53)
"""MurmurHash3's 64-bit finaliser constants."""
SPACE = 0x20

_ASCII_WORDS = bytes(ord(chr(c).lower()) if c < 128 and chr(c).isalnum() else SPACE for c in range(256))
"""ASCII letters lowered, digits kept, every other byte a space: an ASCII text's words, split at spaces."""


def text_words(text: str) -> list[str]:
    """The words n-grams are made of (normalised; see the module docstring)."""
    if not text:
        return []
    if text.isascii():
        return text.encode("ascii").translate(_ASCII_WORDS).decode("ascii").split()
    return words(normalize_text(text))


def _word_bytes(text: str) -> bytes:
    """The words of ``text`` in UTF-8, separated by spaces (a word never holds the byte 0x20)."""
    if text.isascii():
        return text.encode("ascii").translate(_ASCII_WORDS)
    return " ".join(words(normalize_text(text))).encode("utf-8")


CHUNK_BYTES = 1 << 22
"""Texts are hashed in runs of about this many bytes (the numpy work arrays take ~40 bytes per text byte)."""


class _Powers:
    """BYTE_MULTIPLIER ** i and its inverse's ** i modulo 2**64 for i < size (kept for sizes up to
    a chunk: about :data:`CHUNK_BYTES`; one longer text gets its own)."""

    def __init__(self) -> None:
        self.up: np.ndarray | tuple = ()
        self.down: np.ndarray | tuple = ()

    @staticmethod
    def _powers(base: int, size: int) -> np.ndarray:
        out = np.empty(size, dtype=np.uint64)
        out[0] = 1
        with np.errstate(over="ignore"):
            np.cumprod(np.full(size - 1, base, dtype=np.uint64), out=out[1:])
        return out

    def get(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        if len(self.up) >= size:
            return self.up, self.down
        grown = max(size, min(2 * len(self.up), 2 * CHUNK_BYTES), 1 << 16)
        up = self._powers(BYTE_MULTIPLIER, grown)
        down = self._powers(pow(BYTE_MULTIPLIER, -1, 1 << 64), grown)
        if grown <= 2 * CHUNK_BYTES:
            self.up, self.down = up, down
        return up, down


_POWERS = _Powers()


def _fmix(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        x ^= x >> np.uint64(33)
        x *= np.uint64(_FMIX[0])
        x ^= x >> np.uint64(33)
        x *= np.uint64(_FMIX[1])
        x ^= x >> np.uint64(33)
    return x


def word_hashes(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """The hash of every word of ``texts`` in order, and how many words each text has."""
    parts = [_word_bytes(t) if t else b"" for t in texts]
    hashes, counts = [], []
    start = size = 0
    for i, part in enumerate(parts):
        size += len(part) + 1
        if size >= CHUNK_BYTES or i == len(parts) - 1:
            h, c = _hash_words(parts[start : i + 1])
            hashes.append(h)
            counts.append(c)
            start, size = i + 1, 0
    if not hashes:
        return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64)
    return np.concatenate(hashes), np.concatenate(counts)


def _hash_words(parts: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    # a space before, between and after the texts: every word starts after a space and ends before one
    buf = np.frombuffer(b" " + b" ".join(parts) + b" ", dtype=np.uint8)
    is_word = buf != SPACE
    edges = np.flatnonzero(is_word[1:] != is_word[:-1]) + 1
    starts, ends = edges[0::2], edges[1::2]
    text_starts = np.cumsum([1] + [len(p) + 1 for p in parts[:-1]])
    counts = np.diff(np.searchsorted(starts, text_starts), append=len(starts)).astype(np.int64)
    up, down = _POWERS.get(len(buf))
    prefix = np.zeros(len(buf) + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        np.cumsum(buf * up[: len(buf)], out=prefix[1:])
        h = (prefix[ends] - prefix[starts]) * down[starts]
        h += (ends - starts).astype(np.uint64) * np.uint64(LENGTH_MULTIPLIER)
    return _fmix(h), counts


def batch_ngrams(texts: Sequence[str], n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The n-gram hashes of several texts: ``(hashes, owner, words)``, ``owner[i]`` the text ``hashes[i]``
    came from (in order), ``words[t]`` how many words text ``t`` has; a text of fewer than ``n`` words has no n-gram.
    """
    w, lengths = word_hashes(texts)
    kept = np.maximum(lengths - n + 1, 0)
    total = int(kept.sum())
    if not total:
        return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64), lengths
    starts = len(w) - n + 1
    with np.errstate(over="ignore"):
        h = w[:starts].copy()
        for k in range(1, n):
            h *= np.uint64(MULTIPLIER)
            h += w[k : k + starts]
    # keep the n-grams that start and end inside one text
    owner = np.repeat(np.arange(len(texts), dtype=np.int64), kept)
    offsets = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    first = np.repeat(offsets, kept)
    within = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(kept) - kept, kept)
    return h[first + within], owner, lengths


def ngram_hashes(text: str, n: int) -> np.ndarray:
    """The hashes of the n-grams of one text, in order (the i-th is that of ``text_words(text)[i : i + n]``)."""
    return batch_ngrams([text], n)[0]


def ngram_texts(text: str, n: int, wanted: np.ndarray, limit: int) -> list[str]:
    """Up to ``limit`` distinct n-grams of ``text`` (normalised words, in order) whose hashes are in ``wanted``."""
    ws = text_words(text)
    hashes = ngram_hashes(text, n)
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


__all__ = ["MULTIPLIER", "batch_ngrams", "ngram_hashes", "ngram_texts", "text_words", "word_hashes"]
