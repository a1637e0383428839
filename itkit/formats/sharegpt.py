"""ShareGPT: ``{id, conversations: [{from, value}], system?}``.

Role aliases: human/user -> user; gpt/assistant/chatgpt/bing/bard -> assistant;
system (first turn only) -> the system prompt. Unknown roles and turns that do
not alternate are reported, never guessed. The source's role spellings, extra
per-turn keys and where the system prompt stood are kept so that a ShareGPT
file round-trips exactly.

Tool use in LLaMA-Factory's layout: a ``function_call`` turn (the JSON of
``{"name", "arguments"}``, a list for parallel calls) stands where the
assistant speaks, an ``observation`` turn holds the result, and ``tools`` the
JSON string of the function schemas. ShareGPT has no call ids, no text beside a
call and one observation per call turn: an assistant turn with both text and
calls cannot be written (refused), several results of parallel calls are
written as one observation holding the JSON array of the results. A ``weight``
(0/1) on a ``gpt`` turn is its training weight.
"""

from __future__ import annotations

import json
from typing import Any

from itkit.errors import Location, SchemaError
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
from itkit.errors import ConversionError
from itkit.formats.tools import function_call_value, parse_function_call, parse_tool_calls, parse_tools, plain_tools
from itkit.records import Record, Turn, conversation_problem

NAME = "sharegpt"
USER_ROLES = ("human", "user")
ASSISTANT_ROLES = ("gpt", "assistant", "chatgpt", "bing", "bard")
ROLE_MAP = {
    **{r: "user" for r in USER_ROLES},
    **{r: "assistant" for r in ASSISTANT_ROLES},
    "system": "system",
    "function_call": "function_call",
    "observation": "tool",
}
CANONICAL_TAGS = {"user": "human", "assistant": "gpt", "system": "system", "tool": "observation", "function_call": "function_call"}
KNOWN = frozenset({"id", "conversations", "system", "tools"})
OPTIONAL = ("id", "system", "tools")


def matches(row: dict) -> bool:
    return "conversations" in row


TOOL_TAGS = {"function_call": "function_call", "observation": "tool"}
"""LLaMA-Factory's ShareGPT tags for a tool call (an assistant turn) and its result."""


def looks_like_calls(value: Any) -> bool:
    """OpenAI tool calls (a list of objects with a ``function``); anything else under that key is kept as it came."""
    return isinstance(value, list) and bool(value) and all(isinstance(c, dict) and "function" in c for c in value)


def parse_turns(
    messages: list,
    ctx: LoadContext,
    key: str,
    role_key: str,
    content_key: str,
    role_map: dict[str, str],
    dialect: str = NAME,
) -> tuple[str | None, list[Turn], list[str], dict[int, dict[str, Any]], dict[str, Any]]:
    """Validate a list of chat messages: (system, turns, source role tags, extra keys per message, layout hints).

    ``dialect`` "sharegpt": ``function_call`` / ``observation`` turns are tool
    calls and results; "messages": OpenAI's ``tool_calls`` / ``tool`` role /
    ``tool_call_id``, with ``content`` null beside tool calls. A ``weight`` (0
    or 1) on an assistant turn is its training weight in both.
    """
    if not messages:
        raise SchemaError("is empty; a conversation needs at least one turn", ctx.location, key)
    system: str | None = None
    turns: list[Turn] = []
    tags: list[str] = []
    turn_extra: dict[int, dict[str, Any]] = {}
    hints: dict[str, Any] = {}
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
        calls_given = dialect == "messages" and role == "assistant" and looks_like_calls(msg.get("tool_calls"))
        if content is None and calls_given:
            hints.setdefault("null_content", []).append(i)
            content = ""
        if not isinstance(content, str):
            raise SchemaError(
                "is missing" if content is None else f"must be a string, got {type_name(content)}",
                ctx.location,
                f"{where}.{content_key}",
            )
        known_keys = {role_key, content_key}
        tool_calls = None
        tool_call_id = None
        if role == "function_call":
            tool_calls = parse_function_call(content, ctx, f"{where}.{content_key}")
            role, content = "assistant", ""
            hints.setdefault("call_values", {})[str(i)] = msg[content_key]
        elif dialect == "messages":
            if calls_given:
                known_keys.add("tool_calls")
                tool_calls, objects = parse_tool_calls(msg["tool_calls"], ctx, f"{where}.tool_calls")
                if objects:
                    hints["object_arguments"] = True
            if role == "tool" and "tool_call_id" in msg:
                known_keys.add("tool_call_id")
                tool_call_id = msg["tool_call_id"]
                if not isinstance(tool_call_id, str):
                    raise SchemaError(f"must be a string, got {type_name(tool_call_id)}", ctx.location, f"{where}.tool_call_id")
        weight = None
        if role == "assistant" and type(msg.get("weight")) is int and msg["weight"] in (0, 1):
            known_keys.add("weight")  # any other value is not a training weight: kept as it came
            weight = msg["weight"]
        extra = {k: v for k, v in msg.items() if k not in known_keys}
        if extra:
            turn_extra[i] = extra
        tags.append(tag)
        if role == "system":
            if i != 0:
                raise SchemaError("a system turn may only come first", ctx.location, f"{where}.{role_key}")
            system = content
            continue
        turns.append(Turn.trusted(role, content, tool_calls, tool_call_id, weight))
    if not turns:
        raise SchemaError("holds only a system turn; a conversation needs a user turn", ctx.location, key)
    problem = conversation_problem(turns)
    if problem:
        raise SchemaError(problem, ctx.location, key)
    return system, turns, tags, turn_extra, hints


