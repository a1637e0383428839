"""The distribution of a set of scores, as the summaries, ``itkit stats`` and the dataset card show it."""

from __future__ import annotations

from collections import Counter
from typing import Any, Iterable

EXACT_VALUES_SHOWN = 11
"""Up to this many distinct scores (1-5 in half points is 9) are counted value by value..."""
BINS = 10
"""...beyond it, in this many equal-width bins between the lowest and the highest."""


def plain(value: float) -> str:
    """``4.0`` as ``4``, ``4.5`` as ``4.5``."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def median(values: list[float]) -> float:
    s = sorted(values)
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2


def histogram(values: Iterable[float]) -> dict[str, int]:
    """Records per score (``{"3": 10, "4": 25, "4.5": 3}``), or per bin (``{"0-10": 4, ...}``) for many values."""
    counts = Counter(float(v) for v in values)
    if len(counts) <= EXACT_VALUES_SHOWN:
        return {plain(v): counts[v] for v in sorted(counts)}
    low, high = min(counts), max(counts)
    width = (high - low) / BINS
    bins = [0] * BINS
    for value, n in counts.items():
        bins[min(int((value - low) / width), BINS - 1)] += n
    return {f"{low + i * width:g}-{low + (i + 1) * width:g}": n for i, n in enumerate(bins)}


def describe_scores(values: list[float]) -> dict[str, Any]:
    """count, mean, median, min, max and the histogram of ``values`` (None figures for no values)."""
    if not values:
        return {"count": 0, "mean": None, "median": None, "min": None, "max": None, "histogram": {}}
    return {
        "count": len(values),
        "mean": round(sum(values) / len(values), 4),
        "median": median(values),
        "min": min(values),
        "max": max(values),
        "histogram": histogram(values),
    }


__all__ = ["BINS", "EXACT_VALUES_SHOWN", "describe_scores", "histogram", "median", "plain"]
