"""The simplify section: original and simplified responses side by side, the length ratios, flagged records."""

from __future__ import annotations

from typing import Any

from itkit.report.context import Limits, StepFiles
from itkit.report.diff import word_count, word_diff
from itkit.report.files import Reservoir, clip, counts_of, get, iter_records, records_by
from itkit.report.hist import describe, histogram

ORIGINAL_KEY = "original_output"
"""Where ``--keep-original`` keeps the response a record had before simplify."""
FLAG_KEYS = ("simplify_flags", "simplify_violations", "fact_check", "violations", "flags")
"""Record metadata (or simplify provenance) keys that carry the fact checks' findings on a record."""
RATIO_CAP = 2.0
"""Ratios above this are counted in the last bin of the histogram."""


def _flags(record: Any) -> Any:
    for step in reversed(record.provenance):
        if isinstance(step, dict) and step.get("method") == "simplify":
            for key in FLAG_KEYS:
                if step.get(key):
                    return step[key]
    for key in FLAG_KEYS:
        if record.metadata.get(key):
            return record.metadata[key]
    return None


def _simplified(record: Any) -> bool:
    return any(isinstance(s, dict) and s.get("method") == "simplify" for s in record.provenance)


def simplify_section(step: StepFiles, limits: Limits) -> dict[str, Any]:
    summary = step.summary
    # the original responses: kept in the output (--keep-original) or read from the step's input by id
    originals: dict[str, int] = {}
    kept_inline = False
    sample = Reservoir(limits.rewrites, limits.seed)
    flagged = Reservoir(limits.rewrites, limits.seed)
    pending: list[tuple[str, int]] = []
    ratios: list[float] = []
    shares = {"shorter": 0, "unchanged": 0, "longer": 0}
    for _, record in iter_records(step.output):
        if not _simplified(record):
            continue
        flag = _flags(record)
        if flag:
            flagged.add((record, flag))
        original = record.metadata.get(ORIGINAL_KEY)
        if isinstance(original, str):
            kept_inline = True
            _count_ratio(word_count(original), word_count(record.output), ratios, shares)
        else:
            pending.append((record.id, word_count(record.output)))
        sample.add(record)
    if pending:
        wanted = {rid for rid, _ in pending}
        for _, record in iter_records(step.input):
            if record.id in wanted:
                originals[record.id] = word_count(record.output)
        for rid, words in pending:
            if rid in originals:
                _count_ratio(originals[rid], words, ratios, shares)
    missing = [r.id for r in sample.items if not isinstance(r.metadata.get(ORIGINAL_KEY), str)]
    by_id, _ = records_by(step.input, ids=missing)
    pairs = []
    for record in sorted(sample.items, key=lambda r: r.id):
        original = record.metadata.get(ORIGINAL_KEY)
        if not isinstance(original, str):
            source = by_id.get(record.id)
            original = source.output if source is not None else None
        if original is None:
            continue
        before, after = word_diff(clip(original), clip(record.output))
        pairs.append({
            "id": record.id,
            "instruction": clip(record.instruction, 400),
            "original": before,
            "simplified": after,
            "words": [word_count(original), word_count(record.output)],
            "ratio": round(word_count(record.output) / word_count(original), 3) if word_count(original) else None,
        })
    counts = summary.get("counts") if isinstance(summary.get("counts"), dict) else {}
    checks = {k: counts_of(v) for k, v in counts.items() if isinstance(v, dict) and ("check" in k or "violation" in k)}
    return {
        "kind": "simplify",
        "step": step.label,
        "counts": counts_of(counts),
        "checks": {k: v for k, v in checks.items() if v},
        "originals": "kept in the output (keep_original)" if kept_inline else "read from the step's input by id",
        "ratio": {"stats": describe(ratios), "histogram": histogram({"ratio": [min(r, RATIO_CAP) for r in ratios]},
                                                                    integer=False, lower=0.0),
                  "capped_at": RATIO_CAP, "shares": shares, "summary": get(summary, "length_ratio")},
        "pairs": pairs,
        "flagged": {"total": flagged.seen,
                    "rows": [{"id": r.id, "flags": f, "response": clip(r.output, 600)} for r, f in flagged.items]},
    }


def _count_ratio(original: int, simplified: int, ratios: list[float], shares: dict[str, int]) -> None:
    if original <= 0:
        return
    ratio = simplified / original
    ratios.append(ratio)
    shares["shorter" if simplified < original else "longer" if simplified > original else "unchanged"] += 1
