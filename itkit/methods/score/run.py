"""``itkit score`` as a library call: read, check, ask each scorer about each record, write, report.

Every input record is accounted for: written with its new scores; written unchanged when no scorer
had anything to judge in it (counted per scorer: no response, empty instruction); or, when a judge
gave no usable score after the engine's retries, not written but put in the failures file verbatim
with the scorer's name, the reason and the judge's last answer. Records are written in input order.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from itkit.dataset import RecordWriter
from itkit.errors import ConversionError, Location
from itkit.formats import get_format
from itkit.llm.base import RecordFailure
from itkit.llm.engine import Engine
from itkit.llm.errors import DryRunRequest
from itkit.llm.job import JobResult, fails_before_sending, file_report, read_input
from itkit.llm.report import RunReport
from itkit.methods.score.distribution import describe_scores
from itkit.methods.score.parse import Judgement
from itkit.methods.score.scorers import Scorer
from itkit.records import META_PROVENANCE, META_SCORE_REASONS, META_SCORES, Record

COMMAND = "score"
EXPECTED_ANSWER_TOKENS = 40
"""A dry run expects each judge's answer (a score and a one-line reason) to be about this many tokens."""


class ScorerFailure(RecordFailure):
    """A record's score that could not be obtained: the engine's failure, named after its scorer."""

    def __init__(self, scorer: str, failure: RecordFailure):
        super().__init__(f"{scorer}: {failure.reason}", failure.raw)
        self.base_reason = failure.base_reason
        self.scorer = scorer


@dataclass
class ScorerCounts:
    """What one scorer did."""

    scored: int = 0
    skipped: Counter = field(default_factory=Counter)
    """Records not sent to this scorer, by reason (no response to judge...)."""
    failed: int = 0
    scores: list[float] = field(default_factory=list)

    def as_dict(self, scorer: Scorer) -> dict[str, Any]:
        return {
            "template": scorer.template.ref,
            "scale": [scorer.low, scorer.high],
            "scored": self.scored,
            "not_scored": dict(self.skipped),
            "failed": self.failed,
            "distribution": describe_scores(self.scores),
        }


@dataclass
class ScoreResult(JobResult):
    source_format: str
    target_format: str
    read: int = 0
    """Records loaded (after --limit)."""
    rejected_input: int = 0
    """Input rows the reader rejected (--on-error skip): in the errors file."""
    scored: int = 0
    """Records written with at least one new score."""
    unscored: int = 0
    """Records written unchanged: no scorer had anything to judge in them."""
    failed: int = 0
    written: int = 0
    by_scorer: dict[str, ScorerCounts] = field(default_factory=dict)

    @property
    def partial(self) -> bool:
        return bool(self.failed or self.rejected_input)

    def not_scored_lines(self) -> list[str]:
        """``quality: 3 records not scored (no response to judge)``, per scorer and reason."""
        return [
            f"{name}: {n} record{'s' if n != 1 else ''} not scored ({reason})"
            for name, counts in self.by_scorer.items()
            for reason, n in counts.skipped.items()
        ]

    def counts(self) -> dict[str, Any]:
        return {
            "read": self.read,
            "rejected_input": self.rejected_input,
            "scored": self.scored,
            "unscored_passed_through": self.unscored,
            "failed": self.failed,
            "written": self.written,
            **self.limit_counts(),
        }


def check_scores_field(record: Record) -> None:
    """A record whose ``metadata.scores`` (or ``score_reasons``) is not an object cannot take a score."""
    for key in (META_SCORES, META_SCORE_REASONS):
        value = record.metadata.get(key)
        if value is not None and not isinstance(value, dict):
            raise ConversionError(
                f"must be an object (scorer name -> value), got {type(value).__name__}; nothing was sent",
                Location(f"record '{record.id}'"),
                f"metadata.{key}",
            )


def scored(record: Record, judgements: dict[str, Judgement], scorers: dict[str, Scorer], model: str) -> Record:
    """``record`` with its new scores, reasons and one provenance step per scorer."""
    metadata = dict(record.metadata)
    scores = dict(metadata.get(META_SCORES) or {})
    reasons = dict(metadata.get(META_SCORE_REASONS) or {})
    steps = []
    for name, judgement in judgements.items():
        scores[name] = judgement.score
        if judgement.reason:
            reasons[name] = judgement.reason
        else:
            reasons.pop(name, None)  # an older reason would belong to an older score
        steps.append(scorers[name].provenance(judgement, model))
    metadata[META_SCORES] = scores
    if reasons:
        metadata[META_SCORE_REASONS] = reasons
    else:
        metadata.pop(META_SCORE_REASONS, None)
    metadata[META_PROVENANCE] = [*record.provenance, *steps]
    return record.model_copy(update={"metadata": metadata})


