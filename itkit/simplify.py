"""Response simplification: rewrite each record's final answer into a simpler, shorter one.

Ghosh et al. (2024, "A Closer Look at the Limitations of Instruction Tuning")
found that full fine-tuning on long, knowledge-heavy responses teaches a model
to borrow tokens from similar examples and hallucinate, and that training on
simplified responses, short and conservative, reduces it. ``simplify`` asks an
LLM to rewrite the final assistant turn of every record keeping only what the
original states (the prompt is ``prompts/simplify/simplify.yaml``).

A simplifier that invents a number or drops the answer defeats that purpose,
so every rewrite is checked, deterministically (:mod:`itkit.simplify_checks`):
it must add no number, date, URL, quoted string or capitalised name that the
original lacks, keep the original's code blocks verbatim (unless
``allow_code_edits``) and keep its final-answer marker (``#### 72``,
``\\boxed{}``, "The answer is N", a final multiple-choice letter) with the same
value; and the length guard wants it no longer than the original (in tokens;
in words without a tiktoken encoding). A rewrite that fails any of this is
asked for once more (``retries``), with the problems named in a follow-up
message (``prompts/simplify/retry.yaml``): a different request, so it can
give a different answer even at temperature 0.

What happens to each record:

- **simplified**: the rewrite passes; it replaces the final response and a
  provenance step ``{method, model, template, template_hash, parent_id}`` is
  added (``keep_original``: the original stays in ``metadata["original_output"]``).
- **kept original** (``on_violation="keep-original"``, the default): the last
  rewrite still breaks a check; the record is written with its original
  response and ``metadata["simplify_violations"]`` (check -> problems), so a bad
  rewrite never enters the SFT set.
- **flagged** (``on_violation="flag"``): the rewrite is written anyway, with
  ``metadata["simplify_violations"]``.
- **longer**: the last rewrite passes the checks but is longer than the
  original; it is kept with ``metadata["simplify_longer"] = True``, or, with
  ``reject_longer``, the record fails.
- **no response**: a record whose conversation ends with the user, or whose
  final response is empty, has nothing to simplify. It is written unchanged
  (no provenance step) and counted, so a dataset keeps its size and order.
- **failed**: the engine gave up (errors, empty or cut-off responses after the
  retry limit), the longer rewrite was rejected, or (``on_violation="fail"``) a
  check still fails: the record is not written; it goes to the failures file
  with the reason and the raw response.

Every record read is in exactly one of these counts. (A Self-Instruct seed
task's response is its first instance's output; further instances are kept as
they are.) The run summary's ``simplify`` block (:mod:`itkit.simplify_report`)
holds the length ratios, their distribution and the violations per check.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from itkit.dataset import RecordWriter
from itkit.errors import UsageError
from itkit.formats import get_format
from itkit.llm.base import RecordFailure
from itkit.llm.engine import Engine, sampling_from
from itkit.llm.job import JobResult, fails_before_sending, file_report, read_input
from itkit.llm.report import RunReport
from itkit.records import Record
from itkit.simplify_checks import CHECK_NAMES, CODE_BLOCKS, problem_lines, run_checks
from itkit.simplify_prompt import clean_response, needs_simplifying, parse_simplified, prompt_variables
from itkit.simplify_report import LengthMeter, SimplifyStats
from itkit.templates import PromptTemplate, load_template

__all__ = ["clean_response", "needs_simplifying", "parse_simplified", "prompt_variables", "simplify_file"]

METHOD = "simplify"
COMMAND = "simplify"
TEMPLATE_NAME = "simplify"
RETRY_TEMPLATE_NAME = "retry"
META_ORIGINAL_OUTPUT = "original_output"
META_LONGER = "simplify_longer"
META_VIOLATIONS = "simplify_violations"
RETRIES = 1
"""How many more rewrites are asked for, each naming what was wrong with the last one."""
LENGTH_RETRIES = RETRIES
LONGER_REASON = "the simplified response is longer than the original"
VIOLATION_REASON = "the simplified response breaks a check"
LENGTH = "length"
"""The length guard's key among a rewrite's problems (beside the check names)."""

KEEP_ORIGINAL = "keep-original"
FLAG = "flag"
FAIL = "fail"
ON_VIOLATION = (KEEP_ORIGINAL, FLAG, FAIL)
"""What a rewrite that still breaks a check after the retry becomes (default: the original response is kept)."""

STATUS_SIMPLIFIED = "simplified"
STATUS_LONGER = "longer_kept"
STATUS_KEPT_ORIGINAL = "kept_original"
STATUS_FLAGGED = "flagged"
STATUS_NO_RESPONSE = "no_response"

@dataclass
class Simplified:
    """The result for one record."""

    record: Record
    status: str
    original_length: int = 0
    written_length: int = 0
    first_problems: tuple[str, ...] = ()
    """The checks (and ``length``) the first rewrite broke."""
    final_problems: tuple[str, ...] = ()
    """Those the last rewrite still broke."""
    retried: bool = False


class Simplifier:
    """The per-record worker: render, ask, check, retry once with the problems named, build the new record."""

    def __init__(
        self,
        engine: Engine,
        template: PromptTemplate,
        *,
        retry_template: PromptTemplate | None = None,
        keep_original: bool = False,
        reject_longer: bool = False,
        length_retries: int = RETRIES,
        on_violation: str = KEEP_ORIGINAL,
        allow_code_edits: bool = False,
    ):
        if on_violation not in ON_VIOLATION:
            raise UsageError(f"--on-violation must be one of {', '.join(ON_VIOLATION)}, not '{on_violation}'")
        self.engine = engine
        self.template = template
        self.retry_template = retry_template or load_template(METHOD, RETRY_TEMPLATE_NAME)
        if self.retry_template.variables != ["problems"]:
            raise UsageError(f"{self.retry_template.path}: the retry template takes one variable, 'problems'")
        self.sampling = sampling_from(template.sampling, f"{template.path}: sampling")
        self.keep_original = keep_original
        self.reject_longer = reject_longer
        self.retries = length_retries
        self.on_violation = on_violation
        self.allow_code_edits = allow_code_edits
        self.measure = LengthMeter(engine)

    @property
    def checks(self) -> tuple[str, ...]:
        return tuple(c for c in CHECK_NAMES if not (c == CODE_BLOCKS and self.allow_code_edits))

    def messages(self, record: Record) -> list[dict[str, str]]:
        return self.template.render(**prompt_variables(record))

    def problems(self, original: str, rewrite: str, original_length: int) -> dict[str, list[str]]:
        """What is wrong with a rewrite: the checks it breaks, and ``length`` when it is longer."""
        found = run_checks(original, rewrite, self.allow_code_edits)
        length = self.measure(rewrite)
        if length > original_length:
            found[LENGTH] = [
                f"it is longer than the original answer ({length} {self.measure.unit} instead of at most {original_length})"
            ]
        return found

    async def __call__(self, record: Record) -> Simplified:
        if not needs_simplifying(record):
            return Simplified(record, STATUS_NO_RESPONSE)
        messages = self.messages(record)
        original = record.output.strip()
        expected = self.engine.counter.count(original) if self.engine.settings.dry_run else None
        text = await self._ask(messages, expected)
        await self.measure.ready()  # the encoding loads while the first requests are out
        original_length = self.measure(original)
        problems = self.problems(original, text, original_length)
        first = tuple(problems)
        retried = False
        for _ in range(self.retries):
            if not problems:
                break
            retried = True
            messages = [
                *messages,
                {"role": "assistant", "content": text},
                *self.retry_template.render(problems=problem_lines(problems)),
            ]
            text = await self._ask(messages, expected, retry=True)
            problems = self.problems(original, text, original_length)
        violations = {k: v for k, v in problems.items() if k != LENGTH}
        done = dict(first_problems=first, final_problems=tuple(problems), retried=retried, original_length=original_length)
        if violations:
            if self.on_violation == FAIL:
                names = ", ".join(violations)
                raise RecordFailure(f"{VIOLATION_REASON} ({names}) after {1 + self.retries} tries: {problem_lines(violations)}", text)
            if self.on_violation == KEEP_ORIGINAL:
                kept = record.model_copy(update={"metadata": {**record.metadata, META_VIOLATIONS: violations}})
                return Simplified(kept, STATUS_KEPT_ORIGINAL, written_length=original_length, **done)
            flagged = self.rewritten(record, text, longer=LENGTH in problems, violations=violations)
            return Simplified(flagged, STATUS_FLAGGED, written_length=self.measure(text), **done)
        if LENGTH in problems:
            if self.reject_longer:
                raise RecordFailure(f"{LONGER_REASON}: {problems[LENGTH][0]}, after {1 + self.retries} tries", text)
            return Simplified(
                self.rewritten(record, text, longer=True), STATUS_LONGER, written_length=self.measure(text), **done
            )
        return Simplified(self.rewritten(record, text), STATUS_SIMPLIFIED, written_length=self.measure(text), **done)

    async def _ask(self, messages: list[dict[str, str]], expected: int | None, retry: bool = False) -> str:
        return await self.engine.complete(  # type: ignore[return-value]
            messages,
            template=f"{self.template.ref}+{self.retry_template.ref}" if retry else self.template.ref,
            sampling=self.sampling,
            parse=parse_simplified,
            expected_tokens=expected,
        )

    def rewritten(
        self, record: Record, text: str, longer: bool = False, violations: dict[str, list[str]] | None = None
    ) -> Record:
        metadata = dict(record.metadata)
        if self.keep_original:
            metadata[META_ORIGINAL_OUTPUT] = record.output
        if longer:
            metadata[META_LONGER] = True
        if violations:
            metadata[META_VIOLATIONS] = violations
        step = {
            "method": METHOD,
            "model": self.engine.settings.model,
            "template": self.template.ref,
            "template_hash": self.template.hash,
            "parent_id": record.id,
        }
        return record.with_output(text).with_provenance(step, metadata=metadata)


@dataclass
class SimplifyResult(JobResult):
    source_format: str
    target_format: str
    read: int = 0
    """Records loaded (after --limit)."""
    rejected_input: int = 0
    """Input rows the reader rejected (--on-error skip): in the errors file."""
    simplified: int = 0
    longer_kept: int = 0
    kept_original: int = 0
    flagged: int = 0
    no_response: int = 0
    failed: int = 0
    written: int = 0
    stats: SimplifyStats = field(default_factory=SimplifyStats)

    @property
    def partial(self) -> bool:
        return bool(self.failed or self.rejected_input)

    def counts(self) -> dict[str, Any]:
        return {
            "read": self.read,
            "rejected_input": self.rejected_input,
            "simplified": self.simplified,
            "longer_kept": self.longer_kept,
            "kept_original": self.kept_original,
            "flagged": self.flagged,
            "no_response_passed_through": self.no_response,
            "failed": self.failed,
            "written": self.written,
            **self.limit_counts(),
        }

    def add(self, done: Simplified) -> None:
        """Count one written record."""
        status = done.status
        if status == STATUS_NO_RESPONSE:
            self.no_response += 1
            return
        name = {STATUS_SIMPLIFIED: "simplified", STATUS_LONGER: "longer_kept",
                STATUS_KEPT_ORIGINAL: "kept_original", STATUS_FLAGGED: "flagged"}[status]
        setattr(self, name, getattr(self, name) + 1)
        stats = self.stats
        stats.add_lengths(done.original_length, done.written_length)
        stats.first_try.update(p for p in done.first_problems if p != LENGTH)
        stats.final.update(p for p in done.final_problems if p != LENGTH)
        if done.retried:
            stats.outcomes["retried"] += 1
            if not done.final_problems:
                stats.outcomes["fixed_by_retry"] += 1
        if status == STATUS_KEPT_ORIGINAL:
            stats.outcomes["kept_original"] += 1
        elif status == STATUS_FLAGGED:
            stats.outcomes["flagged"] += 1


def check_writable(records: list[Record], target: str) -> None:
    """Fail before any request when the output format cannot hold a record."""
    fmt = get_format(target)
    for record in records:
        with fails_before_sending(f"record '{record.id}'"):
            fmt.dump(record)


def simplify_file(
    source: str,
    output: str,
    *,
    engine: Engine,
    report: RunReport | None = None,
    from_format: str = "auto",
    to_format: str | None = None,
    keep_original: bool = False,
    reject_longer: bool = False,
    length_retries: int = RETRIES,
    on_violation: str = KEEP_ORIGINAL,
    allow_code_edits: bool = False,
    prompts_dir: str | None = None,
    on_error: str = "fail",
    errors_path: str | None = None,
    pass_rest: bool = False,
) -> SimplifyResult:
    """Simplify every record of ``source`` into ``output`` (nothing is written in a dry run).

    Reads the records (``engine.settings.limit`` first ones; with
    ``pass_rest`` the others are written unchanged after them), loads the
    templates and checks the output format can hold every record before any
    request, runs the rewrites concurrently, writes the results in input order,
    then the failures file and the run summary (``report``) with its
    ``simplify`` block (:mod:`itkit.simplify_report`).
    """
    settings = engine.settings
    template = load_template(METHOD, TEMPLATE_NAME, prompts_dir)
    retry_template = load_template(METHOD, RETRY_TEMPLATE_NAME, prompts_dir)
    read = read_input(
        source, from_format, limit=settings.limit, on_error=on_error, errors_path=errors_path, pass_rest=pass_rest
    )
    records = read.records
    target = to_format or read.format
    result = SimplifyResult(read.format, target, read=len(records), rejected_input=read.rejected)
    result.errors_path = read.errors_path
    result.take_limit(read)
    check_writable(records + read.rest, target)

    simplifier = Simplifier(
        engine,
        template,
        retry_template=retry_template,
        keep_original=keep_original,
        reject_longer=reject_longer,
        length_retries=length_retries,
        on_violation=on_violation,
        allow_code_edits=allow_code_edits,
    )
    result.stats = SimplifyStats(
        unit=simplifier.measure.unit,
        checks=simplifier.checks,
        on_violation=on_violation,
        allow_code_edits=allow_code_edits,
    )
    outcomes = engine.run(records, simplifier, description=COMMAND)
    if settings.dry_run:
        result.dry_run = True
        result.plan = engine.plan
        result.no_response = sum(1 for r in records if not needs_simplifying(r))
        return result

    report = report or RunReport(COMMAND, output, settings)
    report.inputs = read
    with RecordWriter(output, target) as writer:
        for outcome in outcomes:
            if outcome.failure is not None:
                report.fail_record(outcome.item, outcome.failure.reason, outcome.failure.raw)
                result.failed += 1
                if outcome.failure.reason.startswith(VIOLATION_REASON):
                    result.stats.outcomes["failed_checks"] += 1
                continue
            done: Simplified = outcome.value  # type: ignore[assignment]
            result.add(done)
            writer.write(done.record)
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
            "template": template.ref,
            "retry_template": retry_template.ref,
            "source_format": result.source_format,
            "target_format": target,
            "simplify": result.stats.as_dict(),
        },
    )
    return result
