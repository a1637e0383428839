"""What a file run tells its user besides the output: the compared texts on disk, and stage warnings.

:class:`TextSpool` parks the compared text of every record in a temporary file (offsets in
memory: 8 bytes a record), so a removal can be shown with its text and the text it
duplicates without holding the texts in memory. :func:`dominance_warnings` flags a stage
that removed more than ``warn_share`` of the records it saw, naming the survivor most of
those removals point at (a template or boilerplate the comparison did not see through).
"""

from __future__ import annotations

import os
import tempfile
from array import array
from collections import Counter
from typing import Sequence

DEFAULT_WARN_SHARE = 0.3
"""A stage removing more than this share of the records it compared is warned about."""
DOMINANT_SHARE = 0.05
"""A kept record matched by at least this share of a warned stage's removals (and by two) is named as the
text behind them; below it the warning says no record dominates."""
SNIPPET_CHARS = 80
"""Characters of a text shown in a warning."""
REPORT_CHARS = 200
"""Characters of the removed text and of the text it duplicates in a ``--report`` line."""


_pread = getattr(os, "pread", None)


class Strings(Sequence[str]):
    """Short strings (record ids) in one growing buffer: ~their UTF-8 size plus 8 bytes each, not a
    Python object each (10 million ids: ~0.2 GB instead of ~0.7 GB)."""

    def __init__(self) -> None:
        self._data = bytearray()
        self._ends = array("q")

    def append(self, text: str) -> None:
        self._data += text.encode("utf-8", "surrogatepass")
        self._ends.append(len(self._data))

    def __len__(self) -> int:
        return len(self._ends)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        start = self._ends[i - 1] if i else 0
        return self._data[start : self._ends[i]].decode("utf-8", "surrogatepass")


class TextSpool:
    """Texts by index in an anonymous temporary file."""

    def __init__(self, directory: str | None):
        self._fh = tempfile.TemporaryFile(dir=directory, prefix=".itkit-dedup-texts-", buffering=1 << 20)
        self._ends = array("q")
        self._end = 0
        self._flushed = 0

    def add(self, text: str) -> None:
        data = text.encode("utf-8", "surrogatepass")
        self._fh.write(data)
        self._end += len(data)
        self._ends.append(self._end)

    def get(self, i: int) -> str:
        start, end = self._ends[i - 1] if i else 0, self._ends[i]
        if end > self._flushed:
            self._fh.flush()
            self._flushed = self._end
        if _pread is not None:
            data = _pread(self._fh.fileno(), end - start, start)
        else:  # (Windows)
            self._fh.seek(start)
            data = self._fh.read(end - start)
            self._fh.seek(0, 2)
        return data.decode("utf-8", "surrogatepass")

    def close(self) -> None:
        self._fh.close()


def cut(text: str, limit: int) -> str:
    """``text`` on one line, at most ``limit`` characters (an ellipsis marks the cut)."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: max(0, limit - 1)].rstrip() + "\u2026"


def dominance_warnings(
    entered: dict[str, int],
    removals: Sequence,  # Removal
    texts: TextSpool,
    row_of: Sequence[int],
    ids: Sequence[str] | None,
    warn_share: float = DEFAULT_WARN_SHARE,
) -> list[str]:
    """One line per stage that removed more than ``warn_share`` of the records it compared."""
    by_stage: dict[str, Counter[int]] = {}
    for r in removals:
        by_stage.setdefault(r.stage, Counter())[r.kept_index] += 1
    warnings = []
    for stage, seen in entered.items():
        counts = by_stage.get(stage)
        gone = sum(counts.values()) if counts else 0
        if not seen or gone <= warn_share * seen:
            continue
        assert counts is not None
        top, n = counts.most_common(1)[0]
        head = f"the {stage} stage removed {gone:,} of {seen:,} records ({gone / seen:.0%}); "
        if n < 2 or n < DOMINANT_SHARE * gone:  # many small groups of look-alikes, no text behind them all
            warnings.append(
                head + f"no kept record dominates (the most matched one took {n:,} of them): the records are "
                "alike in small groups; check --report or the threshold"
            )
            continue
        warnings.append(
            head + f"{n:,} of them as "
            f"duplicates of record {row_of[top]}{'' if ids is None else f' (id {ids[top]})'}: \"{cut(texts.get(top), SNIPPET_CHARS)}\"; "
            f"check --report, --ignore-common or the threshold"
        )
    return warnings


def not_compared_warning(not_compared: dict[int, str], records: int) -> str:
    """The line saying how many records were kept without being compared, and why."""
    reasons: Counter[str] = Counter(not_compared.values())
    first = min(not_compared)
    why = ", ".join(f"{reason}: {n:,}" for reason, n in reasons.most_common())
    return (
        f"{len(not_compared):,} of {records:,} records were kept without being compared ({why}; the first is "
        f"record {first}); check --on and --on-regex"
    )