def check_writable(records: list[Record], scorers: list[Scorer], target: str) -> None:
    """Fail before any request when the output format cannot hold a record with its scores."""
    fmt = get_format(target)
    probe = {s.name: Judgement(s.high, "reason") for s in scorers}
    by_name = {s.name: s for s in scorers}
    for record in records:
        check_scores_field(record)
        with fails_before_sending(f"record '{record.id}'"):
            fmt.dump(scored(record, probe, by_name, "model"))


def score_file(
    source: str,
    output: str,
    *,
    engine: Engine,
    scorers: list[Scorer],
    report: RunReport | None = None,
    from_format: str = "auto",
    to_format: str | None = None,
    on_error: str = "fail",
    errors_path: str | None = None,
    pass_rest: bool = False,
) -> ScoreResult:
    """Score every record of ``source`` with each of ``scorers`` into ``output`` (nothing is written in a dry run).

    A score goes to ``metadata["scores"][name]`` (a float), the judge's reason to
    ``metadata["score_reasons"][name]``, and a provenance step ``{method: "score", scorer, score, model,
    template, template_hash}`` is added. With ``pass_rest`` the records after ``limit`` are written unchanged.
    """
    settings = engine.settings
    read = read_input(
        source, from_format, limit=settings.limit, on_error=on_error, errors_path=errors_path, pass_rest=pass_rest
    )
    records = read.records
    target = to_format or read.format
    result = ScoreResult(read.format, target, read=len(records), rejected_input=read.rejected)
    result.errors_path = read.errors_path
    result.take_limit(read)
    result.by_scorer = {s.name: ScorerCounts() for s in scorers}
    check_writable(records, scorers, target)
    for record in read.rest:
        with fails_before_sending(f"record '{record.id}'"):
            get_format(target).dump(record)

    by_name = {s.name: s for s in scorers}
    expected = EXPECTED_ANSWER_TOKENS if settings.dry_run else None

    async def worker(record: Record) -> dict[str, Judgement]:
        judgements: dict[str, Judgement] = {}
        planned = False
        for scorer in scorers:
            if scorer.skip_reason(record) is not None:
                continue
            try:
                judgements[scorer.name] = await engine.complete(  # type: ignore[assignment]
                    scorer.messages(record),
                    template=scorer.template.ref,
                    sampling=scorer.sampling,
                    parse=scorer.parse,
                    expected_tokens=expected,
                    allow_length=True,  # a score given before the cut is a score; none is retried with more tokens
                )
            except DryRunRequest:
                planned = True  # and go on: the other scorers' requests are part of the estimate too
            except RecordFailure as failure:
                raise ScorerFailure(scorer.name, failure) from None
        if planned:
            raise DryRunRequest("dry run: requests recorded, not sent")
        return judgements

    for record in records:
        for scorer in scorers:
            reason = scorer.skip_reason(record)
            if reason is not None:
                result.by_scorer[scorer.name].skipped[reason] += 1
    outcomes = engine.run(records, worker, description=COMMAND)
    if settings.dry_run:
        result.dry_run = True
        result.plan = engine.plan
        return result

    report = report or RunReport(COMMAND, output, settings)
    report.inputs = read
    with RecordWriter(output, target) as writer:
        for outcome in outcomes:
            if outcome.failure is not None:
                name = outcome.failure.scorer if isinstance(outcome.failure, ScorerFailure) else None
                details = {"scorer": name} if name else {}
                report.fail_record(outcome.item, outcome.failure.reason, outcome.failure.raw, **details)
                result.failed += 1
                if name in result.by_scorer:
                    result.by_scorer[name].failed += 1
                continue
            judgements: dict[str, Judgement] = outcome.value or {}  # type: ignore[assignment]
            if judgements:
                for name, judgement in judgements.items():
                    counts = result.by_scorer[name]
                    counts.scored += 1
                    counts.scores.append(judgement.score)
                writer.write(scored(outcome.item, judgements, by_name, settings.model))
                result.scored += 1
            else:
                writer.write(outcome.item)
                result.unscored += 1
            result.written += 1
        for record in read.rest:  # after a recipe's limit: unchanged
            writer.write(record)
            result.written += 1
    result.dropped = dict(writer.dropped)
    file_report(
        result,
        report,
        engine.stats,
        result.counts(),
        extra={
            "source_format": result.source_format,
            "target_format": target,
            "scorers": {s.name: result.by_scorer[s.name].as_dict(s) for s in scorers},
        },
    )
    return result


__all__ = ["COMMAND", "EXPECTED_ANSWER_TOKENS", "ScoreResult", "ScorerCounts", "score_file", "scored"]
