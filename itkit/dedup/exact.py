"""Exact deduplication: group texts by a 128-bit hash of their normalised form.

Only the hashes of distinct texts are held (a dict from hash to group number),
so memory grows with the number of unique texts, not with their size.
"""

from __future__ import annotations

from typing import Callable

from itkit.lazy import lazy_module

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
