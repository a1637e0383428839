"""The ``sampling:`` block of a prompt template, validated when the template is loaded.

Every value must have the type the chat completions API expects, checked
strictly (no ``"0.7"`` read as 0.7, no ``true`` read as 1) and finite (a YAML
``.nan`` or ``.inf`` is refused), so that a wrong value fails the template
before any request instead of being sent to the server as is. Values are kept
as written (an integer ``0`` stays ``0``): they are part of the request and of
its cache key.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

TEMPERATURE_MAX = 2.0
PENALTY_LIMIT = 2.0
"""presence_penalty and frequency_penalty lie in [-PENALTY_LIMIT, PENALTY_LIMIT] (the OpenAI API's range)."""
NUMBER_RANGES: dict[str, tuple[float, float, bool]] = {
    "temperature": (0.0, TEMPERATURE_MAX, True),
    "top_p": (0.0, 1.0, False),
    "presence_penalty": (-PENALTY_LIMIT, PENALTY_LIMIT, True),
    "frequency_penalty": (-PENALTY_LIMIT, PENALTY_LIMIT, True),
}
"""parameter -> (low, high, low included)."""


class SamplingSpec(BaseModel):
    """A template's sampling defaults; None (absent) leaves a parameter to the run or the server."""

    model_config = ConfigDict(frozen=True)

    temperature: int | float | None = None
    top_p: int | float | None = None
    max_tokens: int | None = None
    seed: int | None = None
    stop: str | tuple[str, ...] | None = None
    presence_penalty: int | float | None = None
    frequency_penalty: int | float | None = None

    @model_validator(mode="before")
    @classmethod
    def _known(cls, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(str(k) for k in set(data) - set(cls.model_fields))
            if unknown:
                known = ", ".join(cls.model_fields)
                raise ValueError(f"unknown sampling parameter(s) {', '.join(unknown)}; known: {known}")
        return data

    @field_validator(*NUMBER_RANGES, mode="before")
    @classmethod
    def _number(cls, value: Any, info: Any) -> Any:
        if value is None:
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"must be a number, got {value!r}")
        if not math.isfinite(value):
            raise ValueError(f"must be a finite number, got {value!r}")
        low, high, low_included = NUMBER_RANGES[info.field_name]
        if value > high or value < low or (value == low and not low_included):
            bracket = "[" if low_included else "("
            raise ValueError(f"must lie in {bracket}{low:g}, {high:g}], got {value!r}")
        return value

    @field_validator("max_tokens", "seed", mode="before")
    @classmethod
    def _integer(cls, value: Any, info: Any) -> Any:
        if value is None:
            return value
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"must be an integer, got {value!r}")
        if info.field_name == "max_tokens" and value < 1:
            raise ValueError(f"must be at least 1, got {value!r}")
        return value

    @field_validator("stop", mode="before")
    @classmethod
    def _stop(cls, value: Any) -> Any:
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
            return tuple(value)
        raise ValueError(f"must be a string or a non-empty list of strings, got {value!r}")

    def given(self) -> dict[str, Any]:
        """The parameters the block sets, as written."""
        return {k: v for k, v in self.__dict__.items() if v is not None}


__all__ = ["SamplingSpec"]
