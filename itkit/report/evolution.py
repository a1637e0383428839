"""The Evol-Instruct section: lineages (parent, round 1, round 2...) and what each rule and operation eliminated."""

from __future__ import annotations

from typing import Any

from itkit.report.context import Limits, StepFiles
from itkit.report.files import Reservoir, clip, get, iter_jsonl, iter_records, locate, records_by

METHOD = "evol-instruct"


def _chain(record: Any) -> list[dict[str, Any]]:
    return [s for s in record.provenance if isinstance(s, dict) and s.get("method") == METHOD]


def _prompt(record: Any) -> str:
    return clip(record.instruction + (("\n\n" + record.input) if record.input else ""), 1200)


def evol_section(step: StepFiles, limits: Limits) -> dict[str, Any]:
    summary = step.summary
    evol = summary.get("evol_instruct") if isinstance(summary.get("evol_instruct"), dict) else {}
    # lineages: every output record descending from an input record through evolutions, grouped by that record
    roots: dict[str, list[tuple[int, str]]] = {}
    for _, record in iter_records(step.output):
        chain = _chain(record)
        if chain:
            root = str(chain[0].get("parent_id") or "")
            roots.setdefault(root, []).append((len(chain), record.id))
    eliminated_path = locate(evol.get("eliminated_file"), step.folder) or locate(str(step.folder / "eliminated.jsonl"))
    eliminated: dict[str, list[dict[str, Any]]] = {}
    by_rule: dict[str, Reservoir] = {}
    for row in iter_jsonl(eliminated_path):
        eliminated.setdefault(str(row.get("id") or ""), []).append(row)
        by_rule.setdefault(str(row.get("rule") or "?"), Reservoir(limits.examples, limits.seed)).add(row)
    sample = Reservoir(limits.rewrites, limits.seed)
    for root in roots:
        sample.add(root)
    chosen = sorted(sample.items)
    member_ids = {rid for root in chosen for _, rid in roots[root]}
    members, _ = records_by(step.output, ids=member_ids)
    sources, _ = records_by(step.input, ids=chosen)
    lineages = []
    for root in chosen:
        rows = []
        source = sources.get(root)
        rows.append({"round": 0, "id": root, "operation": "input", "prompt": _prompt(source) if source else None,
                     "status": "source"})
        kept = {rid: members.get(rid) for _, rid in sorted(roots[root])}
        final = max(roots[root])[1]
        chain = _chain(members[final]) if final in members else []
        for step_ in chain:
            child_id = _child_id(step_, chain, final)
            record = kept.get(child_id) if child_id else None
            rows.append({"round": step_.get("round"), "id": child_id or "", "operation": str(step_.get("operation") or ""),
                         "prompt": _prompt(record) if record is not None else None, "status": "survived"})
        for row in eliminated.get(root, []):
            rows.append({"round": row.get("round"), "id": "", "operation": str(row.get("operation") or ""),
                         "prompt": clip(row.get("instruction") or "", 1200) or None, "status": "eliminated",
                         "rule": str(row.get("rule") or ""), "detail": str(row.get("detail") or "")})
        rows.sort(key=lambda r: (r["round"] if isinstance(r["round"], int) else 0, r["status"] != "survived"))
        response = members[final].output if final in members else ""
        lineages.append({"root": root, "steps": rows, "final_response": clip(response, 800)})
    return {
        "kind": "evol-instruct",
        "step": step.label,
        "counts": summary.get("counts") if isinstance(summary.get("counts"), dict) else {},
        "evolutions": evol.get("evolutions") if isinstance(evol.get("evolutions"), dict) else {},
        "eliminated_by_rule": evol.get("eliminated_by_rule") if isinstance(evol.get("eliminated_by_rule"), dict) else {},
        "failed_by_stage": evol.get("failed_by_stage") if isinstance(evol.get("failed_by_stage"), dict) else {},
        "by_operation": evol.get("by_operation") if isinstance(evol.get("by_operation"), dict) else {},
        "by_round": [r for r in evol.get("by_round") or [] if isinstance(r, dict)],
        "keep": get(evol, "keep"),
        "lineages": lineages,
        "lineage_total": len(roots),
        "eliminated_examples": {
            rule: [{"id": str(r.get("id") or ""), "round": r.get("round"), "operation": str(r.get("operation") or ""),
                    "instruction": clip(r.get("instruction") or "", 600), "detail": str(r.get("detail") or "")}
                   for r in res.items]
            for rule, res in by_rule.items()
        },
        "eliminated_file": str(eliminated_path) if eliminated_path else None,
    }


def _child_id(step: dict[str, Any], chain: list[dict[str, Any]], final: str) -> str | None:
    """The id of the record a provenance step produced: the parent of the next step, or the final record."""
    i = chain.index(step)
    if i + 1 < len(chain):
        return str(chain[i + 1].get("parent_id") or "") or None
    return final
