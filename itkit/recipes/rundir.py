"""Which folders ``itkit run`` may write, reset and remove: only those it provably made.

A run folder carries the marker file :data:`RUN_MARKER`, and each step folder
in it :data:`STEP_MARKER` (both written by itkit when it creates them, before
anything else goes in). ``itkit run`` accepts as its run folder a new or empty
folder, or one with the marker; anything else (a non-empty folder of the
user's, ``/``, a home folder, ``/proc/...``) is refused before anything is
written. A folder named like a step (``01-filter``) is reset or removed only
when it carries the step marker (or, from itkit 0.1.0, a fingerprint file).
"""

from __future__ import annotations

import os
from pathlib import Path

import orjson

from itkit.errors import UsageError
from itkit.io.sinks import write_file_atomic

RUN_MARKER = ".itkit-run"
STEP_MARKER = ".itkit-step"
MARKER_FORMAT = 1
SYSTEM_FOLDERS = ("/proc", "/sys", "/dev")
"""Folders (and everything under them) never accepted as a run folder."""
LEGACY_FILES = {".lock", "run_summary.json"}
"""What a run folder of itkit 0.1.0 (no marker yet) holds besides its step folders."""


def _is_step_folder(folder: Path) -> bool:
    return (folder / STEP_MARKER).is_file() or _legacy_step(folder)


def _legacy_step(folder: Path) -> bool:
    from itkit.recipes.fingerprint import read_fingerprint

    recorded = read_fingerprint(folder)
    return recorded is not None and recorded.get("step") == folder.name


def owned_step_folder(folder: Path) -> bool:
    """May itkit reset or remove this step folder? (it carries itkit's step marker or fingerprint)"""
    return folder.is_dir() and not folder.is_symlink() and _is_step_folder(folder)


def check_run_dir(folder: Path, option: str = "--run-dir") -> None:
    """Refuse (exit 2) a run folder itkit did not make: see the module docstring. Writes nothing."""
    shown = f"{option} {folder}"
    text = str(folder)
    if folder == Path(folder.anchor) or folder == Path.home().resolve():
        raise UsageError(f"{shown}: is the filesystem root or your home folder; give a folder of its own (e.g. runs/NAME)")
    if any(text == root or text.startswith(root + "/") for root in SYSTEM_FOLDERS):
        raise UsageError(f"{shown}: is a system folder; give a folder of your own (e.g. runs/NAME)")
    if not folder.exists():
        return
    if not folder.is_dir():
        raise UsageError(f"{shown}: exists and is not a folder")
    if (folder / RUN_MARKER).is_file():
        return
    try:
        entries = list(folder.iterdir())
    except OSError as exc:
        raise UsageError(f"{shown}: cannot list it: {exc.strerror or exc}") from None
    foreign = [e.name for e in entries if e.name not in LEGACY_FILES and not (e.is_dir() and _legacy_step(e))]
    if foreign:
        raise UsageError(
            f"{shown}: is not empty and is not an itkit run folder (no {RUN_MARKER}; it holds {sorted(foreign)[0]!r}); "
            "give a new or empty folder"
        )


def _write_marker(path: Path, kind: str, **extra: object) -> None:
    write_file_atomic(path, orjson.dumps({"format": kind, "version": MARKER_FORMAT, **extra}, option=orjson.OPT_APPEND_NEWLINE))


def claim_run_dir(folder: Path, option: str = "--run-dir") -> None:
    """Check the run folder, create it if needed and mark it as itkit's."""
    check_run_dir(folder, option)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{option} {folder}: cannot create it: {exc.strerror or exc}") from None
    if not (folder / RUN_MARKER).is_file():
        _write_marker(folder / RUN_MARKER, "itkit-run")


def claim_step_folder(folder: Path) -> None:
    """Create a fresh step folder, marked as itkit's (the caller removed any earlier one)."""
    folder.mkdir(parents=True)
    _write_marker(folder / STEP_MARKER, "itkit-step", step=folder.name)


def refuse_foreign_step(folder: Path) -> None:
    """Refuse to replace a folder named like a step that itkit did not make."""
    if (folder.exists() or folder.is_symlink()) and not owned_step_folder(folder):
        raise UsageError(
            f"{folder}: is named like a step of this recipe but was not made by itkit (no {STEP_MARKER}); "
            "refusing to replace it: move it out of the run folder or give another --run-dir"
        )


__all__ = [
    "RUN_MARKER",
    "STEP_MARKER",
    "check_run_dir",
    "claim_run_dir",
    "claim_step_folder",
    "owned_step_folder",
    "refuse_foreign_step",
]
