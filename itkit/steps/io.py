"""What a step reads and writes: the command line's files (:class:`Files`), a run folder's (:class:`StepIO`),
and what a step did in the terms of the run summary (:class:`StepOutcome`).

Between the steps of a run, records travel as Alpaca JSONL (:data:`INTERMEDIATE_FORMAT`):
it keeps the system prompt, the history of multi-turn records, the input
apart from the instruction, and itkit's metadata (source, category,
provenance). Every step writes its output to ``output.jsonl`` in its folder
and the summary its command would write to ``summary.json``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import orjson

from itkit.io.paths import check_paths
from itkit.io.sinks import write_file_atomic
from itkit.llm.settings import LLMSettings

INTERMEDIATE_FORMAT = "alpaca"
"""The record format of every file between steps (written as JSONL)."""
OUTPUT_FILE = "output.jsonl"
SUMMARY_FILE = "summary.json"
FAILURES_FILE = "failures.jsonl"
REMOVED_FILE = "removed.jsonl"
ELIMINATED_FILE = "eliminated.jsonl"
EXPORT_FOLDER = "output"
DRY_RUN_SAMPLES = 2
"""Rendered prompts shown per LLM step in a dry run."""


@dataclass
class StepIO:
    """Where a step reads and writes, and how it runs."""

    input: Path
    folder: Path
    settings: LLMSettings | None = None
    """The effective LLM settings (dry_run and quiet included); None for a step without an LLM."""
    prompts_dir: str | None = None
    samples: int = DRY_RUN_SAMPLES
    """Dry run: rendered prompts kept per LLM step."""

    @property
    def output(self) -> Path:
        return self.folder / OUTPUT_FILE

    def files(self, **extra: Any) -> "Files":
        """The step's :class:`Files` in its folder: Alpaca JSONL in and out, bad records fail the step."""
        return Files(
            src=str(self.input),
            output=str(self.output),
            from_format=INTERMEDIATE_FORMAT,
            to_format=INTERMEDIATE_FORMAT,
            prompts_dir=self.prompts_dir,
            summary_path=str(self.folder / SUMMARY_FILE),
            failures_path=str(self.folder / FAILURES_FILE),
            pass_rest=True,
            **extra,
        )


@dataclass
class StepOutcome:
    """What a step did, in the terms of the run summary."""

    records_in: int
    records_out: int | None
    """None for a dry-run LLM step (nothing was generated)."""
    removed: dict[str, int] = field(default_factory=dict)
    """Records removed on purpose, by rule / stage / reason."""
    failed: int = 0
    """Records that failed (LLM steps: in failures.jsonl)."""
    rejected: int = 0
    """Input rows that could not be read (sources with on_error: skip)."""
    passed_through: int = 0
    """LLM steps with a ``limit``: records after the limit, written unchanged (in ``records_out``)."""
    partial: bool = False
    """The step's command would exit 3."""
    outputs: dict[str, int] = field(default_factory=dict)
    """Export: records per mode."""
    engine: dict[str, Any] | None = None
    """LLM steps: the engine's accounting (requests, cache hits, tokens, cost, seconds)."""
    estimate: dict[str, Any] | None = None
    """Dry run: the requests, tokens and cost the step would spend."""
    plan_lines: list[str] = field(default_factory=list)
    """Dry run: sample prompts and the estimate, as the command's --dry-run prints them."""
    notes: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    """Files in the step's folder besides its output and fingerprint (filled in by the runner)."""
    headline: dict[str, int] = field(default_factory=dict)
    """The step's own figures, in order (evol-instruct: evolutions tried, survived...): see recipes.headlines."""
    warnings: list[str] = field(default_factory=list)
    """The step produced nothing of what it exists for ("0 of 54 evolutions survived")."""

    def headed(self, figures: tuple[dict[str, int], list[str]]) -> "StepOutcome":
        self.headline, self.warnings = dict(figures[0]), list(figures[1])
        return self

    def as_dict(self) -> dict[str, Any]:
        return {
            "records_in": self.records_in,
            "records_out": self.records_out,
            "removed": dict(self.removed),
            "failed": self.failed,
            "rejected": self.rejected,
            "passed_through": self.passed_through,
            "partial": self.partial,
            "outputs": dict(self.outputs),
            "engine": self.engine,
            "files": list(self.files),
            "headline": dict(self.headline),
            "warnings": list(self.warnings),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "StepOutcome":
        return cls(
            records_in=int(data.get("records_in") or 0),
            records_out=data.get("records_out"),
            removed=dict(data.get("removed") or {}),
            failed=int(data.get("failed") or 0),
            rejected=int(data.get("rejected") or 0),
            passed_through=int(data.get("passed_through") or 0),
            partial=bool(data.get("partial")),
            outputs=dict(data.get("outputs") or {}),
            engine=data.get("engine"),
            files=list(data.get("files") or []),
            headline=dict(data.get("headline") or {}),
            warnings=list(data.get("warnings") or []),
        )


def write_json(path: Path, data: Any) -> None:
    """A JSON file written atomically (the summaries of steps and runs)."""
    write_file_atomic(path, orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE))


