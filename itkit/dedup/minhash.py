"""Near-duplicate detection: MinHash signatures of word n-grams and LSH banding.

Pipeline, all vectorised with numpy:

1. *Shingles.* A normalised text is cut into sentence segments and words
   (:func:`itkit.dedup.normalize.segments`); each word is hashed once (xxh3,
   cached per distinct word) and the hash of the word n-gram starting at each
   position is a random linear combination of the n word hashes (mod 2**64).
   N-grams stay inside a sentence, so reordered sentences give the same set; a
   sentence shorter than ``ngram`` words is one shingle made of all its words
   (so short texts are still compared); a text without words is one fixed shingle.
   A batch's ASCII texts are cut into words together (one ``bytes.translate`` and
   ``split`` for thousands of texts, an end token between them).
2. *Signatures.* Permutation ``k`` maps a shingle hash ``x`` to
   ``(a_k * x mod 2**64) >> 32`` with a random odd 64-bit ``a_k``
   (multiply-shift, Dietzfelbinger et al.'s universal family); the signature is
   the minimum over the text's shingles, per permutation: one ``(num_perm,
   shingles)`` product and a segmented minimum per block of texts.
Steps 3 and 4 are :mod:`itkit.dedup.lsh` (separate functions for band keys, sorted band
columns, bucket members and the decision, so that a spilled or distributed executor can
produce the columns its own way: :mod:`itkit.dedup.spill`):

3. *LSH.* Signatures are cut in ``bands`` bands of ``rows`` values
   (:func:`~itkit.dedup.lsh.lsh_params`: datasketch's choice, minimising weighted false-positive
   and false-negative areas; false negatives weigh more here since every
   candidate is verified). Texts sharing a band bucket are candidates.
4. *Verification and keep policy.* Texts are visited in priority order; a text
   is a near duplicate when the true Jaccard similarity of its shingle set with
   that of a candidate already kept is at least the threshold
   (:mod:`itkit.dedup.verify`; candidates whose estimate, the share of equal
   signature values, is more than ``VERIFY_MARGIN`` under the threshold are not
   checked), and is then reported against the most similar such kept text.
   Otherwise it is kept. Without shingle sets the estimate decides.
   Because every removal points at a kept text, chains never remove a text that
   is not itself similar to a survivor.

Same seed, same input: same signatures and the same decisions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from itkit.lazy import lazy_module

np = lazy_module("numpy")
xxhash = lazy_module("xxhash")

# the LSH stage and the keep policy live in itkit.dedup.lsh (re-exported: callers import them from here)
from itkit.dedup.lsh import (
    DEFAULT_THRESHOLD,
    FN_WEIGHT,
    FP_WEIGHT,
    NearResult,
    SignatureStore,
    band_keys,
    bucket_members,
    decide_near,
    find_near_duplicates,
    lsh_params,
    sorted_band_columns,
)
from itkit.dedup.normalize import normalize_text, segments
from itkit.dedup.verify import ShingleSets

DEFAULT_JACCARD = DEFAULT_THRESHOLD
DEFAULT_NUM_PERM = 128
DEFAULT_NGRAM = 2
"""Word bigrams: on instruction-length texts (10 to 100 words) one changed word removes 2 of the
bigrams but 5 of the 5-grams (Jaccard ~0.85 instead of ~0.5 for one change in 25 words);
``tests/test_dedup_near.py`` measures precision and recall on planted duplicates."""
DEFAULT_SEED = 1
BLOCK_SHINGLES = 8192
"""Shingles hashed per numpy block: ``num_perm * BLOCK_SHINGLES * 8`` bytes of scratch memory."""
TOKEN_CACHE_LIMIT = 2_000_000
"""Distinct words whose hashes are cached; the cache is cleared when it grows past this."""

_EMPTY_TEXT = "\x00itkit-empty-text\x00"
_HIGH_HALF = 32  # shift that keeps the high 32 bits of a 64-bit product


class _WordHashes(dict):
    """word (``str``, or ASCII ``bytes``) -> the 64-bit xxh3 hash of its UTF-8 bytes, computed on first use."""

    def __missing__(self, word: str | bytes) -> int:
        data = word if isinstance(word, bytes) else word.encode("utf-8", "surrogatepass")
        value = self[word] = xxhash.xxh3_64_intdigest(data)
        return value


# ASCII fast path of normalize.segments: in a normalised (lower-case) ASCII text, sentence breaks
# become "." and every other non-word byte a space; bytes.translate + split is several times faster.
# A whole run of ASCII texts is cut at once, joined by "\x01" (kept by the table; a text holding one is
# cut on its own)
_ASCII_SEGMENT_BYTES = bytes(
    c if (0x61 <= c <= 0x7A or 0x30 <= c <= 0x39 or c == 0x01) else 0x2E if c in b".!?" else 0x20 for c in range(256)
)
_BREAK = "."
"""The token standing for a sentence break in a :class:`WordBatch` (no word contains it)."""
_END = "\x01"
"""The token ending each text of a :class:`WordBatch`."""


@dataclass
class WordBatch:
    """Texts waiting for signatures: their tokens (words, sentence breaks, one end token a text).

    Runs of ASCII texts wait in ``ascii`` and are cut into tokens together (:meth:`MinHasher.tokens`).
    """

    tokens: list = field(default_factory=list)
    ascii: list[str] = field(default_factory=list)
    count: int = 0

    def __len__(self) -> int:
        return self.count


class MinHasher:
    """MinHash signatures of sentence-local word n-gram sets (see the module docstring)."""

    def __init__(self, num_perm: int = DEFAULT_NUM_PERM, ngram: int = DEFAULT_NGRAM, seed: int = DEFAULT_SEED):
        if num_perm < 1:
            raise ValueError(f"num_perm must be at least 1, not {num_perm}")
        if ngram < 1:
            raise ValueError(f"ngram must be at least 1, not {ngram}")
        self.num_perm = num_perm
        self.ngram = ngram
        rng = np.random.Generator(np.random.PCG64(seed))
        self._perm = rng.integers(0, 2**64, num_perm, dtype=np.uint64, endpoint=False) | np.uint64(1)
        self._mix = rng.integers(0, 2**64, ngram, dtype=np.uint64, endpoint=False) | np.uint64(1)
        self._hashes = _WordHashes()
        self._empty = np.uint64(self._hashes[_EMPTY_TEXT])
        self._break = np.uint64(self._hashes[_BREAK])
        self._end = np.uint64(self._hashes[_END])

    # -- text -> tokens
    def add(self, normalized: str, batch: WordBatch) -> None:
        """Append a normalised text to ``batch`` (its words are hashed with the batch's, in :meth:`signatures`)."""
        if normalized.isascii() and _END not in normalized:
            batch.ascii.append(normalized)
        else:
            self._flush(batch)
            tokens = batch.tokens
            for segment in segments(normalized):
                tokens.extend(segment)
                tokens.append(_BREAK)
            tokens.append(_END)
        batch.count += 1

    @staticmethod
    def _flush(batch: WordBatch) -> None:
        if batch.ascii:
            joined = _END.join(batch.ascii).encode().translate(_ASCII_SEGMENT_BYTES)
            batch.tokens.extend(joined.replace(b".", b" . ").replace(b"\x01", b" \x01 ").split())
            batch.tokens.append(b"\x01")
            batch.ascii = []

    def trim_cache(self) -> None:
        if len(self._hashes) > TOKEN_CACHE_LIMIT:
            self._hashes.clear()
            self._hashes[_EMPTY_TEXT] = int(self._empty)

    def token_hashes(self, batch: WordBatch) -> np.ndarray:
        """The 64-bit hashes of the batch's tokens (a text without words gets the fixed empty-text word)."""
        self._flush(batch)
        tokens = batch.tokens
        hashes = np.fromiter(map(self._hashes.__getitem__, tokens), dtype=np.uint64, count=len(tokens))
        is_end = hashes == self._end
        words = ~(is_end | (hashes == self._break))
        per_text = np.bincount(np.cumsum(is_end)[words], minlength=batch.count)  # a word's text: the ends before it
        if len(per_text) and not per_text.all():  # no words at all: one fixed shingle, so empty texts match
            ends = np.flatnonzero(is_end)
            hashes = np.insert(hashes, ends[per_text == 0], self._empty)
        return hashes

    # -- token hashes -> signatures
    def signatures(self, batch: WordBatch, sets: ShingleSets | None = None) -> np.ndarray:
        """Signatures ``(len(batch), num_perm)`` uint32 of the texts of ``batch`` (their shingle sets into ``sets``)."""
        if not len(batch):
            return np.empty((0, self.num_perm), dtype=np.uint32)
        hashes = self.token_hashes(batch)
        is_end = hashes == self._end
        boundary = is_end | (hashes == self._break)
        words = ~boundary
        # a segment is a run of words between boundaries; boundaries themselves are dropped
        segment_of = np.cumsum(boundary)[words]
        text_of = (np.cumsum(is_end) - is_end)[words]
        word_hashes = hashes[words]
        new_segment = np.ones(len(word_hashes), dtype=bool)
        new_segment[1:] = segment_of[1:] != segment_of[:-1]
        firsts = np.flatnonzero(new_segment)
        segment_words = np.diff(np.append(firsts, len(word_hashes)))
        shingles, per_segment = self.shingles(word_hashes, segment_words)
        # every text has at least one word (token_hashes gives a wordless text the empty-text word)
        per_text = np.bincount(text_of[firsts], weights=per_segment, minlength=len(batch)).astype(np.int64)
        if sets is not None:
            sets.append(shingles, per_text)
        return self.minhash(shingles, per_text)

    def shingles(self, word_hashes: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Shingle hashes of each segment (concatenated) and how many each segment has.

        ``lengths[i]`` (>= 1) words of ``word_hashes`` form segment ``i``; an n-gram never
        crosses segments, and a segment shorter than ``ngram`` words is one shingle.
        """
        n = self.ngram
        total = len(word_hashes)
        lengths = np.asarray(lengths, dtype=np.int64)
        if len(lengths) and int(lengths.min()) < 1:
            raise ValueError("every segment needs at least one word hash")
        if int(lengths.sum()) != total:
            raise ValueError(f"lengths add up to {int(lengths.sum())} words; {total} word hashes were given")
        ends = np.cumsum(lengths)
        remaining = np.repeat(ends, lengths)  # words from each position to the end of its segment
        remaining -= np.arange(total)
        h = word_hashes * self._mix[0]
        for j in range(1, n):
            if total <= j:
                break
            contribution = word_hashes[j:] * self._mix[j]
            contribution[remaining[:-j] <= j] = 0  # the n-gram would cross into the next segment
            h[:-j] += contribution
        keep = remaining >= n  # full n-grams...
        keep[ends - lengths] = True  # ...and the first position: a short segment's only shingle
        counts = np.where(lengths >= n, lengths - n + 1, 1)
        h = h[keep]
        h ^= h >> np.uint64(29)  # spread the high bits of the combination into the low ones
        return h, counts

    def minhash(self, shingles: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """Per text (``counts[i]`` consecutive shingles each), the minimum of every permutation."""
        out = np.empty((len(counts), self.num_perm), dtype=np.uint32)
        ends = np.cumsum(counts)
        perm = self._perm[:, None]
        scratch = np.empty((self.num_perm, min(BLOCK_SHINGLES, len(shingles))), dtype=np.uint64)
        first = 0
        while first < len(counts):
            start = int(ends[first] - counts[first])
            last = int(np.searchsorted(ends, start + BLOCK_SHINGLES, side="right"))
            last = max(last, first + 1)
            stop = int(ends[last - 1])
            if stop - start > scratch.shape[1]:  # one text with more shingles than a block
                scratch = np.empty((self.num_perm, stop - start), dtype=np.uint64)
            block = scratch[:, : stop - start]
            np.multiply(perm, shingles[start:stop], out=block)  # (num_perm, block), wraps mod 2**64
            offsets = (ends[first:last] - counts[first:last]) - start
            mins = np.minimum.reduceat(block, offsets, axis=1)
            mins >>= np.uint64(_HIGH_HALF)
            out[first:last] = mins.T
            first = last
        return out

    def signatures_of_texts(self, texts: Iterable[str]) -> np.ndarray:
        """Convenience: signatures of raw texts (normalised here)."""
        batch = WordBatch()
        for text in texts:
            self.add(normalize_text(text), batch)
        return self.signatures(batch)


def estimated_jaccard(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Share of equal values between signature ``a`` and each row of ``b`` (or two rows)."""
    return (a == b).mean(axis=-1)
