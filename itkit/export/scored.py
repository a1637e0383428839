"""Scores for the LFT selection: ``--lft-select quality`` and ``--lft-select deita`` (:mod:`itkit.export.deita`).

Both read the judge scores ``itkit score`` stores in a record's metadata
(``metadata.scores.<scorer>``, :data:`itkit.records.META_SCORES`). A record's
*score* is the named score, or the product of several (``--lft-score
quality,complexity`` is Deita's evol score, complexity x quality). Records are
ranked by descending score, ties in an order drawn from the seed.

``quality`` takes the stratum quotas of :func:`itkit.export.subset.allocate`
and fills each stratum with its highest-scored records. Records without the
score stop the export (:class:`Unscored`, ``--lft-unscored error``) or rank
below every scored one (``last``).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any, Sequence

from itkit.errors import InputError, Location
from itkit.export.subset import allocate
from itkit.lazy import lazy_module
from itkit.records import META_SCORES, Record
from itkit.stats import percentile

np = lazy_module("numpy")

SELECT_METHODS = ("diverse", "quality", "deita")
"""``--lft-select``: diverse (stratified, seeded), quality (highest scores per stratum), deita (score-first with a
similarity guard)."""
SCORED_METHODS = ("quality", "deita")
DEFAULT_SCORE = ("quality",)
UNSCORED_CHOICES = ("error", "last")
"""``--lft-unscored``: a record without the score stops the export (error), or ranks below every scored one (last)."""
HISTOGRAM_VALUES = 12
"""The card lists every score value when there are at most this many distinct ones."""


class BadScore(Exception):
    """A score that is not a number (the export turns it into a located InputError)."""

    def __init__(self, field: str, reason: str):
        super().__init__(reason)
        self.field = field
        self.reason = reason


def score_field(name: str) -> str:
    return f"metadata.{META_SCORES}.{name}"


def score_of(record: Record, names: Sequence[str]) -> float | None:
    """The product of the record's named scores; None when one is missing. Raises :class:`BadScore`."""
    scores = record.metadata.get(META_SCORES)
    if scores is None:
        return None
    if not isinstance(scores, dict):
        raise BadScore(f"metadata.{META_SCORES}", f"must be an object of scorer name -> number, got {type(scores).__name__}")
    product = 1.0
    for name in names:
        value = scores.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise BadScore(score_field(name), f"must be a finite number, got {value!r}")
        product *= float(value)
    return product


def missing_score(record: Record, names: Sequence[str]) -> str:
    """The first of ``names`` the record has no score for (``names[0]`` when it has none at all)."""
    scores = record.metadata.get(META_SCORES)
    if isinstance(scores, dict):
        for name in names:
            if scores.get(name) is None:
                return name
    return names[0]


def rank(scores: Sequence[float | None], seed: int) -> list[int]:
    """Indices by descending score (None after every score), equal scores in an order drawn from ``seed``."""
    tiebreak = list(range(len(scores)))
    random.Random(seed).shuffle(tiebreak)
    missing = np.fromiter((s is None for s in scores), dtype=bool, count=len(scores))
    values = np.fromiter((0.0 if s is None else -s for s in scores), dtype=np.float64, count=len(scores))
    return np.lexsort((np.asarray(tiebreak, dtype=np.int64), values, missing)).tolist()


def by_label(order: Sequence[int], labels: Sequence[str]) -> dict[str, list[int]]:
    """The indices of ``order`` per label (labels sorted), each list in the order given."""
    out: dict[str, list[int]] = {}
    for i in order:
        out.setdefault(labels[i], []).append(i)
    return dict(sorted(out.items()))


def take_quotas(members: dict[str, list[int]], size: int) -> list[int]:
    """The first records of each label's list, as many as its quota of ``size`` (:func:`allocate`)."""
    quota = allocate({label: len(items) for label, items in members.items()}, size)
    return [i for label, items in members.items() for i in items[: quota[label]]]


