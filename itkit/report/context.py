"""What a section of the report is built from: one step's summary and files, and the sample sizes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Limits:
    """How much of a run the page shows (samples, not every record, so a large run stays a few MB)."""

    examples: int = 5
    """Removed records shown per filter rule (and failures per step)."""
    pairs: int = 6
    """Duplicate pairs shown per dedup stage."""
    rewrites: int = 10
    """Original/rewritten pairs shown for simplify, lineages for Evol-Instruct, new tasks for Self-Instruct."""
    table_rows: int = 300
    """Rows in a searchable table (a uniform sample when there are more)."""
    seed: int = 0
    """Seed of every sample: the same run gives the same page."""


@dataclass
class StepFiles:
    """One step as the report sees it."""

    label: str
    """Its folder name in a run (``02-dedup``) or the command's name."""
    type: str
    summary: dict[str, Any]
    folder: Path
    """Where its side files are looked for when the paths its summary records are gone."""
    input: Path | None = None
    """The records the step read (the previous stage's output in a run)."""
    output: Path | None = None
    row: dict[str, Any] = field(default_factory=dict)
    """Its row of ``run_summary.json`` (empty for a single command)."""
