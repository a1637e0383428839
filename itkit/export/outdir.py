"""Writing an output folder atomically: build it next to the target, then rename it into place.

The export is built in a hidden temporary folder beside OUTDIR
(``.OUTDIR.<random>.tmp``) and renamed to OUTDIR only when everything is
written, so a failed or interrupted export leaves no partial output. An
existing OUTDIR is refused unless ``overwrite`` is set, and even then only when
it is empty or holds a previous export (a ``manifest.json``): itkit never
replaces a folder it did not write. Replacing renames the old folder aside,
renames the new one into place, then deletes the old one.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from itkit.errors import OutputError

MANIFEST = "manifest.json"


def _folder_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o777 & ~umask


def check_target(target: Path, overwrite: bool) -> None:
    """Raise OutputError when ``target`` may not be (re)placed."""
    if not target.exists():
        return
    if not target.is_dir():
        raise OutputError(f"{target}: exists and is not a folder")
    if not any(target.iterdir()):
        return
    if not overwrite:
        raise OutputError(f"{target}: already exists; pass --overwrite to replace it, or choose another -o")
    if not (target / MANIFEST).is_file():
        raise OutputError(
            f"{target}: is not empty and holds no {MANIFEST}, so it is not an itkit export; "
            "refusing to replace it even with --overwrite"
        )


class StagedDir:
    """A temporary folder that becomes ``target`` on :meth:`commit` (use as a context manager)."""

    def __init__(self, target: str | os.PathLike, overwrite: bool = False):
        self.target = Path(target).resolve()
        self.overwrite = overwrite
        check_target(self.target, overwrite)
        parent = self.target.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
            self.path = Path(tempfile.mkdtemp(dir=parent, prefix=f".{self.target.name}.", suffix=".tmp"))
            os.chmod(self.path, _folder_mode())  # mkdtemp makes it private (0o700)
        except OSError as exc:
            raise OutputError(f"{self.target}: cannot create a folder next to it: {exc.strerror or exc}") from None
        self.committed = False

    def commit(self) -> None:
        check_target(self.target, self.overwrite)
        old: Path | None = None
        try:
            if self.target.exists():
                old = Path(tempfile.mkdtemp(dir=self.target.parent, prefix=f".{self.target.name}.", suffix=".old"))
                os.replace(self.target, old / self.target.name)
            os.replace(self.path, self.target)
        except OSError as exc:
            if old is not None and not self.target.exists() and (old / self.target.name).exists():
                os.replace(old / self.target.name, self.target)
            self.abort()
            raise OutputError(f"{self.target}: cannot move the export into place: {exc.strerror or exc}") from None
        finally:
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        self.committed = True

    def abort(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self) -> "StagedDir":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()
