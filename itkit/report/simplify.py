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
        flag = _flags(record)
        if flag:  # flagged rewrites, and originals kept because every rewrite broke a check
            flagged.add((record, flag))
        if not _simplified(record):
            continue
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
    block = summary.get("simplify") if isinstance(summary.get("simplify"), dict) else {}
    distribution = [(str(r.get("range")), r.get("records")) for r in block.get("ratio_distribution") or []
                    if isinstance(r, dict) and isinstance(r.get("records"), int)]
    first, final = counts_of(block.get("violations_first_try")), counts_of(block.get("violations_final"))
    lengths = counts_of(block.get("lengths"))
    if {"shortened", "unchanged", "longer"} <= set(lengths):  # the summary's own count (in its unit) wins
        shares = {"shorter": lengths["shortened"], "unchanged": lengths["unchanged"], "longer": lengths["longer"]}
    return {
        "kind": "simplify",
        "fact_checks": {
            "unit": block.get("length_unit"),
            "median_ratio": get(block, "length_ratio", "median"),
            "distribution": distribution,
            "violations": [(c, first.get(c, 0), final.get(c, 0)) for c in dict.fromkeys([*first, *final])],
            "outcomes": {k: block[k] for k in ("retried", "fixed_by_retry", "kept_original", "flagged", "failed_checks")
                         if isinstance(block.get(k), int)},
            "on_violation": block.get("on_violation"),
        } if block else None,
        "step": step.label,
        "counts": counts_of(counts),
        "checks": {k: v for k, v in checks.items() if v},
        "originals": "kept in the output (keep_original)" if kept_inline else "read from the step's input by id",
        "ratio": {"stats": describe(ratios), "histogram": histogram({"ratio": [min(r, RATIO_CAP) for r in ratios]},
                                                                    integer=False, lower=0.0),
                  "capped_at": RATIO_CAP, "shares": shares, "summary": get(summary, "length_ratio")},
        "pairs": pairs,
        "flagged": {"total": flagged.seen,
                    "rows": [{"id": r.id, "flags": _flag_text(f), "response": clip(r.output, 600)}
                             for r, f in sorted(flagged.items, key=lambda item: item[0].id)]},
    }


def _flag_text(flags: Any) -> str:
    """``{check: [problems]}`` (or a list, or text) as one line."""
    if isinstance(flags, dict):
        return "; ".join(f"{k}: {', '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in flags.items())
    if isinstance(flags, list):
        return ", ".join(map(str, flags))
    return str(flags)


def _count_ratio(original: int, simplified: int, ratios: list[float], shares: dict[str, int]) -> None:
    if original <= 0:
        return
    ratio = simplified / original
    ratios.append(ratio)
    shares["shorter" if simplified < original else "longer" if simplified > original else "unchanged"] += 1
