"""Past memory: the near stage's signatures, band keys and shingle sets spilled to disk.

:class:`Spill` owns a temporary folder (removed by :meth:`Spill.close` on every exit: the
dedup runner closes it in a ``finally``, and SIGINT, SIGTERM and SIGHUP arrive as exceptions,
see :mod:`itkit.interrupts`). In it:

- ``signatures.u32``: the signature rows, appended block by block;
- ``sets.u32``: the shingle sets' values (their offsets stay in memory: 8 bytes a row);
- ``shard-N.keys.u64`` / ``shard-N.rows.i64``: every :data:`SHARD_ROWS` rows, their band
  keys, each band sorted (band after band), with the row of each key.

The files are read with ``pread`` (a row, a set, a shard's band at a time), not memory-mapped: the
pages stay in the operating system's file cache, not in itkit's resident memory.

:meth:`SpilledSignatures.columns` merges the shards band by band into what
:func:`itkit.dedup.lsh.sorted_band_columns` gives in memory (every item's key in sorted
order), so :func:`~itkit.dedup.lsh.bucket_members` and :func:`~itkit.dedup.decide.decide_near`
make the same decisions from it (``tests/test_dedup_spill.py``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from array import array
from typing import Iterator

from itkit.lazy import lazy_module

np = lazy_module("numpy")

from itkit.dedup.lsh import block_band_keys
from itkit.dedup.verify import ShingleSets, jaccard_of, sorted_sets
from itkit.errors import OutputError

SPILL_AFTER = 1_000_000
"""Distinct texts past which the near stage spills to disk (128 permutations: 512 MB of signatures)."""
SHARD_ROWS = 500_000
"""Signature rows whose band keys are sorted into one shard."""
_PREFIX = ".itkit-dedup-spill-"


class Spill:
    """The temporary folder of one run's spilled data (see the module docstring)."""

    def __init__(self, directory: str | None):
        where = directory or tempfile.gettempdir()
        try:
            self.path = tempfile.mkdtemp(prefix=_PREFIX, dir=where)
        except OSError as exc:
            raise OutputError(f"{where}: cannot create the dedup spill folder: {exc.strerror or exc}") from None

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)

    def close(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def _write(fh, data: np.ndarray, where: str) -> None:
    try:
        fh.write(memoryview(np.ascontiguousarray(data)).cast("B"))
    except OSError as exc:
        raise OutputError(f"{where}: cannot write the dedup spill file: {exc.strerror or exc}") from None


class SpilledSignatures:
    """Signature rows on disk, with their sorted band-key shards: the interface of a SignatureStore."""

    def __init__(self, spill: Spill, num_perm: int, bands: int, rows: int, shard_rows: int | None = None):
        self.num_perm, self.bands, self.rows = num_perm, bands, rows
        self._spill = spill
        self._shard_rows = shard_rows or SHARD_ROWS
        self._path = spill.file("signatures.u32")
        self._fh = open(self._path, "wb")
        self._count = 0
        self._pending: list[np.ndarray] = []  # band keys of the rows not in a shard yet
        self._pending_start = 0
        self._shards: list[tuple[str, str, int]] = []  # (keys file, rows file, rows in the shard)
        self._fd: int | None = None

    def __len__(self) -> int:
        return self._count

    def append(self, block: np.ndarray) -> None:
        if block.ndim != 2 or block.shape[1] != self.num_perm:
            raise ValueError(f"signature blocks must have {self.num_perm} columns, got shape {block.shape}")
        if not len(block):
            return
        _write(self._fh, block.astype(np.uint32, copy=False), self._spill.path)
        self._pending.append(block_band_keys(block, self.bands, self.rows))
        self._count += len(block)
        if self._count - self._pending_start >= self._shard_rows:
            self._flush_shard()

    def _flush_shard(self) -> None:
        if not self._pending:
            return
        keys = np.concatenate(self._pending).T  # (bands, rows of the shard)
        self._pending = []
        order = np.argsort(keys, axis=1)
        sorted_keys = np.take_along_axis(keys, order, axis=1)
        rows = order + self._pending_start
        self._pending_start = self._count
        n = len(self._shards)
        names = (self._spill.file(f"shard-{n}.keys.u64"), self._spill.file(f"shard-{n}.rows.i64"))
        try:
            np.ascontiguousarray(sorted_keys, dtype=np.uint64).tofile(names[0])
            np.ascontiguousarray(rows, dtype=np.int64).tofile(names[1])
        except OSError as exc:
            raise OutputError(f"{self._spill.path}: cannot write the dedup spill file: {exc.strerror or exc}") from None
        self._shards.append((*names, keys.shape[1]))

    def finish(self) -> None:
        """All rows are in: the last shard is written and the rows are opened for reading."""
        if self._fd is not None:
            return
        self._flush_shard()
        self._fh.close()
        self._fd = os.open(self._path, os.O_RDONLY | getattr(os, "O_BINARY", 0))

    def row(self, i: int) -> np.ndarray:
        assert self._fd is not None, "finish() first"
        size = 4 * self.num_perm
        return np.frombuffer(_pread(self._fd, size, i * size), dtype=np.uint32)

    def take(self, rows) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty((len(rows), self.num_perm), dtype=np.uint32)
        for k, i in enumerate(rows.tolist()):
            out[k] = self.row(i)
        return out

    def columns(self, row_of: np.ndarray | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Per band: every item's key in sorted order and the item of each (the shards merged).

        Items are the rows, or the entries of ``row_of`` (item -> row; a row may have several items or none).
        """
        self.finish()
        one_each = None  # row -> its item, when no row has two (the exact stage ran: the usual case)
        if row_of is not None:
            row_of = np.asarray(row_of, dtype=np.int64)
            per_row = np.bincount(row_of, minlength=self._count)
            if not len(per_row) or int(per_row.max()) <= 1:
                one_each = np.full(self._count, -1, dtype=np.int64)
                one_each[row_of] = np.arange(len(row_of))
                del per_row
            else:
                item_order = np.argsort(row_of, kind="stable")  # items grouped by row
                first_item = np.cumsum(per_row) - per_row
        for band in range(self.bands):
            keys = np.concatenate([_band(k, band, n, np.uint64) for k, _, n in self._shards])
            rows = np.concatenate([_band(r, band, n, np.int64) for _, r, n in self._shards])
            order = np.argsort(keys, kind="stable")  # a merge of the shards' sorted runs
            keys, rows = keys[order], rows[order]
            del order
            if row_of is None:
                yield keys, rows
                continue
            if one_each is not None:
                items = one_each[rows]
                del rows
                has_item = items >= 0
                yield keys[has_item], items[has_item]
                continue
            reps = per_row[rows]
            total = int(reps.sum())
            starts = np.repeat(np.cumsum(reps) - reps, reps)
            positions = np.arange(total, dtype=np.int64) - starts + np.repeat(first_item[rows], reps)
            yield np.repeat(keys, reps), item_order[positions]

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
        if not self._fh.closed:
            self._fh.close()


def _band(path: str, band: int, n: int, dtype) -> np.ndarray:
    """One band (a row of ``n`` values) of a shard file."""
    return np.fromfile(path, dtype=dtype, count=n, offset=band * n * np.dtype(dtype).itemsize)


def _read_at(fd: int, size: int, offset: int) -> bytes:
    if hasattr(os, "pread"):
        return os.pread(fd, size, offset)
    os.lseek(fd, offset, os.SEEK_SET)  # (Windows)
    return os.read(fd, size)


def _pread(fd: int, size: int, offset: int) -> bytes:
    data = _read_at(fd, size, offset)
    while len(data) < size:  # (a regular file gives it all at once; this is for the odd short read)
        more = _read_at(fd, size - len(data), offset + len(data))
        if not more:
            raise OutputError(f"a dedup spill file ended early at byte {offset + len(data)}")
        data += more
    return data


class SpilledSets:
    """Shingle sets on disk (values) with their offsets in memory: the interface of ShingleSets."""

    def __init__(self, spill: Spill):
        self._spill = spill
        self._path = spill.file("sets.u32")
        self._fh = open(self._path, "wb")
        self._offsets = array("q", [0])
        self._fd: int | None = None

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def append(self, shingles: np.ndarray, per_row: np.ndarray) -> None:
        if len(per_row):
            self.append_sorted(*sorted_sets(shingles, per_row))

    def append_sorted(self, values: np.ndarray, offsets: np.ndarray) -> None:
        """Rows already in :func:`~itkit.dedup.verify.sorted_sets` form."""
        _write(self._fh, values, self._spill.path)
        self._offsets.extend((np.asarray(offsets[1:], dtype=np.int64) + self._offsets[-1]).tolist())

    def finish(self) -> None:
        if self._fd is None:
            self._fh.close()
            self._fd = os.open(self._path, os.O_RDONLY | getattr(os, "O_BINARY", 0))

    def row(self, i: int) -> np.ndarray:
        assert self._fd is not None, "finish() first"
        start, stop = self._offsets[i], self._offsets[i + 1]
        return np.frombuffer(_pread(self._fd, 4 * (stop - start), 4 * start), dtype=np.uint32)

    def jaccard(self, i: int, j: int) -> float:
        if i == j:
            return 1.0
        return jaccard_of(self.row(i), self.row(j))

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
        if not self._fh.closed:
            self._fh.close()


def spill_sets(sets: ShingleSets, spill: Spill) -> SpilledSets:
    """The in-memory sets moved to disk (the caller drops ``sets``)."""
    out = SpilledSets(spill)
    for values, offsets in sets.blocks():
        out.append_sorted(values, offsets)
    return out


def release_free_memory() -> None:
    """Give freed heap memory back to the system (glibc keeps what the in-memory signatures used before
    a spill, which would otherwise count in the run's resident memory); a no-op elsewhere."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


__all__ = ["SHARD_ROWS", "SPILL_AFTER", "Spill", "SpilledSets", "SpilledSignatures", "release_free_memory", "spill_sets"]
