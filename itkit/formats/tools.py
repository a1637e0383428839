"""Tool calls and tool schemas as formats write them, to and from the canonical (OpenAI) shape.

- OpenAI messages: an assistant message's ``tool_calls`` is ``[{"id", "type":
  "function", "function": {"name", "arguments"}}]`` with ``arguments`` a JSON
  string (Hugging Face datasets often hold an object instead: accepted, and
  written back as it came); a ``tool`` message answers with ``tool_call_id``;
  the row's ``tools`` lists ``{"type": "function", "function": {...}}``.
- ShareGPT (LLaMA-Factory's layout): a ``function_call`` turn whose value is the
  JSON of ``{"name", "arguments"}`` (or a list of them for parallel calls), an
  ``observation`` turn with the result, and a ``tools`` field holding the JSON
  string of the function schemas.
"""

from __future__ import annotations

import json
from typing import Any

from itkit.errors import SchemaError
from itkit.formats.base import LoadContext, type_name
from itkit.records import tool_calls_problem


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def parse_tool_calls(value: Any, ctx: LoadContext, where: str) -> tuple[list[dict[str, Any]], bool]:
    """OpenAI ``tool_calls`` in canonical form, and whether the source held ``arguments`` as objects."""
    if not isinstance(value, list) or not value:
        raise SchemaError(f"must be a non-empty array of tool calls, got {type_name(value)}", ctx.location, where)
    calls: list[dict[str, Any]] = []
    objects = False
    for i, call in enumerate(value):
        field = f"{where}[{i}]"
        if not isinstance(call, dict):
            raise SchemaError(f"must be an object, got {type_name(call)}", ctx.location, field)
        function = call.get("function")
        if not isinstance(function, dict):
            raise SchemaError("is missing" if function is None else f"must be an object, got {type_name(function)}", ctx.location, f"{field}.function")
        name = function.get("name")
        if not isinstance(name, str) or not name:
            raise SchemaError("must be a non-empty string", ctx.location, f"{field}.function.name")
        arguments = function.get("arguments", "{}")
        if isinstance(arguments, dict):
            objects = True
            arguments = _dumps(arguments)
        elif not isinstance(arguments, str):
            raise SchemaError(f"must be a JSON string or an object, got {type_name(arguments)}", ctx.location, f"{field}.function.arguments")
        out = {k: v for k, v in call.items() if k != "function"}
        out.setdefault("type", "function")
        out["function"] = {**function, "name": name, "arguments": arguments}
        calls.append(out)
    problem = tool_calls_problem(calls)
    if problem:  # pragma: no cover - the checks above cover every case
        raise SchemaError(problem, ctx.location, where)
    return calls, objects


def calls_with_object_arguments(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The calls with ``arguments`` parsed into objects (as Hugging Face chat templates expect)."""
    out = []
    for call in calls:
        function = dict(call["function"])
        function["arguments"] = arguments_object(function["arguments"])
        out.append({**call, "function": function})
    return out


def arguments_object(arguments: str) -> Any:
    """Parsed arguments; text that is not JSON stays text."""
    try:
        return json.loads(arguments)
    except ValueError:
        return arguments


def parse_tools(value: Any, ctx: LoadContext, field: str = "tools") -> list[dict[str, Any]] | None:
    """A row's tool schemas in canonical form; accepts a list or its JSON string, plain or OpenAI-wrapped schemas."""
    if value is None or value == "" or value == []:
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise SchemaError(f"is not valid JSON: {exc}", ctx.location, field) from None
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise SchemaError(f"must be an array of tool schemas, got {type_name(value)}", ctx.location, field)
    tools: list[dict[str, Any]] = []
    for i, tool in enumerate(value):
        if not isinstance(tool, dict):
            raise SchemaError(f"must be an object, got {type_name(tool)}", ctx.location, f"{field}[{i}]")
        function = tool.get("function") if "function" in tool else tool
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise SchemaError("must name its function ('name')", ctx.location, f"{field}[{i}]")
        tools.append({"type": "function", **tool} if "function" in tool else {"type": "function", "function": tool})
    return tools or None


def plain_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The function schemas alone (``{name, description, parameters}``), as LLaMA-Factory's examples hold them."""
    return [tool.get("function", tool) for tool in tools]


def function_call_value(calls: list[dict[str, Any]]) -> str:
    """A ShareGPT ``function_call`` value: the JSON of ``{name, arguments}``, a list for parallel calls."""
    items = [{"name": c["function"]["name"], "arguments": arguments_object(c["function"]["arguments"])} for c in calls]
    return _dumps(items[0] if len(items) == 1 else items)


def parse_function_call(value: str, ctx: LoadContext, where: str) -> list[dict[str, Any]]:
    """Canonical tool calls from a ShareGPT ``function_call`` value."""
    try:
        data = json.loads(value)
    except ValueError as exc:
        raise SchemaError(f"a function_call value must be JSON ({{\"name\", \"arguments\"}}): {exc}", ctx.location, where) from None
    items = data if isinstance(data, list) else [data]
    calls = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
            raise SchemaError(f"call {i + 1} must be an object with a 'name' and 'arguments'", ctx.location, where)
        arguments = item.get("arguments", {})
        calls.append(
            {"type": "function", "function": {"name": item["name"], "arguments": arguments if isinstance(arguments, str) else _dumps(arguments)}}
        )
    if not calls:
        raise SchemaError("a function_call value holds no call", ctx.location, where)
    return calls
