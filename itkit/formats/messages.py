"""OpenAI / Hugging Face chat messages: ``{messages: [{role, content}]}``."""

from __future__ import annotations

from typing import Any

from itkit.formats.base import (
    Format,
    LoadContext,
    base_metadata,
    finish_row,
    id_for_dump,
    layout_for,
    record_id,
    require_list,
)
from itkit.formats.sharegpt import parse_turns
from itkit.records import Record

NAME = "messages"
ROLE_MAP = {"system": "system", "user": "user", "assistant": "assistant"}
KNOWN = frozenset({"id", "messages"})


def matches(row: dict) -> bool:
    return "messages" in row


def load(row: dict, ctx: LoadContext) -> Record:
    messages = require_list(row, "messages", ctx)
    system, turns, _tags, turn_extra = parse_turns(messages, ctx, "messages", "role", "content", ROLE_MAP)
    rid, generated = record_id(row, "id", ctx)
    layout: dict[str, Any] = {}
    if turn_extra:
        layout["turn_extra"] = {str(k): v for k, v in turn_extra.items()}
    meta = base_metadata(NAME, row, KNOWN, generated, layout or {"present": []})
    return Record.trusted(rid, system, turns, "", meta)


def dump(record: Record) -> dict:
    layout = layout_for(record, NAME)
    messages = record.to_messages(include_system=False)
    if record.system is not None:
        messages.insert(0, {"role": "system", "content": record.system})
    for index, extra in (layout.get("turn_extra") or {}).items():
        i = int(index)
        if i < len(messages):
            messages[i].update(extra)
    out: dict = {}
    rid = id_for_dump(record)
    if rid is not None:
        out["id"] = rid
    out["messages"] = messages
    return finish_row(out, record, NAME)


FORMAT = Format(
    name=NAME,
    description="OpenAI / Hugging Face chat messages",
    matches=matches,
    load=load,
    dump=dump,
    keys="messages: [{role, content}] with roles system, user, assistant",
)
