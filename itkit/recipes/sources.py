"""The first stage of a run: every source read and merged, in order, into one file.

Each record keeps where it came from in ``metadata["source"]`` (the path as
the recipe writes it, or the hf:// URI) and its id, written out so that ids
stay the same through every step (ids itkit made up at load time, such as
``dolly-12``, included). When two sources use the same id, the later record
gets ``<source name>-<id>`` (counted as renamed) so ids stay unique.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from itkit.dataset import RecordReader, RecordWriter, RejectLog, source_stem
from itkit.formats.base import META_ID_GENERATED
from itkit.recipes.schema import SourceSpec
from itkit.records import META_SOURCE, Record

MERGED_FILE = "merged.jsonl"
REJECTED_FILE = "rejected.jsonl"
PROGRESS_EVERY = 10_000


@dataclass
class SourceCount:
    path: str
    format: str
    rows: int = 0
    loaded: int = 0
    rejected: int = 0
    renamed_ids: int = 0
    rejected_reasons: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "format": self.format,
            "rows": self.rows,
            "loaded": self.loaded,
            "rejected": self.rejected,
            "rejected_reasons": dict(self.rejected_reasons),
            "renamed_ids": self.renamed_ids,
        }


@dataclass
class MergeResult:
    sources: list[SourceCount]
    written: int
    rejected_path: str | None

    @property
    def rows(self) -> int:
        return sum(s.rows for s in self.sources)

    @property
    def rejected(self) -> int:
        return sum(s.rejected for s in self.sources)

    def as_dict(self) -> dict[str, Any]:
        return {
            "sources": [s.as_dict() for s in self.sources],
            "rows": self.rows,
            "rejected": self.rejected,
            "written": self.written,
            "rejected_file": self.rejected_path,
        }


def unique_id(record: Record, stem: str, seen: set[str]) -> Record:
    """The record under an id no earlier record has (``<stem>-<id>``, then ``-2``, ``-3``... if needed)."""
    if record.id not in seen:
        return record
    base = f"{stem}-{record.id}"
    candidate, n = base, 2
    while candidate in seen:
        candidate = f"{base}-{n}"
        n += 1
    return record.model_copy(update={"id": candidate})


def merge_sources(
    sources: Sequence[SourceSpec],
    target: Path,
    fmt: str,
    rejected_path: Path,
    progress: Callable[[str], None] | None = None,
) -> MergeResult:
    """Read every source in order and write its records to ``target`` in ``fmt`` (atomically)."""
    rejects = RejectLog(str(rejected_path)) if any(s.on_error == "skip" for s in sources) else RejectLog(None)
    counts: list[SourceCount] = []
    seen: set[str] = set()
    written = 0
    try:
        with RecordWriter(str(target), fmt) as writer:
            for spec in sources:
                reader = RecordReader(spec.location, spec.format, on_error=spec.on_error, rejects=rejects, keep_source=True)  # type: ignore[arg-type]
                count = SourceCount(spec.path, reader.format.name)
                stem = source_stem(spec.location)
                for record in reader:
                    record.metadata[META_SOURCE] = spec.path  # as the recipe names it, not this machine's absolute path
                    record.metadata.pop(META_ID_GENERATED, None)  # write the id: it must not change between steps
                    renamed = unique_id(record, stem, seen)
                    count.renamed_ids += renamed is not record
                    seen.add(renamed.id)
                    writer.write(renamed)
                    written += 1
                    if progress is not None and written % PROGRESS_EVERY == 0:
                        progress(f"merging sources: {written:,} records")
                count.rows = reader.counts.rows
                count.loaded = reader.counts.loaded
                count.rejected = reader.counts.rejected
                count.rejected_reasons = dict(reader.counts.reasons)
                counts.append(count)
    except BaseException:
        rejects.abort()
        raise
    rejects.close()
    return MergeResult(counts, written, str(rejected_path) if rejects.count else None)


__all__ = ["MERGED_FILE", "REJECTED_FILE", "MergeResult", "SourceCount", "merge_sources", "unique_id"]
