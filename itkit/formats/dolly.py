"""Dolly: ``{instruction, context, response, category}``."""

from __future__ import annotations

from itkit.formats.base import (
    Format,
    LoadContext,
    base_metadata,
    finish_row,
    id_for_dump,
    layout_for,
    optional_str,
    present,
    record_id,
    require_single_turn,
    require_str,
)
from itkit.records import Record

NAME = "dolly"
KNOWN = frozenset({"id", "instruction", "context", "response", "category"})
OPTIONAL = ("id", "category")


def matches(row: dict) -> bool:
    return "instruction" in row and "context" in row and "response" in row


def load(row: dict, ctx: LoadContext) -> Record:
    instruction = require_str(row, "instruction", ctx)
    context = optional_str(row, "context", ctx) or ""
    response = require_str(row, "response", ctx)
    category = optional_str(row, "category", ctx)
    rid, generated = record_id(row, "id", ctx)
    layout = {"present": present(row, OPTIONAL)}
    meta = base_metadata(NAME, row, KNOWN, generated, layout, category=category)
    return Record.single_turn(rid, instruction, response, input=context, metadata=meta)


def dump(record: Record) -> dict:
    require_single_turn(record, NAME, allow_system=False)
    layout = layout_for(record, NAME)
    out: dict = {}
    rid = id_for_dump(record)
    if rid is not None:
        out["id"] = rid
    out["instruction"] = record.instruction
    out["context"] = record.input
    out["response"] = record.output
    category = record.category
    if category is not None or not layout or "category" in layout["present"]:
        out["category"] = category or ""
    return finish_row(out, record, NAME, ("category",))


FORMAT = Format(
    name=NAME,
    description="Dolly 15k",
    matches=matches,
    load=load,
    dump=dump,
    keys="instruction, context, response, category",
)
