"""The LoRA subset's quality filters: the one place export calls the rules of :mod:`itkit.filters`.

By default a record is left out of the LFT subset when its instruction or
final response is empty, when any turn is a placeholder ("<No Output>",
"N/A"...), when a response refuses or carries AI boilerplate, or when a
response is shorter than :data:`DEFAULT_MIN_RESPONSE_WORDS` or longer than
:data:`DEFAULT_MAX_RESPONSE_WORDS` words. The SFT set is not filtered here:
it is the full (already cleaned) dataset.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from itkit.filters import Rule, apply_rules, build_rules
from itkit.records import Record

DEFAULT_LFT_RULES: tuple[str, ...] = ("empty", "placeholder", "refusal", "length")
DEFAULT_MIN_RESPONSE_WORDS = 2
DEFAULT_MAX_RESPONSE_WORDS = 1000


def lft_rules(
    names: Sequence[str] = DEFAULT_LFT_RULES,
    min_response: int | None = DEFAULT_MIN_RESPONSE_WORDS,
    max_response: int | None = DEFAULT_MAX_RESPONSE_WORDS,
) -> list[Rule]:
    """The configured rules; ``length`` is left out when it has no bound."""
    names = list(names)
    params: dict[str, Any] = {}
    if "length" in names:
        if min_response is None and max_response is None:
            names.remove("length")
        else:
            params = {"min_response": min_response, "max_response": max_response}
    if not names:
        return []
    return build_rules(names, **params)


@dataclass
class QualityOutcome:
    kept: list[int] = field(default_factory=list)
    """Indices of the records that pass every rule."""
    removed: dict[str, int] = field(default_factory=dict)
    """Records removed, by the first rule that removed them."""
    examples: dict[str, str] = field(default_factory=dict)
    """One reason per rule, as an example for the summary."""


def apply_quality(records: Sequence[Record], rules: Sequence[Rule]) -> QualityOutcome:
    out = QualityOutcome()
    if not rules:
        out.kept = list(range(len(records)))
        return out
    run = apply_rules(records, rules)
    for verdict in run:
        if verdict.kept:
            out.kept.append(verdict.index)
        else:
            assert verdict.rule is not None
            out.examples.setdefault(verdict.rule, f"{verdict.record.id}: {verdict.reason}")
    out.removed = {name: n for name, n in run.counts.removed.items()}
    return out


def rule_settings(rules: Sequence[Rule]) -> list[dict[str, Any]]:
    return [{"name": rule.name, **rule.settings()} for rule in rules]
