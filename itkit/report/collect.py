"""Everything the report shows, as plain data (JSON-able dicts): built from a run folder or one command's files.

:func:`collect` accepts

- a run folder (``run_summary.json`` and the step folders of ``itkit run``);
- one step folder of a run (its ``summary.json``);
- a single command's summary: ``OUT.summary.json`` of an LLM command, the
  ``--json`` output of ``itkit filter`` / ``itkit dedup`` saved to a file, or
  an export folder (its ``manifest.json``); the side files the summary names
  (removed records, tasks, eliminated evolutions) are read when present.

A key missing from a summary leaves its part of the page out; it never fails.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

from itkit import __version__
from itkit.errors import UsageError
from itkit.report.cleaning import dedup_section, filter_section
from itkit.report.context import Limits, StepFiles
from itkit.report.evolution import evol_section
from itkit.report.files import locate, read_json
from itkit.report.funnel import command_row, failure_examples, run_row, totals
from itkit.report.generation import orca_section, self_instruct_section
from itkit.report.scores import score_section
from itkit.report.simplify import simplify_section
from itkit.report.training import export_section

RUN_SUMMARY = "run_summary.json"
STEP_SUMMARY = "summary.json"
MANIFEST = "manifest.json"

SECTIONS: dict[str, Callable[[StepFiles, Limits], dict[str, Any]]] = {
    "filter": filter_section,
    "dedup": dedup_section,
    "simplify": simplify_section,
    "evol-instruct": evol_section,
    "orca": orca_section,
    "self-instruct": self_instruct_section,
    "score": score_section,
    "export": export_section,
}


def summary_type(summary: dict[str, Any]) -> str | None:
    """Which command wrote a summary, from its keys."""
    command = summary.get("command")
    if isinstance(command, str) and command in SECTIONS:
        return command
    if isinstance(command, str) and command.startswith("itkit export") or isinstance(summary.get("modes"), dict):
        return "export"
    if "removed_by_rule" in summary:
        return "filter"
    if "stages" in summary and "kept" in summary:
        return "dedup"
    if "sources" in summary and "written" in summary:
        return "sources"
    return None


def _section(step: StepFiles, limits: Limits) -> dict[str, Any] | None:
    build = SECTIONS.get(step.type)
    return build(step, limits) if build is not None else None


Progress = Callable[[str], None]
"""``progress(message)``: called before each step is read (the CLI shows it on stderr)."""


def collect(target: str | Path, limits: Limits | None = None, progress: Progress | None = None) -> dict[str, Any]:
    """The report's data for a run folder, a step folder, a summary file or an export folder."""
    limits = limits or Limits()
    progress = progress or (lambda message: None)
    path = Path(target)
    if path.is_dir() and (path / RUN_SUMMARY).is_file():
        return _run(path, limits, progress)
    if path.is_dir() and (path / STEP_SUMMARY).is_file():
        return _command(path / STEP_SUMMARY, limits, progress)
    if path.is_dir() and (path / MANIFEST).is_file():
        return _command(path / MANIFEST, limits, progress)
    if path.is_file():
        return _command(path, limits, progress)
    if path.is_dir():
        raise UsageError(
            f"{target}: no run_summary.json, summary.json or manifest.json in it; give a run folder (itkit run), "
            "a command's OUT.summary.json or an export folder"
        )
    raise UsageError(f"{target}: no such file or folder")


def _header(kind: str, title: str, where: Path, extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": kind,
        "title": title,
        "path": str(where),
        "generated": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "itkit_version": __version__,
        **extra,
    }


def _run(run_dir: Path, limits: Limits, progress: Progress) -> dict[str, Any]:
    summary = read_json(run_dir / RUN_SUMMARY)
    if summary is None:
        raise UsageError(f"{run_dir / RUN_SUMMARY}: not a JSON object; is it a run folder of itkit run?")
    rows: list[dict[str, Any]] = []
    sections: list[dict[str, Any]] = []
    previous: Path | None = None
    steps = [s for s in summary.get("steps") or [] if isinstance(s, dict)]
    for row in steps:
        label = str(row.get("step") or row.get("folder") or "?")
        folder = run_dir / str(row.get("folder") or label)
        output = run_dir / row["output"] if isinstance(row.get("output"), str) else None
        step = StepFiles(label, str(row.get("type") or ""), read_json(folder / STEP_SUMMARY) or {}, folder,
                         input=previous, output=output, row=row)
        rows.append({**run_row(step), "failure_examples": failure_examples(step, limits) if row.get("failed") else []})
        if step.summary and row.get("status") != "dry-run":
            progress(f"reading {label}")
            section = _section(step, limits)
            if section is not None:
                sections.append(section)
        if step.type != "export" and output is not None:
            previous = output
    return {
        **_header("run", str(summary.get("name") or run_dir.name), run_dir, {
            "recipe": summary.get("recipe"),
            "started": summary.get("started"),
            "finished": summary.get("finished"),
            "seconds": summary.get("seconds"),
            "exit_code": summary.get("exit_code"),
            "error": summary.get("error"),
            "dry_run": bool(summary.get("dry_run")),
        }),
        "funnel": rows,
        "totals": totals(rows),
        "sections": sections,
    }


def _command(path: Path, limits: Limits, progress: Progress) -> dict[str, Any]:
    summary = read_json(path)
    if summary is None:
        raise UsageError(f"{path}: not a JSON summary (give OUT.summary.json, a saved --json summary or manifest.json)")
    kind = summary_type(summary)
    if kind is None or kind == "sources":
        raise UsageError(f"{path}: not the summary of an itkit command this report knows (filter, dedup, simplify, "
                         "evol-instruct, orca, self-instruct, score, export)")
    folder = path.parent
    params = summary.get("parameters") if isinstance(summary.get("parameters"), dict) else {}
    source = summary.get("source")
    source_path = source.get("path") if isinstance(source, dict) else source
    input_path = locate(source_path or params.get("src") or params.get("seeds"), folder)
    output = locate(summary.get("output") or params.get("output"), folder)
    step = StepFiles(kind, kind, summary, folder, input=input_path, output=output)
    row = command_row(step)
    row["failure_examples"] = failure_examples(step, limits) if row["failed"] else []
    progress(f"reading {path.name}")
    section = _section(step, limits)
    return {
        **_header("command", (output or path).name if kind != "export" else folder.name, path, {"summary_file": str(path)}),
        "funnel": [row],
        "totals": totals([row]),
        "sections": [section] if section is not None else [],
    }
