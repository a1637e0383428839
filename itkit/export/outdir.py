"""Writing an output folder atomically: build it next to the target, then rename it into place.

The export is built in a hidden temporary folder beside OUTDIR
(``.OUTDIR.<random>.tmp``) and renamed to OUTDIR only when everything is
written, so a failed or interrupted export leaves no partial output. An
existing OUTDIR is refused unless ``overwrite`` is set, and even then only when
it is empty or provably holds a previous export: its ``manifest.json`` carries
itkit's format marker (:data:`MANIFEST_FORMAT`) and lists every file in the
folder, each with the size itkit wrote. A folder holding anything else (a note,
code, a file changed since, a symlink) is refused, naming what is in the way:
itkit never replaces a folder, or a file, it did not write. Replacing renames
the old folder aside, renames the new one into place, then deletes the old one
(which, as checked, holds only the files its manifest lists).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path, PurePosixPath

from itkit.errors import OutputError
from itkit.io.sinks import pending, settled, signals_held

MANIFEST = "manifest.json"
MANIFEST_FORMAT = "itkit-export"
"""The marker in every manifest itkit writes: the proof that a folder is an export it may replace."""


def _folder_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o777 & ~umask


def check_target(target: Path, overwrite: bool) -> None:
    """Raise OutputError when ``target`` may not be (re)placed."""
    if not target.exists() and not target.is_symlink():
        return
    if not target.is_dir():
        raise OutputError(f"{target}: exists and is not a folder")
    if not any(target.iterdir()):
        return
    if not overwrite:
        raise OutputError(f"{target}: already exists; pass --overwrite to replace it, or choose another -o")
    problem = _not_ours(target)
    if problem:
        raise OutputError(
            f"{target}: {problem}, so it is not an itkit export that --overwrite may replace; refusing to "
            "replace it: move that out, delete the folder yourself, or choose another -o"
        )


def _not_ours(target: Path) -> str | None:
    """Why ``target`` is not provably a folder itkit exported (None when it is)."""
    try:
        manifest = json.loads((target / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return f"it holds no {MANIFEST}"
    except (OSError, UnicodeDecodeError, ValueError):
        return f"its {MANIFEST} is not readable JSON"
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        return f"its {MANIFEST} has no itkit format marker (\"format\": \"{MANIFEST_FORMAT}\")"
    files = manifest.get("files")
    if not isinstance(files, list) or not all(isinstance(f, dict) and isinstance(f.get("path"), str) for f in files):
        return f"its {MANIFEST} lists no files"
    listed = {f["path"]: f.get("bytes") for f in files}
    folders = {parent.as_posix() for name in listed for parent in PurePosixPath(name).parents} - {"."}
    for root, dirs, names in os.walk(target):  # never follows a symlink
        for name in sorted(dirs + names):
            path = Path(root) / name
            rel = path.relative_to(target).as_posix()
            if rel == MANIFEST:
                continue
            if path.is_symlink():
                return f"{rel} is a symlink, which itkit does not make"
            if path.is_dir():
                if rel not in folders:
                    return f"the folder {rel} is not in its {MANIFEST}"
                continue
            if rel not in listed:
                return f"{rel} is not in its {MANIFEST}"
            size = listed[rel]
            if isinstance(size, int) and path.stat().st_size != size:
                return f"{rel} was changed since itkit wrote it"
    return None


class StagedDir:
    """A temporary folder that becomes ``target`` on :meth:`commit` (use as a context manager)."""

    def __init__(self, target: str | os.PathLike, overwrite: bool = False):
        self.target = Path(target).resolve()
        self.overwrite = overwrite
        check_target(self.target, overwrite)
        parent = self.target.parent
        self.committed = False
        try:
            parent.mkdir(parents=True, exist_ok=True)
            with signals_held():  # the temporary folder exists only once it is registered for clean-up
                self.path = Path(tempfile.mkdtemp(dir=parent, prefix=f".{self.target.name}.", suffix=".tmp"))
                pending(self)
            os.chmod(self.path, _folder_mode())  # mkdtemp makes it private (0o700)
        except OSError as exc:
            raise OutputError(f"{self.target}: cannot create a folder next to it: {exc.strerror or exc}") from None

    def commit(self) -> None:
        check_target(self.target, self.overwrite)
        with signals_held():  # a signal between the two renames must not leave OUTDIR missing
            self._swap()
        self.committed = True
        settled(self)

    def _swap(self) -> None:
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

    def abort(self) -> None:
        settled(self)
        shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self) -> "StagedDir":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
            return
        self.abort()
        if isinstance(exc, OutputError) and str(self.path) in str(exc):
            # name the file the user asked for (OUTDIR/...), not its place in the removed temporary folder
            raise OutputError(str(exc).replace(str(self.path), str(self.target))) from None
