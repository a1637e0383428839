"""The score section (``itkit score``): records per score for each scorer, and scored records with their reasons."""

from __future__ import annotations

from typing import Any

from itkit.report.context import Limits, StepFiles
from itkit.report.files import Reservoir, counts_of, get, iter_records, record_view
from itkit.records import META_SCORE_REASONS, META_SCORES


def score_section(step: StepFiles, limits: Limits) -> dict[str, Any]:
    summary = step.summary
    scorers = summary.get("scorers") if isinstance(summary.get("scorers"), dict) else {}
    examples = Reservoir(limits.rewrites, limits.seed)
    for _, record in iter_records(step.output):
        if isinstance(record.metadata.get(META_SCORES), dict):
            examples.add(record)
    return {
        "kind": "score",
        "step": step.label,
        "counts": counts_of(summary.get("counts")),
        "scorers": [
            {
                "name": str(name),
                "template": str(d.get("template") or ""),
                "scale": d.get("scale") if isinstance(d.get("scale"), list) else None,
                "scored": get(d, "scored"),
                "failed": get(d, "failed"),
                "not_scored": counts_of(d.get("not_scored")),
                "mean": get(d, "distribution", "mean"),
                "histogram": counts_of(get(d, "distribution", "histogram")),
            }
            for name, d in scorers.items()
            if isinstance(d, dict)
        ],
        "examples": [
            {
                "record": record_view(r),
                "scores": {str(k): v for k, v in r.metadata[META_SCORES].items()},
                "reasons": {str(k): str(v) for k, v in (r.metadata.get(META_SCORE_REASONS) or {}).items()}
                if isinstance(r.metadata.get(META_SCORE_REASONS), dict) else {},
            }
            for r in sorted(examples.items, key=lambda r: r.id)
        ],
    }


__all__ = ["score_section"]
