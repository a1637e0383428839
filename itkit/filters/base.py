"""What every quality rule is, and the helpers rules share to walk a record's texts.

A rule is a small dataclass: a ``name``, a one-line ``description``, its
tunable parameters as fields with defaults (checked when the rule is built),
and ``check(record) -> str | None`` that returns why the record must be removed,
or None to keep it. Rules never modify records and hold no state between
records, so one rule object can check any number of records.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
import re
from dataclasses import dataclass
from typing import Any, ClassVar, Iterator, Sequence

from itkit.errors import UsageError
from itkit.records import Record

ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff"
"""Invisible characters that do not make a text non-empty."""


@dataclass
class Rule(ABC):
    """A named quality check; subclasses add their parameters as dataclass fields."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""

    @abstractmethod
    def check(self, record: Record) -> str | None:
        """The reason ``record`` must be removed, or None to keep it."""

    @classmethod
    def parameters(cls) -> dict[str, Any]:
        """Parameter names and their defaults, in declaration order."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.default is not dataclasses.MISSING:
                out[f.name] = f.default
            elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
                out[f.name] = f.default_factory()  # type: ignore[misc]
        return out

    def settings(self) -> dict[str, Any]:
        """The parameter values of this rule, JSON-ready (for summaries and run fingerprints)."""
        return {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def overrides(self) -> dict[str, Any]:
        """Only the parameters whose value differs from the default, JSON-ready."""
        defaults = {name: _jsonable(value) for name, value in self.parameters().items()}
        return {name: value for name, value in self.settings().items() if defaults.get(name) != value}


def _jsonable(value: Any) -> Any:
    if isinstance(value, (tuple, list, frozenset, set)):
        return [_jsonable(v) for v in value]
    return value


# ---- parameter checks (raise UsageError naming the parameter) ------------------


def text_tuple(rule: str, param: str, value: Any) -> tuple[str, ...]:
    """A list of strings given as a list/tuple (or one string): as a tuple."""
    if isinstance(value, str):
        value = (value,)
    if not isinstance(value, (list, tuple, set, frozenset)) or not all(isinstance(v, str) for v in value):
        raise UsageError(f"rule '{rule}': {param} must be a list of strings")
    return tuple(value)


def compile_patterns(rule: str, param: str, patterns: Sequence[str], template: str = "(?:{})") -> re.Pattern[str] | None:
    """One case-insensitive regex matching any of ``patterns``; a bad pattern is a UsageError naming it."""
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise UsageError(f"rule '{rule}': {param}: invalid regular expression {pattern!r}: {exc}") from None
    if not patterns:
        return None
    return re.compile(template.format("|".join(f"(?:{p})" for p in patterns)), re.IGNORECASE)


def check_bound(rule: str, param: str, value: Any) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UsageError(f"rule '{rule}': {param} must be a whole number >= 0, got {value!r}")


# ---- walking a record ----------------------------------------------------------


def is_blank(text: str) -> bool:
    """Empty, or only whitespace and invisible characters."""
    return not text.strip().strip(ZERO_WIDTH).strip()


def turn_label(record: Record, index: int) -> str:
    """How a reason names a turn: instruction/response for a single exchange, else "turn N (role)"."""
    role = record.turns[index].role
    if not record.is_multi_turn:
        return "instruction" if role == "user" else "response"
    return f"turn {index + 1} ({role})"


def iter_fields(record: Record, user: bool = True, input: bool = True, assistant: bool = True) -> Iterator[tuple[str, str, str]]:
    """(kind, label, text) for the record's texts in order; kind is instruction, input or response.

    The input (Alpaca ``input``, Dolly ``context``) comes right after the last
    user turn it belongs to. The system prompt is not a field any rule checks.
    Tool results are data, not text a rule judges, and an assistant turn that
    only calls tools has no response text: neither is a field.
    """
    last_user = record.last_user_index
    for i, turn in enumerate(record.turns):
        if turn.role == "user":
            if user:
                yield "instruction", turn_label(record, i), turn.content
            if input and i == last_user and record.input:
                yield "input", "input", record.input
        elif turn.role == "assistant" and assistant and not (turn.tool_calls and is_blank(turn.content)):
            yield "response", turn_label(record, i), turn.content


def prompt_before(record: Record, index: int) -> str:
    """The user text an assistant turn answers (with the input when it is the last exchange)."""
    user = index - 1
    while user >= 0 and record.turns[user].role != "user":  # past tool calls and results
        user -= 1
    if user < 0:
        return ""
    prompt = record.turns[user].content
    if user == record.last_user_index and record.input:
        prompt = f"{prompt}\n{record.input}"
    return prompt


def quote(text: str, limit: int = 60) -> str:
    """A short double-quoted excerpt for a reason."""
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "\u2026"
    return f'"{text}"'
