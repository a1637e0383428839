"""Which text of a record deduplication compares (``--on``, ``--on-regex``), and its response length.

:func:`text_getter` gives the built-in texts (:data:`ON_CHOICES`); :func:`selector` adds
field names (a source field the format does not map, or a metadata key, by a dotted path)
and a regular expression that picks a part of the text (:class:`TextSelector`).
"""

from __future__ import annotations

import json
import re
from typing import Any, Callable

from itkit.errors import UsageError
from itkit.records import INPUT_SEPARATOR, META_EXTRA, Record, join_input

AUTO = "auto"
ON_CHOICES = (AUTO, "instruction", "prompt", "response", "conversation", "input", "output", "system")
"""
- ``instruction``: the last user turn with its input (Alpaca's instruction + input);
- ``prompt``: every user turn (the last one with its input);
- ``response``: every assistant turn;
- ``conversation``: the system prompt and every turn;
- ``input``: the input alone (Alpaca's ``input``, Dolly's ``context``);
- ``output``: the final assistant turn;
- ``system``: the system prompt;
- ``auto`` (default): ``instruction`` for single-turn records, ``prompt`` for multi-turn ones.
"""
REGEX_GROUP = "text"
"""The named group of ``--on-regex`` whose match is compared (else the first group, else the whole match)."""
NOT_COMPARED_EMPTY = "empty text"
NOT_COMPARED_NO_MATCH = "--on-regex did not match"
TURN_SEPARATOR = INPUT_SEPARATOR


def _instruction(record: Record) -> str:
    return record.prompt


def _prompt(record: Record) -> str:
    return TURN_SEPARATOR.join(record.user_texts())


def _response(record: Record) -> str:
    """Every assistant turn, its tool calls included (two answers that call different tools differ)."""
    return TURN_SEPARATOR.join(t.text_with_calls for t in record.turns if t.role == "assistant")


def _conversation(record: Record) -> str:
    """The system prompt and every turn, tool calls and tool results included."""
    parts = [record.system] if record.system else []
    texts = [m["content"] for m in record.to_messages(include_system=False)]
    parts += [t.text_with_calls if t.tool_calls else texts[i] for i, t in enumerate(record.turns)]
    return TURN_SEPARATOR.join(parts)


def _auto(record: Record) -> str:
    turns = record.turns
    if len(turns) <= 2 or not record.is_multi_turn:  # one exchange (tool calls and results aside)
        return join_input(turns[0].content if turns else "", record.input)
    return _prompt(record)


_EXTRACTORS: dict[str, Callable[[Record], str]] = {
    AUTO: _auto,
    "instruction": _instruction,
    "prompt": _prompt,
    "response": _response,
    "conversation": _conversation,
    "input": lambda record: record.input,
    "output": lambda record: record.output,
    "system": lambda record: record.system or "",
}


def text_getter(on: str) -> Callable[[Record], str]:
    """The function giving the compared text of a record for ``--on``."""
    try:
        return _EXTRACTORS[on]
    except KeyError:
        raise UsageError(f"--on must be one of {', '.join(ON_CHOICES)}, not '{on}'") from None


class MissingField(Exception):
    """The record has no value at the field ``--on`` names."""


_MISSING = object()


def _lookup(data: Any, path: list[str]) -> Any:
    for part in path:
        if not isinstance(data, dict) or part not in data:
            return _MISSING
        data = data[part]
    return data


def _field_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(value, ensure_ascii=False, sort_keys=True)  # numbers, lists, objects: their JSON


def _field_getter(name: str) -> Callable[[Record, dict | None], str]:
    """A field of the row as read, else of the source fields the format keeps aside (``metadata.extra``),
    else a metadata key; dots walk into objects."""
    path = name.split(".")

    def get(record: Record, row: dict | None) -> str:
        metadata = record.metadata
        value = _lookup(row, path) if row is not None else _MISSING
        if value is _MISSING:
            value = _lookup(metadata.get(META_EXTRA), path)
        if value is _MISSING:
            value = _lookup(metadata, path)
        if value is _MISSING:
            raise MissingField(name)
        return _field_text(value)

    return get


def check_on(on: str, name: str = "--on") -> None:
    """A usage error unless ``on`` is a built-in text or could be a field name (dotted path)."""
    if not on or on != on.strip() or any(not part for part in on.split(".")):
        raise UsageError(f"{name} takes {', '.join(ON_CHOICES)} or a field name, not '{on}'")


def compile_on_regex(pattern: str, name: str = "--on-regex") -> re.Pattern[str]:
    """``--on-regex``, compiled; a pattern Python cannot compile is a usage error."""
    try:
        return re.compile(pattern)
    except (re.error, RecursionError, OverflowError, ValueError) as exc:
        raise UsageError(f"{name}: not a valid regular expression ({exc}): {pattern!r}") from None


class TextSelector:
    """The compared text of a record: ``--on`` (a built-in text or a field), then the ``--on-regex`` part.

    Calling it gives the text (a field name is looked up in the row as read first: what the
    user sees in the file, e.g. a seed task's ``name``), or None when there is nothing to compare (:attr:`why` says why:
    :data:`NOT_COMPARED_EMPTY` or :data:`NOT_COMPARED_NO_MATCH`); such records are kept and
    counted, never compared. A field the record lacks raises :class:`MissingField`.
    """

    def __init__(self, on: str = AUTO, regex: str | None = None):
        check_on(on)
        self.on = on
        self.is_field = on not in _EXTRACTORS
        if self.is_field:
            self._get = _field_getter(on)
        else:
            builtin = _EXTRACTORS[on]
            self._get = lambda record, row: builtin(record)
        self.regex = compile_on_regex(regex) if regex is not None else None
        self._group: int | str = 0
        if self.regex is not None:
            self._group = REGEX_GROUP if REGEX_GROUP in self.regex.groupindex else (1 if self.regex.groups else 0)
        self.why = ""

    def __call__(self, record: Record, row: dict | None = None) -> str | None:
        """The compared text of ``record`` (``row``: the row it was read from, where fields are looked up first)."""
        text = self._get(record, row)
        if self.regex is not None:
            found = self.regex.search(text)
            if found is None:
                self.why = NOT_COMPARED_NO_MATCH
                return None
            text = found.group(self._group) or ""
        if not text or text.isspace():
            self.why = NOT_COMPARED_EMPTY
            return None
        return text


def selector(on: str = AUTO, regex: str | None = None) -> TextSelector:
    """The :class:`TextSelector` of ``--on`` and ``--on-regex`` (usage errors for bad names and patterns)."""
    return TextSelector(on, regex)


def response_length(record: Record) -> int:
    """Characters in the record's assistant turns (what ``--keep longest`` maximises)."""
    return sum(len(t.text_with_calls) for t in record.turns if t.role == "assistant")
