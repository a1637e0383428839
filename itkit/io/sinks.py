"""Writing rows atomically: JSONL, JSON array, Parquet, CSV, gzip, stdout.

A file is written to a temporary sibling and renamed over the target only when
the writer is closed without error, so a failed or interrupted run leaves no
partial output. Stdout (``-``) and character devices (``/dev/null``) are
written in place, as JSONL unless another container is asked for: any exception while writing or closing (a full disk, rows
Parquet cannot hold, Ctrl-C, SIGTERM) removes the temporary file, and an
``OSError`` becomes ``FILE: cannot write: <reason>`` (:class:`OutputError`).
A symlink as the target is written through: the temporary file goes beside the
file the link points to, which is replaced; the link stays. JSON is UTF-8 without escaping non-ASCII or "/". JSONL and JSON
arrays stream; Parquet and CSV collect their rows first (their schema or
header must be known up front).
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import os
import signal
import stat
import sys
import tempfile
from pathlib import Path
from typing import IO, Any

import orjson

from itkit.errors import ConversionError, Location, OutputError, UsageError
from itkit.io.rows import NESTED_CSV_COLUMNS, container_of, display_name, is_hub

_DUMPS_OPTS = orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS


def is_device(target: str) -> bool:
    """Whether ``target`` names an existing character device (``/dev/null``, a terminal): written in place."""
    if target == "-" or is_hub(target):
        return False
    try:
        return stat.S_ISCHR(os.stat(target).st_mode)
    except (OSError, ValueError):
        return False


def is_stream(target: str) -> bool:
    """Whether ``target`` is stdout or a character device: no sibling files can be put beside it."""
    return target == "-" or is_device(target)


def dumps_line(row: Any) -> bytes:
    """One JSONL line (UTF-8, non-ASCII kept, newline appended)."""
    return orjson.dumps(row, option=_DUMPS_OPTS)


_PENDING: set[Any] = set()
"""Temporary files and folders not yet moved into place or removed (see :func:`abort_pending`)."""
_HELD = {getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n)}


@contextlib.contextmanager
def signals_held():
    """Delay Ctrl-C, SIGTERM and SIGHUP for the block (a temporary file is created and registered at once)."""
    try:
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, _HELD)
    except (AttributeError, OSError, ValueError):  # pragma: no cover - no sigmask on this platform
        yield
        return
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def pending(obj: Any) -> None:
    """Note a temporary file or folder that must go if the command ends before it is in place."""
    _PENDING.add(obj)


def settled(obj: Any) -> None:
    _PENDING.discard(obj)


def abort_pending() -> None:
    """Remove every temporary file and folder still pending: the CLI's last line of defence when a command
    ends with an exception (a signal at the moment a writer was being created, before anyone held it)."""
    for obj in list(_PENDING):
        obj.abort()


def cannot_write(name: str, exc: OSError) -> OutputError:
    """The one message for a failed write: ``FILE: cannot write: No space left on device``."""
    return OutputError(f"{name}: cannot write: {exc.strerror or exc}")


def _target_mode(path: Path) -> int:
    """The permission bits the output should get: those of the file it replaces, else 0o666 minus the umask.

    (mkstemp creates its temporary file 0o600, which would make every output private.)
    """
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


class AtomicFile:
    """A binary file that appears at ``path`` only on :meth:`commit`."""

    def __init__(self, path: str | os.PathLike, gz: bool = False):
        self.shown = str(path)
        # write through a symlink (also a dangling one) to the file it names, beside that file
        self.path = Path(os.path.realpath(path)) if os.path.islink(path) else Path(path)
        parent = self.path.parent
        # folders made for this file, outermost first, removed again on abort (a failed run leaves nothing)
        self._made_dirs = [d for d in (*reversed(parent.parents), parent) if not d.exists()]
        if self._made_dirs:
            try:
                parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise OutputError(f"{path}: cannot create its folder: {exc.strerror or exc}") from None
        self.closed = False
        with signals_held():  # the temporary file exists only once it is registered for clean-up
            try:
                fd, tmp = tempfile.mkstemp(dir=parent, prefix=f".{self.path.name}.", suffix=".tmp")
            except OSError as exc:
                self._remove_made_dirs()
                raise OutputError(f"{path}: cannot write here: {exc.strerror or exc}") from None
            self.tmp = Path(tmp)
            try:
                self._raw = os.fdopen(fd, "wb", buffering=1 << 20)
                self.fh: IO[bytes] = gzip.GzipFile(fileobj=self._raw, mode="wb", mtime=0) if gz else self._raw
            except BaseException:
                self.tmp.unlink()
                self._remove_made_dirs()
                raise
            pending(self)
        self.finished = False

    def write(self, data: bytes) -> None:
        try:
            self.fh.write(data)
        except OSError as exc:
            self.abort()
            raise cannot_write(self.shown, exc) from None

    def commit(self) -> None:
        self.finish()
        self.publish()

    def finish(self) -> None:
        """Write out and sync the temporary file (the first half of :meth:`commit`); nothing is in place yet."""
        if self.closed or self.finished:
            return
        try:
            if self.fh is not self._raw:
                self.fh.close()
            self._raw.flush()
            os.fsync(self._raw.fileno())
            os.chmod(self.tmp, _target_mode(self.path))
            self._raw.close()
        except BaseException as exc:
            self.abort()
            if isinstance(exc, OSError):
                raise cannot_write(self.shown, exc) from None
            raise
        self.finished = True

    def publish(self) -> None:
        """Move the finished temporary file into place (the second half of :meth:`commit`)."""
        if self.closed:
            return
        self.finish()
        self.closed = True
        try:
            os.replace(self.tmp, self.path)
        except BaseException as exc:
            self.abort()
            if isinstance(exc, OSError):
                raise cannot_write(self.shown, exc) from None
            raise
        settled(self)

    def abort(self) -> None:
        self.closed = True
        settled(self)
        for fh in (self.fh, self._raw):
            try:
                fh.close()
            except (OSError, ValueError, EOFError):  # a full disk again, or already closed
                pass
        try:
            self.tmp.unlink()
        except FileNotFoundError:
            pass
        self._remove_made_dirs()

    def _remove_made_dirs(self) -> None:
        for folder in reversed(self._made_dirs):
            try:
                folder.rmdir()
            except OSError:  # not empty any more (another file was written there), or already gone
                break


def write_file_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (nothing appears unless all of it was written)."""
    target = AtomicFile(path)
    try:
        target.write(data)
    except BaseException:
        target.abort()
        raise
    target.commit()


