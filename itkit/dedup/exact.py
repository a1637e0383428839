"""Exact deduplication: group texts by a 128-bit hash of their normalised form.

Only the hashes of distinct texts are held (a dict from hash to group number),
so memory grows with the number of unique texts, not with their size.
"""

from __future__ import annotations

from typing import Callable

from itkit.lazy import lazy_module

np = lazy_module("numpy")
xxhash = lazy_module("xxhash")

from itkit.dedup.normalize import normalize_text


def text_key(normalized: str) -> int:
    """A 128-bit xxh3 hash of a (normalised) text; collisions are ~1e-20 likely at a billion texts."""
    return xxhash.xxh3_128_intdigest(normalized.encode("utf-8", "surrogatepass"))


class ExactGroups:
    """Numbers each distinct normalised text in first-seen order.

    ``add(text)`` returns ``(group, is_new)``: texts equal after
    :func:`normalize_text` share a group; ``is_new`` is True for the first.
    """

    def __init__(self, normalize: Callable[[str], str] = normalize_text):
        self.normalize = normalize
        self._groups: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self._groups)

    def add(self, text: str) -> tuple[int, bool]:
        return self.add_normalized(self.normalize(text))

    def add_normalized(self, normalized: str) -> tuple[int, bool]:
        key = text_key(normalized)
        groups = self._groups
        group = groups.get(key)
        if group is None:
            group = groups[key] = len(groups)
            return group, True
        return group, False


MAX_LOAD = 0.7
"""Share of :class:`ExactTable`'s slots in use before it doubles."""


class ExactTable:
    """:class:`ExactGroups` for many texts at once: an open-addressing hash table in numpy arrays.

    ``add_keys(keys)`` takes a batch of 128-bit keys (``(m, 2)`` uint64, :func:`key_bytes` of each
    text, concatenated) and returns each key's group and whether it is the group's first key, in
    batch order: the numbering of :class:`ExactGroups` (first seen, first numbered). Memory is 20
    bytes a slot at most :data:`MAX_LOAD` full (10 million distinct texts: 0.3 GB; a dict of
    Python ints: ~1.1 GB). Slots are probed linearly from the key's high 64 bits, for a whole batch at once.
    """

    def __init__(self, capacity: int = 1 << 16):
        size = 1 << max(4, (capacity - 1).bit_length())
        self._hi = np.zeros(size, dtype=np.uint64)
        self._lo = np.zeros(size, dtype=np.uint64)
        self._group = np.full(size, -1, dtype=np.int32)
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def add_keys(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(group of each key, True where the key is its group's first)."""
        keys = np.asarray(keys, dtype=np.uint64).reshape(-1, 2)
        m = len(keys)
        if not m:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=bool)
        # distinct keys of the batch, in order of first occurrence
        first, inverse = _distinct(keys)
        order = np.argsort(first, kind="stable")  # distinct keys by first occurrence
        place = np.empty(len(order), dtype=np.int64)
        place[order] = np.arange(len(order))
        distinct = keys[first[order]]
        found = self._lookup(distinct[:, 0], distinct[:, 1])
        new = found < 0
        if new.any():
            if _too_full(self._count + int(new.sum()), len(self._group)):
                self._grow(self._count + int(new.sum()))
            groups = np.arange(self._count, self._count + int(new.sum()), dtype=np.int64)
            self._insert(distinct[new, 0], distinct[new, 1], groups)
            found[new] = groups
            self._count += len(groups)
        group_of = found[place[inverse]]
        is_first = np.zeros(m, dtype=bool)
        is_first[first[order][new]] = True
        return group_of, is_first

    def _lookup(self, hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
        mask = np.uint64(len(self._group) - 1)
        found = np.full(len(hi), -1, dtype=np.int64)
        todo = np.arange(len(hi))
        slot = hi & mask
        while len(todo):
            g = self._group[slot]
            empty = g < 0
            hit = ~empty & (self._hi[slot] == hi[todo]) & (self._lo[slot] == lo[todo])
            found[todo[hit]] = g[hit]
            going = ~(empty | hit)
            todo, slot = todo[going], (slot[going] + np.uint64(1)) & mask
        return found

    def _insert(self, hi: np.ndarray, lo: np.ndarray, groups: np.ndarray) -> None:
        """Keys not in the table (and distinct): each into the first free slot of its probe sequence."""
        mask = np.uint64(len(self._group) - 1)
        todo = np.arange(len(hi))
        slot = hi & mask
        while len(todo):
            free = self._group[slot] < 0
            # of the keys reaching the same free slot in this round, the first takes it
            wanting = np.flatnonzero(free)
            _, winners = np.unique(slot[wanting], return_index=True)
            take = wanting[winners]
            self._hi[slot[take]] = hi[todo[take]]
            self._lo[slot[take]] = lo[todo[take]]
            self._group[slot[take]] = groups[todo[take]]
            going = np.ones(len(todo), dtype=bool)
            going[take] = False
            todo, slot = todo[going], (slot[going] + np.uint64(1)) & mask  # (a loser probes on)
        return None

    def _grow(self, need: int) -> None:
        size = len(self._group)
        while _too_full(need, size):
            size *= 2
        used = self._group >= 0
        hi, lo, groups = self._hi[used], self._lo[used], self._group[used].astype(np.int64)
        self._hi = np.zeros(size, dtype=np.uint64)
        self._lo = np.zeros(size, dtype=np.uint64)
        self._group = np.full(size, -1, dtype=np.int32)
        self._insert(hi, lo, groups)


def _too_full(used: int, size: int) -> bool:
    return used > MAX_LOAD * size or used >= size  # (a free slot always remains: probes end)


def _distinct(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(first index of each distinct key, the distinct key of each row) of ``(m, 2)`` keys, in key order."""
    by = np.argsort(keys[:, 0], kind="stable")
    hi, lo = keys[by, 0], keys[by, 1]
    if len(by) > 1 and bool(((hi[1:] == hi[:-1]) & (lo[1:] != lo[:-1])).any()):
        by = np.lexsort((np.arange(len(keys)), keys[:, 1], keys[:, 0]))  # (two keys share their high half)
        hi, lo = keys[by, 0], keys[by, 1]
    starts = np.ones(len(by), dtype=bool)
    starts[1:] = (hi[1:] != hi[:-1]) | (lo[1:] != lo[:-1])
    distinct_of_sorted = np.cumsum(starts) - 1
    inverse = np.empty(len(by), dtype=np.int64)
    inverse[by] = distinct_of_sorted
    return by[starts], inverse  # (stable: the first of equal keys comes first)


def key_bytes(normalized: str) -> bytes:
    """The 16 bytes of :func:`text_key` as :class:`ExactTable` reads them (two native uint64)."""
    return xxhash.xxh3_128_digest(normalized.encode("utf-8", "surrogatepass"))