@dataclass
class Files:
    """Where one run of a step reads and writes, and how it treats bad input (the command's plumbing)."""

    src: str
    output: str
    from_format: str = "auto"
    to_format: str | None = None
    on_error: str = "fail"
    errors_path: str | None = None
    report: str | None = None
    """Filter and dedup: the removed records (JSONL)."""
    eliminated: str | None = None
    """Evol-Instruct: the eliminated evolutions (JSONL)."""
    prompts_dir: str | None = None
    summary_path: str | None = None
    """LLM steps: the summary file (default: OUTPUT.summary.json)."""
    failures_path: str | None = None
    """LLM steps: the failures file (default: OUTPUT.failures.jsonl)."""
    pass_rest: bool = False
    """LLM steps: write the records after ``limit`` unchanged (a run's steps) instead of leaving them out
    (the command line's ``--limit``, which says how many it left out)."""
    progress: Callable[[str], None] | None = None

    def record_options(self) -> dict:
        """What a record-in, record-out method takes besides its source and output: formats, bad input, the rest."""
        return dict(
            from_format=self.from_format,
            to_format=self.to_format,
            on_error=self.on_error,
            errors_path=self.errors_path,
            pass_rest=self.pass_rest,
        )

    def check(
        self, command: str | None = None, settings: LLMSettings | None = None, source_label: str = "SRC", **sidecars: str
    ) -> None:
        """The paths rule (:func:`itkit.io.paths.check_paths`) over everything this run reads and writes.

        Called by every command before it reads anything: exit 2 when two of
        these paths are one file, or one names the input (``-o`` may: it is
        written atomically). An LLM step (``command`` and ``settings`` given)
        also writes its summary and failures files (``OUTPUT.summary.json``...
        unless set), its ``sidecars`` (label -> suffix after OUTPUT) and the
        response cache.
        """
        writes: dict[str, str | None] = {
            "-o": self.output,
            "--errors": self.errors_path,
            "--report": self.report,
            "--eliminated": self.eliminated,
        }
        if command is not None:
            from itkit.llm.cache import cache_path
            from itkit.llm.report import FAILURES_SUFFIX, SUMMARY_SUFFIX, sidecar_path

            writes["the summary file"] = self.summary_path or sidecar_path(self.output, SUMMARY_SUFFIX, command)
            writes["the failures file"] = self.failures_path or sidecar_path(self.output, FAILURES_SUFFIX, command)
            for label, suffix in sidecars.items():
                writes[label.replace("_", " ")] = sidecar_path(self.output, suffix, command)
            if settings is not None and not settings.no_cache and not settings.dry_run:
                writes["the response cache"] = str(cache_path(settings.cache_dir))
            if settings is not None and settings.batch_file and not settings.dry_run:
                writes["--batch-file"] = settings.batch_file
        reads = {source_label: self.src}
        for n, path in enumerate(settings.batch_results if settings is not None else ()):
            reads[f"--batch-results {path}" if n else "--batch-results"] = path
        check_paths(reads, writes)


def nonzero(counts: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in counts.items() if v}


__all__ = [
    "DRY_RUN_SAMPLES",
    "ELIMINATED_FILE",
    "EXPORT_FOLDER",
    "FAILURES_FILE",
    "Files",
    "INTERMEDIATE_FORMAT",
    "OUTPUT_FILE",
    "REMOVED_FILE",
    "SUMMARY_FILE",
    "StepIO",
    "StepOutcome",
    "nonzero",
    "write_json",
]
