"""The funnel: records in, out, removed (with reasons) and failed at every step, and what LLM steps spent."""

from __future__ import annotations

from typing import Any

from itkit.failures import FAILURE_KEY
from itkit.report.context import Limits, StepFiles
from itkit.report.files import Reservoir, clip, counts_of, get, iter_jsonl, locate

FAILURES_FILE = "failures.jsonl"
RAW_SHOWN = 300
"""Characters of a failed record's raw response shown."""


def failure_examples(step: StepFiles, limits: Limits) -> list[dict[str, Any]]:
    """A sample of the records an LLM step could not process, from its failures file (id, reason, raw response)."""
    recorded = get(step.summary, "failures", "file")
    path = locate(recorded, step.folder) or locate(str(step.folder / FAILURES_FILE))
    sample = Reservoir(limits.examples, limits.seed)
    for row in iter_jsonl(path):
        sample.add(row)
    return [_failure(r) for r in sample.items]


def _failure(row: dict[str, Any]) -> dict[str, Any]:
    """A failures-file row (the input row verbatim plus FAILURE_KEY: reason, location, raw response) for the page."""
    failure = row.get(FAILURE_KEY)
    if isinstance(failure, dict):
        where = failure.get("line", failure.get("index"))
        rid = row.get("id") or (f'{failure.get("source") or "input"}:{where}' if where is not None else "")
        return {"id": str(rid), "reason": str(failure.get("reason") or ""), "raw": clip(failure.get("response") or "", RAW_SHOWN)}
    # the older layout: {"id", "reason", "raw"}
    return {"id": str(row.get("id") or ""), "reason": str(row.get("reason") or ""), "raw": clip(row.get("raw") or "", RAW_SHOWN)}


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _engine(summary: dict[str, Any]) -> dict[str, Any]:
    engine = summary.get("engine")
    return engine if isinstance(engine, dict) else {}


def run_row(step: StepFiles) -> dict[str, Any]:
    """A funnel row from the run summary's row, completed with the step's own summary (failure reasons)."""
    row, summary = step.row, step.summary
    engine = _engine(summary)
    out = {
        "step": step.label,
        "type": step.type,
        "status": str(row.get("status") or ""),
        "records_in": _int(row.get("records_in")),
        "records_out": _int(row.get("records_out")),
        "removed": counts_of(row.get("removed")),
        "failed": _int(row.get("failed")) or 0,
        "rejected": _int(row.get("rejected")) or 0,
        "outputs": counts_of(row.get("outputs")),
        "requests": _int(row.get("requests")) or 0,
        "cache_hits": _int(row.get("cache_hits")) or 0,
        "tokens": {
            "prompt": _int(get(row, "tokens", "prompt")) or 0,
            "completion": _int(get(row, "tokens", "completion")) or 0,
        },
        "cost_usd": row.get("cost_usd") if isinstance(row.get("cost_usd"), (int, float)) else None,
        "seconds": row.get("seconds") if isinstance(row.get("seconds"), (int, float)) else None,
        "failure_reasons": counts_of(get(summary, "failures", "reasons")) or counts_of(engine.get("failure_reasons")),
        "llm": bool(engine) or step.type in LLM_TYPES,
    }
    if out["status"] == "skipped" and engine:
        # the run reused this step's output: what it spent is what its own summary recorded then
        out["spent_earlier"] = True
        out["requests"] = _int(engine.get("requests")) or 0
        out["cache_hits"] = _int(engine.get("cache_hits")) or 0
        out["tokens"] = {"prompt": _int(get(engine, "tokens", "prompt")) or 0,
                         "completion": _int(get(engine, "tokens", "completion")) or 0}
        out["cost_usd"] = engine.get("cost_usd") if isinstance(engine.get("cost_usd"), (int, float)) else None
    return out


LLM_TYPES = ("simplify", "evol-instruct", "orca", "self-instruct", "score")


def command_row(step: StepFiles) -> dict[str, Any]:
    """A funnel row from a single command's summary (no run summary)."""
    s = step.summary
    engine = _engine(s)
    counts = s.get("counts") if isinstance(s.get("counts"), dict) else {}
    row: dict[str, Any] = {"status": "ran"}
    if step.type == "filter":
        row.update(records_in=s.get("rows"), records_out=s.get("written", s.get("kept")),
                   removed={k: v for k, v in counts_of(s.get("removed_by_rule")).items() if v}, rejected=s.get("rejected"))
    elif step.type == "dedup":
        row.update(records_in=s.get("rows"), records_out=s.get("kept"),
                   removed={k: v for k, v in counts_of(s.get("removed")).items() if v}, rejected=s.get("rejected"))
    elif step.type == "export":
        modes = s.get("modes") if isinstance(s.get("modes"), dict) else {}
        row.update(records_in=get(s, "source", "rows"), records_out=None,
                   outputs={m: get(v, "records") for m, v in modes.items() if isinstance(get(v, "records"), int)},
                   rejected=get(s, "source", "rejected"))
    elif step.type == "self-instruct":
        row.update(records_in=counts.get("seeds"), records_out=counts.get("records_written"),
                   failed=get(s, "failures", "count"))
    else:
        failed = counts.get("failed", 0) or 0
        if step.type == "evol-instruct":
            failed = (counts.get("failed") or 0) + (counts.get("skipped") or 0)
        row.update(records_in=counts.get("read"), records_out=counts.get("written"), failed=failed,
                   rejected=counts.get("rejected_input"))
    row.update(
        requests=engine.get("requests"), cache_hits=engine.get("cache_hits"),
        tokens={"prompt": get(engine, "tokens", "prompt"), "completion": get(engine, "tokens", "completion")},
        cost_usd=engine.get("cost_usd"), seconds=s.get("seconds"),
    )
    return run_row(StepFiles(step.label, step.type, s, step.folder, row=row))


def totals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The page's headline figures."""
    first = next((r for r in rows if r["records_in"] is not None), None)
    export = next((r for r in reversed(rows) if r["outputs"] and r["type"] == "export"), None)
    last = next((r for r in reversed(rows) if r["records_out"] is not None), None)
    costs = [r["cost_usd"] for r in rows if r["requests"]]
    return {
        "records_in": first["records_in"] if first else None,
        "records_out": last["records_out"] if last else None,
        "outputs": export["outputs"] if export else {},
        "removed": sum(sum(r["removed"].values()) for r in rows if r["type"] != "export"),
        "failed": sum(r["failed"] for r in rows),
        "rejected": sum(r["rejected"] for r in rows),
        "requests": sum(r["requests"] for r in rows),
        "cache_hits": sum(r["cache_hits"] for r in rows),
        "tokens": sum(r["tokens"]["prompt"] + r["tokens"]["completion"] for r in rows),
        "cost_usd": None if not costs or any(c is None for c in costs) else round(sum(costs), 6),
        "llm_steps": sum(1 for r in rows if r["llm"]),
    }
