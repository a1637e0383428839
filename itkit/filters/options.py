"""The options of ``itkit filter`` (and of a recipe's filter step) as rule parameters for :func:`build_rules`."""

from __future__ import annotations

from typing import Any, Sequence

from itkit.filters.rules import DEFAULT_BOILERPLATE, DEFAULT_NON_TEXT_PATTERNS, DEFAULT_PLACEHOLDERS, DEFAULT_REFUSAL_OPENINGS
from itkit.tokens import encoding_name_for


def added_to_defaults(defaults: tuple[str, ...], extra: Sequence[str] | None) -> tuple[str, ...] | None:
    """A repeatable pattern option adds to the rule's default list (None: not given, the rule keeps its default)."""
    return (*defaults, *extra) if extra else None


def rule_params(
    *,
    min_instruction: int | None = None,
    max_instruction: int | None = None,
    min_input: int | None = None,
    max_input: int | None = None,
    min_response: int | None = None,
    max_response: int | None = None,
    length_unit: str | None = None,
    encoding: str | None = None,
    model: str | None = None,
    placeholder: Sequence[str] | None = None,
    keep_requested_placeholders: bool | None = None,
    refusal_pattern: Sequence[str] | None = None,
    boilerplate_pattern: Sequence[str] | None = None,
    non_text_pattern: Sequence[str] | None = None,
    scripts: Sequence[str] | None = None,
    min_script_share: float | None = None,
    min_letters: int | None = None,
    ignore_code: bool | None = None,
    min_score: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The rule parameters the given options set (an option left at None is left out, so its rule keeps its default
    and does not join). ``encoding`` or ``model`` name the tokenizer of ``length_unit="tokens"``."""
    params: dict[str, Any] = {
        "min_instruction": min_instruction,
        "max_instruction": max_instruction,
        "min_input": min_input,
        "max_input": max_input,
        "min_response": min_response,
        "max_response": max_response,
        "length_unit": length_unit,
        "encoding": encoding_name_for(model, encoding) if (encoding or model) else None,
        "placeholders": added_to_defaults(DEFAULT_PLACEHOLDERS, placeholder),
        "keep_requested_placeholders": keep_requested_placeholders,
        "refusal_openings": added_to_defaults(DEFAULT_REFUSAL_OPENINGS, refusal_pattern),
        "boilerplate": added_to_defaults(DEFAULT_BOILERPLATE, boilerplate_pattern),
        "non_text_patterns": added_to_defaults(DEFAULT_NON_TEXT_PATTERNS, non_text_pattern),
        "scripts": tuple(scripts) if scripts is not None else None,
        "min_script_share": min_script_share,
        "min_letters": min_letters,
        "ignore_code": ignore_code,
        "min_score": tuple(min_score) if min_score else None,
    }
    return {name: value for name, value in params.items() if value is not None}


__all__ = ["added_to_defaults", "rule_params"]
