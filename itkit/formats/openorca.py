"""OpenOrca: ``{id, system_prompt, question, response}``.

The id's prefix names the sub-mix (niv, t0, cot, flan); it is kept as the
record's category when present, so Orca-style assignment can use it.
"""

from __future__ import annotations

from itkit.formats.base import (
    Format,
    LoadContext,
    base_metadata,
    finish_row,
    id_for_dump,
    optional_str,
    record_id,
    require_single_turn,
    require_str,
)
from itkit.records import Record

NAME = "openorca"
KNOWN = frozenset({"id", "system_prompt", "question", "response"})
SUBMIXES = ("niv", "t0", "cot", "flan")


def matches(row: dict) -> bool:
    return "question" in row and "response" in row and "system_prompt" in row


def submix(record_id: str) -> str | None:
    prefix = record_id.split(".", 1)[0].lower()
    return prefix if prefix in SUBMIXES else None


def load(row: dict, ctx: LoadContext) -> Record:
    question = require_str(row, "question", ctx)
    response = require_str(row, "response", ctx)
    system = optional_str(row, "system_prompt", ctx)
    rid, generated = record_id(row, "id", ctx)
    meta = base_metadata(NAME, row, KNOWN, generated, None, category=None if generated else submix(rid))
    return Record.single_turn(rid, question, response, system=system if system is not None else "", metadata=meta)


def native_metadata(record: Record) -> tuple[str, ...]:
    """The category is the id's sub-mix prefix when it was derived from it: not written again."""
    return ("category",) if record.category is not None and record.category == submix(record.id) else ()


def dump(record: Record) -> dict:
    require_single_turn(record, NAME, allow_system=True)
    out: dict = {}
    rid = id_for_dump(record)
    if rid is not None:
        out["id"] = rid
    out["system_prompt"] = record.system or ""
    out["question"] = record.prompt
    out["response"] = record.output
    return finish_row(out, record, NAME, native_metadata(record))


FORMAT = Format(
    name=NAME,
    description="OpenOrca explanation-tuning data",
    matches=matches,
    load=load,
    dump=dump,
    keys="id, system_prompt, question, response",
)