def load(row: dict, ctx: LoadContext) -> Record:
    conversations = require_list(row, "conversations", ctx)
    inline_system, turns, tags, turn_extra, hints = parse_turns(
        conversations, ctx, "conversations", "from", "value", ROLE_MAP
    )
    tools = parse_tools(row.get("tools"), ctx)
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
    layout.update(hints)
    if "tools" in row:
        layout["tools_value"] = row["tools"]
    meta = base_metadata(NAME, row, KNOWN, generated, layout)
    system = inline_system if inline_system is not None else top_system
    return Record.trusted(rid, system, turns, "", meta, tools)


def observation_value(contents: list[str]) -> str:
    """One ShareGPT observation for the results of one call turn: the result, or the JSON array of several."""
    if len(contents) == 1:
        return contents[0]
    items = []
    for text in contents:
        try:
            items.append(json.loads(text))
        except ValueError:
            items.append(text)
    return json.dumps(items, ensure_ascii=False)


def sharegpt_turns(
    record: Record, tags: dict[str, str], where: str, keys: tuple[str, str] = ("from", "value"), weights: bool = True
) -> list[dict[str, Any]]:
    """The record's turns as ShareGPT ``{from, value}`` messages (no system), tool calls in LLaMA-Factory's layout.

    ``tags`` maps user/assistant/tool/function_call to the tag to write. Raises
    :class:`ConversionError` for what ShareGPT cannot hold (text beside a call).
    """
    out: list[dict[str, Any]] = []
    pending: list[str] = []
    for i, m in enumerate(record.to_messages(include_system=False)):
        if m["role"] == "tool":
            pending.append(m["content"])
            continue
        if pending:
            out.append({keys[0]: tags["tool"], keys[1]: observation_value(pending)})
            pending = []
        turn = record.turns[i]
        if turn.tool_calls:
            if turn.content.strip():
                raise ConversionError(
                    f"turn {i + 1} has both text and tool calls; {where} holds only the calls in a function_call "
                    "turn: write messages instead",
                    None,
                    "turns",
                )
            msg: dict[str, Any] = {keys[0]: tags["function_call"], keys[1]: function_call_value(turn.tool_calls)}
        else:
            msg = {keys[0]: tags[m["role"]], keys[1]: m["content"]}
        if weights and turn.weight is not None:
            msg["weight"] = turn.weight
        out.append(msg)
    if pending:
        out.append({keys[0]: tags["tool"], keys[1]: observation_value(pending)})
    return out


def dump(record: Record) -> dict:
    layout = layout_for(record, NAME)
    messages = sharegpt_turns(record, CANONICAL_TAGS, "ShareGPT")
    inline = bool(layout.get("inline_system")) and record.system is not None
    if inline:
        messages.insert(0, {"from": "system", "value": record.system})
    tags = layout.get("tags")
    if tags and len(tags) == len(messages):
        for msg, tag in zip(messages, tags):
            if CANONICAL_TAGS[ROLE_MAP[tag.lower()]] == msg["from"]:
                msg["from"] = tag
    for index, value in (layout.get("call_values") or {}).items():
        i = int(index)  # the source's own spelling of an unchanged call
        if i < len(messages) and messages[i]["from"] == "function_call":
            try:
                same = json.loads(value) == json.loads(messages[i]["value"])
            except ValueError:
                same = False
            if same:
                messages[i]["value"] = value
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
    if record.tools:
        given = layout.get("tools_value")
        try:
            same = given is not None and parse_tools(given, _DUMP_CTX) == record.tools
        except SchemaError:
            same = False
        out["tools"] = given if same else json.dumps(plain_tools(record.tools), ensure_ascii=False)
    elif "tools" in layout.get("present", ()):
        out["tools"] = layout.get("tools_value", "")
    return finish_row(out, record, NAME)


_DUMP_CTX = LoadContext(Location("dump"), "")


FORMAT = Format(
    name=NAME,
    description="ShareGPT conversations",
    matches=matches,
    load=load,
    dump=dump,
    keys="id, conversations: [{from, value}], optional system and tools (function_call/observation turns)",
)
