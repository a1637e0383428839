"""Quality filters: named, tunable rules that remove bad records, each with its reason.

    from itkit.filters import build_rules, apply_rules
    rules = build_rules(["empty", "refusal", "length"], max_response=512)
    run = apply_rules(records, rules)
    kept = list(run.kept(on_removed=lambda v: print(v.record.id, v.rule, v.reason)))
    run.counts.removed  # {"empty": 3, "refusal": 1, "length": 7}
"""

from itkit.filters.base import Rule
from itkit.filters.language import LanguageRule
from itkit.filters.pipeline import (
    FilterCounts,
    FilterResult,
    FilterRun,
    Verdict,
    apply_rules,
    check_record,
    filter_file,
)
from itkit.filters.registry import DEFAULT_RULES, PARAM_OWNERS, RULES, build_rules, describe_rules, parse_rule_names
from itkit.filters.rules import AlternationRule, EmptyRule, LengthRule, NonTextRule, PlaceholderRule, RefusalRule
from itkit.filters.score import ScoreRule

__all__ = [
    "AlternationRule",
    "DEFAULT_RULES",
    "EmptyRule",
    "FilterCounts",
    "FilterResult",
    "FilterRun",
    "LanguageRule",
    "LengthRule",
    "NonTextRule",
    "PARAM_OWNERS",
    "PlaceholderRule",
    "RULES",
    "RefusalRule",
    "Rule",
    "ScoreRule",
    "Verdict",
    "apply_rules",
    "build_rules",
    "check_record",
    "describe_rules",
    "filter_file",
    "parse_rule_names",
]
