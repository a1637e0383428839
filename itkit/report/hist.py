"""Histograms with shared, readable bin edges (the data behind the report's charts)."""

from __future__ import annotations

import math
from typing import Iterable, Sequence

DEFAULT_BINS = 20


def _nice_step(span: float, bins: int, integer: bool) -> float:
    raw = span / max(bins, 1)
    if raw <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        step = factor * power
        if step >= raw:
            break
    if integer:
        step = max(1.0, math.ceil(step))
    return step


def histogram(series: dict[str, Sequence[float]], bins: int = DEFAULT_BINS, *, integer: bool = True,
              lower: float | None = None, upper: float | None = None) -> dict:
    """Counts of each series in the same bins: ``{"edges": [...], "series": {name: counts}, "totals": {...}}``.

    ``edges`` has one more item than each count list; bin ``i`` holds values in
    ``[edges[i], edges[i+1])`` (the last bin includes its upper edge). Values
    outside ``lower``/``upper`` go into the first/last bin.
    """
    values = [v for s in series.values() for v in s]
    if not values:
        return {"edges": [], "series": {name: [] for name in series}, "totals": {name: 0 for name in series}}
    lo = min(values) if lower is None else lower
    hi = max(values) if upper is None else upper
    if hi <= lo:
        lo = hi - 1 if integer or upper is None else max(0.0, hi - 0.1)
    step = _nice_step(hi - lo, bins, integer)
    start = math.floor(lo / step) * step
    count = max(1, math.ceil((hi - start) / step - 1e-9))
    if integer and start + count * step <= hi:
        count += 1  # integer bins are [a, b): the maximum needs a bin of its own
    edges = [round(start + i * step, 6) for i in range(count + 1)]
    out = {}
    for name, vals in series.items():
        counts = [0] * count
        for v in vals:
            i = int((v - start) / step + 1e-9)
            counts[min(max(i, 0), count - 1)] += 1
        out[name] = counts
    return {"edges": edges, "series": out, "totals": {name: len(vals) for name, vals in series.items()}}


def quantile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def describe(values: Iterable[float]) -> dict:
    """count, min, median, p95, max, mean of some values (empty dict when there are none)."""
    vals = list(values)
    if not vals:
        return {}
    return {
        "count": len(vals),
        "min": min(vals),
        "median": quantile(vals, 0.5),
        "p95": quantile(vals, 0.95),
        "max": max(vals),
        "mean": sum(vals) / len(vals),
    }
