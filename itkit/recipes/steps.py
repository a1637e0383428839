"""The step types of a recipe: defined once each in :mod:`itkit.steps` (options, checks, library call, run wiring).

This module names them for the runner: :data:`STEPS` (``steps:`` types) and the file layout of a step folder.
"""

from __future__ import annotations

from itkit.steps import EXPORT, STEPS
from itkit.steps.io import (
    DRY_RUN_SAMPLES,
    ELIMINATED_FILE,
    EXPORT_FOLDER,
    FAILURES_FILE,
    INTERMEDIATE_FORMAT,
    OUTPUT_FILE,
    REMOVED_FILE,
    SUMMARY_FILE,
    StepIO,
    StepOutcome,
    write_json,
)

__all__ = [
    "DRY_RUN_SAMPLES",
    "ELIMINATED_FILE",
    "EXPORT",
    "EXPORT_FOLDER",
    "FAILURES_FILE",
    "INTERMEDIATE_FORMAT",
    "OUTPUT_FILE",
    "REMOVED_FILE",
    "STEPS",
    "SUMMARY_FILE",
    "StepIO",
    "StepOutcome",
    "write_json",
]
