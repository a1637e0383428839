"""The train/validation split: deterministic, and without leakage.

Records are ordered by a seeded hash of their id (so the split of a record
does not depend on the input order), and the first ``val_count`` go to
validation. Then every validation record that has an exact or near duplicate
in train (:class:`itkit.export.duplicates.DuplicateIndex`) is moved to train,
and validation is refilled, in the same order, with records that have no
duplicate at all. The result says how many were moved and refilled.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

from itkit.errors import UsageError

DEFAULT_VAL_RATIO = 0.1
"""LLaMA-Factory's examples hold out 10% (val_size 0.1)."""


def val_count(n: int, ratio: float | None, size: int | None) -> int:
    """How many of ``n`` records go to validation (train always keeps at least one)."""
    if ratio is not None and size is not None:
        raise UsageError("give --val-ratio or --val-size, not both")
    if size is not None:
        if size < 0:
            raise UsageError(f"--val-size must be >= 0, got {size}")
        wanted = size
    else:
        r = DEFAULT_VAL_RATIO if ratio is None else ratio
        if not 0 <= r < 1:
            raise UsageError(f"--val-ratio must be >= 0 and < 1, got {r}")
        wanted = round(n * r)
        if r > 0 and wanted == 0 and n >= 2:
            wanted = 1
    return max(0, min(wanted, n - 1))


def split_order(ids: Sequence[str], seed: int) -> list[int]:
    """Indices ordered by a seeded hash of the record id (ties by position)."""

    def key(i: int) -> tuple[bytes, int]:
        return hashlib.blake2b(f"{seed}\x00{ids[i]}".encode("utf-8"), digest_size=8).digest(), i

    return sorted(range(len(ids)), key=key)


@dataclass
class Split:
    train: list[int] = field(default_factory=list)
    """Indices of train records, in input order."""
    val: list[int] = field(default_factory=list)
    """Indices of validation records, in input order."""
    requested: int = 0
    moved: int = 0
    """Validation candidates moved to train because they have a duplicate there."""
    refilled: int = 0
    """Records without any duplicate taken into validation in their place."""


def split_records(ids: Sequence[str], n_val: int, seed: int, neighbours: Callable[[int], Iterable[int]]) -> Split:
    """Split so that no validation record has an exact or near duplicate in train.

    ``neighbours(i)``: the records that are duplicates of record ``i``. The
    first ``n_val`` records of :func:`split_order` are the validation
    candidates; duplicates among them stay together, and every candidate
    connected (through such duplicates) to a train record moves to train.
    Validation is then refilled, in the same order, with records that have no
    duplicate at all.
    """
    order = split_order(ids, seed)
    candidates = order[:n_val]
    in_candidates = set(candidates)
    parent = {i: i for i in candidates}

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    touches_train: set[int] = set()
    for i in candidates:
        for j in neighbours(i):
            if j in in_candidates:
                a, b = find(i), find(j)
                if a != b:
                    parent[max(a, b)] = min(a, b)
            else:
                touches_train.add(i)
    leaking = {find(i) for i in touches_train}
    val = [i for i in candidates if find(i) not in leaking]
    moved = n_val - len(val)
    refilled = 0
    if moved:
        for i in order[n_val:]:
            if len(val) >= n_val:
                break
            if not any(True for _ in neighbours(i)):
                val.append(i)
                refilled += 1
    in_val = set(val)
    return Split(
        train=[i for i in range(len(ids)) if i not in in_val],
        val=sorted(val),
        requested=n_val,
        moved=moved,
        refilled=refilled,
    )
