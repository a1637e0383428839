"""The format registry and the one place that detects formats."""

from __future__ import annotations

from typing import Sequence

from itkit.errors import FormatDetectionError, Location, UsageError
from itkit.formats import alpaca, dolly, messages, openorca, seed_tasks, sharegpt
from itkit.formats.base import Format, LoadContext
from itkit.format_names import FORMAT_NAMES

FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        alpaca.FORMAT,
        dolly.FORMAT,
        sharegpt.FORMAT,
        messages.FORMAT,
        openorca.FORMAT,
        seed_tasks.FORMAT,
    )
}
if tuple(FORMATS) != FORMAT_NAMES:  # pragma: no cover - a format added to one list and not the other
    raise ImportError(f"itkit.format_names.FORMAT_NAMES {FORMAT_NAMES} differs from the registry {tuple(FORMATS)}")
DETECT_SAMPLE = 20
"""How many leading records auto-detection looks at."""


def get_format(name: str) -> Format:
    try:
        return FORMATS[name]
    except KeyError:
        raise UsageError(f"unknown format '{name}'; choose one of: {', '.join(FORMAT_NAMES)}") from None


def candidates(row: object) -> list[str]:
    if not isinstance(row, dict):
        return []
    return [f.name for f in FORMATS.values() if f.matches(row)]


def detect(rows: Sequence[tuple[dict, Location]], source: str) -> Format:
    """Pick the one format that every sampled row matches, or explain why not."""
    if not rows:
        raise FormatDetectionError("holds no records", Location(source))
    first_seen: dict[str, Location] = {}
    common: set[str] | None = None
    for row, loc in rows:
        names = candidates(row)
        if not names:
            continue  # reported record by record when loading (e.g. a missing field)
        for name in names:
            first_seen.setdefault(name, loc)
        common = set(names) if common is None else common & set(names)
        if not common:
            described = ", ".join(f"{first_seen[n].position()} looks like {n}" for n in sorted(first_seen, key=lambda n: str(first_seen[n])))
            raise FormatDetectionError(f"mixes formats ({described}); split the file or pass --from", Location(source))
    if common is None:
        row, loc = rows[0]
        keys = ", ".join(sorted(row)) if isinstance(row, dict) else type(row).__name__
        raise FormatDetectionError(
            f"matches no known format (keys: {keys or 'none'}); pass --from, expected one of: "
            + "; ".join(f"{f.name} ({f.keys})" for f in FORMATS.values()),
            loc,
        )
    assert common is not None
    if len(common) > 1:
        raise FormatDetectionError(
            f"is ambiguous: its records match {', '.join(sorted(common))}; pass --from to choose", Location(source)
        )
    return FORMATS[common.pop()]


__all__ = ["FORMATS", "FORMAT_NAMES", "Format", "LoadContext", "candidates", "detect", "get_format"]
