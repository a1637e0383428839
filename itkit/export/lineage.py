"""Where exported records come from: usable conversations, provenance, and the rows of ``<mode>/lineage.jsonl``."""

from __future__ import annotations

from collections import Counter
from typing import Any, Sequence

from itkit.export.length import SPLIT_OPERATION
from itkit.export.subset import category_of
from itkit.records import META_EXTRA, META_PROVENANCE, META_SOURCE, META_SOURCE_FORMAT, Record


def usable(record: Record) -> Record | None:
    """The record ending with an assistant turn (a trailing user turn removed), or None if nothing is left."""
    if record.has_output:
        return record
    turns = list(record.turns)
    while turns and turns[-1].role != "assistant":
        turns.pop()
    if not turns:
        return None
    return record.model_copy(update={"turns": turns, "input": "", "metadata": dict(record.metadata)})


def provenance_of(record: Record) -> list[dict[str, Any]]:
    """The record's rewrite steps: a ``provenance`` field its format kept as extra, then its own provenance."""
    extra = record.metadata.get(META_EXTRA)
    steps: list[Any] = []
    for found in (extra.get(META_PROVENANCE) if isinstance(extra, dict) else None, record.metadata.get(META_PROVENANCE)):
        if isinstance(found, list):
            steps.extend(found)
    return [p for p in steps if isinstance(p, dict)]


def lineage_summary(records: Sequence[Record], default_source: str) -> dict[str, Any]:
    """Sources, source formats and rewrite steps (from provenance) of a set of records."""
    sources: Counter[str] = Counter()
    formats: Counter[str] = Counter()
    steps: Counter[tuple[str, str, str]] = Counter()
    rewritten = 0
    for r in records:
        sources[str(r.metadata.get(META_SOURCE) or default_source)] += 1
        formats[str(r.metadata.get(META_SOURCE_FORMAT) or "unknown")] += 1
        prov = provenance_of(r)
        if any(p.get("operation") != SPLIT_OPERATION for p in prov):
            rewritten += 1
        for p in prov:
            steps[(str(p.get("method") or "?"), str(p.get("operation") or ""), str(p.get("model") or ""))] += 1
    return {
        "sources": dict(sources.most_common()),
        "source_formats": dict(formats.most_common()),
        "rewritten_records": rewritten,
        "steps": [
            {"method": m, "operation": o, "model": model, "records": n}
            for (m, o, model), n in sorted(steps.items(), key=lambda kv: (-kv[1], kv[0]))
        ],
    }


def lineage_row(record: Record, split: str, response: str, default_source: str) -> dict[str, Any]:
    parent = record.id
    part = 0
    for p in provenance_of(record):
        if isinstance(p, dict) and p.get("operation") == SPLIT_OPERATION:
            parent = str(p.get("parent_id", parent))
            part = int(p.get("part", 0))
    return {
        "id": record.id,
        "split": split,
        "source_id": parent,
        "part": part,
        "response": response,
        "category": category_of(record) or "",
        "source": str(record.metadata.get(META_SOURCE) or default_source),
        "provenance": provenance_of(record),
    }
