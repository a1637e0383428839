"""Near-duplicate detection: MinHash signatures of word n-grams and LSH banding.

Pipeline, all vectorised with numpy:

1. *Shingles.* A normalised text is cut into sentence segments and words
   (:func:`itkit.dedup.normalize.segments`); each word is hashed (:meth:`MinHasher.word_hash`: a
   polynomial hash of its UTF-8 bytes with a random odd 64-bit base, mod 2**64, then mixed; all
   words of a batch at once in numpy, from prefix sums) and the hash of the word n-gram starting at
   each position is a random linear combination of the n word hashes (mod 2**64).
   N-grams stay inside a sentence, so reordered sentences give the same set; a
   sentence shorter than ``ngram`` words is one shingle made of all its words
   (so short texts are still compared); a text without words is one fixed shingle.
   A batch's texts become one byte string (ASCII texts cut by one ``bytes.translate`` for thousands
   of texts, others from their segments), with ``.`` between sentences and ``\x01`` after each text;
   no Python object is made per word.
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
HASH_PIECE = 1 << 22
"""Bytes of a batch's token string hashed at a time (scratch memory: ~40 bytes a byte of text)."""

_EMPTY_TEXT = "\x00itkit-empty-text\x00"
_HIGH_HALF = 32  # shift that keeps the high 32 bits of a 64-bit product
_SPACE, _DOT, _ONE = 0x20, 0x2E, 0x01
_FINAL_MIX = 0xD6E8FEB86659FD93
_MASK = 2**64 - 1


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
    """Texts waiting for signatures, as byte strings of their tokens: words separated by spaces, ``.``
    after each sentence and ``\x01`` after each text.

    Runs of ASCII texts wait in ``ascii`` and are cut together (:meth:`MinHasher._flush`).
    """

    parts: list[bytes] = field(default_factory=list)
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
        self._base = rng.integers(0, 2**64, dtype=np.uint64, endpoint=False) | np.uint64(1)
        self._powers = np.ones(1, dtype=np.uint64)  # base**i, and its inverse's: grown on demand
        self._inverse_powers = np.ones(1, dtype=np.uint64)
        self._empty = np.uint64(self.word_hash(_EMPTY_TEXT))
        self._break = np.uint64(self.word_hash(_BREAK))
        self._end = np.uint64(self.word_hash(_END))

    # -- text -> tokens
    def add(self, normalized: str, batch: WordBatch) -> None:
        """Append a normalised text to ``batch`` (its words are hashed with the batch's, in :meth:`signatures`)."""
        if normalized.isascii() and _END not in normalized:
            batch.ascii.append(normalized)
        else:
            self._flush(batch)
            joined = "".join(" ".join(segment) + " . " for segment in segments(normalized))
            batch.parts.append((joined + _END).encode("utf-8", "surrogatepass"))
        batch.count += 1

    @staticmethod
    def _flush(batch: WordBatch) -> None:
        if batch.ascii:
            batch.parts.append(_END.join(batch.ascii).encode().translate(_ASCII_SEGMENT_BYTES) + b"\x01")
            batch.ascii = []

    def word_hash(self, word: str) -> int:
        """The hash :meth:`signatures` gives a word (and, for :meth:`token_hashes`, to ``.`` and ``\x01``)."""
        h, power, base = 0, 1, int(self._base)
        for byte in word.encode("utf-8", "surrogatepass"):
            h = (h + (byte + 1) * power) & _MASK
            power = (power * base) & _MASK
        h ^= h >> 32
        h = (h * _FINAL_MIX) & _MASK
        return h ^ (h >> 29)

    def _grow_powers(self, n: int) -> None:
        """``base**i`` and ``base**-i`` (mod 2**64) for ``i <= n``."""
        if len(self._powers) <= n:
            size = max(n + 1, 2 * len(self._powers))
            inverse = pow(int(self._base), -1, 2**64)
            for name, factor in (("_powers", int(self._base)), ("_inverse_powers", inverse)):
                values = np.full(size, factor, dtype=np.uint64)
                values[0] = 1
                setattr(self, name, np.cumprod(values, dtype=np.uint64))

    def _hash_tokens(self, data: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(hash, is end, is break) of each token of a token string (see :class:`WordBatch`)."""
        whole = np.frombuffer(data, dtype=np.uint8)
        out = [self._hash_piece(whole[start:stop]) for start, stop in _pieces(data)]
        if len(out) == 1:
            return out[0]
        return tuple(np.concatenate(arrays) for arrays in zip(*out))  # type: ignore[return-value]

    def _hash_piece(self, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n = len(b)
        is_break, is_end = b == _DOT, b == _ONE
        is_word = ~(is_break | is_end | (b == _SPACE))
        word_start = is_word.copy()
        word_start[1:] &= ~is_word[:-1]
        starts = np.flatnonzero(word_start | is_break | is_end)
        last = is_word.copy()
        last[:-1] &= ~is_word[1:]
        stops = np.flatnonzero(last) + 1
        self._grow_powers(n)
        # prefix sums of (byte + 1) * base**i: a word's hash is its slice's sum over base**start
        prefix = np.zeros(n + 1, dtype=np.uint64)
        np.cumsum((b + np.uint64(1)) * self._powers[:n], out=prefix[1:])
        token_is_word = is_word[starts]
        first = starts[token_is_word]
        h = (prefix[stops] - prefix[first]) * self._inverse_powers[first]
        h ^= h >> np.uint64(32)
        h *= np.uint64(_FINAL_MIX)
        h ^= h >> np.uint64(29)
        hashes = np.empty(len(starts), dtype=np.uint64)
        hashes[token_is_word] = h
        ends, breaks = is_end[starts], is_break[starts]
        hashes[ends] = self._end
        hashes[breaks] = self._break
        return hashes, ends, breaks

    def token_string(self, batch: WordBatch) -> bytes:
        """The batch's texts as one token string (see :class:`WordBatch`)."""
        self._flush(batch)
        data = b"".join(batch.parts)
        batch.parts = [data]
        return data

    def tokens(self, batch: WordBatch) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(hash, is end, is break) of each token of the batch; a text without words gets the empty-text word."""
        data = self.token_string(batch)
        hashes, is_end, is_break = self._hash_tokens(data)
        words = ~(is_end | is_break)
        per_text = np.bincount(np.cumsum(is_end)[words], minlength=batch.count)  # a word's text: the ends before it
        if len(per_text) and not per_text.all():  # no words at all: one fixed shingle, so empty texts match
            at = np.flatnonzero(is_end)[per_text[: batch.count] == 0]
            hashes = np.insert(hashes, at, self._empty)
            is_end = np.insert(is_end, at, False)
            is_break = np.insert(is_break, at, False)
        return hashes, is_end, is_break

    def token_hashes(self, batch: WordBatch) -> np.ndarray:
        """The 64-bit hashes of the batch's tokens (words, then :meth:`word_hash` of ``.`` and ``\x01``)."""
        return self.tokens(batch)[0]

    # -- token hashes -> signatures
    def signatures(self, batch: WordBatch, sets: ShingleSets | None = None) -> np.ndarray:
        """Signatures ``(len(batch), num_perm)`` uint32 of the texts of ``batch`` (their shingle sets into ``sets``)."""
        if not len(batch):
            return np.empty((0, self.num_perm), dtype=np.uint32)
        hashes, is_end, is_break = self.tokens(batch)
        boundary = is_end | is_break
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


def _pieces(data: bytes) -> list[tuple[int, int]]:
    """Cuts of a token string into pieces of about :data:`HASH_PIECE` bytes, each ending after a space, a
    break or an end byte (so no word spans two pieces)."""
    cuts, start = [], 0
    while len(data) - start > HASH_PIECE:
        stop = max(data.rfind(b" ", start, start + HASH_PIECE), data.rfind(b".", start, start + HASH_PIECE),
                   data.rfind(b"\x01", start, start + HASH_PIECE))
        if stop < start:  # one word longer than a piece: up to the next separator
            found = [i for i in (data.find(sep, start + HASH_PIECE) for sep in (b" ", b".", b"\x01")) if i >= 0]
            stop = min(found) if found else len(data) - 1
        cuts.append((start, stop + 1))
        start = stop + 1
    if start < len(data) or not cuts:
        cuts.append((start, len(data)))
    return cuts


def estimated_jaccard(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Share of equal values between signature ``a`` and each row of ``b`` (or two rows)."""
    return (a == b).mean(axis=-1)
