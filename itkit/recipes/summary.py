"""The run summary: one row per step (records in/out, removed by reason, requests, tokens, cost, time).

Written as ``run_summary.json`` in the run folder; the CLI shows the same rows
as a table. A skipped step shows the records of the run that produced its
output, but no requests, tokens, cost or time: nothing was spent on it now
(its own ``summary.json`` keeps what was spent then).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from itkit import __version__
from itkit.recipes.steps import StepOutcome

STATUS_RAN = "ran"
STATUS_SKIPPED = "skipped"
"""Unchanged since a finished run: its output was reused."""
STATUS_PLANNED = "dry-run"
"""Dry run: the step would run (LLM steps: estimated, nothing sent)."""
STATUS_DONE = "done"
"""Dry run: the step is finished and unchanged; a run would skip it."""
RUN_SUMMARY_FILE = "run_summary.json"


@dataclass
class StepRow:
    step: str
    """The step's folder name (``01-filter``)."""
    type: str
    status: str
    outcome: StepOutcome
    seconds: float = 0.0
    folder: str | None = None
    output: str | None = None
    """The step's output, relative to the run folder."""
    forced: bool = False
    """Re-run because of ``--from-step``."""

    @property
    def engine(self) -> dict[str, Any]:
        """The engine's accounting of this run (empty for a skipped step: nothing was spent on it now)."""
        if self.status in (STATUS_RAN, STATUS_PLANNED):
            return self.outcome.engine or {}
        return {}

    @property
    def requests(self) -> int:
        return int(self.engine.get("requests") or 0)

    @property
    def cache_hits(self) -> int:
        return int(self.engine.get("cache_hits") or 0)

    @property
    def tokens(self) -> tuple[int, int]:
        tokens = self.engine.get("tokens") or {}
        return int(tokens.get("prompt") or 0), int(tokens.get("completion") or 0)

    @property
    def cost(self) -> float | None:
        value = self.engine.get("cost_usd")
        return float(value) if value is not None else None

    def as_dict(self) -> dict[str, Any]:
        o = self.outcome
        prompt, completion = self.tokens
        out: dict[str, Any] = {
            "step": self.step,
            "type": self.type,
            "status": self.status,
            "forced": self.forced,
            "records_in": o.records_in,
            "records_out": o.records_out,
            "removed": dict(o.removed),
            "failed": o.failed,
            "rejected": o.rejected,
            "passed_through": o.passed_through,
            "produced_nothing": o.records_out == 0,
            "requests": self.requests,
            "cache_hits": self.cache_hits,
            "tokens": {"prompt": prompt, "completion": completion},
            "cost_usd": self.cost,
            "seconds": round(self.seconds, 3),
            "folder": self.folder,
            "output": self.output,
            "files": list(o.files),
        }
        if o.outputs:
            out["outputs"] = dict(o.outputs)
        if o.estimate is not None:
            out["estimate"] = o.estimate
        if o.notes:
            out["notes"] = list(o.notes)
        return out


@dataclass
class RunSummary:
    recipe: str
    name: str
    run_dir: str
    recipe_sha256: str
    dry_run: bool = False
    started: float = field(default_factory=time.time)
    finished: float | None = None
    rows: list[StepRow] = field(default_factory=list)
    removed_stale: list[str] = field(default_factory=list)
    """Step folders of an earlier version of the recipe, removed."""
    report: str | None = None
    """The HTML report written at the end (``report: true`` in the recipe)."""
    error: str | None = None
    """Why the run stopped, when a step failed (the steps before it are in ``rows``)."""

    @property
    def partial(self) -> bool:
        """Some step would make its own command exit 3 (records failed, rows rejected)."""
        return any(row.outcome.partial for row in self.rows)

    @property
    def exit_code(self) -> int:
        if self.error is not None:
            return 1
        return 3 if self.partial and not self.dry_run else 0

    def totals(self) -> dict[str, Any]:
        costs = [row.cost for row in self.rows if row.requests]
        prompt = sum(row.tokens[0] for row in self.rows)
        completion = sum(row.tokens[1] for row in self.rows)
        estimated = [row.outcome.estimate for row in self.rows if row.outcome.estimate is not None]
        out: dict[str, Any] = {
            "requests": sum(row.requests for row in self.rows),
            "cache_hits": sum(row.cache_hits for row in self.rows),
            "tokens": {"prompt": prompt, "completion": completion},
            "cost_usd": None if any(c is None for c in costs) else round(sum(c for c in costs if c is not None), 6),
            "failed": sum(row.outcome.failed for row in self.rows),
            "seconds": round(sum(row.seconds for row in self.rows), 3),
        }
        if estimated:
            costs_est = [e.get("estimated_cost_usd") for e in estimated]
            out["estimate"] = {
                "requests": sum(int(e.get("requests") or 0) for e in estimated),
                "cached": sum(int(e.get("cached") or 0) for e in estimated),
                "prompt_tokens": sum(int(e.get("prompt_tokens") or 0) for e in estimated),
                "completion_tokens_estimated": sum(int(e.get("completion_tokens_estimated") or 0) for e in estimated),
                "estimated_cost_usd": None if any(c is None for c in costs_est) else round(sum(costs_est), 6),
            }
        return out

    def as_dict(self) -> dict[str, Any]:
        finished = self.finished if self.finished is not None else time.time()
        return {
            "recipe": self.recipe,
            "recipe_sha256": self.recipe_sha256,
            "name": self.name,
            "run_dir": self.run_dir,
            "itkit_version": __version__,
            "dry_run": self.dry_run,
            "started": _iso(self.started),
            "finished": _iso(finished),
            "seconds": round(finished - self.started, 3),
            "exit_code": self.exit_code,
            "steps": [row.as_dict() for row in self.rows],
            "totals": self.totals(),
            "removed_stale_folders": list(self.removed_stale),
            "error": self.error,
        }


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


__all__ = [
    "RUN_SUMMARY_FILE",
    "STATUS_DONE",
    "STATUS_PLANNED",
    "STATUS_RAN",
    "STATUS_SKIPPED",
    "RunSummary",
    "StepRow",
]
