"""OpenAI / Hugging Face chat messages: ``{messages: [{role, content}], tools?}``.

Tool use as OpenAI writes it: an assistant message with ``tool_calls`` (its
``content`` may be null), ``tool`` messages with ``tool_call_id``, the schemas
in ``tools``. A ``weight`` (0/1) on an assistant message is its training weight
(OpenAI's fine-tuning format).
"""

from __future__ import annotations

import json
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
from itkit.formats.tools import calls_with_object_arguments, parse_tools
from itkit.records import Record

NAME = "messages"
ROLE_MAP = {"system": "system", "user": "user", "assistant": "assistant", "tool": "tool"}
KNOWN = frozenset({"id", "messages", "tools"})


def matches(row: dict) -> bool:
    return "messages" in row


def load(row: dict, ctx: LoadContext) -> Record:
    messages = require_list(row, "messages", ctx)
    system, turns, _tags, turn_extra, hints = parse_turns(
        messages, ctx, "messages", "role", "content", ROLE_MAP, dialect="messages"
    )
    tools = parse_tools(row.get("tools"), ctx)
    rid, generated = record_id(row, "id", ctx)
    layout: dict[str, Any] = dict(hints)
    if turn_extra:
        layout["turn_extra"] = {str(k): v for k, v in turn_extra.items()}
    if "tools" in row and not tools:
        layout["tools_value"] = row["tools"]
    if isinstance(row.get("tools"), str):
        layout["tools_as_text"] = True
    meta = base_metadata(NAME, row, KNOWN, generated, layout or {"present": []})
    return Record.trusted(rid, system, turns, "", meta, tools)


def dump(record: Record) -> dict:
    layout = layout_for(record, NAME)
    messages = record.to_messages(include_system=False)
    objects = bool(layout.get("object_arguments"))
    for message, turn in zip(messages, record.turns):
        if turn.tool_calls and objects:
            message["tool_calls"] = calls_with_object_arguments(turn.tool_calls)
        if turn.weight is not None:
            message["weight"] = turn.weight
    if record.system is not None:
        messages.insert(0, {"role": "system", "content": record.system})
    for index in layout.get("null_content") or ():
        if index < len(messages) and messages[index].get("tool_calls") and messages[index]["content"] == "":
            messages[index]["content"] = None
    for index, extra in (layout.get("turn_extra") or {}).items():
        i = int(index)
        if i < len(messages):
            messages[i].update(extra)
    out: dict = {}
    rid = id_for_dump(record)
    if rid is not None:
        out["id"] = rid
    out["messages"] = messages
    if record.tools:
        out["tools"] = json.dumps(record.tools, ensure_ascii=False) if layout.get("tools_as_text") else record.tools
    elif "tools_value" in layout:
        out["tools"] = layout["tools_value"]
    return finish_row(out, record, NAME)


FORMAT = Format(
    name=NAME,
    description="OpenAI / Hugging Face chat messages",
    matches=matches,
    load=load,
    dump=dump,
    keys="messages: [{role, content}] with roles system, user, assistant, tool; optional tools",
)