def commit_together(*writers: Any) -> None:
    """Commit several outputs of one command all or nothing (None entries are skipped).

    Every writer is first finished (its content written and synced to its
    temporary file); only when all of them succeeded are they moved into
    place. A failure while finishing any of them (a full disk, rows Parquet
    cannot hold, a signal) aborts all of them: the output never appears
    without its errors file or report.
    """
    live = [w for w in writers if w is not None]
    try:
        for writer in live:
            writer.finish()
    except BaseException:
        for writer in live:
            writer.abort()
        raise
    for writer in live:
        writer.publish()


class RowWriter:
    """Writes dict rows to a path (or ``-`` for stdout) in the container its name implies.

    Use as a context manager: the file is committed when the block ends without
    an exception and discarded otherwise.
    """

    def __init__(self, target: str, container: str | None = None):
        if is_hub(target):
            raise UsageError(f"cannot write to the Hub ({target}); write a file, then upload it")
        self.target = target
        self.count = 0
        self._device: IO[bytes] | None = None
        if target == "-" or is_device(target):
            self.container = container or "jsonl"
            if self.container in ("parquet",):
                where = "stdout" if target == "-" else f"a device ({target})"
                raise UsageError(f"cannot write Parquet to {where}; give an output file")
            self._file = None
            if target == "-":
                self.fh: IO[bytes] = sys.stdout.buffer
            else:  # a device cannot be written atomically: write it in place
                try:
                    self._device = open(target, "wb")
                except OSError as exc:
                    raise OutputError(f"{target}: cannot write: {exc.strerror or exc}") from None
                self.fh = self._device
        else:
            found, gz = container_of(target, container)
            if found is None:
                raise UsageError(
                    f"{target}: cannot tell the output container from its extension; "
                    "use .jsonl, .json, .parquet or .csv (optionally .gz)"
                )
            if found == "parquet" and gz:
                raise UsageError(f"{target}: gzip-compressed Parquet is not supported; Parquet compresses itself (use .parquet)")
            self.container = found
            self._file = AtomicFile(target, gz=gz)
            self.fh = self._file.fh
        self._finished = False
        self._buffer: list[dict] | None = [] if self.container in ("parquet", "csv") else None
        if self.container == "json":
            self.fh.write(b"[")

    # -- writing
    def write(self, row: dict) -> None:
        try:
            self._write(row)
        except orjson.JSONEncodeError as exc:  # nested deeper than orjson writes (255 levels), a non-JSON value
            # nothing of this row was written: the record is rejected (--on-error skip goes on), the file is intact
            where = Location(f"{display_name(self.target)}, record {self.count + 1}")
            raise ConversionError(f"cannot be written as JSON ({exc})", where) from None
        except BaseException as exc:
            self.abort()
            if isinstance(exc, OSError) and not isinstance(exc, BrokenPipeError):
                raise cannot_write(self.shown, exc) from None
            raise
        self.count += 1

    def write_line(self, line: bytes) -> None:
        """A row already dumped by :func:`dumps_line` (a JSONL container only: see :attr:`takes_lines`)."""
        if not self.takes_lines:
            raise ValueError(f"write_line needs a JSONL container, not {self.container}")
        try:
            self.fh.write(line)
        except BaseException as exc:
            self.abort()
            if isinstance(exc, OSError) and not isinstance(exc, BrokenPipeError):
                raise cannot_write(self.shown, exc) from None
            raise
        self.count += 1

    @property
    def takes_lines(self) -> bool:
        return self.container == "jsonl"

    def _write(self, row: dict) -> None:
        if self._buffer is not None:
            self._buffer.append(row)
        elif self.container == "json":
            blob = orjson.dumps(row)
            self.fh.write(b"\n" if self.count == 0 else b",\n")
            self.fh.write(blob)
        else:
            self.fh.write(dumps_line(row))

    def close(self) -> None:
        """Finish the file and move it into place; on any exception the temporary file is removed."""
        self.finish()
        self.publish()

    def finish(self) -> None:
        """Write everything to the temporary file (or stdout); nothing is in place before :meth:`publish`."""
        if self._finished:
            return
        try:
            if self.container == "json":
                self.fh.write(b"\n]\n" if self.count else b"]\n")
            elif self.container == "csv":
                self._write_csv()
            elif self.container == "parquet":
                self._write_parquet()
            if self._file is not None:
                self._file.finish()
            elif self._device is not None:
                self._close_device()
            else:
                self.fh.flush()
        except BaseException as exc:
            self.abort()
            if isinstance(exc, OSError) and not isinstance(exc, BrokenPipeError):
                raise cannot_write(self.shown, exc) from None
            raise
        self._finished = True

    def publish(self) -> None:
        self.finish()
        if self._file is not None:
            self._file.publish()

    @property
    def shown(self) -> str:
        return "stdout" if self.target == "-" else self.target

    def abort(self) -> None:
        if self._file is not None:
            self._file.abort()
        elif self._device is not None:
            self._close_device()

    def _close_device(self) -> None:
        device, self._device = self._device, None
        if device is None:
            return
        try:
            device.close()
        except OSError as exc:
            raise OutputError(f"{self.target}: cannot write: {exc.strerror or exc}") from None

    def __enter__(self) -> "RowWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    # -- buffered containers
    def _columns(self) -> list[str]:
        columns: dict[str, None] = {}
        for row in self._buffer or ():
            for key in row:
                columns.setdefault(key, None)
        return list(columns)

    def _write_csv(self) -> None:
        text = io.TextIOWrapper(self.fh, encoding="utf-8", newline="", write_through=True)
        writer = csv.DictWriter(text, fieldnames=self._columns(), extrasaction="raise")
        writer.writeheader()
        for row in self._buffer or ():
            writer.writerow(
                {
                    k: (orjson.dumps(v).decode() if (k in NESTED_CSV_COLUMNS or isinstance(v, (list, dict))) else v)
                    for k, v in row.items()
                }
            )
        text.flush()
        text.detach()

    def _write_parquet(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            rows = self._buffer or []
            table = pa.Table.from_pydict({col: [row.get(col) for row in rows] for col in self._columns()})
        except pa.ArrowException as exc:
            if isinstance(exc, OSError):
                raise
            raise OutputError(f"{display_name(self.target)}: rows do not share one Parquet schema ({exc})") from None
        try:
            pq.write_table(table, self.fh)
        except pa.ArrowException as exc:
            if isinstance(exc, OSError):
                raise
            raise OutputError(f"{display_name(self.target)}: cannot write these rows as Parquet ({exc})") from None
