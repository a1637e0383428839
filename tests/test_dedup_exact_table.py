"""ExactTable (the exact stage's numpy hash table) numbers groups exactly as the dict-based ExactGroups."""

from __future__ import annotations

import random

import numpy as np
import pytest

import itkit.dedup.exact as exact
from itkit.dedup.exact import ExactGroups, ExactTable, key_bytes


def batches(texts: list[str], size: int):
    for i in range(0, len(texts), size):
        yield np.frombuffer(b"".join(key_bytes(t) for t in texts[i : i + size]), dtype=np.uint64).reshape(-1, 2)


@pytest.mark.parametrize("size", [1, 3, 64, 1000, 20_000])
def test_same_groups_as_the_dict_in_batches_of_any_size(size):
    rng = random.Random(size)
    texts = [f"text {rng.randrange(2500)}" for _ in range(20_000)]
    groups = ExactGroups()
    want = [groups.add_normalized(t) for t in texts]
    table = ExactTable(16)  # grows many times on the way
    got = []
    for keys in batches(texts, size):
        group, first = table.add_keys(keys)
        got += zip(group.tolist(), first.tolist())
    assert got == want and len(table) == len(groups)


def test_keys_sharing_their_high_half_stay_apart(monkeypatch):
    """Slots come from the high 64 bits: keys equal there (and full tables) still get their own groups."""
    keys = np.array([[5, 1], [5, 2], [5, 1], [6, 1], [5, 2], [5, 3], [5 + 16, 1], [6, 1]], dtype=np.uint64)
    monkeypatch.setattr(exact, "MAX_LOAD", 1.0)
    table = ExactTable(4)
    group, first = table.add_keys(keys[:5])
    assert group.tolist() == [0, 1, 0, 2, 1] and first.tolist() == [True, True, False, True, False]
    group, first = table.add_keys(keys[5:])
    assert group.tolist() == [3, 4, 2] and first.tolist() == [True, True, False]
    assert table.add_keys(np.zeros((0, 2), dtype=np.uint64))[0].tolist() == []
