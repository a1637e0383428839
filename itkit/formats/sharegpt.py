"""ShareGPT: ``{id, conversations: [{from, value}], system?}``.

Role aliases: human/user -> user; gpt/assistant/chatgpt/bing/bard -> assistant;
system (first turn only) -> the system prompt. Unknown roles and turns that do
not alternate are reported, never guessed. The source's role spellings, extra
per-turn keys and where the system prompt stood are kept so that a ShareGPT
file round-trips exactly.
"""

from __future__ import annotations

from typing import Any

from itkit.errors import SchemaError
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
    require_list,
    type_name,
)
from itkit.records import Record, Turn, alternation_problem

NAME = "sharegpt"
USER_ROLES = ("human", "user")
ASSISTANT_ROLES = ("gpt", "assistant", "chatgpt", "bing", "bard")
ROLE_MAP = {**{r: "user" for r in USER_ROLES}, **{r: "assistant" for r in ASSISTANT_ROLES}, "system": "system"}
CANONICAL_TAGS = {"user": "human", "assistant": "gpt", "system": "system"}
KNOWN = frozenset({"id", "conversations", "system"})
OPTIONAL = ("id", "system")


def matches(row: dict) -> bool:
    return "conversations" in row


def parse_turns(
    messages: list,
    ctx: LoadContext,
    key: str,
    role_key: str,
    content_key: str,
    role_map: dict[str, str],
) -> tuple[str | None, list[Turn], list[str], dict[int, dict[str, Any]]]:
    """Validate a list of chat messages: (system, turns, source role tags, extra keys per message)."""
    if not messages:
        raise SchemaError("is empty; a conversation needs at least one turn", ctx.location, key)
    system: str | None = None
    turns: list[Turn] = []
    tags: list[str] = []
    turn_extra: dict[int, dict[str, Any]] = {}
    for i, msg in enumerate(messages):
        where = f"{key}[{i}]"
        if not isinstance(msg, dict):
            raise SchemaError(f"must be an object with '{role_key}' and '{content_key}', got {type_name(msg)}", ctx.location, where)
        tag = msg.get(role_key)
        if not isinstance(tag, str):
            raise SchemaError(
                "is missing" if tag is None else f"must be a string, got {type_name(tag)}",
                ctx.location,
                f"{where}.{role_key}",
            )
        role = role_map.get(tag.lower())
        if role is None:
            known = ", ".join(role_map)
            raise SchemaError(f"unknown role '{tag}' (known: {known})", ctx.location, f"{where}.{role_key}")
        content = msg.get(content_key)
        if not isinstance(content, str):
            raise SchemaError(
                "is missing" if content is None else f"must be a string, got {type_name(content)}",
                ctx.location,
                f"{where}.{content_key}",
            )
        extra = {k: v for k, v in msg.items() if k not in (role_key, content_key)}
        if extra:
            turn_extra[i] = extra
        tags.append(tag)
        if role == "system":
            if i != 0:
                raise SchemaError("a system turn may only come first", ctx.location, f"{where}.{role_key}")
            system = content
            continue
        turns.append(Turn.trusted(role, content))
    if not turns:
        raise SchemaError("holds only a system turn; a conversation needs a user turn", ctx.location, key)
    problem = alternation_problem([t.role for t in turns])
    if problem:
        raise SchemaError(problem, ctx.location, key)
    return system, turns, tags, turn_extra


def load(row: dict, ctx: LoadContext) -> Record:
    conversations = require_list(row, "conversations", ctx)
    inline_system, turns, tags, turn_extra = parse_turns(
        conversations, ctx, "conversations", "from", "value", ROLE_MAP
    )
    top_system = optional_str(row, "system", ctx)
    if top_system is not None and inline_system is not None:
        raise SchemaError("is given both as a top-level 'system' and as a first system turn", ctx.location, "system")
    rid, generated = record_id(row, "id", ctx)
    layout: dict[str, Any] = {"present": present(row, OPTIONAL)}
    canonical = [CANONICAL_TAGS[ROLE_MAP[t.lower()]] for t in tags]
    if tags != canonical:
        layout["tags"] = tags
    if inline_system is not None:
        layout["inline_system"] = True
    if turn_extra:
        layout["turn_extra"] = {str(k): v for k, v in turn_extra.items()}
    meta = base_metadata(NAME, row, KNOWN, generated, layout)
    system = inline_system if inline_system is not None else top_system
    return Record.trusted(rid, system, turns, "", meta)


def dump(record: Record) -> dict:
    layout = layout_for(record, NAME)
    messages = [
        {"from": CANONICAL_TAGS[m["role"]], "value": m["content"]}
        for m in record.to_messages(include_system=False)
    ]
    inline = bool(layout.get("inline_system")) and record.system is not None
    if inline:
        messages.insert(0, {"from": "system", "value": record.system})
    tags = layout.get("tags")
    if tags and len(tags) == len(messages):
        for msg, tag in zip(messages, tags):
            if CANONICAL_TAGS[ROLE_MAP[tag.lower()]] == msg["from"]:
                msg["from"] = tag
    for index, extra in (layout.get("turn_extra") or {}).items():
        i = int(index)
        if i < len(messages):
            messages[i].update(extra)
    out: dict = {}
    rid = id_for_dump(record)
    if rid is not None:
        out["id"] = rid
    if record.system is not None and not inline:
        if record.system or "system" in layout.get("present", ("system",)):
            out["system"] = record.system
    out["conversations"] = messages
    return finish_row(out, record, NAME)


FORMAT = Format(
    name=NAME,
    description="ShareGPT conversations",
    matches=matches,
    load=load,
    dump=dump,
    keys="id, conversations: [{from, value}], optional system",
)
