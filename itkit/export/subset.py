"""The LoRA fine-tuning subset: a fixed number of records spread evenly over categories or topic clusters.

Strata are the records' categories (Dolly's ``category``...) when most records
have one, else topic groups of their prompts' clusters (:mod:`itkit.export.clusters`).
The subset takes the same number of records from every stratum, as far as a
stratum has them, and gives what small strata cannot fill to the others
("water-filling"), so its stratum distribution is as even as the data allows.
Within a stratum, records are taken in a seeded random order, round-robin over
its clusters when it has several, records whose prompt repeats one already
taken coming last. Same input and seed: same subset.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Hashable, Sequence

from itkit.export.clusters import auto_clusters, cluster_texts
from itkit.records import META_CATEGORY, META_EXTRA, Record

DIVERSITY_MODES = ("auto", "category", "cluster", "random")
CATEGORY_MIN_SHARE = 0.5
"""``auto`` balances over categories when at least this share of records has one (and there are 2 or more)."""
NO_CATEGORY = "(no category)"
ALL = "(all)"


@dataclass
class Strata:
    kind: str
    """category, cluster or random (one stratum)."""
    labels: list[str]
    """The stratum of each record."""
    sublabels: list[str] | None = None
    """Finer groups inside a stratum (the k-means clusters of a topic group), taken round-robin."""
    clusters: int = 0


def category_of(record: Record) -> str | None:
    """The record's category, or a ``category`` field its format did not know (kept as extra)."""
    if record.category:
        return record.category
    extra = record.metadata.get(META_EXTRA)
    value = extra.get(META_CATEGORY) if isinstance(extra, dict) else None
    return value if isinstance(value, str) and value else None


def cluster_text(record: Record) -> str:
    """What a record's topic is judged on: its user turns (with the input)."""
    return "\n".join(record.user_texts())


def strata_for(
    records: Sequence[Record], mode: str, seed: int, subset_size: int, clusters: int | None = None
) -> Strata:
    """Assign each record to a stratum according to ``mode`` (auto, category, cluster, random)."""
    if mode not in DIVERSITY_MODES:
        raise ValueError(f"unknown diversity mode {mode!r}")
    if mode == "random" or not records:
        return Strata("random", [ALL] * len(records))
    categories = [category_of(r) for r in records]
    with_category = sum(1 for c in categories if c)
    distinct = len({c for c in categories if c})
    if mode == "category" or (
        mode == "auto" and distinct >= 2 and with_category >= CATEGORY_MIN_SHARE * len(records)
    ):
        return Strata("category", [c or NO_CATEGORY for c in categories])
    k = clusters or auto_clusters(len(records), subset_size)
    result = cluster_texts([cluster_text(r) for r in records], k, seed)
    labels = [f"{g}: {result.names[g]}" if g >= 0 else result.names[g] for g in result.groups]
    return Strata("cluster", labels, [str(c) for c in result.labels], result.clusters)


def allocate(capacity: dict[str, int], total: int) -> dict[str, int]:
    """How many records to take from each stratum: as even as capacities allow, summing to min(total, capacity).

    Leftover single records go to the strata with the most records left, then by name.
    """
    quota = {s: 0 for s in capacity}
    remaining = min(total, sum(capacity.values()))
    active = sorted(s for s, c in capacity.items() if c > 0)
    while remaining > 0 and active:
        share = remaining // len(active)
        if share == 0:
            for s in sorted(active, key=lambda s: (-(capacity[s] - quota[s]), s))[:remaining]:
                quota[s] += 1
            break
        for s in active:
            add = min(share, capacity[s] - quota[s])
            quota[s] += add
            remaining -= add
        active = [s for s in active if quota[s] < capacity[s]]
    return quota


def _round_robin(items: list[int], sublabels: Sequence[str], rng: random.Random) -> list[int]:
    """``items`` (already shuffled) interleaved over their sublabels, the sublabels in a seeded order."""
    buckets: dict[str, list[int]] = {}
    for i in items:
        buckets.setdefault(sublabels[i], []).append(i)
    order = sorted(buckets)
    rng.shuffle(order)
    queues = [buckets[b] for b in order]
    out: list[int] = []
    depth = 0
    while len(out) < len(items):
        out.extend(q[depth] for q in queues if depth < len(q))
        depth += 1
    return out


def select(
    labels: Sequence[str],
    size: int,
    seed: int,
    dup_keys: Sequence[Hashable] | None = None,
    sublabels: Sequence[str] | None = None,
) -> list[int]:
    """Indices (in input order) of ``size`` records spread evenly over ``labels``.

    ``dup_keys``: records sharing a key are duplicates; each key's first record
    in a seeded order is preferred, the others are only taken when needed.
    ``sublabels``: inside a stratum, records are taken round-robin over these.
    """
    rng = random.Random(seed)
    n = len(labels)
    if size >= n:
        return list(range(n))
    preferred = [True] * n
    if dup_keys is not None:
        seen: set[Hashable] = set()
        for i in rng.sample(range(n), n):
            if dup_keys[i] in seen:
                preferred[i] = False
            seen.add(dup_keys[i])
    members: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        members.setdefault(label, []).append(i)
    ordered: dict[str, list[int]] = {}
    for label in sorted(members):
        items = members[label]
        rng.shuffle(items)
        if sublabels is not None:
            items = _round_robin(items, sublabels, rng)
        ordered[label] = [i for i in items if preferred[i]] + [i for i in items if not preferred[i]]
    quota = allocate({label: len(items) for label, items in ordered.items()}, size)
    chosen = [i for label, items in ordered.items() for i in items[: quota[label]]]
    return sorted(chosen)


def entropy_bits(counts: Sequence[int]) -> float:
    total = sum(counts)
    if total == 0:
        return 0.0
    return -sum((c / total) * math.log2(c / total) for c in counts if c)


@dataclass
class CoverageRow:
    stratum: str
    full: int
    subset: int


@dataclass
class Coverage:
    """How the subset covers the strata of the full set."""

    kind: str
    rows: list[CoverageRow] = field(default_factory=list)
    full_entropy: float = 0.0
    subset_entropy: float = 0.0
    full_strata: int = 0
    covered_strata: int = 0

    @classmethod
    def of(cls, kind: str, full_labels: Sequence[str], subset_labels: Sequence[str]) -> "Coverage":
        full = Counter(full_labels)
        sub = Counter(subset_labels)
        rows = [CoverageRow(s, full[s], sub.get(s, 0)) for s in sorted(full, key=lambda s: (-full[s], s))]
        return cls(
            kind=kind,
            rows=rows,
            full_entropy=entropy_bits(list(full.values())),
            subset_entropy=entropy_bits(list(sub.values())),
            full_strata=len(full),
            covered_strata=sum(1 for s in full if sub.get(s)),
        )

    def as_dict(self) -> dict:
        return {
            "kind": self.kind,
            "strata": self.full_strata,
            "covered": self.covered_strata,
            "entropy_bits": {"full": round(self.full_entropy, 4), "subset": round(self.subset_entropy, 4)},
            "rows": [{"stratum": r.stratum, "full": r.full, "subset": r.subset} for r in self.rows],
        }
