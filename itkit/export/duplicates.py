"""Which records are exact or near duplicates of a given one: the one place export uses the dedup library.

Two records are duplicates when their prompts (every user turn with the input,
:func:`itkit.dedup.text_getter` ``"prompt"``) or their whole conversations
(``"conversation"``, system prompt included) have an estimated Jaccard
similarity of word n-grams at least :data:`THRESHOLD`, by MinHash with LSH
banding from :mod:`itkit.dedup` (the defaults of ``itkit dedup --near``).
Texts equal after normalisation have equal signatures, so exact duplicates are
found the same way. Unlike ``itkit dedup``, which keeps one text of each cluster,
the split needs every neighbour of a record, so the index answers
"which records are duplicates of this one".
"""

from __future__ import annotations

from typing import Hashable, Sequence

from itkit.lazy import lazy_module

np = lazy_module("numpy")

from itkit.dedup import DEFAULT_JACCARD, DEFAULT_NGRAM, DEFAULT_NUM_PERM, MinHasher, lsh_params, normalize_text, text_getter
from itkit.dedup.exact import text_key
from itkit.dedup.minhash import band_keys, estimated_jaccard
from itkit.records import Record

THRESHOLD = DEFAULT_JACCARD
COMPARED = ("prompt", "conversation")
"""The texts of a record compared for the split (a duplicate in either counts)."""


def prompt_keys(records: Sequence[Record]) -> list[Hashable]:
    """An exact-duplicate key per record: the hash of its normalised prompt."""
    get = text_getter("prompt")
    return [text_key(normalize_text(get(r))) for r in records]


class _Band:
    __slots__ = ("keys", "order", "sorted")

    def __init__(self, keys: np.ndarray):
        self.keys = keys
        self.order = np.argsort(keys, kind="stable")
        self.sorted = keys[self.order]

    def members(self, i: int) -> np.ndarray:
        key = self.keys[i]
        lo = np.searchsorted(self.sorted, key, side="left")
        hi = np.searchsorted(self.sorted, key, side="right")
        return self.order[lo:hi]


class DuplicateIndex:
    """MinHash LSH over the compared texts of ``records``; :meth:`neighbours` lists a record's duplicates."""

    def __init__(
        self,
        records: Sequence[Record],
        threshold: float = THRESHOLD,
        num_perm: int = DEFAULT_NUM_PERM,
        ngram: int = DEFAULT_NGRAM,
        compared: Sequence[str] = COMPARED,
    ):
        self.threshold = threshold
        self.size = len(records)
        hasher = MinHasher(num_perm, ngram)
        bands, rows = lsh_params(threshold, num_perm)
        self._signatures: list[np.ndarray] = []
        self._bands: list[list[_Band]] = []
        if not records:
            return
        for kind in compared:
            get = text_getter(kind)
            signatures = hasher.signatures_of_texts([get(r) for r in records])
            keys = band_keys(signatures, bands, rows)
            self._signatures.append(signatures)
            self._bands.append([_Band(np.ascontiguousarray(keys[:, b])) for b in range(bands)])

    def neighbours(self, i: int) -> set[int]:
        """Records (other than ``i``) that are exact or near duplicates of record ``i``."""
        found: set[int] = set()
        for signatures, bands in zip(self._signatures, self._bands):
            members = np.unique(np.concatenate([band.members(i) for band in bands]))
            members = members[members != i]
            if len(members):
                similar = estimated_jaccard(signatures[i], signatures[members]) >= self.threshold
                found.update(members[similar].tolist())
        return found


def duplicate_index(records: Sequence[Record]) -> DuplicateIndex:
    return DuplicateIndex(records)
