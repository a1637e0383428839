"""The failures file's rows: each failed input record verbatim, with why and where it failed.

A row of ``<output>.failures.jsonl`` is the input row exactly as it was read
(the input's record format: Alpaca, ShareGPT...), plus one field,
:data:`FAILURE_KEY`, holding the reason, the input's location (``source`` and
``line`` or ``index``), the raw response when there was one, and the
method's details (stage, round...)::

    {"instruction": "...", "output": "...", "_itkit_failure": {"reason": "...", "source": "data.jsonl", "line": 7, "response": ""}}

Every reader drops :data:`FAILURE_KEY` when it loads a row, so the failures
file can be fed straight back to the same command (``itkit simplify
out.jsonl.failures.jsonl -o retried.jsonl``) and gives the same records, and
a record that fails again gets a fresh reason instead of a nested one.
"""

from __future__ import annotations

from typing import Any

from itkit.errors import Location

FAILURE_KEY = "_itkit_failure"


def strip_failure(row: dict) -> dict:
    """``row`` without :data:`FAILURE_KEY` (the same object when it has none)."""
    if FAILURE_KEY not in row:
        return row
    return {k: v for k, v in row.items() if k != FAILURE_KEY}


def failure_row(
    row: dict | None,
    reason: str,
    location: Location | None = None,
    response: str | None = None,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The failures-file row for the input ``row`` (None when the failure has no input record, e.g. generation)."""
    failure: dict[str, Any] = {"reason": reason}
    if location is not None:
        failure.update(location.as_dict())
    if response is not None:
        failure["response"] = response
    failure.update(details or {})
    out = dict(row) if row is not None else {}
    out[FAILURE_KEY] = failure
    return out


__all__ = ["FAILURE_KEY", "failure_row", "strip_failure"]
