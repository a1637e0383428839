"""Which response a record gives: the simplified one or the original kept by ``itkit simplify --keep-original``.

After ``itkit simplify --keep-original`` a record's own final response is the
simplified one and ``metadata["original_output"]`` holds the response it
replaced. Such a record "has both". For the LFT subset, ``--prefer-simplified``
takes the simplified response; without it the LFT subset takes the original.
The SFT set always takes the record's own (simplified) response, since
training the full model on simplified responses is what reduces
hallucination (Ghosh et al. 2024). Records without an original are unchanged.
"""

from __future__ import annotations

from itkit.records import META_EXTRA, Record

ORIGINAL_OUTPUT = "original_output"
SIMPLIFIED = "simplified"
ORIGINAL = "original"
ONLY = "single"
"""The record has one response (no original kept)."""


def original_of(record: Record) -> str | None:
    """The original final response kept next to a simplified one, or None."""
    value = record.metadata.get(ORIGINAL_OUTPUT)
    if value is None:  # written as a top-level field of the row, loaded as an unknown ("extra") field
        extra = record.metadata.get(META_EXTRA)
        value = extra.get(ORIGINAL_OUTPUT) if isinstance(extra, dict) else None
    if isinstance(value, str) and record.has_output:
        return value
    return None


def has_both(record: Record) -> bool:
    return original_of(record) is not None


def choose(record: Record, mode: str, prefer_simplified: bool) -> tuple[Record, str]:
    """The record with the response this mode trains on, and which one it is (simplified, original, single)."""
    original = original_of(record)
    if original is None:
        return record, ONLY
    if mode == "sft" or prefer_simplified:
        return record, SIMPLIFIED
    return record.with_output(original), ORIGINAL
