"""Warnings for the user: one plain line on stderr each, said once per run, and kept for run summaries.

The library calls :func:`warn` where it goes on in a degraded way (token figures estimated without the
tiktoken encoding, a step that produced nothing of what it exists for). ``itkit run`` reads
:func:`collected` to put them in its summary.
"""

from __future__ import annotations

import sys

_said: list[str] = []


def warn(message: str) -> None:
    """``itkit: warning: message`` on stderr, unless the same message was already said."""
    if message in _said:
        return
    _said.append(message)
    try:
        sys.stderr.write(f"itkit: warning: {message}\n")
        sys.stderr.flush()
    except (OSError, ValueError):  # stderr closed: the warning is still collected
        pass


def collected() -> list[str]:
    """Every warning said since the last :func:`reset`, in order."""
    return list(_said)


def reset() -> None:
    _said.clear()


def say(message: str) -> None:
    """``itkit: message`` on stderr (progress news such as a batch's state; not collected)."""
    try:
        sys.stderr.write(f"itkit: {message}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
