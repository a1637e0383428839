"""What a ``simplify`` run did to lengths and facts: the ``simplify`` block of its summary.

Lengths are measured in tokens of the model's tiktoken encoding, or in words
(whitespace-separated) when no encoding can be loaded (the summary says which,
under ``length_unit``). The ratio of a record is written / original response
length, for every record that had a response and was written.

The block (``OUTPUT.summary.json`` -> ``simplify``), all keys always present::

    length_unit            "tokens" or "words"
    length_ratio           {"median", "mean", "min", "max"} (null when no record had a response)
    ratio_distribution     [{"range": "[0, 0.25)", "records": n}, ...] in RATIO_BUCKETS order
    lengths                {"shortened", "unchanged", "longer"}: written response shorter / same
                           length / longer than the original; "shares": the same as fractions
    checks                 the names of the checks that ran
    violations_first_try   {check: written records whose first rewrite broke it}
    violations_final       {check: written records whose last rewrite (after the retry) still broke it}
    retried                records asked once more, with their problems named in the prompt
    fixed_by_retry         of which the retry's rewrite passed every check and the length guard
    kept_original          records written with their original response (--on-violation keep-original)
    flagged                records written with a rewrite that breaks a check (--on-violation flag)
    failed_checks          records failed because of a check (--on-violation fail)
    on_violation, allow_code_edits   the policy of the run
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from itkit.errors import TokenizerError
from itkit.simplify_checks import CHECK_NAMES

RATIO_BUCKETS: tuple[tuple[str, float, float], ...] = (
    ("[0, 0.25)", 0.0, 0.25),
    ("[0.25, 0.5)", 0.25, 0.5),
    ("[0.5, 0.75)", 0.5, 0.75),
    ("[0.75, 1)", 0.75, 1.0),
    ("1", 1.0, 1.0),
    ("(1, 1.25)", 1.0, 1.25),
    (">= 1.25", 1.25, float("inf")),
)
"""(label, low, high) of each bar of the ratio distribution; "1" holds the records of unchanged length."""


class LengthMeter:
    """Response lengths in tokens of the model's encoding, or in words when no encoding can be loaded.

    Unless the run needs the encoding before its first request anyway (``--tpm``, a dry run), it loads in a
    thread meanwhile: ``await meter.ready()`` before the first count keeps the event loop free while it loads.
    """

    def __init__(self, engine: Any):
        self._engine = engine
        self._counter: Any = None
        self.unit = "tokens"
        if engine.settings.tpm is None and not engine.settings.dry_run and hasattr(engine, "preload_counter"):
            engine.preload_counter()  # counter_for(required=False) cannot fail: the unit stays tokens
            return
        try:
            self._counter = engine.counter
        except TokenizerError:
            self.unit = "words"

    async def ready(self) -> None:
        """Wait (without blocking the event loop) for the encoding a background load is reading."""
        if self._counter is None and self.unit == "tokens":
            self._counter = await self._engine.counter_ready()

    def __call__(self, text: str) -> int:
        if self._counter is None and self.unit == "tokens":
            self._counter = self._engine.counter  # not awaited: block until it is there
        if self._counter is None:
            return len(text.split())
        return self._counter.count(text)


def bucket_of(ratio: float) -> str:
    """The label of the bar a ratio falls in."""
    if ratio == 1.0:
        return "1"
    for label, low, high in RATIO_BUCKETS:
        if low < high and low <= ratio < high and ratio != 1.0:
            return label
    return RATIO_BUCKETS[-1][0]


@dataclass
class SimplifyStats:
    unit: str = "tokens"
    checks: tuple[str, ...] = CHECK_NAMES
    on_violation: str = "keep-original"
    allow_code_edits: bool = False
    ratios: list[float] = field(default_factory=list)
    lengths: Counter = field(default_factory=Counter)
    first_try: Counter = field(default_factory=Counter)
    final: Counter = field(default_factory=Counter)
    outcomes: Counter = field(default_factory=Counter)

    def add_lengths(self, original: int, written: int) -> None:
        ratio = written / original if original else 1.0
        self.ratios.append(ratio)
        self.lengths["shortened" if written < original else "longer" if written > original else "unchanged"] += 1

    def as_dict(self) -> dict[str, Any]:
        n = len(self.ratios)
        buckets = Counter(bucket_of(r) for r in self.ratios)
        summary_ratio: dict[str, float | None] = {"median": None, "mean": None, "min": None, "max": None}
        if n:
            summary_ratio = {
                "median": round(statistics.median(self.ratios), 4),
                "mean": round(statistics.fmean(self.ratios), 4),
                "min": round(min(self.ratios), 4),
                "max": round(max(self.ratios), 4),
            }
        lengths = {k: self.lengths.get(k, 0) for k in ("shortened", "unchanged", "longer")}
        return {
            "length_unit": self.unit,
            "length_ratio": summary_ratio,
            "ratio_distribution": [{"range": label, "records": buckets.get(label, 0)} for label, _, _ in RATIO_BUCKETS],
            "lengths": {**lengths, "shares": {k: round(v / n, 4) if n else 0.0 for k, v in lengths.items()}},
            "checks": list(self.checks),
            "violations_first_try": {c: self.first_try.get(c, 0) for c in self.checks},
            "violations_final": {c: self.final.get(c, 0) for c in self.checks},
            **{k: self.outcomes.get(k, 0) for k in ("retried", "fixed_by_retry", "kept_original", "flagged", "failed_checks")},
            "on_violation": self.on_violation,
            "allow_code_edits": self.allow_code_edits,
        }


def distribution_lines(block: dict[str, Any], width: int = 30) -> list[str]:
    """The ratio distribution as text bars (for the stderr summary; fits 80 columns)."""
    rows = block["ratio_distribution"]
    top = max((r["records"] for r in rows), default=0)
    lines = []
    for row in rows:
        bar = "#" * (round(row["records"] / top * width) if top else 0)
        lines.append(f"  {row['range']:>12} {row['records']:>7}  {bar}")
    return lines
