"""Which Orca system message each record gets.

- ``by-type`` (default): the record's task type (see :mod:`task_types`) gives the
  messages it may receive; one is drawn from them.
- ``uniform``: one of all the messages, uniformly.
- ``allowed`` (``--system-messages 2,5,7``) restricts the choice to that set; in
  ``by-type`` mode the type's messages are intersected with it, and when they
  have none in common the record draws from the whole set instead
  (``Assignment.fallback`` is True and the run summary counts it).

The draw is deterministic per record: a RNG seeded from ``(seed, record id)``,
so the same record gets the same message whatever else is in the run, in which
order, or how many records ``--limit`` keeps.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from typing import Iterable

from itkit.errors import UsageError
from itkit.methods.orca.task_types import TaskTable
from itkit.records import Record

BY_TYPE = "by-type"
UNIFORM = "uniform"
MODES = (BY_TYPE, UNIFORM)
DEFAULT_SEED = 0
"""The assignment seed when ``--seed`` is not given."""


@dataclass(frozen=True)
class Assignment:
    number: int
    """The system message chosen (1-based, as in the paper)."""
    task_type: str
    found_by: str
    """How the task type was found: ``category:...``, ``id-prefix:...``, ``rule:...`` or ``default``."""
    pool: tuple[int, ...]
    """The messages the record could have received."""
    fallback: bool = False
    """by-type with --system-messages: the type shares no message with the set, so the whole set was used."""


def parse_message_set(text: str, valid: Iterable[int]) -> tuple[int, ...]:
    """``"2,5,7"`` or ``"1-4,9"`` as sorted message numbers; a UsageError names a bad item."""
    known = sorted(set(valid))
    chosen: set[int] = set()
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        try:
            if "-" in item:
                low, high = (int(x) for x in item.split("-", 1))
                if low > high:
                    raise ValueError
                numbers = range(low, high + 1)
            else:
                numbers = range(int(item), int(item) + 1)
        except ValueError:
            raise UsageError(
                f"--system-messages: '{item}' is not a message number or range (e.g. 2,5,7 or 1-4)"
            ) from None
        for n in numbers:
            if n not in known:
                raise UsageError(
                    f"--system-messages: there is no system message #{n}; they are numbered {known[0]}..{known[-1]}"
                )
            chosen.add(n)
    if not chosen:
        raise UsageError("--system-messages: give at least one message number (e.g. 2,5,7)")
    return tuple(sorted(chosen))


def record_rng(seed: int, record_id: str) -> random.Random:
    """A RNG that depends only on the seed and the record id (never on run order)."""
    digest = hashlib.sha256(f"{seed}\x1f{record_id}".encode("utf-8")).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def seeded_choice(pool: tuple[int, ...], seed: int, record_id: str) -> int:
    return record_rng(seed, record_id).choice(pool)


class Assigner:
    """Picks each record's system message."""

    def __init__(
        self,
        table: TaskTable,
        numbers: tuple[int, ...],
        mode: str = BY_TYPE,
        allowed: tuple[int, ...] | None = None,
        seed: int = DEFAULT_SEED,
    ):
        if mode not in MODES:
            raise UsageError(f"--assign must be one of {', '.join(MODES)}, not '{mode}'")
        if allowed is not None:
            if not allowed:
                raise UsageError("--system-messages: give at least one message number (e.g. 2,5,7)")
            missing = sorted(set(allowed) - set(numbers))
            if missing:
                raise UsageError(
                    f"--system-messages: there is no system message #{missing[0]}; "
                    f"they are numbered {min(numbers)}..{max(numbers)}"
                )
        self.table = table
        self.numbers = tuple(sorted(numbers))
        self.mode = mode
        self.allowed = tuple(sorted(set(allowed))) if allowed is not None else None
        self.seed = seed

    def pool_for(self, task_type: str) -> tuple[tuple[int, ...], bool]:
        """The messages a record of ``task_type`` may get, and whether the --system-messages fallback applied."""
        if self.mode == UNIFORM:
            return (self.allowed or self.numbers), False
        pool = self.table.messages_for(task_type)
        if self.allowed is None:
            return pool, False
        common = tuple(n for n in pool if n in self.allowed)
        if common:
            return common, False
        return self.allowed, True

    def assign(self, record: Record) -> Assignment:
        found = self.table.detect(record)
        pool, fallback = self.pool_for(found.name)
        number = seeded_choice(pool, self.seed, record.id)
        return Assignment(number, found.name, found.found_by, pool, fallback)
