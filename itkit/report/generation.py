"""The Orca and Self-Instruct sections: system messages and task types; new tasks with their most similar seeds."""

from __future__ import annotations

from typing import Any

from itkit.report.context import Limits, StepFiles
from itkit.report.files import Reservoir, clip, counts_of, get, iter_jsonl, iter_records, locate
from itkit.report.hist import histogram

SYSTEM_MESSAGE_KEY = "orca_system_message"
SIMILAR_SHOWN = 3
"""Most similar instructions shown per new Self-Instruct task."""


def orca_section(step: StepFiles, limits: Limits) -> dict[str, Any]:
    summary = step.summary
    orca = summary.get("orca") if isinstance(summary.get("orca"), dict) else {}
    texts: dict[str, str] = {}
    examples = Reservoir(limits.rewrites, limits.seed)
    for _, record in iter_records(step.output):
        number = record.metadata.get(SYSTEM_MESSAGE_KEY)
        if number is not None and str(number) not in texts:
            texts[str(number)] = clip(record.system or "", 600)
        examples.add(record)
    messages = counts_of(orca.get("system_messages"))
    return {
        "kind": "orca",
        "step": step.label,
        "counts": counts_of(summary.get("counts")),
        "assignment": summary.get("assignment") if isinstance(summary.get("assignment"), dict) else {},
        "system_messages": [
            {"number": k, "records": v, "text": texts.get(k, "")}
            for k, v in sorted(messages.items(), key=lambda kv: (not kv[0].isdigit(), int(kv[0]) if kv[0].isdigit() else 0, kv[0]))
        ],
        "task_types": counts_of(orca.get("task_types")),
        "task_type_found_by": counts_of(orca.get("task_type_found_by")),
        "fallback": orca.get("system_messages_fallback"),
        "examples": [
            {"id": r.id, "system_message": r.metadata.get(SYSTEM_MESSAGE_KEY), "task_type": str(r.metadata.get("task_type") or r.category or ""),
             "system": clip(r.system or "", 400), "prompt": clip(r.prompt, 600), "response": clip(r.output, 1200)}
            for r in sorted(examples.items, key=lambda r: r.id)
        ],
    }


def self_instruct_section(step: StepFiles, limits: Limits) -> dict[str, Any]:
    summary = step.summary
    counts = summary.get("counts") if isinstance(summary.get("counts"), dict) else {}
    path = locate(summary.get("tasks_file"), step.folder)
    if path is None and step.output is not None:
        path = locate(str(step.output) + ".tasks.jsonl", step.folder)
    sample = Reservoir(limits.rewrites, limits.seed)
    statuses: dict[str, int] = {}
    top_scores: list[float] = []
    table = Reservoir(limits.table_rows, limits.seed)
    for row in iter_jsonl(path):
        status = str(row.get("status") or "?")
        statuses[status] = statuses.get(status, 0) + 1
        similar = [s for s in row.get("most_similar") or [] if isinstance(s, dict)]
        best = similar[0].get("score") if similar else None
        if isinstance(best, (int, float)):
            top_scores.append(float(best))
        sample.add(row)
        table.add(row)
    tasks = []
    for row in sorted(sample.items, key=_task_order):
        similar = [s for s in row.get("most_similar") or [] if isinstance(s, dict)][:SIMILAR_SHOWN]
        tasks.append({
            "id": str(row.get("id") or ""),
            "instruction": clip(row.get("instruction") or "", 600),
            "status": str(row.get("status") or ""),
            "is_classification": row.get("is_classification"),
            "instances": row.get("instances"),
            "similar": [{"instruction": clip(s.get("instruction") or "", 300), "score": s.get("score")} for s in similar],
        })
    return {
        "kind": "self-instruct",
        "step": step.label,
        "counts": counts_of(counts),
        "filtered": counts_of(counts.get("filtered")),
        "classification": counts_of(counts.get("classification")),
        "instances": counts.get("instances") if isinstance(counts.get("instances"), dict) else {},
        "stopped": counts.get("stopped"),
        "rouge_threshold": get(summary, "filters", "rouge_threshold"),
        "statuses": statuses,
        "tasks": tasks,
        "tasks_file": str(path) if path else None,
        "similarity": histogram({"most similar": top_scores}, integer=False, lower=0.0, upper=1.0) if top_scores else None,
        "table": {
            "total": table.seen,
            "rows": [[str(r.get("id") or ""), clip(r.get("instruction") or "", 160), str(r.get("status") or ""),
                      _best(r)] for r in sorted(table.items, key=_task_order)],
        },
    }


def _best(row: dict[str, Any]) -> Any:
    similar = [s for s in row.get("most_similar") or [] if isinstance(s, dict)]
    return similar[0].get("score") if similar else None


def _task_order(row: dict[str, Any]) -> tuple:
    rid = str(row.get("id") or "")
    tail = rid.rsplit("-", 1)[-1]
    return (int(tail) if tail.isdigit() else 0, rid)
