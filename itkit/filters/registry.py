"""The rule registry and :func:`build_rules`, the one way to get configured rules from names and parameters."""

from __future__ import annotations

from typing import Any, Sequence

from itkit.errors import UsageError
from itkit.filters.base import Rule
from itkit.filters.language import LanguageRule
from itkit.filters.score import ScoreRule
from itkit.filters.rules import AlternationRule, EmptyRule, LengthRule, NonTextRule, PlaceholderRule, RefusalRule

RULES: dict[str, type[Rule]] = {
    rule.name: rule
    for rule in (EmptyRule, PlaceholderRule, AlternationRule, NonTextRule, RefusalRule, LengthRule, LanguageRule, ScoreRule)
}
"""Every rule by name, in the order they are applied when no order is given."""

DEFAULT_RULES: tuple[str, ...] = ("empty", "placeholder", "alternation", "non_text", "refusal")
"""Applied when no rule names are given. ``length``, ``language`` and ``score`` need settings that depend
on the dataset (bounds, the expected script, the scores wanted), so they join when one of their parameters
is given."""


def _param_owners() -> dict[str, str]:
    owners: dict[str, str] = {}
    for name, rule in RULES.items():
        for param in rule.parameters():
            if param in owners:  # pragma: no cover - guarded by a test
                raise RuntimeError(f"rule parameter '{param}' is declared by both '{owners[param]}' and '{name}'")
            owners[param] = name
    return owners


PARAM_OWNERS: dict[str, str] = _param_owners()
"""Parameter name -> the rule that declares it (parameter names are unique across rules)."""


def parse_rule_names(text: str) -> list[str]:
    """A comma-separated ``--rules`` value as a list of names (spaces and empty items ignored)."""
    return [part.strip() for part in text.split(",") if part.strip()]


def build_rules(names: Sequence[str] | None = None, **params: Any) -> list[Rule]:
    """Configured rules, in the order they will be applied.

    ``names``: the rules to apply, in this order (duplicates ignored); None
    means :data:`DEFAULT_RULES` plus every other rule one of ``params``
    belongs to (so ``build_rules(max_response=512)`` adds ``length``).
    ``params``: rule parameters by name (see each rule's fields). Unknown
    names or parameters, or a parameter of a rule that ``names`` leaves out,
    raise :class:`UsageError` listing the valid choices.
    """
    unknown_params = sorted(p for p in params if p not in PARAM_OWNERS)
    if unknown_params:
        raise UsageError(
            f"unknown rule parameter '{unknown_params[0]}'; valid parameters: {', '.join(PARAM_OWNERS)}"
        )
    if names is None:
        wanted = set(DEFAULT_RULES) | {PARAM_OWNERS[p] for p in params}
        selected = [name for name in RULES if name in wanted]
    else:
        if isinstance(names, str):
            names = parse_rule_names(names)
        selected = []
        for name in names:
            if name not in RULES:
                raise UsageError(f"unknown rule '{name}'; valid rules: {', '.join(RULES)}")
            if name not in selected:
                selected.append(name)
        if not selected:
            raise UsageError(f"no rules selected; valid rules: {', '.join(RULES)}")
        for param in params:
            owner = PARAM_OWNERS[param]
            if owner not in selected:
                raise UsageError(
                    f"'{param}' is a parameter of rule '{owner}', which is not among the selected rules "
                    f"({', '.join(selected)}); add '{owner}' to the rules or drop the parameter"
                )
    rules: list[Rule] = []
    for name in selected:
        cls = RULES[name]
        own = {p: v for p, v in params.items() if PARAM_OWNERS[p] == name}
        rules.append(cls(**own))
    return rules


def describe_rules() -> list[dict[str, Any]]:
    """Every rule with its description and parameter defaults (for help texts and docs)."""
    return [
        {
            "name": name,
            "description": rule.description,
            "default": name in DEFAULT_RULES,
            "parameters": {p: _plain(v) for p, v in rule.parameters().items()},
        }
        for name, rule in RULES.items()
    ]


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


__all__ = ["DEFAULT_RULES", "PARAM_OWNERS", "RULES", "build_rules", "describe_rules", "parse_rule_names"]
