"""The score rule: keep records whose judge scores (``itkit score``) are at or above a bound."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

from itkit.errors import UsageError
from itkit.filters.base import Rule, text_tuple
from itkit.records import META_SCORES, Record

_BOUND = re.compile(r"^\s*([A-Za-z][A-Za-z0-9_-]*)\s*(?:=|>=)\s*([-+]?(?:\d+(?:\.\d*)?|\.\d+))\s*$")


def _plain(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def parse_bounds(rule: str, param: str, value: Any) -> dict[str, float]:
    """``("quality=4", "complexity=2.5")`` -> ``{"quality": 4.0, "complexity": 2.5}`` (UsageError naming the bad one)."""
    bounds: dict[str, float] = {}
    for item in text_tuple(rule, param, value):
        for part in (p for p in item.split(",") if p.strip()):
            match = _BOUND.match(part)
            if not match:
                raise UsageError(
                    f"rule '{rule}': {param}: {part.strip()!r} is not NAME=NUMBER (e.g. quality=4)"
                )
            name, bound = match.group(1), float(match.group(2))
            if name in bounds and bounds[name] != bound:
                raise UsageError(f"rule '{rule}': {param}: two bounds for '{name}' ({_plain(bounds[name])}, {_plain(bound)})")
            bounds[name] = bound
    return bounds


@dataclass
class ScoreRule(Rule):
    """A judge score (``metadata["scores"][NAME]``, written by ``itkit score``) is below its bound.

    ``min_score`` holds ``NAME=X`` items (``quality=4``): a record is kept when every named score is at
    or above its bound. A record without that score (never scored, or the scorer had nothing to judge
    in it) is removed too, with its own reason, since nothing says it is good enough; so is a score
    that is not a number. Score it first (``itkit score``), or leave the bound out.
    """

    name: ClassVar[str] = "score"
    description: ClassVar[str] = "a judge score (itkit score) is below --min-score NAME=X, or missing"

    min_score: tuple[str, ...] = ()
    _bounds: dict[str, float] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self.min_score = text_tuple(self.name, "min_score", self.min_score)
        self._bounds = parse_bounds(self.name, "min_score", self.min_score)
        if not self._bounds:
            raise UsageError(f"rule '{self.name}' needs min_score NAME=X (e.g. quality=4)")

    def settings(self) -> dict[str, Any]:
        return {"min_score": list(self.min_score)}

    def check(self, record: Record) -> str | None:
        scores = record.metadata.get(META_SCORES)
        scores = scores if isinstance(scores, dict) else {}
        for name, bound in self._bounds.items():
            value = scores.get(name)
            if value is None:
                return f"no '{name}' score (not scored; run itkit score --scorer {name})"
            if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
                return f"the '{name}' score is not a number: {value!r}"
            if value < bound:
                return f"{name} score {_plain(value)} is below {_plain(bound)}"
        return None


__all__ = ["ScoreRule", "parse_bounds"]
