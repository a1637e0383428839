"""Reading what a run left behind, defensively: a missing or unreadable file is "not there", never a crash.

The report reads summaries (JSON), side files (JSON lines: removed records,
dedup pairs, tasks, eliminated evolutions, failures, lineage) and datasets
(any format itkit reads). Paths recorded inside summaries are absolute paths
of the machine that ran; when a run folder was moved, the file is looked for
under the same name beside the summary (or in the step folder named in the
path) instead.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Iterable, Iterator

import orjson

from itkit.errors import ItkitError, Location
from itkit.formats import candidates, get_format
from itkit.formats.base import LoadContext

MAX_TEXT = 2000
"""Characters of a text shown in the report; longer texts are cut (the report says so)."""


def read_json(path: Path | None) -> dict[str, Any] | None:
    """A JSON object from a file, or None when the file is missing, unreadable or not an object."""
    if path is None:
        return None
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def iter_jsonl(path: Path | None) -> Iterator[dict[str, Any]]:
    """The JSON objects of a JSON-lines file (bad lines are skipped; a missing file yields nothing)."""
    if path is None:
        return
    try:
        fh = path.open("rb")
    except OSError:
        return
    with fh:
        for line in fh:
            if not line.strip():
                continue
            try:
                row = orjson.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict):
                yield row


def locate(recorded: Any, *near: Path) -> Path | None:
    """The file a summary names: as recorded when it exists, else the same name in one of ``near``."""
    if not isinstance(recorded, str) or not recorded or recorded == "-":
        return None
    path = Path(recorded)
    if path.is_file():
        return path
    for folder in near:
        for candidate in (folder / path.name, folder / path.parent.name / path.name):
            if candidate.is_file():
                return candidate
    return None


def get(data: Any, *keys: str | int, default: Any = None) -> Any:
    """``data[k1][k2]...`` or ``default`` when any level is missing or of another type."""
    for key in keys:
        if isinstance(data, dict) and isinstance(key, str) and key in data:
            data = data[key]
        elif isinstance(data, list) and isinstance(key, int) and -len(data) <= key < len(data):
            data = data[key]
        else:
            return default
    return data


def counts_of(value: Any) -> dict[str, int]:
    """A ``{name: count}`` mapping with only its integer values (other values dropped)."""
    if not isinstance(value, dict):
        return {}
    return {str(k): int(v) for k, v in value.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def clip(text: Any, limit: int = MAX_TEXT) -> str:
    """A text for the page, cut at ``limit`` characters with a marker saying how much was left out."""
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    if len(text) <= limit:
        return text
    return f"{text[:limit]} [... {len(text) - limit:,} more characters]"


class Reservoir:
    """A uniform sample of ``size`` items from a stream of unknown length, the same for the same seed."""

    def __init__(self, size: int, seed: int = 0):
        self.size = size
        self.seen = 0
        self.items: list[Any] = []
        self._rng = random.Random(seed)

    def add(self, item: Any) -> None:
        self.seen += 1
        if len(self.items) < self.size:
            self.items.append(item)
            return
        j = self._rng.randrange(self.seen)
        if j < self.size:
            self.items[j] = item


def iter_records(path: Path | None, fmt: str = "auto") -> Iterator[tuple[int, Any]]:
    """``(row index, Record)`` of a dataset; unreadable rows are skipped, an unreadable file yields nothing."""
    if path is None or not path.is_file():
        return
    from itkit.dataset import RecordReader

    try:
        reader = RecordReader(str(path), fmt, on_error="skip")
        for record in reader:
            yield reader.counts.rows - 1, record
    except (ItkitError, OSError, ValueError):
        return


def records_by(path: Path | None, *, ids: Iterable[str] = (), indices: Iterable[int] = ()) -> tuple[dict[str, Any], dict[int, Any]]:
    """The records of a dataset with these ids and these row indices, read in one pass."""
    want_ids, want_idx = set(ids), set(indices)
    by_id: dict[str, Any] = {}
    by_index: dict[int, Any] = {}
    if not want_ids and not want_idx:
        return by_id, by_index
    if not want_ids:
        return by_id, _rows_at(path, want_idx)
    for index, record in iter_records(path):
        if index in want_idx:
            by_index[index] = record
        if record.id in want_ids and record.id not in by_id:
            by_id[record.id] = record
        if len(by_index) == len(want_idx) and len(by_id) == len(want_ids):
            break
    return by_id, by_index


def _rows_at(path: Path | None, wanted: set[int]) -> dict[int, Any]:
    """The records at these row indices, loading only those rows (the others are not parsed into records)."""
    from itkit.dataset import RecordReader, source_stem
    from itkit.io.rows import iter_rows

    out: dict[int, Any] = {}
    if path is None or not path.is_file():
        return out
    try:
        fmt = RecordReader(str(path), on_error="skip").format
        stem = source_stem(str(path))
        for ordinal, raw in enumerate(iter_rows(str(path))):
            if ordinal in wanted and raw.error is None and isinstance(raw.data, dict):
                try:
                    out[ordinal] = fmt.load(raw.data, LoadContext(raw.location, f"{stem}-{ordinal}"))
                except (ItkitError, ValueError, TypeError, KeyError):
                    pass
                if len(out) == len(wanted):
                    break
    except (ItkitError, OSError, ValueError):
        return out
    return out


def record_view(record: Any) -> dict[str, Any]:
    """What the report shows of a record: id, system, the exchanges, category and source (texts clipped)."""
    if record is None:
        return {}
    turns = [{"role": t.role, "content": clip(t.content)} for t in record.turns]
    if record.input and turns:
        last_user = record.last_user_index
        if last_user is not None:
            turns[last_user] = {**turns[last_user], "input": clip(record.input)}
    return {
        "id": record.id,
        "system": clip(record.system) if record.system else "",
        "turns": turns,
        "category": record.category or "",
        "source": str(record.metadata.get("source") or ""),
    }


def raw_view(row: Any) -> dict[str, Any]:
    """A record as a side file stored it (a dict in any format), for the report: loaded when itkit can read it."""
    if not isinstance(row, dict):
        return {}
    for name in candidates(row):
        try:
            record = get_format(name).load(row, LoadContext(Location("report"), str(row.get("id") or "record")))
            return record_view(record)
        except (ItkitError, ValueError, TypeError, KeyError):
            continue
    return {"id": str(row.get("id") or ""), "system": "", "turns": [], "raw": clip(orjson.dumps(row).decode()), "category": "", "source": ""}
