"""The removal sections: filter rules and dedup stages, with real examples of what each removed."""

from __future__ import annotations

from typing import Any

from itkit.report.context import Limits, StepFiles
from itkit.report.diff import shared_text
from itkit.report.files import Reservoir, clip, counts_of, iter_jsonl, locate, raw_view, record_view, records_by
from itkit.report.hist import histogram

SNIPPET = 160
"""Characters of an instruction shown in a table cell."""


def _removed_file(step: StepFiles):
    return locate(step.summary.get("report"), step.folder) or locate(str(step.folder / "removed.jsonl"))


def filter_section(step: StepFiles, limits: Limits) -> dict[str, Any]:
    summary = step.summary
    by_rule = counts_of(summary.get("removed_by_rule"))
    samples: dict[str, Reservoir] = {}
    table = Reservoir(limits.table_rows, limits.seed)
    in_file: dict[str, int] = {}
    path = _removed_file(step)
    for row in iter_jsonl(path):
        rule = str(row.get("rule") or "?")
        in_file[rule] = in_file.get(rule, 0) + 1
        samples.setdefault(rule, Reservoir(limits.examples, limits.seed)).add(row)
        table.add(row)
    rules = []
    for rule in [*by_rule, *(r for r in in_file if r not in by_rule)]:
        examples = sorted(samples[rule].items, key=lambda r: r.get("index") or 0) if rule in samples else []
        rules.append({
            "rule": rule,
            "removed": by_rule.get(rule, in_file.get(rule, 0)),
            "params": next((r.get("params") for r in summary.get("rules") or [] if isinstance(r, dict) and r.get("name") == rule), None),
            "examples": [_example(r) for r in examples],
        })
    rows = sorted(table.items, key=lambda r: r.get("index") or 0)
    return {
        "kind": "filter",
        "step": step.label,
        "records_in": summary.get("rows"),
        "kept": summary.get("kept", summary.get("written")),
        "rules": rules,
        "removed_file": str(path) if path else None,
        "removed_in_file": sum(in_file.values()),
        "table": {
            "total": table.seen,
            "rows": [[str(r.get("id") or ""), r.get("index"), str(r.get("rule") or ""), str(r.get("reason") or ""),
                      clip(_instruction(r), SNIPPET)] for r in rows],
        },
    }


def _instruction(row: dict[str, Any]) -> str:
    view = raw_view(row.get("record"))
    turns = view.get("turns") or []
    return next((t["content"] for t in turns if t["role"] == "user"), view.get("raw", ""))


def _example(row: dict[str, Any]) -> dict[str, Any]:
    return {"id": str(row.get("id") or ""), "index": row.get("index"), "reason": str(row.get("reason") or ""),
            "record": raw_view(row.get("record"))}


# ---------------------------------------------------------------------------
# dedup
# ---------------------------------------------------------------------------


def _texts(view: dict[str, Any]) -> tuple[str, str]:
    """The prompt (user turns, inputs included) and the responses of a record view."""
    user = "\n\n".join(t["content"] + ("\n\n" + t["input"] if t.get("input") else "") for t in view.get("turns", []) if t["role"] == "user")
    assistant = "\n\n".join(t["content"] for t in view.get("turns", []) if t["role"] == "assistant")
    return user, assistant


def _turn_texts(view: dict[str, Any]) -> list[tuple[str, str]]:
    return [(t["role"], t["content"] + ("\n\n" + t["input"] if t.get("input") else "")) for t in view.get("turns", [])]


def _turns(a: dict[str, Any], b: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Each record's turns in order, each compared with the other record's turn at the same place."""
    ta, tb = _turn_texts(a), _turn_texts(b)
    left: list[dict[str, Any]] = []
    right: list[dict[str, Any]] = []
    for i in range(max(len(ta), len(tb))):
        ra, xa = ta[i] if i < len(ta) else ("", "")
        rb, xb = tb[i] if i < len(tb) else ("", "")
        sa, sb, _ = shared_text(xa, xb)
        if i < len(ta):
            left.append({"role": ra, "segments": sa})
        if i < len(tb):
            right.append({"role": rb, "segments": sb})
    return left, right


def _pair(row: dict[str, Any], removed: Any, kept: Any) -> dict[str, Any]:
    a, b = record_view(removed), record_view(kept)
    (pa, ra), (pb, rb) = _texts(a), _texts(b)
    prompt_a, prompt_b, prompt_share = shared_text(pa, pb)
    resp_a, resp_b, resp_share = shared_text(ra, rb)
    turns_a, turns_b = _turns(a, b)
    return {
        "stage": str(row.get("stage") or ""),
        "score": row.get("score"),
        "removed": {"id": str(row.get("id") or ""), "index": row.get("index"), "found": removed is not None,
                    "system": a.get("system", ""), "prompt": prompt_a, "response": resp_a, "turns": turns_a,
                    "source": a.get("source", "")},
        "kept": {"id": str(row.get("kept_id") or ""), "index": row.get("kept_index"), "found": kept is not None,
                 "system": b.get("system", ""), "prompt": prompt_b, "response": resp_b, "turns": turns_b,
                 "source": b.get("source", "")},
        "shared": {"prompt": prompt_share, "response": resp_share},
    }


def dedup_section(step: StepFiles, limits: Limits) -> dict[str, Any]:
    summary = step.summary
    removed = counts_of(summary.get("removed"))
    path = _removed_file(step)
    samples: dict[str, Reservoir] = {}
    table = Reservoir(limits.table_rows, limits.seed)
    scores: dict[str, list[float]] = {}
    in_file: dict[str, int] = {}
    for row in iter_jsonl(path):
        stage = str(row.get("stage") or "?")
        in_file[stage] = in_file.get(stage, 0) + 1
        samples.setdefault(stage, Reservoir(limits.pairs, limits.seed)).add(row)
        table.add(row)
        if isinstance(row.get("score"), (int, float)):
            scores.setdefault(stage, []).append(float(row["score"]))
    wanted = {i for res in samples.values() for r in res.items for i in (r.get("index"), r.get("kept_index")) if isinstance(i, int)}
    _, by_index = records_by(step.input, indices=wanted)
    stages = []
    names = [str(s) for s in summary.get("stages") or []] or list(removed)
    for stage in [*names, *(s for s in in_file if s not in names)]:
        rows = sorted(samples[stage].items, key=lambda r: r.get("index") or 0) if stage in samples else []
        stage_scores = scores.get(stage, [])
        stages.append({
            "stage": stage,
            "removed": removed.get(stage, in_file.get(stage, 0)),
            "pairs": [_pair(r, by_index.get(r.get("index")), by_index.get(r.get("kept_index"))) for r in rows],
            "scores": histogram({stage: stage_scores}, bins=10, integer=False, upper=1.0) if stage != "exact" and stage_scores else None,
        })
    rows = sorted(table.items, key=lambda r: r.get("index") or 0)
    return {
        "kind": "dedup",
        "step": step.label,
        "records_in": summary.get("rows"),
        "kept": summary.get("kept"),
        "on": summary.get("on"),
        "keep": summary.get("keep"),
        "stages": stages,
        "removed_file": str(path) if path else None,
        "input_file": str(step.input) if step.input else None,
        "table": {
            "total": table.seen,
            "rows": [[str(r.get("stage") or ""), str(r.get("id") or ""), r.get("index"), str(r.get("kept_id") or ""),
                      r.get("kept_index"), r.get("score")] for r in rows],
        },
    }
