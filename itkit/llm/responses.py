"""What makes a response usable: the checks every response passes, JSON parsing, and a record's outcome."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from itkit.errors import UsageError
from itkit.llm.base import ChatResponse, RecordFailure, ResponseRejected, Sampling
from itkit.llm.sampling_spec import SamplingSpec

T = TypeVar("T")
I = TypeVar("I")  # noqa: E741

LENGTH_FINISH = "length"
CUT_OFF_REASON = "the response was cut off by the length limit (finish_reason=length)"

_FENCE = re.compile(r"^\s*```(?:json)?\s*\n?(.*?)\n?\s*```\s*$", re.S | re.I)


def parse_json(text: str) -> Any:
    """The JSON value of a response body (a surrounding ```json fence is allowed); ResponseRejected if invalid."""
    body = text.strip()
    fenced = _FENCE.match(body)
    if fenced:
        body = fenced.group(1)
    try:
        return json.loads(body)
    except ValueError as exc:
        raise ResponseRejected(f"the response is not valid JSON ({exc.msg})", text) from None


def sampling_from(values: "SamplingSpec | dict[str, Any] | None", where: str = "sampling") -> Sampling:
    """A :class:`Sampling` from a template's ``sampling:`` block (or plain data); unknown keys are an error."""
    data = values.given() if isinstance(values, SamplingSpec) else dict(values or {})
    known = set(Sampling.__dataclass_fields__)
    unknown = sorted(set(data) - known)
    if unknown:
        raise UsageError(f"{where}: unknown sampling parameter(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    if data.get("stop") is not None:
        stop = data["stop"]
        data["stop"] = (stop,) if isinstance(stop, str) else tuple(stop)
    return Sampling(**data)


def check_response(response: ChatResponse, json_mode: bool, allow_length: bool = False) -> None:
    """Raise ResponseRejected for an empty, truncated (unless ``allow_length``) or (in JSON mode) non-JSON response."""
    if not response.text.strip():
        raise ResponseRejected("empty response", response.text)
    if response.finish_reason == LENGTH_FINISH and not allow_length:
        raise ResponseRejected(CUT_OFF_REASON, response.text)
    if json_mode:
        parse_json(response.text)


@dataclass
class Outcome(Generic[I, T]):
    """What became of one item: a value, a failure, or (dry run) a plan."""

    item: I
    value: T | None = None
    failure: RecordFailure | None = None
    planned: bool = False
    """Dry run: the item's requests were recorded, nothing was sent."""

    @property
    def ok(self) -> bool:
        return self.failure is None and not self.planned


__all__ = ["CUT_OFF_REASON", "LENGTH_FINISH", "Outcome", "check_response", "parse_json", "sampling_from"]
