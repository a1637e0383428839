"""Which text of a record deduplication compares (``--on``), and its response length (``--keep longest``)."""

from __future__ import annotations

from typing import Callable

from itkit.errors import UsageError
from itkit.records import INPUT_SEPARATOR, Record, join_input

AUTO = "auto"
ON_CHOICES = (AUTO, "instruction", "prompt", "response", "conversation")
"""
- ``instruction``: the last user turn with its input (Alpaca's instruction + input);
- ``prompt``: every user turn (the last one with its input);
- ``response``: every assistant turn;
- ``conversation``: the system prompt and every turn;
- ``auto`` (default): ``instruction`` for single-turn records, ``prompt`` for multi-turn ones.
"""
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
}


def text_getter(on: str) -> Callable[[Record], str]:
    """The function giving the compared text of a record for ``--on``."""
    try:
        return _EXTRACTORS[on]
    except KeyError:
        raise UsageError(f"--on must be one of {', '.join(ON_CHOICES)}, not '{on}'") from None


def response_length(record: Record) -> int:
    """Characters in the record's assistant turns (what ``--keep longest`` maximises)."""
    return sum(len(t.text_with_calls) for t in record.turns if t.role == "assistant")