def select_quality(labels: Sequence[str], scores: Sequence[float | None], size: int, seed: int) -> list[int]:
    """Indices (input order) of ``size`` records spread over ``labels``, the highest-scored of each stratum."""
    return sorted(take_quotas(by_label(rank(scores, seed), labels), size))


@dataclass
class ScoreSummary:
    """The distribution of the score over a set of records (for the card and the manifest)."""

    records: int = 0
    unscored: int = 0
    min: float = 0.0
    p25: float = 0.0
    median: float = 0.0
    mean: float = 0.0
    p75: float = 0.0
    max: float = 0.0
    values: dict[str, int] | None = None
    """Records per score value, when there are at most :data:`HISTOGRAM_VALUES` distinct values."""

    @classmethod
    def of(cls, scores: Sequence[float | None]) -> "ScoreSummary":
        known = sorted(s for s in scores if s is not None)
        out = cls(records=len(scores), unscored=len(scores) - len(known))
        if known:
            out.min, out.max = known[0], known[-1]
            out.p25, out.median, out.p75 = (percentile(known, q) for q in (0.25, 0.5, 0.75))
            out.mean = sum(known) / len(known)
            distinct = sorted(set(known), reverse=True)
            if len(distinct) <= HISTOGRAM_VALUES:
                out.values = {f"{v:g}": known.count(v) for v in distinct}
        return out

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"records": self.records, "unscored": self.unscored}
        for name in ("min", "p25", "median", "mean", "p75", "max"):
            out[name] = round(getattr(self, name), 4)
        if self.values is not None:
            out["values"] = dict(self.values)
        return out


@dataclass
class Selection:
    """What the LFT selection did, for the summary, the card and the manifest."""

    method: str
    score: tuple[str, ...] = ()
    similarity: float | None = None
    skipped: int = 0
    """deita: records left out because they resemble a taken one."""
    filled: int = 0
    examples: list[dict[str, Any]] = field(default_factory=list)
    """deita: a few skipped records with the taken record they resemble."""
    unscored: int = 0
    """Candidates without the score (ranked last with --lft-unscored last)."""
    distributions: dict[str, ScoreSummary] = field(default_factory=dict)
    """The score over the LFT candidates, the records after the quality rules and the subset."""

    @property
    def score_name(self) -> str:
        return " x ".join(self.score)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"method": self.method}
        if self.method in SCORED_METHODS:
            out["score"] = list(self.score)
            out["unscored"] = self.unscored
            out["score_distribution"] = {name: d.as_dict() for name, d in self.distributions.items()}
        if self.method == "deita":
            out.update(similarity=self.similarity, skipped_similar=self.skipped, filled=self.filled, examples=self.examples)
        return out


class Unscored:
    """LFT candidates without the score used for the selection: how many, and where the first one is."""

    def __init__(self) -> None:
        self.count = 0
        self.first: tuple[Location | None, str, str] | None = None

    def check(self, record: Record, names: Sequence[str], location: Location | None) -> None:
        """Count ``record`` if it lacks a score; a score that is not a number is a located error."""
        try:
            value = score_of(record, names)
        except BadScore as err:
            raise InputError(err.reason, location, err.field) from None
        if value is None:
            self.count += 1
            if self.first is None:
                self.first = (location, record.id, missing_score(record, names))

    def refuse(self, total: int, source: Location) -> None:
        """Stop the export (``--lft-unscored error``) when a candidate has no score."""
        if self.first is None:
            return
        location, rid, name = self.first
        how = f"itkit score SRC -o OUT --scorer {name}"
        if self.count == total:
            raise InputError(
                f"no record has a '{name}' score ({score_field(name)}): score them first ({how}), or choose "
                "--lft-select diverse; nothing was written",
                source,
            )
        raise InputError(
            f"record '{rid}' has no '{name}' score; {self.count} of {total} records "
            f"{'has' if self.count == 1 else 'have'} none: score them ({how}), "
            "or pass --lft-unscored last to rank them below every scored record; nothing was written",
            location,
            score_field(name),
        )
