"""The one rule about the paths a command touches: nothing it writes may be something else it writes or reads.

Every command lists, before it reads anything, the paths it will read and the
paths it will write (each with the option that names it, for the message), and
calls :func:`check_paths`. It raises :class:`~itkit.errors.UsageError` (exit 2)
when

- two written paths are the same file (``-o out.jsonl --errors out.jsonl``), or
  both stdout (``-o - --report -``);
- a written path is an input (``--report data.jsonl`` when reading
  ``data.jsonl``), except ``-o`` itself, which may replace its input (it is
  written atomically, after everything was read);
- a written file lies inside a written folder, or an input lies inside a
  written folder (``export data/x.jsonl -o data --overwrite``).

Paths are compared after resolving them (``..``, symlinks followed), and two
existing files that are one file under two names (hard links) count as the same.
``-`` is stdin among the inputs and stdout among the outputs; a Hub dataset
(``hf://...``) is never a local file.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional

from itkit.errors import UsageError

STDIO = "-"
OUTPUT_OPTION = "-o"
"""The option (label) whose path may equal an input: the main output is written atomically after reading."""


@dataclass(frozen=True)
class Written:
    """A path a command writes, named by the option (or the description) the user knows it by."""

    label: str
    path: str
    folder: bool = False


def _local(path: str) -> bool:
    return path != STDIO and not path.startswith("hf://")


def resolved(path: str) -> Path:
    """The absolute path with every symlink (also a dangling one's target) followed."""
    return Path(os.path.realpath(os.path.expanduser(path)))


def _same_file(a: Path, b: Path) -> bool:
    if a == b:
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist yet
        return False


def _inside(child: Path, folder: Path) -> bool:
    return child != folder and folder in child.parents


def check_paths(
    reads: Mapping[str, Optional[str]],
    writes: Mapping[str, Optional[str]] | list[Written],
    folders: Mapping[str, Optional[str]] | None = None,
) -> None:
    """Refuse (exit 2) any written path that collides with another written path or with an input.

    ``reads`` and ``writes`` map a label (the option: ``"SRC"``, ``"-o"``,
    ``"--errors"``, ``"the summary file"``) to a path; None entries are
    ignored. ``folders`` are written folders (an export's OUTDIR, a run folder):
    nothing written or read may lie inside them.
    """
    outs: list[Written] = list(writes) if isinstance(writes, list) else [
        Written(label, path) for label, path in writes.items() if path is not None
    ]
    outs += [Written(label, path, folder=True) for label, path in (folders or {}).items() if path is not None]
    ins = [(label, path) for label, path in reads.items() if path is not None]

    seen: list[tuple[Written, Path | None]] = []
    for out in outs:
        here = resolved(out.path) if _local(out.path) else None
        for other, there in seen:
            if here is None and there is None:
                if out.path == STDIO and other.path == STDIO:
                    raise UsageError(f"{other.label} and {out.label} both write to stdout; give one of them a file")
                continue
            if here is None or there is None:
                continue
            if _same_file(here, there):
                raise UsageError(
                    f"{other.label} and {out.label} name the same file ({out.path}); "
                    "each output needs its own path"
                )
            for inner, inner_path, outer, outer_path in ((out, here, other, there), (other, there, out, here)):
                if outer.folder and _inside(inner_path, outer_path):
                    raise UsageError(
                        f"{inner.label} ({inner.path}) lies inside {outer.path}, the folder {outer.label} writes; "
                        "give it a path outside"
                    )
        seen.append((out, here))

    for label, path in ins:
        if path == STDIO:
            _check_stdin(label, seen)
        if not _local(path):
            continue
        source = resolved(path)
        for out, here in seen:
            if here is None:
                continue
            if out.folder and _same_file(source, here):
                raise UsageError(f"{out.label} names the input {label} ({path}); give the output folder its own path")
            if out.folder and _inside(source, here):
                raise UsageError(
                    f"{label} ({path}) lies inside {out.path}, the folder {out.label} writes; "
                    "move the input out of it or choose another output folder"
                )
            if out.label != OUTPUT_OPTION and _same_file(source, here):
                raise UsageError(
                    f"{out.label} names the input {label} ({path}): it would be overwritten; give it its own path"
                )


def _check_stdin(label: str, seen: list[tuple[Written, Path | None]]) -> None:
    """``itkit convert - --errors data.jsonl < data.jsonl``: the file behind stdin is an input too."""
    try:
        stdin = os.fstat(0)
    except OSError:
        return
    if not stat.S_ISREG(stdin.st_mode):
        return
    for out, here in seen:
        if here is None or out.label == OUTPUT_OPTION:
            continue
        try:
            if os.path.samestat(stdin, os.stat(here)):
                raise UsageError(f"{out.label} names the file read on stdin ({out.path}): it would be overwritten; give it its own path")
        except FileNotFoundError:
            continue


__all__ = ["OUTPUT_OPTION", "Written", "check_paths", "resolved"]
