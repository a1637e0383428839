"""Past memory: the near stage's signatures, band keys and shingle sets spilled to disk.

:class:`Spill` owns a temporary folder (removed by :meth:`Spill.close` on every exit: the
dedup runner closes it in a ``finally``, and SIGINT, SIGTERM and SIGHUP arrive as exceptions,
see :mod:`itkit.interrupts`). In it:

- ``signatures.u32``: the signature rows, appended block by block (read back memory-mapped);
- ``sets.u32``: the shingle sets' values (their offsets stay in memory: 8 bytes a row);
- ``shard-N.keys.npy`` / ``shard-N.rows.npy``: every :data:`SHARD_ROWS` rows, their band
  keys, each band sorted, with the row of each key.

:meth:`SpilledSignatures.columns` merges the shards band by band into what
:func:`itkit.dedup.lsh.sorted_band_columns` gives in memory (every item's key in sorted
order), so :func:`~itkit.dedup.lsh.bucket_members` and :func:`~itkit.dedup.lsh.decide_near`
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
        self._shards: list[tuple[str, str]] = []
        self._map: np.ndarray | None = None

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
        names = (self._spill.file(f"shard-{n}.keys.npy"), self._spill.file(f"shard-{n}.rows.npy"))
        try:
            np.save(names[0], sorted_keys)
            np.save(names[1], rows)
        except OSError as exc:
            raise OutputError(f"{self._spill.path}: cannot write the dedup spill file: {exc.strerror or exc}") from None
        self._shards.append(names)

    def finish(self) -> None:
        """All rows are in: the last shard is written and the rows are mapped for reading."""
        if self._map is not None:
            return
        self._flush_shard()
        self._fh.close()
        self._map = np.memmap(self._path, dtype=np.uint32, mode="r", shape=(self._count, self.num_perm)) if self._count else np.zeros((0, self.num_perm), dtype=np.uint32)

    def row(self, i: int) -> np.ndarray:
        assert self._map is not None, "finish() first"
        return self._map[i]

    def take(self, rows) -> np.ndarray:
        assert self._map is not None, "finish() first"
        return self._map[np.asarray(rows, dtype=np.int64)]

    def columns(self, row_of: np.ndarray | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Per band: every item's key in sorted order and the item of each (the shards merged).

        Items are the rows, or the entries of ``row_of`` (item -> row; a row may have several items or none).
        """
        self.finish()
        shards = [(np.load(k, mmap_mode="r"), np.load(r, mmap_mode="r")) for k, r in self._shards]
        if row_of is not None:
            row_of = np.asarray(row_of, dtype=np.int64)
            item_order = np.argsort(row_of, kind="stable")  # items grouped by row
            per_row = np.bincount(row_of, minlength=self._count)
            first_item = np.cumsum(per_row) - per_row
        for band in range(self.bands):
            keys = np.concatenate([k[band] for k, _ in shards])
            rows = np.concatenate([r[band] for _, r in shards])
            order = np.argsort(keys, kind="stable")  # a merge of the shards' sorted runs
            keys, rows = keys[order], rows[order]
            del order
            if row_of is None:
                yield keys, rows
                continue
            reps = per_row[rows]
            total = int(reps.sum())
            starts = np.repeat(np.cumsum(reps) - reps, reps)
            positions = np.arange(total, dtype=np.int64) - starts + np.repeat(first_item[rows], reps)
            yield np.repeat(keys, reps), item_order[positions]

    def close(self) -> None:
        self._map = None
        if not self._fh.closed:
            self._fh.close()


class SpilledSets:
    """Shingle sets on disk (values) with their offsets in memory: the interface of ShingleSets."""

    def __init__(self, spill: Spill):
        self._spill = spill
        self._path = spill.file("sets.u32")
        self._fh = open(self._path, "wb")
        self._offsets = array("q", [0])
        self._map: np.ndarray | None = None

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
        if self._map is None:
            self._fh.close()
            total = self._offsets[-1]
            self._map = np.memmap(self._path, dtype=np.uint32, mode="r", shape=(total,)) if total else np.zeros(0, dtype=np.uint32)

    def row(self, i: int) -> np.ndarray:
        assert self._map is not None, "finish() first"
        return self._map[self._offsets[i] : self._offsets[i + 1]]

    def jaccard(self, i: int, j: int) -> float:
        if i == j:
            return 1.0
        return jaccard_of(self.row(i), self.row(j))

    def close(self) -> None:
        self._map = None
        if not self._fh.closed:
            self._fh.close()


def spill_sets(sets: ShingleSets, spill: Spill) -> SpilledSets:
    """The in-memory sets moved to disk (the caller drops ``sets``)."""
    out = SpilledSets(spill)
    for values, offsets in sets.blocks():
        out.append_sorted(values, offsets)
    return out


__all__ = ["SHARD_ROWS", "SPILL_AFTER", "Spill", "SpilledSets", "SpilledSignatures", "spill_sets"]
